/**
 * What the guest sandbox costs per packet (a measurement, not a test):
 *   node dist/bench/sandbox.js
 * Each built-in NF below is built into an image and run two ways in this thread on the same bursts
 * of 32 generated 64-byte frames (1024 flows, TCP and UDP): imported as a module (how a built-in or
 * a compiled path runs), and loaded from the image's script into the guest sandbox with the host
 * realm locked (how an image runs in a worker guest). Rounds alternate which goes first; the best of
 * each is printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST_REALM, loadSandboxedNf, lockHostRealm, type NfRealm } from '../src/host/guest-sandbox.js';
import { buildImage, ImageStore, sandboxPolicy } from '../src/image/index.js';
import { copyBytes } from '../src/io/capture-buffer.js';
import { TrafficGenerator } from '../src/io/traffic-generator.js';
import { createNfContext, type NfDefinition, type NfInstance } from '../src/sdk/define-nf.js';
import { validateConfig } from '../src/sdk/config-schema.js';
import { PacketBatch } from '../src/sdk/packet-batch.js';

const BURST = 32;
const STRIDE = 128;
const FRAMES = 4096;
const ROUNDS = 5;
const PACKETS_PER_ROUND = 2_000_000;

const NFS: [string, unknown][] = [
  ['firewall', { default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dstPort: '53' }] }],
  ['nat', { external: '203.0.113.1', inside: '198.18.0.0/16' }],
  ['load-balancer', { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2'] }],
  ['flow-monitor', {}],
];

type Definition = NfDefinition<Record<string, unknown>>;

function traffic(): { frames: Uint8Array; lengths: Uint16Array } {
  const generator = new TrafficGenerator({
    seed: 7,
    packets: FRAMES,
    frameSize: 64,
    flows: 1024,
    ipv6: 0,
    tcpSessions: false,
    mix: { tcp: 1, udp: 1, icmp: 0 },
  });
  const frames = new Uint8Array(FRAMES * STRIDE);
  const lengths = new Uint16Array(FRAMES);
  for (let i = 0; i < FRAMES; i++) lengths[i] = generator.next(frames, i * STRIDE);
  return { frames, lengths };
}

/** An instance of `definition` whose code runs in `realm`, with the batch it is handed in that realm. */
function instance(
  definition: Definition,
  config: unknown,
  realm: NfRealm,
): { nf: NfInstance; realm: NfRealm } {
  const { value } = validateConfig(definition.config, config);
  const counters = new Float64Array(Math.max(1, Object.keys(definition.counters).length));
  const nf = definition.create(
    value,
    createNfContext(definition, 'bench', 0, 1, () => {}, realm.counters(counters)),
  );
  return { nf, realm };
}

/** Mpps of `nf.process` over PACKETS_PER_ROUND packets in bursts of BURST (frames copied in each time). */
function measure(
  { nf, realm }: { nf: NfInstance; realm: NfRealm },
  t: { frames: Uint8Array; lengths: Uint16Array },
): number {
  const batch = new PacketBatch(new Uint8Array(BURST * STRIDE), STRIDE);
  const seen = realm.batch(batch);
  seen.count = BURST;
  let next = 0;
  const start = process.hrtime.bigint();
  for (let done = 0; done < PACKETS_PER_ROUND; done += BURST) {
    batch.reset(BURST);
    for (let i = 0; i < BURST; i++) {
      const f = next++ % FRAMES;
      batch.at[i] = i * STRIDE;
      batch.length[i] = t.lengths[f];
      batch.inputPort[i] = 0;
      copyBytes(t.frames, f * STRIDE, batch.bytes, i * STRIDE, t.lengths[f]);
    }
    nf.process(seen, done);
  }
  return PACKETS_PER_ROUND / (Number(process.hrtime.bigint() - start) / 1e9) / 1e6;
}

const dir = mkdtempSync(join(tmpdir(), 'nfvisor-bench-sandbox-'));
try {
  const store = new ImageStore(join(dir, 'images'));
  const t = traffic();
  const loaded: { name: string; config: unknown; plain: Definition; script: string }[] = [];
  for (const [name, config] of NFS) {
    const source = fileURLToPath(new URL(`../nfs/${name}/`, import.meta.url));
    const built = await buildImage(source, { entry: 'index.js' });
    const digest = await store.putImage(built.bytes);
    const { moduleUrl, script } = await store.unpack(digest, built.bundle);
    const plain = ((await import(moduleUrl)) as { default: Definition }).default;
    loaded.push({ name, config, plain, script });
  }
  // As in a worker guest: the host realm is locked before any image code runs in the sandbox.
  const hooks = { refused: () => {}, log: () => {} };
  lockHostRealm(hooks);
  console.log(`guest sandbox vs plain import, ${BURST}-packet bursts of 64 B frames, best of ${ROUNDS}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  console.log('| NF | imported (Mpps) | sandboxed (Mpps) | sandboxed / imported |');
  console.log('|---|---|---|---|');
  for (const { name, config, plain, script } of loaded) {
    const boxed = loadSandboxedNf({ script, policy: sandboxPolicy([]) }, hooks);
    const a = instance(plain, config, HOST_REALM);
    const b = instance(boxed.definition as Definition, config, boxed.realm);
    let bestA = 0;
    let bestB = 0;
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating which goes first, so warm-up and the neighbours' load fall on both.
      if (r % 2 === 0) {
        bestA = Math.max(bestA, measure(a, t));
        bestB = Math.max(bestB, measure(b, t));
      } else {
        bestB = Math.max(bestB, measure(b, t));
        bestA = Math.max(bestA, measure(a, t));
      }
    }
    console.log(
      `| ${name} | ${bestA.toFixed(2)} | ${bestB.toFixed(2)} | ${((100 * bestB) / bestA).toFixed(0)} % |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
