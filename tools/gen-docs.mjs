#!/usr/bin/env node
// Regenerates the generated reference pages from the compiled code (run `npm run build` first):
//   docs/errors.md  from the error registry in src/errors.ts
// A unit test fails when a page is out of step, so run `npm run docs` after changing a source.
import { writeFileSync } from 'node:fs';

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
