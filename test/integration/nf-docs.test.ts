// Keeps docs/nfs/ in step with the built-in NFs' defineNf declarations: each page is rendered again
// in-process with the generator's own renderer (tools/nf-reference.mjs) and must equal the committed
// file, and every declared output, drop reason, counter and configuration field must be on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { builtinNfs } from '../../nfs/index.js';

type Reference = typeof import('../../tools/nf-reference.mjs');

// From dist/test/integration/ to the repository: the renderer is not compiled, it lives in tools/.
const repo = new URL('../../../', import.meta.url);
const reference = (await import(new URL('tools/nf-reference.mjs', repo).href)) as Reference;
const { configFields, deploymentSnippet, loadBuiltinNfs, renderNfIndex, renderNfReference } = reference;
const docs = new URL('docs/nfs/', repo);
const nfs = await loadBuiltinNfs(new URL('dist/nfs/', repo));

const STALE = 'is out of step with its NF declaration: run `npm run docs` and commit docs/nfs/';

function committed(page: string): string {
  const url = new URL(page, docs);
  assert.ok(existsSync(url), `docs/nfs/${page} is missing: run \`npm run docs\` and commit docs/nfs/`);
  return readFileSync(url, 'utf8');
}

test('nf docs: every built-in NF is found under dist/nfs, one folder per NF named after it', () => {
  assert.deepEqual(nfs.map((nf) => nf.definition.name).sort(), Object.keys(builtinNfs).sort());
  for (const { folder, definition } of nfs) assert.equal(folder, definition.name);
});

test('nf docs: docs/nfs holds exactly one page per built-in NF and the index', () => {
  const pages = readdirSync(docs)
    .filter((name) => name.endsWith('.md'))
    .sort();
  const expected = ['README.md', ...nfs.map((nf) => `${nf.definition.name}.md`)].sort();
  assert.deepEqual(pages, expected, `docs/nfs/ ${STALE}`);
});

test('nf docs: docs/nfs/README.md is what the generator writes, and lists every NF with its summary', async () => {
  const page = committed('README.md');
  assert.equal(page, await renderNfIndex(nfs.map((nf) => nf.definition)), `docs/nfs/README.md ${STALE}`);
  for (const { definition } of nfs) {
    assert.ok(page.includes(`[${definition.name}](${definition.name}.md)`), definition.name);
    assert.ok(page.includes(definition.summary), `${definition.name}: summary`);
  }
});

for (const { folder, definition } of nfs) {
  const name = definition.name;

  test(`nf docs: docs/nfs/${name}.md is what the generator writes from the declaration`, async () => {
    const rendered = await renderNfReference(definition, { source: `nfs/${folder}/index.ts` });
    assert.equal(committed(`${name}.md`), rendered, `docs/nfs/${name}.md ${STALE}`);
  });

  test(`nf docs: docs/nfs/${name}.md names everything ${name} declares`, () => {
    const page = committed(`${name}.md`);
    const has = (text: string, what: string) =>
      assert.ok(page.includes(text), `docs/nfs/${name}.md does not mention ${what} ${text}`);
    has(`# ${name}\n`, 'the title');
    has(definition.summary, 'the summary');
    has(`\`builtin/${name}\``, 'the image');
    for (const output of definition.outputs) has(`\`${output}\``, 'output');
    for (const [drop, when] of Object.entries(definition.drops)) {
      has(`| \`${drop}\``, 'drop reason');
      has(when.replace(/\|/g, '\\|'), `the description of drop reason ${drop}:`);
    }
    for (const [counter, spec] of Object.entries(definition.counters)) {
      has(`| \`${counter}\``, 'counter');
      has(spec.description.replace(/\|/g, '\\|'), `the description of counter ${counter}:`);
    }
    for (const row of configFields(definition.config)) {
      has(`| \`${row.path}\``, 'config field');
      has(row.field.description.replace(/\|/g, '\\|'), `the description of config field ${row.path}:`);
    }
  });

  test(`nf docs: the deployment snippet for ${name} is YAML with the image and every required field`, () => {
    const snippet = deploymentSnippet(definition).join('\n');
    assert.ok(committed(`${name}.md`).includes(`\`\`\`yaml\n${snippet}\n`), 'the page shows the snippet');
    const parsed = parseYaml(snippet) as { nfs: Record<string, { image: string; config?: object }> };
    const instance = parsed.nfs[name];
    assert.equal(instance.image, `builtin/${name}`);
    const required = configFields(definition.config)
      .filter((row) => row.required && !/[.[]/.test(row.path))
      .map((row) => row.path);
    assert.deepEqual(Object.keys(instance.config ?? {}), required);
  });
}
