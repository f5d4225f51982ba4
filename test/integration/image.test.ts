/**
 * NF images across "hosts": the third-party example NF (examples/nf-dns-blocklist) is built and
 * signed in one store, saved to a tar, loaded into a fresh store with its own trust policy,
 * resolved and imported there — and gives the same verdicts, bytes and counters as the NF built
 * straight from its source.
 */
import assert from 'node:assert/strict';
import { build } from 'esbuild';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { isNfvError } from '../../src/errors.js';
import {
  buildImage,
  exportKeyPair,
  generateSigningKey,
  ImageStore,
  loadImage,
  readTrustPolicy,
  resolveImage,
  runNfTests,
  saveImage,
  signImage,
  trustKey,
} from '../../src/image/index.js';
import { sdkAlias } from '../../src/image/build-image.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness, type NfDefinition } from '../../src/sdk/index.js';

/** The compiled test sits in <outDir>/test/integration; dist/ is inside the repository. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(process.env.NFVISOR_REPO ?? (await findRepo()), 'examples', 'nf-dns-blocklist');

async function findRepo(): Promise<string> {
  // The sources are in the working directory when the test runs from the repository (npm test),
  // else above dist/.
  for (const candidate of [process.cwd(), REPO]) {
    try {
      await readFile(join(candidate, 'examples', 'nf-dns-blocklist', 'index.ts'));
      return candidate;
    } catch {
      // try the next
    }
  }
  throw new Error('cannot find examples/nf-dns-blocklist (set NFVISOR_REPO)');
}

/** A seeded PRNG (xorshift32): the same frames every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function dnsQuery(names: readonly string[]): Uint8Array {
  const parts: number[] = [0x12, 0x34, 0x01, 0x00, 0, names.length, 0, 0, 0, 0, 0, 0];
  for (const name of names) {
    for (const label of name.split('.')) parts.push(label.length, ...Buffer.from(label, 'ascii'));
    parts.push(0, 0, 1, 0, 1);
  }
  return Uint8Array.from(parts);
}

function udpFrame(payload: Uint8Array, dstPort: number): Uint8Array {
  const l4Length = 8 + payload.length;
  const bytes = new Uint8Array(Math.max(60, 14 + 20 + l4Length));
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    bytes,
  );
  Ipv4Repr.emit(
    {
      src: '192.0.2.7',
      dst: '198.51.100.53',
      protocol: IpProtocol.Udp,
      payloadLength: l4Length,
      dontFragment: false,
      fragmentOffset: 0,
    },
    bytes,
    14,
  );
  bytes.set(payload, 42);
  UdpRepr.emit({ srcPort: 33000, dstPort, payloadLength: payload.length }, bytes, 34, null);
  return bytes;
}

/** Queries for blocked and allowed names, responses, other ports and random garbage to port 53. */
function traffic(count: number): Uint8Array[] {
  const random = rng(20261125);
  const names = [
    'ads.example.com',
    'x.ads.example.com',
    'example.com',
    'tracker.net',
    'a.b.tracker.net',
    'ok.org',
    'news.example.org',
  ];
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const name = names[Math.floor(random() * names.length)];
    if (r < 0.6) frames.push(udpFrame(dnsQuery([name]), 53));
    else if (r < 0.7) frames.push(udpFrame(dnsQuery([name]), 5353));
    else if (r < 0.8) {
      const response = dnsQuery([name]);
      response[2] = 0x81;
      frames.push(udpFrame(response, 53));
    } else {
      const garbage = Uint8Array.from({ length: Math.floor(random() * 40) }, () =>
        Math.floor(random() * 256),
      );
      frames.push(udpFrame(garbage, 53));
    }
  }
  return frames;
}

type Nf = NfDefinition<Record<string, unknown>>;
const CONFIG = { domains: ['ads.example.com', 'tracker.net'] };

function runAll(definition: Nf, frames: Uint8Array[]) {
  const harness = new NfHarness(definition, CONFIG);
  const results = harness.run(frames);
  return {
    verdicts: results.map((r) => r.output ?? `drop:${r.drop}`),
    bytes: results.map((r) => Buffer.from(r.bytes).toString('hex')),
    counters: harness.counters(),
  };
}

describe('NF images between hosts', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'nfvisor-image-int-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("the example NF's own tests pass against this nfvisor's SDK", async () => {
    const { code, output } = await runNfTests(EXAMPLE);
    assert.equal(code, 0, output);
    assert.match(output, /# fail 0/);
  });

  it('built and signed on host A, saved, loaded on host B: verified, imported, same verdicts as the source', async () => {
    // Host A: build, store, sign.
    const storeA = new ImageStore(join(root, 'host-a', 'images'));
    const built = await buildImage(EXAMPLE);
    assert.deepEqual(built.imports, [], 'the example needs no Node built-ins');
    const digest = await storeA.putImage(built.bytes);
    await storeA.tag('acme/dns-blocklist:1.0.0', digest);
    const key = generateSigningKey();
    await storeA.addSignature(digest, signImage(key.privateKey, digest, 'acme/dns-blocklist', '1.0.0'));
    const tarFile = join(root, 'dns-blocklist.tar');
    await writeFile(tarFile, await saveImage(storeA, 'acme/dns-blocklist:1.0.0'));

    // Host B: a fresh store and its own trust policy holding only A's public key.
    const storeBDir = join(root, 'host-b', 'images');
    const policyFile = join(root, 'host-b', 'trust-policy.json');
    const loaded = await loadImage(new ImageStore(storeBDir), await readFile(tarFile), tarFile);
    assert.deepEqual(loaded, [{ digest, tags: ['acme/dns-blocklist:1.0.0'] }]);
    await assert.rejects(resolveImage('acme/dns-blocklist:1.0.0', { store: storeBDir }), (e: unknown) =>
      isNfvError(e, 'NFV_ERR_IMAGE_UNTRUSTED'),
    );
    await trustKey(policyFile, exportKeyPair(key).publicPem, ['acme/*']);
    const policy = await readTrustPolicy(policyFile);
    const resolved = await resolveImage('acme/dns-blocklist:1.0.0', { store: storeBDir, policy });
    assert.equal(resolved.digest, digest);
    assert.ok(resolved.moduleUrl.startsWith(pathToFileURL(storeBDir).href), resolved.moduleUrl);
    const fromImage = ((await import(resolved.moduleUrl)) as { default: Nf }).default;
    assert.equal(fromImage.name, 'dns-blocklist');
    assert.deepEqual(resolved.manifest.outputs, [...fromImage.outputs]);
    assert.deepEqual(
      resolved.manifest.counters.map((c) => c.name),
      Object.keys(fromImage.counters),
    );
    assert.deepEqual(
      resolved.manifest.drops.map((d) => d.name),
      Object.keys(fromImage.drops),
    );

    // The source NF, bundled straight from its folder (no image, no store).
    const sourceFile = join(root, 'source.mjs');
    await build({
      entryPoints: [join(EXAMPLE, 'index.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: sourceFile,
      logLevel: 'silent',
      plugins: [sdkAlias],
    });
    const fromSource = ((await import(pathToFileURL(sourceFile).href)) as { default: Nf }).default;

    const frames = traffic(2000);
    const a = runAll(fromSource, frames);
    const b = runAll(fromImage, frames);
    assert.deepEqual(b.verdicts, a.verdicts);
    assert.deepEqual(b.bytes, a.bytes);
    assert.deepEqual(b.counters, a.counters);
    assert.ok(
      a.verdicts.includes('drop:blocked') &&
        a.verdicts.includes('out') &&
        a.verdicts.includes('drop:malformed'),
    );
  });

  it('a tampered archive is refused on load (digest)', async () => {
    const store = new ImageStore(join(root, 'host-c', 'images'));
    const built = await buildImage(EXAMPLE);
    const digest = await store.putImage(built.bytes);
    await store.tag('acme/dns-blocklist:1.0.0', digest);
    const tar = await saveImage(store, 'acme/dns-blocklist:1.0.0');
    // Flip one byte of the bundle inside the blob (the blob is the second file: after 2 headers + index).
    const at = Buffer.from(tar).indexOf(Buffer.from('a DNS query asks for a blocked name'));
    const tampered = Uint8Array.from(tar);
    tampered[at >= 0 ? at : tar.length - 2000] ^= 0x20;
    await assert.rejects(loadImage(new ImageStore(join(root, 'host-d', 'images')), tampered), (e: unknown) =>
      isNfvError(e, 'NFV_ERR_IMAGE_DIGEST'),
    );
  });
});
