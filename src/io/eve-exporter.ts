/**
 * EveExporter: appends the alerts of ids instances (their `snapshot()` ring of alerts) to a file
 * in Suricata's EVE JSON format — one JSON object per line, `event_type: "alert"` — which log
 * shippers and SIEMs that read Suricata's eve.json read as they are.
 *
 * The alert source is a function, so `io` needs nothing of `host`:
 *
 * @example
 * const exporter = new EveExporter({ source: () => host.snapshotsOf('ids'), file: '/var/log/nfvisor/alerts.json' });
 * exporter.start(1000);   // a pass a second
 * …
 * await exporter.stop();  // a last pass, then the file is closed
 *
 * Each pass reads every replica's snapshot and writes the alerts whose sequence number is above
 * the last one it wrote for that replica, so each alert is written once. Alerts that fell out of a
 * replica's ring before a pass saw them are counted (`missed`), as is a replica whose sequence went
 * backwards (it restarted without its state; the exporter starts over with it).
 *
 * A line:
 *   {"timestamp":"2026-11-25T16:58:33.123456+0000","event_type":"alert","src_ip":"10.0.0.1",
 *    "src_port":40000,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","alert":{"action":"allowed",
 *    "gid":1,"signature_id":1000001,"rev":3,"signature":"GET evil","category":"web-application-attack"}}
 * Ports are left out for protocols without them (ICMP), as Suricata does. The file is opened for
 * appending. A pass never throws: a write error is counted (`errors`, `lastError`).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { NfvError } from '../errors.js';

/** The part of an ids alert the exporter reads (nfs/ids `IdsAlert`). */
export interface EveSourceAlert {
  sequence: number;
  /** Nanoseconds since the epoch. */
  timestamp: number;
  src_ip: string;
  src_port: number;
  dest_ip: string;
  dest_port: number;
  proto: string;
  action: string;
  signature_id: number;
  rev: number;
  signature: string;
  category: string;
}

export interface EveExporterOptions {
  /** ids snapshots, one per replica (index = replica); null or non-snapshots are skipped. */
  source: () => readonly unknown[] | null | undefined;
  /** The EVE file (created if missing, appended to). */
  file: string;
}

export interface EveExporterStats {
  /** Alert lines written. */
  alerts: number;
  /** Alerts that left a replica's ring before a pass read them. */
  missed: number;
  /** Alerts that were not well-formed (skipped). */
  invalid: number;
  errors: number;
  lastError: string | null;
}

export class EveExporter {
  private readonly options: EveExporterOptions;
  private readonly lastSequence: number[] = [];
  private fd: number | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly counts: EveExporterStats = {
    alerts: 0,
    missed: 0,
    invalid: 0,
    errors: 0,
    lastError: null,
  };

  constructor(options: EveExporterOptions) {
    this.options = options;
  }

  stats(): EveExporterStats {
    return { ...this.counts };
  }

  /** Opens the file and runs a pass every `intervalMs`. Throws NFV_ERR_IO when the file cannot be opened. */
  start(intervalMs = 1000): void {
    this.open();
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.exportNow(), intervalMs);
    this.timer.unref?.();
  }

  private open(): void {
    if (this.fd !== null) return;
    try {
      this.fd = openSync(this.options.file, 'a');
    } catch (e) {
      throw new NfvError(
        'NFV_ERR_IO',
        `cannot open the EVE file: ${(e as Error).message}`,
        { file: this.options.file },
        { cause: e },
      );
    }
  }

  /** One pass: writes every alert not written before. Returns the lines written. Never throws. */
  exportNow(): number {
    let written = 0;
    try {
      this.open();
      const snapshots = this.options.source() ?? [];
      const lines: string[] = [];
      for (let replica = 0; replica < snapshots.length; replica++) {
        const snapshot = snapshots[replica];
        if (!isSnapshot(snapshot)) continue;
        let last = this.lastSequence[replica] ?? 0;
        if (snapshot.alertsTotal < last) last = 0; // restarted without its state: start over
        let expected = last + 1;
        for (const alert of snapshot.alerts) {
          const sequence = isAlert(alert) ? alert.sequence : 0;
          if (sequence <= last) {
            if (!isAlert(alert)) this.counts.invalid++;
            continue;
          }
          if (sequence > expected) this.counts.missed += sequence - expected;
          expected = sequence + 1;
          lines.push(eveLine(alert as EveSourceAlert));
        }
        if (snapshot.alertsTotal > expected - 1) this.counts.missed += snapshot.alertsTotal - (expected - 1);
        this.lastSequence[replica] = Math.max(expected - 1, snapshot.alertsTotal);
      }
      if (lines.length > 0 && this.fd !== null) {
        writeSync(this.fd, lines.join('\n') + '\n');
        written = lines.length;
      }
    } catch (e) {
      this.counts.errors++;
      this.counts.lastError = (e as Error).message;
    }
    this.counts.alerts += written;
    return written;
  }

  /** A last pass, then the file is closed. */
  stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.exportNow();
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch (e) {
        this.counts.errors++;
        this.counts.lastError = (e as Error).message;
      }
    }
    this.fd = null;
    return Promise.resolve();
  }
}

/** Suricata's timestamp: local-free UTC with microseconds, `2026-11-25T16:58:33.123456+0000`. */
export function eveTimestamp(ns: number): string {
  const ms = Math.floor(ns / 1e6);
  const micros = Math.floor(ns / 1e3) % 1e6;
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}+0000`;
}

/** One alert as an EVE line (without the newline). */
export function eveLine(alert: EveSourceAlert): string {
  const ports = alert.proto === 'TCP' || alert.proto === 'UDP';
  return JSON.stringify({
    timestamp: eveTimestamp(alert.timestamp),
    event_type: 'alert',
    src_ip: alert.src_ip,
    ...(ports ? { src_port: alert.src_port } : {}),
    dest_ip: alert.dest_ip,
    ...(ports ? { dest_port: alert.dest_port } : {}),
    proto: alert.proto,
    alert: {
      action: alert.action,
      gid: 1,
      signature_id: alert.signature_id,
      rev: alert.rev,
      signature: alert.signature,
      category: alert.category,
    },
  });
}

function isSnapshot(value: unknown): value is { alerts: unknown[]; alertsTotal: number } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { alerts?: unknown; alertsTotal?: unknown };
  return Array.isArray(v.alerts) && typeof v.alertsTotal === 'number';
}

function isAlert(value: unknown): value is EveSourceAlert {
  if (typeof value !== 'object' || value === null) return false;
  const a = value as Record<string, unknown>;
  return (
    Number.isInteger(a.sequence) &&
    typeof a.timestamp === 'number' &&
    typeof a.src_ip === 'string' &&
    typeof a.dest_ip === 'string' &&
    typeof a.proto === 'string' &&
    typeof a.signature_id === 'number'
  );
}
