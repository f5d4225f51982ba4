/**
 * `reconfig` bench part: the effective blocked time of a live reconfiguration (TESTING F5, the
 * CSIT reconf metric) — packets lost ÷ offered rate — while traffic flows at a fixed offered rate.
 *
 * A sender thread offers 64-byte frames at a fixed rate, each in its own VXLAN datagram over
 * loopback, to the host's VXLAN port; chain `a` runs them through a firewall into a sink. For each
 * change, the packets offered and the packets that came out (or were dropped by a rule) are counted
 * over a window that spans the change and half a second after it; what is missing is lost, however
 * it was lost (the socket buffer, the port's ring, a guest restart). A config change, a scale and
 * an added chain are each applied and then undone in one window, so a figure covers two changes.
 * Changes:
 *
 *   config   the firewall's rules change (a new copy of chain a starts, the old one drains)
 *   scale    the firewall goes from 1 to 2 replicas
 *   add      a second chain takes UDP from the same port
 *   restart  reference: restartInstance (break before make: what the guest holds is lost, and its
 *            chain fails closed until it is back)
 *   idle     the same window with no change (the noise floor of the machine)
 *
 * Each is measured a few times; the median is reported with the worst. The longest gap between two
 * outputs during the window is reported too (a stall the socket buffer may have hidden).
 */
import { createSocket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { builtinModule, Host, type HostPlan, type NfPlan } from '../src/host/host.js';
import { TrafficGenerator } from '../src/io/traffic-generator.js';
import { median } from './trials.js';

const RATE_PPS = Number(process.env.BENCH_RECONFIG_PPS ?? 5_000);
const ROUNDS = 3;
const SETTLE_MS = 500;
const VNI = 77;
const STRIDE = 128;
const FRAMES = 4096;

/** The sender: `rate` datagrams a second from a ring of prepared VXLAN datagrams, until told to stop. */
const SENDER = `
const { workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const { frames, lengths, stride, port, rate, counters } = workerData;
const state = new Float64Array(counters); // [0] sent, [1] stop
const socket = dgram.createSocket('udp4');
// A full send buffer drops the datagram (counted as offered and lost, as a NIC's would be).
socket.on('error', () => {});
const start = performance.now();
let i = 0;
function tick() {
  if (state[1] !== 0) { socket.close(); return; }
  const due = Math.floor(((performance.now() - start) / 1000) * rate);
  // At most 50 ms' worth per tick: a sender that was descheduled does not flood the socket.
  for (let n = 0; state[0] < due && n < rate / 20; n++) {
    const k = i++ % lengths.length;
    socket.send(new Uint8Array(frames, k * stride, lengths[k]), port, '127.0.0.1');
    state[0]++;
  }
  setTimeout(tick, 1);
}
tick();
`;

function datagrams(): { frames: SharedArrayBuffer; lengths: Uint16Array } {
  const generator = new TrafficGenerator({
    seed: 21,
    packets: FRAMES,
    frameSize: 64,
    flows: 256,
    ipv6: 0,
    mix: { tcp: 1, udp: 1, icmp: 0 },
    tcpSessions: false,
  });
  const frames = new SharedArrayBuffer(FRAMES * STRIDE);
  const bytes = new Uint8Array(frames);
  const lengths = new Uint16Array(FRAMES);
  for (let i = 0; i < FRAMES; i++) {
    const at = i * STRIDE;
    // VXLAN header (RFC 7348): flags with I set, 24-bit VNI, reserved bytes zero.
    bytes[at] = 0x08;
    bytes[at + 4] = (VNI >>> 16) & 0xff;
    bytes[at + 5] = (VNI >>> 8) & 0xff;
    bytes[at + 6] = VNI & 0xff;
    lengths[i] = 8 + generator.next(bytes, at + 8);
  }
  return { frames, lengths };
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

function firewall(rules: unknown[], replicas = 1): NfPlan {
  return {
    module: builtinModule('firewall'),
    config: { default: 'accept', rules },
    vnic: 'direct',
    placement: 'isolated',
    replicas,
    heapMb: 64,
    failure: 'fail-closed',
  };
}

interface Figure {
  change: string;
  lost: number[];
  gapMs: number[];
  offered: number[];
}

export async function benchReconfig(): Promise<Figure[]> {
  console.log(
    `\nreconfig: effective blocked time (packets lost ÷ offered rate) at ${RATE_PPS} pps offered, 64 B over VXLAN`,
  );
  const port = await freeUdpPort();
  const base: HostPlan = {
    pool: { slots: 4096, slotSize: 2048 },
    ringSize: 512,
    batch: 32,
    watchdogMs: 60_000,
    restartBackoffMs: 20,
    ports: {
      vx: { kind: 'vxlan', options: { bind: { address: '127.0.0.1', port }, vni: VNI } },
      sinkA: { kind: 'sink' },
      sinkB: { kind: 'sink' },
    },
    nfs: { fwA: firewall([]) },
    chains: [{ name: 'a', from: 'vx', to: 'sinkA', through: ['fwA'] }],
  };
  const changed = { ...base, nfs: { fwA: firewall([{ action: 'drop', protocol: 'tcp', dstPort: '1' }]) } };
  const scaled = { ...base, nfs: { fwA: firewall([], 2) } };
  const added: HostPlan = {
    ...base,
    nfs: { ...base.nfs, fwB: firewall([]) },
    chains: [
      { name: 'b', from: 'vx', to: 'sinkB', through: ['fwB'], match: { protocol: 17 } },
      ...base.chains,
    ],
  };

  process.env.NFVISOR_QUIET = '1';
  const host = await Host.create(base);
  const running = host.run();
  const { frames, lengths } = datagrams();
  const counters = new SharedArrayBuffer(16);
  const state = new Float64Array(counters);
  const sender = new Worker(SENDER, {
    eval: true,
    workerData: { frames, lengths, stride: STRIDE, port, rate: RATE_PPS, counters },
  });
  const out = (): number => {
    const s = host.status();
    return s.sent + s.dropped;
  };
  const figures: Figure[] = [];
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500)); // warm up
    const changes: [string, () => Promise<unknown>][] = [
      ['idle (no change)', () => Promise.resolve()],
      [
        'config change of an NF in the chain',
        async () => {
          await host.apply(changed);
          await host.apply(base);
        },
      ],
      [
        'scale replicas 1 → 2 (and back)',
        async () => {
          await host.apply(scaled);
          await host.apply(base);
        },
      ],
      [
        'add a chain (and remove it)',
        async () => {
          await host.apply(added);
          await host.apply(base);
        },
      ],
      ['reference: restart the NF (break before make)', () => Promise.resolve(host.restartInstance('fwA'))],
    ];
    for (const [change, apply] of changes) {
      const figure: Figure = { change, lost: [], gapMs: [], offered: [] };
      for (let round = 0; round < ROUNDS; round++) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const sent0 = state[0];
        const out0 = out();
        let last = out0;
        let lastAt = performance.now();
        let gap = 0;
        const sampler = setInterval(() => {
          const now = out();
          const at = performance.now();
          if (now !== last) {
            gap = Math.max(gap, at - lastAt);
            last = now;
            lastAt = at;
          }
        }, 1);
        await apply();
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        clearInterval(sampler);
        // Lost so far = offered − out − in flight; in flight is small and steady before and after
        // the change (≈ latency × rate), so the difference of the two readings is what was lost.
        const sent1 = state[0];
        const out1 = out();
        figure.lost.push(Math.max(0, sent1 - out1 - (sent0 - out0)));
        figure.offered.push(sent1 - sent0);
        figure.gapMs.push(gap);
      }
      figures.push(figure);
      const lost = median(figure.lost);
      console.log(
        `  ${change.padEnd(52)} lost ${String(lost).padStart(6)} of ${median(figure.offered)}  blocked ${((lost / RATE_PPS) * 1000).toFixed(1).padStart(7)} ms (worst ${((Math.max(...figure.lost) / RATE_PPS) * 1000).toFixed(1)} ms)  longest output gap ${median(figure.gapMs).toFixed(1)} ms`,
      );
    }
  } finally {
    state[1] = 1;
    await new Promise((resolve) => setTimeout(resolve, 50));
    await sender.terminate();
    host.stop();
    await running;
  }
  return figures;
}
