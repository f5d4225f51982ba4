import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowKey } from './flow-key.js';
import { FlowTable } from './flow-table.js';

function keyFor(i: number): FlowKey {
  const key = new FlowKey();
  key.setV4(0xc6120000 + i, 0xc6120001, 6, 1024 + (i & 0xffff), 80);
  return key;
}

describe('FlowTable', () => {
  it('rounds its capacity up to a power of two', () => {
    assert.equal(new FlowTable(1000).capacity, 1024);
    assert.equal(new FlowTable(1).capacity, 16);
  });

  it('finds what it stored, at a stable entry, and nothing else', () => {
    const table = new FlowTable(4096);
    const slots = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      const key = keyFor(i);
      assert.equal(table.find(key, key.hash()), -1);
      const slot = table.insert(key, key.hash());
      assert.ok(slot >= 0, `key ${i} inserted`);
      slots.set(i, slot);
    }
    assert.equal(table.size, 2000);
    for (let i = 0; i < 2000; i++) {
      const key = keyFor(i);
      assert.equal(table.find(key, key.hash()), slots.get(i));
      assert.equal(table.keyAt(slots.get(i) ?? -1, new FlowKey()).toString(), key.toString());
    }
    const absent = keyFor(5000);
    assert.equal(table.find(absent, absent.hash()), -1);
  });

  it('refuses an insert when the probe run is full, and counts nothing for it', () => {
    const table = new FlowTable(16);
    let inserted = 0;
    for (let i = 0; i < 40; i++) {
      const key = keyFor(i);
      if (table.insert(key, key.hash()) >= 0) inserted++;
    }
    assert.equal(inserted, 16);
    assert.equal(table.size, 16);
  });

  it('tells apart keys whose hashes collide', () => {
    const table = new FlowTable(64);
    const a = keyFor(1);
    const b = keyFor(2);
    // Force both into one probe run by giving them the same hash.
    const slotA = table.insert(a, 7);
    const slotB = table.insert(b, 7);
    assert.notEqual(slotA, slotB);
    assert.equal(table.find(a, 7), slotA);
    assert.equal(table.find(b, 7), slotB);
    table.clear();
    assert.equal(table.find(a, 7), -1);
    assert.equal(table.size, 0);
  });

  it('finds a key whose hash is 0, and forgets every key and hash on clear', () => {
    const table = new FlowTable(16);
    const zero = keyFor(3);
    const other = keyFor(4);
    const slotZero = table.insert(zero, 0);
    assert.equal(table.find(zero, 0), slotZero);
    // A probe run that starts on the hash-0 slot and goes on past it.
    const slotOther = table.insert(other, 0);
    assert.equal(table.find(other, 0), slotOther);
    table.clear();
    assert.deepEqual(Array.from(table.used), new Array(16).fill(0));
    assert.equal(table.find(zero, 0), -1);
    assert.equal(table.find(other, 0), -1);
    // The entries are reused, and a stale key in a freed entry is never found.
    const a = keyFor(5);
    const slotA = table.insert(a, 0);
    assert.equal(slotA, slotZero);
    assert.equal(table.find(a, 0), slotA);
    assert.equal(table.find(other, 0), -1);
  });

  it('numbers entries densely in insertion order, however sparse the index', () => {
    const table = new FlowTable(1 << 16);
    for (let i = 0; i < 1000; i++) {
      const key = keyFor(i * 7919);
      assert.equal(table.insert(key, key.hash()), i);
    }
    assert.equal(table.used.indexOf(0), 1000);
    for (let i = 999; i >= 0; i--) {
      const key = keyFor(i * 7919);
      assert.equal(table.find(key, key.hash()), i);
    }
  });

  it('agrees with a Map through inserts, lookups and clears, with colliding hashes', () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const table = new FlowTable(256);
    const reference = new Map<string, number>();
    for (let step = 0; step < 20_000; step++) {
      const key = keyFor(random(400));
      // A few hash values for many keys: long probe runs and equal hashes of different keys.
      const hash = random(4) === 0 ? random(3) : key.hash();
      const name = `${key.toString()}#${hash}`;
      const action = random(100);
      if (action === 0) {
        table.clear();
        reference.clear();
      } else if (action < 50) {
        assert.equal(table.find(key, hash), reference.get(name) ?? -1, `find ${name} at step ${step}`);
      } else if (
        !reference.has(name) &&
        [...reference.keys()].every((k) => !k.startsWith(`${key.toString()}#`))
      ) {
        const entry = table.insert(key, hash);
        if (entry >= 0) {
          assert.equal(entry, reference.size, 'the next entry in order');
          reference.set(name, entry);
        } else assert.equal(table.find(key, hash), -1, 'a refused key is not there');
      }
      assert.equal(table.size, reference.size);
    }
  });
});
