import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { isNfvError } from '../errors.js';
import { DESCRIPTOR_WORDS, Desc, DescriptorRing, portFlags } from './descriptor-ring.js';

/** `n` descriptors whose words are derived from `first + i`, so each is recognisable. */
function descriptors(first: number, n: number): Uint32Array {
  const out = new Uint32Array(n * DESCRIPTOR_WORDS);
  for (let i = 0; i < n; i++) {
    const seq = first + i;
    out[i * DESCRIPTOR_WORDS + Desc.Slot] = seq % 1000;
    out[i * DESCRIPTOR_WORDS + Desc.Length] = 60 + (seq % 1454);
    out[i * DESCRIPTOR_WORDS + Desc.PortFlags] = portFlags(seq & 3, seq & 0xff);
    out[i * DESCRIPTOR_WORDS + Desc.Meta] = (seq * 2654435761) >>> 0;
  }
  return out;
}

/** The shared cursor words, as a hostile peer with the whole buffer sees them. */
function cursors(ring: DescriptorRing): Int32Array {
  return new Int32Array(ring.shared.buffer, 0, 48);
}
const TAIL = 16;
const HEAD = 32;
const PRODUCER_SLEEPING = 19;
const CONSUMER_SLEEPING = 35;

/**
 * A worker that sleeps on `ring` (10 s at most) as a guest does: the producer side waits for room
 * (`waitForSpace`), the consumer side for data (`waitForData`). It then posts what the wait
 * returned and how long it took.
 */
function blockedWorker(ring: DescriptorRing, side: 'producer' | 'consumer'): Worker {
  const wait = side === 'producer' ? 'ring.waitForSpace(10000)' : 'ring.waitForData(0, 10000)';
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ DescriptorRing }) => {
      const ring = DescriptorRing.attach(workerData.shared);
      const started = performance.now();
      const answer = ${wait};
      parentPort.postMessage({ answer, ms: performance.now() - started });
    });`;
  return new Worker(source, {
    eval: true,
    workerData: { shared: ring.shared, module: new URL('./descriptor-ring.js', import.meta.url).href },
  });
}

describe('DescriptorRing', () => {
  it('packs port and flags into one word', () => {
    assert.equal(portFlags(0x1234, 0xabcd), 0xabcd1234);
    assert.equal(portFlags(0x11234, 0x1abcd), 0xabcd1234);
  });

  it('moves descriptors in order across many wrap-arounds', () => {
    const ring = DescriptorRing.create(8);
    const dst = new Uint32Array(8 * DESCRIPTOR_WORDS);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 200; round++) {
      const n = (round % 5) + 1;
      assert.equal(ring.enqueueBurst(descriptors(next, n), 0, n), n);
      next += n;
      const got = ring.dequeueBurst(dst, 0, 8);
      assert.equal(got, n);
      assert.deepEqual(dst.subarray(0, got * DESCRIPTOR_WORDS), descriptors(expected, got));
      expected += got;
    }
    const s = ring.stats();
    assert.equal(s.enqueued, next);
    assert.equal(s.dequeued, next);
    assert.equal(s.used, 0);
    assert.equal(s.invalid, 0);
  });

  it('takes only what fits from a burst bigger than the free space', () => {
    const ring = DescriptorRing.create(16);
    const src = descriptors(0, 40);
    assert.equal(ring.enqueueBurst(src, 0, 10), 10);
    assert.equal(ring.freeSpace(), 6);
    assert.equal(ring.enqueueBurst(src, 10, 30), 6, 'six fit');
    assert.equal(ring.enqueueBurst(src, 16, 24), 0, 'full');
    assert.equal(ring.available(), 16);
    const dst = new Uint32Array(40 * DESCRIPTOR_WORDS);
    assert.equal(ring.dequeueBurst(dst, 0, 5), 5);
    assert.equal(ring.enqueueBurst(src, 16, 24), 5);
    assert.equal(ring.dequeueBurst(dst, 5, 100), 16);
    assert.deepEqual(dst.subarray(0, 21 * DESCRIPTOR_WORDS), src.subarray(0, 21 * DESCRIPTOR_WORDS));
  });

  it('never reads or writes past the caller’s arrays', () => {
    const ring = DescriptorRing.create(16);
    const src = descriptors(0, 4);
    assert.equal(ring.enqueueBurst(src, 2, 10), 2, 'only two descriptors after index 2');
    assert.equal(ring.enqueueBurst(src, 4, 1), 0);
    const dst = new Uint32Array(3 * DESCRIPTOR_WORDS);
    assert.equal(ring.dequeueBurst(dst, 2, 16), 1);
    assert.equal(ring.dequeueBurst(dst, 0, 16), 1);
    assert.deepEqual(dst.subarray(0, 4), src.subarray(12, 16));
  });

  it('returns 0 from an empty ring, and a timed-out wait says false', () => {
    const ring = DescriptorRing.create(4);
    const dst = new Uint32Array(4 * DESCRIPTOR_WORDS);
    assert.equal(ring.dequeueBurst(dst, 0, 4), 0);
    assert.equal(ring.available(), 0);
    const started = performance.now();
    assert.equal(ring.waitForData(10, 20), false);
    assert.ok(performance.now() - started >= 15);
    assert.equal(ring.stats().sleeps, 1);
    ring.enqueueBurst(descriptors(0, 1), 0, 1);
    assert.equal(ring.waitForData(0, 1000), true, 'data already there: no sleep');
    assert.equal(ring.stats().sleeps, 1);
  });

  it('wakes an async waiter on the next enqueue, and only then notifies', async () => {
    const ring = DescriptorRing.create(4);
    ring.enqueueBurst(descriptors(0, 1), 0, 1);
    assert.equal(ring.stats().wakeups, 0, 'nobody asleep: no notify');
    ring.dequeueBurst(new Uint32Array(4), 0, 1);
    const started = performance.now();
    const waiting = ring.waitForDataAsync(5000);
    setTimeout(() => ring.enqueueBurst(descriptors(1, 1), 0, 1), 10);
    assert.equal(await waiting, true);
    assert.ok(performance.now() - started < 2000);
    assert.equal(ring.stats().wakeups, 1);
    assert.equal(await ring.waitForDataAsync(5000), true, 'still there');
    ring.dequeueBurst(new Uint32Array(4), 0, 1);
    assert.equal(await ring.waitForDataAsync(10), false);
  });

  it('wakes a consumer asleep on an empty ring without data: it returns false at once', async () => {
    const ring = DescriptorRing.create(4);
    ring.wakeConsumer();
    assert.equal(ring.stats().wakeups, 0, 'nobody asleep: no notify');
    const worker = blockedWorker(ring, 'consumer');
    try {
      const answer = once(worker, 'message');
      // Until the worker sleeps (its flag up), then wake it.
      const deadline = Date.now() + 10_000;
      while (Atomics.load(cursors(ring), CONSUMER_SLEEPING) === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 5));
      assert.notEqual(Atomics.load(cursors(ring), CONSUMER_SLEEPING), 0, 'the consumer went to sleep');
      ring.wakeConsumer();
      const [{ answer: data, ms }] = (await answer) as [{ answer: boolean; ms: number }];
      assert.equal(data, false, 'nothing was enqueued');
      assert.ok(ms < 9000, `woken, not timed out (${ms.toFixed(0)} ms)`);
      assert.equal(ring.stats().wakeups, 1);
    } finally {
      await worker.terminate();
    }
  });

  it('a producer facing a full ring sleeps until the consumer dequeues, woken by it', async () => {
    const ring = DescriptorRing.create(2);
    ring.enqueueBurst(descriptors(0, 2), 0, 2);
    assert.equal(ring.waitForSpace(10), false, 'full, and nobody dequeues: timed out');
    // The producer is a worker that blocks on the full ring; the consumer (here) dequeues later.
    const worker = blockedWorker(ring, 'producer');
    try {
      const answer = once(worker, 'message');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(ring.dequeueBurst(new Uint32Array(DESCRIPTOR_WORDS), 0, 1), 1);
      const [{ answer: room, ms }] = (await answer) as [{ answer: boolean; ms: number }];
      assert.equal(room, true);
      assert.ok(ms < 9000, `woken by the dequeue, not by its 10 s timeout (${ms.toFixed(0)} ms)`);
    } finally {
      await worker.terminate();
    }
  });

  it('wakes a producer asleep on a full ring only once half of it is free', async () => {
    const ring = DescriptorRing.create(8);
    ring.enqueueBurst(descriptors(0, 8), 0, 8);
    const worker = blockedWorker(ring, 'producer');
    try {
      let woken = false;
      const answer = once(worker, 'message');
      void answer.then(() => {
        woken = true;
      });
      // The producer has announced its sleep (the flag is in its cache line of the header).
      const deadline = Date.now() + 10_000;
      while (Atomics.load(cursors(ring), PRODUCER_SLEEPING) === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 5));
      assert.notEqual(Atomics.load(cursors(ring), PRODUCER_SLEEPING), 0, 'the producer went to sleep');
      const sink = new Uint32Array(8 * DESCRIPTOR_WORDS);
      assert.equal(ring.dequeueBurst(sink, 0, 3), 3);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(woken, false, 'five of eight still used: the producer sleeps on');
      assert.equal(ring.dequeueBurst(sink, 0, 1), 1);
      const [{ answer: room, ms }] = (await answer) as [{ answer: boolean; ms: number }];
      assert.equal(room, true);
      assert.ok(ms < 9000, `woken by the dequeue that freed half, not by its timeout (${ms.toFixed(0)} ms)`);
    } finally {
      await worker.terminate();
    }
  });

  it('wakes the host, asleep on a full ring, at the first dequeue: it serves other rings too', async () => {
    const ring = DescriptorRing.create(8);
    ring.enqueueBurst(descriptors(0, 8), 0, 8);
    const started = performance.now();
    const waiting = ring.waitForSpaceAsync(5000);
    setTimeout(() => ring.dequeueBurst(new Uint32Array(DESCRIPTOR_WORDS), 0, 1), 10);
    assert.equal(await waiting, true);
    const ms = performance.now() - started;
    assert.ok(ms < 2500, `woken by a dequeue of one, not by its 5 s timeout (${ms.toFixed(0)} ms)`);
  });

  it('detects a corrupted tail: moves nothing, counts it, never throws or blocks for long', () => {
    const ring = DescriptorRing.create(16);
    const consumer = DescriptorRing.attach(ring.shared);
    ring.enqueueBurst(descriptors(0, 4), 0, 4);
    const words = cursors(ring);
    const dst = new Uint32Array(16 * DESCRIPTOR_WORDS);
    for (const garbage of [17, 1_000_000, -1, -4]) {
      Atomics.store(words, TAIL, garbage);
      assert.equal(consumer.dequeueBurst(dst, 0, 16), 0, `tail ${garbage}`);
      assert.equal(consumer.available(), 0);
    }
    assert.equal(consumer.invalid(), 4);
    const started = performance.now();
    assert.equal(consumer.waitForData(5, 20), false, 'an impossible tail is "no data", slept out');
    assert.ok(performance.now() - started < 1000);
    assert.equal(consumer.invalid(), 5);
    assert.equal(ring.stats().used, 0);
    // A tail that is possible is taken at its word: the producer's own cursor is unaffected.
    Atomics.store(words, TAIL, 4);
    assert.equal(consumer.dequeueBurst(dst, 0, 16), 4);
  });

  it('detects a corrupted head on the producer side', () => {
    const ring = DescriptorRing.create(8);
    ring.enqueueBurst(descriptors(0, 3), 0, 3);
    Atomics.store(cursors(ring), HEAD, 5); // head past tail
    assert.equal(ring.enqueueBurst(descriptors(3, 1), 0, 1), 0);
    assert.equal(ring.freeSpace(), 0);
    assert.equal(ring.invalid(), 1);
    Atomics.store(cursors(ring), HEAD, 2);
    assert.equal(ring.enqueueBurst(descriptors(3, 8), 0, 8), 7);
  });

  it('copies each descriptor out once: a write after publication cannot reach the copy', () => {
    const ring = DescriptorRing.create(4);
    ring.enqueueBurst(descriptors(0, 1), 0, 1);
    const dst = new Uint32Array(DESCRIPTOR_WORDS);
    ring.dequeueBurst(dst, 0, 1);
    new Uint32Array(ring.shared.buffer, 192, 4).fill(0xffffffff);
    assert.deepEqual(dst, descriptors(0, 1));
  });

  it('survives cursors wrapping past 2³²', () => {
    const ring = DescriptorRing.create(8);
    const words = cursors(ring);
    Atomics.store(words, TAIL, -3);
    Atomics.store(words, HEAD, -3);
    const near = DescriptorRing.attach(ring.shared);
    const dst = new Uint32Array(8 * DESCRIPTOR_WORDS);
    for (let i = 0; i < 10; i++) {
      assert.equal(near.enqueueBurst(descriptors(i * 5, 5), 0, 5), 5);
      assert.equal(near.dequeueBurst(dst, 0, 8), 5);
      assert.deepEqual(dst.subarray(0, 20), descriptors(i * 5, 5));
    }
    assert.equal(near.invalid(), 0);
  });

  it('rejects a capacity that is not a power of two with NFV_ERR_BAD_ARGUMENT', () => {
    for (const capacity of [0, 1, 3, 100, 1000.5, -8, 2 ** 25, Number.NaN]) {
      assert.throws(
        () => DescriptorRing.create(capacity),
        (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT') && e.message.includes('power of two'),
        String(capacity),
      );
    }
    assert.equal(DescriptorRing.create(2).capacity, 2);
    const ring = DescriptorRing.create(64);
    assert.throws(
      () => DescriptorRing.attach({ ...ring.shared, capacity: 32 }),
      (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT'),
    );
    assert.throws(
      () =>
        DescriptorRing.attach({ buffer: new SharedArrayBuffer(ring.shared.buffer.byteLength), capacity: 64 }),
      (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT'),
    );
  });

  it('matches a FIFO model under random bursts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 80 })), { maxLength: 80 }),
        (log2, ops) => {
          const capacity = 1 << log2;
          const ring = DescriptorRing.create(capacity);
          const dst = new Uint32Array(80 * DESCRIPTOR_WORDS);
          let produced = 0;
          let consumed = 0;
          for (const [enqueue, n] of ops) {
            if (enqueue) {
              const sent = ring.enqueueBurst(descriptors(produced, n), 0, n);
              assert.equal(sent, Math.min(n, capacity - (produced - consumed)));
              produced += sent;
            } else {
              const got = ring.dequeueBurst(dst, 0, n);
              assert.equal(got, Math.min(n, produced - consumed));
              assert.deepEqual(dst.subarray(0, got * DESCRIPTOR_WORDS), descriptors(consumed, got));
              consumed += got;
            }
            assert.equal(ring.available(), produced - consumed);
            assert.equal(ring.freeSpace(), capacity - (produced - consumed));
          }
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });
});
