/**
 * Capabilities: what an NF's code may use beyond the SDK. A guest gets packets, counters and a log
 * from the SDK and nothing else; a module that imports a Node built-in reaching the file system,
 * the network, processes or threads must ask for it in its manifest (and a deployment must grant
 * it). The check reads the imports of the bundled code — at build time from esbuild's metafile,
 * at verify time by re-parsing the bundle — and refuses any built-in not covered.
 *
 * This is a check on what the code *declares* it imports. At run time the guest sandbox
 * (src/host/guest-sandbox.ts) enforces the same rules on what the code actually loads, with the
 * policy `sandboxPolicy` computes from the deployment's grants. Neither is a security boundary
 * against hostile code; images are signed for that (docs/security.md).
 *
 * @example
 * uncoveredImports(['node:fs', 'node:dgram'], ['dgram']); // [{ module: 'node:fs', capability: 'fs' }]
 */
import { builtinModules } from 'node:module';

/** Capability names an image may request. */
export const CAPABILITIES = ['fs', 'net', 'http', 'dgram', 'child_process', 'worker_threads'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Node built-in (without `node:` and subpath) → the capability that covers it. */
const GUARDED: Readonly<Record<string, Capability>> = {
  fs: 'fs',
  net: 'net',
  tls: 'net',
  http: 'http',
  https: 'http',
  http2: 'http',
  dgram: 'dgram',
  child_process: 'child_process',
  worker_threads: 'worker_threads',
  cluster: 'child_process',
  dns: 'net',
};

/**
 * Built-ins that no capability covers: they hand out the host's process, inspector or module
 * loader. An image importing one is always refused.
 */
const NEVER = new Set(['vm', 'inspector', 'module', 'v8', 'repl', 'trace_events', 'wasi', 'process']);

export interface ImportProblem {
  module: string;
  /** The capability that would allow it, or undefined when nothing allows it. */
  capability?: Capability;
}

function builtinBase(specifier: string): string | undefined {
  const bare = specifier.startsWith('node:') ? specifier.slice(5) : specifier;
  const base = bare.split('/')[0];
  if (specifier.startsWith('node:') || builtinModules.includes(bare) || builtinModules.includes(base))
    return base;
  return undefined;
}

/** The capability covering a built-in (by base name), including Node's private `_http_*`/`_tls_*`. */
function guardOf(base: string): Capability | undefined {
  if (base.startsWith('_http')) return 'http';
  if (base.startsWith('_tls')) return 'net';
  return GUARDED[base];
}

/**
 * What the guest sandbox (src/host/guest-sandbox.ts) lets an image's code load at run time, given
 * the capabilities its deployment grants: every built-in that no capability guards (crypto,
 * buffer, events, util … — pure computation), the ones the grants cover, and never `vm`,
 * `inspector`, `module` and the rest of NEVER.
 *
 * @example
 * sandboxPolicy(['dgram']).modules.includes('dgram'); // true; 'fs' is not, and needs.fs === 'fs'
 */
export function sandboxPolicy(grants: readonly string[]): {
  modules: string[];
  needs: Record<string, string>;
  grants: string[];
} {
  const modules: string[] = [];
  const needs: Record<string, string> = {};
  for (const name of builtinModules) {
    const base = name.split('/')[0];
    if (NEVER.has(base) || modules.includes(base) || base in needs) continue;
    const capability = guardOf(base);
    if (capability === undefined || grants.includes(capability)) modules.push(base);
    else needs[base] = capability;
  }
  return { modules, needs, grants: [...grants] };
}

/**
 * The imports in `imports` that `capabilities` do not cover. Non-built-in specifiers are
 * problems too (a bundle must not depend on node_modules at run time), with no capability.
 */
export function uncoveredImports(
  imports: Iterable<string>,
  capabilities: readonly string[],
): ImportProblem[] {
  const problems: ImportProblem[] = [];
  const seen = new Set<string>();
  for (const specifier of imports) {
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    const base = builtinBase(specifier);
    if (base === undefined || NEVER.has(base)) {
      problems.push({ module: specifier });
      continue;
    }
    const capability = guardOf(base);
    if (capability !== undefined && !capabilities.includes(capability))
      problems.push({ module: specifier, capability });
  }
  return problems;
}

/** One line describing the problems, for an error message. */
export function describeImportProblems(problems: readonly ImportProblem[]): string {
  return problems
    .map((p) =>
      p.capability !== undefined
        ? `imports ${p.module}, which needs capability "${p.capability}"`
        : builtinBase(p.module) === undefined
          ? `imports ${p.module}, which is not bundled (an image may not depend on node_modules at run time)`
          : `imports ${p.module}, which no capability allows`,
    )
    .join('; ');
}
