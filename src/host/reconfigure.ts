/**
 * Live reconfiguration of a running host: `host.apply(plan)` moves it to a new plan without
 * stopping the chains the change does not touch.
 *
 *   validate ───────▶ prepare ─────────────▶ swap ─────────────────────────▶ drain
 *   diff; refuse      load NF modules, check  one synchronous step between   old copies of changed
 *   what cannot       configs, open ports,    two host loop turns: classifier, chains get no new
 *   change live       start every new guest   ports and chain tables point   packets, finish what
 *                                             at the new chains               they hold, then stop
 *
 * Everything that can fail happens before the swap: a config that does not validate, a module
 * without an NF, a port that does not open, a guest that throws in `create()` or exits. Each stops
 * what was prepared and leaves the running host exactly as it was (NFV_ERR_RECONFIGURE_FAILED).
 *
 * Make before break. A changed chain (new config, replicas, vNIC, ports…) is started as a new copy
 * next to the old one; at the swap the classifier sends new packets to the copy while the old one
 * drains what it holds into the same output port, so nothing in flight is dropped. A replaced NF
 * starts from its predecessor's last snapshot when its image and replica count are unchanged; its
 * counters start again from zero (a counter reset, as after a process restart). Kept chains keep
 * their guests, rings, state and counters. A changed live port that keeps its TAP device or its
 * bound UDP address cannot open it a second time: it takes it over from the old port at the swap
 * (`TapPort.adopt`, `TunnelPort.adopt`), continues its counters, and what old copies still write
 * to the old port goes on through the new one.
 *
 * Indices. Chains, NF runtimes and runs are arrays the host indexes by number, and each pool slot
 * remembers the run holding it. The swap rebuilds those arrays (live chains first, draining ones
 * after) and renumbers every held slot, at a point where no hop is half done.
 *
 * The same machinery drains or stops one NF instance for the control API (`drainInstance`,
 * `stopInstance`), and `captureHop` taps one hop of a chain.
 */
import { NfvError } from '../errors.js';
import { TapPort } from '../io/tap-port.js';
import { TunnelPort } from '../io/tunnel-port.js';
import type { BufferPool } from '../mem/buffer-pool.js';
import { DESCRIPTOR_WORDS } from '../mem/descriptor-ring.js';
import { checkNfConfig, type NfDefinition } from '../sdk/define-nf.js';
import { translationOf } from './replica-steering.js';
import { MAX_BATCH } from '../sdk/packet-batch.js';
import { Classifier, type MatchPlan } from './classifier.js';
import { Control } from './guest-protocol.js';
import {
  linksDirectly,
  loadSandboxedHere,
  type ChainRuntime,
  type HostPlan,
  type NfRuntime,
  type Replica,
  type Run,
} from './host.js';
import {
  createLivePort,
  isLivePlan,
  openInputPort,
  openOutputPort,
  type InputPort,
  type LivePort,
  type OutputPort,
} from './ports.js';
import { diffPlans, sameValue, type PlanDiff } from './reconfigure-diff.js';

export interface ApplyOptions {
  /** Validate (modules, configs, the diff) and return the diff; change nothing. */
  dryRun?: boolean;
  /** How long old copies of changed chains may take to hand back what they hold; default 2000 ms. */
  drainTimeoutMs?: number;
  /**
   * NF instances to take out of service: their chains are replaced by copies in which they are
   * down and not restarted until `restartInstance` (`drainInstance`, `stopInstance`).
   */
  hold?: readonly string[];
}

export interface ApplyResult {
  dryRun: boolean;
  /** False for a dry run and for a plan equal to the running one. */
  applied: boolean;
  diff: PlanDiff;
  /** From the call to the swap, in ms (loading modules and starting guests). */
  prepareMs: number;
  /** From the swap until the old copies had handed back everything, in ms. */
  drainMs: number;
  /** Packets old copies still held at the drain timeout, counted lost. */
  lostInDrain: number;
}

/** The host's internals a reconfiguration works on (Host, seen through `host.reconfigurable()`). */
export interface ReconfigurableHost {
  plan: HostPlan;
  readonly pool: BufferPool;
  readonly chains: ChainRuntime[];
  readonly nfs: NfRuntime[];
  readonly runs: Run[];
  classifier: Classifier;
  needsParse: boolean;
  readonly inputs: InputPort[];
  readonly outputs: Map<string, OutputPort>;
  readonly tunnels: Map<string, LivePort>;
  readonly slotRun: Int32Array;
  /** 1 for a slot waiting in a guest's spare ring (not a packet). */
  readonly slotSpare: Uint8Array;
  readonly started: number;
  readonly stopping: boolean;
  readonly inputsDone: boolean;
  wake: (() => void) | null;
  betweenTurns: (() => void) | null;
  newReplica(nf: NfRuntime, index: number, guestId: number): Replica;
  startStages(stages: NfRuntime[]): Promise<void>;
  planRuns(): void;
  lose(slot: number): void;
  reclaimSpares(replica: Replica): void;
  log(nf: string, message: string): void;
}

type Loaded = Map<
  string,
  { definition: NfDefinition<Record<string, unknown>>; config: Record<string, unknown> }
>;

const NO_RUN = -1;
const DEFAULT_DRAIN_TIMEOUT_MS = 2000;
/** A swap waits this long for the host loop's next turn (a host that stopped never gets there). */
const SWAP_TIMEOUT_MS = 5000;
/** Guest ids of reconfigurations start here, far from those `run()` numbers from 2. */
const FIRST_GUEST_ID = 1 << 20;

/** Per host: one reconfiguration at a time, and guest ids that never repeat. */
const busy = new WeakSet<ReconfigurableHost>();
const nextGuestIds = new WeakMap<ReconfigurableHost, number>();

function refuse(message: string, detail: Record<string, unknown> = {}): never {
  throw new NfvError('NFV_ERR_RECONFIGURE_REFUSED', message, detail);
}

function failed(message: string, detail: Record<string, unknown> = {}): NfvError {
  return new NfvError('NFV_ERR_RECONFIGURE_FAILED', message, detail);
}

/** `host.apply()`: see the file comment. */
export async function applyPlan(
  host: ReconfigurableHost,
  next: HostPlan,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const t0 = performance.now();
  const hold = new Set(options.hold ?? []);
  const diff = diffPlans(host.plan, next);
  for (const name of hold) {
    const touched = next.chains.filter((c) => c.through.includes(name)).map((c) => c.name);
    if (touched.length === 0) refuse(`no chain runs NF ${name}`, { nf: name });
    for (const chain of touched) markChanged(diff, chain, `nf ${name} taken out of service`);
  }
  if (diff.refused.length > 0)
    refuse(`the plan cannot be applied live: ${diff.refused.join('; ')}`, { refused: diff.refused });
  checkReferences(next);
  if (host.started === 0 || host.stopping || host.inputsDone)
    refuse('the host is not running (a reconfiguration needs a running host)');
  if (busy.has(host)) refuse('another reconfiguration is under way');
  busy.add(host);
  try {
    const changed = new Set([...diff.chains.added, ...diff.chains.changed.map((c) => c.name)]);
    const definitions = await loadDefinitions(host, next, changed);
    if (options.dryRun === true || diff.empty)
      return {
        dryRun: options.dryRun === true,
        applied: false,
        diff,
        prepareMs: 0,
        drainMs: 0,
        lostInDrain: 0,
      };
    const staged = await prepare(host, next, changed, definitions, hold);
    let swapped = false;
    await atSafePoint(host, () => {
      swapped = true;
      swap(host, next, staged);
    }).catch((e: unknown) => {
      // The loop never came round (the swap cleans up after itself when it runs and fails).
      if (!swapped) discardStaged(staged);
      throw e;
    });
    const prepareMs = performance.now() - t0;
    const t1 = performance.now();
    const lostInDrain = await drainRetiring(host, options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
    return { dryRun: false, applied: true, diff, prepareMs, drainMs: performance.now() - t1, lostInDrain };
  } finally {
    busy.delete(host);
  }
}

function markChanged(diff: PlanDiff, chain: string, why: string): void {
  const entry = diff.chains.changed.find((c) => c.name === chain);
  if (entry) entry.fields.push(why);
  else diff.chains.changed.push({ name: chain, fields: [why] });
  diff.chains.kept = diff.chains.kept.filter((name) => name !== chain);
  diff.empty = false;
}

/** The plan's own consistency: names resolve and chain names are unique (a parsed deployment always is). */
function checkReferences(plan: HostPlan): void {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const chain of plan.chains) {
    if (names.has(chain.name)) problems.push(`chains: the name ${chain.name} is used twice`);
    names.add(chain.name);
    for (const port of [chain.from, chain.to])
      if (!Object.hasOwn(plan.ports, port)) problems.push(`chains.${chain.name}: no port named ${port}`);
    for (const nf of chain.through)
      if (!Object.hasOwn(plan.nfs, nf)) problems.push(`chains.${chain.name}: no NF named ${nf}`);
  }
  if (problems.length > 0)
    throw failed(`the new plan is inconsistent:\n  ${problems.join('\n  ')}`, { problems });
}

/**
 * Loads every NF a new or changed chain runs — an image's code into the guest sandbox, as at start,
 * a compiled module by import — and validates its config.
 */
async function loadDefinitions(
  host: ReconfigurableHost,
  plan: HostPlan,
  chains: ReadonlySet<string>,
): Promise<Loaded> {
  const needed = new Set(plan.chains.filter((c) => chains.has(c.name)).flatMap((c) => c.through));
  const loaded: Loaded = new Map();
  const problems: string[] = [];
  for (const name of needed) {
    const nf = plan.nfs[name];
    let module: { default?: NfDefinition<Record<string, unknown>> };
    try {
      module = nf.sandbox
        ? loadSandboxedHere(nf.sandbox, (m) => host.log(name, m))
        : ((await import(nf.module)) as typeof module);
    } catch (e) {
      problems.push(`nfs.${name}: cannot load ${nf.module}: ${(e as Error).message}`);
      continue;
    }
    if (!module.default) {
      problems.push(`nfs.${name}: ${nf.module} has no default export (an NF definition)`);
      continue;
    }
    const { value, errors } = checkNfConfig(module.default, nf.config);
    for (const error of errors) problems.push(`nfs.${name}.config.${error.path}: ${error.message}`);
    loaded.set(name, { definition: module.default, config: value });
  }
  if (problems.length > 0)
    throw failed(`invalid NF configuration:\n  ${problems.join('\n  ')}`, { problems });
  return loaded;
}

/** What `prepare` made and the swap installs (or a rollback undoes). */
interface Staged {
  chains: Map<string, ChainRuntime>;
  inputs: Map<string, InputPort>;
  outputs: Map<string, OutputPort>;
  tunnels: Map<string, LivePort>;
  /** Port objects opened for this reconfiguration (closed again on rollback). */
  opened: { close(): void }[];
  portIds: Map<string, number>;
  /**
   * New live ports that take over the device (TAP) or bound socket (tunnel) of a port leaving the
   * plan (changed or renamed) at the swap instead of opening it: new → old (see `TapPort.adopt`,
   * `TunnelPort.adopt`).
   */
  adopt: Map<LivePort, LivePort>;
}

/** Opens new ports and starts the guests of every new or changed chain; undoes all of it on failure. */
async function prepare(
  host: ReconfigurableHost,
  next: HostPlan,
  changed: ReadonlySet<string>,
  definitions: Loaded,
  hold: ReadonlySet<string>,
): Promise<Staged> {
  const staged: Staged = {
    chains: new Map(),
    inputs: new Map(),
    outputs: new Map(),
    tunnels: new Map(),
    opened: [],
    portIds: new Map(),
    adopt: new Map(),
  };
  const newNfs: NfRuntime[] = [];
  try {
    openPorts(host, next, staged);
    for (const [name, tunnel] of staged.tunnels) {
      if (host.tunnels.get(tunnel.name) === tunnel) continue;
      tunnel.onReadable = () => host.wake?.();
      const previous = staged.adopt.get(tunnel);
      try {
        // A port that takes another's device or socket over gets it at the swap; a tunnel port
        // opens its sending sockets now.
        if (previous === undefined) await tunnel.open();
        else if (tunnel instanceof TunnelPort && previous instanceof TunnelPort)
          await tunnel.prepareAdoption(previous);
      } catch (e) {
        // NFV_ERR_IO naming the port and the cause (address in use, device busy, no permission):
        // the apply fails as a whole, and the catch below closes what was opened.
        const message = (e as Error).message.replace(/ \(NFV_ERR_[A-Z_]+\)$/, '');
        throw failed(message, {
          field: `ports.${name}`,
          port: name,
          errno: (e as NfvError).detail?.errno,
        });
      }
    }
    const oldChains = new Map(host.chains.filter((c) => !c.retiring).map((c) => [c.name, c]));
    let guestId = nextGuestIds.get(host) ?? FIRST_GUEST_ID;
    for (const chainPlan of next.chains) {
      if (!changed.has(chainPlan.name)) continue;
      const previous = oldChains.get(chainPlan.name);
      const stages = chainPlan.through.map((name, s): NfRuntime => {
        const loaded = definitions.get(name);
        if (loaded === undefined) throw failed(`nfs.${name}: not loaded`);
        const nfPlan = next.nfs[name];
        const nf: NfRuntime = {
          name,
          plan: nfPlan,
          definition: loaded.definition,
          config: loaded.config,
          chain: -1,
          stage: s,
          replicas: [],
          drops: new Float64Array(Object.keys(loaded.definition.drops).length),
          packets: 0,
          restarts: 0,
          run: NO_RUN,
          quarantined: false,
          exceptions: 0,
          held: hold.has(name),
          translation: translationOf(name, loaded.definition, loaded.config),
        };
        // State carries over when the same image runs with as many replicas (flows hash alike).
        const before = previous?.stages.find((p) => p.name === name);
        const carry =
          before !== undefined &&
          before.plan.module === nfPlan.module &&
          before.plan.replicas === nfPlan.replicas;
        for (let r = 0; r < nfPlan.replicas; r++) {
          const replica = host.newReplica(nf, r, guestId++);
          if (carry) replica.snapshot = before.replicas[r]?.snapshot;
          nf.replicas.push(replica);
        }
        newNfs.push(nf);
        return nf;
      });
      const output = staged.outputs.get(chainPlan.to) ?? staged.tunnels.get(chainPlan.to);
      if (output === undefined)
        throw failed(`chains.${chainPlan.name}: port ${chainPlan.to} cannot be written`);
      staged.chains.set(chainPlan.name, {
        index: -1,
        name: chainPlan.name,
        stages,
        output,
        staged: new Uint32Array(MAX_BATCH * DESCRIPTOR_WORDS),
        stagedCount: 0,
      });
    }
    nextGuestIds.set(host, guestId);
    // Start every guest of the new chains, run by run (a run shares rings), all at once.
    const starts: Promise<void>[] = [];
    for (const chain of staged.chains.values()) {
      for (const group of runGroups(chain.stages))
        if (!group.some((nf) => nf.held)) starts.push(host.startStages(group));
    }
    const outcomes = await Promise.allSettled(starts);
    const thrown = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (thrown) throw failed(`a new guest failed to start: ${(thrown.reason as Error).message}`);
    const down = newNfs.filter((nf) => !nf.held && nf.replicas.some((r) => !r.up));
    if (down.length > 0)
      throw failed(
        `new guests failed to start: ${down.map((nf) => nf.name).join(', ')} (the host's log says why)`,
        {
          nfs: down.map((nf) => nf.name),
        },
      );
    return staged;
  } catch (e) {
    stopGuests(newNfs);
    for (const port of staged.opened) port.close();
    throw e instanceof NfvError ? e : failed(`preparing the new plan failed: ${(e as Error).message}`);
  }
}

/** Consecutive stages the host runs as one run (the rule of host.ts `planRuns`). */
function runGroups(stages: NfRuntime[]): NfRuntime[][] {
  const groups: NfRuntime[][] = [];
  for (const nf of stages) {
    const last = groups.at(-1);
    const previous = last?.at(-1);
    if (last !== undefined && previous !== undefined && linksDirectly(previous) && linksDirectly(nf))
      last.push(nf);
    else groups.push([nf]);
  }
  return groups;
}

/**
 * Finds or opens the port objects the new plan needs: an unchanged port keeps its object (and its
 * id, position and counters); a new or changed one is opened with a fresh id.
 */
function openPorts(host: ReconfigurableHost, next: HostPlan, staged: Staged): void {
  const current = host.plan.ports;
  let nextId = 0;
  const seen = (id: number): void => {
    nextId = Math.max(nextId, id + 1);
  };
  host.inputs.forEach((p) => seen(p.id));
  host.outputs.forEach((p) => seen(p.id));
  host.tunnels.forEach((p) => seen(p.id));
  for (const chain of host.chains) seen(chain.output.id);
  for (const [name, plan] of Object.entries(next.ports)) {
    const unchanged = Object.hasOwn(current, name) && sameValue(current[name], plan);
    const readBy = next.chains.some((c) => c.from === name);
    const writtenBy = next.chains.some((c) => c.to === name);
    if (!readBy && !writtenBy) continue;
    if (isLivePlan(plan)) {
      let tunnel = unchanged ? host.tunnels.get(name) : undefined;
      if (tunnel === undefined) {
        tunnel = createLivePort(name, nextId++, plan);
        staged.opened.push(tunnel);
        const previous = leavingPort(host, next, tunnel, staged);
        if (previous !== null) staged.adopt.set(tunnel, previous);
      }
      staged.tunnels.set(name, tunnel);
      staged.portIds.set(name, tunnel.id);
      continue;
    }
    let id = -1;
    if (readBy) {
      let input = unchanged ? host.inputs.find((p) => p.name === name) : undefined;
      if (input === undefined) {
        input = openInputPort(name, nextId++, plan);
        staged.opened.push(input);
      }
      staged.inputs.set(name, input);
      id = input.id;
    }
    if (writtenBy) {
      let output = unchanged ? host.outputs.get(name) : undefined;
      if (output === undefined) {
        output = openOutputPort(name, id >= 0 ? id : nextId++, plan);
        staged.opened.push(output);
      }
      staged.outputs.set(name, output);
      if (id < 0) id = output.id;
    }
    staged.portIds.set(name, id);
  }
}

/**
 * The running live port whose device or bound socket `port` should take over, or null: one that
 * leaves the plan (removed, or changed under the same name) and holds the same TAP device in the
 * same mode, or a socket bound to the same address and UDP port. A port that stays keeps its device
 * or socket, and a new port asking for it gets "device busy" or "address in use" as it should.
 */
function leavingPort(
  host: ReconfigurableHost,
  next: HostPlan,
  port: LivePort,
  staged: Staged,
): LivePort | null {
  const current = host.plan.ports;
  const taken = new Set(staged.adopt.values());
  for (const [name, old] of host.tunnels) {
    if (taken.has(old)) continue;
    const stays =
      Object.hasOwn(next.ports, name) &&
      sameValue(current[name], next.ports[name]) &&
      next.chains.some((c) => c.from === name || c.to === name);
    if (!stays && adoptionProblem(port, old) === '') return old;
  }
  return null;
}

/** Why `port` cannot take over what `old` holds ('' when it can): TAP from TAP, tunnel from tunnel. */
function adoptionProblem(port: LivePort, old: LivePort): string {
  if (port instanceof TapPort)
    return old instanceof TapPort ? port.adoptionProblem(old) : `${old.name} is not a TAP port`;
  return old instanceof TapPort ? `${old.name} is a TAP port` : port.adoptionProblem(old);
}

function adopt(port: LivePort, old: LivePort): void {
  if (port instanceof TapPort && old instanceof TapPort) port.adopt(old);
  else if (port instanceof TunnelPort && old instanceof TunnelPort) port.adopt(old);
}

/** Runs `change` at the top of the host loop's next turn; rejects if the host never gets there. */
function atSafePoint(host: ReconfigurableHost, change: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const now = (): void => {
      try {
        change();
        resolve();
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    // A host whose loop has ended comes round no more: the change runs now and sees it stopping
    // (the swap then stops what it staged instead of leaving those guests running).
    if (host.stopping) {
      now();
      return;
    }
    const timer = setTimeout(() => {
      host.betweenTurns = null;
      reject(failed('the host loop did not come round (has it stopped?); nothing was changed'));
    }, SWAP_TIMEOUT_MS);
    host.betweenTurns = () => {
      host.betweenTurns = null;
      clearTimeout(timer);
      now();
    };
    host.wake?.();
  });
}

/**
 * The swap: synchronous, at a safe point. Whatever can throw (the classifier) is built before the
 * first table changes; a guest that died since it started aborts the swap and everything staged.
 */
/** Stops what a reconfiguration staged and closes the ports it opened: it will not be installed. */
function discardStaged(staged: Staged): void {
  stopGuests([...staged.chains.values()].flatMap((c) => c.stages));
  for (const port of staged.opened) port.close();
}

function swap(host: ReconfigurableHost, next: HostPlan, staged: Staged): void {
  const stagedNfs = [...staged.chains.values()].flatMap((c) => c.stages);
  const died = stagedNfs.filter((nf) => !nf.held && nf.replicas.some((r) => !r.up));
  if (died.length > 0 || host.stopping) {
    discardStaged(staged);
    throw failed(
      host.stopping
        ? 'the host began to stop; nothing was changed'
        : `new guests stopped before the swap: ${died.map((nf) => nf.name).join(', ')}`,
    );
  }
  const kept = new Map(host.chains.filter((c) => !c.retiring).map((c) => [c.name, c]));
  const liveChains: ChainRuntime[] = [];
  for (const plan of next.chains) {
    const chain = staged.chains.get(plan.name) ?? kept.get(plan.name);
    if (chain === undefined) throw failed(`chain ${plan.name} is neither kept nor prepared (a bug)`);
    liveChains.push(chain);
  }
  const retiring = host.chains.filter((c) => c.retiring || !liveChains.includes(c));
  const matches: MatchPlan[] = next.chains.map((plan, c) => ({
    chain: c,
    inPort: staged.portIds.get(plan.from),
    ...plan.match,
  }));
  const classifier = new Classifier(matches);
  const needsParse =
    matches.some((m) => m.protocol !== undefined || m.src || m.dst || m.srcPort || m.dstPort) ||
    Object.values(next.nfs).some((nf) => nf.replicas > 1);
  // Last check before the first change: every device or socket to take over is still held open.
  const lost = [...staged.adopt].filter(([port, old]) => adoptionProblem(port, old) !== '');
  if (lost.length > 0) {
    stopGuests(stagedNfs);
    for (const port of staged.opened) port.close();
    throw failed(
      lost
        .map(([port, old]) => `ports.${port.name}: cannot take over: ${adoptionProblem(port, old)}`)
        .join('; '),
    );
  }
  for (const [port, old] of staged.adopt) adopt(port, old);

  for (const chain of retiring) {
    chain.retiring = true;
    for (const nf of chain.stages) nf.retiring = true;
  }
  reindex(host, [...liveChains, ...retiring]);
  host.classifier = classifier;
  host.needsParse = needsParse;
  const tunnels = new Set<unknown>(staged.tunnels.values());
  const inputs: InputPort[] = [];
  for (const plan of next.chains) {
    const input = staged.inputs.get(plan.from) ?? staged.tunnels.get(plan.from);
    if (input !== undefined && !inputs.includes(input)) inputs.push(input);
  }
  for (const input of host.inputs) if (!inputs.includes(input) && !isTunnel(host, input)) input.close();
  host.inputs.length = 0;
  host.inputs.push(...inputs);
  host.outputs.clear();
  for (const [name, output] of staged.outputs) host.outputs.set(name, output);
  // As Host.create does: a live port a chain writes to is an output too (status, summary, metrics).
  for (const plan of next.chains) {
    const tunnel = staged.tunnels.get(plan.to);
    if (tunnel !== undefined) host.outputs.set(plan.to, tunnel);
  }
  const oldTunnels = [...host.tunnels.values()];
  host.tunnels.clear();
  for (const [name, tunnel] of staged.tunnels) host.tunnels.set(name, tunnel);
  // A tunnel no chain uses any more stops now, unless an old chain still drains into it.
  for (const tunnel of oldTunnels)
    if (!tunnels.has(tunnel) && !retiring.some((c) => (c.output as unknown) === tunnel)) tunnel.close();
  host.plan = next;
  host.wake?.();
}

function isTunnel(host: ReconfigurableHost, port: InputPort): boolean {
  return [...host.tunnels.values()].some((t) => (t as unknown) === port);
}

/**
 * Puts `chains` in the host's tables in this order and renumbers: chain and stage indices, runs,
 * and the run each held pool slot belongs to.
 */
function reindex(host: ReconfigurableHost, chains: ChainRuntime[]): void {
  const firstOfRun = host.runs.map((run) => host.chains[run.chain].stages[run.first]);
  host.chains.length = 0;
  host.chains.push(...chains);
  host.nfs.length = 0;
  chains.forEach((chain, c) => {
    chain.index = c;
    chain.stages.forEach((nf, s) => {
      nf.chain = c;
      nf.stage = s;
      host.nfs.push(nf);
    });
  });
  // Runs that leave the tables keep no number (they hold no slot: they drained first).
  for (const nf of firstOfRun) nf.run = NO_RUN;
  host.runs.length = 0;
  host.planRuns();
  const renumber = firstOfRun.map((nf) => nf.run);
  const slotRun = host.slotRun;
  for (let slot = 0; slot < slotRun.length; slot++) {
    const run = slotRun[slot];
    if (run !== NO_RUN) slotRun[slot] = renumber[run] ?? NO_RUN;
  }
}

/** Stops guests (staged or retired): asks them to stop, terminates their workers, drops inline instances. */
function stopGuests(nfs: readonly NfRuntime[]): void {
  for (const nf of nfs) {
    for (const replica of nf.replicas) {
      Atomics.store(replica.control, Control.Stop, 1);
      Atomics.add(replica.control, Control.Doorbell, 1);
      Atomics.notify(replica.control, Control.Doorbell);
      replica.up = false;
      const worker = replica.worker;
      replica.worker = null;
      if (worker) void worker.terminate();
      replica.instance = null;
      replica.backlogCount = 0;
      replica.emulatedInFlight.clear();
    }
  }
}

/** Packets the retiring chains still hold (in rings, backlogs or emulated messages). */
function heldByRetiring(host: ReconfigurableHost): number {
  const runs = new Set<number>();
  let held = 0;
  for (const chain of host.chains) {
    if (!chain.retiring) continue;
    for (const nf of chain.stages) {
      runs.add(nf.run);
      for (const replica of nf.replicas) held += replica.emulatedInFlight.size;
    }
  }
  if (runs.size === 0) return 0;
  const slotRun = host.slotRun;
  for (let slot = 0; slot < slotRun.length; slot++)
    if (runs.has(slotRun[slot]) && host.slotSpare[slot] === 0) held++;
  return held;
}

/**
 * Waits until the retiring chains have handed back every packet (or the timeout: what they still
 * hold is counted lost), then stops their guests and removes them from the tables.
 */
async function drainRetiring(host: ReconfigurableHost, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (heldByRetiring(host) > 0 && performance.now() < deadline && !host.stopping)
    await new Promise((resolve) => setTimeout(resolve, 2));
  if (host.stopping) return 0; // the host's shutdown stops every guest
  let lost = 0;
  await atSafePoint(host, () => {
    const retiring = host.chains.filter((c) => c.retiring);
    if (retiring.length === 0) return;
    const runs = new Set(retiring.flatMap((c) => c.stages.map((nf) => nf.run)));
    stopGuests(retiring.flatMap((c) => c.stages));
    // Spare slots the guests never used go back to the pool; those they used are counted below.
    for (const nf of retiring.flatMap((c) => c.stages)) for (const r of nf.replicas) host.reclaimSpares(r);
    for (let slot = 0; slot < host.slotRun.length; slot++) {
      if (runs.has(host.slotRun[slot])) {
        host.lose(slot);
        lost++;
      }
    }
    // An old output no live chain writes any more closes now that nothing is left to write to it.
    const live = new Set<unknown>([...host.outputs.values(), ...host.tunnels.values()]);
    for (const output of new Set(retiring.map((c) => c.output))) if (!live.has(output)) output.close();
    reindex(
      host,
      host.chains.filter((c) => !c.retiring),
    );
  });
  if (lost > 0)
    host.log('host', `reconfiguration: ${lost} packets still in old guests at the drain timeout, lost`);
  return lost;
}

function liveNf(host: ReconfigurableHost, name: string): NfRuntime {
  const nf = host.nfs.find((n) => n.name === name && !n.retiring);
  if (nf === undefined)
    throw new NfvError('NFV_ERR_NF_NOT_FOUND', `no NF instance ${name}`, { field: 'name', nf: name });
  return nf;
}

/**
 * Takes an NF instance out of service without losing what it holds: its chains are replaced by
 * copies in which it is down (its chain's failure policy applies to its traffic), the old copies
 * drain, and it stays down until `restartInstance`. Its neighbours in those chains restart from
 * their snapshots.
 */
export async function drainInstance(
  host: ReconfigurableHost,
  name: string,
  timeoutMs?: number,
): Promise<ApplyResult> {
  liveNf(host, name);
  return applyPlan(host, host.plan, { hold: [name], drainTimeoutMs: timeoutMs });
}

/** Like `drainInstance`, without waiting: what the instance's chains hold is counted lost. */
export async function stopInstance(host: ReconfigurableHost, name: string): Promise<ApplyResult> {
  liveNf(host, name);
  return applyPlan(host, host.plan, { hold: [name], drainTimeoutMs: 0 });
}

export interface CapturedPacket {
  bytes: Uint8Array;
  seconds: number;
  nanos: number;
}

/**
 * Copies the next `count` packets crossing hop `hop` of chain `chainName` (0: into the first NF,
 * k: from NF k-1 into NF k, n: out to the output port), or what crossed it within `timeoutMs`.
 * Only hops the host carries can be tapped: a hop between two `direct` guests is a ring the host
 * never sees (the error lists the hops that can be).
 */
export async function captureHop(
  host: ReconfigurableHost,
  chainName: string,
  hop: number,
  count: number,
  timeoutMs: number,
): Promise<CapturedPacket[]> {
  const chain = host.chains.find((c) => c.name === chainName && !c.retiring);
  if (chain === undefined)
    throw new NfvError('NFV_ERR_CONTROL_NOT_FOUND', `no chain ${chainName}`, {
      field: 'chain',
      chain: chainName,
    });
  const stages = chain.stages;
  const tappable = [...Array(stages.length + 1).keys()].filter(
    (h) => h === 0 || h === stages.length || stages[h - 1].run !== stages[h].run,
  );
  if (!tappable.includes(hop))
    throw new NfvError(
      'NFV_ERR_BAD_ARGUMENT',
      `hop ${hop} of chain ${chainName} ${hop > stages.length ? 'does not exist' : 'is a ring between two direct guests, which the host never sees'}; hops that can be captured: ${tappable.join(', ')}`,
      { field: 'hop', tappable },
    );
  if (chain.tap !== undefined)
    throw new NfvError('NFV_ERR_CONTROL_BUSY', `a capture of chain ${chainName} is already running`, {
      chain: chainName,
    });
  const packets: CapturedPacket[] = [];
  const pool = host.pool;
  await new Promise<void>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      if (chain.tap === tap) chain.tap = undefined;
      resolve();
    };
    // Runs inside the host's hop, once per burst: copies the packets it keeps and never throws.
    const tap = (stage: number, d: Uint32Array, from: number, n: number): void => {
      if (stage !== hop || packets.length >= count) return;
      const ms = performance.timeOrigin + performance.now();
      const seconds = Math.floor(ms / 1000);
      const nanos = Math.floor((ms - seconds * 1000) * 1e6);
      for (let i = 0; i < n && packets.length < count; i++) {
        const o = (from + i) * DESCRIPTOR_WORDS;
        const at = pool.slotOffset(d[o]);
        const length = Math.min(d[o + 1], pool.slotSize);
        packets.push({ bytes: pool.bytes.slice(at, at + length), seconds, nanos });
      }
      if (packets.length >= count) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    chain.tap = tap;
  });
  return packets;
}
