#!/usr/bin/env node
// Replaces dist/src/deploy/typebox.js (tsc's re-export of @sinclair/typebox) with one bundled file
// of the same exports: the package's ~250 ES modules cost every CLI start 80–140 ms to load, the
// bundle ~13 ms (see src/deploy/typebox.ts). Run by `npm run build` after tsc.
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

const target = fileURLToPath(new URL('../dist/src/deploy/typebox.js', import.meta.url));
buildSync({
  entryPoints: [target],
  outfile: target,
  allowOverwrite: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
