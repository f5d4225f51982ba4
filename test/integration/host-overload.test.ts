/**
 * The memory monitor on real guests (TESTING D2's process-level part), with a simulated pressure
 * source: below the first threshold nothing changes; from `rejectNewAt` every TCP SYN is refused at
 * the input and nothing else is; from `shedAt` every packet is dropped at the input; and while
 * pressure is high a crashed guest is not restarted, then is once pressure falls.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMetrics } from '../../src/control/metrics.js';
import { Host, type HostPlan, type HostProgress, type HostSummary } from '../../src/host/host.js';
import { TrafficGenerator, type GeneratorOptions } from '../../src/io/traffic-generator.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag } from '../../src/packet/tcp.js';
import { endlessMemoryPort } from '../support/memory-port.js';
import { builtinNfPlan } from '../support/nf-plan.js';

process.env.NFVISOR_QUIET = '1';

const MiB = 2 ** 20;
const LIMIT = 1000 * MiB;
const TRAFFIC: Partial<GeneratorOptions> = {
  seed: 11,
  packets: 4000,
  flows: 64,
  tcpSessions: true,
  ipv6: 0.25,
  mix: { tcp: 3, udp: 1, icmp: 1 },
};

/** How many packets of the generated traffic open a TCP connection (SYN without ACK). */
function countOpenings(): number {
  const generator = new TrafficGenerator({ ...TRAFFIC });
  const frame = new Uint8Array(2048);
  const parser = new PacketParser();
  let syns = 0;
  for (let i = 0; i < (TRAFFIC.packets ?? 0); i++) {
    const length = generator.next(frame, 0);
    parser.attach(frame, 0, length);
    if (parser.l4 === Layer.Tcp && (parser.tcp.flags() & (TcpFlag.Syn | TcpFlag.Ack)) === TcpFlag.Syn) syns++;
  }
  return syns;
}

function plan(readBytes: () => number, input: HostPlan['ports'][string]): HostPlan {
  return {
    pool: { slots: 1024, slotSize: 2048 },
    ringSize: 256,
    batch: 32,
    memory: { limitBytes: LIMIT, readBytes },
    ports: { in: input, out: { kind: 'sink' } },
    nfs: { fw: builtinNfPlan('firewall', { default: 'accept' }) },
    chains: [{ name: 'main', from: 'in', to: 'out', through: ['fw'] }],
    restartBackoffMs: 20,
  };
}

function assertConserved(s: HostSummary): void {
  assert.equal(s.received, s.sent + s.dropped + s.lost, 'every packet accounted for');
  assert.equal(s.poolFree, s.poolSlots, 'every slot back in the pool');
}

async function runAt(fraction: number): Promise<HostSummary> {
  const host = await Host.create(plan(() => fraction * LIMIT, { kind: 'generator', options: TRAFFIC }));
  const summary = await host.run();
  assertConserved(summary);
  return summary;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('host memory monitor', () => {
  const openings = countOpenings();

  it('changes nothing below the first threshold', async () => {
    const s = await runAt(0.9);
    assert.equal(s.received, TRAFFIC.packets);
    // `lost` is only ever non-zero on a starved machine (a guest the watchdog took for hung).
    assert.equal(s.sent + s.lost, s.received);
    assert.deepEqual(s.hostDrops, {});
    assert.equal(s.overload?.level, 'normal');
  });

  it('refuses exactly the connection openings from rejectNewAt, and passes the rest', async () => {
    assert.ok(openings > 50, `traffic has openings (${openings})`);
    const s = await runAt(0.96);
    assert.equal(s.received, TRAFFIC.packets);
    assert.deepEqual(s.hostDrops, { overload_new_flow: openings });
    assert.equal(s.sent + s.lost, s.received - openings);
    assert.equal(s.overload?.level, 'reject_new');
  });

  it('sheds every arriving packet from shedAt', async () => {
    const s = await runAt(0.985);
    assert.equal(s.received, TRAFFIC.packets);
    assert.deepEqual(s.hostDrops, { overload_shed: TRAFFIC.packets });
    assert.equal(s.sent, 0);
    assert.equal(s.overload?.level, 'shed');
  });

  it('does not restart a guest while pressure is high, and does once it falls', async () => {
    let pressure = 0.5;
    // A long-running input: the generator's traffic replayed until the test stops the host.
    const host = await Host.create(
      plan(() => pressure * LIMIT, endlessMemoryPort(512, { ...TRAFFIC, tcpSessions: false })),
    );
    let latest: HostProgress | null = null;
    const done = host.run((p) => (latest = p), 25);
    const fwUp = (): boolean | undefined => latest?.nfs[0].up;
    const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
      for (let t = 0; t < 100 && !ok(); t++) await sleep(50);
      assert.ok(ok(), what);
    };
    try {
      await waitFor('the guest comes up', () => fwUp() === true);
      pressure = 0.96;
      await waitFor('the monitor sees the pressure', () => host.status().overload?.level === 'reject_new');
      const { text } = await renderMetrics(host.status());
      assert.match(text, /^nfvisor_overload_level 1$/m);
      assert.match(text, /^nfvisor_memory_pressure_ratio 0\.96$/m);
      assert.ok(host.restartInstance('fw'));
      await sleep(600); // 30× the restart backoff
      assert.equal(fwUp(), false, 'no guest starts under memory pressure');
      assert.equal(host.status().nfs[0].restarts, 1);
      const sentWhileDown = host.status().sent;
      pressure = 0.5;
      await waitFor('the guest restarts once pressure falls', () => fwUp() === true);
      await waitFor('and forwards again', () => host.status().sent > sentWhileDown);
    } finally {
      host.stop();
    }
    assertConserved(await done);
  });
});
