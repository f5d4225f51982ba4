import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maglevPermutation, maglevTableSize, nextPrime, populateMaglev } from './maglev.js';

const names = (n: number, from = 0): string[] =>
  Array.from({ length: n }, (_, i) => `10.${(i + from) >> 8}.${(i + from) & 255}.1`);

function slotCounts(table: Uint16Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const b of table) counts[b]++;
  return counts;
}

/** A fixed stream of 32-bit flow hashes (xorshift32). */
function flowHashes(count: number): Uint32Array {
  const out = new Uint32Array(count);
  let x = 0x12345678;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
  return out;
}

/** Fraction of flows whose backend (by name) differs between two tables. */
function moved(
  hashes: Uint32Array,
  a: { table: Uint16Array; names: string[] },
  b: { table: Uint16Array; names: string[] },
): number {
  let changed = 0;
  for (const h of hashes)
    if (a.names[a.table[h % a.table.length]] !== b.names[b.table[h % b.table.length]]) changed++;
  return changed / hashes.length;
}

describe('maglev', () => {
  it('sizes the table as the smallest prime ≥ 100 × backends, capped at 65537', () => {
    assert.equal(nextPrime(100), 101);
    assert.equal(nextPrime(2), 2);
    assert.equal(maglevTableSize(1), 101);
    assert.equal(maglevTableSize(3), 307);
    assert.equal(maglevTableSize(4), 401);
    assert.equal(maglevTableSize(256), 25601);
    assert.equal(maglevTableSize(1000), 65537);
    for (const n of [1, 2, 5, 17, 100, 255]) assert.ok(maglevTableSize(n) >= 100 * n);
  });

  it('gives every backend a full permutation (skip coprime with the prime size)', () => {
    const size = 101;
    const { offset, skip } = maglevPermutation('10.0.0.1', size);
    assert.ok(offset < size && skip >= 1 && skip < size);
    const seen = new Set<number>();
    for (let j = 0; j < size; j++) seen.add((offset + j * skip) % size);
    assert.equal(seen.size, size);
  });

  it('with N equal backends, slot counts differ by at most 1', () => {
    for (const n of [1, 2, 3, 4, 7, 10, 33, 100, 256]) {
      const size = maglevTableSize(n);
      const counts = slotCounts(populateMaglev(names(n), new Array<number>(n).fill(1), size), n);
      assert.ok(
        Math.max(...counts) - Math.min(...counts) <= 1,
        `${n} backends: ${Math.min(...counts)}–${Math.max(...counts)}`,
      );
      assert.equal(
        counts.reduce((x, y) => x + y),
        size,
      );
    }
  });

  it('gives weighted backends slots in proportion to their weights', () => {
    const weights = [1, 2, 3, 4];
    const size = maglevTableSize(4);
    const counts = slotCounts(populateMaglev(names(4), weights, size), 4);
    const unit = size / 10;
    counts.forEach((count, b) =>
      assert.ok(Math.abs(count - weights[b] * unit) <= 2, `backend ${b}: ${count} slots`),
    );
  });

  it('is deterministic: the same backends give the same table', () => {
    const a = populateMaglev(names(5), [1, 1, 1, 1, 1], 503);
    const b = populateMaglev(names(5), [1, 1, 1, 1, 1], 503);
    assert.deepEqual(a, b);
  });

  it('removing one of N backends moves about 1/N of flows; adding one moves about 1/(N+1)', () => {
    // The table size stays the same across the change (the load balancer sizes every table for
    // its largest pool); a different size would remap nearly everything.
    const size = maglevTableSize(256);
    const hashes = flowHashes(100_000);
    for (const n of [4, 10, 20, 100]) {
      const all = names(n);
      const before = { names: all, table: populateMaglev(all, new Array<number>(n).fill(1), size) };
      const fewer = all.filter((_, i) => i !== 1);
      const after = {
        names: fewer,
        table: populateMaglev(fewer, new Array<number>(n - 1).fill(1), size),
      };
      const removed = moved(hashes, before, after);
      // The removed backend's flows (1/N) must move; others may move a little (the table size changes too).
      console.log(`maglev ${n}: remove moves ${removed.toFixed(4)} (1/N = ${(1 / n).toFixed(4)})`);
      assert.ok(removed >= 1 / n - 0.01 && removed <= 1 / n + 0.02, `remove 1 of ${n}: ${removed}`);
      const more = [...all, '10.200.0.1'];
      const added = {
        names: more,
        table: populateMaglev(more, new Array<number>(n + 1).fill(1), size),
      };
      const addedShare = moved(hashes, before, added);
      console.log(`maglev ${n}: add moves ${addedShare.toFixed(4)} (1/(N+1) = ${(1 / (n + 1)).toFixed(4)})`);
      assert.ok(
        addedShare >= 1 / (n + 1) - 0.01 && addedShare <= 1 / (n + 1) + 0.02,
        `add 1 to ${n}: ${addedShare}`,
      );
    }
  });

  it('rejects an empty pool and a size that is not prime', () => {
    assert.throws(() => populateMaglev([], [], 101), /no backends/);
    assert.throws(() => populateMaglev(['a'], [1], 100), /not prime/);
  });
});
