/**
 * The guest sandbox: an NF image's code runs with only what the SDK gives it, plus the Node
 * modules its deployment grants. The image's bundle (converted to a CommonJS script when the image
 * is unpacked) is evaluated in its own `vm` context — a separate set of globals inside the guest's
 * isolate — that holds the JavaScript built-ins and a few harmless Node globals (timers,
 * TextEncoder/Decoder, URL, Buffer, Web Crypto, console routed to the NF's log) and nothing else:
 *
 *   require(x) / import(x)     a built-in the policy allows is the real module; anything else
 *                              (fs, net, child_process, worker_threads … without their grant, vm,
 *                              inspector, module, a package that was not bundled) is refused
 *   process                    a stub: env is empty, nextTick and hrtime work; exit, abort, kill,
 *                              binding, dlopen, chdir, mainModule, stdio … are refused
 *   SharedArrayBuffer          refused: only the host hands out shared memory
 *   Function('return this')()  the sandbox's own globals, so the stubs above again
 *
 * Every refusal throws an error with code NFV_ERR_CAPABILITY_REFUSED into the NF and is reported
 * to the caller (the guest counts it and logs the first ones, naming the capability). Dynamic
 * `import()` of a string that was compiled at run time is refused the same way in a worker guest
 * (started with --experimental-vm-modules, which gives `vm` the import callback); elsewhere V8
 * refuses it without the count.
 *
 * The typed arrays, ArrayBuffer, DataView, Map and Set are the sandbox realm's own. That matters
 * for speed: V8 does not inline an element access on a typed array of another realm, so NF code
 * reading host-realm arrays runs several times slower (measured: a read loop 0.86 → 4.1 ns per
 * element; the firewall and NAT of `nfvisor run`, profiled: 1.1 → 0.74 µs per packet together). So what the NF touches per
 * packet reaches it through its realm (`NfRealm`): the batch is a second PacketBatch over the same
 * memory made in the realm, the counters a realm view of the host's, and state crosses the border
 * by copy — into the realm for `restore` (so the NF's `instanceof Uint32Array` checks hold), out
 * of it as host types for the host's snapshots.
 *
 * What this is not: a security boundary. Objects the host hands the NF (its context, these
 * stubs) belong to the host realm, and through their constructors hostile code could reach
 * that realm's `Function`; `lockHostRealm` closes the constructor chains it knows about in a worker
 * guest, but Node documents `vm` as no security mechanism, and it is not. It contains mistakes and
 * the ordinary ways to reach outside; hostile code is kept out by signatures and the trust policy.
 *
 * @example
 * const nf = loadSandboxedNf({ script, policy: { modules: ['crypto'], needs: { fs: 'fs' }, grants: [] } }, {
 *   refused: (r) => counters.refused++,
 *   log: (line) => console.log(line),
 * });
 */
import { readFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import vm from 'node:vm';

import { MAX_BATCH, PacketBatch } from '../sdk/packet-batch.js';

/** What an image's code may load; computed from the deployment's grants by src/image/capabilities.ts. */
export interface SandboxPolicy {
  /** Node built-ins (base names without `node:`) the code may load: the pure ones and the granted. */
  modules: string[];
  /** Built-in base name → the capability that would allow it (for the refusal message). */
  needs: Record<string, string>;
  /** The capabilities the deployment grants, for messages. */
  grants: string[];
}

/** How a guest runs its image in the sandbox. */
export interface SandboxPlan {
  /** The path of the image's code as a CommonJS script (written by the image store when unpacked). */
  script: string;
  policy: SandboxPolicy;
}

/**
 * One refused attempt: what was tried and the capability that would have allowed it — a grantable
 * one (`fs`, `net` …) or, when `grantable` is false, the name of what no grant opens (`process`,
 * `shared-memory`, `host-realm`, `vm` …).
 */
export interface Refusal {
  capability: string;
  grantable: boolean;
  what: string;
}

/** The log line of a refusal (one form for every place that logs them). */
export function describeRefusal({ capability, grantable, what }: Refusal): string {
  return grantable
    ? `refused ${what}: needs capability "${capability}", which the deployment does not grant`
    : `refused ${what}: "${capability}" is closed to guests (no capability opens it)`;
}

export interface SandboxHooks {
  refused(refusal: Refusal): void;
  /** A line the NF's code wrote with console.*. */
  log(line: string): void;
}

export const CAPABILITY_REFUSED = 'NFV_ERR_CAPABILITY_REFUSED';

/** The error a refused attempt throws into the NF's code. */
function refusal(hooks: SandboxHooks, capability: string, what: string, grantable = false): Error {
  const r = { capability, grantable, what };
  hooks.refused(r);
  const error = new Error(describeRefusal(r)) as Error & { code: string; capability: string };
  error.code = CAPABILITY_REFUSED;
  error.capability = capability;
  return error;
}

const hostRequire = createRequire(import.meta.url);

/** Global names that can be a parameter of the wrapper (see `loadSandboxedNf`). */
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Names that stay global lookups: not bindable in strict code, or constant anyway. */
const UNBOUND = new Set(['eval', 'arguments', 'undefined', 'NaN', 'Infinity']);

/** `process` members that reach the host process itself: calling one is refused. */
const PROCESS_CALLS = [
  'exit',
  'reallyExit',
  'abort',
  'kill',
  'binding',
  '_linkedBinding',
  'dlopen',
  'chdir',
  'umask',
  'setuid',
  'setgid',
  'seteuid',
  'setegid',
  'setgroups',
  'initgroups',
  'send',
  'disconnect',
  'getBuiltinModule',
  'setSourceMapsEnabled',
  'setUncaughtExceptionCaptureCallback',
  'on',
  'once',
  'addListener',
];
/** `process` members that hand out host objects: reading one is refused (and gives undefined). */
const PROCESS_READS = [
  'mainModule',
  'stdin',
  'stdout',
  'stderr',
  'report',
  'permission',
  'channel',
  'moduleLoadList',
];

function processStub(hooks: SandboxHooks): object {
  const stub: Record<string, unknown> = {
    env: {},
    argv: [],
    execArgv: [],
    pid: 0,
    platform: process.platform,
    arch: process.arch,
    version: process.version,
    versions: { ...process.versions },
    release: { name: 'node' },
    nextTick: (fn: (...args: unknown[]) => void, ...args: unknown[]) => process.nextTick(fn, ...args),
    hrtime: Object.assign((previous?: [number, number]) => process.hrtime(previous), {
      bigint: () => process.hrtime.bigint(),
    }),
    uptime: () => process.uptime(),
    memoryUsage: () => process.memoryUsage(),
    cwd: () => '/',
    emitWarning: (warning: unknown) => hooks.log(`warning: ${String(warning)}`),
  };
  for (const name of PROCESS_CALLS)
    stub[name] = () => {
      throw refusal(hooks, 'process', `process.${name}()`);
    };
  for (const name of PROCESS_READS)
    Object.defineProperty(stub, name, {
      get() {
        refusal(hooks, 'process', `process.${name}`);
        return undefined;
      },
    });
  return Object.freeze(stub);
}

function consoleStub(hooks: SandboxHooks): object {
  const line =
    (level: string) =>
    (...args: unknown[]): void =>
      hooks.log(
        `${level === 'log' ? '' : `${level}: `}${args.map((a) => (typeof a === 'string' ? a : String(a))).join(' ')}`,
      );
  return Object.freeze({
    log: line('log'),
    info: line('log'),
    debug: line('log'),
    warn: line('warn'),
    error: line('error'),
    trace: line('trace'),
  });
}

/** An NF's code and the realm it runs in. */
export interface SandboxedNf {
  /** The script's default export (an NF declaration, if the image is well made). */
  definition: unknown;
  realm: NfRealm;
}

/**
 * Evaluates the image's script in a fresh context and returns its default export (the NF
 * declaration) with the context's realm. Throws what the script throws at load time.
 */
export function loadSandboxedNf(plan: SandboxPlan, hooks: SandboxHooks): SandboxedNf {
  const { policy } = plan;
  const allowed = new Set(policy.modules);

  const sandboxRequire = (specifier: unknown): unknown => {
    const text = String(specifier);
    const bare = text.startsWith('node:') ? text.slice(5) : text;
    const base = bare.split('/')[0];
    if (!isBuiltin(text)) throw refusal(hooks, 'node_modules', `require("${text}") (not bundled)`);
    if (allowed.has(base)) return hostRequire(text);
    const capability = policy.needs[base];
    throw refusal(hooks, capability ?? base, `require("${text}")`, capability !== undefined);
  };

  function SharedArrayBufferRefused(): never {
    throw refusal(hooks, 'shared-memory', 'new SharedArrayBuffer()');
  }
  Object.defineProperty(SharedArrayBufferRefused, Symbol.hasInstance, {
    value: (v: unknown) => v instanceof SharedArrayBuffer,
  });

  const globals: Record<string, unknown> = {
    console: consoleStub(hooks),
    process: processStub(hooks),
    SharedArrayBuffer: SharedArrayBufferRefused,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    setImmediate,
    clearImmediate,
    queueMicrotask,
    structuredClone,
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    Buffer,
    atob,
    btoa,
    crypto: globalThis.crypto,
    performance: Object.freeze({ now: () => performance.now(), timeOrigin: performance.timeOrigin }),
    AbortController,
    AbortSignal,
    Event,
    EventTarget,
  };
  const context = vm.createContext(globals, { name: 'nf-image' });
  // `global` and `globalThis` are the sandbox's own global object.
  vm.runInContext('globalThis.global = globalThis;', context);

  // Every global of the context becomes a parameter of the wrapper: a contextified global object
  // answers each lookup through an interceptor call into Node (slow on a packet path), a parameter
  // is a plain local binding. The values are the same objects, so nothing else changes.
  const names = (vm.runInContext('Object.getOwnPropertyNames(globalThis)', context) as string[]).filter(
    (name) => IDENTIFIER.test(name) && !UNBOUND.has(name),
  );
  const values = vm.runInContext(`[${names.join(',')}]`, context) as unknown[];
  const source = readFileSync(plan.script, 'utf8');
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname, ${names.join(', ')}) {${source}\n})`,
    {
      filename: plan.script,
      // Called in a guest started with --experimental-vm-modules, for import() of run-time strings.
      importModuleDynamically: ((specifier: string) =>
        Promise.resolve(sandboxRequire(specifier))) as unknown as vm.ScriptOptions['importModuleDynamically'],
    },
  );
  const wrapper = script.runInContext(context) as (...args: unknown[]) => void;
  const module = vm.runInContext('({ exports: {} })', context) as { exports: { default?: unknown } };
  wrapper.call(module.exports, module.exports, sandboxRequire, module, plan.script, '/', ...values);
  return { definition: module.exports.default, realm: contextRealm(context) };
}

/**
 * How what an NF touches crosses between the host's realm and the one its code runs in (see the
 * header). The host keeps its own objects and hands the NF the realm's.
 */
export interface NfRealm {
  /** A batch in the NF's realm over `batch`'s memory (packet bytes and per-packet arrays). */
  batch(batch: PacketBatch): PacketBatch;
  /** The NF's view of the host's counter values (the same memory). */
  counters(values: Float64Array): Float64Array;
  /** A copy of host state made of the realm's types, for the NF's `restore`. */
  adopt(state: unknown): unknown;
  /** A copy of the NF's state made of the host's types, for the host to keep. */
  release(state: unknown): unknown;
}

/** An NF imported as a module runs in the host's realm: nothing to cross. */
export const HOST_REALM: NfRealm = {
  batch: (batch) => batch,
  counters: (values) => values,
  adopt: (state) => state,
  release: (state) => state,
};

/**
 * Copies a structured-clone-like value with the realm's own types (compiled inside the context, so
 * every constructor it names is the realm's). Shared memory stays shared; anything it does not know
 * (functions, errors…) is passed as it is.
 */
const ADOPT_SOURCE = `(function adopt(value, depth) {
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 100) throw new RangeError('state nested more than 100 deep');
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  if (ArrayBuffer.isView(value)) {
    if (tag === 'DataView') return new DataView(adopt(value.buffer, depth + 1), value.byteOffset, value.byteLength);
    const Type = globalThis[tag];
    return value.buffer instanceof SharedArrayBuffer || !Type ? value : new Type(value);
  }
  if (tag === 'ArrayBuffer') return new Uint8Array(new Uint8Array(value)).buffer;
  if (tag === 'SharedArrayBuffer') return value;
  if (tag === 'Map') return new Map(Array.from(value, ([k, v]) => [adopt(k, depth + 1), adopt(v, depth + 1)]));
  if (tag === 'Set') return new Set(Array.from(value, (v) => adopt(v, depth + 1)));
  if (tag === 'Date') return new Date(value.getTime());
  if (Array.isArray(value)) return value.map((v) => adopt(v, depth + 1));
  if (tag !== 'Object') return value;
  const out = {};
  for (const key of Object.keys(value)) out[key] = adopt(value[key], depth + 1);
  return out;
})`;

/** The realm of a sandbox context. */
function contextRealm(context: vm.Context): NfRealm {
  // The context's SharedArrayBuffer global is the refusing stub: instanceof goes through its
  // Symbol.hasInstance, which answers for real shared buffers.
  const adopt = vm.runInContext(ADOPT_SOURCE, context) as (value: unknown, depth: number) => unknown;
  // PacketBatch compiled again in the realm (it names nothing else of its module but MAX_BATCH).
  const compileBatch = vm.runInContext(
    `(function (MAX_BATCH) { return (${PacketBatch.toString()}); })`,
    context,
  ) as (maxBatch: number) => typeof PacketBatch;
  const RealmBatch = compileBatch(MAX_BATCH);
  const RealmUint8Array = vm.runInContext('Uint8Array', context) as Uint8ArrayConstructor;
  const RealmFloat64Array = vm.runInContext('Float64Array', context) as Float64ArrayConstructor;
  return {
    batch: (batch) =>
      new RealmBatch(
        new RealmUint8Array(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.length),
        batch.capacity,
        batch,
      ),
    counters: (values) => new RealmFloat64Array(values.buffer, values.byteOffset, values.length),
    adopt: (state) => adopt(state, 0),
    release: (state) => structuredClone(state),
  };
}

/**
 * In a worker guest, before the image's code runs: the constructors of the host realm's functions
 * (`batch.constructor.constructor`, the way out of a `vm` context to code generation with the
 * host's globals) become refusals. The host's own code never calls them; `new Function` and
 * `eval` by name still work where they are in scope.
 */
export function lockHostRealm(hooks: SandboxHooks): void {
  const prototypes = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}) as object,
    Object.getPrototypeOf(function* () {}) as object,
    Object.getPrototypeOf(async function* () {}) as object,
  ];
  for (const prototype of prototypes) {
    const original = (prototype as { constructor: { name: string } }).constructor;
    const blocked = function (): never {
      throw refusal(hooks, 'host-realm', `the host realm's ${original.name} constructor`);
    };
    Object.defineProperty(blocked, 'name', { value: original.name });
    Object.defineProperty(prototype, 'constructor', { value: blocked, writable: false, configurable: false });
  }
}
