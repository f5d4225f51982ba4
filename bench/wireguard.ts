/**
 * `npm run bench -- wireguard`: the wireguard NF against wireguard-go, on this machine, in one run.
 *
 * - In process: two gateways, A and B, make a session; then bursts of 256 inside packets go
 *   through A's `process()` (encrypt: inside → tunnel) and the same burst through B's (decrypt:
 *   tunnel → inside), each direction timed apart. Sizes: 64-byte frames, 1420-byte IP packets (a
 *   full tunnel MTU) and the simple IMIX (7 × 64, 4 × 576, 1 × 1500-byte frames). Figures are
 *   packets/s and Gbit/s of inner IP bytes on one thread, best of a few rounds.
 * - With root, wireguard-go and iperf3: `iperf3` TCP (one stream, 5 s) between two wireguard-go
 *   peers in namespaces joined by a veth — the reference on the same machine in the same run.
 *   (nfvisor's own end-to-end figure, wireguard-go ↔ the NF over VXLAN, is printed by
 *   test/system/wireguard-interop.test.ts.)
 *
 * The machine is shared by other work, so every figure is noisy.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mac } from '../src/packet/address.js';
import { write16, write32 } from '../src/packet/bytes.js';
import { internetChecksum } from '../src/packet/checksum.js';
import { validateConfig } from '../src/sdk/config-schema.js';
import { createNfContext, type NfDefinition, type NfInstance } from '../src/sdk/define-nf.js';
import { MAX_BATCH, PacketBatch } from '../src/sdk/packet-batch.js';
import { isRoot, requireTools, run, sweepStale, Testbed } from '../src/testbed/netns.js';
import wireguard from '../nfs/wireguard/index.js';

const SLOT = 2048;
const ROUNDS = 5;
/** Inner bytes per measurement round, so that every size runs for a similar time. */
const BYTES_PER_ROUND = 32e6;
const FAMILY = 'wgb';
const A_IN = '02:00:00:00:0a:02';
const IMIX = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500];

function privateKey(): string {
  const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' });
  return Buffer.from(jwk.d ?? '', 'base64url').toString('base64');
}

function publicOf(privateB64: string): string {
  const key = createPrivateKey({
    key: Buffer.concat([
      Buffer.from('302e020100300506032b656e04220420', 'hex'),
      Buffer.from(privateB64, 'base64'),
    ]),
    format: 'der',
    type: 'pkcs8',
  });
  return Buffer.from(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12)).toString(
    'base64',
  );
}

function gateway(own: string, peer: string, side: 'a' | 'b'): { nf: NfInstance; counters: Float64Array } {
  const a = side === 'a';
  const raw = {
    privateKey: own,
    listenAddress: a ? '192.0.2.1' : '192.0.2.2',
    outside: {
      mac: a ? '02:00:00:00:0a:01' : '02:00:00:00:0b:01',
      nextHopMac: a ? '02:00:00:00:0b:01' : '02:00:00:00:0a:01',
    },
    inside: { mac: a ? A_IN : '02:00:00:00:0b:02', nextHopMac: '02:00:00:00:99:99' },
    peers: [
      {
        publicKey: publicOf(peer),
        endpoint: a ? '192.0.2.2:51820' : '',
        allowedIPs: [a ? '10.2.0.0/16' : '10.1.0.0/16'],
      },
    ],
  };
  const { value, errors } = validateConfig(wireguard.config, raw);
  if (errors.length > 0) throw new Error(`bench config: ${JSON.stringify(errors)}`);
  const definition = wireguard as unknown as NfDefinition<never>;
  const counters = new Float64Array(Object.keys(wireguard.counters).length);
  const ctx = createNfContext(definition, side, 0, 1, () => undefined, counters);
  return { nf: wireguard.create(value as never, ctx), counters };
}

/** An inside IPv4/UDP frame of `frameSize` bytes from 10.1.0.5 to 10.2.0.7. */
function insideFrame(frameSize: number): Uint8Array {
  const f = new Uint8Array(frameSize).fill(0x5a);
  f.set(mac(A_IN), 0);
  f.set(mac('02:00:00:00:99:98'), 6);
  write16(f, 12, 0x0800);
  f[14] = 0x45;
  f[15] = 0;
  write16(f, 16, frameSize - 14);
  write32(f, 18, 0);
  f[22] = 64;
  f[23] = 17;
  write16(f, 24, 0);
  write32(f, 26, 0x0a010005);
  write32(f, 30, 0x0a020007);
  write16(f, 24, internetChecksum(f, 14, 20));
  write16(f, 34, 1234);
  write16(f, 36, 5678);
  write16(f, 38, frameSize - 34);
  write16(f, 40, 0);
  return f;
}

/** Loads `frames` (cycled) into the batch's slots. */
function load(batch: PacketBatch, frames: readonly Uint8Array[]): number {
  batch.reset(MAX_BATCH);
  let bytes = 0;
  for (let i = 0; i < MAX_BATCH; i++) {
    const f = frames[i % frames.length];
    batch.at[i] = i * SLOT;
    batch.length[i] = f.length;
    batch.bytes.set(f, i * SLOT);
    bytes += f.length - 14;
  }
  return bytes;
}

interface Figure {
  size: string;
  direction: string;
  pps: number;
  gbps: number;
}

function benchInProcess(): Figure[] {
  const keyA = privateKey();
  const keyB = privateKey();
  const A = gateway(keyA, keyB, 'a');
  const B = gateway(keyB, keyA, 'b');
  const batch = new PacketBatch(new Uint8Array(MAX_BATCH * SLOT), SLOT);
  let now = Date.now() * 1e6;

  // Handshake: A's first packet becomes an initiation, B answers, A sends the staged packet.
  const step = (nf: NfInstance, frame: Uint8Array): Uint8Array => {
    batch.reset(1);
    batch.at[0] = 0;
    batch.length[0] = frame.length;
    batch.bytes.set(frame, 0);
    nf.process(batch, (now += 1e6));
    return batch.bytes.slice(0, batch.length[0]);
  };
  const confirm = step(A.nf, step(B.nf, step(A.nf, insideFrame(100))));
  step(B.nf, confirm);

  const figures: Figure[] = [];
  const sizes: [string, Uint8Array[]][] = [
    ['64 B frames', [insideFrame(64)]],
    ['1420 B packets', [insideFrame(1434)]],
    ['IMIX', IMIX.map(insideFrame)],
  ];
  for (const [size, frames] of sizes) {
    let bestEncrypt = Infinity;
    let bestDecrypt = Infinity;
    let packets = 0;
    let innerBytes = 0;
    for (let round = 0; round < ROUNDS; round++) {
      let encryptMs = 0;
      let decryptMs = 0;
      packets = 0;
      innerBytes = 0;
      while (innerBytes < BYTES_PER_ROUND) {
        innerBytes += load(batch, frames);
        packets += MAX_BATCH;
        now += 1e3;
        const t0 = performance.now();
        A.nf.process(batch, now);
        const t1 = performance.now();
        for (let i = 0; i < MAX_BATCH; i++)
          if (batch.verdict[i] !== 0) throw new Error(`A did not encrypt packet ${i} (${batch.verdict[i]})`);
        batch.reset(MAX_BATCH);
        const t2 = performance.now();
        B.nf.process(batch, now);
        const t3 = performance.now();
        for (let i = 0; i < MAX_BATCH; i++)
          if (batch.verdict[i] !== 1) throw new Error(`B did not decrypt packet ${i} (${batch.verdict[i]})`);
        encryptMs += t1 - t0;
        decryptMs += t3 - t2;
      }
      bestEncrypt = Math.min(bestEncrypt, encryptMs);
      bestDecrypt = Math.min(bestDecrypt, decryptMs);
    }
    for (const [direction, ms] of [
      ['encrypt (inside → tunnel)', bestEncrypt],
      ['decrypt (tunnel → inside)', bestDecrypt],
    ] as const) {
      figures.push({
        size,
        direction,
        pps: packets / (ms / 1000),
        gbps: (innerBytes * 8) / (ms / 1000) / 1e9,
      });
    }
  }
  return figures;
}

/** iperf3 TCP between two wireguard-go peers in namespaces over a veth; Gbit/s, or null without root/tools. */
async function benchWireguardGo(): Promise<{ gbps: number; note: string } | null> {
  if (!isRoot()) return null;
  try {
    await requireTools(['ip', 'iperf3', 'wireguard-go', 'wg']);
  } catch {
    return null;
  }
  await sweepStale(FAMILY);
  const bed = new Testbed(`${FAMILY}${process.pid}`);
  const keyDir = mkdtempSync(join(tmpdir(), 'nfv-wgb-'));
  try {
    const x = await bed.addNamespace('x');
    const y = await bed.addNamespace('y');
    const [vx, vy] = await bed.addVethBetween('vx', x, 'vy', y);
    await bed.addAddress(vx, '192.0.2.1/24', x);
    await bed.addAddress(vy, '192.0.2.2/24', y);
    const keys = await Promise.all(
      [0, 1].map(async () => {
        const priv = (await run('wg', ['genkey'])).stdout.trim();
        return { priv, pub: (await run('sh', ['-c', `echo ${priv} | wg pubkey`])).stdout.trim() };
      }),
    );
    const ends = [
      {
        ns: x,
        dev: bed.name('wx'),
        addr: '10.9.0.1/24',
        key: keys[0],
        peer: keys[1],
        endpoint: '192.0.2.2:51820',
      },
      {
        ns: y,
        dev: bed.name('wy'),
        addr: '10.9.0.2/24',
        key: keys[1],
        peer: keys[0],
        endpoint: '192.0.2.1:51820',
      },
    ];
    for (const [i, e] of ends.entries()) {
      const keyFile = join(keyDir, `${i}.key`);
      writeFileSync(keyFile, `${e.key.priv}\n`, { mode: 0o600 });
      bed.start(e.ns, 'env', ['WG_PROCESS_FOREGROUND=1', 'wireguard-go', e.dev]);
      for (let t = 0; t < 50; t++) {
        if (
          await bed.ip(e.ns, ['link', 'show', e.dev]).then(
            () => true,
            () => false,
          )
        )
          break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await bed.exec(e.ns, 'wg', [
        'set',
        e.dev,
        'private-key',
        keyFile,
        'listen-port',
        '51820',
        'peer',
        e.peer.pub,
        'endpoint',
        e.endpoint,
        'allowed-ips',
        '10.9.0.0/24',
      ]);
      await bed.addAddress(e.dev, e.addr, e.ns);
      await bed.ip(e.ns, ['link', 'set', e.dev, 'mtu', '1420', 'up']);
    }
    const server = bed.start(y, 'iperf3', ['-s', '-1', '-B', '10.9.0.2']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const client = await bed.exec(
      x,
      'iperf3',
      ['-c', '10.9.0.2', '-t', '5', '-J', '--connect-timeout', '5000'],
      30_000,
    );
    await server.exited;
    const report = JSON.parse(client.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return { gbps: report.end.sum_received.bits_per_second / 1e9, note: 'iperf3 TCP, 1 stream, 5 s, veth' };
  } finally {
    await bed.teardown();
    rmSync(keyDir, { recursive: true, force: true });
  }
}

export async function benchWireguard(): Promise<void> {
  console.log('wireguard: the NF alone, in process (one thread), vs wireguard-go between namespaces');
  const figures = benchInProcess();
  const lines = figures.map(
    (f) => `| ${f.size} | ${f.direction} | ${(f.pps / 1e3).toFixed(0)} kpps | ${f.gbps.toFixed(2)} Gbit/s |`,
  );
  for (const f of figures)
    console.log(
      `  ${`${f.size}, ${f.direction}`.padEnd(52)}${(f.pps / 1e3).toFixed(0).padStart(9)} kpps  ${f.gbps.toFixed(2)} Gbit/s`,
    );
  const reference = await benchWireguardGo();
  if (reference !== null) {
    console.log(
      `  ${'wireguard-go ↔ wireguard-go'.padEnd(52)}${reference.gbps.toFixed(2).padStart(9)} Gbit/s  ${reference.note}`,
    );
    lines.push(`| wireguard-go ↔ wireguard-go | ${reference.note} | | ${reference.gbps.toFixed(2)} Gbit/s |`);
  } else console.log('  wireguard-go reference skipped (needs root, wireguard-go, wg and iperf3)');
  // From dist/bench/ to the repository's bench/results/, as bench/modes.ts does.
  const dir = new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    new URL('wireguard.md', dir),
    [
      '# wireguard NF vs wireguard-go',
      '',
      '| traffic | path | packets/s | inner Gbit/s |',
      '|---|---|---|---|',
      ...lines,
      '',
    ].join('\n'),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await benchWireguard();
