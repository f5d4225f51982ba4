/**
 * The `nfvisor` command. Each subcommand lives in its own file and registers itself here; errors
 * with a registry code are printed as one line (`nfvisor: <message>`) and exit 2, anything else is
 * a bug and keeps its stack.
 *
 * A command line that names a subcommand loads only that subcommand's file: all of them together
 * import the host, the image tools, the testbed and the control client (~200 ms of every start
 * on the reference machine, for `nfvisor status` as much as for `nfvisor run`). Help, `--version`
 * and an unknown command load them all.
 */
import { Command, CommanderError } from 'commander';
import { isNfvError } from '../errors.js';

type Register = (program: Command) => void;

/** Each command name, and how to load the function that registers it (with its siblings). */
export const COMMAND_MODULES: Record<string, () => Promise<Register>> = {
  apply: async () => (await import('./apply.js')).registerApply,
  capture: async () => (await import('./capture.js')).registerCapture,
  demo: async () => (await import('./demo.js')).registerDemo,
  gen: async () => (await import('./gen.js')).registerGen,
  image: async () => (await import('./image.js')).registerImage,
  nf: async () => (await import('./image.js')).registerImage,
  key: async () => (await import('./key.js')).registerKey,
  pcap: async () => (await import('./pcap.js')).registerPcap,
  restart: async () => (await import('./restart.js')).registerRestart,
  drain: async () => (await import('./restart.js')).registerRestart,
  stop: async () => (await import('./restart.js')).registerRestart,
  run: async () => (await import('./run.js')).registerRun,
  scale: async () => (await import('./scale.js')).registerScale,
  stats: async () => (await import('./stats.js')).registerStats,
  status: async () => (await import('./status.js')).registerStatus,
  top: async () => (await import('./top.js')).registerTop,
  testbed: async () => (await import('./testbed.js')).registerTestbed,
};

/** The program with every command, or with only the one `only` names (and its file's siblings). */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('nfvisor')
    .description('A hypervisor for network functions: isolated NF guests on a zero-copy packet path.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  const loaders =
    only !== undefined && Object.hasOwn(COMMAND_MODULES, only)
      ? [COMMAND_MODULES[only]]
      : Object.values(COMMAND_MODULES);
  const registers = new Set(await Promise.all(loaders.map((load) => load())));
  for (const register of registers) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    // The subcommand is the first word; one that starts with '-' (--help, --version) is not one.
    const first = argv[0];
    const only = first !== undefined && !first.startsWith('-') ? first : undefined;
    await (await buildProgram(only)).parseAsync(argv, { from: 'user' });
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
