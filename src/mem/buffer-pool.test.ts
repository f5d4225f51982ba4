import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isNfvError } from '../errors.js';
import { BufferPool, Owner } from './buffer-pool.js';

/** The free stack's depth word and the stack itself, as a guest with the whole buffer sees them. */
function scribbleView(pool: BufferPool): { header: Int32Array; stack: Uint32Array } {
  return {
    header: new Int32Array(pool.shared.buffer, 0, 16),
    stack: new Uint32Array(pool.shared.buffer, 64, pool.slotCount),
  };
}

describe('BufferPool', () => {
  it('hands out every slot once, in order, then -1', () => {
    const pool = BufferPool.create({ slotCount: 100 });
    assert.equal(pool.slotSize, 2048);
    assert.equal(pool.bytes.byteLength, 100 * 2048);
    assert.equal(pool.bytes.byteOffset % 64, 0);
    assert.equal(pool.freeCount(), 100);
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const slot = pool.alloc();
      assert.equal(slot, i);
      assert.equal(pool.owner(slot), Owner.Host);
      seen.add(slot);
    }
    assert.equal(seen.size, 100);
    assert.equal(pool.freeCount(), 0);
    assert.equal(pool.alloc(), -1);
    assert.equal(pool.stats().allocFailures, 1);
    assert.equal(pool.slotOffset(7), 7 * 2048);
  });

  it('allocates in bursts, short when it runs dry, at an offset', () => {
    const pool = BufferPool.create({ slotSize: 64, slotCount: 40 });
    const out = new Uint32Array(64).fill(0xeeeeeeee);
    assert.equal(pool.allocBurst(out, 32, 4), 32);
    assert.equal(out[3], 0xeeeeeeee);
    assert.deepEqual([...out.subarray(4, 36)], [...Array(32).keys()]);
    assert.equal(pool.allocBurst(out, 32, 36), 8);
    assert.equal(pool.freeCount(), 0);
    assert.equal(pool.stats().allocFailures, 24);
    assert.equal(pool.freeBurst(out, 36, 8), 8);
    assert.equal(pool.freeBurst(out, 4, 32), 32);
    assert.equal(pool.freeCount(), 40);
    const s = pool.stats();
    assert.equal(s.allocs, 40);
    assert.equal(s.frees, 40);
  });

  it('reuses the most recently freed slot first (cache-warm LIFO)', () => {
    const pool = BufferPool.create({ slotSize: 64, slotCount: 8 });
    const a = pool.alloc();
    const b = pool.alloc();
    assert.equal(pool.free(a), true);
    assert.equal(pool.alloc(), a);
    assert.equal(pool.free(b), true);
    assert.equal(pool.alloc(), b);
  });

  it('detects double and invalid frees, counts them, and keeps the free list whole', () => {
    const pool = BufferPool.create({ slotSize: 64, slotCount: 16 });
    const slot = pool.alloc();
    assert.equal(pool.free(slot), true);
    assert.equal(pool.free(slot), false);
    assert.equal(pool.free(3), false, 'never allocated');
    assert.equal(pool.free(16), false);
    assert.equal(pool.free(-1), false);
    assert.equal(pool.free(2 ** 32 + 1), false, 'not truncated to slot 1');
    assert.equal(pool.free(1.5), false);
    const dup = new Uint32Array([5, 5, 5]);
    pool.setOwner(pool.alloc(), Owner.Host); // slot 0 again
    assert.equal(pool.freeBurst(dup, 0, 3), 0, 'slot 5 is free');
    const s = pool.stats();
    assert.equal(s.doubleFrees, 5);
    assert.equal(s.invalidFrees, 4);
    assert.equal(pool.freeCount(), 15);
    // Every slot still comes out exactly once.
    const out = new Uint32Array(32);
    assert.equal(pool.allocBurst(out, 32), 15);
    assert.equal(new Set(out.subarray(0, 15)).size, 15);
    assert.ok(!out.subarray(0, 15).includes(0));
  });

  it('tracks owners and reclaims the slots of a dead guest', () => {
    const pool = BufferPool.create({ slotSize: 64, slotCount: 64 });
    const out = new Uint32Array(64);
    assert.equal(pool.allocBurst(out, 48), 48);
    for (let i = 0; i < 48; i++) assert.equal(pool.setOwner(out[i], i % 3 === 0 ? 7 : 2), true);
    assert.equal(pool.setOwner(60, 2), false, 'a free slot is not handed out');
    assert.equal(pool.setOwner(out[0], 0), false, 'freeing goes through free()');
    assert.equal(pool.setOwner(out[0], 256), false);
    assert.equal(pool.setOwner(64, 2), false);
    assert.equal(pool.owner(64), -1);
    assert.equal(pool.owner(60), Owner.Free);
    assert.equal(pool.reclaimOwnedBy(7), 16);
    assert.equal(pool.freeCount(), 32);
    assert.equal(pool.reclaimOwnedBy(7), 0);
    assert.equal(pool.reclaimOwnedBy(0), 0, 'free slots are not "owned"');
    assert.equal(pool.reclaimOwnedBy(2), 32);
    assert.equal(pool.freeCount(), 64);
    assert.equal(pool.stats().doubleFrees, 0);
    assert.equal(pool.free(out[0]), false, 'a reclaimed slot is free: freeing it again is a double free');
  });

  it('a second view attached to the shared buffer sees the same memory', () => {
    const pool = BufferPool.create({ slotSize: 128, slotCount: 10 });
    const shared = structuredClone(pool.shared);
    const other = BufferPool.attach(shared);
    assert.equal(other.slotCount, 10);
    assert.equal(other.slotSize, 128);
    const slot = pool.alloc();
    pool.setOwner(slot, 9);
    pool.bytes[pool.slotOffset(slot) + 127] = 0xab;
    assert.equal(other.bytes[other.slotOffset(slot) + 127], 0xab);
    assert.equal(other.owner(slot), 9);
    assert.equal(other.freeCount(), 9);
    other.bytes[other.slotOffset(slot)] = 0xcd;
    assert.equal(pool.bytes[pool.slotOffset(slot)], 0xcd);
  });

  it('rejects bad geometry and foreign buffers with NFV_ERR_BAD_ARGUMENT', () => {
    const bad = (run: () => unknown, field: string): void =>
      assert.throws(run, (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT') && e.message.includes(field));
    bad(() => BufferPool.create({ slotSize: 100, slotCount: 4 }), 'slotSize');
    bad(() => BufferPool.create({ slotSize: 0, slotCount: 4 }), 'slotSize');
    bad(() => BufferPool.create({ slotCount: 0 }), 'slotCount');
    bad(() => BufferPool.create({ slotCount: 2.5 }), 'slotCount');
    bad(() => BufferPool.create({ slotCount: 2 ** 24 + 1 }), 'slotCount');
    bad(() => BufferPool.create({ slotSize: 65536, slotCount: 2 ** 16 }), '4 GiB');
    const pool = BufferPool.create({ slotSize: 64, slotCount: 4 });
    bad(() => BufferPool.attach({ ...pool.shared, slotCount: 5 }), 'not a buffer pool');
    bad(
      () =>
        BufferPool.attach({ ...pool.shared, buffer: new SharedArrayBuffer(pool.shared.buffer.byteLength) }),
      'not a buffer pool',
    );
    bad(
      () => BufferPool.attach({ ...pool.shared, buffer: new ArrayBuffer(8) as unknown as SharedArrayBuffer }),
      'SharedArrayBuffer',
    );
  });

  it('survives a guest scribbling on the free stack: no throw, no slot handed out twice', () => {
    const pool = BufferPool.create({ slotSize: 64, slotCount: 32 });
    const { header, stack } = scribbleView(pool);
    const out = new Uint32Array(32);
    assert.equal(pool.allocBurst(out, 4), 4); // slots 0..3 held by the host
    stack[27] = 1; // a held slot
    stack[26] = 0xffff; // out of range
    const got = pool.allocBurst(out, 32, 4);
    assert.equal(got, 28, 'every free slot, recovered from the owner table');
    assert.equal(new Set(out).size, 32);
    assert.ok(pool.stats().corruptFreeEntries >= 2);
    header[3] = -5; // freeTop
    assert.equal(pool.freeBurst(out, 0, 32), 32);
    assert.equal(pool.freeCount(), 32);
    header[3] = 1_000_000;
    assert.equal(pool.allocBurst(out, 32), 32);
    assert.equal(new Set(out).size, 32);
    assert.ok(pool.stats().rebuilds >= 2);
  });

  it('matches a model under random alloc/free/reclaim sequences', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('alloc' as const), n: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ kind: fc.constant('free' as const), pick: fc.array(fc.nat(), { maxLength: 20 }) }),
      fc.record({ kind: fc.constant('own' as const), pick: fc.nat(), id: fc.integer({ min: 2, max: 4 }) }),
      fc.record({ kind: fc.constant('reclaim' as const), id: fc.integer({ min: 2, max: 4 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const pool = BufferPool.create({ slotSize: 64, slotCount: 24 });
        const held = new Map<number, number>(); // slot → owner
        const out = new Uint32Array(24);
        let doubles = 0;
        for (const o of ops) {
          if (o.kind === 'alloc') {
            const got = pool.allocBurst(out, o.n);
            assert.equal(got, Math.min(o.n, 24 - held.size));
            for (let i = 0; i < got; i++) {
              assert.equal(held.has(out[i]), false);
              held.set(out[i], Owner.Host);
            }
          } else if (o.kind === 'free') {
            const slots = new Uint32Array(o.pick.map((p) => p % 24));
            let expected = 0;
            for (const s of slots) {
              if (held.delete(s)) expected++;
              else doubles++;
            }
            assert.equal(pool.freeBurst(slots, 0, slots.length), expected);
          } else if (o.kind === 'own') {
            const slot = o.pick % 24;
            assert.equal(pool.setOwner(slot, o.id), held.has(slot));
            if (held.has(slot)) held.set(slot, o.id);
          } else {
            let expected = 0;
            for (const [slot, id] of held) {
              if (id === o.id) {
                held.delete(slot);
                expected++;
              }
            }
            assert.equal(pool.reclaimOwnedBy(o.id), expected);
          }
          assert.equal(pool.freeCount(), 24 - held.size);
          for (let s = 0; s < 24; s++) assert.equal(pool.owner(s), held.get(s) ?? Owner.Free);
        }
        assert.equal(pool.stats().doubleFrees, doubles);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});
