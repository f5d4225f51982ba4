import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isNfvError, type ErrorCode } from '../errors.js';
import { buildImage } from './build-image.js';
import { encodeImage, imageDigest } from './image-blob.js';
import { ImageStore } from './image-store.js';
import { IMPORT_SCANNER } from './bundle-imports.js';
import { resolveImage, verifyImage } from './resolve-image.js';
import { generateSigningKey, signImage, type SigningKey } from './signing.js';
import { TrustPolicy } from './trust-policy.js';

/** A tiny NF source folder; `body` goes at the top of the module. */
async function nfSource(
  root: string,
  name: string,
  version: string,
  body = '',
  pkgExtra = {},
): Promise<string> {
  const dir = join(root, `${name}-${version}-${Math.random().toString(16).slice(2)}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ version, ...pkgExtra }));
  await writeFile(
    join(dir, 'index.js'),
    `import { defineNf } from 'nfvisor/sdk';\n${body}\nexport default defineNf({ name: '${name}', summary: 'test NF', ` +
      `outputs: ['out'], drops: { bad: 'never' }, counters: { seen: { unit: 'packets', description: 'seen' } }, config: {}, ` +
      `create(_c, ctx) { const seen = ctx.counter('seen'); return { process(b) { ctx.counters[seen] += b.count; } }; } });\n`,
  );
  return dir;
}

async function rejects(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isNfvError(e, code), `expected ${code}, got ${String(e)}`);
    return true;
  });
}

describe('image verification', () => {
  let root: string;
  let storeDir: string;
  let store: ImageStore;
  let key: SigningKey;
  let otherKey: SigningKey;
  let policy: TrustPolicy;

  /** Builds, stores, tags (and signs for `signName`) an image of NF `name`. */
  async function add(
    name: string,
    version: string,
    tag: string,
    signWith: SigningKey | null = key,
    signName?: string,
  ) {
    const built = await buildImage(await nfSource(root, name, version));
    const digest = await store.putImage(built.bytes);
    await store.tag(tag, digest);
    if (signWith)
      await store.addSignature(
        digest,
        signImage(signWith.privateKey, digest, signName ?? tag.split(':')[0], version),
      );
    return digest;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'nfvisor-image-test-'));
    storeDir = join(root, 'store');
    store = new ImageStore(storeDir);
    key = generateSigningKey();
    otherKey = generateSigningKey();
    policy = new TrustPolicy([{ id: key.keyId, key: key.publicKey, names: ['acme/*'] }]);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('a signed image by a trusted key resolves to an importable NF declaration', async () => {
    const digest = await add('good', '1.0.0', 'acme/good:1.0.0');
    const resolved = await resolveImage('acme/good:1.0.0', { store: storeDir, policy });
    assert.equal(resolved.digest, digest);
    assert.equal(resolved.manifest.name, 'good');
    const module = (await import(resolved.moduleUrl)) as { default: { name: string; create: unknown } };
    assert.equal(module.default.name, 'good');
    assert.equal(typeof module.default.create, 'function');
    const byDigest = await resolveImage(`acme/good@${digest}`, { store: storeDir, policy });
    assert.equal(byDigest.moduleUrl, resolved.moduleUrl);
  });

  it('the same source builds to the same digest', async () => {
    const dir = await nfSource(root, 'same', '1.0.0');
    assert.equal((await buildImage(dir)).digest, (await buildImage(dir)).digest);
  });

  it('a tampered byte is refused (digest)', async () => {
    const digest = await add('tamper', '1.0.0', 'acme/tamper:1.0.0');
    const path = store.blobPath(digest);
    const bytes = await readFile(path);
    bytes[bytes.length - 3] ^= 0x01;
    await chmod(path, 0o644);
    await writeFile(path, bytes);
    await rejects(resolveImage('acme/tamper:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_DIGEST');
  });

  it('a key the policy does not hold is refused (untrusted)', async () => {
    await add('wrongkey', '1.0.0', 'acme/wrongkey:1.0.0', otherKey);
    await rejects(
      resolveImage('acme/wrongkey:1.0.0', { store: storeDir, policy }),
      'NFV_ERR_IMAGE_UNTRUSTED',
    );
  });

  it('a trusted key outside its name patterns is refused (untrusted)', async () => {
    await add('elsewhere', '1.0.0', 'other/elsewhere:1.0.0', key);
    await rejects(
      resolveImage('other/elsewhere:1.0.0', { store: storeDir, policy }),
      'NFV_ERR_IMAGE_UNTRUSTED',
    );
  });

  it('a forged signature under a trusted key id is refused (signature)', async () => {
    const digest = await add('forged', '1.0.0', 'acme/forged:1.0.0', null);
    const sig = signImage(otherKey.privateKey, digest, 'acme/forged', '1.0.0');
    await store.addSignature(digest, { ...sig, keyId: key.keyId });
    await rejects(resolveImage('acme/forged:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_SIGNATURE');
  });

  it('a valid signature moved onto another digest is refused (transplant)', async () => {
    const signed = await add('victim', '1.0.0', 'acme/victim:1.0.0');
    const other = await add('victim', '1.0.1', 'acme/victim:evil', null);
    const sigDir = store.signatureDir(signed);
    await mkdir(store.signatureDir(other), { recursive: true });
    for (const f of await readdir(sigDir))
      await writeFile(join(store.signatureDir(other), f), await readFile(join(sigDir, f)));
    await rejects(
      resolveImage('acme/victim:evil', { store: storeDir, policy }),
      'NFV_ERR_IMAGE_SIGNATURE_DIGEST',
    );
  });

  it('a manifest name that is not the referred name is refused, and so is a signature for another name', async () => {
    const digest = await add('real', '1.0.0', 'acme/real:1.0.0');
    await store.tag('acme/fake:1.0.0', digest);
    await rejects(resolveImage('acme/fake:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_NAME');
    await add('renamed', '1.0.0', 'acme/renamed:1.0.0', key, 'acme/something-else');
    await rejects(resolveImage('acme/renamed:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_NAME');
  });

  it('an unsigned image is refused unless unsigned images are explicitly allowed', async () => {
    await add('unsigned', '1.0.0', 'acme/unsigned:1.0.0', null);
    await rejects(resolveImage('acme/unsigned:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_UNSIGNED');
    const ok = await resolveImage('acme/unsigned:1.0.0', { store: storeDir, allowUnsigned: true });
    assert.equal(ok.manifest.name, 'unsigned');
  });

  it('an older version than one verified before is refused unless rollback is allowed', async () => {
    await add('roll', '1.2.0', 'acme/roll:1.2.0');
    await add('roll', '1.10.0', 'acme/roll:1.10.0');
    await resolveImage('acme/roll:1.2.0', { store: storeDir, policy });
    await resolveImage('acme/roll:1.10.0', { store: storeDir, policy });
    await rejects(resolveImage('acme/roll:1.2.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_ROLLBACK');
    await resolveImage('acme/roll:1.2.0', { store: storeDir, policy, allowRollback: true });
    assert.equal(await store.highestVerified('acme/roll'), '1.10.0');
  });

  it('an SDK API version this host does not run is refused', async () => {
    const built = await buildImage(await nfSource(root, 'future', '1.0.0'));
    const bytes = encodeImage({ ...built.manifest, sdkApiVersion: 99 }, built.bundle);
    const digest = await store.putImage(bytes);
    await store.tag('acme/future:1.0.0', digest);
    await store.addSignature(digest, signImage(key.privateKey, digest, 'acme/future'));
    await rejects(
      resolveImage('acme/future:1.0.0', { store: storeDir, policy }),
      'NFV_ERR_IMAGE_SDK_VERSION',
    );
  });

  it('a bundle importing node:fs is refused at build unless the capability is requested', async () => {
    const dir = await nfSource(
      root,
      'reader',
      '1.0.0',
      `import { readFileSync } from 'node:fs';\nexport const r = readFileSync;`,
    );
    await rejects(buildImage(dir), 'NFV_ERR_IMAGE_CAPABILITY');
    const built = await buildImage(dir, { capabilities: ['fs'] });
    assert.deepEqual(built.imports, ['node:fs']);
  });

  it('an image whose code imports net or child_process beyond its manifest is refused at verify', async () => {
    for (const [module, name] of [
      ['node:net', 'sneaky-net'],
      ['child_process', 'sneaky-proc'],
    ]) {
      const dir = await nfSource(root, name, '1.0.0', `import * as m from '${module}';\nexport const x = m;`);
      const built = await buildImage(dir, { capabilities: ['net', 'child_process'] });
      // Re-encode with the capability removed from the manifest: the code still imports the module.
      const bytes = encodeImage({ ...built.manifest, capabilities: [] }, built.bundle);
      const digest = await store.putImage(bytes);
      await store.tag(`acme/${name}:1.0.0`, digest);
      await store.addSignature(digest, signImage(key.privateKey, digest, `acme/${name}`));
      await rejects(
        resolveImage(`acme/${name}:1.0.0`, { store: storeDir, policy }),
        'NFV_ERR_IMAGE_CAPABILITY',
      );
    }
  });

  it("a verified image's import scan is recorded under its digest and judged anew when reused", async () => {
    const dir = await nfSource(
      root,
      'recorded-net',
      '1.0.0',
      `import * as m from 'node:net';\nexport const x = m;`,
    );
    const built = await buildImage(dir, { capabilities: ['net'] });
    const digest = await store.putImage(built.bytes);
    await store.tag('acme/recorded-net:1.0.0', digest);
    await store.addSignature(digest, signImage(key.privateKey, digest, 'acme/recorded-net'));
    await verifyImage('acme/recorded-net:1.0.0', { store: storeDir, policy });
    assert.deepEqual(await store.recordedImports(digest, IMPORT_SCANNER), ['node:net']);
    assert.equal(await store.recordedImports(digest, 'another scanner'), undefined);

    // The same code with the capability taken out of its manifest is another digest: a record that
    // says it imports nothing is not used when it names another digest, another scanner or another
    // format version, and the bundle is scanned again.
    const bytes = encodeImage({ ...built.manifest, capabilities: [] }, built.bundle);
    const stripped = await store.putImage(bytes);
    await store.tag('acme/recorded-net:1.0.1', stripped);
    await store.addSignature(stripped, signImage(key.privateKey, stripped, 'acme/recorded-net'));
    const record = (d: string) => join(storeDir, 'unpacked', d.slice('sha256:'.length), 'imports.json');
    await mkdir(join(record(stripped), '..'), { recursive: true });
    const forged = (d: string, scanner: string, version = 1) =>
      `${JSON.stringify({ version, digest: d, scanner, imports: [] })}\n`;
    for (const text of [
      forged(digest, IMPORT_SCANNER),
      forged(stripped, 'x'),
      forged(stripped, IMPORT_SCANNER, 2),
    ]) {
      await writeFile(record(stripped), text);
      await rejects(
        verifyImage('acme/recorded-net:1.0.1', { store: storeDir, policy }),
        'NFV_ERR_IMAGE_CAPABILITY',
      );
    }

    // A record is used: one that lists node:fs makes the image it names ask for fs.
    const good = await add('recorded-fs', '1.0.0', 'acme/recorded-fs:1.0.0');
    await verifyImage('acme/recorded-fs:1.0.0', { store: storeDir, policy });
    await rm(record(good), { force: true });
    await writeFile(
      record(good),
      `${JSON.stringify({ version: 1, digest: good, scanner: IMPORT_SCANNER, imports: ['node:fs'] })}\n`,
    );
    await rejects(
      verifyImage('acme/recorded-fs:1.0.0', { store: storeDir, policy }),
      'NFV_ERR_IMAGE_CAPABILITY',
    );
  });

  it('a missing tag or digest is not found; a malformed reference is invalid', async () => {
    await rejects(verifyImage('acme/nothing:1.0.0', { store: storeDir, policy }), 'NFV_ERR_IMAGE_NOT_FOUND');
    await rejects(
      verifyImage(`sha256:${'0'.repeat(64)}`, { store: storeDir, policy }),
      'NFV_ERR_IMAGE_NOT_FOUND',
    );
    await rejects(verifyImage('Bad Name', { store: storeDir, policy }), 'NFV_ERR_IMAGE_INVALID');
  });

  it('the image bytes digest is the sha256 of the canonical serialization', async () => {
    const built = await buildImage(await nfSource(root, 'canon', '1.0.0'));
    assert.equal(built.digest, imageDigest(encodeImage(built.manifest, built.bundle)));
  });
});
