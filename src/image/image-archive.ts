/**
 * Moving images between hosts: `save` writes one image, its signatures and its tags into a ustar
 * file; `load` reads one into another store. Loading checks that every blob hashes to its name and
 * decodes as an image, but does not judge signatures: that happens when the image is resolved to
 * run, against the receiving host's own trust policy.
 *
 *   nfvisor-image.json                       {"schemaVersion":1,"images":[{"digest":"sha256:…","tags":["name:tag"]}]}
 *   blobs/sha256/<hex>                       image bytes
 *   signatures/sha256-<hex>/<key hex>.sig    its signatures
 *
 * @example
 * await writeFile('dns.tar', await saveImage(storeA, 'acme/dns-blocklist:1.0.0'));
 * await loadImage(storeB, await readFile('dns.tar'));
 */
import { NfvError } from '../errors.js';
import { decodeImage, imageDigest, isDigest, MAX_IMAGE_BYTES } from './image-blob.js';
import { formatImageRef, parseImageRef } from './image-ref.js';
import type { ImageStore } from './image-store.js';
import { parseSignature } from './signing.js';
import { readTar, writeTar, type TarEntry } from './tar.js';

const INDEX = 'nfvisor-image.json';
const BLOB = /^blobs\/sha256\/([0-9a-f]{64})$/;
const SIGNATURE = /^signatures\/sha256-([0-9a-f]{64})\/([0-9a-f]{64})\.sig$/;

interface ArchiveIndex {
  schemaVersion: 1;
  images: { digest: string; tags: string[] }[];
}

/** The archive bytes for `ref`: the image, its signatures, and the tag referred to (or all its tags). */
export async function saveImage(store: ImageStore, ref: string): Promise<Uint8Array> {
  const parsed = parseImageRef(ref);
  const { digest } = await store.resolve(parsed);
  const bytes = await store.readBlob(digest);
  if (imageDigest(bytes) !== digest)
    throw new NfvError(
      'NFV_ERR_IMAGE_DIGEST',
      `image ${digest}: stored content does not hash to its digest`,
      {
        file: store.blobPath(digest),
      },
    );
  const tags =
    parsed.digest === undefined
      ? [formatImageRef(parsed)]
      : Object.entries(await store.tags())
          .filter(([, d]) => d === digest)
          .map(([t]) => t)
          .sort();
  const hex = digest.slice('sha256:'.length);
  const index: ArchiveIndex = { schemaVersion: 1, images: [{ digest, tags }] };
  const entries: TarEntry[] = [
    { name: INDEX, data: Buffer.from(`${JSON.stringify(index, null, 2)}\n`) },
    { name: `blobs/sha256/${hex}`, data: bytes },
  ];
  for (const { signature } of await store.signatures(digest)) {
    if (signature === undefined) continue;
    entries.push({
      name: `signatures/sha256-${hex}/${signature.keyId.slice('sha256:'.length)}.sig`,
      data: Buffer.from(`${JSON.stringify(signature, null, 2)}\n`),
    });
  }
  return writeTar(entries);
}

/** Loads an archive into `store`; returns the images and tags it added. */
export async function loadImage(
  store: ImageStore,
  tar: Uint8Array,
  file?: string,
): Promise<{ digest: string; tags: string[] }[]> {
  const bad = (message: string): never => {
    throw new NfvError('NFV_ERR_IMAGE_INVALID', `archive: ${message}`, file ? { file } : {});
  };
  const entries = readTar(tar, MAX_IMAGE_BYTES * 2, file);
  const byName = new Map<string, Uint8Array>();
  for (const entry of entries) {
    if (entry.name.endsWith('/')) continue;
    if (entry.name !== INDEX && !BLOB.test(entry.name) && !SIGNATURE.test(entry.name))
      bad(`unexpected entry ${entry.name}`);
    if (byName.has(entry.name)) bad(`entry ${entry.name} appears twice`);
    byName.set(entry.name, entry.data);
  }
  const indexBytes = byName.get(INDEX) ?? bad(`no ${INDEX}`);
  let index: ArchiveIndex;
  try {
    index = JSON.parse(Buffer.from(indexBytes).toString('utf8')) as ArchiveIndex;
  } catch {
    return bad(`${INDEX} is not JSON`);
  }
  if (index?.schemaVersion !== 1 || !Array.isArray(index.images)) bad(`${INDEX} is malformed`);
  const loaded: { digest: string; tags: string[] }[] = [];
  for (const image of index.images) {
    if (typeof image?.digest !== 'string' || !isDigest(image.digest) || !Array.isArray(image.tags))
      bad(`${INDEX}: an image entry is malformed`);
    const hex = image.digest.slice('sha256:'.length);
    const bytes = byName.get(`blobs/sha256/${hex}`) ?? bad(`no blob for ${image.digest}`);
    const actual = imageDigest(bytes);
    if (actual !== image.digest)
      throw new NfvError(
        'NFV_ERR_IMAGE_DIGEST',
        `archive: blob ${image.digest} hashes to ${actual}`,
        file ? { file } : {},
      );
    decodeImage(bytes, file);
    await store.putImage(bytes);
    for (const [name, data] of byName) {
      const m = SIGNATURE.exec(name);
      if (!m || m[1] !== hex) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(Buffer.from(data).toString('utf8'));
      } catch {
        raw = undefined;
      }
      const signature = parseSignature(raw) ?? bad(`${name} is not a signature`);
      if (signature.keyId !== `sha256:${m[2]}`) bad(`${name} holds a signature by another key`);
      await store.addSignature(image.digest, signature);
    }
    const tags: string[] = [];
    for (const tag of image.tags) {
      if (typeof tag !== 'string') bad(`${INDEX}: a tag is not a string`);
      await store.tag(tag, image.digest);
      tags.push(tag);
    }
    loaded.push({ digest: image.digest, tags });
  }
  return loaded;
}
