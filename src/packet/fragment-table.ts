/**
 * IP fragment reassembly (the job of Snort's frag3 and Suricata's defrag; used by the IDS, and by
 * the WireGuard gateway for outer fragments of its messages): a bounded table of datagrams in
 * reassembly; when one is complete it is rebuilt as one frame — the first fragment's link and IP
 * headers, then the whole payload — to be handled like any packet once `seal()` has fixed its header.
 *
 *   datagram d (0 ≤ d < maxDatagrams):
 *     keys[d*W …]            (src, dst, protocol, id) as a FlowKey (W = FLOW_KEY_WORDS): IPv4 puts the
 *                            protocol in its field and the id in the destination port; IPv6 keys on
 *                            (src, dst, id) (RFC 8200 §4.5), the 32-bit id split over both ports
 *     bucket chain            bucketHead[hash & mask] → chainNext[d] → …   (-1 ends)
 *     age list                agePrev[d] / ageNext[d], oldest … newest (creation order: a datagram
 *                            times out from its first fragment, as in Linux, and eviction takes the oldest)
 *     created[d]             ns of its first fragment
 *     total[d]               payload length, set by the last fragment (MF clear); -1 until then
 *     maxEnd[d]              end of the furthest fragment accepted
 *     blocks[d]              8-byte blocks received
 *     covered[d*BW …]        one bit per 8-byte block of the payload (BW = 65536 / 8 / 32 words)
 *     slots[d*SLOTS + k]     chunk holding payload bytes [k*CHUNK, (k+1)*CHUNK), or -1
 *     header[d*HEADER_MAX …] the first fragment's bytes before its data (link + IP header; for IPv6
 *                            up to the Fragment header, which the rebuilt frame leaves out);
 *                            headerLength[d] = 0 until the first fragment arrives
 *   chunk pool: chunkData[c*CHUNK …]; free chunks linked through chunkNext[c] from freeChunk
 *
 * Invariants: block 0 covered ⇔ headerLength[d] > 0; maxEnd[d] ≤ datagramBytes and, once total[d]
 * is set, ≤ total[d]; complete ⇔ total[d] ≥ 0 and blocks[d] = ⌈total[d] / 8⌉; chunks in use ≤ the
 * pool (bytes / CHUNK).
 *
 * Overlap policy: first wins, at 8-byte granularity (fragment offsets count 8-byte units). Bytes
 * already received are kept; a later fragment's copy of them is counted (`Overlaps`), and counted
 * again when it differs (`OverlapConflicts`). Why first wins: receivers disagree (Linux since 4.19
 * and every RFC 5722 IPv6 stack throw the whole datagram away on overlap, old BSDs and Windows kept
 * the first copy, some kept the last), so no policy matches all of them; the IDS instead makes the
 * question moot where it can: with `rejectConflicts` (prevent mode) a fragment whose bytes conflict
 * is refused whole (`Conflict`) and the caller drops it, so the receiver only ever gets bytes the
 * IDS inspected. In alert mode its new bytes are kept (first wins for the old ones) and it is
 * counted as an evasion attempt.
 *
 * Consistency (as Linux's ip_frag_queue): a non-last fragment whose length is not a multiple of 8,
 * an empty one, or a first fragment whose headers do not fit HEADER_MAX is refused (`Bad`, the
 * datagram kept); a fragment past the end the last fragment set, a last fragment short of data
 * already received, or a second, different end discards the datagram (`Bad`), as Linux discards
 * the queue.
 *
 * Bounds: at most maxDatagrams in reassembly (a new one evicts the oldest: `Evicted`), at most
 * `bytes` of payload in all (a chunk that cannot be had evicts the oldest other datagrams, then
 * gives this one up), at most `datagramBytes` per datagram (past it the datagram is given up:
 * `Evicted`). A datagram given up or timed out never completes: its fragments pass uninspected.
 */
import { FLOW_KEY_WORDS, type FlowKey } from './flow-key.js';
import { Ipv4View } from './ipv4.js';
import { IPV6_HEADER_LENGTH, Ipv6View } from './ipv6.js';

/** Payload bytes per chunk of the pool (a multiple of 8: a block never straddles two chunks). */
export const FRAGMENT_CHUNK = 1024;
const CHUNK_SHIFT = 10;
/** Largest IP payload a datagram can have (the 16-bit length fields). */
const MAX_PAYLOAD = 65536;
const SLOTS = MAX_PAYLOAD / FRAGMENT_CHUNK;
const BITMAP_WORDS = MAX_PAYLOAD / 8 / 32;
/** Bytes kept of a first fragment's headers (link + IPv4 with options, or IPv6 + extension headers). */
export const HEADER_MAX = 256;

/** What `add()` did with a fragment. */
export const FragmentResult = {
  /** Kept (or a copy of bytes already there); the datagram is not complete yet. */
  Held: 0,
  /** The datagram is complete: the rebuilt frame is in `out[0, outLength)`. */
  Complete: 1,
  /** Refused: its bytes differ from bytes already received (only with `rejectConflicts`). */
  Conflict: 2,
  /** Refused as inconsistent (see the file comment); the datagram may have been discarded. */
  Bad: 3,
  /** Not kept: its datagram was given up to stay within a budget. */
  Untracked: 4,
} as const;

/** Indices into `stats` (added to the NF's counters, then cleared). */
export const FragmentStat = {
  Created: 0,
  Reassembled: 1,
  Expired: 2,
  Evicted: 3,
  Overlaps: 4,
  OverlapConflicts: 5,
  Bad: 6,
} as const;
export const FRAGMENT_STATS = 7;

export class FragmentTable {
  readonly maxDatagrams: number;
  readonly chunks: number;
  readonly datagramBytes: number;
  readonly stats = new Float64Array(FRAGMENT_STATS);
  size = 0;
  chunksUsed = 0;

  /** The rebuilt frame of the datagram `add()` completed: `out[0, outLength)`. */
  readonly out = new Uint8Array(HEADER_MAX + MAX_PAYLOAD);
  outLength = 0;
  /** Offset of the IP header in `out`. */
  outIpAt = 0;
  /** IPv6: offset in `out` of the Next Header byte that named the Fragment header; -1 for IPv4. */
  outFixAt = -1;
  /** IPv6: the Fragment header's Next Header (what `out[outFixAt]` must become). */
  outNext = 0;
  /** Payload length of the completed datagram. */
  outPayload = 0;

  private readonly sealV4 = new Ipv4View();
  private readonly sealV6 = new Ipv6View();
  private readonly rejectConflicts: boolean;
  private readonly mask: number;
  private readonly bucketHead: Int32Array;
  private readonly chainNext: Int32Array;
  private readonly hashes: Int32Array;
  private readonly keys: Uint32Array;
  private readonly used: Uint8Array;
  private readonly agePrev: Int32Array;
  private readonly ageNext: Int32Array;
  private oldest = -1;
  private newest = -1;
  private freeSlot = 0;
  private readonly freeNext: Int32Array;
  private readonly created: Float64Array;
  private readonly total: Int32Array;
  private readonly maxEnd: Int32Array;
  private readonly blocks: Int32Array;
  private readonly covered: Uint32Array;
  private readonly slots: Int32Array;
  private readonly header: Uint8Array;
  private readonly headerLength: Uint16Array;
  private readonly ipAt: Uint16Array;
  private readonly fixAt: Int16Array;
  private readonly next: Uint8Array;
  private readonly chunkData: Uint8Array;
  private readonly chunkNext: Int32Array;
  private freeChunk: number;

  constructor(options: {
    maxDatagrams: number;
    bytes: number;
    datagramBytes: number;
    rejectConflicts: boolean;
  }) {
    const n = options.maxDatagrams;
    this.maxDatagrams = n;
    this.datagramBytes = Math.min(options.datagramBytes, MAX_PAYLOAD - 1);
    this.rejectConflicts = options.rejectConflicts;
    let buckets = 16;
    while (buckets < n) buckets *= 2;
    this.mask = buckets - 1;
    this.bucketHead = new Int32Array(buckets).fill(-1);
    this.chainNext = new Int32Array(n).fill(-1);
    this.hashes = new Int32Array(n);
    this.keys = new Uint32Array(n * FLOW_KEY_WORDS);
    this.used = new Uint8Array(n);
    this.agePrev = new Int32Array(n).fill(-1);
    this.ageNext = new Int32Array(n).fill(-1);
    this.freeNext = new Int32Array(n);
    for (let d = 0; d < n; d++) this.freeNext[d] = d + 1 < n ? d + 1 : -1;
    this.created = new Float64Array(n);
    this.total = new Int32Array(n);
    this.maxEnd = new Int32Array(n);
    this.blocks = new Int32Array(n);
    this.covered = new Uint32Array(n * BITMAP_WORDS);
    this.slots = new Int32Array(n * SLOTS).fill(-1);
    this.header = new Uint8Array(n * HEADER_MAX);
    this.headerLength = new Uint16Array(n);
    this.ipAt = new Uint16Array(n);
    this.fixAt = new Int16Array(n);
    this.next = new Uint8Array(n);
    this.chunks = Math.max(1, Math.floor(options.bytes / FRAGMENT_CHUNK));
    this.chunkData = new Uint8Array(this.chunks * FRAGMENT_CHUNK);
    this.chunkNext = new Int32Array(this.chunks);
    for (let c = 0; c < this.chunks; c++) this.chunkNext[c] = c + 1 < this.chunks ? c + 1 : -1;
    this.freeChunk = 0;
  }

  /**
   * Adds the fragment whose data is `bytes[dataAt, dataAt + dataLength)` at payload offset `offset`
   * (bytes), `more` = its MF flag, to the datagram of `key`. A first fragment (offset 0) also gives
   * its headers `bytes[headerAt, headerAt + headerLength)`, the IP header at `ipAt` within them and,
   * for IPv6, the offset `fixAt` (within them) of the Next Header byte naming the Fragment header and
   * the Fragment header's own Next Header `next` (`fixAt` -1 for IPv4).
   */
  add(
    key: FlowKey,
    now: number,
    offset: number,
    more: boolean,
    bytes: Uint8Array,
    dataAt: number,
    dataLength: number,
    headerAt: number,
    headerLength: number,
    ipAt: number,
    fixAt: number,
    next: number,
  ): number {
    const end = offset + dataLength;
    if (dataLength <= 0 || (more && (dataLength & 7) !== 0) || (offset & 7) !== 0) {
      this.stats[FragmentStat.Bad]++;
      return FragmentResult.Bad;
    }
    if (offset === 0 && headerLength > HEADER_MAX) {
      this.stats[FragmentStat.Bad]++;
      return FragmentResult.Bad;
    }
    const hash = key.hash();
    let d = this.find(key, hash);
    if (d < 0) d = this.create(key, hash, now);
    // Length consistency (Linux: a changed or exceeded end discards the queue).
    const total = this.total[d];
    if (more ? total >= 0 && end > total : (total >= 0 && end !== total) || this.maxEnd[d] > end) {
      this.remove(d, FragmentStat.Bad);
      return FragmentResult.Bad;
    }
    if (end > this.datagramBytes) {
      this.remove(d, FragmentStat.Evicted);
      return FragmentResult.Untracked;
    }
    // First pass: overlaps with blocks already received, and whether their bytes differ.
    const bitBase = d * BITMAP_WORDS;
    const firstBlock = offset >>> 3;
    const endBlock = (end + 7) >>> 3;
    let overlapping = 0;
    let conflict = false;
    for (let b = firstBlock; b < endBlock; b++) {
      if ((this.covered[bitBase + (b >>> 5)] & (1 << (b & 31))) === 0) continue;
      overlapping++;
      if (!conflict) conflict = this.differs(d, b << 3, bytes, dataAt + (b << 3) - offset, end);
    }
    if (overlapping > 0) {
      this.stats[FragmentStat.Overlaps]++;
      if (conflict) {
        this.stats[FragmentStat.OverlapConflicts]++;
        if (this.rejectConflicts) return FragmentResult.Conflict;
      }
    }
    // Second pass: copy the new blocks (first wins for the others).
    if (overlapping < endBlock - firstBlock) {
      for (let b = firstBlock; b < endBlock; b++) {
        const word = bitBase + (b >>> 5);
        const bit = 1 << (b & 31);
        if ((this.covered[word] & bit) !== 0) continue;
        const p = b << 3;
        const slot = d * SLOTS + (p >>> CHUNK_SHIFT);
        let c = this.slots[slot];
        if (c < 0) {
          c = this.allocChunk(d);
          if (c < 0) {
            this.remove(d, FragmentStat.Evicted);
            return FragmentResult.Untracked;
          }
          this.slots[slot] = c;
        }
        const to = c * FRAGMENT_CHUNK + (p & (FRAGMENT_CHUNK - 1));
        const from = dataAt + p - offset;
        const n = Math.min(8, end - p);
        for (let k = 0; k < n; k++) this.chunkData[to + k] = bytes[from + k];
        this.covered[word] |= bit;
        this.blocks[d]++;
      }
    }
    if (end > this.maxEnd[d]) this.maxEnd[d] = end;
    if (!more) this.total[d] = end;
    if (offset === 0 && this.headerLength[d] === 0) {
      const h = d * HEADER_MAX;
      for (let k = 0; k < headerLength; k++) this.header[h + k] = bytes[headerAt + k];
      this.headerLength[d] = headerLength;
      this.ipAt[d] = ipAt;
      this.fixAt[d] = fixAt;
      this.next[d] = next;
    }
    if (this.total[d] < 0 || this.blocks[d] !== (this.total[d] + 7) >>> 3) return FragmentResult.Held;
    this.assemble(d);
    this.remove(d, FragmentStat.Reassembled);
    return FragmentResult.Complete;
  }

  /** Forgets datagrams whose first fragment came `timeoutNs` or more before `now`; returns how many. */
  expire(now: number, timeoutNs: number): number {
    let n = 0;
    while (this.oldest >= 0 && now - this.created[this.oldest] >= timeoutNs) {
      this.remove(this.oldest, FragmentStat.Expired);
      n++;
    }
    return n;
  }

  private find(key: FlowKey, hash: number): number {
    for (let d = this.bucketHead[hash & this.mask]; d >= 0; d = this.chainNext[d])
      if (this.hashes[d] === hash && key.equalsAt(this.keys, d * FLOW_KEY_WORDS)) return d;
    return -1;
  }

  private create(key: FlowKey, hash: number, now: number): number {
    if (this.freeSlot < 0) this.remove(this.oldest, FragmentStat.Evicted);
    const d = this.freeSlot;
    this.freeSlot = this.freeNext[d];
    const b = hash & this.mask;
    this.used[d] = 1;
    this.hashes[d] = hash;
    this.chainNext[d] = this.bucketHead[b];
    this.bucketHead[b] = d;
    key.writeTo(this.keys, d * FLOW_KEY_WORDS);
    this.created[d] = now;
    this.total[d] = -1;
    this.maxEnd[d] = 0;
    this.blocks[d] = 0;
    this.headerLength[d] = 0;
    this.covered.fill(0, d * BITMAP_WORDS, (d + 1) * BITMAP_WORDS);
    this.agePrev[d] = this.newest;
    this.ageNext[d] = -1;
    if (this.newest >= 0) this.ageNext[this.newest] = d;
    else this.oldest = d;
    this.newest = d;
    this.size++;
    this.stats[FragmentStat.Created]++;
    return d;
  }

  /** Forgets datagram `d` and frees its chunks; `stat` counts why. */
  private remove(d: number, stat: number): void {
    if (this.used[d] === 0) return;
    const b = this.hashes[d] & this.mask;
    if (this.bucketHead[b] === d) this.bucketHead[b] = this.chainNext[d];
    else {
      let p = this.bucketHead[b];
      while (p >= 0 && this.chainNext[p] !== d) p = this.chainNext[p];
      if (p >= 0) this.chainNext[p] = this.chainNext[d];
    }
    const prev = this.agePrev[d];
    const next = this.ageNext[d];
    if (prev >= 0) this.ageNext[prev] = next;
    else this.oldest = next;
    if (next >= 0) this.agePrev[next] = prev;
    else this.newest = prev;
    for (let k = d * SLOTS; k < (d + 1) * SLOTS; k++) {
      const c = this.slots[k];
      if (c < 0) continue;
      this.chunkNext[c] = this.freeChunk;
      this.freeChunk = c;
      this.chunksUsed--;
      this.slots[k] = -1;
    }
    this.used[d] = 0;
    this.freeNext[d] = this.freeSlot;
    this.freeSlot = d;
    this.size--;
    this.stats[stat]++;
  }

  /** A free chunk for datagram `d`, evicting the oldest other datagrams if need be; -1 if none. */
  private allocChunk(d: number): number {
    while (this.freeChunk < 0) {
      let victim = this.oldest;
      if (victim === d) victim = this.ageNext[d];
      if (victim < 0) return -1;
      this.remove(victim, FragmentStat.Evicted);
    }
    const c = this.freeChunk;
    this.freeChunk = this.chunkNext[c];
    this.chunksUsed++;
    return c;
  }

  /** True when the stored block at payload position `p` differs from `bytes[at…]` (up to `end`). */
  private differs(d: number, p: number, bytes: Uint8Array, at: number, end: number): boolean {
    const c = this.slots[d * SLOTS + (p >>> CHUNK_SHIFT)];
    const from = c * FRAGMENT_CHUNK + (p & (FRAGMENT_CHUNK - 1));
    const n = Math.min(8, end - p);
    for (let k = 0; k < n; k++) if (this.chunkData[from + k] !== bytes[at + k]) return true;
    return false;
  }

  /**
   * Makes the rebuilt frame's IP header say "one whole datagram" — IPv4: total length, no MF,
   * offset 0, a new checksum; IPv6: the payload length, and the Next Header that named the Fragment
   * header now naming what followed it. False when the datagram is too long for its length field
   * (the frame then must not be used).
   */
  seal(): boolean {
    const out = this.out;
    const ipAt = this.outIpAt;
    if (this.outFixAt < 0) {
      const ip = this.sealV4.attachUnchecked(out, ipAt, this.outLength - ipAt);
      const total = ip.headerLength() + this.outPayload;
      if (total > 0xffff) return false;
      ip.setTotalLength(total);
      ip.setFragment(ip.dontFragment(), false, 0);
      ip.fillChecksum();
      return true;
    }
    const payload = this.outLength - ipAt - IPV6_HEADER_LENGTH;
    if (payload > 0xffff) return false;
    out[this.outFixAt] = this.outNext;
    this.sealV6.attachUnchecked(out, ipAt, this.outLength - ipAt).setPayloadLength(payload);
    return true;
  }

  /** Writes datagram d's headers and payload into `out`. */
  private assemble(d: number): void {
    const h = this.headerLength[d];
    const hBase = d * HEADER_MAX;
    const out = this.out;
    for (let k = 0; k < h; k++) out[k] = this.header[hBase + k];
    const total = this.total[d];
    for (let p = 0; p < total; p += FRAGMENT_CHUNK) {
      const c = this.slots[d * SLOTS + (p >>> CHUNK_SHIFT)];
      const n = Math.min(FRAGMENT_CHUNK, total - p);
      const from = c * FRAGMENT_CHUNK;
      for (let k = 0; k < n; k++) out[h + p + k] = this.chunkData[from + k];
    }
    this.outLength = h + total;
    this.outIpAt = this.ipAt[d];
    this.outFixAt = this.fixAt[d];
    this.outNext = this.next[d];
    this.outPayload = total;
  }
}
