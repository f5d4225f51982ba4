/**
 * The image store on disk: content-addressed image blobs, tags, signatures beside each image, and
 * the highest version verified per name (for the rollback check).
 *
 *   <root>/blobs/sha256/<hex>                 image bytes (image-blob.ts); the file name is their digest
 *   <root>/signatures/sha256-<hex>/<k>.sig    signatures of that image, one per key (k = key id hex)
 *   <root>/index.json                         {"version":1,"tags":{"name:tag":"sha256:…"}}
 *   <root>/verified.json                      {"version":1,"highest":{"name":"1.2.0"}}
 *   <root>/index.lock                         held while index.json or verified.json change
 *   <root>/unpacked/<hex>/index.mjs           a verified image's module, for import()
 *   <root>/unpacked/<hex>/index.cjs           the same code as a CommonJS script, for the guest
 *                                             sandbox (src/host/guest-sandbox.ts)
 *   <root>/unpacked/<hex>/imports.json        the modules a verified image's code imports, as the
 *                                             verifier's scan found them (recordImports)
 *
 * Every file is written whole to a temporary name, fsynced and renamed (atomic-file.ts), so a
 * crash never leaves half a blob under a digest; index changes are read-modify-write under the
 * lock, so concurrent `tag`s from several processes all land. A blob is only read through its
 * digest check (the verifier's), never trusted because of its file name.
 *
 * @example
 * const store = new ImageStore(ImageStore.defaultRoot());
 * const digest = await store.putImage(bytes);
 * await store.tag('acme/dns-blocklist:1.0.0', digest);
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NfvError } from '../errors.js';
import { ioError, withLock, writeFileAtomic } from './atomic-file.js';
import { decodeImage, imageDigest, isDigest, MAX_IMAGE_BYTES } from './image-blob.js';
import { DEFAULT_TAG, formatImageRef, parseImageRef, type ImageRef } from './image-ref.js';
import { IMAGE_ENTRY, type ImageManifest } from './manifest.js';
import { parseSignature, type ImageSignature } from './signing.js';

interface IndexFile {
  version: 1;
  tags: Record<string, string>;
}

interface VerifiedFile {
  version: 1;
  highest: Record<string, string>;
}

export interface StoredImage {
  digest: string;
  /** Tags (`name:tag`) that point at it, sorted. */
  tags: string[];
  manifest: ImageManifest;
  bytes: number;
  signatures: number;
}

export interface SignatureFile {
  file: string;
  /** Undefined when the file is not a signature document. */
  signature?: ImageSignature;
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

export class ImageStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** `$NFVISOR_HOME/images`, else `~/.nfvisor/images`. */
  static defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
    return join(ImageStore.home(env), 'images');
  }

  /** `$NFVISOR_HOME`, else `~/.nfvisor`. */
  static home(env: NodeJS.ProcessEnv = process.env): string {
    return env.NFVISOR_HOME !== undefined && env.NFVISOR_HOME !== ''
      ? env.NFVISOR_HOME
      : join(homedir(), '.nfvisor');
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', hexOf(digest));
  }

  signatureDir(digest: string): string {
    return join(this.root, 'signatures', `sha256-${hexOf(digest)}`);
  }

  private get indexPath(): string {
    return join(this.root, 'index.json');
  }

  private get verifiedPath(): string {
    return join(this.root, 'verified.json');
  }

  private get lockPath(): string {
    return join(this.root, 'index.lock');
  }

  private async ensureDir(dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw ioError('cannot create directory', dir, e);
    }
  }

  /** Stores image bytes (checked to decode as an image); returns their digest. */
  async putImage(bytes: Uint8Array): Promise<string> {
    if (bytes.length > MAX_IMAGE_BYTES)
      throw new NfvError('NFV_ERR_IMAGE_INVALID', `image larger than ${MAX_IMAGE_BYTES} bytes`);
    decodeImage(bytes);
    const digest = imageDigest(bytes);
    const path = this.blobPath(digest);
    await this.ensureDir(join(this.root, 'blobs', 'sha256'));
    if (!existsSync(path)) await writeFileAtomic(path, bytes, 0o444);
    return digest;
  }

  /** The stored bytes of `digest` (not yet checked against it); NFV_ERR_IMAGE_NOT_FOUND when absent. */
  async readBlob(digest: string): Promise<Uint8Array> {
    const path = this.blobPath(digest);
    try {
      return await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new NfvError('NFV_ERR_IMAGE_NOT_FOUND', `no image ${digest} in ${this.root}`, { file: path });
      throw ioError('cannot read image', path, e);
    }
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Tag → digest, as stored now. */
  async tags(): Promise<Record<string, string>> {
    return (await this.readIndex()).tags;
  }

  private async readIndex(): Promise<IndexFile> {
    return this.readJson<IndexFile>(this.indexPath, { version: 1, tags: {} }, (raw) => {
      const doc = raw as IndexFile;
      return doc?.version === 1 && typeof doc.tags === 'object' && doc.tags !== null;
    });
  }

  private async readJson<T>(path: string, empty: T, valid: (raw: unknown) => boolean): Promise<T> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(empty);
      throw ioError('cannot read', path, e);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
    if (!valid(raw)) throw new NfvError('NFV_ERR_IMAGE_INVALID', 'store file is malformed', { file: path });
    return raw as T;
  }

  /** Changes index.json under the lock. */
  private async updateIndex<T>(change: (index: IndexFile) => T): Promise<T> {
    await this.ensureDir(this.root);
    return withLock(this.lockPath, async () => {
      const index = await this.readIndex();
      const result = change(index);
      await writeFileAtomic(this.indexPath, `${JSON.stringify(index, null, 2)}\n`);
      return result;
    });
  }

  /** Points `name:tag` at `digest` (which must be stored). */
  async tag(ref: string, digest: string): Promise<void> {
    const parsed = parseImageRef(ref);
    if (parsed.name === undefined || parsed.digest !== undefined)
      throw new NfvError('NFV_ERR_IMAGE_INVALID', `a tag is name:tag, not ${JSON.stringify(ref)}`);
    if (!isDigest(digest) || !this.hasBlob(digest))
      throw new NfvError('NFV_ERR_IMAGE_NOT_FOUND', `no image ${digest} in ${this.root}`);
    const key = formatImageRef(parsed);
    await this.updateIndex((index) => {
      index.tags[key] = digest;
    });
  }

  /**
   * The digest a reference stands for and the repository name it carries (undefined for a bare
   * digest). NFV_ERR_IMAGE_NOT_FOUND when the tag is unknown or the blob is missing.
   */
  async resolve(ref: string | ImageRef): Promise<{ digest: string; name?: string; ref: ImageRef }> {
    const parsed = typeof ref === 'string' ? parseImageRef(ref) : ref;
    let digest = parsed.digest;
    if (digest === undefined) {
      const key = formatImageRef({ name: parsed.name, tag: parsed.tag ?? DEFAULT_TAG });
      digest = (await this.tags())[key];
      if (digest === undefined)
        throw new NfvError('NFV_ERR_IMAGE_NOT_FOUND', `no image tagged ${key} in ${this.root}`);
    }
    if (!this.hasBlob(digest))
      throw new NfvError('NFV_ERR_IMAGE_NOT_FOUND', `no image ${digest} in ${this.root}`, {
        file: this.blobPath(digest),
      });
    return { digest, name: parsed.name, ref: parsed };
  }

  /**
   * Removes a tag; the image itself (blob, signatures, unpacked module) goes when no tag points at
   * it any more. A digest reference removes every tag pointing at it and the image.
   */
  async remove(ref: string): Promise<{ untagged: string[]; deleted?: string }> {
    const parsed = parseImageRef(ref);
    const { digest } = await this.resolve(parsed).catch((e: unknown) => {
      if (parsed.digest !== undefined) return { digest: parsed.digest };
      throw e;
    });
    const untagged: string[] = [];
    const orphan = await this.updateIndex((index) => {
      for (const [tag, d] of Object.entries(index.tags)) {
        const matches =
          parsed.digest !== undefined
            ? d === digest && (parsed.name === undefined || tag.startsWith(`${parsed.name}:`))
            : tag === formatImageRef(parsed);
        if (matches) {
          delete index.tags[tag];
          untagged.push(tag);
        }
      }
      return !Object.values(index.tags).includes(digest);
    });
    if (!orphan) return { untagged };
    await rm(this.blobPath(digest), { force: true });
    await rm(this.signatureDir(digest), { recursive: true, force: true });
    await rm(join(this.root, 'unpacked', hexOf(digest)), { recursive: true, force: true });
    return { untagged, deleted: digest };
  }

  /** Every stored image with its tags (digest order). Blobs that do not decode are skipped. */
  async list(): Promise<StoredImage[]> {
    const tags = await this.tags();
    let names: string[];
    try {
      names = await readdir(join(this.root, 'blobs', 'sha256'));
    } catch {
      return [];
    }
    const out: StoredImage[] = [];
    for (const hex of names.filter((n) => /^[0-9a-f]{64}$/.test(n)).sort()) {
      const digest = `sha256:${hex}`;
      try {
        const bytes = await this.readBlob(digest);
        const { manifest } = decodeImage(bytes);
        out.push({
          digest,
          tags: Object.entries(tags)
            .filter(([, d]) => d === digest)
            .map(([t]) => t)
            .sort(),
          manifest,
          bytes: bytes.length,
          signatures: (await this.signatures(digest)).length,
        });
      } catch {
        // A damaged blob is reported by inspect/verify, not listed.
      }
    }
    return out;
  }

  /** Stores a signature of `digest` (one per key: a new one from the same key replaces it). */
  async addSignature(digest: string, signature: ImageSignature): Promise<string> {
    const dir = this.signatureDir(digest);
    await this.ensureDir(dir);
    const file = join(dir, `${hexOf(signature.keyId)}.sig`);
    await writeFileAtomic(file, `${JSON.stringify(signature, null, 2)}\n`);
    return file;
  }

  /** The signature files stored beside `digest`. */
  async signatures(digest: string): Promise<SignatureFile[]> {
    const dir = this.signatureDir(digest);
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.sig')).sort();
    } catch {
      return [];
    }
    const out: SignatureFile[] = [];
    for (const name of names) {
      const file = join(dir, name);
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(file, 'utf8'));
      } catch {
        raw = undefined;
      }
      out.push({ file, signature: parseSignature(raw) });
    }
    return out;
  }

  /** The highest version of `name` verified in this store before, if any. */
  async highestVerified(name: string): Promise<string | undefined> {
    return (await this.readVerified()).highest[name];
  }

  private async readVerified(): Promise<VerifiedFile> {
    return this.readJson<VerifiedFile>(this.verifiedPath, { version: 1, highest: {} }, (raw) => {
      const doc = raw as VerifiedFile;
      return doc?.version === 1 && typeof doc.highest === 'object' && doc.highest !== null;
    });
  }

  /**
   * Under the store lock: calls `check(highest)` with the highest version of `name` verified
   * before, then records `version` if it is higher (`isHigher(version, highest)`).
   */
  async checkAndRecordVersion(
    name: string,
    version: string,
    check: (highest: string | undefined) => void,
    isHigher: (a: string, b: string) => boolean,
    record: boolean,
  ): Promise<void> {
    await this.ensureDir(this.root);
    await withLock(this.lockPath, async () => {
      const verified = await this.readVerified();
      const highest = verified.highest[name];
      check(highest);
      if (record && (highest === undefined || isHigher(version, highest))) {
        verified.highest[name] = version;
        await writeFileAtomic(this.verifiedPath, `${JSON.stringify(verified, null, 2)}\n`);
      }
    });
  }

  private importsPath(digest: string): string {
    return join(this.root, 'unpacked', hexOf(digest), 'imports.json');
  }

  /**
   * The imports `recordImports` stored for `digest` with the same `scanner`; undefined when there
   * are none, they came from another scanner or the file is not what `recordImports` writes.
   *
   * Who can write this file: whoever can write the store, and only they. The store directory is
   * the trust boundary of everything in it: a writer of the store can already change what runs —
   * `unpack` keeps an existing index.cjs beside unchanged index.mjs bytes, verified.json holds the
   * rollback floor, and an unsigned image is one `tag` away for a deployment that allows those —
   * so a record here gives them nothing new (were any of those closed, this would need a key the
   * store's writers do not hold). It must not live anywhere more people can write (a
   * shared temporary or cache directory), and it records only facts about the bytes of one digest,
   * which the verifier has hashed before asking: the verdict (`uncoveredImports` against the
   * manifest's capabilities) is computed again on every verification, under this nfvisor's rules.
   */
  async recordedImports(digest: string, scanner: string): Promise<string[] | undefined> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(this.importsPath(digest), 'utf8'));
    } catch {
      return undefined;
    }
    const doc = raw as { version?: unknown; digest?: unknown; scanner?: unknown; imports?: unknown };
    if (
      doc?.version !== 1 ||
      doc.digest !== digest ||
      doc.scanner !== scanner ||
      !Array.isArray(doc.imports) ||
      !doc.imports.every((i) => typeof i === 'string')
    )
      return undefined;
    return doc.imports;
  }

  /**
   * Records what `scanner` found `digest`'s code to import, for `recordedImports`. Only for an
   * image that passed every check; a store that cannot take the file only loses the shortcut.
   */
  async recordImports(digest: string, scanner: string, imports: readonly string[]): Promise<void> {
    const file = this.importsPath(digest);
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, `${JSON.stringify({ version: 1, digest, scanner, imports })}\n`, 0o444);
    } catch {
      // Verification passed; the next one scans the bundle again.
    }
  }

  /**
   * Writes a verified bundle where `import()` can load it and returns its file URL. The file is
   * rewritten unless it already holds exactly these bytes, so a changed file on disk is replaced
   * by the verified content.
   */
  async unpack(digest: string, bundle: Uint8Array): Promise<{ moduleUrl: string; script: string }> {
    const dir = join(this.root, 'unpacked', hexOf(digest));
    const file = join(dir, IMAGE_ENTRY);
    const current = await readFile(file).catch(() => undefined);
    const script = join(dir, SANDBOX_SCRIPT);
    if (current === undefined || !Buffer.from(bundle).equals(current) || !existsSync(script)) {
      await this.ensureDir(dir);
      await writeFileAtomic(file, bundle, 0o444);
      await writeFileAtomic(script, await sandboxScript(bundle, file), 0o444);
    }
    return { moduleUrl: pathToFileURL(file).href, script };
  }
}

/** The file name of an unpacked image's CommonJS form. */
const SANDBOX_SCRIPT = 'index.cjs';

/**
 * The bundle (an ES module) as a CommonJS script for the guest sandbox: imports become calls of
 * the sandbox's `require`, and so does every `import()`, so a module name computed at run time
 * goes through the same check (and count) as any other.
 */
async function sandboxScript(bundle: Uint8Array, file: string): Promise<Uint8Array> {
  // Loaded here, not at the top: a start whose images are unpacked already never needs esbuild.
  const { transform } = await import('esbuild');
  try {
    const { code } = await transform(Buffer.from(bundle).toString('utf8'), {
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      supported: { 'dynamic-import': false },
      charset: 'utf8',
      legalComments: 'inline',
      logLevel: 'silent',
    });
    return Buffer.from(code, 'utf8');
  } catch (e) {
    throw new NfvError('NFV_ERR_IMAGE_INVALID', `the image's code does not parse`, { file }, { cause: e });
  }
}
