import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeStatus } from './fake-host.js';
import { metricFragment } from './metrics.js';
import { ratesBetween } from './rates.js';

describe('ratesBetween', () => {
  it('divides differences by the interval, per port, NF and drop reason', () => {
    const before = fakeStatus();
    const now = fakeStatus();
    now.received += 500;
    now.sent += 400;
    now.ports.out.sent += 400;
    now.nfs[0].packets += 500;
    now.nfs[0].drops.denied += 100;
    now.hostDrops.no_chain = 10;
    const r = ratesBetween(before, now, 2);
    assert.equal(r.received, 250);
    assert.equal(r.sent, 200);
    assert.equal(r.ports.out, 200);
    assert.equal(r.nfs[0].pps, 250);
    assert.equal(r.nfs[0].drops.denied, 50);
    assert.equal(r.hostDrops.no_chain, 5, 'a reason that appeared counts from 0');
    assert.equal(r.interval, 2);
  });

  it('never reports a negative rate or divides by zero', () => {
    const before = fakeStatus();
    const now = fakeStatus();
    now.nfs[0].packets = 0; // restarted from an older snapshot
    assert.equal(ratesBetween(before, now, 1).nfs[0].pps, 0);
    now.received += 10;
    assert.equal(ratesBetween(before, now, 0).received, 0);
  });
});

describe('metricFragment', () => {
  it('turns counter names into metric name fragments', () => {
    assert.equal(metricFragment('rule_hits'), 'rule_hits');
    assert.equal(metricFragment('ruleHits'), 'rule_hits');
    assert.equal(metricFragment('rx-bytes'), 'rx_bytes');
    assert.equal(metricFragment('4xx'), '_4xx');
    assert.equal(metricFragment('--'), 'unnamed');
  });
});
