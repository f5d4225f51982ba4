/**
 * Rates for the live stream (`GET /v1/stream`): the difference of two status snapshots over the
 * time between them. Counters that went backwards (an NF restarted from an older snapshot) give
 * 0, never a negative rate.
 */
import type { HostStatus } from './schemas.js';

export interface NfRates {
  name: string;
  /** Packets processed per second. */
  pps: number;
  /** Drops per second, by reason. */
  drops: Record<string, number>;
  restarts: number;
  quarantined: boolean;
}

export interface Rates {
  /** Host uptime at the later snapshot, in seconds. */
  seconds: number;
  /** Seconds between the two snapshots. */
  interval: number;
  running: boolean;
  received: number;
  sent: number;
  dropped: number;
  lost: number;
  /** Packets per second written to each output port. */
  ports: Record<string, number>;
  hostDrops: Record<string, number>;
  nfs: NfRates[];
  poolFree: number;
  latencyUs: { p50: number; p99: number; max: number };
}

function rate(now: number, before: number | undefined, interval: number): number {
  const delta = now - (before ?? 0);
  return interval > 0 && delta > 0 ? delta / interval : 0;
}

function rates(
  now: Record<string, number>,
  before: Record<string, number> | undefined,
  interval: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(now)) out[key] = rate(value, before?.[key], interval);
  return out;
}

/** Per-second rates from `before` to `now`, `interval` seconds apart. */
export function ratesBetween(before: HostStatus, now: HostStatus, interval: number): Rates {
  const previousNf = new Map(before.nfs.map((nf) => [nf.name, nf]));
  return {
    seconds: now.seconds,
    interval,
    running: now.running,
    received: rate(now.received, before.received, interval),
    sent: rate(now.sent, before.sent, interval),
    dropped: rate(now.dropped, before.dropped, interval),
    lost: rate(now.lost, before.lost, interval),
    ports: Object.fromEntries(
      Object.entries(now.ports).map(([port, c]) => [port, rate(c.sent, before.ports[port]?.sent, interval)]),
    ),
    hostDrops: rates(now.hostDrops, before.hostDrops, interval),
    nfs: now.nfs.map((nf): NfRates => {
      const prev = previousNf.get(nf.name);
      return {
        name: nf.name,
        pps: rate(nf.packets, prev?.packets, interval),
        drops: rates(nf.drops, prev?.drops, interval),
        restarts: nf.restarts,
        quarantined: nf.quarantined,
      };
    }),
    poolFree: now.poolFree,
    latencyUs: now.latencyUs,
  };
}
