/**
 * The modules a bundled image imports, read back from its code: esbuild re-parses the bundle
 * (import statements and dynamic `import("…")` with a literal), and a scan adds every
 * `require("…")` with a literal (esbuild's ESM output calls `__require("…")` for a CommonJS
 * dependency's `require`). Used by the verifier, which has the bundle but not the build's metafile.
 *
 * @example
 * await bundleImports(Buffer.from('import fs from "node:fs"; export default 1;')); // ['node:fs']
 */
import { build } from 'esbuild';
import { NfvError } from '../errors.js';

const REQUIRE_CALL = /\brequire\s*\(\s*(["'])([^"'\n]+)\1\s*\)/g;

export async function bundleImports(bundle: Uint8Array): Promise<string[]> {
  const code = Buffer.from(bundle).toString('utf8');
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
