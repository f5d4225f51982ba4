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
 * A third row runs the 100-signature set over the same capture with every IP packet whose payload
 * is over FRAGMENT_PAYLOAD bytes cut into fragments of that size (IPv4 and IPv6; the 590- and
 * 1514-byte frames, a third of the frames, two thirds of the bytes): every such datagram goes
 * through the fragment table and is inspected once whole. Its Mpps counts the fragments.
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
import { ipFragments } from '../nfs/ids/test-frames.js';

const FRAMES = 100_000;
const ROUNDS = 3;
const SLOT = 2048;
/** IP payload bytes per fragment in the fragmented capture (a multiple of 8). */
const FRAGMENT_PAYLOAD = 512;

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

/** The bench capture in 256-packet batches; with `fragmented`, long IP packets cut (see the header). */
function capture(fragmented = false): { batches: PacketBatch[]; bytes: number; frames: number } {
  const gen = new TrafficGenerator({ seed: 11, packets: FRAMES, flows: 1000, frameSize: 'imix', ipv6: 0.25 });
  const frames: Uint8Array[] = [];
  const scratch = new Uint8Array(SLOT);
  let id = 1;
  for (let made = 0; made < FRAMES; made++) {
    const frame = scratch.slice(0, gen.next(scratch, 0));
    const payload = ipPayloadLength(frame);
    if (!fragmented || payload <= FRAGMENT_PAYLOAD) {
      frames.push(frame);
      continue;
    }
    const cuts: number[] = [];
    for (let at = FRAGMENT_PAYLOAD; at < payload; at += FRAGMENT_PAYLOAD) cuts.push(at);
    frames.push(...ipFragments(frame, cuts, id++ & 0xffff));
  }
  const batches: PacketBatch[] = [];
  let bytes = 0;
  for (let made = 0; made < frames.length; made += MAX_BATCH) {
    const count = Math.min(MAX_BATCH, frames.length - made);
    const batch = new PacketBatch(new Uint8Array(count * SLOT), SLOT);
    batch.reset(count);
    for (let i = 0; i < count; i++) {
      const frame = frames[made + i];
      batch.at[i] = i * SLOT;
      batch.bytes.set(frame, i * SLOT);
      batch.length[i] = frame.length;
      bytes += frame.length;
    }
    batches.push(batch);
  }
  return { batches, bytes, frames: frames.length };
}

/** The IP payload length of a generated frame (Ethernet, IPv4 without options or IPv6), or 0. */
function ipPayloadLength(frame: Uint8Array): number {
  const etherType = (frame[12] << 8) | frame[13];
  if (etherType === 0x0800) return ((frame[16] << 8) | frame[17]) - 20;
  if (etherType === 0x86dd) return (frame[18] << 8) | frame[19];
  return 0;
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
  /** Frames in the capture (fragments counted one by one), and datagrams reassembled. */
  frames: number;
  reassembled: number;
}

export function measureIds(
  signatures: number,
  config: Partial<IdsConfig> = {},
  fragmented = false,
): IdsBenchResult {
  const { batches, bytes, frames } = capture(fragmented);
  const rules = benchRules(signatures);
  let best = Infinity;
  let bestCpu = Infinity;
  let compileMs = Infinity;
  let alerts = 0;
  let inspectedBytes = 0;
  let reassembled = 0;
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
    reassembled = counters.fragments_reassembled;
  }
  const seconds = best / 1000;
  const cpuSeconds = bestCpu / 1000;
  return {
    signatures,
    compileMs,
    mpps: frames / seconds / 1e6,
    gbps: (bytes * 8) / seconds / 1e9,
    cpuMpps: frames / cpuSeconds / 1e6,
    cpuGbps: (bytes * 8) / cpuSeconds / 1e9,
    alerts,
    inspectedBytes,
    frames,
    reassembled,
  };
}

export function benchIds(): void {
  console.log(
    `ids: ${FRAMES} IMIX frames inline in one thread, 256-packet batches, best of ${ROUNDS} rounds`,
  );
  const rows: [string, number, boolean][] = [
    ['100 signatures', 100, false],
    ['10,000 signatures', 10_000, false],
    [`100, ${FRAGMENT_PAYLOAD} B fragments`, 100, true],
  ];
  for (const [label, n, fragmented] of rows) {
    const r = measureIds(n, {}, fragmented);
    console.log(
      `  ${label.padEnd(24)}${r.mpps.toFixed(3).padStart(8)} Mpps ${r.gbps.toFixed(2).padStart(7)} Gbit/s` +
        `  (per CPU-second: ${r.cpuMpps.toFixed(3)} Mpps, ${r.cpuGbps.toFixed(2)} Gbit/s)` +
        `   compile ${r.compileMs.toFixed(0)} ms, ${(r.inspectedBytes / 1e6).toFixed(1)} MB inspected, ${r.alerts} alerts` +
        (fragmented ? `, ${r.frames} frames, ${r.reassembled} datagrams reassembled` : ''),
    );
  }
}

if (process.argv[1]?.endsWith('/bench/ids.js')) benchIds();
