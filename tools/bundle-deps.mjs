#!/usr/bin/env node
// Replaces tsc's output of the modules that re-export a dependency with one bundled file of the same
// exports each, so a CLI start loads one file instead of the package's many (run by `npm run build`
// after tsc):
//   dist/src/deploy/typebox.js  @sinclair/typebox, ~250 ES modules: 80–140 ms → ~13 ms;
//   dist/src/deploy/yaml.js     yaml, ~40 CommonJS files: ~43 ms → 15–24 ms.
// And the guest runtime, every guest's entry module: dist/src/host/guest-runtime.js with the ~30
// modules it imports in one file, so each guest worker loads one module instead of the graph (it
// loads them in every isolate). On the 2-core VM, 2026-12-07 ~16:20: fw → NAT → LB guests ready
// 243–304 → 162–214 ms after the host's run began (3 pairs); `nfvisor run` of a 10-packet pcap
// through fw → NAT guests, start to exit, 527–540 → 488–502 ms (5 interleaved pairs). Its own
// `import.meta.url` (guest-sandbox.ts's createRequire) names the same directory, so what it
// resolves is unchanged.
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

const guestRuntime = fileURLToPath(new URL('../dist/src/host/guest-runtime.js', import.meta.url));
buildSync({
  entryPoints: [guestRuntime],
  outfile: guestRuntime,
  allowOverwrite: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Its packages (none today) would stay imports: the bundle is nfvisor's own modules.
  packages: 'external',
  logLevel: 'warning',
});
