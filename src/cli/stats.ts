/**
 * `nfvisor stats [NF]`: the counters and drop reasons of every NF instance on a running host, or
 * of one (each counter with its value, each drop reason with its count), as tables or `--json`.
 */
import type { Command } from 'commander';
import type { HostStatus } from '../control/schemas.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';
import { table } from './format.js';

type NfStatus = HostStatus['nfs'][number];

export function registerStats(program: Command): void {
  withControlOptions(
    program
      .command('stats')
      .description("show NF instances' counters and drop reasons on a running host")
      .argument('[nf]', 'one NF instance (default: all)'),
    'viewer',
  ).action(async (nf: string | undefined, flags: ControlFlags) => {
    console.log(await statsCommand(nf, flags));
  });
}

export async function statsCommand(nf: string | undefined, flags: ControlFlags): Promise<string> {
  const client = controlClient(flags);
  const nfs =
    nf === undefined
      ? (await client.get<{ nfs: NfStatus[] }>('/v1/nfs')).nfs
      : [await client.get<NfStatus>(`/v1/nfs/${encodeURIComponent(nf)}`)];
  if (flags.json) return JSON.stringify(nf === undefined ? { nfs } : nfs[0], null, 2);
  return nfs.map(formatNf).join('\n\n');
}

/** One NF: a header line, then its counters and drop reasons as one table. */
export function formatNf(nf: NfStatus): string {
  const state = nf.quarantined ? 'QUARANTINED' : 'up';
  const head = `${nf.name} (${nf.image}, ${nf.vnic}, ${nf.replicas} replica${nf.replicas === 1 ? '' : 's'}): ${nf.packets} packets, ${nf.restarts} restarts, ${state}`;
  const rows = [
    ...Object.entries(nf.counters).map(([name, value]) => ['counter', name, String(value)]),
    ...Object.entries(nf.drops).map(([reason, value]) => ['drop', reason, String(value)]),
  ];
  return rows.length === 0 ? head : [head, ...table(['kind', 'name', 'value'], rows)].join('\n');
}
