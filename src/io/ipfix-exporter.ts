/**
 * IpfixExporter: sends the flow records that flow-monitor instances export (their `snapshot()`
 * ring of ended flows) as IPFIX (RFC 7011) to a UDP collector and/or appends them to a file.
 *
 * The record source is a function, so `io` needs nothing of `host`:
 *
 * @example
 * const exporter = new IpfixExporter({
 *   source: () => host.snapshotsOf('mon'),        // one flow-monitor snapshot per replica
 *   udp: { address: '192.0.2.10', port: 4739 },
 *   file: '/var/log/nfvisor/flows.ipfix',
 * });
 * exporter.start(1000);                            // a pass a second
 * …
 * await exporter.stop();                           // a last pass, then sockets and file closed
 *
 * Each pass reads every replica's snapshot and sends the records whose sequence number is above
 * the last one it sent for that replica, so each ended flow is exported once. Records that fell
 * out of a replica's ring before a pass saw them are counted (`missed`), as is a replica whose
 * sequence went backwards (it restarted without its state; the exporter starts over with it).
 *
 * Every flow-monitor record becomes one IPFIX data record per direction that saw packets
 * (initiator → responder, then responder → initiator with the addresses and ports swapped); both
 * carry the flow's first and last seen. Messages are at most `maxMessageLength` bytes (default
 * 1400, under a 1500-byte path MTU), each holding as many records as fit. Templates go in the
 * first message and again every `templateRefreshMessages` messages or `templateRefreshMs`
 * milliseconds, whichever comes first (RFC 7011 §8.4 for UDP).
 *
 * The file is the same messages back to back: the IPFIX File Format of RFC 5655, which tshark and
 * Wireshark open directly (`tshark -r flows.ipfix`, their "IPFIX" file type).
 *
 * A pass never throws: a socket or file error is counted (`errors`, `lastError`) and the next
 * pass tries again.
 */
import { createSocket, type Socket } from 'node:dgram';
import { closeSync, openSync, writeSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { NfvError } from '../errors.js';
import { flowRecords, isFlowRows, type FlowRecord, type FlowRows } from '../packet/flow-records.js';
import { FlowEndReason, IpfixEncoder, type IpfixFlow } from './ipfix.js';

/** The part of a flow-monitor record the exporter reads; a flow still active at the end is `forced`. */
export type IpfixSourceRecord = Omit<FlowRecord, 'flow' | 'endReason'> & {
  endReason?: 'idle' | 'active' | 'forced';
};

/** The part of a flow-monitor snapshot the exporter reads. */
export interface IpfixSourceSnapshot {
  exported: IpfixSourceRecord[];
  exportedTotal: number;
  /** Flows still active, as rows (a snapshot of version 2); exported once, as a forced end, by the last pass of `stop()`. */
  active?: FlowRows;
  /** The same as records (a snapshot of version 1). */
  flows?: IpfixSourceRecord[];
  /** Which numbering `sequence` belongs to (kept across a restore from a snapshot); see below. */
  lineage?: number;
}

export interface IpfixExporterOptions {
  /** Flow-monitor snapshots, one per replica (index = replica); null or non-snapshots are skipped. */
  source: () => readonly unknown[] | null | undefined;
  udp?: { address: string; port: number };
  /** A file the messages are written to (created or truncated at `start`). */
  file?: string;
  observationDomainId?: number;
  maxMessageLength?: number;
  /** Default 20. */
  templateRefreshMessages?: number;
  /** Default 10,000. */
  templateRefreshMs?: number;
  /** Milliseconds since the epoch (export time); default Date.now. */
  now?: () => number;
}

export interface IpfixExporterStats {
  /** Data records sent (each direction of a flow is one). */
  records: number;
  /** Flow-monitor records (flows) exported. */
  flows: number;
  messages: number;
  /** Message bytes produced (each is sent to every target). */
  bytes: number;
  /** Flow-monitor records that left a replica's ring before a pass read them. */
  missed: number;
  /** Records that could not be encoded (malformed addresses in a snapshot). */
  invalid: number;
  /** Failed sends and writes. */
  errors: number;
  lastError: string | null;
}

const IDLE = FlowEndReason.idleTimeout;
const ACTIVE = FlowEndReason.activeTimeout;
const FORCED = FlowEndReason.forcedEnd;

export class IpfixExporter {
  private readonly options: IpfixExporterOptions;
  private readonly encoder: IpfixEncoder;
  private readonly now: () => number;
  private readonly refreshMessages: number;
  private readonly refreshMs: number;
  /** Last sequence number sent, per replica, and the lineage it belongs to. */
  private readonly lastSequence: number[] = [];
  private readonly lastLineage: (number | undefined)[] = [];
  private socket: Socket | null = null;
  private fd: number | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private pendingSends = 0;
  private drained: (() => void) | null = null;
  private messagesSinceTemplates = Infinity;
  private templatesAtMs = -Infinity;
  private readonly counts: IpfixExporterStats = {
    records: 0,
    flows: 0,
    messages: 0,
    bytes: 0,
    missed: 0,
    invalid: 0,
    errors: 0,
    lastError: null,
  };
  private readonly scratch: IpfixFlow = {
    ipVersion: 4,
    src: '',
    dst: '',
    srcPort: 0,
    dstPort: 0,
    protocol: 0,
    packets: 0,
    octets: 0,
    tcpFlags: 0,
    startMs: 0,
    endMs: 0,
    endReason: 0,
  };

  constructor(options: IpfixExporterOptions) {
    if (options.udp === undefined && options.file === undefined) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'an IPFIX exporter needs a udp target, a file, or both', {
        field: 'udp',
      });
    }
    const udp = options.udp;
    if (udp !== undefined && (!Number.isInteger(udp.port) || udp.port < 1 || udp.port > 65535)) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `udp port ${udp.port} is not 1–65535`, {
        field: 'udp.port',
      });
    }
    this.options = options;
    this.encoder = new IpfixEncoder({
      observationDomainId: options.observationDomainId ?? 0,
      maxMessageLength: options.maxMessageLength,
    });
    this.now = options.now ?? Date.now;
    this.refreshMessages = options.templateRefreshMessages ?? 20;
    this.refreshMs = options.templateRefreshMs ?? 10_000;
  }

  /** Counters so far (a copy). */
  stats(): IpfixExporterStats {
    return { ...this.counts };
  }

  /**
   * Opens the targets and runs a pass every `intervalMs`. Throws NfvError NFV_ERR_IO when the file
   * cannot be created; idempotent.
   */
  start(intervalMs = 1000): void {
    this.open();
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.exportNow(), intervalMs);
    this.timer.unref?.();
  }

  private open(): void {
    const { udp, file } = this.options;
    if (file !== undefined && this.fd === null) {
      try {
        this.fd = openSync(file, 'w');
      } catch (e) {
        throw new NfvError(
          'NFV_ERR_IO',
          `cannot create the IPFIX file: ${(e as Error).message}`,
          { file },
          {
            cause: e,
          },
        );
      }
    }
    if (udp !== undefined && this.socket === null) {
      const socket = createSocket(isIPv6(udp.address) ? 'udp6' : 'udp4');
      socket.on('error', (e) => this.fail(e));
      socket.unref();
      this.socket = socket;
    }
  }

  /**
   * One pass: sends every record not sent before, in messages. Returns the data records sent.
   * Never throws.
   */
  exportNow(forceActive = false): number {
    try {
      this.open();
    } catch (e) {
      this.fail(e);
    }
    let sent = 0;
    try {
      const snapshots = this.options.source() ?? [];
      const exportTime = this.now() / 1000;
      let open = false;
      const flush = (): void => {
        if (!open) return;
        open = false;
        const count = this.encoder.recordCount();
        this.emit(this.encoder.finish());
        sent += count;
      };
      const add = (flow: IpfixFlow): void => {
        if (!open) {
          const templates =
            this.messagesSinceTemplates >= this.refreshMessages ||
            this.now() - this.templatesAtMs >= this.refreshMs;
          this.encoder.begin(exportTime, templates);
          if (templates) {
            this.messagesSinceTemplates = 0;
            this.templatesAtMs = this.now();
          }
          open = true;
        }
        if (this.encoder.add(flow)) return;
        if (this.encoder.recordCount() === 0) {
          this.counts.invalid++; // does not fit an empty message: its addresses do not parse
          return;
        }
        flush();
        add(flow);
      };
      for (let replica = 0; replica < snapshots.length; replica++) {
        const snapshot = snapshots[replica];
        if (!isSnapshot(snapshot)) continue;
        let last = this.lastSequence[replica] ?? 0;
        // A new lineage, or without lineages a count that went back, is an instance that restarted
        // without its state: its numbering starts over, and so do we. The same lineage with a count
        // that went back was restored from an older snapshot: the numbers it hands out again belong
        // to flows that ended (again) and were sent already, so those are skipped.
        const lineage = snapshot.lineage;
        const previous = this.lastLineage[replica];
        const restarted =
          lineage !== undefined && previous !== undefined
            ? lineage !== previous
            : snapshot.exportedTotal < last;
        if (restarted) last = 0;
        this.lastLineage[replica] = lineage;
        const { exported } = snapshot;
        let expected = last + 1;
        for (const record of exported) {
          const sequence = record.sequence ?? 0;
          if (sequence <= last) continue;
          if (sequence > expected) this.counts.missed += sequence - expected;
          expected = sequence + 1;
          if (!isRecord(record)) {
            this.counts.invalid++;
            continue;
          }
          const before = this.counts.invalid;
          this.fill(record, false);
          add(this.scratch);
          if (record.reversePackets > 0) {
            this.fill(record, true);
            add(this.scratch);
          }
          if (this.counts.invalid === before) this.counts.flows++;
        }
        if (snapshot.exportedTotal > expected - 1)
          this.counts.missed += snapshot.exportedTotal - (expected - 1);
        this.lastSequence[replica] = Math.max(expected - 1, snapshot.exportedTotal);
        // The end of the run ends the flows still active: RFC 7011's "forced end" (reason 4).
        const active = isFlowRows(snapshot.active)
          ? flowRecords(snapshot.active)
          : Array.isArray(snapshot.flows)
            ? snapshot.flows
            : [];
        if (forceActive) {
          for (const record of active) {
            if (!isRecord(record)) {
              this.counts.invalid++;
              continue;
            }
            this.fill({ ...record, endReason: 'forced' }, false);
            add(this.scratch);
            if (record.reversePackets > 0) {
              this.fill({ ...record, endReason: 'forced' }, true);
              add(this.scratch);
            }
            this.counts.flows++;
          }
        }
      }
      flush();
    } catch (e) {
      this.fail(e);
    }
    this.counts.records += sent;
    return sent;
  }

  /** Writes `record`'s forward (or reverse) direction into the scratch flow. */
  private fill(record: IpfixSourceRecord, reverse: boolean): void {
    const f = this.scratch;
    f.ipVersion = record.ipVersion;
    f.protocol = record.protocol;
    f.src = reverse ? record.dst : record.src;
    f.dst = reverse ? record.src : record.dst;
    f.srcPort = reverse ? record.dstPort : record.srcPort;
    f.dstPort = reverse ? record.srcPort : record.dstPort;
    f.packets = reverse ? record.reversePackets : record.packets;
    f.octets = reverse ? record.reverseBytes : record.bytes;
    f.tcpFlags = reverse ? record.reverseTcpFlags : record.tcpFlags;
    f.startMs = Math.floor(record.firstSeen / 1e6);
    f.endMs = Math.floor(record.lastSeen / 1e6);
    f.endReason = record.endReason === 'active' ? ACTIVE : record.endReason === 'forced' ? FORCED : IDLE;
  }

  private emit(message: Uint8Array): void {
    this.counts.messages++;
    this.counts.bytes += message.length;
    this.messagesSinceTemplates++;
    if (this.fd !== null) {
      try {
        writeSync(this.fd, message);
      } catch (e) {
        this.fail(e);
      }
    }
    const udp = this.options.udp;
    if (this.socket !== null && udp !== undefined) {
      const copy = Buffer.from(message); // the encoder's buffer is reused before the send completes
      this.pendingSends++;
      try {
        this.socket.send(copy, udp.port, udp.address, (e) => {
          if (e) this.fail(e);
          this.sendDone();
        });
      } catch (e) {
        this.fail(e);
        this.sendDone();
      }
    }
  }

  private sendDone(): void {
    this.pendingSends--;
    if (this.pendingSends === 0 && this.drained !== null) this.drained();
  }

  private fail(e: unknown): void {
    this.counts.errors++;
    this.counts.lastError = e instanceof Error ? e.message : String(e);
  }

  /**
   * Stops the timer, runs a last pass — which also exports the flows still active as a forced end,
   * since the run is over — waits for its datagrams to leave, and closes the targets.
   */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.socket !== null || this.fd !== null) this.exportNow(true);
    if (this.pendingSends > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
      this.drained = null;
    }
    if (this.socket !== null) {
      const socket = this.socket;
      this.socket = null;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch (e) {
        this.fail(e);
      }
      this.fd = null;
    }
  }
}

function isSnapshot(s: unknown): s is IpfixSourceSnapshot {
  if (typeof s !== 'object' || s === null) return false;
  const o = s as Partial<IpfixSourceSnapshot>;
  return Array.isArray(o.exported) && typeof o.exportedTotal === 'number';
}

function isRecord(r: unknown): r is IpfixSourceRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Partial<IpfixSourceRecord>;
  return (
    (o.ipVersion === 4 || o.ipVersion === 6) &&
    typeof o.src === 'string' &&
    typeof o.dst === 'string' &&
    typeof o.srcPort === 'number' &&
    typeof o.dstPort === 'number' &&
    typeof o.protocol === 'number' &&
    typeof o.packets === 'number' &&
    typeof o.bytes === 'number' &&
    typeof o.tcpFlags === 'number' &&
    typeof o.reversePackets === 'number' &&
    typeof o.reverseBytes === 'number' &&
    typeof o.reverseTcpFlags === 'number' &&
    typeof o.firstSeen === 'number' &&
    typeof o.lastSeen === 'number'
  );
}
