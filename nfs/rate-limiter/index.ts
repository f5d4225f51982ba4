/**
 * rate-limiter: token-bucket policing per key — one bucket for everything (`global`), one per
 * source address or source prefix (`source`), or one per 5-tuple (`flow`).
 *
 * Each bucket holds at most `burst` (packets for `pps`, bytes for `bps`) and refills at `rate`
 * (packets or bits per second). A packet that finds enough credit takes it and passes; one that
 * does not is `exceeded` (dropped, or passed and only counted when `action` is `pass`). A new
 * bucket starts full. Time is the `now` of `process()` (nanoseconds): no clock is read.
 *
 * Credit is kept in scaled integer units so that integer rates and bursts are exact:
 *
 *   1 packet (pps) or 1 bit (bps)  =  1e9 units      refill: `rate` units per nanosecond
 *   cap = burst × 1e9 (pps)  or  burst × 8 × 1e9 (bps: burst is in bytes)
 *
 * so 1000 pps with burst 10 passes 10 packets at t = 0 and exactly one more each millisecond.
 *
 *   table          FlowTable of keys (bounded: at most `maxKeys` present)
 *   slot s:        credit[s]  units in the bucket at time last[s]
 *                  last[s]    time of the last refill (ns)
 *
 * Keys: `flow` is the parser's 5-tuple, with ports zeroed for every fragment so the pieces of a
 * datagram share a bucket; `source` is the source address masked to `sourcePrefixV4` /
 * `sourcePrefixV6`. Frames without IP pass unpoliced (`unpoliced`) under those keys; `global`
 * polices every frame. A full bucket is indistinguishable from a new one, so `tick(now)` forgets
 * the keys whose buckets have refilled — that never changes a verdict — and the table stays
 * bounded by the keys active within one refill time. A new key that finds the table full is
 * dropped (`table_full`): under a flood of new sources the limiter fails closed.
 */
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey, FlowKeyWord } from '../../src/packet/flow-key.js';
import { FlowTable } from '../../src/packet/flow-table.js';
import { Ipv4Field } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';

export interface RateLimiterConfig {
  key: 'global' | 'source' | 'flow';
  rate: number;
  unit: 'pps' | 'bps';
  burst: number;
  maxKeys: number;
  action: 'drop' | 'pass';
  sourcePrefixV4: number;
  sourcePrefixV6: number;
}

/** What `snapshot()` returns and `restore()` accepts (structured-cloneable). */
export interface RateLimiterSnapshot {
  version: 1;
  /** The keying the buckets were made under (`source/24/64`, `flow`, `global`); others are ignored. */
  keying: string;
  /** FLOW_KEY_WORDS words per bucket (none for `global`). */
  keys: Uint32Array;
  /** Credit (scaled units, see the file comment) and last refill time (ns) per bucket; `global` has one. */
  credit: Float64Array;
  last: Float64Array;
}

export interface RateLimiterInstance extends NfInstance {
  /** Buckets held now. */
  activeKeys(): number;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: {
    keying: string;
    /** Units added per nanosecond, units per packet (pps) or per bit (bps), bucket size in units. */
    ratePerNs: number;
    unitsPerPacketOrBit: number;
    capacityUnits: number;
    /** Time for an empty bucket to fill (ns). */
    fillNs: number;
    tableCapacity: number;
  };
}

/** Credit units per packet (pps) or per bit (bps). */
const SCALE = 1e9;
const BITS_PER_BYTE = 8;

export default defineNf<RateLimiterConfig>({
  name: 'rate-limiter',
  summary: 'Token-bucket policer per flow, per source address or prefix, or for all traffic.',
  outputs: ['out'],
  drops: {
    exceeded: 'the bucket of the packet’s key had too little credit (action drop)',
    malformed: 'the packet parser refused the frame (truncated, bad length or checksum)',
    table_full: 'the packet’s key is new and the key table already holds maxKeys buckets',
  },
  counters: {
    passed: { unit: 'packets', description: 'packets within the rate, sent on' },
    exceeded: {
      unit: 'packets',
      description: 'packets over the rate: dropped, or sent on when action is pass',
    },
    unpoliced: {
      unit: 'packets',
      description: 'frames without an IP header (ARP, other EtherTypes) sent on under source/flow keys',
    },
    keys: { unit: 'buckets', description: 'buckets held now (a gauge; full buckets are forgotten in tick)' },
    table_full: { unit: 'packets', description: 'packets of new keys refused because the table was full' },
  },
  config: {
    key: {
      type: 'string',
      enum: ['global', 'source', 'flow'],
      default: 'source',
      description: 'what one bucket covers: all traffic, one source address/prefix, or one 5-tuple',
    },
    rate: {
      type: 'number',
      minimum: 0.001,
      maximum: 1e12,
      description: 'refill rate of each bucket, in `unit`',
    },
    unit: {
      type: 'string',
      enum: ['pps', 'bps'],
      default: 'pps',
      description: 'pps: rate in packets/s, burst in packets; bps: rate in bits/s, burst in bytes',
    },
    burst: {
      type: 'integer',
      minimum: 1,
      maximum: 1e9,
      description: 'bucket size: packets (pps) or bytes (bps; a frame larger than this never passes)',
    },
    maxKeys: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 22,
      default: 65536,
      description: 'buckets held at most; a new key beyond this is dropped as table_full',
    },
    action: {
      type: 'string',
      enum: ['drop', 'pass'],
      default: 'drop',
      description: 'what happens to a packet over the rate: drop it, or pass it and only count it',
    },
    sourcePrefixV4: {
      type: 'integer',
      minimum: 0,
      maximum: 32,
      default: 32,
      description: 'key source: IPv4 prefix length one bucket covers (32: each address)',
    },
    sourcePrefixV6: {
      type: 'integer',
      minimum: 0,
      maximum: 128,
      default: 64,
      description: 'key source: IPv6 prefix length one bucket covers (64: each subnet)',
    },
  },
  create(config, ctx): RateLimiterInstance {
    const mode = config.key === 'global' ? 0 : config.key === 'source' ? 1 : 2;
    const bps = config.unit === 'bps';
    const ratePerNs = config.rate; // units per ns: rate × 1e9 units per second ÷ 1e9 ns per second
    const cap = config.burst * (bps ? BITS_PER_BYTE : 1) * SCALE;
    const fillNs = cap / ratePerNs;
    const dropExceeded = config.action === 'drop';
    const keying =
      mode === 0
        ? 'global'
        : mode === 1
          ? `source/${config.sourcePrefixV4}/${config.sourcePrefixV6}`
          : 'flow';
    const maxKeys = mode === 0 ? 1 : config.maxKeys;

    const table = new FlowTable(mode === 0 ? 1 : maxKeys * 2);
    const credit = new Float64Array(mode === 0 ? 1 : table.capacity);
    const last = new Float64Array(mode === 0 ? 1 : table.capacity);
    let globalStarted = false;

    const v4Mask = config.sourcePrefixV4 === 0 ? 0 : (0xffffffff << (32 - config.sourcePrefixV4)) | 0;
    const v6Mask = new Uint8Array(16);
    for (let i = 0; i < 16; i++) {
      const bits = Math.max(0, Math.min(8, config.sourcePrefixV6 - 8 * i));
      v6Mask[i] = (0xff << (8 - bits)) & 0xff;
    }
    /** [masked v6 source][16 zero bytes]: the source key of an IPv6 packet. */
    const v6Scratch = new Uint8Array(32);

    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const key = new FlowKey();
    const scratch = new FlowKey();
    const dExceeded = ctx.dropReason('exceeded');
    const dMalformed = ctx.dropReason('malformed');
    const dTableFull = ctx.dropReason('table_full');
    const cPassed = ctx.counter('passed');
    const cExceeded = ctx.counter('exceeded');
    const cUnpoliced = ctx.counter('unpoliced');
    const cKeys = ctx.counter('keys');
    const cTableFull = ctx.counter('table_full');
    let loggedFull = false;

    /** Refills bucket `s` up to `now` (time never runs backwards here: an earlier `now` adds nothing). */
    function refill(s: number, now: number): void {
      const elapsed = now - last[s];
      if (elapsed <= 0) return;
      credit[s] = elapsed >= fillNs ? cap : Math.min(cap, credit[s] + elapsed * ratePerNs);
      last[s] = now;
    }

    /** Fills `key` with packet's source key; false for a frame without IP. */
    function sourceKey(): boolean {
      if (parser.l3 === Layer.Ipv4) {
        const b = parser.ipv4.bytes;
        const at = parser.ipv4.at + Ipv4Field.Src;
        key.setV4(((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) & v4Mask, 0, 0, 0, 0);
        return true;
      }
      if (parser.l3 === Layer.Ipv6) {
        const b = parser.ipv6.bytes;
        const at = parser.ipv6.srcAt();
        for (let i = 0; i < 16; i++) v6Scratch[i] = b[at + i] & v6Mask[i];
        key.setV6(v6Scratch, 0, 16, 0, 0, 0);
        return true;
      }
      return false;
    }

    /** The bucket slot for `key`, created full at `now` when new; -1 when the table is full. */
    function bucketOf(now: number): number {
      const hash = key.hash();
      let slot = table.find(key, hash);
      if (slot >= 0) {
        refill(slot, now);
        return slot;
      }
      if (table.size >= maxKeys) return -1;
      slot = table.insert(key, hash);
      if (slot < 0) return -1;
      credit[slot] = cap;
      last[slot] = now;
      return slot;
    }

    /** Keeps only the buckets not yet full at `now` (tick, restore); returns the keys dropped. */
    function rebuild(keys: Uint32Array, cr: Float64Array, ls: Float64Array, n: number, now: number): number {
      table.clear();
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        const elapsed = now - ls[i];
        const c = Math.min(cap, cr[i]);
        if (c + Math.max(0, elapsed) * ratePerNs >= cap) {
          dropped++; // full (or would be): forgetting it changes no verdict
          continue;
        }
        scratch.readFrom(keys, i * FLOW_KEY_WORDS);
        const hash = scratch.hash();
        if (table.size >= maxKeys || table.find(scratch, hash) >= 0) {
          dropped++;
          continue;
        }
        const slot = table.insert(scratch, hash);
        if (slot < 0) {
          dropped++;
          continue;
        }
        credit[slot] = c;
        last[slot] = ls[i];
      }
      return dropped;
    }

    function collect(): { keys: Uint32Array; credit: Float64Array; last: Float64Array; n: number } {
      const keys = new Uint32Array(table.size * FLOW_KEY_WORDS);
      const cr = new Float64Array(table.size);
      const ls = new Float64Array(table.size);
      let n = 0;
      for (let s = 0; s < table.size; s++) {
        if (table.used[s] === 0) continue;
        keys.set(table.keys.subarray(s * FLOW_KEY_WORDS, (s + 1) * FLOW_KEY_WORDS), n * FLOW_KEY_WORDS);
        cr[n] = credit[s];
        ls[n] = last[s];
        n++;
      }
      return { keys, credit: cr, last: ls, n };
    }

    const instance: RateLimiterInstance = {
      plan: {
        keying,
        ratePerNs,
        unitsPerPacketOrBit: SCALE,
        capacityUnits: cap,
        fillNs,
        tableCapacity: mode === 0 ? 1 : table.capacity,
      },
      activeKeys: () => (mode === 0 ? (globalStarted ? 1 : 0) : table.size),

      process(batch, now) {
        let passed = 0;
        let exceeded = 0;
        let unpoliced = 0;
        let full = 0;
        const bytes = batch.bytes;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            batch.drop(i, dMalformed);
            ctx.malformed(parser.failedLayer, reason);
            continue;
          }
          let slot = 0;
          if (mode === 0) {
            if (!globalStarted) {
              globalStarted = true;
              credit[0] = cap;
              last[0] = now;
            } else refill(0, now);
          } else {
            const keyed = mode === 1 ? sourceKey() : parser.flowKey(key);
            if (!keyed) {
              unpoliced++;
              continue;
            }
            // Every fragment of a datagram in one bucket: later fragments carry no ports.
            if (mode === 2 && parser.fragment) key.words[FlowKeyWord.Ports] = 0;
            slot = bucketOf(now);
            if (slot < 0) {
              batch.drop(i, dTableFull);
              full++;
              if (!loggedFull) {
                loggedFull = true;
                ctx.log(
                  `key table full (${maxKeys} buckets): new keys are dropped; later ones are only counted`,
                );
              }
              continue;
            }
          }
          const cost = bps ? batch.length[i] * BITS_PER_BYTE * SCALE : SCALE;
          if (credit[slot] >= cost) {
            credit[slot] -= cost;
            passed++;
          } else {
            exceeded++;
            if (dropExceeded) batch.drop(i, dExceeded);
          }
        }
        const c = ctx.counters;
        c[cPassed] += passed;
        c[cExceeded] += exceeded;
        c[cUnpoliced] += unpoliced;
        c[cTableFull] += full;
        c[cKeys] = instance.activeKeys();
      },

      tick(now) {
        if (mode === 0 || table.size === 0) return;
        let full = 0;
        for (let s = 0; s < table.size; s++)
          if (table.used[s] === 1 && credit[s] + Math.max(0, now - last[s]) * ratePerNs >= cap) full++;
        if (full === 0) return;
        const live = collect();
        rebuild(live.keys, live.credit, live.last, live.n, now);
        ctx.counters[cKeys] = table.size;
      },

      snapshot(): RateLimiterSnapshot {
        if (mode === 0)
          return {
            version: 1,
            keying,
            keys: new Uint32Array(0),
            credit: Float64Array.of(globalStarted ? credit[0] : cap),
            last: Float64Array.of(globalStarted ? last[0] : -Infinity),
          };
        const live = collect();
        return { version: 1, keying, keys: live.keys, credit: live.credit, last: live.last };
      },

      restore(state) {
        const s = state as Partial<RateLimiterSnapshot> | null;
        if (
          s?.version !== 1 ||
          s.keying !== keying ||
          !(s.keys instanceof Uint32Array) ||
          !(s.credit instanceof Float64Array) ||
          !(s.last instanceof Float64Array) ||
          s.credit.length !== s.last.length ||
          (mode === 0 ? s.credit.length !== 1 : s.keys.length !== s.credit.length * FLOW_KEY_WORDS)
        ) {
          ctx.log('rate-limiter: ignored a snapshot of another version or keying');
          return;
        }
        if (mode === 0) {
          if (s.last[0] === -Infinity || !Number.isFinite(s.credit[0])) return;
          globalStarted = true;
          credit[0] = Math.max(0, Math.min(cap, s.credit[0]));
          last[0] = s.last[0];
          return;
        }
        // Keep every bucket (full ones too: the restoring host's clock may differ), up to maxKeys.
        table.clear();
        let lost = 0;
        for (let i = 0; i < s.credit.length; i++) {
          scratch.readFrom(s.keys, i * FLOW_KEY_WORDS);
          const hash = scratch.hash();
          const v = scratch.version();
          const slot =
            (v === 4 || v === 6) && table.size < maxKeys && table.find(scratch, hash) < 0
              ? table.insert(scratch, hash)
              : -1;
          if (slot < 0 || !Number.isFinite(s.credit[i]) || !Number.isFinite(s.last[i])) {
            lost++;
            continue;
          }
          credit[slot] = Math.max(0, Math.min(cap, s.credit[i]));
          last[slot] = s.last[i];
        }
        ctx.counters[cKeys] = table.size;
        if (lost > 0) ctx.log(`rate-limiter: ${lost} buckets of the snapshot did not fit this configuration`);
      },
    };
    return instance;
  },
});
