// Renders the reference page of a network function from its `defineNf` declaration (see
// src/sdk/define-nf.ts and src/sdk/config-schema.ts), and the index of all built-in NFs.
// tools/gen-docs.mjs writes the pages to docs/nfs/; test/integration/nf-docs.test.ts renders them
// again in-process and compares them with the committed files. Pages are passed through Prettier
// with the repository's settings, so `npm run format` leaves them as they are.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';

const REPO = new URL('../', import.meta.url);

/** Built-in NFs: each folder of `distNfs` (a URL of the compiled nfs/ folder) with an index.js whose
 *  default export is an NF declaration, sorted by folder name. */
export async function loadBuiltinNfs(distNfs = new URL('dist/nfs/', REPO)) {
  const found = [];
  for (const folder of readdirSync(distNfs).sort(byText)) {
    const index = new URL(`${folder}/index.js`, distNfs);
    if (!statSync(new URL(folder, distNfs)).isDirectory() || !existsSync(index)) continue;
    const definition = (await import(index.href)).default;
    if (isDefinition(definition)) found.push({ folder, definition });
  }
  return found;
}

function isDefinition(value) {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof value.name === 'string' &&
    typeof value.create === 'function' &&
    Array.isArray(value.outputs)
  );
}

function byText(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every configuration field, depth first in declaration order, with its path: `rules`, `rules[]`,
 *  `rules[].action`; an object's fields are `parent.field`. `required` is true when a value must
 *  be written (no default and not an optional object) wherever its parent is written. */
export function configFields(schema, prefix = '') {
  const rows = [];
  for (const [name, field] of Object.entries(schema))
    addField(rows, prefix === '' ? name : `${prefix}.${name}`, field);
  return rows;
}

function addField(rows, path, field, item = false) {
  rows.push({ path, field, required: !item && isRequired(field), item });
  if (field.type === 'array') addField(rows, `${path}[]`, field.items, true);
  else if (field.type === 'object')
    for (const [name, inner] of Object.entries(field.properties)) addField(rows, `${path}.${name}`, inner);
}

function isRequired(field) {
  if (field.type === 'object') return !field.optional && Object.values(field.properties).some(isRequired);
  return field.default === undefined;
}

/** The Markdown reference page of one NF. */
export async function renderNfReference(definition, { source = `nfs/${definition.name}/index.ts` } = {}) {
  const image = `builtin/${definition.name}`;
  const lines = [
    `# ${definition.name}`,
    '',
    definition.summary,
    '',
    `Image: \`${image}\``,
    '',
    `Generated from the \`defineNf\` declaration in \`${source}\` by \`npm run docs\`; a test keeps the`,
    'two in step.',
    '',
    '## Deployment',
    '',
    "The smallest entry for it in a deployment's `nfs:` section: the image and the required configuration",
    '(values in angle brackets are placeholders; the instance name is yours to choose).',
    '',
    '```yaml',
    ...deploymentSnippet(definition),
    '```',
    '',
    '## Outputs',
    '',
    'Packets go to the first output unless the NF sends them to another.',
    '',
    ...definition.outputs.map((name, i) => `- \`${name}\`${i === 0 ? ' (default)' : ''}`),
    '',
    '## Drop reasons',
    '',
  ];
  const drops = Object.entries(definition.drops);
  if (drops.length === 0) lines.push('This NF drops nothing itself.');
  else
    lines.push(
      '| reason | when |',
      '| --- | --- |',
      ...drops.map(([name, when]) => `| \`${name}\` | ${cell(when)} |`),
    );
  lines.push('', '## Counters', '');
  const counters = Object.entries(definition.counters);
  if (counters.length === 0) lines.push('This NF declares no counters.');
  else
    lines.push(
      'In declaration order, which is the order of the counter slots.',
      '',
      '| counter | unit | description |',
      '| --- | --- | --- |',
      ...counters.map(([name, spec]) => `| \`${name}\` | ${cell(spec.unit)} | ${cell(spec.description)} |`),
    );
  lines.push('', '## Configuration', '');
  const fields = configFields(definition.config);
  if (fields.length === 0) lines.push('This NF takes no configuration.');
  else
    lines.push(
      'Unknown fields are rejected. `a[]` is each entry of the list `a`; `a[].b` is the field `b` of each entry.',
      '',
      '| field | type | default | allowed | description |',
      '| --- | --- | --- | --- | --- |',
      ...fields.map(
        (row) =>
          `| \`${row.path}\` | ${typeOf(row.field)} | ${defaultOf(row)} | ${allowedOf(row.field)} | ${cell(row.field.description)} |`,
      ),
    );
  return format(lines, `docs/nfs/${definition.name}.md`);
}

/** The Markdown index of the built-in NFs (`definitions` in any order; listed by name). */
export async function renderNfIndex(definitions) {
  const sorted = [...definitions].sort((a, b) => byText(a.name, b.name));
  const lines = [
    '# Built-in network functions',
    '',
    "Each is deployed as the image `builtin/<name>`. These pages are generated from the NFs' `defineNf`",
    'declarations in `nfs/` by `npm run docs`; a test keeps them in step.',
    '',
    '| NF | image | summary |',
    '| --- | --- | --- |',
    ...sorted.map((d) => `| [${d.name}](${d.name}.md) | \`builtin/${d.name}\` | ${cell(d.summary)} |`),
  ];
  return format(lines, 'docs/nfs/README.md');
}

async function format(lines, path) {
  const filepath = fileURLToPath(new URL(path, REPO));
  const options = (await prettier.resolveConfig(filepath)) ?? {};
  return prettier.format(`${lines.join('\n')}\n`, { ...options, filepath, parser: 'markdown' });
}

function cell(text) {
  return String(text)
    .replace(/\|/g, '\\|')
    .replace(/\s*\n\s*/g, ' ');
}

function code(text) {
  const s = String(text);
  const fence = s.includes('`') ? '``' : '`';
  const pad = s.startsWith('`') || s.endsWith('`') ? ' ' : '';
  return cell(`${fence}${pad}${s}${pad}${fence}`);
}

function typeOf(field) {
  if (field.type === 'array') return `list of ${typeOf(field.items)}`;
  if (field.type === 'object' && field.optional) return 'object (optional)';
  return field.type;
}

function valueText(value) {
  if (typeof value === 'string') return value === '' ? '`""`' : code(value);
  return code(JSON.stringify(value));
}

function defaultOf(row) {
  const { field } = row;
  if (row.item || field.type === 'object') return '—';
  return field.default === undefined ? '**required**' : valueText(field.default);
}

function allowedOf(field) {
  const parts = [];
  switch (field.type) {
    case 'string':
      if (field.enum) parts.push(field.enum.map(code).join(', '));
      if (field.numbersAsText) parts.push('a bare number is read as its text');
      break;
    case 'number':
    case 'integer':
      if (field.minimum !== undefined && field.maximum !== undefined)
        parts.push(`${field.minimum}–${field.maximum}`);
      else if (field.minimum !== undefined) parts.push(`≥ ${field.minimum}`);
      else if (field.maximum !== undefined) parts.push(`≤ ${field.maximum}`);
      break;
    case 'array':
      if (field.maxItems !== undefined) parts.push(`at most ${field.maxItems} entries`);
      break;
    default:
      break;
  }
  return parts.length === 0 ? '' : parts.join('; ');
}

/** YAML lines of a deployment's `nfs:` section holding one instance of the NF with its required
 *  configuration: enum fields get their first value, other scalars a `<path>` placeholder. */
export function deploymentSnippet(definition) {
  const out = ['nfs:', `  ${definition.name}:`, `    image: builtin/${definition.name}`];
  const config = requiredYaml(definition.config, '', '      ');
  if (config.length > 0) out.push('    config:', ...config);
  return out;
}

function requiredYaml(schema, prefix, indent) {
  const out = [];
  for (const [name, field] of Object.entries(schema)) {
    if (!isRequired(field)) continue;
    const path = prefix === '' ? name : `${prefix}.${name}`;
    if (field.type === 'object')
      out.push(`${indent}${name}:`, ...requiredYaml(field.properties, path, `${indent}  `));
    else if (field.type === 'array')
      out.push(`${indent}${name}: ${hint(field)}`, ...itemYaml(field.items, `${path}[0]`, `${indent}  `));
    else out.push(`${indent}${name}: ${scalarPlaceholder(field, path)} ${hint(field)}`);
  }
  return out;
}

function itemYaml(item, path, indent) {
  if (item.type === 'object') {
    const fields = requiredYaml(item.properties, path, `${indent}  `);
    if (fields.length === 0) return [`${indent}- {}`];
    return [`${indent}- ${fields[0].trimStart()}`, ...fields.slice(1)];
  }
  if (item.type === 'array') return [`${indent}-`, ...itemYaml(item.items, `${path}[0]`, `${indent}  `)];
  return [`${indent}- ${scalarPlaceholder(item, path)}`];
}

function scalarPlaceholder(field, path) {
  if (field.type === 'string' && field.enum && field.enum.length > 0) return field.enum[0];
  return `<${path}>`;
}

/** A YAML comment with the field's type and what it allows (`# integer, 1–65535`). */
function hint(field) {
  const allowed = field.type === 'string' && field.enum ? field.enum.join(' | ') : allowedOf(field);
  return `# ${typeOf(field)}${allowed === '' ? '' : `, ${allowed}`}`;
}
