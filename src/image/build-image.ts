/**
 * Builds an NF image from a source folder: esbuild bundles the NF's entry module and everything
 * it imports (SDK and wire formats included) into one ES module, so the image never needs
 * node_modules at run time; the bundle's Node built-in imports are checked against the
 * capabilities the NF asks for; the bundle is loaded once to read its `defineNf` declaration,
 * whose outputs, drops, counters and config schema go into the manifest.
 *
 * The folder:
 *   index.ts | index.js | src/index.ts      the entry (or package.json "nfvisor.entry")
 *   package.json                           optional: "version", and "nfvisor": { "capabilities":
 *                                          [...], "heapMb": 64, "entry": "..." }
 *
 * NF code imports the SDK as `nfvisor/sdk` and wire formats as `nfvisor/packet/<file>` (for
 * example `nfvisor/packet/udp`); the build maps those to this nfvisor's own modules. Relative
 * imports work as usual (the built-in NFs import `../../src/sdk/index.js`).
 *
 * @example
 * const built = await buildImage('examples/nf-dns-blocklist');
 * const digest = await store.putImage(built.bytes);
 */
import type { Plugin } from 'esbuild';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NfvError } from '../errors.js';
import { CAPABILITIES, describeImportProblems, uncoveredImports, type Capability } from './capabilities.js';
import { encodeImage, imageDigest } from './image-blob.js';
import {
  IMAGE_ENTRY,
  isVersion,
  MANIFEST_SCHEMA_VERSION,
  SDK_API_VERSION,
  type ImageManifest,
} from './manifest.js';

export interface BuildOptions {
  /** Overrides package.json "version" (default 0.0.0 when neither is given). */
  version?: string;
  /** Overrides package.json "nfvisor.capabilities". */
  capabilities?: readonly string[];
  /** Overrides package.json "nfvisor.heapMb" (default 64). */
  heapMb?: number;
  /** The entry file, relative to the folder. */
  entry?: string;
}

export interface BuiltImage {
  manifest: ImageManifest;
  bundle: Uint8Array;
  /** The image's canonical bytes (image-blob.ts) and their digest. */
  bytes: Uint8Array;
  digest: string;
  /** Every module the bundle imports from outside itself (Node built-ins). */
  imports: string[];
}

const DEFAULT_HEAP_MB = 64;
const ENTRY_CANDIDATES = ['index.ts', 'index.mts', 'index.js', 'index.mjs', 'src/index.ts', 'src/index.js'];
const SDK_ROOT = new URL('../sdk/', import.meta.url);
const PACKET_ROOT = new URL('../packet/', import.meta.url);

function buildError(message: string, dir: string, cause?: unknown): NfvError {
  return new NfvError('NFV_ERR_IMAGE_BUILD', message, { file: dir }, { cause });
}

/** Resolves `nfvisor/sdk` and `nfvisor/packet/<file>` to this nfvisor's modules. */
export const sdkAlias: Plugin = {
  name: 'nfvisor-sdk',
  setup(b) {
    b.onResolve({ filter: /^nfvisor(\/|$)/ }, (args) => {
      const sub = args.path.slice('nfvisor'.length);
      let url: URL | undefined;
      if (sub === '/sdk') url = new URL('index.js', SDK_ROOT);
      else if (sub === '/packet') url = new URL('index.js', PACKET_ROOT);
      else if (/^\/packet\/[a-z0-9-]+(\.js)?$/.test(sub))
        url = new URL(`${sub.slice('/packet/'.length).replace(/\.js$/, '')}.js`, PACKET_ROOT);
      const path = url ? fileURLToPath(url) : undefined;
      if (path === undefined || !existsSync(path))
        return {
          errors: [{ text: `nfvisor has no module ${args.path} (use nfvisor/sdk or nfvisor/packet/<file>)` }],
        };
      return { path };
    });
  },
};

interface PackageNfvisor {
  version?: unknown;
  nfvisor?: { capabilities?: unknown; heapMb?: unknown; entry?: unknown };
}

export async function buildImage(dir: string, options: BuildOptions = {}): Promise<BuiltImage> {
  const root = resolve(dir);
  if (!existsSync(root)) throw buildError('no such folder', root);
  let pkg: PackageNfvisor = {};
  const pkgPath = join(root, 'package.json');
  if (existsSync(pkgPath)) {
    try {
      pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as PackageNfvisor;
    } catch (e) {
      throw buildError('package.json is not JSON', pkgPath, e);
    }
  }
  const version = options.version ?? (typeof pkg.version === 'string' ? pkg.version : '0.0.0');
  if (!isVersion(version))
    throw buildError(`version ${JSON.stringify(version)} is not MAJOR.MINOR.PATCH[-pre]`, root);
  const capabilities = [
    ...(options.capabilities ?? (pkg.nfvisor?.capabilities as string[] | undefined) ?? []),
  ];
  for (const c of capabilities)
    if (!(CAPABILITIES as readonly string[]).includes(c))
      throw buildError(`unknown capability ${JSON.stringify(c)} (known: ${CAPABILITIES.join(', ')})`, root);
  const heapMb =
    options.heapMb ?? (typeof pkg.nfvisor?.heapMb === 'number' ? pkg.nfvisor.heapMb : DEFAULT_HEAP_MB);
  const entryName =
    options.entry ??
    (typeof pkg.nfvisor?.entry === 'string'
      ? pkg.nfvisor.entry
      : ENTRY_CANDIDATES.find((c) => existsSync(join(root, c))));
  if (entryName === undefined || !existsSync(join(root, entryName)))
    throw buildError(`no entry module (looked for ${entryName ?? ENTRY_CANDIDATES.join(', ')})`, root);

  // esbuild is loaded when something is built (~50 ms of a start that only runs images).
  const { build } = await import('esbuild');
  let result;
  try {
    result = await build({
      entryPoints: [join(root, entryName)],
      absWorkingDir: root,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      metafile: true,
      outfile: join(root, IMAGE_ENTRY),
      sourcemap: false,
      legalComments: 'inline',
      charset: 'utf8',
      logLevel: 'silent',
      plugins: [sdkAlias],
    });
  } catch (e) {
    const errors =
      (e as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const text = errors
      .map((x) => (x.location ? `${x.location.file}:${x.location.line}: ${x.text}` : x.text))
      .join('; ');
    throw buildError(`bundling failed: ${text || (e as Error).message}`, root, e);
  }
  const output = result.outputFiles.find((f) => f.path.endsWith(IMAGE_ENTRY));
  if (output === undefined) throw buildError('esbuild produced no bundle', root);
  const imports = [
    ...new Set(
      Object.values(result.metafile.outputs).flatMap((o) =>
        o.imports.filter((i) => i.external).map((i) => i.path),
      ),
    ),
  ];
  const problems = uncoveredImports(imports, capabilities);
  if (problems.length > 0)
    throw new NfvError('NFV_ERR_IMAGE_CAPABILITY', `${entryName}: ${describeImportProblems(problems)}`, {
      file: join(root, entryName),
      imports: problems.map((p) => p.module),
    });
  const bundle = output.contents;
  const declaration = await loadDeclaration(bundle, root);
  const manifest: ImageManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    name: declaration.name,
    version,
    sdkApiVersion: SDK_API_VERSION,
    entry: IMAGE_ENTRY,
    summary: declaration.summary,
    outputs: [...declaration.outputs],
    drops: Object.entries(declaration.drops).map(([name, description]) => ({
      name,
      description: String(description),
    })),
    counters: Object.entries(declaration.counters).map(([name, spec]) => {
      const { unit, description } = (spec ?? {}) as { unit?: unknown; description?: unknown };
      return { name, unit: String(unit), description: String(description) };
    }),
    config: jsonCopy(declaration.config, root) as ImageManifest['config'],
    resources: { heapMb },
    capabilities: capabilities as Capability[],
  };
  const bytes = encodeImage(manifest, bundle);
  return { manifest, bundle, bytes, digest: imageDigest(bytes), imports };
}

interface Declaration {
  name: string;
  summary: string;
  outputs: string[];
  drops: Record<string, string>;
  counters: Record<string, unknown>;
  config: Record<string, unknown>;
}

/** Loads the bundle once, in this process, and checks its default export is an NF declaration. */
async function loadDeclaration(bundle: Uint8Array, root: string): Promise<Declaration> {
  const dir = await mkdtemp(join(tmpdir(), 'nfvisor-build-'));
  try {
    const file = join(dir, IMAGE_ENTRY);
    await writeFile(file, bundle);
    let module: { default?: unknown };
    try {
      module = (await import(pathToFileURL(file).href)) as { default?: unknown };
    } catch (e) {
      throw buildError(`the bundle fails to load: ${(e as Error).message}`, root, e);
    }
    return checkDeclaration(module.default, root);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Checks that `value` has the shape of a `defineNf` declaration (it came from a module). */
export function checkDeclaration(value: unknown, where: string): Declaration {
  const d = value as Record<string, unknown> | undefined;
  const ok =
    typeof d === 'object' &&
    d !== null &&
    typeof d.name === 'string' &&
    typeof d.summary === 'string' &&
    Array.isArray(d.outputs) &&
    d.outputs.every((o) => typeof o === 'string') &&
    typeof d.drops === 'object' &&
    d.drops !== null &&
    typeof d.counters === 'object' &&
    d.counters !== null &&
    typeof d.config === 'object' &&
    d.config !== null &&
    typeof d.create === 'function';
  if (!ok) throw buildError('the default export is not a defineNf(...) declaration', where);
  return d as unknown as Declaration;
}

function jsonCopy(value: unknown, root: string): unknown {
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch (e) {
    throw buildError('the declaration does not serialize as JSON', root, e);
  }
}
