/**
 * The NF API: every network function, built-in or third-party, is one `defineNf({...})` declaration
 * and imports nothing but `src/sdk` (and the wire formats in `src/packet`). The declaration is data
 * the host and the docs read — name, outputs, drop reasons, counters with units, config schema with
 * defaults — plus `create()`, which compiles the configuration once and returns the packet handler.
 *
 * @example
 * export default defineNf({
 *   name: 'ttl-guard',
 *   summary: 'Drops packets whose IPv4 TTL is 1 or less.',
 *   outputs: ['out'],
 *   drops: { ttl_expired: 'TTL ≤ 1', malformed: 'not a valid IPv4 packet' },
 *   counters: { checked: { unit: 'packets', description: 'packets looked at' } },
 *   config: {},
 *   create(config, ctx) {
 *     const checked = ctx.counter('checked');
 *     return { process(batch) { ctx.counters[checked] += batch.count; } };
 *   },
 * });
 */
import { dropReasonName } from '../packet/drop-reason.js';
import { layerName } from '../packet/packet-parser.js';
import { validateConfig, type ConfigError, type ConfigSchema } from './config-schema.js';
import type { PacketBatch } from './packet-batch.js';

export interface CounterSpec {
  /** What one unit counts: 'packets', 'bytes', 'flows', 'rules' … */
  unit: string;
  description: string;
}

/** What an NF gets when it is created: its identity, its counters and a rate-limited log. */
export interface NfContext {
  /** The instance name from the deployment (`fw`), and the replica number (0-based) of this copy. */
  readonly instance: string;
  readonly replica: number;
  readonly replicas: number;
  /** One slot per declared counter, in declaration order; add to them once per batch. */
  readonly counters: Float64Array;
  /** The index of a declared counter in `counters` (call in `create`, not per packet). */
  counter(name: string): number;
  /** The index of a declared drop reason, for `batch.drop(i, reason)` (call in `create`). */
  dropReason(name: string): number;
  /** The index of a declared output, for `batch.send(i, output)` (call in `create`). */
  output(name: string): number;
  /** Logs a line; repeated lines are rate-limited by the host. */
  log(message: string): void;
  /**
   * Reports a frame the parser refused: the first one of this instance is logged with its layer
   * and reason, later ones cost nothing (the NF counts them). Call it on the drop path.
   */
  malformed(layer: number, reason: number): void;
  /**
   * Sends a packet the NF made itself — a keepalive, a handshake retry — to output `output`: it
   * enters the chain after this NF, as if this NF had sent it. For timers, not the packet path:
   * only an NF that declares `originates: true` may, at most MAX_EMITS_PER_TICK times between two
   * `tick` calls; the bytes `bytes[at, at + length)` are copied. Returns false, sending nothing,
   * when the budget is spent, the packet is larger than a slot, or the host has no slot free now
   * (the NF tries again at a later tick).
   */
  emit(bytes: Uint8Array, at: number, length: number, output?: number): boolean;
}

/** Packets an NF may emit between two ticks (the host reserves slots for them). */
export const MAX_EMITS_PER_TICK = 16;

/** Where a context's `emit` goes: the host's or the harness's delivery of an NF-made packet. */
export type EmitSink = (bytes: Uint8Array, at: number, length: number, output: number) => boolean;

/** What `create()` returns: the packet handler and the optional lifecycle hooks. */
export interface NfInstance {
  /** Handles one burst: give each packet a verdict (default: output 0). `now` is in nanoseconds. */
  process(batch: PacketBatch, now: number): void;
  /** Called periodically (every few hundred ms) with the time, for expiry and timers; may `emit`. */
  tick?(now: number): void;
  /** State to carry across a restart (structured-cloneable). */
  snapshot?(): unknown;
  /** Restores what `snapshot()` returned, right after `create()`. */
  restore?(state: unknown): void;
}

export interface NfDefinition<Config = Record<string, unknown>> {
  /** Lower-case kebab name; a built-in NF's image is `builtin/<name>`. */
  name: string;
  /** One line: what the NF does. */
  summary: string;
  /** Output names; packets go to the first unless the NF says otherwise. */
  outputs: readonly string[];
  /** Drop reasons: name → when it applies. */
  drops: Readonly<Record<string, string>>;
  counters: Readonly<Record<string, CounterSpec>>;
  config: ConfigSchema;
  /** The NF sends packets of its own with `ctx.emit`; the host keeps a few slots ready for it. */
  originates?: boolean;
  /**
   * Checks beyond the schema (rule texts that must parse, say), on a config the schema accepted:
   * each problem with its field path, so a deployment error points at the file's line. Runs before
   * anything starts; `create()` may still refuse what it cannot check earlier.
   */
  check?(config: Config): readonly ConfigError[];
  /**
   * For an NF that rewrites source addresses and ports (a NAT): the external IPv4 address it
   * translates to and the range of ports (or ICMP identifiers) it hands out, for `config`. With
   * replicas, the host then steers by who owns what instead of by symmetric flow hash, which
   * cannot work for a translator (a reply's 5-tuple is not the one the NF saw leave): a packet to
   * `address` with a port in the range goes to the replica owning that port (`replicaOwnsPort`),
   * any other packet to the replica of the inside endpoint it comes from (source address and
   * port), so an endpoint keeps one replica whatever it talks to. The NF must then hand out only
   * ports its replica owns.
   */
  translation?(config: Config): Translation;
  /** Compiles `config` (already validated, defaults filled) into a packet handler. */
  create(config: Config, ctx: NfContext): NfInstance;
}

/** What `NfDefinition.translation` returns: an IPv4 address (dotted) and an inclusive port range. */
export interface Translation {
  address: string;
  portLo: number;
  portHi: number;
}

/**
 * Whether replica `replica` of `replicas` of a translating NF owns external `port` of a range that
 * starts at `portLo`: every replicas-th port, so each replica gets an even share of the range.
 * The host steers replies by it; the NF allocates only what it owns. One replica owns everything.
 */
export function replicaOwnsPort(port: number, portLo: number, replica: number, replicas: number): boolean {
  return replicas <= 1 || portOwner(port, portLo, replicas) === replica;
}

/** The replica owning `port` (ports below the range: by port number, so the answer is stable). */
export function portOwner(port: number, portLo: number, replicas: number): number {
  return (port >= portLo ? port - portLo : port) % replicas;
}

const NAME = /^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$/;

/**
 * Validates an NF's configuration the way a host does before starting it: the schema (defaults
 * filled, unknown keys refused), then the NF's own `check` on what the schema accepted. Never throws.
 */
export function checkNfConfig<Config>(
  definition: Pick<NfDefinition<Config>, 'config' | 'check'>,
  raw: unknown,
): { value: Record<string, unknown>; errors: ConfigError[] } {
  const result = validateConfig(definition.config, raw);
  if (result.errors.length === 0 && definition.check) {
    try {
      result.errors.push(...definition.check(result.value as Config));
    } catch (error) {
      result.errors.push({ path: '', message: `the NF's check failed: ${(error as Error).message}` });
    }
  }
  return result;
}

/**
 * Declares an NF. Checks the declaration itself (names, at least one output) and throws a plain
 * Error for a broken one: that is a bug in the NF, found when its module loads, never at run time.
 */
export function defineNf<Config = Record<string, unknown>>(
  definition: NfDefinition<Config>,
): NfDefinition<Config> {
  const problems: string[] = [];
  if (!NAME.test(definition.name)) problems.push(`name "${definition.name}" must be lower-case kebab-case`);
  if (definition.outputs.length === 0) problems.push('an NF needs at least one output');
  for (const list of [definition.outputs, Object.keys(definition.drops), Object.keys(definition.counters)]) {
    for (const name of list)
      if (!NAME.test(name)) problems.push(`"${name}" is not a valid output, drop or counter name`);
  }
  if (new Set(definition.outputs).size !== definition.outputs.length) problems.push('output names repeat');
  if (problems.length > 0) throw new Error(`defineNf(${definition.name}): ${problems.join('; ')}`);
  return Object.freeze({ ...definition });
}

/**
 * Builds the context an NF instance gets; the host and the test harness both use it. `emit` is
 * where packets the NF makes go (an NF that does not declare `originates` never reaches it); the
 * sink enforces MAX_EMITS_PER_TICK, since only its owner sees the ticks.
 */
export function createNfContext(
  definition: NfDefinition<never>,
  instance: string,
  replica: number,
  replicas: number,
  log: (message: string) => void,
  counters: Float64Array = new Float64Array(Object.keys(definition.counters).length),
  emit: EmitSink = () => false,
): NfContext {
  const counterNames = Object.keys(definition.counters);
  const dropNames = Object.keys(definition.drops);
  const lookup = (kind: string, names: readonly string[], name: string): number => {
    const index = names.indexOf(name);
    if (index < 0)
      throw new Error(
        `NF ${definition.name}: ${kind} "${name}" is not declared (declared: ${names.join(', ')})`,
      );
    return index;
  };
  let reportedMalformed = false;
  return {
    instance,
    replica,
    replicas,
    counters,
    malformed: (layer, reason) => {
      if (reportedMalformed) return;
      reportedMalformed = true;
      log(
        `dropped a malformed frame (${layerName(layer)}: ${dropReasonName(reason)}); later ones are only counted`,
      );
    },
    counter: (name) => lookup('counter', counterNames, name),
    dropReason: (name) => lookup('drop reason', dropNames, name),
    output: (name) => lookup('output', definition.outputs, name),
    log,
    emit: (bytes, at, length, output = 0) =>
      definition.originates === true &&
      Number.isInteger(at) &&
      Number.isInteger(length) &&
      at >= 0 &&
      length > 0 &&
      at + length <= bytes.length &&
      Number.isInteger(output) &&
      output >= 0 &&
      output < definition.outputs.length &&
      emit(bytes, at, length, output),
  };
}
