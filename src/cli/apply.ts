/**
 * `nfvisor apply FILE [--dry-run]`: sends a deployment file to a running host, which changes to it
 * live (src/host/reconfigure.ts): the chains it does not touch keep running, and a file that fails
 * any check changes nothing. `--dry-run` prints what would change. Relative paths in the file
 * resolve against the folder of the deployment the host was started from.
 *
 *   $ nfvisor apply next.yaml --dry-run
 *   ~ nf fw (config)
 *   ~ chain main (nf fw changed)
 *   = chain side (kept running)
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { NfvError } from '../errors.js';
import type { HostPlan } from '../host/host.js';
import type { ApplyResult } from '../host/reconfigure.js';
import { describeDiff } from '../host/reconfigure-diff.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';
import { planFromDeployment } from './deployment-plan.js';
import { parseCheckedDeployment } from './run.js';

/**
 * The control server's deployer for a host started from a file in `baseDir`: parses the text as
 * `nfvisor run` does (built-in NF configs checked against their schemas, errors with line and
 * field), then resolves and verifies its images.
 */
export function deploymentPlanner(baseDir: string): (text: string, file: string) => Promise<HostPlan> {
  return async (text, file) => {
    return planFromDeployment(await parseCheckedDeployment(text, file, { baseDir }));
  };
}

export function registerApply(program: Command): void {
  withControlOptions(
    program
      .command('apply')
      .description('change a running host to a deployment file, live (untouched chains keep running)')
      .argument('<file>', 'deployment file (YAML or JSON)')
      .option('--dry-run', 'show what would change; change nothing', false),
    'operator',
  ).action(async (file: string, flags: ControlFlags & { dryRun: boolean }) => {
    console.log(await applyCommand(file, flags));
  });
}

export async function applyCommand(file: string, flags: ControlFlags & { dryRun: boolean }): Promise<string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new NfvError(
      'NFV_ERR_IO',
      `cannot read the deployment file (${(e as NodeJS.ErrnoException).code})`,
      {
        file,
      },
    );
  }
  // Starting guests and draining old ones takes longer than a status read.
  const client = controlClient(flags, 60_000);
  const result = await client.post<ApplyResult>(`/v1/deployments${flags.dryRun ? '?dryRun=true' : ''}`, {
    deployment: text,
    file: basename(file),
  });
  return flags.json ? JSON.stringify(result, null, 2) : formatApply(result);
}

/** The diff, one line per change, then what happened. */
export function formatApply(result: ApplyResult): string {
  const lines = describeDiff(result.diff);
  if (result.dryRun) lines.push('dry run: nothing was changed');
  else if (result.applied)
    lines.push(
      `applied: new guests ready in ${result.prepareMs.toFixed(0)} ms, old copies drained in ${result.drainMs.toFixed(0)} ms` +
        (result.lostInDrain > 0
          ? `, ${result.lostInDrain} packets lost at the drain timeout`
          : ', nothing lost'),
    );
  return lines.join('\n');
}
