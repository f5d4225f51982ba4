import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatMicros, nfTable } from './format.js';

const nf = {
  name: 'esc',
  image: 'test/esc',
  vnic: 'direct',
  placement: 'isolated',
  replicas: 1,
  packets: 10,
  restarts: 1,
  quarantined: false,
  drops: { denied: 2 },
};

describe('nfTable', () => {
  it('shows a refused column only when an image tried what it was not granted', () => {
    const plain = nfTable([
      { ...nf, refusals: 0 },
      { ...nf, name: 'fw' },
    ]);
    assert.ok(!plain[0].includes('refused'), plain[0]);
    const refused = nfTable([
      { ...nf, refusals: 24 },
      { ...nf, name: 'fw' },
    ]);
    assert.match(refused[0], /refused\s*$/);
    assert.match(refused[2], /denied 2\s+24\s*$/);
    assert.match(refused[3], /denied 2\s+0\s*$/);
  });
});

describe('formatMicros', () => {
  it('shows microseconds below a millisecond and tenths of milliseconds from there', () => {
    assert.equal(formatMicros(54.4), '54 µs');
    assert.equal(formatMicros(999.4), '999 µs');
    assert.equal(formatMicros(1000), '1.0 ms');
    assert.equal(formatMicros(16384), '16.4 ms');
  });
});
