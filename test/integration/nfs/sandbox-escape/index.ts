/**
 * A test NF built into an image that tries, on its first burst, to reach outside what the SDK
 * gives it: the file system, the network, child processes, threads, the host process, shared
 * memory — each through a way a static look at its imports cannot see (module names computed at
 * run time, code compiled from strings, the globals of a `Function('return this')`, the host's
 * objects). Every attempt is caught here; its outcome is counted (`refused` when the sandbox said
 * no with NFV_ERR_CAPABILITY_REFUSED, `escaped` when it worked, `failed` for any other error), and
 * every packet is passed on, so a test can check that the guest keeps forwarding.
 *
 * With `fs` granted, `fs-read` reads `file` and counts `escaped` — the capability works.
 */
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-unsafe-call,
   @typescript-eslint/no-implied-eval */
import { defineNf } from '../../../../src/sdk/index.js';

/** A built-in's name assembled at run time, so neither esbuild nor the verifier sees an import. */
const mod = (name: string): string => ['node', name].join(':');

type Attempt = (host: object) => unknown;

/** Each attempt returns something truthy when it got through. */
export const ATTEMPTS: Record<string, Attempt> = {
  'fs-read': () => (require(mod('fs')) as typeof import('node:fs')).readFileSync(file),
  'net-connect': () => {
    const socket = (require(mod('net')) as typeof import('node:net')).connect(9, '127.0.0.1');
    socket.on('error', () => {});
    socket.destroy();
    return socket;
  },
  'child-process': () =>
    (require(mod('child_process')) as typeof import('node:child_process')).spawnSync('true'),
  worker: () =>
    new (require(mod('worker_threads')) as typeof import('node:worker_threads')).Worker('1', { eval: true }),
  'process-exit': () => process.exit(3),
  'process-binding': () => (process as unknown as { binding(name: string): unknown }).binding('fs'),
  'main-module': () =>
    (globalThis.process as { mainModule?: NodeJS.Module }).mainModule?.require(mod('fs')) as unknown,
  'function-this': () => (Function('return this')() as typeof globalThis).process.exit(4),
  'shared-memory': () => new SharedArrayBuffer(16),
  'host-realm': (host) =>
    (host.constructor.constructor as (code: string) => () => NodeJS.Process)('return process')().exit(5),
  'dynamic-import': () => import(mod('fs')),
  'eval-import': () => (Function(`return import("${mod('fs')}")`) as () => Promise<unknown>)(),
};

let file = '/dev/null';

export default defineNf<{ attempts: string[]; file: string }>({
  name: 'sandbox-escape',
  summary: 'Tries to reach outside the SDK on its first burst, counts what happened, passes every packet.',
  outputs: ['out'],
  drops: {},
  counters: {
    attempts: { unit: 'attempts', description: 'attempts made' },
    refused: { unit: 'attempts', description: 'attempts the sandbox refused' },
    escaped: { unit: 'attempts', description: 'attempts that got through' },
    failed: { unit: 'attempts', description: 'attempts that failed with another error' },
  },
  config: {
    attempts: {
      type: 'array',
      items: { type: 'string', enum: Object.keys(ATTEMPTS), description: 'an attempt' },
      default: [],
      description: 'which attempts to make',
    },
    file: { type: 'string', default: '/dev/null', description: 'the file fs-read reads' },
  },
  create(config, ctx) {
    file = config.file;
    const [attempts, refused, escaped, failed] = ['attempts', 'refused', 'escaped', 'failed'].map((n) =>
      ctx.counter(n),
    );
    let tried = false;
    const outcome = (name: string, result: unknown, error?: unknown): void => {
      const code = (error as { code?: unknown } | undefined)?.code;
      const which =
        error === undefined
          ? result
            ? escaped
            : refused
          : code === 'NFV_ERR_CAPABILITY_REFUSED'
            ? refused
            : failed;
      ctx.counters[which]++;
      if (which !== refused) ctx.log(`${name}: ${which === escaped ? 'got through' : String(error)}`);
    };
    return {
      process(batch) {
        if (tried) return;
        tried = true;
        for (const name of config.attempts) {
          ctx.counters[attempts]++;
          try {
            const result = ATTEMPTS[name](batch);
            if (result instanceof Promise)
              result.then(
                (r) => outcome(name, r),
                (e: unknown) => outcome(name, undefined, e),
              );
            else outcome(name, result);
          } catch (e) {
            outcome(name, undefined, e);
          }
        }
      },
    };
  },
});
