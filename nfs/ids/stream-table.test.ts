import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FlowKey } from '../../src/packet/flow-key.js';
import { SegmentResult, StreamFlag, StreamStat, StreamTable } from './stream-table.js';

function table(overrides: Partial<ConstructorParameters<typeof StreamTable>[0]> = {}): StreamTable {
  return new StreamTable({
    maxStreams: 16,
    tailBytes: 64,
    reassemblyBytes: 64 * 2048,
    streamHoldBytes: 1 << 16,
    ...overrides,
  });
}

function key(n: number): FlowKey {
  const k = new FlowKey();
  k.setV4(0x0a000001, 0x0a000002, 6, 40000 + n, 80);
  return k;
}

describe('StreamTable reassembly', () => {
  it('delivers every byte once, in order, whatever the segmentation, order and overlaps (first wins)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        fc.array(fc.tuple(fc.nat(2999), fc.integer({ min: 1, max: 600 })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (stream, pieces, isn) => {
          const t = table();
          const s = t.create(key(0), 1, 0);
          const out: number[] = [];
          const deliver = (b: Uint8Array, at: number, n: number): void => {
            for (let k = 0; k < n; k++) out.push(b[at + k]);
          };
          t.segment(2 * s, isn, stream, 0, 0, deliver); // learn the ISN
          // Random (possibly overlapping) pieces, then the whole stream in 500-byte pieces to fill the rest.
          const segments = [...pieces.map(([at, n]) => [at, Math.min(n, stream.length - at)] as const)]
            .filter(([at, n]) => at < stream.length && n > 0)
            .concat(
              Array.from(
                { length: Math.ceil(stream.length / 500) },
                (_, k) => [k * 500, Math.min(500, stream.length - k * 500)] as const,
              ),
            );
          for (const [at, n] of segments) t.segment(2 * s, (isn + at) >>> 0, stream, at, n, deliver);
          assert.deepEqual(Uint8Array.from(out), stream);
          assert.equal(t.delivered[2 * s], stream.length);
          assert.equal(t.heldBytes[2 * s], 0);
          assert.equal(t.chunksUsed, 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps the first copy of overlapping bytes and counts a conflicting copy', () => {
    const t = table();
    const s = t.create(key(0), 1, 0);
    const out: string[] = [];
    const deliver = (b: Uint8Array, at: number, n: number): void => {
      out.push(new TextDecoder().decode(b.subarray(at, at + n)));
    };
    const enc = (x: string): Uint8Array => new TextEncoder().encode(x);
    assert.equal(t.segment(0, 100, enc('AAAA'), 0, 4, deliver), SegmentResult.Delivered);
    assert.equal(t.segment(0, 108, enc('CCCC'), 0, 4, deliver), SegmentResult.Held);
    // Overlaps the held CCCC with different bytes: only the gap is taken.
    assert.equal(t.segment(0, 106, enc('XXXXXX'), 0, 6, deliver), SegmentResult.Held);
    // Overlaps delivered AAAA with different bytes.
    assert.equal(t.segment(0, 102, enc('ZZBB'), 0, 4, deliver), SegmentResult.Delivered);
    assert.equal(out.join(''), 'AAAABBXXCCCC');
    assert.equal(t.stats[StreamStat.Overlaps], 2);
    assert.equal(t.stats[StreamStat.OverlapConflicts], 2);
    assert.equal(t.segment(0, 100, enc('AAAA'), 0, 4, deliver), SegmentResult.Old);
    assert.equal(s, 0);
  });

  it('bounds held bytes per stream and in the pool, and counts what does not fit', () => {
    const t = table({ streamHoldBytes: 1000, reassemblyBytes: 4 * 2048 });
    const noop = (): void => {};
    const payload = new Uint8Array(400);
    const a = t.create(key(1), 1, 0);
    const b = t.create(key(2), 2, 0);
    t.segment(2 * a, 0, payload, 0, 0, noop);
    t.segment(2 * b, 0, payload, 0, 0, noop);
    const results = [1000, 2000, 3000].map((seq) => t.segment(2 * a, seq, payload, 0, 400, noop));
    assert.deepEqual(results, [SegmentResult.Held, SegmentResult.Held, SegmentResult.Overflow]);
    const more = [1000, 2000, 3000].map((seq) => t.segment(2 * b, seq, payload, 0, 400, noop));
    assert.deepEqual(more, [SegmentResult.Held, SegmentResult.Held, SegmentResult.Overflow]);
    assert.equal(t.chunksUsed, 4);
    const c = t.create(key(3), 3, 0);
    t.segment(2 * c, 0, payload, 0, 0, noop);
    assert.equal(t.segment(2 * c, 1000, payload, 0, 400, noop), SegmentResult.Overflow);
    assert.equal(t.stats[StreamStat.HoldOverflow], 3);
    t.remove(a);
    assert.equal(t.chunksUsed, 2);
    assert.equal(t.segment(2 * c, 5_000_000, payload, 0, 400, noop), SegmentResult.Gap);
  });

  it('evicts a half-open stream before an established one when full, and expires idle ones', () => {
    const t = table({ maxStreams: 4 });
    const slots = [0, 1, 2, 3].map((n) => t.create(key(n), n, n));
    t.flags[slots[0]] |= StreamFlag.Established;
    t.create(key(9), 9, 10);
    assert.equal(t.size, 4);
    const rev = new FlowKey();
    assert.ok(t.find(key(0), rev, 0) >= 0, 'the established stream survives');
    assert.equal(t.find(key(1), rev, 1), -1, 'the oldest half-open one went');
    assert.equal(t.stats[StreamStat.Evicted], 1);
    assert.equal(t.expire(1e12, 100), 4);
    assert.equal(t.size, 0);
  });
});
