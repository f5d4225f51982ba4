/**
 * The packet path allocates nothing per packet (our standard): a sampling heap profile of the host
 * thread, objects already collected included, over 409,600 packets of 64 bytes through firewall →
 * NAT → load balancer inline, divided by the packets. What is left, 15–20 bytes a packet here, is
 * per burst, per snapshot, start-up, and TCP sequence numbers too large for a small integer (V8
 * boxes them where the firewall's reads are not inlined); one view object a packet is ~70 bytes
 * more and fails either bound. (Frames of 96 bytes or
 * more are copied natively with one view object each, deliberately: src/io/capture-buffer.ts.)
 */
import assert from 'node:assert/strict';
import { Session } from 'node:inspector/promises';
import { describe, it } from 'node:test';
import { Host, type HostPlan } from '../../src/host/host.js';
import { TrafficGenerator } from '../../src/io/traffic-generator.js';
import { builtinNfPlan } from '../support/nf-plan.js';

process.env.NFVISOR_QUIET = '1';

const FRAMES = 4096;
const STRIDE = 2048;
const ROUNDS = 100;

/** The heap profile sees the host thread only: the NFs run in it. */
const inline = (name: string, config: unknown) => builtinNfPlan(name, config, { placement: 'inline' });

function plan(input: HostPlan['ports'][string]): HostPlan {
  return {
    pool: { slots: 8192, slotSize: STRIDE },
    ringSize: 1024,
    batch: 32,
    ports: { in: input, out: { kind: 'sink' } },
    nfs: {
      fw: inline('firewall', {
        default: 'accept',
        rules: [{ action: 'drop', protocol: 'udp', dstPort: '53' }],
      }),
      nat: inline('nat', { external: '203.0.113.1', inside: '198.18.0.0/16' }),
      lb: inline('load-balancer', { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2'] }),
    },
    chains: [{ name: 'c', from: 'in', to: 'out', through: ['fw', 'nat', 'lb'] }],
  };
}

/** Bytes allocated in this thread per packet over one run of `make(rounds)` (after a warm-up run). */
async function bytesPerPacket(make: (rounds: number) => HostPlan): Promise<number> {
  await (await Host.create(make(10))).run(); // the code optimized first, as in a long run
  const session = new Session();
  session.connect();
  try {
    const host = await Host.create(make(ROUNDS));
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 512,
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
    const summary = await host.run();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const walk = (node: typeof profile.head): void => {
      bytes += node.selfSize;
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    assert.equal(summary.received, FRAMES * ROUNDS);
    return bytes / summary.received;
  } finally {
    session.disconnect();
  }
}

const generated = { seed: 5, frameSize: 64, flows: 512, ipv6: 0.2 };

describe('the packet path allocates nothing per packet', () => {
  it('from memory: under 40 bytes a packet, start-up and snapshots included', async () => {
    const frames = new Uint8Array(FRAMES * STRIDE);
    const lengths = new Uint16Array(FRAMES);
    const generator = new TrafficGenerator({ ...generated, packets: FRAMES });
    for (let i = 0; i < FRAMES; i++) lengths[i] = generator.next(frames, i * STRIDE);
    const perPacket = await bytesPerPacket((rounds) =>
      plan({ kind: 'memory', frames, lengths, stride: STRIDE, rounds }),
    );
    assert.ok(perPacket < 40, `${perPacket.toFixed(1)} bytes a packet`);
  });

  it('from the traffic generator, into 2 KiB slots: under 40 bytes a packet', async () => {
    const perPacket = await bytesPerPacket((rounds) =>
      plan({ kind: 'generator', options: { ...generated, packets: FRAMES * rounds } }),
    );
    assert.ok(perPacket < 40, `${perPacket.toFixed(1)} bytes a packet`);
  });
});
