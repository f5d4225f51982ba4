/**
 * `nfvisor status`: the live status of a running host, read from its control API — totals, NF
 * instances (packets, restarts, quarantine, drops), chains, ports and latency as tables, or the
 * whole status as JSON with `--json`. The token comes from `--token` or `$NFVISOR_TOKEN` (the
 * environment keeps it out of `ps`).
 */
import type { Command } from 'commander';
import { ControlClient, DEFAULT_CONTROL_URL } from '../control/control-client.js';
import type { HostStatus } from '../control/schemas.js';
import { nfTable, table } from './format.js';

export interface StatusOptions {
  control: string;
  token?: string;
  json: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the live status of a running host, through its control API')
    .option(
      '--control <url>',
      'control API: http://host:port or unix:PATH',
      process.env.NFVISOR_CONTROL ?? DEFAULT_CONTROL_URL,
    )
    .option('--token <token>', 'bearer token, viewer or above (default: $NFVISOR_TOKEN)')
    .option('--json', 'print the status as JSON', false)
    .action(async (flags: StatusOptions) => {
      console.log(await statusCommand(flags));
    });
}

/** Fetches GET /v1/status and formats it. */
export async function statusCommand(options: StatusOptions): Promise<string> {
  const client = new ControlClient(options.control, options.token ?? process.env.NFVISOR_TOKEN);
  const status = await client.get<HostStatus>('/v1/status');
  return options.json ? JSON.stringify(status, null, 2) : formatStatus(status);
}

function formatRate(count: number, seconds: number): string {
  const rate = seconds > 0 ? count / seconds : 0;
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(2)}M`;
  if (rate >= 1e3) return `${(rate / 1e3).toFixed(1)}k`;
  return rate.toFixed(0);
}

function reasons(drops: Record<string, number>): string {
  return (
    Object.entries(drops)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(', ') || '-'
  );
}

/** The status as tables for people. */
export function formatStatus(s: HostStatus): string {
  const lines: string[] = [];
  lines.push(
    `host ${s.running ? 'running' : 'stopped'} for ${s.seconds.toFixed(1)} s: ${s.received} packets received ` +
      `(${formatRate(s.received, s.seconds)} pps average), ${s.sent} sent, ${s.dropped} dropped, ${s.lost} lost; ` +
      `pool ${s.poolFree}/${s.poolSlots} slots free, ${s.queueLimit} let in at once`,
  );
  lines.push('');
  lines.push(...nfTable(s.nfs));
  lines.push('');
  lines.push(
    ...table(
      ['chain', 'through', 'output'],
      s.chains.map((c) => [c.name, c.through.join(' → ') || '-', c.output]),
    ),
  );
  lines.push('');
  lines.push(
    ...table(
      ['port', 'received', 'sent'],
      Object.entries(s.ports).map(([name, c]) => [name, String(c.received), String(c.sent)]),
    ),
  );
  lines.push('');
  lines.push(
    `latency port to port: p50 ${s.latencyUs.p50.toFixed(0)} µs, p99 ${s.latencyUs.p99.toFixed(0)} µs, max ${s.latencyUs.max.toFixed(0)} µs`,
  );
  if (Object.keys(s.hostDrops).length > 0) lines.push(`host drops: ${reasons(s.hostDrops)}`);
  return lines.join('\n');
}
