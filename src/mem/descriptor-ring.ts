/**
 * A single-producer single-consumer ring of packet descriptors in a SharedArrayBuffer: how packets
 * move between the host and a guest, and from guest to guest, in `direct` mode.
 *
 *   byte 0     i32 × 16   magic │ capacity                                  (written once)
 *   byte 64    i32 × 16   tail │ enqueued │ wakeups │ producerSleeping      (producer's cache line)
 *   byte 128   i32 × 16   head │ dequeued │ sleeps │ consumerSleeping       (consumer's cache line)
 *   byte 192   u32 × 4 × capacity   descriptors: slot │ length │ port | flags << 16 │ meta
 *
 * `head` and `tail` are free-running u32 counters; descriptor `i` lives at index `i & (capacity-1)`.
 * Invariant: `0 ≤ tail − head ≤ capacity` (mod 2³²); the producer alone writes `tail`, the consumer
 * alone writes `head`, each publishes its cursor ONCE per burst with `Atomics.store` after
 * writing (or reading) the descriptors, and each reads the other's cursor ONCE per burst into a local.
 *
 * The peer may be a hostile guest that writes anything anywhere in this buffer. So each side keeps
 * its own cursor in a private field (the shared word is only its publication), validates the peer's
 * cursor against the invariant before using it — an impossible value makes the burst move nothing
 * and is counted in `invalid()`, a count the peer cannot write — and copies descriptors out of shared
 * memory exactly once (`dequeueBurst` into the caller's private array), so a descriptor mutated after
 * publication cannot change between the caller's check and its use. Nothing throws after
 * construction, and nothing loops on a value the peer controls.
 *
 * Idle consumers sleep instead of spinning (a 2-core machine has no core to burn): `waitForData`
 * polls a little, then sets `consumerSleeping`, re-checks, and `Atomics.wait`s on `tail`; the
 * producer, after publishing `tail`, reads `consumerSleeping` and only if it is set claims it (1 → 0)
 * and calls `Atomics.notify`. Both sides use sequentially consistent atomics in the opposite order
 * (store mine, load theirs), so at least one of them sees the other, and `Atomics.wait` itself
 * re-checks `tail` against the value the consumer saw: a wake-up is never lost.
 *
 * A producer facing a full ring sleeps the same way, mirrored (`waitForSpace`: `producerSleeping`,
 * `Atomics.wait` on `head`, woken by the consumer's first `dequeueBurst` that leaves half the ring
 * free — the host's async wait at its first dequeue), instead of waking on a timer to look: on two
 * cores, a guest polling a full ring takes the CPU its consumer needs to empty it. Its timeout only
 * bounds how long a consumer that never notifies can hold it.
 *
 * The shared counters (enqueued, dequeued, sleeps, wakeups) are u32, wrap, and are written by the
 * side that owns their line — a guest's own report, for statistics only.
 *
 * @example
 * const ring = DescriptorRing.create(1024);              // host; worker: DescriptorRing.attach(shared)
 * const burst = new Uint32Array(32 * DESCRIPTOR_WORDS);
 * const sent = ring.enqueueBurst(burst, 0, n);          // sent < n: ring full, count n − sent drops
 * // consumer:
 * if (ring.waitForData(200, 100)) got = ring.dequeueBurst(rx, 0, 32);
 */
import { NfvError } from '../errors.js';

/** Words per descriptor, and what each holds. */
export const DESCRIPTOR_WORDS = 4;
export const Desc = {
  /** Buffer-pool slot index. */
  Slot: 0,
  /** Packet length in bytes. */
  Length: 1,
  /** Input port id (low 16 bits) and flags (high 16 bits). */
  PortFlags: 2,
  /** Free for the path: flow hash, sequence token, … */
  Meta: 3,
} as const;

/** Packs the `PortFlags` word. */
export function portFlags(port: number, flags: number): number {
  return ((port & 0xffff) | ((flags & 0xffff) << 16)) >>> 0;
}

export const MAX_RING_CAPACITY = 1 << 24;

/** Plain data that survives `postMessage`. */
export interface DescriptorRingShared {
  buffer: SharedArrayBuffer;
  capacity: number;
}

export interface DescriptorRingStats {
  capacity: number;
  /** Descriptors waiting now (0 when the cursors are invalid). */
  used: number;
  enqueued: number;
  dequeued: number;
  /** Times the consumer went to sleep. */
  sleeps: number;
  /** Notifies the producer sent to a consumer that had announced sleep (may exceed `sleeps` by a few:
   *  the consumer can find data on its re-check after the producer claimed its flag). */
  wakeups: number;
  /** Invalid peer cursors seen by THIS view (private, not writable by the peer). */
  invalid: number;
}

/** Header words (i32), each named once. */
const R = {
  Magic: 0,
  Capacity: 1,
  Tail: 16,
  Enqueued: 17,
  Wakeups: 18,
  ProducerSleeping: 19,
  Head: 32,
  Dequeued: 33,
  Sleeps: 34,
  ConsumerSleeping: 35,
} as const;
/** `producerSleeping`: nobody, or a producer waiting for any room, or for half the ring. */
const Sleeper = { None: 0, UntilSpace: 1, UntilHalfFree: 2 } as const;
type Sleeper = (typeof Sleeper)[keyof typeof Sleeper];
const HEADER_BYTES = 192;
const MAGIC = 0x6e667672; // 'nfvr'

interface WaitAsyncResult {
  async: boolean;
  value: Promise<'ok' | 'timed-out'> | 'not-equal' | 'timed-out';
}
/** `Atomics.waitAsync` (V8 ≥ 8.7, so Node 16+); typed here because lib ES2023 predates it. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync: (array: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;
  }
).waitAsync;

function noop(): void {}

/** Resolves when `h[index]` is notified or no longer `value`, or after `timeoutMs`, without blocking. */
async function sleepOn(h: Int32Array, index: number, value: number, timeoutMs: number): Promise<void> {
  const result = waitAsync(h, index, value, timeoutMs);
  if (!result.async) return;
  // A pending waitAsync does not keep Node's event loop alive (nodejs/node#61941): without this
  // ref'd timer the process may exit under an awaiting host.
  const keepAlive = setInterval(noop, 1 << 30);
  try {
    await result.value;
  } finally {
    clearInterval(keepAlive);
  }
}

function checkCapacity(capacity: number): void {
  if (
    !Number.isInteger(capacity) ||
    capacity < 2 ||
    capacity > MAX_RING_CAPACITY ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new NfvError(
      'NFV_ERR_BAD_ARGUMENT',
      `ring capacity must be a power of two in 2…${MAX_RING_CAPACITY}, not ${capacity}`,
      { field: 'capacity' },
    );
  }
}

export class DescriptorRing {
  readonly shared: DescriptorRingShared;
  readonly capacity: number;
  private readonly mask: number;
  private readonly header: Int32Array;
  private readonly descs: Uint32Array;
  /** This view's own cursors: the truth for the side it plays; the shared words only publish them. */
  private tail: number;
  private head: number;
  private invalidSeen = 0;
  /** The consumer wakes a producer asleep on a full ring when this many or fewer are left. */
  private readonly wakeProducerAtUsed: number;

  private constructor(shared: DescriptorRingShared) {
    this.shared = shared;
    this.capacity = shared.capacity;
    this.mask = shared.capacity - 1;
    this.wakeProducerAtUsed = shared.capacity >>> 1;
    this.header = new Int32Array(shared.buffer, 0, HEADER_BYTES / 4);
    this.descs = new Uint32Array(shared.buffer, HEADER_BYTES, shared.capacity * DESCRIPTOR_WORDS);
    this.tail = Atomics.load(this.header, R.Tail) >>> 0;
    this.head = Atomics.load(this.header, R.Head) >>> 0;
  }

  /** An empty ring of `capacity` descriptors (a power of two, 2 … 2²⁴). */
  static create(capacity: number): DescriptorRing {
    checkCapacity(capacity);
    const buffer = new SharedArrayBuffer(HEADER_BYTES + capacity * DESCRIPTOR_WORDS * 4);
    const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    header[R.Capacity] = capacity;
    Atomics.store(header, R.Magic, MAGIC);
    return new DescriptorRing({ buffer, capacity });
  }

  /**
   * A view of a ring made elsewhere, taking up the cursors where they are. A worker attaches to play
   * one side: the producer calls only `enqueueBurst`, the consumer only `dequeueBurst` and the waits.
   */
  static attach(shared: DescriptorRingShared): DescriptorRing {
    const { buffer, capacity } = shared;
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'a descriptor ring lives in a SharedArrayBuffer', {
        field: 'buffer',
      });
    }
    checkCapacity(capacity);
    const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    if (
      buffer.byteLength !== HEADER_BYTES + capacity * DESCRIPTOR_WORDS * 4 ||
      Atomics.load(header, R.Magic) !== MAGIC ||
      header[R.Capacity] !== capacity
    ) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `not a descriptor ring of capacity ${capacity}`, {
        field: 'buffer',
      });
    }
    return new DescriptorRing({ buffer, capacity });
  }

  // ── producer ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Producer. Copies up to `count` descriptors from `src`, starting at descriptor index `at`
   * (word `at * DESCRIPTOR_WORDS`), publishes them with one store of `tail`, wakes a sleeping
   * consumer, and returns how many it took: fewer than `count` when the ring is full (the caller
   * counts `ring_full` drops), 0 when the consumer's `head` is impossible (counted in `invalid()`).
   */
  enqueueBurst(src: Uint32Array, at: number, count: number): number {
    const h = this.header;
    const head = Atomics.load(h, R.Head) >>> 0;
    let tail = this.tail;
    const used = (tail - head) >>> 0;
    if (used > this.capacity) {
      this.invalidSeen++;
      return 0;
    }
    const n = Math.min(count, this.capacity - used, ((src.length / DESCRIPTOR_WORDS) | 0) - at);
    if (n <= 0) return 0;
    const descs = this.descs;
    const mask = this.mask;
    let from = at * DESCRIPTOR_WORDS;
    for (let i = 0; i < n; i++) {
      const to = (tail & mask) * DESCRIPTOR_WORDS;
      descs[to] = src[from];
      descs[to + 1] = src[from + 1];
      descs[to + 2] = src[from + 2];
      descs[to + 3] = src[from + 3];
      from += DESCRIPTOR_WORDS;
      tail = (tail + 1) >>> 0;
    }
    this.tail = tail;
    Atomics.store(h, R.Tail, tail | 0);
    h[R.Enqueued] = (h[R.Enqueued] + n) | 0;
    this.wakeConsumer();
    return n;
  }

  /**
   * Producer. Wakes the consumer if it sleeps in `waitForData`, whether or not anything waits for
   * it: with nothing, it returns false to its caller — a guest then goes back to its event loop,
   * where the host's messages (a snapshot request, a tick) wait. Claiming the flag makes one notify
   * per sleep, however many bursts arrive before it wakes.
   */
  wakeConsumer(): void {
    const h = this.header;
    if (
      Atomics.load(h, R.ConsumerSleeping) !== 0 &&
      Atomics.compareExchange(h, R.ConsumerSleeping, 1, 0) === 1
    ) {
      Atomics.notify(h, R.Tail, 1);
      h[R.Wakeups] = (h[R.Wakeups] + 1) | 0;
    }
  }

  /**
   * Producer, in a worker (it blocks the thread). With the ring full, sleeps on `head` until the
   * consumer's dequeue leaves half the ring free or `timeoutMs` passes; returns whether there is
   * room now.
   */
  waitForSpace(timeoutMs: number): boolean {
    if (this.freeSpace() > 0) return true;
    const head = this.announceProducerSleep(Sleeper.UntilHalfFree);
    if (head === null) return true;
    Atomics.wait(this.header, R.Head, head, timeoutMs);
    Atomics.store(this.header, R.ProducerSleeping, 0);
    return this.freeSpace() > 0;
  }

  /**
   * Producer. Sets `producerSleeping` to how it wants to be woken, then looks at `head` once more
   * (the consumer stores `head` before it reads the flag: one of us sees the other). Returns the
   * `head` to sleep on, or null (flag cleared) when there is room already.
   */
  private announceProducerSleep(until: Sleeper): number | null {
    const h = this.header;
    Atomics.store(h, R.ProducerSleeping, until);
    const head = Atomics.load(h, R.Head);
    if (this.freeSpace() === 0) return head;
    Atomics.store(h, R.ProducerSleeping, 0);
    return null;
  }

  /** Producer. Room for this many more descriptors now (0 when the consumer's head is impossible). */
  freeSpace(): number {
    const used = (this.tail - (Atomics.load(this.header, R.Head) >>> 0)) >>> 0;
    return used > this.capacity ? 0 : this.capacity - used;
  }

  // ── consumer ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Consumer. Copies up to `max` descriptors into `dst` from descriptor index `at`, releases their
   * ring entries with one store of `head`, and returns how many: 0 when empty, or when the
   * producer's `tail` is impossible (counted in `invalid()`; the ring should then be quarantined).
   */
  dequeueBurst(dst: Uint32Array, at: number, max: number): number {
    const h = this.header;
    const tail = Atomics.load(h, R.Tail) >>> 0;
    let head = this.head;
    const available = (tail - head) >>> 0;
    if (available > this.capacity) {
      this.invalidSeen++;
      return 0;
    }
    const n = Math.min(max, available, ((dst.length / DESCRIPTOR_WORDS) | 0) - at);
    if (n <= 0) return 0;
    const descs = this.descs;
    const mask = this.mask;
    let to = at * DESCRIPTOR_WORDS;
    for (let i = 0; i < n; i++) {
      const from = (head & mask) * DESCRIPTOR_WORDS;
      dst[to] = descs[from];
      dst[to + 1] = descs[from + 1];
      dst[to + 2] = descs[from + 2];
      dst[to + 3] = descs[from + 3];
      to += DESCRIPTOR_WORDS;
      head = (head + 1) >>> 0;
    }
    this.head = head;
    Atomics.store(h, R.Head, head | 0);
    h[R.Dequeued] = (h[R.Dequeued] + n) | 0;
    // A guest asleep on a full ring is woken once half of it is free, not at the first burst:
    // woken for every burst, it refilled the ring at once and slept again, a thread switch per
    // burst on a machine with fewer cores than threads. The host is woken at once: it serves
    // other rings too (every hop, in paravirt mode), and a host asleep for half a ring left them.
    const sleeper = Atomics.load(h, R.ProducerSleeping);
    if (
      sleeper !== Sleeper.None &&
      (sleeper === Sleeper.UntilSpace || (tail - head) >>> 0 <= this.wakeProducerAtUsed) &&
      Atomics.compareExchange(h, R.ProducerSleeping, sleeper, Sleeper.None) === sleeper
    )
      Atomics.notify(h, R.Head, 1);
    return n;
  }

  /** Consumer. Descriptors waiting now; 0 when the producer's tail is impossible. */
  available(): number {
    const available = ((Atomics.load(this.header, R.Tail) >>> 0) - this.head) >>> 0;
    return available > this.capacity ? 0 : available;
  }

  /**
   * Consumer, in a worker (it blocks the thread), or for a fraction of a millisecond on a thread
   * that must stay responsive (the host's, before it waits through its event loop). Polls up to
   * `spinPolls` times, then sleeps on `tail` until the producer's notify or `timeoutMs`; returns
   * whether descriptors are waiting.
   * An impossible `tail` reads as "no data" (and is counted), so a hostile producer cannot make
   * the caller spin: it sleeps out its timeout instead.
   */
  waitForData(spinPolls: number, timeoutMs: number): boolean {
    for (let i = 0; i < spinPolls; i++) if (this.available() > 0) return true;
    const h = this.header;
    Atomics.store(h, R.ConsumerSleeping, 1);
    const tail = Atomics.load(h, R.Tail);
    // One way out whether it slept or not: a guest's optimized loop meets every path of this, and
    // a path first taken after V8 compiled the loop costs a deoptimization and a recompile.
    if (this.checkedAvailable(tail) === 0) {
      h[R.Sleeps] = (h[R.Sleeps] + 1) | 0;
      Atomics.wait(h, R.Tail, tail, timeoutMs);
    }
    Atomics.store(h, R.ConsumerSleeping, 0);
    return this.available() > 0;
  }

  /**
   * Consumer on a thread that must not block (the host's main thread): resolves, without spinning,
   * when descriptors are waiting (true) or after `timeoutMs` (false).
   */
  async waitForDataAsync(timeoutMs: number): Promise<boolean> {
    const h = this.header;
    Atomics.store(h, R.ConsumerSleeping, 1);
    const tail = Atomics.load(h, R.Tail);
    if (this.checkedAvailable(tail) > 0) {
      Atomics.store(h, R.ConsumerSleeping, 0);
      return true;
    }
    h[R.Sleeps] = (h[R.Sleeps] + 1) | 0;
    await sleepOn(h, R.Tail, tail, timeoutMs);
    Atomics.store(h, R.ConsumerSleeping, 0);
    return this.available() > 0;
  }

  /**
   * Producer on a thread that must not block (the host's): resolves, without spinning, when the
   * consumer's dequeue makes room (true) or after `timeoutMs` (false).
   */
  async waitForSpaceAsync(timeoutMs: number): Promise<boolean> {
    const head = this.announceProducerSleep(Sleeper.UntilSpace);
    if (head === null) return true;
    await sleepOn(this.header, R.Head, head, timeoutMs);
    Atomics.store(this.header, R.ProducerSleeping, 0);
    return this.freeSpace() > 0;
  }

  // ── either side ───────────────────────────────────────────────────────────────────────────────

  /** Impossible peer cursors this view has seen. Nonzero means: quarantine the peer. */
  invalid(): number {
    return this.invalidSeen;
  }

  /** Counter snapshot for the control plane (allocates; never call it per packet). */
  stats(): DescriptorRingStats {
    const h = this.header;
    const used = ((Atomics.load(h, R.Tail) >>> 0) - (Atomics.load(h, R.Head) >>> 0)) >>> 0;
    return {
      capacity: this.capacity,
      used: used > this.capacity ? 0 : used,
      enqueued: h[R.Enqueued] >>> 0,
      dequeued: h[R.Dequeued] >>> 0,
      sleeps: h[R.Sleeps] >>> 0,
      wakeups: h[R.Wakeups] >>> 0,
      invalid: this.invalidSeen,
    };
  }

  /** Descriptors between `head` and a tail value already read; counts an impossible one. */
  private checkedAvailable(tail: number): number {
    const available = ((tail >>> 0) - this.head) >>> 0;
    if (available <= this.capacity) return available;
    this.invalidSeen++;
    return 0;
  }
}
