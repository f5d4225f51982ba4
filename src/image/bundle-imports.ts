/**
 * The modules a bundled image imports, read back from its code: esbuild re-parses the bundle
 * (import statements and dynamic `import("…")` with a literal), and a scan adds every
 * `require("…")` with a literal (esbuild's ESM output calls `__require("…")` for a CommonJS
 * dependency's `require`). Used by the verifier, which has the bundle but not the build's metafile.
 * A scan takes ~100 ms, most of it starting esbuild's service process; the verifier records each
 * verified image's scan in the store under its digest and `IMPORT_SCANNER` (resolve-image.ts).
 *
 * @example
 * await bundleImports(Buffer.from('import fs from "node:fs"; export default 1;')); // ['node:fs']
 */
import { createRequire } from 'node:module';
import { NfvError } from '../errors.js';

const REQUIRE_CALL = /\brequire\s*\(\s*(["'])([^"'\n]+)\1\s*\)/g;

/**
 * What a scan's result depends on besides the bundle: esbuild's version and this file's rules. A
 * scan recorded under another value is not reused; change `rules` when the build options below change.
 */
export const IMPORT_SCANNER = JSON.stringify({
  esbuild: (createRequire(import.meta.url)('esbuild/package.json') as { version: string }).version,
  require: REQUIRE_CALL.source,
  rules: 1,
});

export async function bundleImports(bundle: Uint8Array): Promise<string[]> {
  const code = Buffer.from(bundle).toString('utf8');
  const { build } = await import('esbuild');
  let result;
  try {
    result = await build({
      stdin: { contents: code, loader: 'js', sourcefile: 'image.mjs' },
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      external: ['*'],
      outfile: 'scan.mjs',
      logLevel: 'silent',
    });
  } catch (e) {
    throw new NfvError(
      'NFV_ERR_IMAGE_INVALID',
      `the image's code does not parse as an ES module`,
      {},
      { cause: e },
    );
  }
  const found = new Set<string>();
  for (const input of Object.values(result.metafile.inputs)) {
    for (const entry of input.imports) if (entry.path !== '<runtime>') found.add(entry.path);
  }
  for (const m of code.matchAll(REQUIRE_CALL)) found.add(m[2]);
  return [...found];
}
