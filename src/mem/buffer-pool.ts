/**
 * The packet buffer pool (the mbuf pool analogue): fixed-size slots in ONE SharedArrayBuffer, with
 * its free stack, owner table and counters in the same buffer, so a worker that attaches sees the
 * very bytes the host wrote. Nothing is allocated per packet: a packet is a slot index.
 *
 *   byte 0                 header: 16 × i32  magic │ slotSize │ slotCount │ freeTop │ counters…
 *   byte 64                free stack: slotCount × u32 (entries [0, freeTop) are free slots)
 *   byte 64 + 4·N ↑64      owner table: slotCount × u8 (0 free, 1 host, 2…255 guest ids)
 *   byte slotArea          slots: slotCount × slotSize bytes (slotSize a multiple of 64)
 *
 * Invariant: ONLY THE HOST THREAD allocates, frees, sets owners and reclaims — the free stack is a
 * plain single-threaded stack that happens to live in shared memory (other threads may read
 * `freeCount()` and `owner()`, never call the mutators). Slot `s` is on the free stack exactly when
 * `owner(s) === 0`; the owner table is the ground truth. Guests in `direct` mode can see this whole
 * buffer and may scribble on it, so every mutator validates what it reads: an out-of-range or
 * non-free entry popped from the stack is skipped and counted, a corrupt `freeTop` makes the
 * host rebuild the stack from the owner table, a free of a slot that is already free is counted as
 * a double free and changes nothing. Nothing here throws after construction.
 *
 * Counters are u32 and wrap, like a NIC's hardware counters: readers take differences mod 2³².
 *
 * @example
 * const pool = BufferPool.create({ slotSize: 2048, slotCount: 4096 });
 * const slots = new Uint32Array(32);
 * const n = pool.allocBurst(slots, 32);           // n ≤ 32: fewer when the pool runs dry
 * pool.bytes.set(frame, pool.slotOffset(slots[0]));
 * worker.postMessage(pool.shared);                // worker: BufferPool.attach(shared)
 * pool.freeBurst(slots, 0, n);
 */
import { NfvError } from '../errors.js';

/** Everything a worker needs to attach to a pool; plain data that survives `postMessage`. */
export interface BufferPoolShared {
  buffer: SharedArrayBuffer;
  slotSize: number;
  slotCount: number;
}

export interface BufferPoolOptions {
  /** Bytes per slot, a multiple of 64 (a cache line); default 2048. */
  slotSize?: number;
  /** Number of slots, 1 … 2²⁴. */
  slotCount: number;
}

/** Counter snapshot for the control plane (allocates; never call it per packet). */
export interface BufferPoolStats {
  slotCount: number;
  free: number;
  allocs: number;
  frees: number;
  /** Slots asked for that the pool could not give (it was empty). */
  allocFailures: number;
  /** Frees of a slot that was already free: ignored. */
  doubleFrees: number;
  /** Frees of a slot index ≥ slotCount: ignored. */
  invalidFrees: number;
  /** Garbage found on the free stack (out of range, or a slot that is not free): skipped. */
  corruptFreeEntries: number;
  /** Times the free stack was rebuilt from the owner table. */
  rebuilds: number;
}

/** Owner ids in the owner table. */
export const Owner = {
  Free: 0,
  Host: 1,
  /** The first guest id; guest ids go up to `MaxGuest`. */
  FirstGuest: 2,
  MaxGuest: 255,
} as const;

export const DEFAULT_SLOT_SIZE = 2048;
export const MAX_SLOT_COUNT = 1 << 24;
const CACHE_LINE = 64;
const MAX_POOL_BYTES = 2 ** 32;

/** Header words (i32), each named once. */
const H = {
  Magic: 0,
  SlotSize: 1,
  SlotCount: 2,
  FreeTop: 3,
  Allocs: 4,
  Frees: 5,
  AllocFailures: 6,
  DoubleFrees: 7,
  InvalidFrees: 8,
  CorruptFreeEntries: 9,
  Rebuilds: 10,
} as const;
const HEADER_BYTES = 64;
const MAGIC = 0x6e667670; // 'nfvp'

interface Layout {
  ownersAt: number;
  slotsAt: number;
  total: number;
}

function layout(slotSize: number, slotCount: number): Layout {
  const ownersAt = roundUp(HEADER_BYTES + 4 * slotCount, CACHE_LINE);
  const slotsAt = roundUp(ownersAt + slotCount, CACHE_LINE);
  return { ownersAt, slotsAt, total: slotsAt + slotSize * slotCount };
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function checkGeometry(slotSize: number, slotCount: number): void {
  if (!Number.isInteger(slotSize) || slotSize < CACHE_LINE || slotSize % CACHE_LINE !== 0) {
    throw new NfvError(
      'NFV_ERR_BAD_ARGUMENT',
      `slotSize must be a positive multiple of 64, not ${slotSize}`,
      {
        field: 'slotSize',
      },
    );
  }
  if (!Number.isInteger(slotCount) || slotCount < 1 || slotCount > MAX_SLOT_COUNT) {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `slotCount must be an integer in 1…${MAX_SLOT_COUNT}`, {
      field: 'slotCount',
    });
  }
  if (layout(slotSize, slotCount).total > MAX_POOL_BYTES) {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `a pool of ${slotCount} × ${slotSize} bytes exceeds 4 GiB`, {
      field: 'slotCount',
    });
  }
}

export class BufferPool {
  readonly shared: BufferPoolShared;
  readonly slotSize: number;
  readonly slotCount: number;
  /** The slot area: slot `s` is `bytes[slotOffset(s) … slotOffset(s) + slotSize)`. */
  readonly bytes: Uint8Array;
  private readonly header: Int32Array;
  private readonly stack: Uint32Array;
  private readonly owners: Uint8Array;
  /** Scratch for the single-slot calls, so they allocate nothing. */
  private readonly one = new Uint32Array(1);
  /** Garbage entries the last `pop` skipped. */
  private corrupt = 0;

  private constructor(shared: BufferPoolShared) {
    const { buffer, slotSize, slotCount } = shared;
    const { ownersAt, slotsAt } = layout(slotSize, slotCount);
    this.shared = shared;
    this.slotSize = slotSize;
    this.slotCount = slotCount;
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.stack = new Uint32Array(buffer, HEADER_BYTES, slotCount);
    this.owners = new Uint8Array(buffer, ownersAt, slotCount);
    this.bytes = new Uint8Array(buffer, slotsAt, slotSize * slotCount);
  }

  /** A new pool with every slot free; slot 0 is handed out first. */
  static create(options: BufferPoolOptions): BufferPool {
    const slotSize = options.slotSize ?? DEFAULT_SLOT_SIZE;
    const { slotCount } = options;
    checkGeometry(slotSize, slotCount);
    const pool = new BufferPool({
      buffer: new SharedArrayBuffer(layout(slotSize, slotCount).total),
      slotSize,
      slotCount,
    });
    const h = pool.header;
    h[H.SlotSize] = slotSize;
    h[H.SlotCount] = slotCount;
    pool.rebuildFreeList();
    h[H.Rebuilds] = 0;
    Atomics.store(h, H.Magic, MAGIC);
    return pool;
  }

  /**
   * A second view of a pool made elsewhere (typically in a worker, from `pool.shared`). Throws
   * NFV_ERR_BAD_ARGUMENT when the buffer is not a pool of that geometry.
   */
  static attach(shared: BufferPoolShared): BufferPool {
    const { buffer, slotSize, slotCount } = shared;
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'a buffer pool lives in a SharedArrayBuffer', {
        field: 'buffer',
      });
    }
    checkGeometry(slotSize, slotCount);
    const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    if (
      buffer.byteLength !== layout(slotSize, slotCount).total ||
      Atomics.load(header, H.Magic) !== MAGIC ||
      header[H.SlotSize] !== slotSize ||
      header[H.SlotCount] !== slotCount
    ) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `not a buffer pool of ${slotCount} × ${slotSize} bytes`, {
        field: 'buffer',
      });
    }
    return new BufferPool({ buffer, slotSize, slotCount });
  }

  /** Where slot `slot` starts in `bytes`. */
  slotOffset(slot: number): number {
    return slot * this.slotSize;
  }

  /** Free slots now (any thread may ask; the value may be stale by the time it is used). */
  freeCount(): number {
    const top = Atomics.load(this.header, H.FreeTop);
    return top < 0 ? 0 : top > this.slotCount ? this.slotCount : top;
  }

  /**
   * Host thread only. Takes up to `n` free slots into `out[at …]`, owned by the host, and returns
   * how many it took (fewer than `n` when the pool runs dry; the shortfall is counted).
   */
  allocBurst(out: Uint32Array, n: number, at = 0): number {
    const h = this.header;
    let taken = this.pop(out, at, n, this.checkedTop());
    if (this.corrupt > 0) {
      // A free slot whose entry was overwritten is off the stack: recover it from the owner table
      // (the rebuilt stack is clean, so one more pass is enough).
      h[H.CorruptFreeEntries] = (h[H.CorruptFreeEntries] + this.corrupt) | 0;
      taken += this.pop(out, at + taken, n - taken, this.rebuildFreeList());
    }
    h[H.Allocs] = (h[H.Allocs] + taken) | 0;
    if (taken < n) h[H.AllocFailures] = (h[H.AllocFailures] + n - taken) | 0;
    return taken;
  }

  /** Pops up to `n` valid free slots into `out[at …]`, skipping (and counting in `corrupt`) garbage. */
  private pop(out: Uint32Array, at: number, n: number, top: number): number {
    const owners = this.owners;
    const stack = this.stack;
    let taken = 0;
    let corrupt = 0;
    while (taken < n && top > 0) {
      const slot = stack[--top];
      if (slot >= this.slotCount || owners[slot] !== Owner.Free) {
        corrupt++;
        continue;
      }
      owners[slot] = Owner.Host;
      out[at + taken++] = slot;
    }
    Atomics.store(this.header, H.FreeTop, top);
    this.corrupt = corrupt;
    return taken;
  }

  /** Host thread only. One free slot, owned by the host, or -1 when the pool is empty. */
  alloc(): number {
    return this.allocBurst(this.one, 1) === 1 ? this.one[0] : -1;
  }

  /**
   * Host thread only. Returns `slots[at … at + n)` to the pool and says how many were freed: an
   * index out of range or a slot already free is counted (`invalidFrees`, `doubleFrees`) and
   * skipped, never pushed twice.
   */
  freeBurst(slots: Uint32Array, at: number, n: number): number {
    const h = this.header;
    const owners = this.owners;
    const stack = this.stack;
    const count = this.slotCount;
    let top = this.checkedTop();
    let freed = 0;
    let invalid = 0;
    let double = 0;
    let overflow = false;
    for (let i = at; i < at + n; i++) {
      const slot = slots[i];
      if (slot >= count) {
        invalid++;
      } else if (owners[slot] === Owner.Free) {
        double++;
      } else {
        owners[slot] = Owner.Free;
        // Room is guaranteed on a well-formed stack: a slot that was not free is not on it.
        if (top < count) stack[top++] = slot;
        else overflow = true;
        freed++;
      }
    }
    Atomics.store(h, H.FreeTop, top);
    h[H.Frees] = (h[H.Frees] + freed) | 0;
    if (invalid > 0) h[H.InvalidFrees] = (h[H.InvalidFrees] + invalid) | 0;
    if (double > 0) h[H.DoubleFrees] = (h[H.DoubleFrees] + double) | 0;
    if (overflow) this.rebuildFreeList();
    return freed;
  }

  /** Host thread only. Frees one slot; false (and counted) for a double or invalid free. */
  free(slot: number): boolean {
    this.one[0] = slot >>> 0 === slot ? slot : 0xffffffff;
    return this.freeBurst(this.one, 0, 1) === 1;
  }

  /** The owner id of `slot` (0 free, 1 host, 2… guests), or -1 for an index out of range. */
  owner(slot: number): number {
    return slot >>> 0 === slot && slot < this.slotCount ? this.owners[slot] : -1;
  }

  /**
   * Host thread only. Hands an allocated slot to owner `id` (1 host, 2…255 guests). False, changing
   * nothing, for a slot out of range, a free slot, or an id out of range: freeing goes through `free`.
   */
  setOwner(slot: number, id: number): boolean {
    if (slot >>> 0 !== slot || slot >= this.slotCount || this.owners[slot] === Owner.Free) return false;
    if (id >>> 0 !== id || id < Owner.Host || id > Owner.MaxGuest) return false;
    this.owners[slot] = id;
    return true;
  }

  /**
   * Host thread only. Returns every slot owned by `id` (a guest that died) to the pool; returns
   * how many. O(slotCount): a supervisor's sweep, not a packet-path call.
   */
  reclaimOwnedBy(id: number): number {
    if (id >>> 0 !== id || id < Owner.Host || id > Owner.MaxGuest) return 0;
    const h = this.header;
    const owners = this.owners;
    let top = this.checkedTop();
    let reclaimed = 0;
    let overflow = false;
    for (let slot = 0; slot < this.slotCount; slot++) {
      if (owners[slot] !== id) continue;
      owners[slot] = Owner.Free;
      if (top < this.slotCount) this.stack[top++] = slot;
      else overflow = true;
      reclaimed++;
    }
    Atomics.store(h, H.FreeTop, top);
    h[H.Frees] = (h[H.Frees] + reclaimed) | 0;
    if (overflow) this.rebuildFreeList();
    return reclaimed;
  }

  /**
   * Host thread only. Rebuilds the free stack from the owner table (the ground truth) and returns
   * the number of free slots. Called by the pool itself when it finds `freeTop` out of range.
   */
  rebuildFreeList(): number {
    const h = this.header;
    let top = 0;
    for (let slot = this.slotCount - 1; slot >= 0; slot--) {
      if (this.owners[slot] === Owner.Free) this.stack[top++] = slot;
    }
    Atomics.store(h, H.FreeTop, top);
    h[H.Rebuilds] = (h[H.Rebuilds] + 1) | 0;
    return top;
  }

  stats(): BufferPoolStats {
    const h = this.header;
    return {
      slotCount: this.slotCount,
      free: this.freeCount(),
      allocs: h[H.Allocs] >>> 0,
      frees: h[H.Frees] >>> 0,
      allocFailures: h[H.AllocFailures] >>> 0,
      doubleFrees: h[H.DoubleFrees] >>> 0,
      invalidFrees: h[H.InvalidFrees] >>> 0,
      corruptFreeEntries: h[H.CorruptFreeEntries] >>> 0,
      rebuilds: h[H.Rebuilds] >>> 0,
    };
  }

  /** The free-stack depth, rebuilt from the owner table if a guest scribbled on it. */
  private checkedTop(): number {
    const top = this.header[H.FreeTop];
    if (top >= 0 && top <= this.slotCount) return top;
    return this.rebuildFreeList();
  }
}
