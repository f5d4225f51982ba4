/**
 * The host, end to end, on real guests (worker isolates): the same capture through the same chain
 * gives byte-identical output and identical counters in every vNIC mode and on every run; every
 * packet is accounted for and every slot returns to the pool; a guest that throws, hangs or blows
 * its heap is contained and restarted while a neighbouring chain keeps forwarding.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan, type HostSummary, type NfPlan } from '../../src/host/host.js';
import type { Placement, VnicMode } from '../../src/host/guest-protocol.js';
import { openCapture } from '../../src/io/capture.js';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { writeGeneratedCapture } from '../../src/io/generate-capture.js';
import { until } from '../support/until.js';

process.env.NFVISOR_QUIET = '1';
const MISBEHAVING = new URL('./nfs/misbehaving.js', import.meta.url).href;

let dir = '';
let input = '';

function nf(
  module: string,
  config: unknown,
  vnic: VnicMode,
  placement: Placement,
  extra: Partial<NfPlan> = {},
): NfPlan {
  return { module, config, vnic, placement, replicas: 1, heapMb: 64, failure: 'fail-closed', ...extra };
}

/** Firewall → NAT → load balancer, as the demo runs it. */
function chainPlan(vnic: VnicMode, placement: Placement, output: string): HostPlan {
  return {
    pool: { slots: 2048, slotSize: 2048 },
    ringSize: 256,
    batch: 32,
    ports: { in: { kind: 'pcap-in', path: input }, out: { kind: 'pcap-out', path: output } },
    nfs: {
      fw: nf(
        builtinModule('firewall'),
        { default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dstPort: '53' }] },
        vnic,
        placement,
      ),
      nat: nf(builtinModule('nat'), { external: '203.0.113.1', inside: '198.18.0.0/16' }, vnic, placement),
      lb: nf(
        builtinModule('load-balancer'),
        { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2'] },
        vnic,
        placement,
      ),
    },
    chains: [{ name: 'main', from: 'in', to: 'out', through: ['fw', 'nat', 'lb'] }],
  };
}

function assertConserved(s: HostSummary): void {
  assert.equal(
    s.received,
    s.sent + s.dropped + s.lost,
    `conservation: ${JSON.stringify({ ...s, nfs: undefined })}`,
  );
  assert.equal(s.poolFree, s.poolSlots, 'every slot is back in the pool');
}

/** Every frame of a capture as hex (allocates; for tests). */
function readCapture(path: string): string[] {
  const reader = openCapture(path);
  const out: string[] = [];
  while (reader.next())
    out.push(
      Buffer.from(reader.bytes.subarray(reader.at, reader.at + reader.capturedLength)).toString('hex'),
    );
  reader.close();
  return out;
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** What must be equal across modes: outputs and every NF's counters and drops (not timings). */
function fingerprint(s: HostSummary): unknown {
  return {
    received: s.received,
    sent: s.sent,
    dropped: s.dropped,
    lost: s.lost,
    nfs: s.nfs.map((n) => ({ name: n.name, counters: n.counters, drops: n.drops, restarts: n.restarts })),
  };
}

describe('host', () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-host-'));
    input = join(dir, 'in.pcap');
    await writeGeneratedCapture(
      { seed: 11, packets: 20_000, flows: 200, ipv6: 0.2, vlan: 0.1, mix: { tcp: 5, udp: 4, icmp: 1 } },
      input,
      { format: 'pcap' },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives byte-identical output and identical counters in every vNIC mode, and on every run', async () => {
    const modes: [VnicMode, Placement][] = [
      ['direct', 'inline'],
      ['direct', 'isolated'],
      ['paravirt', 'isolated'],
      ['emulated', 'isolated'],
      ['direct', 'isolated'],
      ['direct', 'isolated'],
    ];
    const hashes: string[] = [];
    const prints: unknown[] = [];
    for (const [i, [vnic, placement]] of modes.entries()) {
      const output = join(dir, `out-${i}.pcap`);
      const summary = await (await Host.create(chainPlan(vnic, placement, output))).run();
      assertConserved(summary);
      assert.equal(summary.received, 20_000);
      // Starting guest threads takes a while, counted in the run and told apart.
      if (placement === 'isolated')
        assert.ok(
          summary.startSeconds > 0 && summary.startSeconds < summary.seconds,
          `guests started in ${summary.startSeconds} s of ${summary.seconds}`,
        );
      assert.ok(
        summary.sent > 10_000 && summary.dropped > 0,
        `the chain forwards and drops (${summary.sent}/${summary.dropped})`,
      );
      hashes.push(fileHash(output));
      prints.push(fingerprint(summary));
    }
    for (let i = 1; i < hashes.length; i++) {
      assert.equal(hashes[i], hashes[0], `output of ${modes[i].join('/')} equals ${modes[0].join('/')}`);
      assert.deepEqual(prints[i], prints[0], `counters of ${modes[i].join('/')} equal ${modes[0].join('/')}`);
    }
  });

  for (const [failure, vnic, extra] of [
    ['throw', 'direct', {}],
    ['throw', 'paravirt', {}],
    ['throw', 'emulated', {}],
    ['hang', 'direct', {}],
    ['heap-bomb', 'direct', { heapMb: 16 }],
  ] as const) {
    it(`contains a guest that fails (${failure}, ${vnic}); the other chain never stalls`, async () => {
      const plan: HostPlan = {
        pool: { slots: 2048, slotSize: 2048 },
        ringSize: 256,
        batch: 32,
        watchdogMs: 400,
        restartBackoffMs: 20,
        ports: {
          a: { kind: 'generator', options: { seed: 1, packets: 30_000, frameSize: 64 } },
          b: { kind: 'generator', options: { seed: 2, packets: 30_000, frameSize: 64 } },
          sinkA: { kind: 'sink' },
          sinkB: { kind: 'sink' },
        },
        nfs: {
          bad: nf(MISBEHAVING, { failure, after: 8000 }, vnic, 'isolated', extra),
          good: nf(builtinModule('firewall'), { default: 'accept' }, 'direct', 'isolated'),
        },
        chains: [
          { name: 'a', from: 'a', to: 'sinkA', through: ['bad'] },
          { name: 'b', from: 'b', to: 'sinkB', through: ['good'] },
        ],
      };
      const host = await Host.create(plan);
      const goodProgress: number[] = [];
      const summary = await host.run((p) => goodProgress.push(p.nfs[1].packets), 100);
      assertConserved(summary);
      const bad = summary.nfs.find((n) => n.name === 'bad');
      const good = summary.nfs.find((n) => n.name === 'good');
      assert.ok(bad && good);
      assert.ok(bad.restarts >= 1, `the failing guest was restarted (${bad.restarts})`);
      assert.ok(
        summary.lost + (summary.hostDrops.nf_down ?? 0) > 0,
        'its packets were counted lost or dropped while down',
      );
      assert.equal(good.packets, 30_000, 'the neighbouring chain forwarded everything');
      assert.equal(summary.ports.sinkB.sent, 30_000);
      // The failed guest came back and forwarded again after its restart.
      assert.ok(summary.ports.sinkA.sent > 8000, `chain a resumed (${summary.ports.sinkA.sent} sent)`);
    });
  }

  it('asks for huge pages under the pool (NFVISOR_NO_HUGE_PAGES=1: none) and forwards the same either way', async (t) => {
    const addon = loadNativeAddon();
    if (addon?.adviseHugePages === undefined) {
      t.skip(addon === null ? addonUnavailableReason() : 'addon built without adviseHugePages');
      return;
    }
    const hashes: string[] = [];
    for (const off of [false, true]) {
      if (off) process.env.NFVISOR_NO_HUGE_PAGES = '1';
      try {
        const output = join(dir, `out-huge-${off}.pcap`);
        const host = await Host.create(chainPlan('direct', 'isolated', output));
        // 2048 slots of 2 KiB: 4 MiB, of which one or two aligned huge pages.
        if (off) assert.equal(host.poolHugePageBytes, 0);
        else assert.ok(host.poolHugePageBytes >= 2 << 20, `advised ${host.poolHugePageBytes}`);
        assertConserved(await host.run());
        hashes.push(fileHash(output));
      } finally {
        delete process.env.NFVISOR_NO_HUGE_PAGES;
      }
    }
    assert.equal(hashes[1], hashes[0]);
  });

  it('keeps nothing of a finished host: ten hosts in a row, one 32 MiB pool held at most', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const poolBytes = 16384 * 2048;
    for (let i = 0; i < 10; i++) {
      const plan = chainPlan('direct', 'inline', join(dir, 'out-series.pcap'));
      assertConserved(
        await Host.create({ ...plan, pool: { slots: 16384, slotSize: 2048 } }).then((h) => h.run()),
      );
    }
    // Freed memory is counted off once V8's background sweeper has run: on a loaded machine that
    // takes a while, so collect and look again for up to 5 s. copyBytes' view cache used to hold
    // the last eight pools (256 MiB here) for good.
    let held = Number.POSITIVE_INFINITY;
    for (
      const deadline = performance.now() + 5000;
      held >= 1.5 * poolBytes && performance.now() < deadline;
    ) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 50));
      held = process.memoryUsage().arrayBuffers;
    }
    assert.ok(held < 1.5 * poolBytes, `${(held / 2 ** 20).toFixed(0)} MiB of array buffers still held`);
  });

  it('steers each connection to one replica: three replicas give the same packets as one', async () => {
    const lb = { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2', '10.1.0.3'] };
    const frames = async (replicas: number, vnic: VnicMode, output: string): Promise<string[]> => {
      const plan = chainPlan(vnic, 'isolated', output);
      plan.nfs = { lb: nf(builtinModule('load-balancer'), lb, vnic, 'isolated', { replicas }) };
      plan.chains[0].through = ['lb'];
      const summary = await (await Host.create(plan)).run();
      assertConserved(summary);
      assert.equal(summary.nfs[0].replicas, replicas);
      // Replicas may interleave different connections differently; the multiset of frames is what must agree.
      const reader = readCapture(output);
      return reader.sort();
    };
    const one = await frames(1, 'direct', join(dir, 'replicas-1.pcap'));
    const three = await frames(3, 'paravirt', join(dir, 'replicas-3.pcap'));
    assert.equal(three.length, one.length);
    assert.deepEqual(three, one);
  });

  for (const [vnic, placement] of [
    ['direct', 'isolated'],
    ['emulated', 'isolated'],
    ['direct', 'inline'],
  ] as const) {
    it(`drops the burst a query-of-death packet is in, and the NF keeps running (${vnic}, ${placement})`, async () => {
      const plan: HostPlan = {
        pool: { slots: 1024, slotSize: 2048 },
        ringSize: 256,
        batch: 32,
        ports: {
          a: {
            kind: 'generator',
            options: { seed: 1, packets: vnic === 'emulated' ? 3000 : 20_000, frameSize: 64 },
          },
          sinkA: { kind: 'sink' },
        },
        nfs: {
          bad: nf(
            MISBEHAVING,
            { failure: 'poison', after: vnic === 'emulated' ? 500 : 4000 },
            vnic,
            placement,
          ),
        },
        chains: [{ name: 'a', from: 'a', to: 'sinkA', through: ['bad'] }],
      };
      const summary = await (await Host.create(plan)).run();
      assertConserved(summary);
      const bad = summary.nfs[0];
      assert.equal(bad.restarts, 0, 'no restart for an exception now and then');
      const exceptions = bad.drops.nf_exception ?? 0;
      assert.ok(
        exceptions >= 5 && exceptions <= 5 * 32,
        `only the poisoned bursts were dropped (${exceptions})`,
      );
      assert.equal(summary.sent + exceptions, summary.received);
    });
  }

  it('holds a stalled guest back without growing: the queue limit bounds what waits, nothing is lost, it resumes', async () => {
    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      watchdogMs: 5000, // longer than the stall: the guest is slow, not hung
      ports: {
        a: { kind: 'generator', options: { seed: 1, packets: 200_000, frameSize: 64 } },
        sinkA: { kind: 'sink' },
      },
      nfs: { slow: nf(MISBEHAVING, { failure: 'stall', after: 5000 }, 'direct', 'isolated') },
      chains: [{ name: 'a', from: 'a', to: 'sinkA', through: ['slow'] }],
    };
    const host = await Host.create(plan);
    const inFlight: number[] = [];
    const heap: number[] = [];
    const summary = await host.run((p) => {
      inFlight.push(p.received - p.sent - p.dropped - p.lost);
      heap.push(process.memoryUsage().heapUsed);
    }, 100);
    assertConserved(summary);
    assert.equal(summary.sent, 200_000, 'every packet went through once the guest resumed');
    assert.equal(summary.nfs[0].restarts, 0, 'a slow guest is not a hung one');
    assert.ok(
      Math.max(...inFlight) <= 1024,
      `what waits is bounded by the pool (${Math.max(...inFlight)} in flight at most)`,
    );
    // The host stops reading at its queue limit (queue-limit.ts), whose floor is two bursts for the
    // guest and two for the host: the stall shows as that many in flight for its 1.5 s.
    const floor = 2 * plan.batch * 2;
    assert.ok(
      inFlight.filter((n) => n >= floor).length >= 5,
      `the stall was visible: the host stopped reading at its limit (${Math.max(...inFlight)} at most)`,
    );
    const growth = Math.max(...heap) - heap[0];
    assert.ok(
      growth < 64 << 20,
      `host heap stayed flat during the stall (+${(growth / 2 ** 20).toFixed(1)} MiB)`,
    );
  });

  it('comes back from a restart asked for while the restarted guest was still starting', async () => {
    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        a: { kind: 'generator', options: { seed: 1, packets: 100_000_000, frameSize: 64 } },
        sinkA: { kind: 'sink' },
      },
      nfs: { fw: nf(builtinModule('firewall'), { default: 'accept' }, 'direct', 'isolated') },
      chains: [{ name: 'a', from: 'a', to: 'sinkA', through: ['fw'] }],
    };
    const host = await Host.create(plan);
    const running = host.run();
    await host.opened;
    const replica = host.reconfigurable().nfs[0].replicas[0];
    assert.ok(host.restartInstance('fw'));
    // The new guest's worker exists and is not up yet: restarted again in that window, the host
    // used to wait for the replaced guest's start forever and stopped moving packets.
    await until('the new guest starting', () => replica.worker !== null && !replica.up, 10_000, 1);
    assert.ok(host.restartInstance('fw'));
    await until('the guest back up', () => replica.up, 10_000, 1);
    const before = host.status().sent;
    await until('packets moving again', () => host.status().sent > before + 10_000, 10_000, 1);
    host.stop();
    const summary = await running;
    assertConserved(summary);
    assert.equal(summary.nfs[0].restarts, 2);
  });

  it('quarantines a guest that hands back impossible descriptors, and keeps the rest running', async () => {
    const plan: HostPlan = {
      pool: { slots: 2048, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      restartBackoffMs: 20,
      ports: {
        a: { kind: 'generator', options: { seed: 1, packets: 20_000, frameSize: 64 } },
        b: { kind: 'generator', options: { seed: 2, packets: 20_000, frameSize: 64 } },
        sinkA: { kind: 'sink' },
        sinkB: { kind: 'sink' },
      },
      nfs: {
        liar: nf(MISBEHAVING, { failure: 'lie', after: 5000 }, 'direct', 'isolated'),
        good: nf(builtinModule('firewall'), { default: 'accept' }, 'direct', 'isolated'),
      },
      chains: [
        { name: 'a', from: 'a', to: 'sinkA', through: ['liar'] },
        { name: 'b', from: 'b', to: 'sinkB', through: ['good'] },
      ],
    };
    const summary = await (await Host.create(plan)).run();
    assertConserved(summary);
    const liar = summary.nfs.find((n) => n.name === 'liar');
    assert.ok(liar?.quarantined, 'the lying guest is quarantined');
    assert.ok((summary.hostDrops.invalid_descriptor ?? 0) > 0, 'its descriptors were counted invalid');
    assert.ok((summary.hostDrops.nf_down ?? 0) > 0, 'its chain dropped (fail-closed) after the quarantine');
    assert.ok(summary.ports.sinkA.sent < 20_000, 'nothing it claimed went out');
    assert.equal(summary.ports.sinkB.sent, 20_000, 'the neighbouring chain forwarded everything');
  });

  it('refuses a bad NF configuration before anything starts, naming the field', async () => {
    const plan = chainPlan('direct', 'isolated', join(dir, 'never.pcap'));
    plan.nfs.fw.config = { default: 'sometimes' };
    await assert.rejects(Host.create(plan), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'NFV_ERR_BAD_ARGUMENT');
      assert.match(e.message ?? '', /nfs\.fw\.config\.default/);
      return true;
    });
  });
});
