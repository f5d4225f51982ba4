/**
 * `nfvisor run deploy.yaml`: validates the deployment (every error with file, line, column and
 * field), starts the host, shows live progress — packets per second per NF, drops, restarts — and
 * prints a summary table at the end, or on Ctrl-C after draining what is in flight.
 */
import type { Command } from 'commander';
import type { Deployment } from '../deploy/deployment.js';
import { parseDeployment, readDeploymentFile, type ParseOptions } from '../deploy/parse-deployment.js';
import { builtinModule, Host, type HostProgress, type HostSummary } from '../host/host.js';
import { checkNfConfig, type NfDefinition } from '../sdk/define-nf.js';
import { dirname, resolve } from 'node:path';
import type { ControlServerOptions } from '../control/index.js';
import { planFromDeployment } from './deployment-plan.js';
import { formatRate, formatSummary } from './format.js';

/** The built-in images whose config schemas check a deployment before it runs. */
export const BUILTIN_IMAGES = [
  'firewall',
  'nat',
  'load-balancer',
  'rate-limiter',
  'flow-monitor',
  'router',
  'ids',
] as const;

function isBuiltinImage(name: string): boolean {
  return (BUILTIN_IMAGES as readonly string[]).includes(name);
}

/** The definitions of built-ins `names` (as `builtin/<name>`); names nfvisor does not ship are skipped. */
export async function loadBuiltinDefinitions(
  names: Iterable<string> = BUILTIN_IMAGES,
): Promise<Map<string, NfDefinition>> {
  const definitions = new Map<string, NfDefinition>();
  for (const name of new Set(names)) {
    if (!isBuiltinImage(name)) continue;
    const module = (await import(builtinModule(name))) as { default: NfDefinition };
    definitions.set(`builtin/${name}`, module.default);
  }
  return definitions;
}

const BUILTIN_REF = /builtin\/([a-z][a-z0-9-]*)/g;

/**
 * Parses a deployment as `run`, `apply` and `demo` do: each NF's config checked against its
 * built-in's schema, problems with line and field. Only the built-ins the text names are loaded
 * (all seven cost ~70 ms of every start); one the scan misses (a slash written as an escape) is
 * loaded when the parser asks for it, and the text parsed again.
 */
export async function parseCheckedDeployment(
  text: string,
  file: string,
  options: Pick<ParseOptions, 'baseDir'> = {},
): Promise<Deployment> {
  const wanted = new Set([...text.matchAll(BUILTIN_REF)].map((m) => m[1]));
  for (;;) {
    const definitions = await loadBuiltinDefinitions(wanted);
    const missed = new Set<string>();
    const validateNfConfig = (image: string, config: Record<string, unknown>) => {
      const definition = definitions.get(image);
      if (definition) return checkNfConfig(definition, config).errors;
      const name = image.slice('builtin/'.length);
      if (image.startsWith('builtin/') && isBuiltinImage(name)) missed.add(name);
      return [];
    };
    let deployment: Deployment | undefined;
    let failure: unknown;
    try {
      deployment = parseDeployment(text, file, { ...options, validateNfConfig });
    } catch (e) {
      failure = e;
    }
    if (missed.size === 0) {
      if (deployment === undefined) throw failure;
      return deployment;
    }
    // Ends: each pass loads at least one more of the seven.
    for (const name of missed) wanted.add(name);
  }
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a deployment file: ports, NF guests and chains')
    .argument('<file>', 'deployment file (YAML or JSON)')
    .option('--json', 'print the summary as JSON', false)
    .option('--control [listen]', 'serve the control API and /metrics (default 127.0.0.1:9180; or unix:PATH)')
    .option('--token-file <file>', 'keep control API tokens in this file (hashed) instead of in memory')
    .action(
      async (file: string, flags: { json: boolean; control?: string | boolean; tokenFile?: string }) => {
        const control =
          flags.control === undefined || flags.control === false
            ? undefined
            : { listen: flags.control === true ? undefined : flags.control, tokenFile: flags.tokenFile };
        const summary = await runDeploymentFile(file, { progress: !flags.json, control });
        console.log(flags.json ? JSON.stringify(summary, null, 2) : formatSummary(summary));
      },
    );
}

/** Loads, validates and runs `file`; Ctrl-C stops reading and drains. */
export async function runDeploymentFile(
  file: string,
  options: { progress: boolean; control?: { listen?: string; tokenFile?: string } },
): Promise<HostSummary> {
  const deployment = await parseCheckedDeployment(readDeploymentFile(file), file);
  const host = await Host.create(await planFromDeployment(deployment));
  const onSigint = (): void => host.stop();
  process.once('SIGINT', onSigint);
  const live = options.progress ? new LiveProgress() : null;
  // The control API can apply new deployment files; their relative paths resolve like this one's.
  // It, its planner (the control client and node:http with it) and the exporters are loaded only
  // when the run uses them.
  const control = options.control
    ? await serveControl(host, {
        ...options.control,
        deploy: (await import('./apply.js')).deploymentPlanner(dirname(resolve(file))),
      })
    : null;
  const exporters = await createExporters(host, deployment.exporters);
  try {
    deployment.exporters.forEach((e, i) => exporters[i].start(e.intervalMs));
    return await host.run((p) => live?.update(p), 1000);
  } finally {
    // A last pass exports what ended up to the end of the run, then the targets are closed.
    for (const exporter of exporters) await exporter.stop();
    await control?.close();
    process.off('SIGINT', onSigint);
    live?.done();
  }
}

/** The exporters `specs` name, not started; their modules are loaded only when there are any. */
async function createExporters(
  host: Host,
  specs: Deployment['exporters'],
): Promise<{ start(intervalMs: number): void; stop(): Promise<void> }[]> {
  if (specs.length === 0) return [];
  const { EveExporter } = await import('../io/eve-exporter.js');
  const { IpfixExporter } = await import('../io/ipfix-exporter.js');
  return specs.map((e) =>
    e.type === 'eve' && e.file !== undefined
      ? new EveExporter({ source: () => host.snapshotsOf(e.nf), file: e.file })
      : new IpfixExporter({ source: () => host.snapshotsOf(e.nf), udp: e.udp, file: e.file }),
  );
}

/** Starts the control API for `host` with a fresh admin token, printed once on stderr. */
async function serveControl(
  host: Host,
  options: { listen?: string; tokenFile?: string; deploy?: ControlServerOptions['deploy'] },
): Promise<{ close(): Promise<void> }> {
  // Loaded only when asked for: the control API (fastify, schemas, metrics) is a third of a second
  // of start-up that a plain `nfvisor run` does not need.
  const { startControlServer, TokenStore } = await import('../control/index.js');
  const tokens = options.tokenFile ? await TokenStore.open(options.tokenFile) : TokenStore.inMemory();
  const { token } = await tokens.issue('admin', 'nfvisor run');
  const server = await startControlServer(host, { tokens, listen: options.listen, deploy: options.deploy });
  process.stderr.write(`control API on ${server.address} — admin token (shown once): ${token}\n`);
  if (server.address.startsWith('http'))
    process.stderr.write(`dashboard: ${server.address}/dashboard#token=${token}\n`);
  return server;
}

/** One status line a second: a redrawn line on a terminal, a plain line every 5 s otherwise. */
export class LiveProgress {
  private last: HostProgress | null = null;
  private lastPrinted = 0;
  update(p: HostProgress): void {
    const previous = this.last;
    this.last = p;
    const seconds = previous ? p.seconds - previous.seconds : p.seconds;
    const rate = (now: number, before: number): string =>
      formatRate((now - before) / Math.max(seconds, 1e-3));
    const nfs = p.nfs
      .map(
        (nf, i) =>
          `${nf.name} ${rate(nf.packets, previous?.nfs[i]?.packets ?? 0)}${nf.restarts ? ` ↻${nf.restarts}` : ''}${nf.up ? '' : ' DOWN'}`,
      )
      .join(' │ ');
    const line = `${p.seconds.toFixed(0).padStart(4)} s  in ${rate(p.received, previous?.received ?? 0)} pps  out ${p.sent}  dropped ${p.dropped}  lost ${p.lost}  │ ${nfs}`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}`);
    else if (p.seconds - this.lastPrinted >= 5) {
      this.lastPrinted = p.seconds;
      process.stderr.write(`${line}\n`);
    }
  }
  done(): void {
    if (process.stderr.isTTY && this.last) process.stderr.write('\n');
  }
}
