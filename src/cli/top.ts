/**
 * `nfvisor top`: a live view of a running host — packets per second in and out, drops and losses,
 * and per NF instance its rate, drops per second by reason and restarts — refreshed every interval.
 * On a terminal the view redraws in place; otherwise (a pipe, a log) each refresh is printed as
 * plain lines after a timestamp, and `--json` prints one JSON object (the rates) per line.
 */
import type { Command } from 'commander';
import type { ControlClient } from '../control/control-client.js';
import { ratesBetween, type Rates } from '../control/rates.js';
import type { HostStatus } from '../control/schemas.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';
import { parseInteger } from './options.js';
import { table } from './format.js';

interface TopFlags extends ControlFlags {
  interval: string;
  count?: string;
}

export function registerTop(program: Command): void {
  withControlOptions(
    program
      .command('top')
      .description('a live view of a running host: rates per NF, drops, restarts (Ctrl-C ends it)')
      .option('--interval <ms>', 'refresh interval in ms (100…60000)', '1000')
      .option('--count <n>', 'stop after this many refreshes'),
    'viewer',
  ).action(async (flags: TopFlags) => {
    const stop = new AbortController();
    const onSigint = (): void => stop.abort();
    process.once('SIGINT', onSigint);
    try {
      await topCommand(flags, process.stdout, stop.signal);
    } finally {
      process.off('SIGINT', onSigint);
    }
  });
}

export interface TopOutput {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** Polls the status every interval and renders rates to `out` until `count` refreshes or the signal. */
export async function topCommand(flags: TopFlags, out: TopOutput, signal?: AbortSignal): Promise<void> {
  const intervalMs = parseInteger('--interval', flags.interval, 100, 60_000);
  const count = flags.count === undefined ? Infinity : parseInteger('--count', flags.count, 1, 1_000_000);
  const client: ControlClient = controlClient(flags);
  const live = out.isTTY === true && !flags.json;
  let before = await client.get<HostStatus>('/v1/status');
  let beforeAt = performance.now();
  if (live) out.write('\x1b[?25l'); // hide the cursor while redrawing
  try {
    const aborted = (): boolean => signal?.aborted === true;
    for (let shown = 0; shown < count && !aborted(); shown++) {
      await sleep(intervalMs, signal);
      if (aborted()) break;
      const now = await client.get<HostStatus>('/v1/status');
      const at = performance.now();
      const rates = ratesBetween(before, now, (at - beforeAt) / 1000);
      before = now;
      beforeAt = at;
      if (flags.json) out.write(`${JSON.stringify(rates)}\n`);
      else if (live) out.write(`\x1b[H\x1b[2J${formatTop(rates, now).join('\n')}\n`);
      else out.write(`${new Date().toISOString()}\n${formatTop(rates, now).join('\n')}\n\n`);
    }
  } finally {
    if (live) out.write('\x1b[?25h');
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function pps(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}

function dropRates(drops: Record<string, number>): string {
  return (
    Object.entries(drops)
      .filter(([, rate]) => rate > 0)
      .map(([reason, rate]) => `${reason} ${pps(rate)}/s`)
      .join(', ') || '-'
  );
}

/** The view: a header line of totals, one row per NF instance, and host drops. */
export function formatTop(rates: Rates, status: HostStatus): string[] {
  const lines = [
    `nfvisor ${rates.running ? 'running' : 'stopped'} ${rates.seconds.toFixed(0)} s │ in ${pps(rates.received)} pps  out ${pps(rates.sent)} pps  dropped ${pps(rates.dropped)}/s  lost ${pps(rates.lost)}/s │ pool ${status.poolFree}/${status.poolSlots} free │ p99 ${status.latencyUs.p99.toFixed(0)} µs`,
    '',
  ];
  const byName = new Map(status.nfs.map((nf) => [nf.name, nf]));
  lines.push(
    ...table(
      ['nf', 'pps', 'drops/s', 'restarts', 'replicas', 'state'],
      rates.nfs.map((nf) => [
        nf.name,
        pps(nf.pps),
        dropRates(nf.drops),
        String(nf.restarts),
        String(byName.get(nf.name)?.replicas ?? ''),
        nf.quarantined ? 'QUARANTINED' : 'up',
      ]),
    ),
  );
  const hostDrops = dropRates(rates.hostDrops);
  if (hostDrops !== '-') lines.push('', `host drops: ${hostDrops}`);
  return lines;
}
