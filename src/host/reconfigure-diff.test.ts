import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TunnelPortOptions } from '../io/tunnel-port.js';
import type { HostPlan, NfPlan } from './host.js';
import { describeDiff, diffPlans, sameValue } from './reconfigure-diff.js';
import { QUEUE_TARGET_MS } from './queue-limit.js';

function nf(extra: Partial<NfPlan> = {}): NfPlan {
  return {
    module: 'file:///fw.js',
    config: { rules: [] },
    vnic: 'direct',
    placement: 'isolated',
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed',
    ...extra,
  };
}

const base: HostPlan = {
  pool: { slots: 1024, slotSize: 2048 },
  ringSize: 256,
  batch: 32,
  ports: { a: { kind: 'sink' }, b: { kind: 'sink' }, in: { kind: 'generator', options: { seed: 1 } } },
  nfs: { fw: nf(), mon: nf({ module: 'file:///mon.js' }) },
  chains: [
    { name: 'one', from: 'in', to: 'a', through: ['fw'] },
    { name: 'two', from: 'in', to: 'b', through: ['mon'], match: { protocol: 17 } },
  ],
};

describe('diffPlans', () => {
  it('an identical plan (a structural copy) is empty and keeps every chain', () => {
    const diff = diffPlans(base, structuredClone(base));
    assert.equal(diff.empty, true);
    assert.deepEqual(diff.chains.kept, ['one', 'two']);
    assert.deepEqual(describeDiff(diff), [
      '= chain one (kept running)',
      '= chain two (kept running)',
      'no change',
    ]);
  });

  it('names the NF fields that changed and restarts only the chains that run it', () => {
    const next = { ...base, nfs: { ...base.nfs, fw: nf({ config: { rules: [1] }, replicas: 2 }) } };
    const diff = diffPlans(base, next);
    assert.deepEqual(diff.nfs.changed, [{ name: 'fw', fields: ['config', 'replicas'] }]);
    assert.deepEqual(diff.chains.changed, [{ name: 'one', fields: ['nf fw changed'] }]);
    assert.deepEqual(diff.chains.kept, ['two']);
  });

  it('lets a tunnel port change on the address it binds (it takes the socket over), except what the socket keeps', () => {
    const tunnel = (
      kind: 'vxlan' | 'geneve',
      extra: Partial<Omit<TunnelPortOptions, 'bind'>> & { port?: number } = {},
    ): HostPlan['ports'][string] => {
      const { port, ...rest } = extra;
      return {
        kind,
        options: { bind: { address: '192.0.2.1', ...(port === undefined ? {} : { port }) }, vni: 1, ...rest },
      };
    };
    const on = (p: HostPlan['ports'][string]): HostPlan => ({ ...base, ports: { ...base.ports, vx: p } });
    const change = (a: HostPlan['ports'][string], b: HostPlan['ports'][string]) => diffPlans(on(a), on(b));
    const remote = { address: '192.0.2.9' };
    // VNI, remote, ring and format change live on the same address (4789 named or by default).
    const live = change(tunnel('vxlan'), tunnel('vxlan', { vni: 2, port: 4789, remote, slots: 64 }));
    assert.deepEqual(live.ports.changed, [{ name: 'vx', fields: ['port'] }]);
    assert.deepEqual(live.refused, []);
    assert.deepEqual(change(tunnel('vxlan', { port: 7000 }), tunnel('geneve', { port: 7000 })).refused, []);
    assert.deepEqual(
      change(tunnel('vxlan'), tunnel('vxlan', { receiveBufferSize: 4 << 20, nativeIo: true })).refused,
      [],
      'the defaults spelt out are no change',
    );
    // What the socket keeps cannot change while the port keeps it.
    const fixed = change(tunnel('vxlan'), tunnel('vxlan', { vni: 2, receiveBufferSize: 1 << 20 }));
    assert.equal(fixed.refused.length, 1);
    assert.match(
      fixed.refused[0],
      /^ports\.vx: a vxlan port that keeps its bind address 192\.0\.2\.1:4789 takes its socket over, which keeps its receive buffer size \(4194304 bytes\):/,
    );
    assert.match(describeDiff(fixed)[0], /^! ports\.vx: /);
    const io = change(tunnel('geneve'), tunnel('geneve', { nativeIo: false }));
    assert.match(io.refused[0] ?? '', /^ports\.vx: a geneve port .*6081 .*keeps its kind \(nativeIo\)/);
    // Elsewhere (another port, an ephemeral one) the new port binds its own socket: nothing refused.
    assert.deepEqual(change(tunnel('vxlan'), tunnel('vxlan', { port: 4790, nativeIo: false })).refused, []);
    assert.deepEqual(
      change(tunnel('vxlan', { port: 0 }), tunnel('vxlan', { port: 0, receiveBufferSize: 1 })).refused,
      [],
    );
    const tap = (batch: number, queueLength?: number): HostPlan['ports'][string] => ({
      kind: 'tap',
      options: { device: 't0', batch, ...(queueLength !== undefined ? { queueLength } : {}) },
    });
    assert.deepEqual(diffPlans(on(tap(64)), on(tap(16))).refused, [], 'a TAP port takes its device over');
    // ... and keeps the device's queue: a new queue length needs the device opened anew.
    assert.match(
      diffPlans(on(tap(64)), on(tap(64, 512))).refused[0] ?? '',
      /^ports\.\w+: a tap port that keeps its device t0 takes it over, which keeps its queue length \(4096 frames\)/,
    );
    assert.deepEqual(diffPlans(on(tap(64)), on(tap(64, 4096))).refused, [], 'the default, written out');
    // The offloads are the device's too (IFF_VNET_HDR is set when it is opened).
    const offloading: HostPlan['ports'][string] = {
      kind: 'tap',
      options: { device: 't0', batch: 64, offload: true },
    };
    assert.match(
      diffPlans(on(tap(64)), on(offloading)).refused[0] ?? '',
      /^ports\.\w+: a tap port that keeps its device t0 takes it over, which keeps its offloads \(off\)/,
    );
  });

  it('a changed port changes the chains on it; a changed match changes its chain', () => {
    const next: HostPlan = {
      ...base,
      ports: { ...base.ports, b: { kind: 'pcap-out', path: '/tmp/x.pcap' } },
      chains: [{ ...base.chains[0], match: { protocol: 6 } }, base.chains[1]],
    };
    const diff = diffPlans(base, next);
    assert.deepEqual(diff.ports.changed, [{ name: 'b', fields: ['port'] }]);
    assert.deepEqual(diff.chains.changed, [
      { name: 'one', fields: ['match'] },
      { name: 'two', fields: ['port b changed'] },
    ]);
  });

  it('lists added and removed chains, NFs and ports, and refuses pool, ring and batch changes', () => {
    const next: HostPlan = {
      ...base,
      batch: 64,
      ports: { a: base.ports.a, in: base.ports.in, c: { kind: 'sink' } },
      nfs: { fw: base.nfs.fw, lb: nf({ module: 'file:///lb.js' }) },
      chains: [base.chains[0], { name: 'three', from: 'in', to: 'c', through: ['lb'] }],
    };
    const diff = diffPlans(base, next);
    assert.deepEqual(diff.ports, { added: ['c'], removed: ['b'], changed: [] });
    assert.deepEqual(diff.nfs, { added: ['lb'], removed: ['mon'], changed: [] });
    assert.deepEqual(diff.chains, { added: ['three'], removed: ['two'], changed: [], kept: ['one'] });
    assert.equal(diff.refused.length, 1);
    assert.match(diff.refused[0], /^batch is 32 and cannot change to 64/);
  });

  it('refuses a new queue target, an absent one being the default', () => {
    assert.deepEqual(diffPlans(base, { ...base, queueTargetMs: QUEUE_TARGET_MS }).refused, []);
    assert.deepEqual(diffPlans(base, { ...base, queueTargetMs: 5 }).refused, [
      `queueTargetMs is ${QUEUE_TARGET_MS} and cannot change to 5 while the host runs`,
    ]);
  });
});

describe('sameValue', () => {
  it('compares plan values structurally, typed arrays by content, absent as undefined', () => {
    assert.ok(sameValue({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] }));
    assert.ok(sameValue({ a: 1, b: undefined }, { a: 1 }));
    assert.ok(sameValue(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
    assert.ok(!sameValue(Uint8Array.of(1, 2), Uint16Array.of(1, 2)));
    assert.ok(!sameValue(Uint8Array.of(1, 2), [1, 2]));
    assert.ok(!sameValue([1, 2], [2, 1]));
    assert.ok(!sameValue({ a: 1 }, { a: '1' }));
    assert.ok(!sameValue(null, {}));
  });
});
