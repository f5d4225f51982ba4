/**
 * flow-monitor: observes traffic and keeps one bidirectional record per connection — packets,
 * bytes and TCP flags each way, first and last seen — as NetFlow/IPFIX meters do. It never changes
 * or drops a packet: every frame is sent on to `out`.
 *
 * A flow is a 5-tuple and its reverse: both directions hash alike (`FlowKey.symmetricHash`) and the
 * stored key is the direction of the flow's first packet (the initiator; "forward"). Bytes are IP
 * bytes (header and payload, as IPFIX octetDeltaCount), times are the `now` of `process()` (ns).
 *
 *   table               FlowTable of initiator 5-tuples, hashed symmetrically; at most maxFlows
 *   slot s:             packets[2s], packets[2s+1]   forward, reverse  (likewise bytes, tcpFlags)
 *                       first[s], last[s]            first and last packet (ns)
 *   export ring (R = exportRecords):
 *   record r:           the same fields, plus endReason[r] (1 idle, 2 active: IPFIX flowEndReason)
 *                       and sequence[r] (1, 2, 3 … over the instance's life)
 *                       written at head, oldest overwritten: the last R records exported
 *
 * Expiry: a flow idle for `idleTimeoutSeconds`, or older than `activeTimeoutSeconds`, is exported
 * into the ring — by `tick(now)`, or lazily when its next packet arrives first (the packet then
 * starts a new record). The table is rebuilt in tick when flows expire (FlowTable frees no slot),
 * so the hot path never scans it. A packet of a new flow that finds the table full is sent on and
 * counted (`table_full`), not recorded.
 *
 * Fragments: later fragments carry no ports, so they form their own flow (ports 0), as in most
 * meters. Tunnels are not entered: the outer header is the flow.
 */
import { parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey } from '../../src/packet/flow-key.js';
import { FlowTable } from '../../src/packet/flow-table.js';
import {
  flowRecordAt,
  isFlowRows,
  sortRecords,
  type FlowRecord,
  type FlowRows,
} from '../../src/packet/flow-records.js';
import { IPV6_HEADER_LENGTH } from '../../src/packet/ipv6.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';

export interface FlowMonitorConfig {
  activeTimeoutSeconds: number;
  idleTimeoutSeconds: number;
  maxFlows: number;
  exportRecords: number;
}

/** One flow as the control plane sees it (`flows()`, `exported()`, `snapshot()`). */
export type { FlowRecord };

export interface FlowMonitorSnapshot {
  version: 2;
  /** The active flows, one row each (src/packet/flow-records.ts: an object per flow outgrew the heap at 10⁶ flows). */
  active: FlowRows;
  exported: FlowRecord[];
  /** Records exported over the instance's life (the last sequence number). */
  exportedTotal: number;
  /**
   * Names the instance whose sequence numbers these are: drawn at creation, carried by restore. An
   * exporter that sees it change knows the numbering started over; one that sees it unchanged with
   * fewer records knows the instance was restored from an older snapshot.
   */
  lineage: number;
}

export interface FlowMonitorInstance extends NfInstance {
  /** The active flows, oldest first (allocates: control plane only). */
  flows(): FlowRecord[];
  /** Exported records still in the ring with a sequence number above `after`, oldest first. */
  exported(after?: number): FlowRecord[];
  activeFlows(): number;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: { idleNs: number; activeNs: number; maxFlows: number; tableCapacity: number; ring: number };
}

const END_IDLE = 1;
const END_ACTIVE = 2;
const FORWARD = 0;
const REVERSE = 1;

export default defineNf<FlowMonitorConfig>({
  name: 'flow-monitor',
  summary:
    'Bidirectional flow records (packets, bytes, TCP flags, first/last seen) with idle and active timeouts.',
  outputs: ['out'],
  drops: {},
  counters: {
    packets: { unit: 'packets', description: 'IP packets recorded in a flow' },
    bytes: { unit: 'bytes', description: 'IP bytes (header and payload) recorded in a flow' },
    flows_active: { unit: 'flows', description: 'flows in the table now (a gauge)' },
    flows_created: { unit: 'flows', description: 'flow records started' },
    flows_exported: {
      unit: 'flows',
      description: 'flow records ended by a timeout and put in the export ring',
    },
    table_full: {
      unit: 'packets',
      description: 'packets of new flows not recorded because the table held maxFlows flows',
    },
    unrecorded: {
      unit: 'packets',
      description: 'frames without a valid IP header (non-IP, or refused by the parser), sent on unrecorded',
    },
  },
  config: {
    activeTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 7 * 86400,
      default: 1800,
      description: 'a flow older than this is exported and a new record started',
    },
    idleTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 86400,
      default: 15,
      description: 'a flow without packets for this long is exported and forgotten',
    },
    maxFlows: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 22,
      default: 65536,
      description: 'flows tracked at most',
    },
    exportRecords: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 20,
      default: 1024,
      description: 'exported records kept for the control plane (a ring: the oldest is overwritten)',
    },
  },
  create(config, ctx): FlowMonitorInstance {
    const idleNs = config.idleTimeoutSeconds * 1e9;
    const activeNs = config.activeTimeoutSeconds * 1e9;
    const maxFlows = config.maxFlows;
    const ring = config.exportRecords;

    const table = new FlowTable(maxFlows * 2);
    const cap = table.capacity;
    const packets = new Float64Array(2 * cap);
    const bytes = new Float64Array(2 * cap);
    const tcpFlags = new Uint8Array(2 * cap);
    const first = new Float64Array(cap);
    const last = new Float64Array(cap);

    const exKeys = new Uint32Array(ring * FLOW_KEY_WORDS);
    const exPackets = new Float64Array(2 * ring);
    const exBytes = new Float64Array(2 * ring);
    const exFlags = new Uint8Array(2 * ring);
    const exFirst = new Float64Array(ring);
    const exLast = new Float64Array(ring);
    const exReason = new Uint8Array(ring);
    const exSequence = new Float64Array(ring);
    /** Records exported so far; the next goes to ring slot exportedTotal % ring. */
    let exportedTotal = 0;
    let lineage = Math.floor(Math.random() * 2 ** 31);

    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const key = new FlowKey();
    const scratch = new FlowKey();
    const cPackets = ctx.counter('packets');
    const cBytes = ctx.counter('bytes');
    const cActive = ctx.counter('flows_active');
    const cCreated = ctx.counter('flows_created');
    const cExported = ctx.counter('flows_exported');
    const cFull = ctx.counter('table_full');
    const cUnrecorded = ctx.counter('unrecorded');
    let loggedFull = false;

    /** Copies slot `s` into the export ring. */
    function exportSlot(s: number, reason: number): void {
      const r = exportedTotal % ring;
      exportedTotal++;
      for (let w = 0; w < FLOW_KEY_WORDS; w++)
        exKeys[r * FLOW_KEY_WORDS + w] = table.keys[s * FLOW_KEY_WORDS + w];
      exPackets[2 * r] = packets[2 * s];
      exPackets[2 * r + 1] = packets[2 * s + 1];
      exBytes[2 * r] = bytes[2 * s];
      exBytes[2 * r + 1] = bytes[2 * s + 1];
      exFlags[2 * r] = tcpFlags[2 * s];
      exFlags[2 * r + 1] = tcpFlags[2 * s + 1];
      exFirst[r] = first[s];
      exLast[r] = last[s];
      exReason[r] = reason;
      exSequence[r] = exportedTotal;
    }

    function startRecord(s: number, now: number): void {
      packets[2 * s] = packets[2 * s + 1] = 0;
      bytes[2 * s] = bytes[2 * s + 1] = 0;
      tcpFlags[2 * s] = tcpFlags[2 * s + 1] = 0;
      first[s] = now;
      last[s] = now;
    }

    /** Why slot `s` ends at `now` (END_IDLE, END_ACTIVE), or 0. */
    function expiry(s: number, now: number): number {
      if (now - last[s] >= idleNs) return END_IDLE;
      if (now - first[s] >= activeNs) return END_ACTIVE;
      return 0;
    }

    /** Inserts the key in `scratch` (symmetric hash) with the values given; -1 when it does not fit. */
    function insertScratch(): number {
      if (table.size >= maxFlows) return -1;
      const hash = scratch.symmetricHash();
      if (table.find(scratch, hash) >= 0) return -1;
      scratch.reverse();
      const taken = table.find(scratch, hash) >= 0;
      scratch.reverse();
      return taken ? -1 : table.insert(scratch, hash);
    }

    function activeRecords(): FlowRecord[] {
      const out: FlowRecord[] = [];
      for (let s = 0; s < table.size; s++)
        if (table.used[s] === 1)
          out.push(flowRecordAt(table.keys, s, packets, bytes, tcpFlags, s, first[s], last[s]));
      return sortRecords(out);
    }

    function exportedRecords(after: number): FlowRecord[] {
      const out: FlowRecord[] = [];
      const held = Math.min(exportedTotal, ring);
      for (let n = exportedTotal - held; n < exportedTotal; n++) {
        const r = n % ring;
        if (exSequence[r] <= after) continue;
        const record = flowRecordAt(exKeys, r, exPackets, exBytes, exFlags, r, exFirst[r], exLast[r]);
        record.endReason = exReason[r] === END_ACTIVE ? 'active' : 'idle';
        record.sequence = exSequence[r];
        out.push(record);
      }
      return out;
    }

    const instance: FlowMonitorInstance = {
      plan: { idleNs, activeNs, maxFlows, tableCapacity: cap, ring },
      flows: activeRecords,
      exported: (after = 0) => exportedRecords(after),
      activeFlows: () => table.size,

      process(batch, now) {
        let nPackets = 0;
        let nBytes = 0;
        let created = 0;
        let exported = 0;
        let full = 0;
        let unrecorded = 0;
        for (let i = 0; i < batch.count; i++) {
          if (
            parser.attach(batch.bytes, batch.at[i], batch.length[i]) !== DropReason.None ||
            !parser.flowKey(key)
          ) {
            unrecorded++;
            continue;
          }
          const ipBytes =
            parser.l3 === Layer.Ipv4
              ? parser.ipv4.totalLength()
              : IPV6_HEADER_LENGTH + parser.ipv6.payloadLength();
          const hash = key.symmetricHash();
          let dir = FORWARD;
          let s = table.find(key, hash);
          if (s < 0) {
            key.reverse();
            s = table.find(key, hash);
            key.reverse();
            if (s >= 0) dir = REVERSE;
          }
          if (s >= 0) {
            const reason = expiry(s, now);
            if (reason !== 0) {
              exportSlot(s, reason);
              exported++;
              startRecord(s, now);
              created++;
              // The new record's initiator is this packet's sender.
              if (dir === REVERSE) {
                key.writeTo(table.keys, s * FLOW_KEY_WORDS);
                dir = FORWARD;
              }
            }
          } else {
            s = table.size < maxFlows ? table.insert(key, hash) : -1;
            if (s < 0) {
              full++;
              if (!loggedFull) {
                loggedFull = true;
                ctx.log(
                  `flow table full (${maxFlows} flows): new flows are not recorded; later ones are only counted`,
                );
              }
              continue;
            }
            startRecord(s, now);
            created++;
          }
          packets[2 * s + dir]++;
          bytes[2 * s + dir] += ipBytes;
          if (parser.l4 === Layer.Tcp) tcpFlags[2 * s + dir] |= parser.tcp.flags();
          if (now > last[s]) last[s] = now;
          nPackets++;
          nBytes += ipBytes;
        }
        const c = ctx.counters;
        c[cPackets] += nPackets;
        c[cBytes] += nBytes;
        c[cCreated] += created;
        c[cExported] += exported;
        c[cFull] += full;
        c[cUnrecorded] += unrecorded;
        c[cActive] = table.size;
      },

      tick(now) {
        let ended = 0;
        for (let s = 0; s < table.size; s++) if (table.used[s] === 1 && expiry(s, now) !== 0) ended++;
        if (ended === 0) return;
        // Export the ended flows, keep the rest as rows, and rebuild the table from them.
        const live = liveRows(now, table.size - ended);
        table.clear();
        const lost = insertRows(live);
        ctx.counters[cExported] += ended;
        if (lost > 0) ctx.log(`flow-monitor: ${lost} flows did not fit the rebuilt table`);
        ctx.counters[cActive] = table.size;
      },

      snapshot(): FlowMonitorSnapshot {
        return {
          version: 2,
          active: liveRows(-Infinity, table.size),
          exported: exportedRecords(0),
          exportedTotal,
          lineage,
        };
      },

      restore(state) {
        // Version 1 (before 2026-12-06) carried the active flows as records.
        const s = state as
          (Omit<Partial<FlowMonitorSnapshot>, 'version'> & { version?: unknown; flows?: unknown }) | null;
        const v1 = s?.version === 1 && Array.isArray(s.flows);
        if (
          !(v1 || (s?.version === 2 && isFlowRows(s.active))) ||
          !Array.isArray(s.exported) ||
          typeof s.exportedTotal !== 'number'
        ) {
          ctx.log('flow-monitor: ignored a snapshot of another version');
          return;
        }
        if (typeof s.lineage === 'number') lineage = s.lineage;
        let lost = 0;
        table.clear();
        if (!v1) lost = insertRows(s.active as FlowRows);
        for (const record of v1 ? (s.flows as FlowRecord[]) : []) {
          const slot = keyFrom(record) ? insertScratch() : -1;
          if (slot < 0) {
            lost++;
            continue;
          }
          packets[2 * slot] = record.packets;
          packets[2 * slot + 1] = record.reversePackets;
          bytes[2 * slot] = record.bytes;
          bytes[2 * slot + 1] = record.reverseBytes;
          tcpFlags[2 * slot] = record.tcpFlags;
          tcpFlags[2 * slot + 1] = record.reverseTcpFlags;
          first[slot] = record.firstSeen;
          last[slot] = record.lastSeen;
        }
        // The ring keeps the newest records that fit, under their own sequence numbers.
        exportedTotal = 0;
        const records = s.exported.filter(
          (r) => keyFrom(r) && Number.isInteger(r.sequence) && (r.sequence as number) >= 1,
        );
        records.sort((a, b) => (a.sequence as number) - (b.sequence as number));
        const kept = records.slice(Math.max(0, records.length - ring));
        for (const record of kept) {
          keyFrom(record);
          const r = ((record.sequence as number) - 1) % ring;
          exportedTotal = record.sequence as number;
          scratch.writeTo(exKeys, r * FLOW_KEY_WORDS);
          exPackets[2 * r] = record.packets;
          exPackets[2 * r + 1] = record.reversePackets;
          exBytes[2 * r] = record.bytes;
          exBytes[2 * r + 1] = record.reverseBytes;
          exFlags[2 * r] = record.tcpFlags;
          exFlags[2 * r + 1] = record.reverseTcpFlags;
          exFirst[r] = record.firstSeen;
          exLast[r] = record.lastSeen;
          exReason[r] = record.endReason === 'active' ? END_ACTIVE : END_IDLE;
          exSequence[r] = record.sequence as number;
        }
        exportedTotal = Math.max(exportedTotal, s.exportedTotal);
        ctx.counters[cActive] = table.size;
        if (lost > 0) ctx.log(`flow-monitor: ${lost} flows of the snapshot did not fit this configuration`);
      },
    };

    /** Fills `scratch` from a record's 5-tuple; false when the record is not well-formed. */
    /**
     * The flows in the table as rows, in entry order (`count` of them: the table's size less those
     * ending by `now`); the ones that ended by `now` are exported instead (none for −Infinity).
     */
    function liveRows(now: number, count: number): FlowRows {
      const rows: FlowRows = {
        keys: new Uint32Array(count * FLOW_KEY_WORDS),
        packets: new Float64Array(2 * count),
        bytes: new Float64Array(2 * count),
        tcpFlags: new Uint8Array(2 * count),
        firstSeen: new Float64Array(count),
        lastSeen: new Float64Array(count),
      };
      let n = 0;
      for (let s = 0; s < table.size; s++) {
        if (table.used[s] === 0) continue;
        const reason = expiry(s, now);
        if (reason !== 0) {
          exportSlot(s, reason);
          continue;
        }
        rows.keys.set(table.keys.subarray(s * FLOW_KEY_WORDS, (s + 1) * FLOW_KEY_WORDS), n * FLOW_KEY_WORDS);
        for (let d = 0; d < 2; d++) {
          rows.packets[2 * n + d] = packets[2 * s + d];
          rows.bytes[2 * n + d] = bytes[2 * s + d];
          rows.tcpFlags[2 * n + d] = tcpFlags[2 * s + d];
        }
        rows.firstSeen[n] = first[s];
        rows.lastSeen[n] = last[s];
        n++;
      }
      return rows;
    }

    /** Inserts rows into the table; returns how many did not fit (or repeated a flow). */
    function insertRows(rows: FlowRows): number {
      let lost = 0;
      for (let i = 0; i < rows.firstSeen.length; i++) {
        scratch.readFrom(rows.keys, i * FLOW_KEY_WORDS);
        const s = insertScratch();
        if (s < 0) {
          lost++;
          continue;
        }
        for (let d = 0; d < 2; d++) {
          packets[2 * s + d] = rows.packets[2 * i + d];
          bytes[2 * s + d] = rows.bytes[2 * i + d];
          tcpFlags[2 * s + d] = rows.tcpFlags[2 * i + d];
        }
        first[s] = rows.firstSeen[i];
        last[s] = rows.lastSeen[i];
      }
      return lost;
    }

    function keyFrom(record: FlowRecord): boolean {
      if (typeof record !== 'object' || record === null) return false;
      const { ipVersion, protocol, src, dst, srcPort, dstPort } = record;
      if (!Number.isInteger(protocol) || protocol < 0 || protocol > 255) return false;
      if (![srcPort, dstPort].every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffff)) return false;
      if (typeof src !== 'string' || typeof dst !== 'string') return false;
      if (ipVersion === 4) {
        const a = parseIpv4(src);
        const b = parseIpv4(dst);
        if (a < 0 || b < 0) return false;
        scratch.setV4(a, b, protocol, srcPort, dstPort);
        return true;
      }
      if (ipVersion !== 6) return false;
      const both = new Uint8Array(32);
      if (!parseIpv6(src, both, 0) || !parseIpv6(dst, both, 16)) return false;
      scratch.setV6(both, 0, 16, protocol, srcPort, dstPort);
      return true;
    }

    return instance;
  },
});
