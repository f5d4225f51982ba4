/**
 * Connection tracking for the firewall: a bounded table of connections keyed by the 5-tuple, found
 * from either direction, with a TCP state machine modelled on netfilter's
 * (`net/netfilter/nf_conntrack_proto_tcp.c`, `tcp_conntracks[dir][event][state]`) and per-state
 * timeouts.
 *
 * Storage is typed arrays only: entry e holds its original-direction key at `keys[10e..10e+9]`, its
 * symmetric hash, a hash-chain link, its TCP state, flags (used, replied) and expiry time (ns). A
 * free list makes deletion O(1). Entries not yet replied are also linked, oldest first, in a FIFO:
 * when the table is full a new connection evicts the oldest un-replied one, and when there is none
 * it is refused (the caller counts `conntrack_full`). Expired entries are removed when a lookup
 * meets them and by a bounded sweep in `tick()`.
 *
 * TCP window tracking follows netfilter's `tcp_in_window()` (after Guido van Rooij, "Real Stateful
 * TCP Packet Filtering in IP Filter"): per direction d of entry e, at index 2e + d,
 *
 *   tdEnd     highest sequence number sent (seq + length, SYN and FIN counted)
 *   tdMaxEnd  highest sequence number the other side's window allows (its ack + window)
 *   tdMaxWin  largest window the direction has advertised (scaled)
 *   tdScale   its window-scale shift (RFC 7323), kept only when both SYNs carried the option
 *
 * A segment is in window when its sequence number is at most the sender's tdMaxEnd, its end is
 * within the receiver's largest window behind the sender's tdEnd, and its ack is neither ahead of
 * what the receiver sent nor more than max(tdMaxWin, 66000) behind it. Sequence arithmetic is
 * int32 modulo 2^32 (`before`/`after`).
 */
import { FLOW_KEY_WORDS, type FlowKey } from '../../src/packet/flow-key.js';

/** Connection-state bits, as a rule's `state` list compiles to a mask. */
export const CtState = { New: 1, Established: 2, Related: 4, Invalid: 8 } as const;

/** TCP connection states (netfilter's names); `None` is "no entry". */
export const TcpState = {
  None: 0,
  SynSent: 1,
  SynRecv: 2,
  Established: 3,
  FinWait: 4,
  CloseWait: 5,
  LastAck: 6,
  TimeWait: 7,
  Close: 8,
} as const;
export const TCP_STATE_NAMES = [
  'none',
  'syn_sent',
  'syn_recv',
  'established',
  'fin_wait',
  'close_wait',
  'last_ack',
  'time_wait',
  'close',
];

/** Results of the transition table besides a state: the packet is invalid, or ignored (no change). */
export const TCP_INVALID = 9;
export const TCP_IGNORE = 10;

/** TCP events (from a segment's flags). */
export const TcpEvent = { Syn: 0, SynAck: 1, Fin: 2, Ack: 3, Rst: 4, None: 5 } as const;

const sSS = 1;
const sSR = 2;
const sES = 3;
const sFW = 4;
const sCW = 5;
const sLA = 6;
const sTW = 7;
const sCL = 8;
const sIV = TCP_INVALID;
const sIG = TCP_IGNORE;

/**
 * [direction][event] → next state per current state (sNO … sCL). Netfilter's table without the
 * simultaneous-open state SYN_SENT2 (a crossing SYN is invalid here) and with loose pick-up off: a
 * connection starts with a SYN, and any other first segment is invalid.
 */
const TCP_TABLE: readonly (readonly (readonly number[])[])[] = [
  // original direction
  [
    /* syn    */ [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS],
    /* synack */ [sIV, sIV, sIG, sIG, sIG, sIG, sIG, sIG, sIG],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL],
    /* ack    */ [sIV, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
  // reply direction
  [
    /* syn    */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sSS, sIV],
    /* synack */ [sIV, sSR, sSR, sIG, sIG, sIG, sIG, sIG, sIG],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL],
    /* ack    */ [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
];

/** Flattened for the packet path: index (dir * 6 + event) * 9 + state. */
const TCP_NEXT = Uint8Array.from(TCP_TABLE.flat(2));

/** The next TCP state, TCP_INVALID or TCP_IGNORE. @example tcpNext(0, TcpEvent.Syn, TcpState.None) === TcpState.SynSent */
export function tcpNext(reply: number, event: number, state: number): number {
  return TCP_NEXT[(reply * 6 + event) * 9 + state];
}

/** The event a segment's flags make (RST, then SYN/SYN-ACK, FIN, ACK). */
export function tcpEvent(flags: number): number {
  if ((flags & 0x04) !== 0) return TcpEvent.Rst;
  if ((flags & 0x02) !== 0) return (flags & 0x10) !== 0 ? TcpEvent.SynAck : TcpEvent.Syn;
  if ((flags & 0x01) !== 0) return TcpEvent.Fin;
  if ((flags & 0x10) !== 0) return TcpEvent.Ack;
  return TcpEvent.None;
}

/** Timeout slots (ns) after the nine TCP states (index 0 unused). */
export const Timeout = { UdpUnreplied: 9, UdpReplied: 10, Icmp: 11, Generic: 12 } as const;
export const TIMEOUT_SLOTS = 13;

const USED = 1;
const REPLIED = 2;
/** tdFlags bit: this direction's SYN carried a window-scale option. */
const WSCALE_SEEN = 1;
const SYN = 0x02;
const ACK = 0x10;
const RST = 0x04;
const FIN = 0x01;
/** netfilter's MAXACKWINDOW floor: an ack may lag the receiver's end by this much at least. */
const MAX_ACK_WINDOW_MIN = 66000;
/** RFC 7323 §2.3: a shift count above 14 is treated as 14. */
const MAX_WINDOW_SCALE = 14;

/** seq a comes before b, modulo 2^32. */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
/** seq a comes after b, modulo 2^32. */
function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}
/** The kinds of per-entry array the table keeps. */
type EntryArray = Uint32Array | Int32Array | Uint8Array | Float64Array;

/** An empty array of `array`'s kind (and realm) with `length` elements. */
function newLike(array: EntryArray, length: number): EntryArray {
  return new (array.constructor as new (length: number) => EntryArray)(length);
}

/** Expired entries the sweep in `tick()` looks at, at most, per call. */
const SWEEP = 8192;

export class Conntrack {
  readonly capacity: number;
  /** Connections in the table. */
  count = 0;
  /** Direction of the last entry `find` returned: 0 original, 1 reply. */
  reply = 0;
  private readonly buckets: number;
  private readonly keys: Uint32Array;
  private readonly hashOf: Int32Array;
  private readonly next: Int32Array;
  private readonly head: Int32Array;
  readonly tcpState: Uint8Array;
  readonly flags: Uint8Array;
  readonly expires: Float64Array;
  /** TCP window state per direction (index 2e + d), see the header. */
  private readonly tdEnd: Int32Array;
  private readonly tdMaxEnd: Int32Array;
  private readonly tdMaxWin: Int32Array;
  private readonly tdScale: Uint8Array;
  private readonly tdFlags: Uint8Array;
  private readonly uPrev: Int32Array;
  private readonly uNext: Int32Array;
  /** [unreplied head, unreplied tail, free head, count, sweep cursor] for snapshots. */
  private readonly meta = new Float64Array(5);
  private uHead = -1;
  private uTail = -1;
  private freeHead = 0;
  private cursor = 0;

  constructor(
    capacity: number,
    /** ns per Timeout slot (TCP states 1–8, then UDP unreplied/replied, ICMP, generic). */
    readonly timeouts: Float64Array,
  ) {
    this.capacity = capacity;
    let buckets = 1;
    while (buckets < capacity) buckets *= 2;
    this.buckets = buckets;
    this.keys = new Uint32Array(capacity * FLOW_KEY_WORDS);
    this.hashOf = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.head = new Int32Array(buckets).fill(-1);
    this.tcpState = new Uint8Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.expires = new Float64Array(capacity);
    this.tdEnd = new Int32Array(2 * capacity);
    this.tdMaxEnd = new Int32Array(2 * capacity);
    this.tdMaxWin = new Int32Array(2 * capacity);
    this.tdScale = new Uint8Array(2 * capacity);
    this.tdFlags = new Uint8Array(2 * capacity);
    this.uPrev = new Int32Array(capacity).fill(-1);
    this.uNext = new Int32Array(capacity).fill(-1);
    for (let e = 0; e < capacity; e++) this.next[e] = e + 1 < capacity ? e + 1 : -1;
  }

  /**
   * The live entry for `key` (either direction; `reverse` is scratch space), or -1. Sets `reply`.
   * An expired entry met here is removed and not returned.
   */
  find(key: FlowKey, reverse: FlowKey, hash: number, now: number): number {
    let e = this.head[hash & (this.buckets - 1)];
    while (e >= 0) {
      if (this.hashOf[e] === hash) {
        const at = e * FLOW_KEY_WORDS;
        const dir = key.equalsAt(this.keys, at) ? 0 : this.matchesReversed(key, reverse, at) ? 1 : -1;
        if (dir >= 0) {
          if (this.expires[e] <= now) {
            this.remove(e);
            return -1;
          }
          this.reply = dir;
          return e;
        }
      }
      e = this.next[e];
    }
    return -1;
  }

  /** Whether the entry key at word `at` is `key` reversed (built in `reverse`). Apart from `find` to keep it small. */
  private matchesReversed(key: FlowKey, reverse: FlowKey, at: number): boolean {
    reverse.copyFrom(key);
    reverse.reverse();
    return reverse.equalsAt(this.keys, at);
  }

  /**
   * Adds `key` as a new un-replied connection expiring at `expires`. When full, evicts the oldest
   * un-replied entry (returned in `evicted`); with none to evict, returns -1.
   */
  insert(key: FlowKey, hash: number, expires: number, tcpState: number): number {
    this.evicted = 0;
    if (this.freeHead < 0) {
      if (this.uHead < 0) return -1;
      this.remove(this.uHead);
      this.evicted = 1;
    }
    const e = this.freeHead;
    this.freeHead = this.next[e];
    key.writeTo(this.keys, e * FLOW_KEY_WORDS);
    this.hashOf[e] = hash;
    const b = hash & (this.buckets - 1);
    this.next[e] = this.head[b];
    this.head[b] = e;
    this.tcpState[e] = tcpState;
    this.flags[e] = USED;
    this.expires[e] = expires;
    // Append to the un-replied FIFO.
    this.uPrev[e] = this.uTail;
    this.uNext[e] = -1;
    if (this.uTail >= 0) this.uNext[this.uTail] = e;
    else this.uHead = e;
    this.uTail = e;
    this.count++;
    return e;
  }

  /**
   * Starts the window state of a new connection from its SYN (netfilter's tcp_new()): the
   * original direction has sent up to seq + length (+1 for the SYN), advertising `win`.
   * `seq` is int32; `wscale` the SYN's window-scale option or -1.
   */
  tcpStart(e: number, seq: number, length: number, flags: number, win: number, wscale: number): void {
    const s = 2 * e;
    const end = (seq + length + ((flags & SYN) !== 0 ? 1 : 0) + ((flags & FIN) !== 0 ? 1 : 0)) | 0;
    this.tdEnd[s] = end;
    this.tdMaxEnd[s] = end;
    this.tdMaxWin[s] = win === 0 ? 1 : win;
    this.tdScale[s] = wscale < 0 ? 0 : Math.min(wscale, MAX_WINDOW_SCALE);
    this.tdFlags[s] = wscale < 0 ? 0 : WSCALE_SEEN;
  }

  /**
   * netfilter's tcp_in_window(): whether a segment of entry `e` from direction `dir` (0 original,
   * 1 reply) lies in the window, its TCP state being `state` before it. With `apply`, the window
   * state moves on as netfilter's does for an in-window segment (call it again with `apply` once
   * the packet is accepted). `seq`/`ack` are int32, `length` the payload bytes, `wscale` the
   * segment's window-scale option or -1.
   */
  tcpInWindow(
    e: number,
    dir: number,
    state: number,
    seq: number,
    ack: number,
    win: number,
    flags: number,
    length: number,
    wscale: number,
    apply: boolean,
  ): boolean {
    const s = 2 * e + dir;
    const r = 2 * e + (1 - dir);
    let end = (seq + length + ((flags & SYN) !== 0 ? 1 : 0) + ((flags & FIN) !== 0 ? 1 : 0)) | 0;
    let sEnd = this.tdEnd[s];
    let sMaxEnd = this.tdMaxEnd[s];
    let sMaxWin = this.tdMaxWin[s];
    let sScale = this.tdScale[s];
    let sFlags = this.tdFlags[s];
    let rScale = this.tdScale[r];
    const rEnd = this.tdEnd[r];
    let rMaxEnd = this.tdMaxEnd[r];
    let rMaxWin = this.tdMaxWin[r];
    const syn = (flags & SYN) !== 0;
    const hasAck = (flags & ACK) !== 0;
    const rst = (flags & RST) !== 0;
    let initialized = false;
    if (sMaxWin === 0) {
      // The first segment of this direction: the SYN-ACK (or, for a connection picked up without
      // a handshake, any segment) sets its window state.
      sEnd = end;
      sMaxWin = win === 0 ? 1 : win;
      sMaxEnd = syn ? end : (end + sMaxWin) | 0;
      if (syn && wscale >= 0) {
        sScale = Math.min(wscale, MAX_WINDOW_SCALE);
        sFlags |= WSCALE_SEEN;
      }
      // Window scaling holds only when both SYNs offered it (RFC 7323 §2.2).
      if ((sFlags & WSCALE_SEEN) === 0 || (this.tdFlags[r] & WSCALE_SEEN) === 0) sScale = rScale = 0;
      initialized = true;
    } else if (
      ((state === TcpState.SynSent && dir === 0) || (state === TcpState.SynRecv && dir === 1)) &&
      syn &&
      after(end, sEnd)
    ) {
      // A SYN (or SYN-ACK) sent again with a new initial sequence number starts over.
      sEnd = end;
      sMaxEnd = end;
      sMaxWin = win === 0 ? 1 : win;
      sScale = wscale < 0 ? 0 : Math.min(wscale, MAX_WINDOW_SCALE);
      sFlags = wscale < 0 ? 0 : WSCALE_SEEN;
      initialized = true;
    }
    if (initialized && syn && !hasAck) {
      // The original SYN (resent): nothing to check against yet.
      if (apply) this.storeSender(s, sEnd, sMaxEnd, sMaxWin, sScale, sFlags);
      return true;
    }
    // No ACK flag, or the RST with ack 0 of broken stacks: take the ack as what the receiver sent.
    let sack = ack;
    if (!hasAck || (rst && ack === 0)) sack = rEnd;
    if (rst && seq === 0 && state === TcpState.SynSent) seq = end = sEnd;
    // No data: only the ack is checked (a RST is checked by its sequence number, except the
    // seq-0 RST answering a SYN).
    if (seq === end && (!rst || (seq === 0 && state === TcpState.SynSent))) seq = end = sEnd;
    const inReceiveWindow = rMaxWin === 0 || after(end, (sEnd - rMaxWin - 1) | 0);
    const maxAckWindow = sMaxWin > MAX_ACK_WINDOW_MIN ? sMaxWin : MAX_ACK_WINDOW_MIN;
    const inWindow =
      before(seq, (sMaxEnd + 1) | 0) &&
      inReceiveWindow &&
      before(sack, (rEnd + 1) | 0) &&
      after(sack, (rEnd - maxAckWindow - 1) | 0);
    if (!inWindow || !apply) return inWindow;
    const scaled = syn ? win : win << sScale;
    if (sMaxWin < scaled) sMaxWin = scaled;
    if (after(end, sEnd)) sEnd = end;
    if (rMaxWin !== 0 && after(end, sMaxEnd)) rMaxWin = (rMaxWin + ((end - sMaxEnd) | 0)) | 0;
    if (after((sack + scaled) | 0, (rMaxEnd - 1) | 0)) {
      rMaxEnd = (sack + scaled) | 0;
      if (scaled === 0) rMaxEnd = (rMaxEnd + 1) | 0;
    }
    this.storeSender(s, sEnd, sMaxEnd, sMaxWin, sScale, sFlags);
    this.tdMaxEnd[r] = rMaxEnd;
    this.tdMaxWin[r] = rMaxWin;
    this.tdScale[r] = rScale;
    return true;
  }

  private storeSender(
    s: number,
    end: number,
    maxEnd: number,
    maxWin: number,
    scale: number,
    flags: number,
  ): void {
    this.tdEnd[s] = end;
    this.tdMaxEnd[s] = maxEnd;
    this.tdMaxWin[s] = maxWin;
    this.tdScale[s] = scale;
    this.tdFlags[s] = flags;
  }

  /** Entries evicted by the last `insert` (0 or 1). */
  evicted = 0;

  /** Marks `e` replied: it leaves the un-replied FIFO and can no longer be evicted. */
  markReplied(e: number): void {
    if ((this.flags[e] & REPLIED) !== 0) return;
    this.flags[e] |= REPLIED;
    this.unlinkUnreplied(e);
  }

  replied(e: number): boolean {
    return (this.flags[e] & REPLIED) !== 0;
  }

  /** Removes entry `e`. */
  remove(e: number): void {
    const b = this.hashOf[e] & (this.buckets - 1);
    let p = this.head[b];
    if (p === e) this.head[b] = this.next[e];
    else {
      while (p >= 0 && this.next[p] !== e) p = this.next[p];
      if (p >= 0) this.next[p] = this.next[e];
    }
    if ((this.flags[e] & REPLIED) === 0) this.unlinkUnreplied(e);
    this.flags[e] = 0;
    this.tcpState[e] = 0;
    this.expires[e] = 0;
    this.hashOf[e] = 0;
    for (let i = 2 * e; i < 2 * e + 2; i++) {
      this.tdEnd[i] = 0;
      this.tdMaxEnd[i] = 0;
      this.tdMaxWin[i] = 0;
      this.tdScale[i] = 0;
      this.tdFlags[i] = 0;
    }
    this.keys.fill(0, e * FLOW_KEY_WORDS, (e + 1) * FLOW_KEY_WORDS);
    this.next[e] = this.freeHead;
    this.freeHead = e;
    this.count--;
  }

  /** Removes up to SWEEP expired entries, resuming where the last sweep stopped; returns how many. */
  sweep(now: number): number {
    let removed = 0;
    const n = Math.min(this.capacity, SWEEP);
    for (let i = 0; i < n; i++) {
      const e = this.cursor;
      this.cursor = e + 1 === this.capacity ? 0 : e + 1;
      if (this.flags[e] !== 0 && this.expires[e] <= now) {
        this.remove(e);
        removed++;
      }
    }
    return removed;
  }

  /** The original-direction key of entry `e`. */
  keyOf(e: number, out: FlowKey): FlowKey {
    out.readFrom(this.keys, e * FLOW_KEY_WORDS);
    return out;
  }

  /** Un-replied entries (walks the FIFO: for tests and status). */
  unrepliedCount(): number {
    let n = 0;
    for (let e = this.uHead; e >= 0; e = this.uNext[e]) n++;
    return n;
  }

  /**
   * A copy of the table (structured-cloneable) whose size follows the connections it holds, not
   * its capacity: the rows of the entries in use, and the free list as runs of consecutive entries
   * (one run in a table that never removed anything). Copying every array whole took 243–323 ms
   * for an empty table of 4,194,304 entries, on the thread of the packet path.
   */
  snapshot(): Record<string, unknown> {
    this.saveMeta();
    let n = 0;
    for (let e = 0; e < this.capacity; e++) if (this.flags[e] !== 0) n++;
    const used = new Int32Array(n);
    for (let e = 0, k = 0; e < this.capacity && k < n; e++) if (this.flags[e] !== 0) used[k++] = e;
    const out: Record<string, unknown> = {
      version: 2,
      capacity: this.capacity,
      used,
      freeRuns: this.freeRuns(),
      meta: this.meta.slice(),
    };
    for (const [name, array, width] of this.entryArrays()) {
      const rows = newLike(array, n * width);
      for (let k = 0; k < n; k++) {
        const from = used[k] * width;
        for (let w = 0; w < width; w++) rows[k * width + w] = array[from + w];
      }
      out[name] = rows;
    }
    return out;
  }

  /**
   * Restores a `snapshot()` (this version's, or the whole-array one of earlier versions) of a table
   * of the same capacity; returns false (changing nothing) otherwise.
   */
  restore(state: unknown): boolean {
    const s = state as Record<string, unknown> | null;
    if (s === null || typeof s !== 'object' || s.capacity !== this.capacity) return false;
    return s.version === 2 ? this.restoreRows(s) : this.restoreWhole(s);
  }

  /** Every per-entry array, its name in a snapshot and its elements per entry. */
  private entryArrays(): [string, EntryArray, number][] {
    return [
      ['keys', this.keys, FLOW_KEY_WORDS],
      ['hashOf', this.hashOf, 1],
      ['next', this.next, 1],
      ['tcpState', this.tcpState, 1],
      ['flags', this.flags, 1],
      ['expires', this.expires, 1],
      ['tdEnd', this.tdEnd, 2],
      ['tdMaxEnd', this.tdMaxEnd, 2],
      ['tdMaxWin', this.tdMaxWin, 2],
      ['tdScale', this.tdScale, 2],
      ['tdFlags', this.tdFlags, 2],
      ['uPrev', this.uPrev, 1],
      ['uNext', this.uNext, 1],
    ];
  }

  /** The free list from `freeHead`, as (first entry, length) runs of consecutive entries. */
  private freeRuns(): Int32Array {
    let runs = new Int32Array(16);
    let r = 0;
    let steps = 0;
    for (let e = this.freeHead; e >= 0 && steps < this.capacity; e = this.next[e], steps++) {
      if (r > 0 && runs[r - 2] + runs[r - 1] === e) {
        runs[r - 1]++;
        continue;
      }
      if (r + 2 > runs.length) {
        const grown = new Int32Array(runs.length * 2);
        grown.set(runs);
        runs = grown;
      }
      runs[r] = e;
      runs[r + 1] = 1;
      r += 2;
    }
    return runs.slice(0, r);
  }

  /**
   * Restores a version-2 snapshot. What it leaves out is what `remove` leaves in a free entry
   * (zeros, no FIFO links) and what the rows imply: a bucket's head is the one entry of its chain
   * that no other entry's `next` names. Checked whole before anything changes.
   */
  private restoreRows(s: Record<string, unknown>): boolean {
    const { used, freeRuns, meta } = s;
    if (!(used instanceof Int32Array) || !(freeRuns instanceof Int32Array) || !(meta instanceof Float64Array))
      return false;
    const n = used.length;
    if (n > this.capacity || meta.length !== this.meta.length || (freeRuns.length & 1) !== 0) return false;
    for (let k = 0; k < n; k++)
      if (used[k] < 0 || used[k] >= this.capacity || (k > 0 && used[k] <= used[k - 1])) return false;
    let free = 0;
    for (let r = 0; r < freeRuns.length; r += 2) {
      const first = freeRuns[r];
      const length = freeRuns[r + 1];
      if (first < 0 || length < 1 || first + length > this.capacity) return false;
      free += length;
    }
    if (free + n !== this.capacity) return false;
    const arrays = this.entryArrays();
    for (const [name, array, width] of arrays) {
      const rows = s[name];
      if (!ArrayBuffer.isView(rows) || rows.constructor !== array.constructor) return false;
      if ((rows as EntryArray).length !== n * width) return false;
    }
    for (const [, array] of arrays) array.fill(0);
    this.next.fill(-1);
    this.uPrev.fill(-1);
    this.uNext.fill(-1);
    this.head.fill(-1);
    for (const [name, array, width] of arrays) {
      const rows = s[name] as EntryArray;
      for (let k = 0; k < n; k++) {
        const to = used[k] * width;
        for (let w = 0; w < width; w++) array[to + w] = rows[k * width + w];
      }
    }
    let last = -1;
    for (let r = 0; r < freeRuns.length; r += 2) {
      for (let e = freeRuns[r]; e < freeRuns[r] + freeRuns[r + 1]; e++) {
        if (last >= 0) this.next[last] = e;
        last = e;
      }
    }
    if (last >= 0) this.next[last] = -1;
    const named = new Uint8Array(this.capacity);
    for (let k = 0; k < n; k++) if (this.next[used[k]] >= 0) named[this.next[used[k]]] = 1;
    for (let k = 0; k < n; k++) {
      const e = used[k];
      if (named[e] === 0) this.head[this.hashOf[e] & (this.buckets - 1)] = e;
    }
    this.meta.set(meta);
    this.loadMeta();
    return true;
  }

  /** Restores a snapshot of every array whole (versions before 2). */
  private restoreWhole(s: Record<string, unknown>): boolean {
    const pairs: [EntryArray, unknown][] = [
      ...this.entryArrays().map(([name, array]): [EntryArray, unknown] => [array, s[name]]),
      [this.head, s.head],
      [this.meta, s.meta],
    ];
    for (const [mine, theirs] of pairs) {
      if (!ArrayBuffer.isView(theirs) || mine.constructor !== theirs.constructor) return false;
      if ((theirs as unknown as ArrayLike<number>).length !== mine.length) return false;
    }
    for (const [mine, theirs] of pairs) mine.set(theirs as ArrayLike<number>);
    this.loadMeta();
    return true;
  }

  /** FNV-1a over every array of the table: equal digests mean equal state. */
  digest(): number {
    this.saveMeta();
    let h = 0x811c9dc5 | 0;
    const arrays = [...this.entryArrays().map(([, array]) => array), this.head, this.meta];
    for (const a of arrays) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
    }
    return h >>> 0;
  }

  private loadMeta(): void {
    this.uHead = this.meta[0];
    this.uTail = this.meta[1];
    this.freeHead = this.meta[2];
    this.count = this.meta[3];
    this.cursor = this.meta[4];
  }

  private saveMeta(): void {
    this.meta[0] = this.uHead;
    this.meta[1] = this.uTail;
    this.meta[2] = this.freeHead;
    this.meta[3] = this.count;
    this.meta[4] = this.cursor;
  }

  private unlinkUnreplied(e: number): void {
    const p = this.uPrev[e];
    const n = this.uNext[e];
    if (p >= 0) this.uNext[p] = n;
    else if (this.uHead === e) this.uHead = n;
    if (n >= 0) this.uPrev[n] = p;
    else if (this.uTail === e) this.uTail = p;
    this.uPrev[e] = -1;
    this.uNext[e] = -1;
  }
}
