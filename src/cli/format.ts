/**
 * The CLI's text tables: the end-of-run summary and the per-NF table that `run`, `demo`, `status`,
 * `stats` and `top` print. Apart from run.ts so that the commands that only talk to a running
 * host's control API do not load the host to format its answer.
 */
import type { HostSummary } from '../host/host.js';

export function formatRate(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}

/** A latency for people: `850 µs`, `12.3 ms`. */
export function formatMicros(us: number): string {
  return us < 1000 ? `${us.toFixed(0)} µs` : `${(us / 1000).toFixed(1)} ms`;
}

/** The end-of-run table. */
export function formatSummary(s: HostSummary): string {
  const lines: string[] = [];
  const rate = s.seconds > 0 ? s.received / s.seconds : 0;
  lines.push(
    `${s.received} packets in ${s.seconds.toFixed(2)} s (${formatRate(rate)} pps; ${s.startSeconds.toFixed(2)} s of it starting guests)${s.originated > 0 ? ` and ${s.originated} made by NFs` : ''}: ${s.sent} sent, ${s.dropped} dropped, ${s.lost} lost in failures; pool ${s.poolFree}/${s.poolSlots} slots free`,
  );
  lines.push(...nfTable(s.nfs));
  lines.push(
    `latency port to port: p50 ${s.latencyUs.p50.toFixed(0)} µs, p99 ${s.latencyUs.p99.toFixed(0)} µs, max ${s.latencyUs.max.toFixed(0)} µs`,
  );
  const hostDrops = Object.entries(s.hostDrops);
  if (hostDrops.length > 0)
    lines.push(`host drops: ${hostDrops.map(([reason, n]) => `${reason} ${n}`).join(', ')}`);
  for (const [port, counts] of Object.entries(s.ports))
    lines.push(`port ${port}: ${counts.sent} packets written`);
  return lines.join('\n');
}

/** The per-NF table of a summary or a live status: one row per NF instance. */
export function nfTable(
  nfs: readonly {
    name: string;
    image: string;
    vnic: string;
    placement: string;
    replicas: number;
    packets: number;
    restarts: number;
    quarantined: boolean;
    drops: Record<string, number>;
    refusals?: number;
  }[],
): string[] {
  // Attempts an image's sandbox refused get a column only when there are any: they mean an image
  // tried something its deployment did not grant (docs/security.md).
  const refused = nfs.some((nf) => (nf.refusals ?? 0) > 0);
  return table(
    ['nf', 'image', 'vnic', 'placement', 'replicas', 'packets', 'restarts', 'state', 'drops'].concat(
      refused ? ['refused'] : [],
    ),
    nfs.map((nf) =>
      [
        nf.name,
        nf.image,
        nf.vnic,
        nf.placement,
        String(nf.replicas),
        String(nf.packets),
        String(nf.restarts),
        nf.quarantined ? 'QUARANTINED' : 'up',
        Object.entries(nf.drops)
          .map(([reason, n]) => `${reason} ${n}`)
          .join(', ') || '-',
      ].concat(refused ? [String(nf.refusals ?? 0)] : []),
    ),
  );
}

/** A plain-text table with aligned columns. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const format = (cells: string[]): string => cells.map((cell, c) => cell.padEnd(widths[c])).join('  ');
  return [format(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(format)];
}
