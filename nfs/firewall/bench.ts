/**
 * Firewall classification throughput at 10 and 10,000 rules (a measurement, not a test):
 *   node dist/nfs/firewall/bench.js
 * Rules: accept tcp to 10.(i/256).(i%256).0/24 port 1000+i, plus a few generic ones; 64-byte TCP
 * ACK frames to a spread of rules, stateless (no state rules: conntrack still runs).
 */
import { NfHarness, PacketBatch } from '../../src/sdk/index.js';
import firewall from './index.js';
import { ACK, tcp } from './test-frames.js';

function rules(n: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [
    { action: 'drop', src: '192.168.0.0/16' },
    { action: 'accept', protocol: 'icmp', icmpType: '8' },
  ];
  for (let i = 0; out.length < n; i++)
    out.push({
      action: 'accept',
      protocol: 'tcp',
      dst: `10.${(i >> 8) & 255}.${i & 255}.0/24`,
      dstPort: String(1000 + (i % 60000)),
    });
  return out;
}

function measure(n: number): number {
  const nf = new NfHarness(firewall, { default: 'drop', rules: rules(n) });
  const frames: Uint8Array[] = [];
  for (let k = 0; k < 256; k++) {
    const i = Math.floor((k * (n - 2)) / 256);
    frames.push(
      tcp(`172.16.0.${k}`, `10.${(i >> 8) & 255}.${i & 255}.1`, 40000 + k, 1000 + (i % 60000), ACK),
    );
  }
  const batch = new PacketBatch(new Uint8Array(frames.length * 128), 128);
  frames.forEach((f, k) => {
    batch.at[k] = k * 128;
    batch.length[k] = f.length;
    batch.bytes.set(f, k * 128);
  });
  const nfInstance = nf.instance;
  for (let w = 0; w < 2000; w++) {
    batch.reset(frames.length);
    nfInstance.process(batch, w);
  }
  const rounds = 20000;
  const t0 = process.hrtime.bigint();
  for (let w = 0; w < rounds; w++) {
    batch.reset(frames.length);
    nfInstance.process(batch, w);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  return (rounds * frames.length) / (ns / 1e9) / 1e6;
}

const small = measure(10);
const large = measure(10000);
console.log(
  `10 rules: ${small.toFixed(2)} Mpps; 10,000 rules: ${large.toFixed(2)} Mpps (${((100 * large) / small).toFixed(0)} %) — process() on one reused 256-packet batch`,
);
