/**
 * `ids` bench part: the ids NF inline in one thread (process() on 256-packet batches, as the host's
 * inline placement calls it) over seeded IMIX traffic, with 100 and with 10,000 signatures.
 *
 * Traffic: 100,000 frames from the TrafficGenerator (IMIX 60/590/1514 in 7:4:1, 1,000 flows,
 * 25 % IPv6, TCP with handshakes and teardowns, UDP, ICMP), so TCP goes through stream reassembly.
 * Signatures: Suricata-like rules over random 6–14-byte contents (a third nocase, some with a
 * second relative content, some with flow:established,to_server, ports from a small set); none
 * occurs in the traffic, so every figure is the cost of inspecting benign traffic.
 *
 * Each round runs the whole capture once through a fresh instance (a stream sees its bytes once;
 * running the same capture again through one instance would be all retransmissions). Mpps and
 * Gbit/s of frame bytes (without FCS, preamble or gap) are the best of ROUNDS; creating the
 * instance (compiling the rules) is timed apart.
 */
import { performance } from 'node:perf_hooks';
import { TrafficGenerator } from '../src/io/traffic-generator.js';
import { NfHarness, PacketBatch, MAX_BATCH } from '../src/sdk/index.js';
import ids, { type IdsConfig } from '../nfs/ids/index.js';

const FRAMES = 100_000;
const ROUNDS = 3;
const SLOT = 2048;

/** `n` signatures, seeded. */
export function benchRules(n: number, seed = 1): string[] {
  let state = seed >>> 0;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const word = (min: number, max: number): string => {
    const length = min + Math.floor(random() * (max - min + 1));
    let s = '';
    for (let k = 0; k < length; k++) {
      const c = Math.floor(random() * 62);
      s += String.fromCharCode(c < 26 ? 97 + c : c < 52 ? 65 + c - 26 : 48 + c - 52);
    }
    return s;
  };
  const ports = ['any', '80', '443', '[80,8080]', '1024:', '53'];
  const rules: string[] = [];
  for (let i = 0; i < n; i++) {
    const udp = i % 10 === 9;
    const options = [`msg:"bench ${i}"`, `content:"${word(6, 14)}"`];
    if (i % 3 === 0) options.push('nocase');
    if (i % 5 === 0) options.push(`content:"${word(4, 8)}"`, 'distance:0', 'within:64');
    if (!udp && i % 4 === 0) options.push('flow:established,to_server');
    options.push(`sid:${1_000_000 + i}`, 'rev:1', 'classtype:misc-activity');
    const port = udp ? '53' : ports[i % ports.length];
    rules.push(`alert ${udp ? 'udp' : 'tcp'} any any -> any ${port} (${options.join('; ')};)`);
  }
  return rules;
}

function capture(): { batches: PacketBatch[]; bytes: number } {
  const gen = new TrafficGenerator({ seed: 11, packets: FRAMES, flows: 1000, frameSize: 'imix', ipv6: 0.25 });
  const batches: PacketBatch[] = [];
  let bytes = 0;
  for (let made = 0; made < FRAMES;) {
    const count = Math.min(MAX_BATCH, FRAMES - made);
    const batch = new PacketBatch(new Uint8Array(count * SLOT), SLOT);
    batch.reset(count);
    for (let i = 0; i < count; i++) {
      batch.at[i] = i * SLOT;
      const n = gen.next(batch.bytes, i * SLOT);
      batch.length[i] = n;
      bytes += n;
    }
    batches.push(batch);
    made += count;
  }
  return { batches, bytes };
}

export interface IdsBenchResult {
  signatures: number;
  compileMs: number;
  mpps: number;
  gbps: number;
  /** The same per second of CPU time used by the process (less sensitive to a busy machine). */
  cpuMpps: number;
  cpuGbps: number;
  alerts: number;
  inspectedBytes: number;
}

export function measureIds(signatures: number, config: Partial<IdsConfig> = {}): IdsBenchResult {
  const { batches, bytes } = capture();
  const rules = benchRules(signatures);
  let best = Infinity;
  let bestCpu = Infinity;
  let compileMs = Infinity;
  let alerts = 0;
  let inspectedBytes = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    const nf = new NfHarness(ids, { rules, maxStreams: 8192, ...config });
    compileMs = Math.min(compileMs, performance.now() - t0);
    const instance = nf.instance;
    const start = performance.now();
    const cpu = process.cpuUsage();
    for (let b = 0; b < batches.length; b++) {
      const batch = batches[b];
      batch.reset(batch.count);
      instance.process(batch, b * 1e6);
    }
    best = Math.min(best, performance.now() - start);
    const used = process.cpuUsage(cpu);
    bestCpu = Math.min(bestCpu, (used.user + used.system) / 1000);
    const counters = nf.counters();
    alerts = counters.alerts;
    inspectedBytes = counters.inspected_bytes;
  }
  const seconds = best / 1000;
  const cpuSeconds = bestCpu / 1000;
  return {
    signatures,
    compileMs,
    mpps: FRAMES / seconds / 1e6,
    gbps: (bytes * 8) / seconds / 1e9,
    cpuMpps: FRAMES / cpuSeconds / 1e6,
    cpuGbps: (bytes * 8) / cpuSeconds / 1e9,
    alerts,
    inspectedBytes,
  };
}

export function benchIds(): void {
  console.log(
    `ids: ${FRAMES} IMIX frames inline in one thread, 256-packet batches, best of ${ROUNDS} rounds`,
  );
  for (const n of [100, 10_000]) {
    const r = measureIds(n);
    console.log(
      `  ${`${n.toLocaleString('en')} signatures`.padEnd(20)}${r.mpps.toFixed(3).padStart(8)} Mpps ${r.gbps.toFixed(2).padStart(7)} Gbit/s` +
        `  (per CPU-second: ${r.cpuMpps.toFixed(3)} Mpps, ${r.cpuGbps.toFixed(2)} Gbit/s)` +
        `   compile ${r.compileMs.toFixed(0)} ms, ${(r.inspectedBytes / 1e6).toFixed(1)} MB inspected, ${r.alerts} alerts`,
    );
  }
}

if (process.argv[1]?.endsWith('/bench/ids.js')) benchIds();
