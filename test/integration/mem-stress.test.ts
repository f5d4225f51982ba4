/**
 * The shared-memory packet path under real threads: descriptors move through DescriptorRings
 * between worker_threads in seeded random bursts, each carrying a sequence number in `meta` and a
 * buffer-pool slot whose first words the threads stamp and check. Every test proves that no
 * descriptor is lost, duplicated or reordered, that slot contents written before a burst was
 * published are what the next thread reads, and that every slot is back in the pool at the end.
 *
 *   1. source worker ──ring──▶ sink worker                       10⁷ descriptors
 *   2. host ──ring──▶ forward worker ──ring──▶ host                4·10⁶, host allocates and frees each
 *   3. host ──▶ worker A ──▶ worker B ──▶ host                     3·10⁶, a 2-NF chain: 3 threads, 2 cores
 *   4. as 2, with the worker terminated mid-stream: the host reclaims what the dead guest held
 *
 * Consumers sleep with Atomics.wait (workers) or Atomics.waitAsync (the host's main thread), so the
 * machine's two cores are not burnt by spinning. Every test has a deadline and terminates its
 * workers in `finally`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { BufferPool, DESCRIPTOR_WORDS, Desc, DescriptorRing, Owner, portFlags } from '../../src/mem/index.js';
import type { RingWorkerData, RingWorkerResult } from './workers/ring-worker.js';

const WORKER = new URL('./workers/ring-worker.js', import.meta.url);
const SLOT_SIZE = 128;
const SLOT_COUNT = 4096;
const RING_CAPACITY = 1024;
const MAX_BURST = 64;
const SPIN_POLLS = 200;
const GUEST = Owner.FirstGuest;

interface Running {
  worker: Worker;
  result: Promise<RingWorkerResult>;
}

function start(data: Omit<RingWorkerData, 'spinPolls'>): Running {
  const worker = new Worker(WORKER, { workerData: { spinPolls: SPIN_POLLS, ...data } });
  const result = new Promise<RingWorkerResult>((resolve, reject) => {
    worker.once('message', (m: RingWorkerResult) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${data.role} worker exited (${code}) before reporting`)));
  });
  // A rejection after the test has moved on (a terminated worker) must not become unhandled.
  result.catch(() => undefined);
  return { worker, result };
}

async function stopAll(running: Running[]): Promise<void> {
  await Promise.all(running.map((r) => r.worker.terminate()));
}

function assertClean(r: RingWorkerResult, total: number): void {
  assert.equal(r.firstError, null, `${r.role}: ${r.firstError}`);
  assert.equal(r.errors, 0);
  assert.equal(r.timedOut, false, `${r.role} timed out`);
  assert.equal(r.invalid, 0);
  assert.equal(r.moved, total);
}

interface HostResult {
  sent: number;
  received: number;
  errors: number;
  firstError: string | null;
  ringFull: number;
  waits: number;
}

/**
 * The host's side of a chain on the main thread: allocates a slot per descriptor, stamps it
 * (word 0 = sequence, word 1 = 0), hands it to `GUEST`, enqueues; takes descriptors back, checks
 * order, owner and the stamps of `stages` workers, frees. Never blocks the thread: when nothing
 * moves it awaits `waitForDataAsync`. Stops after `total` came back, when `stopAfter` have come
 * back, or at `deadline`.
 */
async function host(
  pool: BufferPool,
  toGuest: DescriptorRing,
  fromGuest: DescriptorRing,
  options: { total: number; stages: number; deadline: number; seed: number; stopAfter?: number },
): Promise<HostResult> {
  const { total, stages, deadline } = options;
  const stopAfter = options.stopAfter ?? total;
  const words = new Uint32Array(pool.bytes.buffer, pool.bytes.byteOffset, pool.bytes.byteLength / 4);
  const slotWords = pool.slotSize / 4;
  const slots = new Uint32Array(MAX_BURST);
  const tx = new Uint32Array(MAX_BURST * DESCRIPTOR_WORDS);
  const rx = new Uint32Array(MAX_BURST * DESCRIPTOR_WORDS);
  const done = new Uint32Array(MAX_BURST);
  let random = options.seed | 1;
  const r: HostResult = { sent: 0, received: 0, errors: 0, firstError: null, ringFull: 0, waits: 0 };
  const fail = (message: string): void => {
    if (r.errors++ === 0) r.firstError = message;
  };
  let idle = 0;
  let loops = 0;
  while (r.received < stopAfter) {
    if ((++loops & 1023) === 0 && Date.now() > deadline) break;
    let moved = 0;
    if (r.sent < total) {
      random ^= random << 13;
      random ^= random >>> 17;
      random ^= random << 5;
      const want = Math.min(((random >>> 0) % MAX_BURST) + 1, total - r.sent, toGuest.freeSpace());
      const got = pool.allocBurst(slots, want);
      for (let i = 0; i < got; i++) {
        const slot = slots[i];
        const seq = r.sent + i;
        pool.setOwner(slot, GUEST);
        words[slot * slotWords] = seq;
        words[slot * slotWords + 1] = 0;
        const d = i * DESCRIPTOR_WORDS;
        tx[d + Desc.Slot] = slot;
        tx[d + Desc.Length] = 60 + (seq & 1023);
        tx[d + Desc.PortFlags] = portFlags(1, 0);
        tx[d + Desc.Meta] = seq;
      }
      const sent = toGuest.enqueueBurst(tx, 0, got);
      if (sent < got) {
        // ring_full: the rest go back to the pool and are offered again later (same sequence numbers).
        r.ringFull += got - sent;
        pool.freeBurst(slots, sent, got - sent);
      }
      r.sent += sent;
      moved += sent;
    }
    const n = fromGuest.dequeueBurst(rx, 0, MAX_BURST);
    for (let i = 0; i < n; i++) {
      const d = i * DESCRIPTOR_WORDS;
      const slot = rx[d + Desc.Slot];
      const seq = rx[d + Desc.Meta];
      done[i] = slot;
      if (seq !== r.received + i) fail(`expected sequence ${r.received + i}, got ${seq}`);
      if (pool.owner(slot) !== GUEST) fail(`slot ${slot} came back owned by ${pool.owner(slot)}`);
      else if (words[slot * slotWords] !== seq || words[slot * slotWords + 1] !== stages)
        fail(`slot ${slot} stamps ${words[slot * slotWords]}/${words[slot * slotWords + 1]} for ${seq}`);
      if (rx[d + Desc.Length] !== 60 + (seq & 1023)) fail(`length of ${seq} changed`);
    }
    if (pool.freeBurst(done, 0, n) !== n) fail('a slot came back twice');
    r.received += n;
    moved += n;
    if (moved > 0) {
      idle = 0;
    } else if (++idle > SPIN_POLLS) {
      r.waits++;
      await fromGuest.waitForDataAsync(20);
    }
  }
  return r;
}

describe('mem stress: rings and pool across worker threads', { timeout: 60_000 }, () => {
  it('moves 10⁷ descriptors from a source worker to a sink worker: none lost, duplicated or reordered', async (t) => {
    const total = 10_000_000;
    const pool = BufferPool.create({ slotSize: SLOT_SIZE, slotCount: SLOT_COUNT });
    // The host lends every slot to the source guest (a generator NF with its own packet buffers).
    const lent = new Uint32Array(SLOT_COUNT);
    assert.equal(pool.allocBurst(lent, SLOT_COUNT), SLOT_COUNT);
    for (const slot of lent) pool.setOwner(slot, GUEST);
    const ring = DescriptorRing.create(RING_CAPACITY);
    const deadline = Date.now() + 12_000;
    const common = { pool: pool.shared, total, stage: 0, burst: 128, deadline };
    const running: Running[] = [];
    try {
      running.push(start({ ...common, role: 'sink', input: ring.shared, seed: 11 }));
      running.push(start({ ...common, role: 'source', output: ring.shared, seed: 12 }));
      const started = performance.now();
      const [sink, source] = await Promise.all(running.map((r) => r.result));
      const seconds = (performance.now() - started) / 1000;
      assertClean(source, total);
      assertClean(sink, total);
      const s = ring.stats();
      assert.equal(s.enqueued, total);
      assert.equal(s.dequeued, total);
      assert.equal(s.used, 0);
      t.diagnostic(
        `source→sink: ${total} descriptors in ${seconds.toFixed(2)} s (${(total / seconds / 1e6).toFixed(1)} M/s), ` +
          `${s.sleeps} consumer sleeps, ${s.wakeups} wakeups, ${source.fullBackoffs} full-ring retries`,
      );
    } finally {
      await stopAll(running);
    }
    assert.equal(pool.reclaimOwnedBy(GUEST), SLOT_COUNT);
    assert.equal(pool.freeCount(), SLOT_COUNT);
    assert.equal(pool.stats().doubleFrees, 0);
  });

  it('host → worker → host: the host allocates, stamps, checks and frees every slot', async (t) => {
    const total = 4_000_000;
    const pool = BufferPool.create({ slotSize: SLOT_SIZE, slotCount: SLOT_COUNT });
    const toGuest = DescriptorRing.create(RING_CAPACITY);
    const fromGuest = DescriptorRing.create(RING_CAPACITY);
    const deadline = Date.now() + 10_000;
    const running: Running[] = [];
    try {
      running.push(
        start({
          role: 'forward',
          pool: pool.shared,
          input: toGuest.shared,
          output: fromGuest.shared,
          total,
          stage: 1,
          burst: MAX_BURST,
          seed: 21,
          deadline,
        }),
      );
      const started = performance.now();
      const h = await host(pool, toGuest, fromGuest, { total, stages: 1, deadline, seed: 22 });
      const seconds = (performance.now() - started) / 1000;
      const worker = await running[0].result;
      assert.equal(h.firstError, null, h.firstError ?? '');
      assert.equal(h.sent, total);
      assert.equal(h.received, total);
      assertClean(worker, total);
      t.diagnostic(
        `host⇄worker: ${total} round trips in ${seconds.toFixed(2)} s (${(total / seconds / 1e6).toFixed(2)} M/s), ` +
          `host waits ${h.waits}, ring_full ${h.ringFull}, worker sleeps ${worker.sleeps}`,
      );
    } finally {
      await stopAll(running);
    }
    assert.equal(pool.freeCount(), SLOT_COUNT);
    const s = pool.stats();
    assert.equal(s.allocs, s.frees);
    assert.equal(s.doubleFrees + s.invalidFrees + s.corruptFreeEntries, 0);
  });

  it('a 2-NF chain host → A → B → host keeps order and contents, and returns every slot', async (t) => {
    const total = 3_000_000;
    const pool = BufferPool.create({ slotSize: SLOT_SIZE, slotCount: SLOT_COUNT });
    const hostToA = DescriptorRing.create(RING_CAPACITY);
    const aToB = DescriptorRing.create(RING_CAPACITY);
    const bToHost = DescriptorRing.create(RING_CAPACITY);
    const deadline = Date.now() + 12_000;
    const common = { pool: pool.shared, total, burst: MAX_BURST, deadline, role: 'forward' as const };
    const running: Running[] = [];
    try {
      running.push(start({ ...common, input: hostToA.shared, output: aToB.shared, stage: 1, seed: 31 }));
      running.push(start({ ...common, input: aToB.shared, output: bToHost.shared, stage: 2, seed: 32 }));
      const started = performance.now();
      const h = await host(pool, hostToA, bToHost, { total, stages: 2, deadline, seed: 33 });
      const seconds = (performance.now() - started) / 1000;
      const [a, b] = await Promise.all(running.map((r) => r.result));
      assert.equal(h.firstError, null, h.firstError ?? '');
      assert.equal(h.received, total);
      assertClean(a, total);
      assertClean(b, total);
      t.diagnostic(
        `host→A→B→host: ${total} descriptors in ${seconds.toFixed(2)} s (${(total / seconds / 1e6).toFixed(2)} M/s), ` +
          `sleeps A ${a.sleeps} B ${b.sleeps}, host waits ${h.waits}`,
      );
    } finally {
      await stopAll(running);
    }
    assert.equal(pool.freeCount(), SLOT_COUNT);
    assert.equal(pool.stats().doubleFrees, 0);
  });

  it('a guest terminated mid-stream: the host reclaims exactly the slots it held', async () => {
    const pool = BufferPool.create({ slotSize: SLOT_SIZE, slotCount: SLOT_COUNT });
    const toGuest = DescriptorRing.create(RING_CAPACITY);
    const fromGuest = DescriptorRing.create(RING_CAPACITY);
    const deadline = Date.now() + 8_000;
    const total = 1e9;
    const running: Running[] = [];
    let h: HostResult;
    try {
      running.push(
        start({
          role: 'forward',
          pool: pool.shared,
          input: toGuest.shared,
          output: fromGuest.shared,
          total,
          stage: 1,
          burst: MAX_BURST,
          seed: 41,
          deadline,
        }),
      );
      h = await host(pool, toGuest, fromGuest, { total, stages: 1, deadline, seed: 42, stopAfter: 200_000 });
      assert.equal(h.firstError, null, h.firstError ?? '');
      assert.ok(h.received >= 200_000);
    } finally {
      await stopAll(running);
    }
    // What the guest had already returned is the host's again; the rest died with the guest.
    const rx = new Uint32Array(RING_CAPACITY * DESCRIPTOR_WORDS);
    const returned = new Uint32Array(RING_CAPACITY);
    const n = fromGuest.dequeueBurst(rx, 0, RING_CAPACITY);
    for (let i = 0; i < n; i++) returned[i] = rx[i * DESCRIPTOR_WORDS + Desc.Slot];
    assert.equal(pool.freeBurst(returned, 0, n), n);
    const lost = h.sent - h.received - n;
    assert.ok(lost <= 2 * RING_CAPACITY + MAX_BURST, `lost ${lost}: at most what the rings and a burst hold`);
    assert.equal(pool.reclaimOwnedBy(GUEST), lost);
    assert.equal(pool.freeCount(), SLOT_COUNT);
    assert.equal(pool.stats().doubleFrees, 0);
  });
});
