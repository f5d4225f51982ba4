/**
 * The built-in NFs as images: `builtin/<name>` in a deployment is built from nfvisor's own
 * compiled NF (`nfs/<name>/index.js`, with the SDK and wire formats it imports) into an image in
 * the store the first time it is used, exactly as `nfvisor image build` builds a third-party NF,
 * and runs from there in the guest sandbox like any image. The image is tagged
 * `builtin/<name>:src-<fingerprint>`, where the fingerprint is a hash of the compiled sources it
 * can include, so a rebuilt nfvisor gets a new image and an unchanged one reuses the stored image
 * (its bytes are still hashed against the digest before use). `nfvisor image ls` lists them with
 * their digests.
 *
 * Built-in images are not signed: they are made on this host from the code that is running it.
 *
 * @example
 * const { moduleUrl, script, digest } = await builtinImage('firewall', ImageStore.defaultRoot());
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NfvError } from '../errors.js';
import { buildImage } from './build-image.js';
import { ImageStore } from './image-store.js';
import { SDK_API_VERSION, type ImageManifest } from './manifest.js';
import { resolveImage } from './resolve-image.js';

/** dist/src/image → dist/nfs, dist/src/sdk, dist/src/packet. */
const NFS_ROOT = new URL('../../nfs/', import.meta.url);
const SHARED_SOURCES = [new URL('../sdk/', import.meta.url), new URL('../packet/', import.meta.url)];

export interface BuiltinImage {
  ref: string;
  digest: string;
  moduleUrl: string;
  script: string;
  manifest: ImageManifest;
}

/** Per process and store: the image of each built-in, once found or built. */
const cache = new Map<string, Promise<BuiltinImage>>();

/** The compiled modules of a folder (no tests, maps or declarations), in name order. */
async function compiledFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir)).filter(
    (n) => n.endsWith('.js') && !n.endsWith('.test.js') && !n.endsWith('.bench.js'),
  );
  return names.sort().map((n) => join(dir, n));
}

/** A hash of everything the built-in's bundle can contain, and the SDK API it is built for. */
async function fingerprint(name: string): Promise<string> {
  const hash = createHash('sha256').update(`sdk-api ${SDK_API_VERSION}\n`);
  const dirs = [fileURLToPath(new URL(`${name}/`, NFS_ROOT)), ...SHARED_SOURCES.map((u) => fileURLToPath(u))];
  for (const dir of dirs)
    for (const file of await compiledFiles(dir)) hash.update(`${file}\n`).update(await readFile(file));
  return hash.digest('hex').slice(0, 16);
}

async function findOrBuild(name: string, store: string): Promise<BuiltinImage> {
  const source = fileURLToPath(new URL(`${name}/`, NFS_ROOT));
  if (!existsSync(join(source, 'index.js')))
    throw new NfvError('NFV_ERR_IMAGE_NOT_FOUND', `no built-in NF "${name}" (${source} has no index.js)`);
  const fp = await fingerprint(name);
  const ref = `builtin/${name}:src-${fp}`;
  const images = new ImageStore(store);
  const stored = await images.resolve(ref).catch(() => undefined);
  if (stored === undefined) {
    const built = await buildImage(source, {
      entry: 'index.js',
      version: `${SDK_API_VERSION}.0.0-src.${fp}`,
    });
    await images.tag(ref, await images.putImage(built.bytes));
  }
  // Every check of any image (digest, manifest, name, SDK API, imports) except the signature.
  const resolved = await resolveImage(ref, { store, allowUnsigned: true });
  return { ref, ...resolved };
}

/**
 * The image of built-in NF `name` in `store`, built on first use (see the header). Throws
 * NFV_ERR_IMAGE_NOT_FOUND for a name nfvisor does not ship.
 */
export function builtinImage(name: string, store: string): Promise<BuiltinImage> {
  const key = `${store}\n${name}`;
  let image = cache.get(key);
  if (image === undefined) {
    image = findOrBuild(name, store);
    image.catch(() => cache.delete(key));
    cache.set(key, image);
  }
  return image;
}
