/**
 * A throughput probe for the load balancer (not a test): 64-byte TCP frames from `flows` distinct
 * clients to one VIP, run inline in bursts of 256 the way NfHarness does, without the harness's
 * per-packet copies (one 16 KiB copy per burst restores the frames the NF rewrote). Prints Mpps
 * for the first pass (every packet a new connection) and for established connections.
 *
 *   node dist/nfs/load-balancer/throughput.js [flows ...]   (default 10000 1000000)
 */
import { validateConfig, createNfContext, MAX_BATCH, PacketBatch } from '../../src/sdk/index.js';
import loadBalancer from './index.js';

const FRAME = 64;
const VIP = [192, 0, 2, 10];

function ipChecksum(b: Uint8Array, at: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (b[at + i] << 8) | b[at + i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function frames(flows: number): Uint8Array {
  const out = new Uint8Array(flows * FRAME);
  for (let f = 0; f < flows; f++) {
    const b = out.subarray(f * FRAME, f * FRAME + FRAME);
    b.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    b.set([0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 6, 0, 0], 14);
    b.set([10 + (f >>> 24), (f >>> 16) & 255, (f >>> 8) & 255, f & 255], 26);
    b.set(VIP, 30);
    const sport = 1024 + (f % 60000);
    b.set([sport >> 8, sport & 255, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0x10, 0, 0, 0, 0, 0], 34);
    const c = ipChecksum(b, 14);
    b[24] = c >> 8;
    b[25] = c & 255;
  }
  return out;
}

function run(flows: number): void {
  const raw = {
    vip: '192.0.2.10',
    port: 80,
    backends: [
      '10.1.0.1',
      '10.1.0.2',
      '10.1.0.3',
      '10.1.0.4',
      '10.1.0.5',
      '10.1.0.6',
      '10.1.0.7',
      '10.1.0.8',
    ],
    maxConnections: 1 << 21,
  };
  const { value, errors } = validateConfig(loadBalancer.config, raw);
  if (errors.length > 0) throw new Error(JSON.stringify(errors));
  const ctx = createNfContext(loadBalancer, 'bench', 0, 1, () => {});
  const nf = loadBalancer.create(value as never, ctx);
  const source = frames(flows);
  const batch = new PacketBatch(new Uint8Array(MAX_BATCH * FRAME), FRAME);
  for (let i = 0; i < MAX_BATCH; i++) {
    batch.at[i] = i * FRAME;
    batch.length[i] = FRAME;
  }
  const pass = (packets: number): number => {
    const start = process.hrtime.bigint();
    let sent = 0;
    let offset = 0;
    while (sent < packets) {
      const count = Math.min(MAX_BATCH, flows - offset);
      batch.bytes.set(source.subarray(offset * FRAME, (offset + count) * FRAME));
      batch.reset(count);
      nf.process(batch, 1e9);
      sent += count;
      offset = offset + count === flows ? 0 : offset + count;
    }
    return sent / (Number(process.hrtime.bigint() - start) / 1e9) / 1e6;
  };
  const fresh = pass(flows);
  const target = Math.max(5_000_000, 3 * flows);
  pass(Math.min(target, 2_000_000)); // warm-up
  const established = pass(target);
  const c = ctx.counters;
  console.log(
    `load-balancer ${flows} flows: new ${fresh.toFixed(2)} Mpps, established ${established.toFixed(2)} Mpps (to_backend ${c[0]}, connections ${c[3]})`,
  );
}

const args = process.argv.slice(2).map(Number);
for (const flows of args.length > 0 ? args : [10_000, 1_000_000]) run(flows);
