/**
 * Packets an NF makes itself (`ctx.emit` from `tick`): they enter the chain after the NF, in the
 * order it made them, in every vNIC mode — also from the middle of a run of `direct` guests, where
 * the next hop is a guest-to-guest ring and the packet travels in a spare slot the host set aside —
 * and they are accounted for like received packets: sent, dropped by a later NF with its reason,
 * and every slot back in the pool at the end. The emit budget per tick holds.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan, type HostSummary } from '../../src/host/host.js';
import type { Placement, VnicMode } from '../../src/host/guest-protocol.js';
import { openCapture } from '../../src/io/capture.js';
import { MAX_EMITS_PER_TICK } from '../../src/sdk/index.js';
import { BEACON_FRAME, BEACON_PORT } from './nfs/beacon.js';

process.env.NFVISOR_QUIET = '1';
const BEACON = new URL('./nfs/beacon.js', import.meta.url).href;
const TOTAL = 40;

let dir = '';

async function freePort(): Promise<number> {
  const probe = createSocket('udp4');
  probe.bind(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = probe.address().port;
  probe.close();
  return port;
}

/** Sequence numbers of the beacon frames in a capture, in order. */
function sequences(path: string): number[] {
  const reader = openCapture(path);
  const out: number[] = [];
  while (reader.next()) {
    const b = reader.bytes.subarray(reader.at, reader.at + reader.capturedLength);
    assert.equal(b.length, BEACON_FRAME);
    out.push(new DataView(b.buffer, b.byteOffset).getUint32(42));
  }
  reader.close();
  return out;
}

async function runBeacon(
  vnic: VnicMode,
  placement: Placement,
  after: 'none' | 'accept' | 'deny',
  output: string,
  total = TOTAL,
  meanwhile: (host: Host) => Promise<void> = () => Promise.resolve(),
): Promise<HostSummary> {
  const nf = (module: string, config: unknown) => ({
    module,
    config,
    vnic,
    placement,
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed' as const,
  });
  const rules = after === 'deny' ? [{ action: 'drop', protocol: 'udp', dstPort: String(BEACON_PORT) }] : [];
  const plan: HostPlan = {
    pool: { slots: 256, slotSize: 2048 },
    ringSize: 64,
    batch: 32,
    // The watchdog's period is the tick's: a tick every 50 ms.
    watchdogMs: 200,
    ports: {
      // A live port that nobody sends to: the host runs until stopped, and only the beacon speaks.
      vx: {
        kind: 'vxlan',
        options: {
          bind: { address: '127.0.0.1', port: await freePort() },
          remote: { address: '127.0.0.1', port: 9 },
          vni: 1,
        },
      },
      out: { kind: 'pcap-out', path: output },
    },
    nfs: {
      beacon: nf(BEACON, { total, perTick: MAX_EMITS_PER_TICK + 4 }),
      ...(after === 'none' ? {} : { fw: nf(builtinModule('firewall'), { default: 'accept', rules }) }),
    },
    chains: [{ name: 'c', from: 'vx', to: 'out', through: after === 'none' ? ['beacon'] : ['beacon', 'fw'] }],
  };
  const host = await Host.create(plan);
  const running = host.run();
  try {
    await host.opened;
    await meanwhile(host);
    const deadline = Date.now() + 10_000;
    let lastOriginated = -1;
    let lastChange = Date.now();
    for (;;) {
      const s = host.status();
      // Done when the beacon has made its `total` (a guest restored from an older snapshot makes
      // some again, so: at least that many, all accounted for, and no new one for 300 ms).
      const accounted = s.originated >= total && s.sent + s.dropped + s.lost === s.originated;
      if (accounted && s.originated === lastOriginated && Date.now() - lastChange >= 300) break;
      if (s.originated !== lastOriginated) {
        lastOriginated = s.originated;
        lastChange = Date.now();
      }
      if (Date.now() > deadline) assert.fail(`the beacon's packets did not all arrive: ${JSON.stringify(s)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    host.stop();
  }
  return running;
}

describe('packets an NF makes', () => {
  before(() => (dir = mkdtempSync(join(tmpdir(), 'nfvisor-originate-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [VnicMode, Placement, 'none' | 'accept' | 'deny'][] = [
    ['direct', 'inline', 'none'],
    ['direct', 'isolated', 'none'],
    ['paravirt', 'isolated', 'none'],
    ['emulated', 'isolated', 'none'],
    ['direct', 'isolated', 'accept'],
    ['direct', 'isolated', 'deny'],
    ['emulated', 'isolated', 'accept'],
    ['direct', 'inline', 'deny'],
  ];
  for (const [vnic, placement, next] of cases) {
    const what =
      next === 'none'
        ? 'to the output'
        : next === 'accept'
          ? 'through a firewall'
          : 'into a firewall that denies them';
    it(`go ${what}, in order, in ${placement === 'inline' ? 'inline' : vnic} mode`, async () => {
      const output = join(dir, `${vnic}-${placement}-${next}.pcap`);
      const s = await runBeacon(vnic, placement, next, output);
      const beacon = s.nfs.find((n) => n.name === 'beacon');
      assert.ok(beacon);
      assert.equal(s.received, 0);
      assert.equal(s.originated, TOTAL);
      assert.equal(beacon.counters.emitted, TOTAL);
      // The beacon tries MAX + 4 per tick: the host holds it to MAX_EMITS_PER_TICK.
      assert.ok(
        beacon.counters.refused >= 1,
        `the budget refused some emits: ${JSON.stringify(beacon.counters)}`,
      );
      assert.equal(s.lost, 0);
      assert.equal(s.received + s.originated, s.sent + s.dropped + s.lost, 'conservation');
      assert.equal(s.poolFree, s.poolSlots, 'every slot, spares included, is back in the pool');
      if (next === 'deny') {
        assert.equal(s.sent, 0);
        assert.equal(s.nfs.find((n) => n.name === 'fw')?.drops.denied, TOTAL);
        assert.deepEqual(sequences(output), []);
      } else {
        assert.equal(s.sent, TOTAL);
        assert.deepEqual(
          sequences(output),
          Array.from({ length: TOTAL }, (_, k) => k),
        );
      }
    });
  }

  it('are accounted for when the guest that made them is restarted mid-stream', async () => {
    const output = join(dir, 'restart.pcap');
    let restarted = false;
    const s = await runBeacon('direct', 'isolated', 'accept', output, 400, async (host) => {
      // Restart the beacon while it is emitting (its spare slots are in use).
      while ((host.status().nfs.find((n) => n.name === 'beacon')?.counters.emitted ?? 0) < 50)
        await new Promise((resolve) => setTimeout(resolve, 5));
      restarted = host.restartInstance('beacon');
    });
    assert.ok(restarted);
    assert.equal(s.nfs.find((n) => n.name === 'beacon')?.restarts, 1);
    assert.ok(s.originated >= 400, `the restarted beacon went on: ${s.originated}`);
    assert.equal(s.received + s.originated, s.sent + s.dropped + s.lost, 'conservation');
    assert.equal(s.poolFree, s.poolSlots, 'every slot, spares included, is back in the pool');
    assert.equal(sequences(output).length, s.sent);
  });

  it('are accounted for across a live apply that replaces the guest making them', async () => {
    const output = join(dir, 'apply.pcap');
    let applied = false;
    const s = await runBeacon('direct', 'isolated', 'accept', output, 400, async (host) => {
      while ((host.status().nfs.find((n) => n.name === 'beacon')?.counters.emitted ?? 0) < 50)
        await new Promise((resolve) => setTimeout(resolve, 5));
      // A config change starts a new beacon guest (from the old one's snapshot) and drains the old.
      const plan = host.reconfigurable().plan;
      const beacon = plan.nfs.beacon;
      const result = await host.apply({
        ...plan,
        nfs: { ...plan.nfs, beacon: { ...beacon, config: { total: 400, perTick: MAX_EMITS_PER_TICK + 5 } } },
      });
      applied = result.applied;
    });
    assert.ok(applied);
    assert.ok(s.originated >= 400, `the new beacon went on: ${s.originated}`);
    assert.equal(s.received + s.originated, s.sent + s.dropped + s.lost, 'conservation');
    assert.equal(s.poolFree, s.poolSlots, 'the old guest’s spare slots came back');
    assert.equal(sequences(output).length, s.sent);
  });
});
