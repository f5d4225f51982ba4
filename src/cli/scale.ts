/**
 * `nfvisor scale NF REPLICAS`: changes how many guests an NF instance runs, live. The NF's chains
 * are restarted next to the old ones and the old copies drain (nothing in flight is lost); the
 * other chains keep running.
 */
import type { Command } from 'commander';
import type { ApplyResult } from '../host/reconfigure.js';
import { formatApply } from './apply.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';
import { parseInteger } from './options.js';

export function registerScale(program: Command): void {
  withControlOptions(
    program
      .command('scale')
      .description('change the replica count of an NF instance on a running host, live')
      .argument('<nf>', 'NF instance name')
      .argument('<replicas>', 'guests to run, 1…64'),
    'operator',
  ).action(async (nf: string, replicas: string, flags: ControlFlags) => {
    console.log(await scaleCommand(nf, parseInteger('replicas', replicas, 1, 64), flags));
  });
}

export async function scaleCommand(nf: string, replicas: number, flags: ControlFlags): Promise<string> {
  const result = await controlClient(flags, 60_000).post<ApplyResult>(
    `/v1/nfs/${encodeURIComponent(nf)}/scale`,
    { replicas },
  );
  return flags.json ? JSON.stringify(result, null, 2) : formatApply(result);
}
