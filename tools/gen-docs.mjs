#!/usr/bin/env node
// Regenerates the generated reference pages from the compiled code (run `npm run build` first):
//   docs/errors.md  from the error registry in src/errors.ts
//   docs/nfs/<name>.md and docs/nfs/README.md  from each built-in NF's defineNf declaration
//                   (dist/nfs/<folder>/index.js, rendered by tools/nf-reference.mjs)
// A unit test fails when a page is out of step, so run `npm run docs` after changing a source.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadBuiltinNfs, renderNfIndex, renderNfReference } from './nf-reference.mjs';

const { ErrorCodes } = await import('../dist/src/errors.js');
const rows = Object.entries(ErrorCodes)
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([code, text]) => `| \`${code}\` | ${text} |`);
writeFileSync(
  new URL('../docs/errors.md', import.meta.url),
  `# Error codes

Every error nfvisor reports has a stable code. Compare codes, not messages; messages name the file
and byte offset, or the file, line and field, that the error is about.
This page is generated from \`src/errors.ts\` by \`npm run docs\`; a test keeps the two in step.

| code | meaning |
|---|---|
${rows.join('\n')}
`,
);
console.log(`docs/errors.md: ${rows.length} codes`);

const nfsDir = new URL('../docs/nfs/', import.meta.url);
mkdirSync(nfsDir, { recursive: true });
const nfs = await loadBuiltinNfs(new URL('../dist/nfs/', import.meta.url));
const pages = new Set(['README.md']);
for (const { folder, definition } of nfs) {
  const page = `${definition.name}.md`;
  pages.add(page);
  writeFileSync(
    new URL(page, nfsDir),
    await renderNfReference(definition, { source: `nfs/${folder}/index.ts` }),
  );
}
writeFileSync(new URL('README.md', nfsDir), await renderNfIndex(nfs.map((nf) => nf.definition)));
// A page whose NF is gone is removed, so the folder lists exactly the built-in NFs.
for (const name of readdirSync(nfsDir).sort())
  if (name.endsWith('.md') && !pages.has(name)) rmSync(new URL(name, nfsDir));
console.log(`docs/nfs: ${nfs.map((nf) => nf.definition.name).join(', ')} and README.md`);
