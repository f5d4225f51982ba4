/**
 * TCP streams for the IDS: a bounded table of connections, and per direction an in-order
 * reassembler that hands each new byte of the stream to the matcher exactly once.
 *
 *   stream s (0 ≤ s < maxStreams), direction d (0 client → server, 1 server → client), i = 2s + d:
 *     keys[s*W …]           the 5-tuple as the client sends it (W = FLOW_KEY_WORDS)
 *     bucket chain           bucketHead[hash & mask] → chainNext[s] → …   (-1 ends)
 *     LRU list               lruPrev[s] / lruNext[s], mruHead … lruTail (eviction, expiry)
 *     flags[s]              SYN, SYN-ACK, ESTABLISHED, BLOCKED, MIDSTREAM bits
 *     lastSeen[s]           ns
 *     nextSeq[i]            the next in-order sequence number (valid once seqKnown[i] = 1)
 *     delivered[i]          stream bytes delivered so far = position of the next byte
 *     acState[i]            the automaton state after the last delivered byte
 *     tails[i*T …]          the last tailLen[i] ≤ T delivered bytes, a ring indexed by position % T
 *     heldHead[i]           out-of-order pieces, sorted by sequence number, in the chunk pool
 *   chunk pool: chunkData[c*CHUNK …], chunkSeq[c], chunkLen[c], chunkNext[c]; free list freeChunk
 *
 * Invariants: a held piece never overlaps another held piece of its direction, and starts after
 * nextSeq; heldBytes[i] ≤ streamHoldBytes; chunks in use ≤ the pool (reassemblyBytes / CHUNK).
 *
 * Overlap policy, "first wins" (Suricata's `bsd`-like policy for data already seen): bytes already
 * delivered or already held are kept; a later segment's copy of them is discarded and counted
 * (`overlaps`), and counted again when its bytes differ (`overlap_conflicts`, the signature of an
 * insertion/evasion attempt).
 *
 * Bounds: a segment further ahead than MAX_AHEAD, or one that does not fit the stream's or the
 * pool's budget, is not held: the stream resynchronises on it (`gaps`) or the segment is inspected
 * on its own (`hold_overflow`). A full table evicts — among the 8 least recently used streams the
 * oldest half-open one, else the least recently used — and counts it (`evicted`).
 */
import { FLOW_KEY_WORDS, type FlowKey } from '../../src/packet/flow-key.js';

export const StreamFlag = { Syn: 1, SynAck: 2, Established: 4, Blocked: 8, Midstream: 16 } as const;

/** Bytes per chunk of the out-of-order pool: one segment piece per chunk (a 2 KiB slot's payload fits). */
export const CHUNK = 2048;
/** A segment further ahead of nextSeq than this is a gap, not something to hold. */
export const MAX_AHEAD = 1 << 20;
const EVICTION_SAMPLE = 8;

/** What `segment()` did with a segment. */
export const SegmentResult = {
  /** Its new bytes were delivered (and any held pieces that became in-order). */
  Delivered: 0,
  Held: 1,
  /** Entirely old: a retransmission of delivered bytes. */
  Old: 2,
  /** Too far ahead: the direction restarted at this segment (its bytes delivered). */
  Gap: 3,
  /** Out of order but over a budget: not held; the caller inspects it on its own. */
  Overflow: 4,
} as const;

/** Indices into `stats` (added to the NF's counters once per batch, then cleared). */
export const StreamStat = {
  Created: 0,
  Evicted: 1,
  Expired: 2,
  Held: 3,
  Overlaps: 4,
  OverlapConflicts: 5,
  Gaps: 6,
  HoldOverflow: 7,
  Retransmitted: 8,
} as const;
export const STREAM_STATS = 9;

export type Deliver = (bytes: Uint8Array, at: number, length: number) => void;

export class StreamTable {
  readonly maxStreams: number;
  readonly tailBytes: number;
  readonly chunks: number;
  readonly stats = new Float64Array(STREAM_STATS);
  size = 0;
  chunksUsed = 0;

  readonly keys: Uint32Array;
  readonly flags: Uint8Array;
  readonly lastSeen: Float64Array;
  readonly nextSeq: Uint32Array;
  readonly seqKnown: Uint8Array;
  readonly delivered: Float64Array;
  readonly acState: Int32Array;
  readonly tails: Uint8Array;
  readonly tailLen: Uint16Array;
  readonly heldBytes: Uint32Array;

  private readonly streamHoldBytes: number;
  private readonly mask: number;
  private readonly bucketHead: Int32Array;
  private readonly chainNext: Int32Array;
  private readonly hashes: Uint32Array;
  private readonly used: Uint8Array;
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private mruHead = -1;
  private lruTail = -1;
  private freeSlot = 0;
  private readonly freeNext: Int32Array;
  private readonly heldHead: Int32Array;
  private readonly chunkData: Uint8Array;
  private readonly chunkSeq: Uint32Array;
  private readonly chunkLen: Uint16Array;
  private readonly chunkNext: Int32Array;
  private freeChunk: number;

  constructor(options: {
    maxStreams: number;
    tailBytes: number;
    reassemblyBytes: number;
    streamHoldBytes: number;
  }) {
    const n = options.maxStreams;
    this.maxStreams = n;
    this.tailBytes = options.tailBytes;
    this.streamHoldBytes = options.streamHoldBytes;
    let buckets = 16;
    while (buckets < n) buckets *= 2;
    this.mask = buckets - 1;
    this.bucketHead = new Int32Array(buckets).fill(-1);
    this.chainNext = new Int32Array(n).fill(-1);
    this.hashes = new Uint32Array(n);
    this.used = new Uint8Array(n);
    this.keys = new Uint32Array(n * FLOW_KEY_WORDS);
    this.flags = new Uint8Array(n);
    this.lastSeen = new Float64Array(n);
    this.lruPrev = new Int32Array(n).fill(-1);
    this.lruNext = new Int32Array(n).fill(-1);
    this.freeNext = new Int32Array(n);
    for (let s = 0; s < n; s++) this.freeNext[s] = s + 1 < n ? s + 1 : -1;
    this.nextSeq = new Uint32Array(2 * n);
    this.seqKnown = new Uint8Array(2 * n);
    this.delivered = new Float64Array(2 * n);
    this.acState = new Int32Array(2 * n);
    this.tails = new Uint8Array(2 * n * this.tailBytes);
    this.tailLen = new Uint16Array(2 * n);
    this.heldBytes = new Uint32Array(2 * n);
    this.heldHead = new Int32Array(2 * n).fill(-1);
    this.chunks = Math.max(1, Math.floor(options.reassemblyBytes / CHUNK));
    this.chunkData = new Uint8Array(this.chunks * CHUNK);
    this.chunkSeq = new Uint32Array(this.chunks);
    this.chunkLen = new Uint16Array(this.chunks);
    this.chunkNext = new Int32Array(this.chunks);
    for (let c = 0; c < this.chunks; c++) this.chunkNext[c] = c + 1 < this.chunks ? c + 1 : -1;
    this.freeChunk = 0;
  }

  /**
   * The stream of `key` (hash: `key.symmetricHash()`), or -1. `reversed` is `key` reversed;
   * `direction` tells which of the two the stream stores as its client side.
   */
  direction = 0;
  find(key: FlowKey, reversed: FlowKey, hash: number): number {
    for (let s = this.bucketHead[hash & this.mask]; s >= 0; s = this.chainNext[s]) {
      if (this.hashes[s] !== hash >>> 0) continue;
      if (key.equalsAt(this.keys, s * FLOW_KEY_WORDS)) {
        this.direction = 0;
        return s;
      }
      if (reversed.equalsAt(this.keys, s * FLOW_KEY_WORDS)) {
        this.direction = 1;
        return s;
      }
    }
    return -1;
  }

  /** Adds a stream whose client sends `client`; evicts one when the table is full. */
  create(client: FlowKey, hash: number, now: number): number {
    if (this.freeSlot < 0) this.remove(this.victim(), StreamStat.Evicted);
    const s = this.freeSlot;
    this.freeSlot = this.freeNext[s];
    const b = hash & this.mask;
    this.used[s] = 1;
    this.hashes[s] = hash;
    this.chainNext[s] = this.bucketHead[b];
    this.bucketHead[b] = s;
    client.writeTo(this.keys, s * FLOW_KEY_WORDS);
    this.flags[s] = 0;
    this.lastSeen[s] = now;
    for (let i = 2 * s; i < 2 * s + 2; i++) {
      this.seqKnown[i] = 0;
      this.delivered[i] = 0;
      this.acState[i] = 0;
      this.tailLen[i] = 0;
      this.heldBytes[i] = 0;
      this.heldHead[i] = -1;
    }
    this.lruPrev[s] = -1;
    this.lruNext[s] = this.mruHead;
    if (this.mruHead >= 0) this.lruPrev[this.mruHead] = s;
    this.mruHead = s;
    if (this.lruTail < 0) this.lruTail = s;
    this.size++;
    this.stats[StreamStat.Created]++;
    return s;
  }

  /** Marks `s` used at `now` (moves it to the front of the LRU list). */
  touch(s: number, now: number): void {
    if (now > this.lastSeen[s]) this.lastSeen[s] = now;
    if (this.mruHead === s) return;
    this.unlinkLru(s);
    this.lruPrev[s] = -1;
    this.lruNext[s] = this.mruHead;
    if (this.mruHead >= 0) this.lruPrev[this.mruHead] = s;
    this.mruHead = s;
    if (this.lruTail < 0) this.lruTail = s;
  }

  /** Removes streams idle for `idleNs` or more; returns how many. */
  expire(now: number, idleNs: number): number {
    let n = 0;
    while (this.lruTail >= 0 && now - this.lastSeen[this.lruTail] >= idleNs) {
      this.remove(this.lruTail, StreamStat.Expired);
      n++;
    }
    return n;
  }

  /** Forgets stream `s` and frees its held pieces; `stat` (if ≥ 0) counts why. */
  remove(s: number, stat = -1): void {
    if (this.used[s] === 0) return;
    const b = this.hashes[s] & this.mask;
    if (this.bucketHead[b] === s) this.bucketHead[b] = this.chainNext[s];
    else {
      let p = this.bucketHead[b];
      while (p >= 0 && this.chainNext[p] !== s) p = this.chainNext[p];
      if (p >= 0) this.chainNext[p] = this.chainNext[s];
    }
    this.unlinkLru(s);
    for (let i = 2 * s; i < 2 * s + 2; i++) this.freeHeld(i);
    this.used[s] = 0;
    this.freeNext[s] = this.freeSlot;
    this.freeSlot = s;
    this.size--;
    if (stat >= 0) this.stats[stat]++;
  }

  /** Every stream, most recently used first (control plane and snapshots). */
  slots(): number[] {
    const out: number[] = [];
    for (let s = this.mruHead; s >= 0; s = this.lruNext[s]) out.push(s);
    return out;
  }

  /** Pieces held for direction index `i` (tests, plan). */
  heldPieces(i: number): number {
    let n = 0;
    for (let c = this.heldHead[i]; c >= 0; c = this.chunkNext[c]) n++;
    return n;
  }

  /**
   * Takes one segment of direction index `i` (2s + d): `length` payload bytes at `bytes[at]`,
   * sequence number `seq`. In-order bytes, and held pieces they make in-order, go to `deliver`
   * (which reads this stream's position from `delivered[i]` and `tailLen[i]` before each call;
   * `segment` updates both after it).
   */
  segment(i: number, seq: number, bytes: Uint8Array, at: number, length: number, deliver: Deliver): number {
    if (this.seqKnown[i] === 0) {
      this.seqKnown[i] = 1;
      this.nextSeq[i] = seq;
    }
    const rel = (seq - this.nextSeq[i]) | 0;
    if (rel + length <= 0) {
      this.stats[StreamStat.Retransmitted]++;
      // A "retransmission" that changes the bytes is an overlap the first copy wins.
      if (this.differsFromTail(i, bytes, at, length, rel)) {
        this.stats[StreamStat.Overlaps]++;
        this.stats[StreamStat.OverlapConflicts]++;
      }
      return SegmentResult.Old;
    }
    if (rel <= 0) {
      this.deliverInOrder(i, seq, bytes, at, length, deliver);
      return SegmentResult.Delivered;
    }
    if (rel > MAX_AHEAD) {
      // Lost far more than a window: restart the direction here (held pieces are now useless).
      this.stats[StreamStat.Gaps]++;
      this.freeHeld(i);
      this.nextSeq[i] = seq;
      this.delivered[i] += rel;
      this.tailLen[i] = 0;
      this.acState[i] = 0;
      this.deliverPiece(i, bytes, at, length, deliver);
      return SegmentResult.Gap;
    }
    return this.hold(i, seq, bytes, at, length) ? SegmentResult.Held : SegmentResult.Overflow;
  }

  /** Frees every held piece of direction index `i`. */
  freeHeld(i: number): void {
    let c = this.heldHead[i];
    while (c >= 0) {
      const next = this.chunkNext[c];
      this.chunkNext[c] = this.freeChunk;
      this.freeChunk = c;
      this.chunksUsed--;
      c = next;
    }
    this.heldHead[i] = -1;
    this.heldBytes[i] = 0;
  }

  /**
   * Delivers a segment that starts at or before nextSeq: bytes already delivered, and bytes a held
   * piece already covers, are skipped (first wins) and compared; the rest, and the held pieces, go
   * out in sequence order.
   */
  private deliverInOrder(
    i: number,
    seq: number,
    bytes: Uint8Array,
    at: number,
    length: number,
    deliver: Deliver,
  ): void {
    let cur = at;
    let curSeq = seq;
    const end = at + length;
    let overlapped = false;
    let conflict = false;
    while (cur < end) {
      const rel = (curSeq - this.nextSeq[i]) | 0;
      if (rel < 0) {
        const skip = Math.min(-rel, end - cur);
        overlapped = true;
        if (!conflict && this.differsFromTail(i, bytes, cur, skip, rel)) conflict = true;
        cur += skip;
        curSeq = (curSeq + skip) >>> 0;
        continue;
      }
      const c = this.heldHead[i];
      const heldAt = c >= 0 ? (this.chunkSeq[c] - this.nextSeq[i]) | 0 : end - cur;
      const n = Math.min(end - cur, heldAt);
      if (n > 0) {
        this.deliverPiece(i, bytes, cur, n, deliver);
        cur += n;
        curSeq = (curSeq + n) >>> 0;
      }
      this.drainHeld(i, deliver);
    }
    this.drainHeld(i, deliver);
    if (overlapped) this.stats[StreamStat.Overlaps]++;
    if (conflict) this.stats[StreamStat.OverlapConflicts]++;
  }

  private deliverPiece(i: number, bytes: Uint8Array, at: number, length: number, deliver: Deliver): void {
    deliver(bytes, at, length);
    // Keep the last tailBytes delivered bytes for the verifier's look-back (distance/within).
    const T = this.tailBytes;
    const base = i * T;
    const pos = this.delivered[i];
    const keep = Math.min(length, T);
    // One modulo on the (double) position, then a wrapping index: % per byte dominated the profile.
    let w = (pos + length - keep) % T;
    for (let k = length - keep; k < length; k++) {
      this.tails[base + w] = bytes[at + k];
      if (++w === T) w = 0;
    }
    this.tailLen[i] = Math.min(T, this.tailLen[i] + length);
    this.delivered[i] = pos + length;
    this.nextSeq[i] = (this.nextSeq[i] + length) >>> 0;
  }

  /** Delivers held pieces that became in-order; trims or drops the parts already delivered. */
  private drainHeld(i: number, deliver: Deliver): void {
    for (let c = this.heldHead[i]; c >= 0; c = this.heldHead[i]) {
      const rel = (this.chunkSeq[c] - this.nextSeq[i]) | 0;
      if (rel > 0) return;
      const length = this.chunkLen[c];
      this.heldHead[i] = this.chunkNext[c];
      this.heldBytes[i] -= length;
      if (rel + length > 0) this.deliverPiece(i, this.chunkData, c * CHUNK - rel, length + rel, deliver);
      this.chunkNext[c] = this.freeChunk;
      this.freeChunk = c;
      this.chunksUsed--;
    }
  }

  /**
   * Holds the parts of an out-of-order segment not already held (first wins), each in its own
   * chunk, in sequence order. False when a budget is exceeded (nothing of it is held then).
   */
  private hold(i: number, seq: number, bytes: Uint8Array, at: number, length: number): boolean {
    if (length > CHUNK) {
      this.stats[StreamStat.HoldOverflow]++;
      return false;
    }
    const base = this.nextSeq[i];
    const start = (seq - base) | 0;
    const end = start + length;
    // First pass: which gaps of the held list does [start, end) fill, and does it fit?
    let need = 0;
    let pieces = 0;
    let cursor = start;
    for (let c = this.heldHead[i]; c >= 0 && cursor < end; c = this.chunkNext[c]) {
      const hs = (this.chunkSeq[c] - base) | 0;
      const he = hs + this.chunkLen[c];
      if (he <= cursor) continue;
      if (hs >= end) break;
      if (hs > cursor) {
        need += hs - cursor;
        pieces++;
      }
      cursor = Math.max(cursor, he);
    }
    if (cursor < end) {
      need += end - cursor;
      pieces++;
    }
    if (need < length) {
      this.stats[StreamStat.Overlaps]++;
      if (this.differsFromHeld(i, base, start, end, bytes, at)) this.stats[StreamStat.OverlapConflicts]++;
    }
    if (pieces === 0) return true;
    if (this.heldBytes[i] + need > this.streamHoldBytes || this.chunksUsed + pieces > this.chunks) {
      this.stats[StreamStat.HoldOverflow]++;
      return false;
    }
    // Second pass: store each uncovered piece after its predecessor.
    let prev = -1;
    let c = this.heldHead[i];
    cursor = start;
    while (cursor < end) {
      while (c >= 0 && ((this.chunkSeq[c] - base) | 0) + this.chunkLen[c] <= cursor) {
        prev = c;
        c = this.chunkNext[c];
      }
      const hs = c >= 0 ? (this.chunkSeq[c] - base) | 0 : end;
      if (hs > cursor) {
        const pieceEnd = Math.min(hs, end);
        const n = this.freeChunk;
        this.freeChunk = this.chunkNext[n];
        this.chunksUsed++;
        const dst = n * CHUNK;
        for (let k = cursor; k < pieceEnd; k++) this.chunkData[dst + k - cursor] = bytes[at + k - start];
        this.chunkSeq[n] = (base + cursor) >>> 0;
        this.chunkLen[n] = pieceEnd - cursor;
        this.chunkNext[n] = c;
        if (prev < 0) this.heldHead[i] = n;
        else this.chunkNext[prev] = n;
        prev = n;
        this.heldBytes[i] += pieceEnd - cursor;
        cursor = pieceEnd;
      } else if (c >= 0) {
        cursor = Math.max(cursor, hs + this.chunkLen[c]);
      }
    }
    this.stats[StreamStat.Held]++;
    return true;
  }

  /**
   * Do `count` bytes at `bytes[at]`, which repeat the stream from `rel` (< 0) bytes before the
   * next position, differ from the delivered bytes still in the tail?
   */
  private differsFromTail(i: number, bytes: Uint8Array, at: number, count: number, rel: number): boolean {
    const T = this.tailBytes;
    const pos = this.delivered[i] + rel;
    const oldest = this.delivered[i] - this.tailLen[i];
    for (let k = 0; k < count; k++)
      if (pos + k >= oldest && this.tails[i * T + ((pos + k) % T)] !== bytes[at + k]) return true;
    return false;
  }

  private differsFromHeld(
    i: number,
    base: number,
    start: number,
    end: number,
    bytes: Uint8Array,
    at: number,
  ): boolean {
    for (let c = this.heldHead[i]; c >= 0; c = this.chunkNext[c]) {
      const hs = (this.chunkSeq[c] - base) | 0;
      const he = hs + this.chunkLen[c];
      const lo = Math.max(hs, start);
      const hi = Math.min(he, end);
      for (let k = lo; k < hi; k++)
        if (this.chunkData[c * CHUNK + k - hs] !== bytes[at + k - start]) return true;
    }
    return false;
  }

  /** The eviction victim: the oldest half-open stream among the least recently used few, else the LRU one. */
  private victim(): number {
    let s = this.lruTail;
    for (let k = 0; k < EVICTION_SAMPLE && s >= 0; k++, s = this.lruPrev[s])
      if ((this.flags[s] & StreamFlag.Established) === 0) return s;
    return this.lruTail;
  }

  private unlinkLru(s: number): void {
    const p = this.lruPrev[s];
    const n = this.lruNext[s];
    if (p >= 0) this.lruNext[p] = n;
    else if (this.mruHead === s) this.mruHead = n;
    if (n >= 0) this.lruPrev[n] = p;
    else if (this.lruTail === s) this.lruTail = p;
    this.lruPrev[s] = -1;
    this.lruNext[s] = -1;
  }
}
