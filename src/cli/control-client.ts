/**
 * What the subcommands that talk to a running host share: the `--control` and `--token` options
 * (defaults from $NFVISOR_CONTROL and $NFVISOR_TOKEN, which keep the token out of `ps`), `--json`,
 * and the client built from them.
 */
import type { Command } from 'commander';
import { ControlClient, DEFAULT_CONTROL_URL } from '../control/control-client.js';

export interface ControlFlags {
  control: string;
  token?: string;
  json: boolean;
}

/** Adds `--control`, `--token` and `--json` to `command`; `role` is the least the command needs. */
export function withControlOptions(command: Command, role: 'viewer' | 'operator'): Command {
  return command
    .option(
      '--control <url>',
      'control API: http://host:port or unix:PATH',
      process.env.NFVISOR_CONTROL ?? DEFAULT_CONTROL_URL,
    )
    .option('--token <token>', `bearer token, ${role} or above (default: $NFVISOR_TOKEN)`)
    .option('--json', 'print the reply as JSON, for scripts', false);
}

export function controlClient(flags: ControlFlags, timeoutMs?: number): ControlClient {
  return new ControlClient(flags.control, flags.token ?? process.env.NFVISOR_TOKEN, timeoutMs);
}
