/**
 * Flow records as a meter reports them (the flow monitor's `flows()` and snapshots, the IPFIX
 * exporter's input), and flows as parallel arrays — one row per flow — which is how a snapshot
 * carries the active flows: 10⁶ flows are ~90 MB as rows and took more than a 512 MB guest heap as
 * one object per flow (bench `nfs`, 2026-12-06).
 *
 *   row i:  keys[i*W … i*W+W-1] (FlowKey words, W = FLOW_KEY_WORDS, initiator's direction)
 *           packets[2i], bytes[2i], tcpFlags[2i]          initiator → responder
 *           packets[2i+1], bytes[2i+1], tcpFlags[2i+1]    responder → initiator
 *           firstSeen[i], lastSeen[i]                     ns, in the NF's clock
 *
 * @example
 * const records = flowRecords(snapshot.active); // [{ flow: '17 10.0.0.1:1024 -> 198.51.100.7:53', … }]
 */
import { formatIpv4, formatIpv6 } from './address.js';
import { FLOW_KEY_WORDS, FlowKey, FlowKeyWord } from './flow-key.js';

/** One flow as the control plane sees it. */
export interface FlowRecord {
  /** `'6 10.0.0.1:40000 -> 10.0.0.2:80'`: the initiator's direction. */
  flow: string;
  ipVersion: 4 | 6;
  protocol: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** Initiator → responder. */
  packets: number;
  bytes: number;
  tcpFlags: number;
  /** Responder → initiator. */
  reversePackets: number;
  reverseBytes: number;
  reverseTcpFlags: number;
  /** Nanoseconds, in the clock `process(batch, now)` is given. */
  firstSeen: number;
  lastSeen: number;
  /** Exported records only: why (IPFIX flowEndReason 1 idle timeout, 2 active timeout), and their number. */
  endReason?: 'idle' | 'active';
  sequence?: number;
}

/** Flows as parallel arrays (see the header). */
export interface FlowRows {
  keys: Uint32Array;
  packets: Float64Array;
  bytes: Float64Array;
  tcpFlags: Uint8Array;
  firstSeen: Float64Array;
  lastSeen: Float64Array;
}

/** Whether `value` has the shape of FlowRows with consistent lengths (a snapshot is untrusted input). */
export function isFlowRows(value: unknown): value is FlowRows {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<Record<keyof FlowRows, unknown>>;
  if (!ArrayBuffer.isView(r.keys) || !ArrayBuffer.isView(r.firstSeen)) return false;
  const n = (r.firstSeen as Float64Array).length;
  return (
    Object.prototype.toString.call(r.keys) === '[object Uint32Array]' &&
    (r.keys as Uint32Array).length === n * FLOW_KEY_WORDS &&
    [r.packets, r.bytes, r.lastSeen, r.firstSeen].every(
      (a) => Object.prototype.toString.call(a) === '[object Float64Array]',
    ) &&
    Object.prototype.toString.call(r.tcpFlags) === '[object Uint8Array]' &&
    (r.packets as Float64Array).length === 2 * n &&
    (r.bytes as Float64Array).length === 2 * n &&
    (r.tcpFlags as Uint8Array).length === 2 * n &&
    (r.lastSeen as Float64Array).length === n
  );
}

const scratch = new FlowKey();

/**
 * The record of the flow whose key is at row `k` of `keys` and whose counters are at index `i` of
 * the per-direction arrays (allocates: control plane only).
 */
export function flowRecordAt(
  keys: Uint32Array,
  k: number,
  packets: Float64Array,
  bytes: Float64Array,
  tcpFlags: Uint8Array,
  i: number,
  firstSeen: number,
  lastSeen: number,
): FlowRecord {
  scratch.readFrom(keys, k * FLOW_KEY_WORDS);
  const v6 = scratch.version() === 6;
  const address = (word: number): string => {
    if (!v6) return formatIpv4(keys[k * FLOW_KEY_WORDS + word + 3]);
    const out = new Uint8Array(16);
    if (word === FlowKeyWord.Src) scratch.srcAddressTo(out);
    else scratch.dstAddressTo(out);
    return formatIpv6(out);
  };
  return {
    flow: scratch.toString(),
    ipVersion: v6 ? 6 : 4,
    protocol: scratch.protocol(),
    src: address(FlowKeyWord.Src),
    dst: address(FlowKeyWord.Dst),
    srcPort: scratch.srcPort(),
    dstPort: scratch.dstPort(),
    packets: packets[2 * i],
    bytes: bytes[2 * i],
    tcpFlags: tcpFlags[2 * i],
    reversePackets: packets[2 * i + 1],
    reverseBytes: bytes[2 * i + 1],
    reverseTcpFlags: tcpFlags[2 * i + 1],
    firstSeen,
    lastSeen,
  };
}

/** Every row as a record, oldest first (ties by flow), as `flows()` lists them. */
export function flowRecords(rows: FlowRows): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (let i = 0; i < rows.firstSeen.length; i++)
    out.push(
      flowRecordAt(
        rows.keys,
        i,
        rows.packets,
        rows.bytes,
        rows.tcpFlags,
        i,
        rows.firstSeen[i],
        rows.lastSeen[i],
      ),
    );
  return sortRecords(out);
}

/** Oldest first, ties by flow. */
export function sortRecords(records: FlowRecord[]): FlowRecord[] {
  return records.sort(
    (a, b) => a.firstSeen - b.firstSeen || (a.flow < b.flow ? -1 : a.flow > b.flow ? 1 : 0),
  );
}
