/**
 * The `nfvisor` command. Each subcommand lives in its own file and registers itself here; errors
 * with a registry code are printed as one line (`nfvisor: <message>`) and exit 2, anything else is
 * a bug and keeps its stack.
 */
import { Command, CommanderError } from 'commander';
import { isNfvError } from '../errors.js';
import { registerApply } from './apply.js';
import { registerCapture } from './capture.js';
import { registerDemo } from './demo.js';
import { registerGen } from './gen.js';
import { registerImage } from './image.js';
import { registerKey } from './key.js';
import { registerPcap } from './pcap.js';
import { registerRestart } from './restart.js';
import { registerRun } from './run.js';
import { registerScale } from './scale.js';
import { registerStats } from './stats.js';
import { registerStatus } from './status.js';
import { registerTop } from './top.js';
import { registerTestbed } from './testbed.js';

export function buildProgram(): Command {
  const program = new Command('nfvisor')
    .description('A hypervisor for network functions: isolated NF guests on a zero-copy packet path.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerApply(program);
  registerCapture(program);
  registerDemo(program);
  registerGen(program);
  registerImage(program);
  registerKey(program);
  registerPcap(program);
  registerRestart(program);
  registerRun(program);
  registerScale(program);
  registerStats(program);
  registerStatus(program);
  registerTop(program);
  registerTestbed(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (isNfvError(e)) {
      process.stderr.write(`nfvisor: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
