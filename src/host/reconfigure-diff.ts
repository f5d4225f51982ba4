/**
 * What changes between the running host plan and a new one: ports, NF instances and chains added,
 * removed or changed, and the chains a reconfiguration leaves alone. Pure data, no host: the dry run
 * of `host.apply()` returns it, and ./reconfigure.ts acts on it.
 *
 * A chain is kept — its guests, rings and state untouched — only when its own plan, every NF it
 * goes through and both its ports are unchanged. Anything else about it makes it "changed": a new
 * copy of the chain is started next to the old one, which drains and stops (make before break).
 *
 * @example
 * const diff = diffPlans(host.plan, next);
 * diff.chains.kept;                // ['b']: never stopped
 * diff.nfs.changed;                // [{ name: 'fw', fields: ['config'] }]
 */
import { DEFAULT_TAP_QUEUE_LENGTH, type TapPortOptions } from '../io/tap-port.js';
import { canonicalAddress, DEFAULT_TUNNEL_RECEIVE_BUFFER } from '../io/tunnel-port.js';
import type { ChainPlan, HostPlan, NfPlan } from './host.js';
import type { PortPlan } from './ports.js';
import { QUEUE_TARGET_MS } from './queue-limit.js';

export interface NamedChange {
  name: string;
  /** What differs: NF plan fields (`config`, `replicas`, `vnic` …), or for a chain why it restarts. */
  fields: string[];
}

export interface PlanDiff {
  ports: { added: string[]; removed: string[]; changed: NamedChange[] };
  nfs: { added: string[]; removed: string[]; changed: NamedChange[] };
  chains: { added: string[]; removed: string[]; changed: NamedChange[]; kept: string[] };
  /**
   * What a running host cannot change: host settings (pool, ringSize, batch, queueTargetMs), with both values,
   * what a tunnel port that keeps its bind address cannot change (the socket's receive buffer
   * size and kind, `nativeIo`), and a TAP port's queue length on the device it keeps.
   */
  refused: string[];
  /** True when nothing at all differs. */
  empty: boolean;
}

const NF_FIELDS = ['module', 'config', 'vnic', 'placement', 'replicas', 'heapMb', 'failure'] as const;
const CHAIN_FIELDS = ['from', 'to', 'through', 'match'] as const;

function cannotChange(key: string, current: unknown, next: unknown): string {
  return `${key} is ${JSON.stringify(current)} and cannot change to ${JSON.stringify(next)} while the host runs`;
}

/** The differences from `current` to `next`; names are listed in the order of `next` (removed: `current`). */
export function diffPlans(current: HostPlan, next: HostPlan): PlanDiff {
  const refused: string[] = [];
  for (const key of ['pool', 'ringSize', 'batch'] as const) {
    if (!sameValue(current[key], next[key])) refused.push(cannotChange(key, current[key], next[key]));
  }
  const target = (plan: HostPlan): number => plan.queueTargetMs ?? QUEUE_TARGET_MS;
  if (target(current) !== target(next))
    refused.push(cannotChange('queueTargetMs', target(current), target(next)));
  const ports = diffRecords<PortPlan>(current.ports, next.ports, (a, b) => (sameValue(a, b) ? [] : ['port']));
  for (const { name } of ports.changed) {
    const why = socketKept(current.ports[name], next.ports[name]);
    if (why !== '') refused.push(`ports.${name}: ${why}`);
  }
  const nfs = diffRecords<NfPlan>(current.nfs, next.nfs, (a, b) =>
    NF_FIELDS.filter((field) => !sameValue(a[field], b[field])),
  );
  const changedPorts = new Set([...ports.changed.map((c) => c.name), ...ports.removed]);
  const changedNfs = new Set([...nfs.changed.map((c) => c.name), ...nfs.removed]);
  const before = new Map(current.chains.map((c) => [c.name, c]));
  const after = new Set(next.chains.map((c) => c.name));
  const chains: PlanDiff['chains'] = { added: [], removed: [], changed: [], kept: [] };
  for (const chain of next.chains) {
    const old = before.get(chain.name);
    if (old === undefined) {
      chains.added.push(chain.name);
      continue;
    }
    const why = chainChanges(old, chain, changedPorts, changedNfs);
    if (why.length === 0) chains.kept.push(chain.name);
    else chains.changed.push({ name: chain.name, fields: why });
  }
  for (const chain of current.chains) if (!after.has(chain.name)) chains.removed.push(chain.name);
  const empty =
    refused.length === 0 &&
    [ports, nfs].every((d) => d.added.length + d.removed.length + d.changed.length === 0) &&
    chains.added.length + chains.removed.length + chains.changed.length === 0;
  return { ports, nfs, chains, refused, empty };
}

/** The IANA ports a tunnel port binds when its plan names none. */
const TUNNEL_DEFAULT_PORT = { vxlan: 4789, geneve: 6081 } as const;

/**
 * Why a changed tunnel port cannot be changed live ('' when it can). Make before break opens the new
 * port before the old one closes, so a new socket on the address and UDP port the running one holds
 * would get "address in use": instead the new port takes the bound socket over at the swap
 * (`TunnelPort.adopt`, see reconfigure.ts), and its VNI, remote, ring, source ports, reply table
 * size — even its format, VXLAN ↔ GENEVE, since a UDP socket does not care what it carries — change
 * live. What the socket itself fixes cannot: its receive buffer (the native path cannot set it
 * again) and whether it is a node:dgram socket or the native addon's fd (`nativeIo`; neither can
 * become the other). A TAP port that keeps its device takes it over the same way.
 */
function socketKept(a: PortPlan, b: PortPlan): string {
  if (a.kind === 'tap' && b.kind === 'tap') return deviceKept(a.options, b.options);
  if ((a.kind !== 'vxlan' && a.kind !== 'geneve') || (b.kind !== 'vxlan' && b.kind !== 'geneve')) return '';
  const portA = a.options.bind.port ?? TUNNEL_DEFAULT_PORT[a.kind];
  const portB = b.options.bind.port ?? TUNNEL_DEFAULT_PORT[b.kind];
  if (canonicalAddress(a.options.bind.address) !== canonicalAddress(b.options.bind.address)) return '';
  if (portA !== portB || portA === 0) return '';
  const fixed: string[] = [];
  const buffer = (p: PortPlan & { kind: 'vxlan' | 'geneve' }): number =>
    p.options.receiveBufferSize ?? DEFAULT_TUNNEL_RECEIVE_BUFFER;
  if (buffer(a) !== buffer(b)) fixed.push(`receive buffer size (${buffer(a)} bytes)`);
  if ((a.options.nativeIo ?? true) !== (b.options.nativeIo ?? true)) fixed.push('kind (nativeIo)');
  if (fixed.length === 0) return '';
  return (
    `a ${b.kind} port that keeps its bind address ${b.options.bind.address}:${portB} takes its socket over, ` +
    `which keeps its ${fixed.join(' and ')}: bind the new one elsewhere, or remove the port in one apply ` +
    'and add it back in the next'
  );
}

/** Why a TAP port that takes over the old one's device (same device and mode) cannot apply, or ''. */
function deviceKept(a: TapPortOptions, b: TapPortOptions): string {
  if (a.device !== b.device || (a.mode ?? 'tap') !== (b.mode ?? 'tap')) return '';
  const queue = (o: TapPortOptions): number => o.queueLength ?? DEFAULT_TAP_QUEUE_LENGTH;
  const fixed: string[] = [];
  if (queue(a) !== queue(b)) fixed.push(`queue length (${queue(a)} frames)`);
  if ((a.offload === true) !== (b.offload === true))
    fixed.push(`offloads (${a.offload === true ? 'on' : 'off'})`);
  if (fixed.length === 0) return '';
  return (
    `a tap port that keeps its device ${b.device} takes it over, which keeps its ${fixed.join(' and ')}: ` +
    'remove the port in one apply and add it back in the next'
  );
}

function chainChanges(
  old: ChainPlan,
  chain: ChainPlan,
  changedPorts: ReadonlySet<string>,
  changedNfs: ReadonlySet<string>,
): string[] {
  const why: string[] = CHAIN_FIELDS.filter((field) => !sameValue(old[field], chain[field]));
  for (const port of new Set([chain.from, chain.to]))
    if (changedPorts.has(port)) why.push(`port ${port} changed`);
  for (const nf of new Set(chain.through)) if (changedNfs.has(nf)) why.push(`nf ${nf} changed`);
  return why;
}

function diffRecords<T>(
  current: Record<string, T>,
  next: Record<string, T>,
  fields: (a: T, b: T) => string[],
): { added: string[]; removed: string[]; changed: NamedChange[] } {
  const added: string[] = [];
  const changed: NamedChange[] = [];
  for (const [name, value] of Object.entries(next)) {
    if (!Object.hasOwn(current, name)) {
      added.push(name);
      continue;
    }
    const differ = fields(current[name], value);
    if (differ.length > 0) changed.push({ name, fields: differ });
  }
  const removed = Object.keys(current).filter((name) => !Object.hasOwn(next, name));
  return { added, removed, changed };
}

/**
 * Structural equality of plan values: JSON-like data, typed arrays compared element by element.
 * A key whose value is `undefined` counts as absent (`{ a: undefined }` equals `{}`).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => sameValue(v, b[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const key of keys) if (!sameValue(x[key], y[key])) return false;
  return true;
}

/** One line per change, for people (the CLI's dry run, logs). */
export function describeDiff(diff: PlanDiff): string[] {
  const lines: string[] = [];
  for (const reason of diff.refused) lines.push(`! ${reason}`);
  for (const [kind, d] of [
    ['port', diff.ports],
    ['nf', diff.nfs],
    ['chain', diff.chains],
  ] as const) {
    for (const name of d.added) lines.push(`+ ${kind} ${name}`);
    for (const name of d.removed) lines.push(`- ${kind} ${name}`);
    for (const c of d.changed) lines.push(`~ ${kind} ${c.name} (${c.fields.join(', ')})`);
  }
  for (const name of diff.chains.kept) lines.push(`= chain ${name} (kept running)`);
  if (diff.empty) lines.push('no change');
  return lines;
}
