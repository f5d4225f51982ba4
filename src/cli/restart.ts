/**
 * An NF instance's lifecycle on a running host:
 *
 *   nfvisor restart NF   restart its guests from their last snapshot (what they hold is lost);
 *                        also brings back an instance that was drained or stopped
 *   nfvisor drain NF     take it out of service once what it holds has come through
 *   nfvisor stop NF      take it out of service now (what its chains hold is counted lost)
 *
 * While an instance is out of service its chain applies its failure policy to its traffic
 * (fail-closed drops it as `nf_down`, fail-open passes it on).
 */
import type { Command } from 'commander';
import type { ApplyResult } from '../host/reconfigure.js';
import { formatApply } from './apply.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';

type Action = 'restart' | 'drain' | 'stop';

const DESCRIPTIONS: Record<Action, string> = {
  restart: 'restart an NF instance on a running host (from its last snapshot)',
  drain: 'take an NF instance out of service once what it holds has come through',
  stop: 'take an NF instance out of service now',
};

export function registerRestart(program: Command): void {
  for (const action of ['restart', 'drain', 'stop'] as const) {
    withControlOptions(
      program
        .command(action)
        .description(DESCRIPTIONS[action])
        .argument('<nf>', 'NF instance name')
        .option('--reason <text>', 'why (written to the host log)'),
      'operator',
    ).action(async (nf: string, flags: ControlFlags & { reason?: string }) => {
      console.log(await lifecycleCommand(action, nf, flags));
    });
  }
}

export async function lifecycleCommand(
  action: Action,
  nf: string,
  flags: ControlFlags & { reason?: string },
): Promise<string> {
  const body = flags.reason === undefined ? {} : { reason: flags.reason };
  const path = `/v1/nfs/${encodeURIComponent(nf)}/${action}`;
  if (action === 'restart') {
    const reply = await controlClient(flags).post<{ nf: string; restartsBefore: number }>(path, body);
    return flags.json
      ? JSON.stringify(reply, null, 2)
      : `${nf}: restarting (restarts so far: ${reply.restartsBefore})`;
  }
  const result = await controlClient(flags, 60_000).post<ApplyResult>(path, body);
  if (flags.json) return JSON.stringify(result, null, 2);
  const done = action === 'drain' ? 'drained' : 'stopped';
  return `${nf}: ${done}; \`nfvisor restart ${nf}\` brings it back\n${formatApply(result)}`;
}
