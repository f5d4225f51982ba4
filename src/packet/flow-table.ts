/**
 * An open-addressing hash table of flow keys over typed arrays: the packet path's replacement for a
 * `Map` of string keys. It stores keys only; callers keep per-flow values in their own typed arrays
 * indexed by the entry number `find`/`insert` return, which never changes while the key is present.
 *
 *   index slot i:  slots[2i] hash (int32) │ slots[2i+1] entry + 1 (0: free)
 *   entry e:       used[e] (0/1) │ keys[e*W … e*W+W-1] (W = FLOW_KEY_WORDS)
 *
 * Entries are numbered in insertion order, so the keys — and the callers' values — of the flows
 * present sit together at the front of their arrays, however sparse the index is: a table sized for
 * a million flows that holds ten thousand touches ten thousand rows, not ten thousand scattered
 * over the whole capacity (with the key rows in the hash's slot, the NAT paid a cache miss per
 * array per packet at 10⁴ flows). The hash sits beside the entry number, so a probe that meets
 * another key's slot reads no key.
 *
 * Invariants: a key's index slot is the first free one of the linear probe sequence that starts at
 * `hash & mask`; entries 0 … size − 1 are used; nothing is ever removed (no tombstones): expiry is a
 * `clear()` and re-insertion of what lives (the NAT's and the flow monitor's `tick`). Capacity is
 * fixed at construction — nothing grows on the packet path; when the table is full, `insert`
 * returns -1 and the caller counts the overflow.
 *
 * @example
 * const table = new FlowTable(1 << 16);
 * const packets = new Float64Array(table.capacity);
 * let entry = table.find(key, key.hash());
 * if (entry < 0) entry = table.insert(key, key.hash());
 * if (entry >= 0) packets[entry]++;
 */
import { FLOW_KEY_WORDS, type FlowKey } from './flow-key.js';

export class FlowTable {
  /** Entries at most (and index slots): a power of two. */
  readonly capacity: number;
  /** Entry e's key at words e × FLOW_KEY_WORDS …. */
  readonly keys: Uint32Array;
  /** 1 for an entry in use (entries 0 … size − 1). */
  readonly used: Uint8Array;
  /** Keys present. */
  size = 0;
  /** Index slot i: [2i] the key's hash, [2i + 1] its entry + 1, or 0 when free. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  /** Probes before giving up: keeps a nearly full table from scanning everything per packet. */
  private readonly maxProbes: number;

  /** `capacity` is rounded up to a power of two (at least 16). */
  constructor(capacity: number) {
    let rounded = 16;
    while (rounded < capacity) rounded *= 2;
    this.capacity = rounded;
    this.mask = rounded - 1;
    this.maxProbes = Math.min(rounded, 64);
    this.slots = new Int32Array(2 * rounded);
    this.keys = new Uint32Array(rounded * FLOW_KEY_WORDS);
    this.used = new Uint8Array(rounded);
  }

  /** The entry holding `key` (whose hash is `hash`, as `key.hash()` returns it), or -1. */
  find(key: FlowKey, hash: number): number {
    const h = hash | 0;
    let slot = h & this.mask;
    for (let probe = 0; probe < this.maxProbes; probe++) {
      const entry = this.slots[2 * slot + 1] - 1;
      if (entry < 0) return -1;
      if (this.slots[2 * slot] === h && key.equalsAt(this.keys, entry * FLOW_KEY_WORDS)) return entry;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Stores `key` (not already present) and returns its entry, or -1 when full or its probe run is. */
  insert(key: FlowKey, hash: number): number {
    if (this.size >= this.capacity) return -1;
    const h = hash | 0;
    let slot = h & this.mask;
    for (let probe = 0; probe < this.maxProbes; probe++) {
      if (this.slots[2 * slot + 1] === 0) {
        const entry = this.size++;
        this.slots[2 * slot] = h;
        this.slots[2 * slot + 1] = entry + 1;
        this.used[entry] = 1;
        key.writeTo(this.keys, entry * FLOW_KEY_WORDS);
        return entry;
      }
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Copies the key of `entry` into `out`. */
  keyAt(entry: number, out: FlowKey): FlowKey {
    out.readFrom(this.keys, entry * FLOW_KEY_WORDS);
    return out;
  }

  /** Forgets every key. */
  clear(): void {
    this.slots.fill(0);
    this.used.fill(0, 0, this.size);
    this.size = 0;
  }
}
