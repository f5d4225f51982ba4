#!/usr/bin/env node
// Replaces tsc's output of the modules that re-export a dependency with one bundled file of the same
// exports each, so a CLI start loads one file instead of the package's many (run by `npm run build`
// after tsc):
//   dist/src/deploy/typebox.js  @sinclair/typebox, ~250 ES modules: 80–140 ms → ~13 ms;
//   dist/src/deploy/yaml.js     yaml, ~40 CommonJS files: ~43 ms → 15–24 ms.
// A CommonJS package bundled as an ES module still calls `require` for Node's built-ins (yaml reads
// `process`): the banner gives the bundle a `require` of its own.
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

for (const module of ['typebox', 'yaml']) {
  const target = fileURLToPath(new URL(`../dist/src/deploy/${module}.js`, import.meta.url));
  buildSync({
    entryPoints: [target],
    outfile: target,
    allowOverwrite: true,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    banner: {
      js: "import { createRequire as __nfvCreateRequire } from 'node:module'; const require = __nfvCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
}
