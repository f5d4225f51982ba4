/**
 * An open-addressing hash table of flow keys over typed arrays: the packet path's replacement for a
 * `Map` of string keys. It stores keys only; callers keep per-flow values in their own typed arrays
 * indexed by the slot number `find`/`insert` return, which never changes while the key is present.
 *
 *   slot i:  used[i] (0/1) │ hashes[i] (u32) │ keys[i*W … i*W+W-1] (W = FLOW_KEY_WORDS)
 *
 * Invariants: a free slot's hash is 0 (so a probe reads `used` only when it meets a hash of 0); a key sits in the first free slot of the linear probe sequence that starts at
 * `hash & mask`, and no slot is ever freed (no tombstones): expiry is a later issue's `clear()` of
 * a whole generation. Capacity is fixed at construction — nothing grows on the packet path; when the
 * table is full, `insert` returns -1 and the caller counts the overflow.
 *
 * @example
 * const table = new FlowTable(1 << 16);
 * const packets = new Float64Array(table.capacity);
 * let slot = table.find(key, key.hash());
 * if (slot < 0) slot = table.insert(key, key.hash());
 * if (slot >= 0) packets[slot]++;
 */
import { FLOW_KEY_WORDS, type FlowKey } from './flow-key.js';

export class FlowTable {
  readonly capacity: number;
  readonly keys: Uint32Array;
  readonly hashes: Uint32Array;
  readonly used: Uint8Array;
  /** Keys present. */
  size = 0;
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
    this.keys = new Uint32Array(rounded * FLOW_KEY_WORDS);
    this.hashes = new Uint32Array(rounded);
    this.used = new Uint8Array(rounded);
  }

  /** The slot holding `key` (whose hash is `hash`), or -1. */
  find(key: FlowKey, hash: number): number {
    const h = hash >>> 0;
    let slot = hash & this.mask;
    for (let probe = 0; probe < this.maxProbes; probe++) {
      const stored = this.hashes[slot];
      // A free slot's hash is 0, so `used` (another cache line) is read only for a hash of 0.
      if (stored === 0 && this.used[slot] === 0) return -1;
      if (stored === h && key.equalsAt(this.keys, slot * FLOW_KEY_WORDS)) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Stores `key` (not already present) and returns its slot, or -1 when its probe run is full. */
  insert(key: FlowKey, hash: number): number {
    let slot = hash & this.mask;
    for (let probe = 0; probe < this.maxProbes; probe++) {
      if (this.used[slot] === 0) {
        this.used[slot] = 1;
        this.hashes[slot] = hash;
        key.writeTo(this.keys, slot * FLOW_KEY_WORDS);
        this.size++;
        return slot;
      }
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Copies the key stored in `slot` into `out`. */
  keyAt(slot: number, out: FlowKey): FlowKey {
    out.readFrom(this.keys, slot * FLOW_KEY_WORDS);
    return out;
  }

  /** Forgets every key. */
  clear(): void {
    this.used.fill(0);
    this.hashes.fill(0);
    this.size = 0;
  }
}
