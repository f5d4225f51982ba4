import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostPlan, NfPlan } from './host.js';
import { describeDiff, diffPlans, sameValue } from './reconfigure-diff.js';

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

  it('refuses a tunnel port changed on the address it binds, and allows one that moves', () => {
    const vxlan = (vni: number, port?: number): HostPlan['ports'][string] => ({
      kind: 'vxlan',
      options: { bind: { address: '192.0.2.1', ...(port === undefined ? {} : { port }) }, vni },
    });
    const on = (p: HostPlan['ports'][string]): HostPlan => ({ ...base, ports: { ...base.ports, vx: p } });
    const kept = diffPlans(on(vxlan(1)), on(vxlan(2, 4789)));
    assert.deepEqual(kept.ports.changed, [{ name: 'vx', fields: ['port'] }]);
    assert.equal(kept.refused.length, 1);
    assert.match(
      kept.refused[0],
      /^ports\.vx: a vxlan port that keeps its bind address 192\.0\.2\.1:4789 cannot change live/,
    );
    assert.match(describeDiff(kept)[0], /^! ports\.vx: /);
    assert.deepEqual(diffPlans(on(vxlan(1)), on(vxlan(2, 4790))).refused, []);
    const tap = (batch: number): HostPlan['ports'][string] => ({
      kind: 'tap',
      options: { device: 't0', batch },
    });
    assert.deepEqual(diffPlans(on(tap(64)), on(tap(16))).refused, [], 'a TAP port takes its device over');
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
