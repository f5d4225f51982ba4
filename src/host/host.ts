/**
 * The host: it owns the buffer pool and the ports, runs every NF instance as a guest (a worker
 * thread of its own, or inline in the host thread), steers packets into chains and moves them
 * between guests according to each guest's vNIC mode, and accounts for every packet.
 *
 *   port ──rx──▶ pool slot ─ classify ─▶ chain: stage 0 ─▶ stage 1 ─▶ … ─▶ port (tx) ─▶ slot freed
 *
 * Hops. A hop between two `direct` guests (one replica each) is a ring they share: the host never
 * sees those packets. Every other hop goes through the host: it reads the upstream guest's output
 * ring (`paravirt`), receives one message per packet (`emulated`) or calls the NF itself (`inline`),
 * and hands the packets to the next stage, choosing the replica by the symmetric flow hash so
 * both directions of a connection reach the same replica.
 *
 * Conservation. Every packet read from a port is, at the end, written to a port, dropped with a
 * named reason (an NF's, or the host's: no_chain, nf_down), or lost in a counted guest failure.
 * The host knows which run of guests holds each slot, so a failure frees exactly the slots the
 * failed run held. After a drain every slot is back in the pool.
 *
 * Supervision. A guest that throws, runs out of heap, exits, or stops beating its heartbeat while
 * it has work is terminated; the slots its run held are counted lost and freed; it is restarted
 * with backoff from its last snapshot. While it is down, its chain applies its failure policy:
 * `fail-closed` drops (counted `nf_down`), `fail-open` passes packets to the next stage.
 */
import { Worker } from 'node:worker_threads';
import { NfvError } from '../errors.js';
import { BufferPool } from '../mem/buffer-pool.js';
import { DESCRIPTOR_WORDS, DescriptorRing, portFlags } from '../mem/descriptor-ring.js';
import { DropReason } from '../packet/drop-reason.js';
import { FlowKey } from '../packet/flow-key.js';
import { Layer, PacketParser } from '../packet/packet-parser.js';
import { TcpFlag } from '../packet/tcp.js';
import { copyBytes, forgetWordView } from '../io/capture-buffer.js';
import { loadNativeAddon } from '../io/native-addon.js';
import { MAX_SUPER_FRAME, SUPER_PACKET_SLOT_SIZE, TcpSegmenter } from '../io/tcp-offload.js';
import {
  checkNfConfig,
  createNfContext,
  MAX_EMITS_PER_TICK,
  type NfDefinition,
  type NfInstance,
} from '../sdk/define-nf.js';
import { MAX_BATCH, PacketBatch } from '../sdk/packet-batch.js';
import { Classifier, type MatchPlan } from './classifier.js';
import { EXCEPTION_DROP, EXCEPTION_REASON, ExceptionGuard } from './exception-guard.js';
import {
  describeRefusal,
  HOST_REALM,
  loadSandboxedNf,
  type NfRealm,
  type SandboxPlan,
} from './guest-sandbox.js';
import { nowNs } from './clock.js';
import {
  applyPlan,
  captureHop,
  drainInstance,
  stopInstance,
  type ApplyOptions,
  type ApplyResult,
  type CapturedPacket,
  type ReconfigurableHost,
} from './reconfigure.js';
import { TranslationSteerer, translationOf, type TranslationSteering } from './replica-steering.js';
import { OverloadLevel, OverloadManager, type OverloadPlan, type OverloadStatus } from './overload.js';
import { tuneV8ForPacketPath } from './v8-tuning.js';
import { QUEUE_TARGET_MS, QueueLimit } from './queue-limit.js';
import {
  CONTROL_WORDS,
  Control,
  FLAG_DROP,
  FLAG_INDEX_MASK,
  ORIGINATED_PORT,
  SPARE_SLOTS,
  type GuestInit,
  type GuestToHost,
  type HostToGuest,
  type Placement,
  type VnicMode,
} from './guest-protocol.js';
import {
  createLivePort,
  isLivePlan,
  openInputPort,
  openOutputPort,
  type InputPort,
  type LivePort,
  type OutputPort,
  type PortPlan,
} from './ports.js';

export type FailurePolicy = 'fail-closed' | 'fail-open';

export interface NfPlan {
  /** File URL of the compiled module whose default export is the NF definition. */
  module: string;
  /** An NF image: its code runs in the guest sandbox with the granted capabilities, not imported. */
  sandbox?: SandboxPlan;
  config: unknown;
  vnic: VnicMode;
  placement: Placement;
  replicas: number;
  heapMb: number;
  failure: FailurePolicy;
}

export interface ChainPlan {
  name: string;
  from: string;
  to: string;
  through: string[];
  match?: Omit<MatchPlan, 'chain' | 'inPort'>;
}

export interface HostPlan {
  pool: { slots: number; slotSize: number };
  ringSize: number;
  batch: number;
  ports: Record<string, PortPlan>;
  nfs: Record<string, NfPlan>;
  chains: ChainPlan[];
  /** Polls before an idle guest sleeps. */
  spinPolls?: number;
  /** A guest with work whose heartbeat stands still this long is declared hung. */
  watchdogMs?: number;
  /** First restart delay; doubles per consecutive failure, up to 2 s. */
  restartBackoffMs?: number;
  /** The process memory budget and what to do near it (see overload.ts); no monitor without it. */
  memory?: OverloadPlan;
  /**
   * The standing delay a packet may meet in the chains at saturation, in ms (see queue-limit.ts);
   * fewer packets are let in while it is longer. 0: as many as the pool holds.
   */
  queueTargetMs?: number;
}

/** Drop reasons of the host itself (NFs declare their own). */
export const HostDrop = {
  NoChain: 'no_chain',
  NfDown: 'nf_down',
  Oversize: 'oversize',
  Invalid: 'invalid_descriptor',
  OverloadNewFlow: 'overload_new_flow',
  OverloadShed: 'overload_shed',
  /** A TCP super-packet an NF left as something the host cannot cut into segments for its port. */
  UncutSuperPacket: 'super_packet_uncut',
} as const;

export interface NfSummary {
  name: string;
  image: string;
  vnic: VnicMode;
  placement: Placement;
  replicas: number;
  packets: number;
  restarts: number;
  /** The NF broke the shared-memory rules and was stopped for good. */
  quarantined: boolean;
  counters: Record<string, number>;
  drops: Record<string, number>;
  /** NF images: attempts the guest sandbox refused (a capability not granted). */
  refusals?: number;
}

export interface HostSummary {
  /** Since run() began: the guests' start and the live ports' opening included (startSeconds). */
  seconds: number;
  /** Of `seconds`, the time run() took to start every guest and open the live ports. */
  startSeconds: number;
  received: number;
  /** Packets the NFs made (`ctx.emit`): with `received`, what has to be sent, dropped or lost. */
  originated: number;
  sent: number;
  dropped: number;
  lost: number;
  ports: Record<string, { received: number; sent: number; counters?: Record<string, number> }>;
  hostDrops: Record<string, number>;
  nfs: NfSummary[];
  poolSlots: number;
  poolFree: number;
  /** Packets the host lets into its chains at once now (its queue limit, queue-limit.ts). */
  queueLimit: number;
  /** Time from read at the input port to write at the output port, in µs (burst granularity). */
  latencyUs: { p50: number; p99: number; max: number };
  /** The memory monitor's state, when the deployment sets a memory limit. */
  overload?: OverloadStatus;
}

export interface HostProgress {
  seconds: number;
  received: number;
  originated: number;
  sent: number;
  dropped: number;
  lost: number;
  nfs: { name: string; packets: number; restarts: number; up: boolean }[];
}

const NO_RUN = -1;
/**
 * How long the host blocks its thread on a guest's output ring before it waits through the event
 * loop. An Atomics.waitAsync is woken by a task the event loop runs, an Atomics.wait by the
 * futex itself; output that comes within this long is taken at once, and the event loop (timers,
 * control API, live ports' readiness) waits at most this long more than it did.
 */
const BLOCKING_WAIT_MS = 0.2;
/** Packets emitted by inline and emulated NFs that wait for the next loop turn, at most. */
const PENDING_EMITS = 256;
/** Bursts read from each input port per turn of the host loop. */
const RX_BURSTS_PER_TURN = 8;
/**
 * Snapshots: at most this fraction of a guest's time (or of the host thread's, for inline NFs) goes
 * to taking them (a big table is snapshotted less often), and while one is being taken the watchdog
 * allows SNAPSHOT_GRACE times its limit.
 */
const SNAPSHOT_DUTY = 0.05;
/**
 * Zero for a replica's times (ms from performance.now()), written as -0 so that V8 keeps those
 * fields as doubles from the start (-0 is no small integer). A field that starts as the integer 0
 * and later gets a fraction changes representation: V8 deprecates the replicas' map, and every
 * optimized function that reads a replica leaves its code at once ("wrong map": the host loop's
 * run, deliver, collect, flushBacklogs… together ~1.3 s into a run, at the first snapshot request).
 * -0 === 0, so "0: none" tests hold.
 */
const NO_TIME = -0;

/** When the next snapshot is due after one that ended at `end` and took `took` ms: SNAPSHOT_DUTY. */
const snapshotDueAfter = (end: number, took: number): number =>
  end + (took * (1 - SNAPSHOT_DUTY)) / SNAPSHOT_DUTY;
const SNAPSHOT_GRACE = 10;
/** How often the memory monitor reads the process's memory (a cheap /proc read). */
const MEMORY_CHECK_MS = 100;

tuneV8ForPacketPath();

/** Where the built-in NF images are: compiled modules shipped with nfvisor (dist/src/host → dist/nfs). */
const BUILTIN_ROOT = new URL('../../nfs/', import.meta.url);

/** The module URL of the built-in NF `name` (image `builtin/<name>`). */
export function builtinModule(name: string): string {
  return new URL(`${name}/index.js`, BUILTIN_ROOT).href;
}
const GUEST_RUNTIME = new URL('./guest-runtime.js', import.meta.url);

/**
 * Refusals of sandboxed NF code that runs in this thread (its load here, inline instances), by
 * definition; `log` is pointed at the host's log once the NF has a name in a host.
 */
const hostThreadRefusals = new WeakMap<object, { count: number; log: (message: string) => void }>();
/** The realms of sandboxed NF code loaded in this thread, by definition (others run in the host's). */
const hostThreadRealms = new WeakMap<object, NfRealm>();

/**
 * Loads an NF image's definition into a sandbox in this thread (see guest-sandbox.ts); its refusals
 * are logged through `log` (the Host constructor sets it for definitions loaded before the NF has a
 * name in a host). Exported for ./reconfigure.ts.
 */
export function loadSandboxedHere(
  plan: SandboxPlan,
  log: (message: string) => void = () => {},
): { default?: NfDefinition<Record<string, unknown>> } {
  const sink = { count: 0, log };
  const loaded = loadSandboxedNf(plan, {
    refused: (refusal) => {
      if (++sink.count <= 10) sink.log(describeRefusal(refusal));
    },
    log: (line) => sink.log(line),
  });
  const definition = loaded.definition as NfDefinition<Record<string, unknown>> | undefined;
  if (typeof definition === 'object' && definition !== null) {
    hostThreadRefusals.set(definition, sink);
    hostThreadRealms.set(definition, loaded.realm);
  }
  return { default: definition };
}

/** One copy of an NF: a worker guest or an inline instance. (Exported for ./reconfigure.ts.) */
export interface Replica {
  nf: NfRuntime;
  index: number;
  guestId: number;
  up: boolean;
  /** Consecutive failures, for backoff. */
  failures: number;
  restartAt: number;
  snapshot: unknown;
  /** Snapshots received from this replica's guest. */
  snapshots: number;
  /** When the outstanding snapshot request was sent (0: none), and when the next may be. */
  snapshotAskedAt: number;
  nextSnapshotAt: number;
  counters: Float64Array;
  control: Int32Array;
  lastHeartbeat: number;
  lastBeatChange: number;
  /** Busy time without a heartbeat, as the watchdog counts it (see checkGuests). */
  stalledMs: number;
  /** Sandbox refusals of this replica's earlier guests (a restart clears the control words). */
  refusedBefore: number;
  // Worker guests.
  worker: Worker | null;
  inRing: DescriptorRing | null;
  outRing: DescriptorRing | null;
  returnRing: DescriptorRing | null;
  /** Descriptors waiting for room in `inRing` (host backpressure, never a drop). */
  backlog: Uint32Array;
  backlogCount: number;
  // Inline guests.
  instance: NfInstance | null;
  /** The host's inline batch as the NF's code sees it (the same memory, in the NF's realm). */
  inlineBatch: PacketBatch | null;
  guard: ExceptionGuard;
  // Emulated guests: id → slot of each packet in flight.
  emulatedInFlight: Map<number, number>;
  // NFs that originate packets. Inline and emulated: emits since the last tick (the host's budget).
  emitsSinceTick: number;
  /** Direct and paravirt: the spare ring, and the slots in it, oldest first (a FIFO like the ring). */
  spareRing: DescriptorRing | null;
  spares: Uint32Array;
  spareHead: number;
  spareCount: number;
}

export interface NfRuntime {
  name: string;
  plan: NfPlan;
  definition: NfDefinition<Record<string, unknown>>;
  config: Record<string, unknown>;
  chain: number;
  stage: number;
  replicas: Replica[];
  /** Drops by this NF's reasons (index = reason). */
  drops: Float64Array;
  packets: number;
  restarts: number;
  /** The run (consecutive direct guests sharing rings) this NF belongs to. */
  run: number;
  /** Set when a guest broke the shared-memory rules: never restarted. */
  quarantined: boolean;
  /** Packets dropped because the NF threw while processing their burst. */
  exceptions: number;
  /** Replaced by a live reconfiguration (./reconfigure.ts): gets no new packets, drains, then stops. */
  retiring?: boolean;
  /** Drained or stopped through the control API: down, and not restarted until `restartInstance`. */
  held?: boolean;
  /** A translating NF's external address and ports: its replicas are steered by them (./replica-steering.ts). */
  translation: TranslationSteering | null;
}

export interface ChainRuntime {
  index: number;
  name: string;
  stages: NfRuntime[];
  output: OutputPort;
  /** Descriptors classified to this chain in the current receive burst. */
  staged: Uint32Array;
  stagedCount: number;
  /** Replaced by a live reconfiguration: no longer classified to, drains what it holds. */
  retiring?: boolean;
  /** A capture of this chain's hops (./reconfigure.ts `captureHop`): sees every burst `deliver` hands on. */
  tap?: (stage: number, d: Uint32Array, from: number, count: number) => void;
}

/** glibc's own starting mmap threshold, made fixed. */
const MMAP_THRESHOLD_BYTES = 128 * 1024;
let mmapThresholdFixed = false;

/**
 * Once per process, large malloc blocks (pools, rings, guest heaps' pieces) are mapped and given
 * back when freed, however many hosts and guests come and go (native/nfvisor_io.c says why). A
 * MALLOC_MMAP_THRESHOLD_ in the environment is the user's choice and is left alone.
 */
function fixMmapThresholdOnce(): void {
  if (mmapThresholdFixed) return;
  mmapThresholdFixed = true;
  if (process.env.MALLOC_MMAP_THRESHOLD_ === undefined)
    loadNativeAddon()?.fixMmapThreshold?.(MMAP_THRESHOLD_BYTES);
}

/**
 * Posts a message to a guest and wakes it if it sleeps on its empty input ring: a guest reads its
 * messages between turns of its ring loop, and would otherwise see this one only when its sleep
 * times out (up to 20 ms: a late tick, or a run's end waiting on its final snapshots).
 */
function tellGuest(replica: Replica, message: HostToGuest): void {
  replica.worker?.postMessage(message);
  replica.inRing?.wakeConsumer();
}

/** Linux's default scheduling policy, as sched_getscheduler(2) gives it. */
const SCHED_OTHER = 0;

/** Running hosts of this thread that hold it in SCHED_BATCH (the policy is the thread's, not a host's). */
let batchSchedulingHolders = 0;

/**
 * While a host with worker guests runs, its thread and the threads it starts — the guests — are
 * SCHED_BATCH, so that a wake-up does not preempt a stage mid-burst (native/nfvisor_io.c says why
 * and what it was worth). Only from the default policy: a policy the user chose (`chrt`) is left
 * alone, as it is without the addon or with NFVISOR_SCHED_DEFAULT=1 (to measure the difference).
 * Returns whether this host holds it; the last holder to release it restores the default.
 */
function holdBatchScheduling(): boolean {
  if (process.env.NFVISOR_SCHED_DEFAULT === '1') return false;
  const addon = loadNativeAddon();
  if (addon?.setBatchScheduling === undefined) return false;
  if (batchSchedulingHolders === 0 && addon.setBatchScheduling(true) !== SCHED_OTHER) return false;
  batchSchedulingHolders++;
  return true;
}

function releaseBatchScheduling(): void {
  batchSchedulingHolders--;
  if (batchSchedulingHolders === 0) loadNativeAddon()?.setBatchScheduling?.(false);
}

/** Consecutive stages of one chain whose hops are guest-to-guest rings. */
export interface Run {
  chain: number;
  first: number;
  last: number;
}

export class Host {
  private readonly pool: BufferPool;
  /** Checksums are the NFs' business: the host parses only to classify and steer. */
  private readonly parser = new PacketParser({ verifyChecksums: false });
  private readonly steerer = new TranslationSteerer();
  private needsParse: boolean;
  private readonly key = new FlowKey();
  private readonly inputs: InputPort[] = [];
  /** The input `receive` reads first this turn: each takes its turn at first pick of free slots. */
  private firstInput = 0;
  private readonly outputs = new Map<string, OutputPort>();
  /** Live tunnel ports by name: each is an input and an output at once. */
  private readonly tunnels = new Map<string, LivePort>();
  /** Live ports that could not open (device missing, no permission, address in use): the others run. */
  readonly failedPorts: { port: string; message: string }[] = [];
  private readonly chains: ChainRuntime[] = [];
  private readonly nfs: NfRuntime[] = [];
  private readonly runs: Run[] = [];
  private classifier: Classifier;
  private readonly hostDrops = new Map<string, number>();
  private readonly overload: OverloadManager | null;
  /** Per slot: the run holding it (NO_RUN when the host holds it), its chain, stage and timestamps. */
  private readonly slotRun: Int32Array;
  private readonly slotChain: Int16Array;
  private readonly slotSeconds: Float64Array;
  private readonly slotNanos: Uint32Array;
  /** Per slot: the segment size of the TCP super-packet it holds (a TAP port with offloads), or 0. */
  private readonly slotSegmentSize: Uint16Array;
  /** Software GSO, for super-packets whose output port takes only wire-sized frames. */
  private readonly segmenter = new TcpSegmenter();
  /** When each slot's packet was read (performance.now(), ms), and a histogram of rx→tx latency. */
  private readonly slotRxMs: Float64Array;
  /** 1 while a slot waits in a guest's spare ring: not a packet yet, and never one a guest may hand back. */
  private readonly slotSpare: Uint8Array;
  /** Packets inline and emulated NFs emitted, waiting for the next turn; the NF that made each. */
  private readonly pendingEmits = new Uint32Array(PENDING_EMITS * DESCRIPTOR_WORDS);
  private readonly pendingEmitFrom: (NfRuntime | null)[] = new Array<NfRuntime | null>(PENDING_EMITS).fill(
    null,
  );
  private pendingEmitCount = 0;
  private readonly emitBurst = new Uint32Array(PENDING_EMITS * DESCRIPTOR_WORDS);
  private readonly spareDescriptor = new Uint32Array(DESCRIPTOR_WORDS);
  private readonly latency = new LatencyHistogram();
  /** Where the prefetching loads' bytes go, so that the compiler keeps them (`prefetch`). */
  private prefetched = 0;
  /** How many packets may be in the chains at once (read but not yet sent, dropped or lost). */
  private readonly queue: QueueLimit;
  private readonly scratch = new Uint32Array(MAX_BATCH * DESCRIPTOR_WORDS);
  private readonly slots = new Uint32Array(MAX_BATCH);
  /** Slots of packets just written to an output port, freed in one burst. */
  private readonly sentSlots = new Uint32Array(MAX_BATCH);
  private readonly inlineBatch: PacketBatch;
  private readonly batchSize: number;
  private received = 0;
  private originated = 0;
  private sent = 0;
  private dropped = 0;
  private lost = 0;
  private emulatedIds = 0;
  private started = 0;
  /** Seconds run() took to start the guests and open the live ports (0 until then). */
  private startSeconds = 0;
  private inputsDone = false;
  private stopping = false;
  private wake: (() => void) | null = null;
  private watchCursor = 0;
  private lastWatchdogAt = 0;
  private turns = 0;
  /**
   * Resolves once `run()` has started every guest and opened every live port: a datagram sent to
   * a tunnel port before then finds no socket.
   */
  readonly opened: Promise<void>;
  private markOpened: () => void = () => {};
  /** Set by a live reconfiguration: runs once at the top of the next loop turn, when no hop is half done. */
  private betweenTurns: (() => void) | null = null;
  /**
   * Bytes of the pool's slot area asked to be backed by transparent huge pages (0: no addon, an
   * addon without the call, NFVISOR_NO_HUGE_PAGES=1, or a pool smaller than one aligned 2 MiB page).
   */
  readonly poolHugePageBytes: number;

  private constructor(
    public plan: HostPlan,
    definitions: Map<string, NfDefinition<Record<string, unknown>>>,
  ) {
    for (const [name, port] of Object.entries(plan.ports))
      if (port.kind === 'tap' && port.options.offload === true && plan.pool.slotSize < SUPER_PACKET_SLOT_SIZE)
        throw new NfvError(
          'NFV_ERR_BAD_ARGUMENT',
          `port ${name}: offload brings TCP super-packets of up to ${MAX_SUPER_FRAME} bytes; ` +
            `pool.slotSize must be at least ${SUPER_PACKET_SLOT_SIZE}, not ${plan.pool.slotSize}`,
          { field: 'pool.slotSize', port: name },
        );
    fixMmapThresholdOnce();
    this.pool = BufferPool.create({ slotCount: plan.pool.slots, slotSize: plan.pool.slotSize });
    // Huge pages under the slots, asked for before their first write (native/nfvisor_io.c says why).
    const advised =
      process.env.NFVISOR_NO_HUGE_PAGES === '1'
        ? 0
        : (loadNativeAddon()?.adviseHugePages?.(this.pool.bytes) ?? 0);
    this.poolHugePageBytes = Math.max(0, advised);
    this.batchSize = Math.min(plan.batch, MAX_BATCH);
    // Two bursts per thread that handles packets (each guest and the host): one being processed,
    // one waiting. Inline NFs count too: a cheap overestimate. Counted for the plan the host starts
    // with; guests a live apply adds get their room as the limit grows under the target.
    const threads = 1 + Object.values(plan.nfs).reduce((sum, nf) => sum + nf.replicas, 0);
    this.queue = new QueueLimit({
      floor: 2 * this.batchSize * threads,
      ceiling: plan.pool.slots,
      step: this.batchSize,
      targetMs: plan.queueTargetMs ?? QUEUE_TARGET_MS,
    });
    this.slotRun = new Int32Array(plan.pool.slots).fill(NO_RUN);
    this.slotChain = new Int16Array(plan.pool.slots);
    this.slotSeconds = new Float64Array(plan.pool.slots);
    this.slotNanos = new Uint32Array(plan.pool.slots);
    this.slotSegmentSize = new Uint16Array(plan.pool.slots);
    this.slotRxMs = new Float64Array(plan.pool.slots);
    this.slotSpare = new Uint8Array(plan.pool.slots);
    this.inlineBatch = new PacketBatch(this.pool.bytes, this.pool.slotSize);
    this.opened = new Promise((resolve) => (this.markOpened = resolve));
    this.overload = plan.memory
      ? new OverloadManager(plan.memory, (from, to, pressure) =>
          this.log('host', `memory ${(pressure * 100).toFixed(1)} % of the limit: ${from} → ${to}`),
        )
      : null;

    const portIds = new Map<string, number>();
    Object.keys(plan.ports).forEach((name, i) => portIds.set(name, i));
    const matches: MatchPlan[] = [];
    for (const [name, portPlan] of Object.entries(plan.ports)) {
      if (isLivePlan(portPlan)) {
        this.tunnels.set(name, createLivePort(name, portIds.get(name) ?? 0, portPlan));
      }
    }
    plan.chains.forEach((chainPlan, c) => {
      let output = this.outputs.get(chainPlan.to) ?? this.tunnels.get(chainPlan.to);
      if (!output) {
        output = openOutputPort(chainPlan.to, portIds.get(chainPlan.to) ?? 0, plan.ports[chainPlan.to]);
      }
      this.outputs.set(chainPlan.to, output);
      const stages = chainPlan.through.map((name, s) => {
        const nfPlan = plan.nfs[name];
        const definition = definitions.get(name);
        if (!nfPlan || !definition)
          throw new NfvError('NFV_ERR_BAD_ARGUMENT', `chain ${chainPlan.name}: no NF named ${name}`);
        const { value } = checkNfConfig(definition, nfPlan.config);
        const nf: NfRuntime = {
          name,
          plan: nfPlan,
          definition,
          config: value,
          chain: c,
          stage: s,
          replicas: [],
          drops: new Float64Array(Object.keys(definition.drops).length),
          packets: 0,
          restarts: 0,
          run: -1,
          quarantined: false,
          exceptions: 0,
          translation: translationOf(name, definition, value),
        };
        const sink = hostThreadRefusals.get(definition);
        if (sink) sink.log = (message) => this.log(name, message);
        this.nfs.push(nf);
        return nf;
      });
      this.chains.push({
        index: c,
        name: chainPlan.name,
        stages,
        output,
        staged: new Uint32Array(MAX_BATCH * DESCRIPTOR_WORDS),
        stagedCount: 0,
      });
      matches.push({ chain: c, inPort: portIds.get(chainPlan.from), ...chainPlan.match });
    });
    this.classifier = new Classifier(matches);
    this.needsParse =
      matches.some((m) => m.protocol !== undefined || m.src || m.dst || m.srcPort || m.dstPort) ||
      Object.values(plan.nfs).some((nf) => nf.replicas > 1);
    for (const [name, portPlan] of Object.entries(plan.ports)) {
      if (!plan.chains.some((c) => c.from === name)) continue;
      this.inputs.push(this.tunnels.get(name) ?? openInputPort(name, portIds.get(name) ?? 0, portPlan));
    }
    this.planRuns();
  }

  /**
   * Loads the NF modules, validates every configuration (all errors together, each with its NF
   * and field path), and builds the host. Nothing starts until `run()`.
   */
  static async create(plan: HostPlan): Promise<Host> {
    const definitions = new Map<string, NfDefinition<Record<string, unknown>>>();
    const problems: string[] = [];
    for (const [name, nf] of Object.entries(plan.nfs)) {
      const module = nf.sandbox
        ? loadSandboxedHere(nf.sandbox)
        : ((await import(nf.module)) as { default?: NfDefinition<Record<string, unknown>> });
      if (!module.default) {
        problems.push(`nfs.${name}: ${nf.module} has no default export (an NF definition)`);
        continue;
      }
      definitions.set(name, module.default);
      for (const error of checkNfConfig(module.default, nf.config).errors) {
        problems.push(`nfs.${name}.config.${error.path}: ${error.message}`);
      }
    }
    if (problems.length > 0)
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `invalid NF configuration:\n  ${problems.join('\n  ')}`);
    return new Host(plan, definitions);
  }

  /** Groups consecutive single-replica `direct` worker stages into runs that share rings. */
  private planRuns(): void {
    for (const chain of this.chains) {
      let s = 0;
      while (s < chain.stages.length) {
        let last = s;
        while (
          last + 1 < chain.stages.length &&
          linksDirectly(chain.stages[last]) &&
          linksDirectly(chain.stages[last + 1])
        )
          last++;
        const run = this.runs.length;
        this.runs.push({ chain: chain.index, first: s, last });
        for (let k = s; k <= last; k++) chain.stages[k].run = run;
        s = last + 1;
      }
    }
  }

  /** Stops reading the input ports; `run()` then drains what is in flight and returns the summary. */
  stop(): void {
    this.inputsDone = true;
    this.wake?.();
  }

  /** Starts every guest and moves packets until the inputs are drained and nothing is in flight (a live port: until `stop()`). */
  async run(onProgress?: (progress: HostProgress) => void, progressEveryMs = 1000): Promise<HostSummary> {
    // Before the guests start: they inherit this thread's scheduling policy.
    const batchScheduled = this.nfs.some((nf) => nf.plan.placement === 'isolated') && holdBatchScheduling();
    try {
      return await this.runToEnd(onProgress, progressEveryMs);
    } finally {
      if (batchScheduled) releaseBatchScheduling();
    }
  }

  private async runToEnd(
    onProgress: ((progress: HostProgress) => void) | undefined,
    progressEveryMs: number,
  ): Promise<HostSummary> {
    this.started = performance.now();
    let nextGuestId = 2;
    for (const nf of this.nfs) {
      for (let r = 0; r < nf.plan.replicas; r++) {
        nf.replicas.push(this.newReplica(nf, r, nextGuestId++));
      }
    }
    for (const run of this.runs) await this.startRun(run);
    for (const [name, tunnel] of this.tunnels) {
      try {
        await tunnel.open();
      } catch (error) {
        // Reported and closed (its reads end, its writes count as errors); the other ports run.
        const message = error instanceof Error ? error.message : String(error);
        this.failedPorts.push({ port: name, message });
        this.log(name, `port not opened, the other ports run: ${message}`);
        tunnel.close();
        continue;
      }
      tunnel.onReadable = () => this.wake?.();
    }
    this.startSeconds = (performance.now() - this.started) / 1000;
    this.markOpened();
    const progressTimer = onProgress ? setInterval(() => onProgress(this.progress()), progressEveryMs) : null;
    this.lastWatchdogAt = performance.now();
    const watchdog = setInterval(() => this.checkGuests(), watchdogPeriod(this.plan.watchdogMs ?? 2000));
    const overload = this.overload;
    overload?.update();
    const memoryMonitor = overload ? setInterval(() => overload.update(), MEMORY_CHECK_MS) : null;
    try {
      for (;;) {
        if (this.betweenTurns !== null) this.betweenTurns();
        let moved = 0;
        if (!this.inputsDone) moved += this.receive();
        moved += this.collect();
        moved += this.flushEmits();
        moved += this.flushBacklogs();
        if (this.anyGuestDown()) await this.restartDue();
        if (this.inputsDone && this.inFlight() === 0) break;
        if (moved === 0) await this.idle();
        // Yield now and then even when busy: worker messages, the watchdog and progress need turns.
        else if ((++this.turns & 63) === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      // The loop is over: from here the host is stopping. A reconfiguration waiting for its safe
      // point gets it now, sees that, and stops what it staged (./reconfigure.ts atSafePoint).
      this.stopping = true;
      const waiting = this.betweenTurns;
      this.betweenTurns = null;
      waiting?.();
      if (progressTimer) clearInterval(progressTimer);
      clearInterval(watchdog);
      if (memoryMonitor) clearInterval(memoryMonitor);
      // Generous: a loaded machine may take a while to answer, and exporters need the final state.
      // Also the guests' last turn of their event loop: what an NF left to its promises settles.
      await this.finalSnapshots(5000);
      await this.shutdown();
    }
    return this.summary();
  }

  /** Access for ./reconfigure.ts (drain, stop, capture): the host's internals, not an API. */
  reconfigurable(): ReconfigurableHost {
    return this as unknown as ReconfigurableHost;
  }

  private newReplica(nf: NfRuntime, index: number, guestId: number): Replica {
    return {
      nf,
      index,
      guestId,
      up: false,
      failures: 0,
      restartAt: NO_TIME,
      snapshot: undefined,
      snapshots: 0,
      snapshotAskedAt: NO_TIME,
      nextSnapshotAt: NO_TIME,
      counters: new Float64Array(
        new SharedArrayBuffer(8 * Math.max(1, Object.keys(nf.definition.counters).length)),
      ),
      control: new Int32Array(new SharedArrayBuffer(4 * CONTROL_WORDS)),
      lastHeartbeat: 0,
      lastBeatChange: NO_TIME,
      stalledMs: NO_TIME,
      refusedBefore: 0,
      worker: null,
      inRing: null,
      outRing: null,
      returnRing: null,
      backlog: new Uint32Array(this.plan.ringSize * DESCRIPTOR_WORDS),
      backlogCount: 0,
      instance: null,
      inlineBatch: null,
      guard: new ExceptionGuard(),
      emulatedInFlight: new Map(),
      emitsSinceTick: 0,
      spareRing: null,
      spares: new Uint32Array(SPARE_SLOTS),
      spareHead: 0,
      spareCount: 0,
    };
  }

  /** Creates a run's rings and starts its guests (all of them: they share rings). */
  private async startRun(run: Run): Promise<void> {
    const chain = this.chains[run.chain];
    await this.startStages(chain.stages.slice(run.first, run.last + 1));
  }

  /** Creates the rings of one run's stages and starts their guests (also for a reconfiguration being prepared). */
  private async startStages(stages: NfRuntime[]): Promise<void> {
    const ringSize = this.plan.ringSize;
    const ringsNeeded = stages[0].plan.placement === 'isolated' && stages[0].plan.vnic !== 'emulated';
    // A run of direct guests: ring 0 host → first, ring k between stage k-1 and k, last → host.
    const chainRings = ringsNeeded ? stages.map(() => DescriptorRing.create(ringSize)) : [];
    const toHost =
      ringsNeeded && stages.length >= 1
        ? stages.map((_, k) => (k === stages.length - 1 ? DescriptorRing.create(ringSize) : null))
        : [];
    const starts: Promise<void>[] = [];
    stages.forEach((nf, k) => {
      for (const replica of nf.replicas) {
        replica.refusedBefore += Atomics.load(replica.control, Control.Refused);
        replica.control.fill(0);
        replica.backlogCount = 0;
        if (nf.plan.placement === 'inline') {
          starts.push(this.startInline(replica));
          continue;
        }
        if (nf.plan.vnic === 'emulated') {
          starts.push(this.startWorker(replica, null, null, null));
          continue;
        }
        // Replicated or paravirt stages form runs of one, with rings of their own per replica.
        const inRing = stages.length === 1 ? DescriptorRing.create(ringSize) : chainRings[k];
        const outRing =
          stages.length === 1
            ? DescriptorRing.create(ringSize)
            : k === stages.length - 1
              ? toHost[k]
              : chainRings[k + 1];
        const returnRing = DescriptorRing.create(ringSize);
        if (outRing === null) throw new Error('run without an output ring');
        // Spare slots are stocked once the run is part of the host (collect → stockSpares).
        replica.spareRing = nf.definition.originates === true ? DescriptorRing.create(SPARE_SLOTS) : null;
        replica.spareHead = 0;
        replica.spareCount = 0;
        starts.push(this.startWorker(replica, inRing, outRing, returnRing));
      }
    });
    await Promise.all(starts);
  }

  private async startInline(replica: Replica): Promise<void> {
    const nf = replica.nf;
    const realm = hostThreadRealms.get(nf.definition) ?? HOST_REALM;
    const ctx = createNfContext(
      nf.definition,
      nf.name,
      replica.index,
      nf.replicas.length,
      (m) => this.log(nf.name, m),
      realm.counters(replica.counters),
      (bytes, at, length, output) => this.originate(replica, bytes, at, length, output),
    );
    replica.inlineBatch = realm.batch(this.inlineBatch);
    replica.instance = nf.definition.create(nf.config, ctx);
    if (replica.snapshot !== undefined) replica.instance.restore?.(realm.adopt(replica.snapshot));
    replica.up = true;
    return Promise.resolve();
  }

  private startWorker(
    replica: Replica,
    inRing: DescriptorRing | null,
    outRing: DescriptorRing | null,
    returnRing: DescriptorRing | null,
  ): Promise<void> {
    const nf = replica.nf;
    replica.inRing = inRing;
    replica.outRing = outRing;
    replica.returnRing = returnRing;
    const init: GuestInit = {
      guestId: replica.guestId,
      instance: nf.name,
      replica: replica.index,
      replicas: nf.replicas.length,
      nfModule: nf.plan.module,
      sandbox: nf.plan.sandbox,
      config: nf.config,
      mode: nf.plan.vnic,
      pool: this.pool.shared,
      inRing: inRing?.shared ?? null,
      outRing: outRing?.shared ?? null,
      returnRing: returnRing?.shared ?? null,
      spareRing: inRing !== null ? (replica.spareRing?.shared ?? null) : null,
      control: replica.control.buffer as SharedArrayBuffer,
      counters: replica.counters.buffer as SharedArrayBuffer,
      batch: this.batchSize,
      spinPolls: this.plan.spinPolls ?? 200,
      snapshot: replica.snapshot,
    };
    const worker = new Worker(GUEST_RUNTIME, {
      workerData: init,
      // Gives the sandbox's import() callback a say over import() of strings compiled at run time.
      execArgv: nf.plan.sandbox ? ['--experimental-vm-modules'] : undefined,
      resourceLimits: {
        maxOldGenerationSizeMb: nf.plan.heapMb,
        maxYoungGenerationSizeMb: Math.max(4, nf.plan.heapMb >>> 3),
      },
    });
    replica.worker = worker;
    return new Promise((resolve) => {
      let ready = false;
      worker.on('message', (message: GuestToHost) => {
        if (message.type === 'ready') {
          ready = true;
          replica.up = true;
          replica.lastBeatChange = performance.now();
          replica.stalledMs = 0;
          replica.snapshotAskedAt = 0;
          resolve();
        } else if (message.type === 'verdict')
          this.emulatedVerdict(replica, message.verdict.id, message.verdict.verdict, message.verdict.bytes);
        else if (message.type === 'emit') {
          // A guest's message is as untrusted as its descriptors: checked before the host acts on it.
          const { bytes, output } = message;
          if (
            bytes instanceof Uint8Array &&
            Number.isInteger(output) &&
            output >= 0 &&
            output < nf.definition.outputs.length
          )
            this.originate(replica, bytes, 0, bytes.length, output);
        } else if (message.type === 'snapshot') {
          replica.snapshot = message.state;
          replica.snapshots++;
          if (replica.snapshotAskedAt !== 0) {
            // A state that takes long to copy is asked for less often: at most SNAPSHOT_DUTY of the
            // guest's time goes to snapshots (the packet loop waits while one is taken).
            const now = performance.now();
            replica.nextSnapshotAt = snapshotDueAfter(now, now - replica.snapshotAskedAt);
            replica.snapshotAskedAt = 0;
            // The answer is progress: the watchdog's count starts again from here. Without this the
            // snapshot's own time, counted under the grace, was held against the guest as soon as the
            // grace ended, and a loaded machine that ran the host's check before the guest's next
            // heartbeat took it for hung (CI, 2026-12-07: a 700 ms snapshot against a 400 ms limit).
            replica.lastBeatChange = now;
            replica.stalledMs = 0;
          }
        } else if (message.type === 'log') this.log(nf.name, message.message);
        else if (message.type === 'failed') this.log(nf.name, `failed to start: ${message.error.message}`);
        this.wake?.();
      });
      const onDown = (why: string): void => {
        // Whoever waits for this start goes on, even when the guest was already replaced (a restart
        // asked for while it started): a start that never settled held the host loop for good.
        if (!ready) resolve();
        if (replica.worker !== worker) return; // an older incarnation
        if (!this.stopping) this.fail(replica, why);
      };
      worker.on('error', (error) =>
        onDown(`${(error as { code?: string }).code ?? 'error'}: ${error.message}`),
      );
      worker.on('exit', (code) => onDown(`exited with code ${code}`));
    });
  }

  /**
   * Reads up to RX_BURSTS_PER_TURN bursts from each input port into pool slots and steers them.
   * Returns packets read. The port read first changes every turn: one that always came first took
   * every slot freed since the last turn, and a second port on a small pool got none (two chains,
   * bursts of 256 from a pool of 2,048: the second chain forwarded nothing).
   */
  private receive(): number {
    let total = 0;
    let exhausted = 0;
    const inputs = this.inputs.length;
    const first = this.firstInput < inputs ? this.firstInput : 0;
    this.firstInput = first + 1;
    for (let k = 0; k < inputs; k++) {
      const input = this.inputs[(first + k) % inputs];
      // Several bursts per turn: a guest woken for one burst of 32 costs a futex wake-up per 32
      // packets; handing it up to RX_BURSTS_PER_TURN bursts at once spreads that cost.
      let state = 0; // 0: more to read, 1: nothing now (live port), -1: input finished
      for (let burst = 0; burst < RX_BURSTS_PER_TURN && state === 0; burst++) {
        if (this.anyBacklog()) return total; // backpressure: a stage is full, read nothing more now
        const burstMs = performance.now(); // one clock read per burst, shared by its packets
        this.queue.update(burstMs);
        const want = this.queue.room(this.inFlight(), Math.min(this.batchSize, this.pool.freeCount()));
        if (want === 0) return total;
        const got = this.pool.allocBurst(this.slots, want);
        let n = 0;
        for (; n < got; n++) {
          const slot = this.slots[n];
          const at = this.pool.slotOffset(slot);
          const length = input.next(this.pool.bytes, at, this.pool.slotSize);
          if (length <= 0) {
            state = length < 0 ? -1 : 1;
            break;
          }
          this.received++;
          total++;
          this.slotSeconds[slot] = input.seconds;
          this.slotNanos[slot] = input.nanos;
          this.slotSegmentSize[slot] = input.segmentSize;
          this.slotRxMs[slot] = burstMs;
          this.steer(slot, at, length, input);
        }
        this.flushStaged();
        if (n < got) this.pool.freeBurst(this.slots, n, got - n);
      }
      if (state === -1) exhausted++;
    }
    if (exhausted === this.inputs.length) this.inputsDone = true;
    return total;
  }

  /** Classifies one received packet and stages it for its chain (delivered per burst by `flushStaged`). */
  private steer(slot: number, at: number, length: number, input: InputPort): void {
    const overload = this.overload === null ? OverloadLevel.Normal : this.overload.level;
    if (overload === OverloadLevel.Shed) {
      this.hostDrop(HostDrop.OverloadShed, slot);
      return;
    }
    // The host parses only when a chain matches on packet fields, an NF has replicas to steer
    // between, or memory pressure calls for spotting new connections; otherwise the input port alone
    // picks the chain and the NFs do the parsing.
    const parsed =
      (this.needsParse || overload !== OverloadLevel.Normal) &&
      this.parser.attach(this.pool.bytes, at, length, input.linkType) === DropReason.None;
    if (overload === OverloadLevel.RejectNew && parsed && this.opensConnection()) {
      this.hostDrop(HostDrop.OverloadNewFlow, slot);
      return;
    }
    const chain = this.classifier.classify(this.parser, input.id, parsed);
    if (chain < 0) {
      this.hostDrop(HostDrop.NoChain, slot);
      return;
    }
    const hash = parsed && this.parser.flowKey(this.key) ? this.key.symmetricHash() : 0;
    const staged = this.chains[chain];
    const o = staged.stagedCount++ * DESCRIPTOR_WORDS;
    const d = staged.staged;
    d[o] = slot;
    d[o + 1] = length;
    d[o + 2] = portFlags(input.id, 0);
    d[o + 3] = hash;
    this.slotChain[slot] = chain;
  }

  /**
   * Writes the packet in `slot` to `output` (the slot is freed by the caller): a TCP super-packet
   * whole to a port that takes them, cut into segments for any other.
   */
  private send(output: OutputPort, slot: number, length: number): void {
    const segmentSize = this.slotSegmentSize[slot];
    const at = this.pool.slotOffset(slot);
    const seconds = this.slotSeconds[slot];
    const nanos = this.slotNanos[slot];
    if (segmentSize === 0 || output.superPackets === true) {
      output.write(this.pool.bytes, at, length, seconds, nanos, segmentSize);
      this.sent++;
    } else if (this.segmenter.segment(this.pool.bytes, at, length, segmentSize, output, seconds, nanos) >= 0)
      this.sent++;
    else this.countHostDrop(HostDrop.UncutSuperPacket);
  }

  /** The packet the parser holds opens a TCP connection (SYN without ACK). */
  private opensConnection(): boolean {
    if (this.parser.l4 !== Layer.Tcp) return false;
    return (this.parser.tcp.flags() & (TcpFlag.Syn | TcpFlag.Ack)) === TcpFlag.Syn;
  }

  /** Hands each chain the burst staged for it. */
  private flushStaged(): void {
    for (const chain of this.chains) {
      if (chain.stagedCount === 0) continue;
      const count = chain.stagedCount;
      chain.stagedCount = 0;
      this.deliver(chain, 0, chain.staged, 0, count);
    }
  }

  /** Hands `count` descriptors (at `from` in `d`) to stage `stage` of `chain`, or to its port. */
  private deliver(chain: ChainRuntime, stage: number, d: Uint32Array, from: number, count: number): void {
    if (chain.tap !== undefined) chain.tap(stage, d, from, count);
    if (stage === chain.stages.length) {
      // Only what a guest wrote last is on another core (an inline NF just read it on this one).
      const last = stage > 0 ? chain.stages[stage - 1] : null;
      if (chain.output.discards !== true && last !== null && last.plan.placement !== 'inline')
        this.prefetch(d, from, count);
      const nowMs = count > 0 ? performance.now() : 0;
      // Packets read in one burst share their read time: one histogram entry per run of them.
      let runRxMs = -1;
      let runLength = 0;
      for (let i = 0; i < count; i++) {
        const o = (from + i) * DESCRIPTOR_WORDS;
        const slot = d[o];
        const rxMs = this.slotRxMs[slot];
        if (rxMs !== runRxMs) {
          if (runLength > 0) this.sojourn(nowMs - runRxMs, runLength);
          runRxMs = rxMs;
          runLength = 0;
        }
        runLength++;
        this.send(chain.output, slot, d[o + 1]);
        this.slotRun[slot] = NO_RUN;
        this.sentSlots[i & (MAX_BATCH - 1)] = slot;
        if ((i & (MAX_BATCH - 1)) === MAX_BATCH - 1) this.pool.freeBurst(this.sentSlots, 0, MAX_BATCH);
      }
      // The slots go back to the pool together (one publication of the free stack per burst).
      if ((count & (MAX_BATCH - 1)) !== 0) this.pool.freeBurst(this.sentSlots, 0, count & (MAX_BATCH - 1));
      if (runLength > 0) this.sojourn(nowMs - runRxMs, runLength);
      return;
    }
    const nf = chain.stages[stage];
    const only = nf.replicas.length === 1 ? nf.replicas[0] : null;
    if (only !== null && only.up && only.instance !== null) {
      this.runInline(only, d, from, count); // a whole burst per call
      return;
    }
    if (only !== null && only.up && only.inRing !== null && only.backlogCount === 0) {
      // A whole burst into the guest's ring with one tail update; what does not fit waits in the backlog.
      for (let i = 0; i < count; i++) this.slotRun[d[(from + i) * DESCRIPTOR_WORDS]] = nf.run;
      const taken = only.inRing.enqueueBurst(d, from, count);
      for (let i = taken; i < count; i++) this.queueToRing(only, d, (from + i) * DESCRIPTOR_WORDS);
      return;
    }
    for (let i = 0; i < count; i++) {
      const o = (from + i) * DESCRIPTOR_WORDS;
      const replica = nf.replicas[nf.replicas.length === 1 ? 0 : this.replicaIndex(nf, d, o)];
      if (!replica.up) {
        if (nf.plan.failure === 'fail-open') this.deliver(chain, stage + 1, d, from + i, 1);
        else this.hostDrop(HostDrop.NfDown, d[o]);
        continue;
      }
      if (replica.instance !== null) this.runInline(replica, d, from + i, 1);
      else if (nf.plan.vnic === 'emulated') this.postEmulated(replica, d, o);
      else this.queueToRing(replica, d, o);
    }
  }

  /**
   * Loads the first byte of each packet of a burst, so that its cache line is on its way before
   * the packet is read in earnest: a guest on another core wrote it last, and a port's write of
   * one packet waits for its line alone. These loads do not depend on each other, and the core
   * fetches the burst's lines together (the guests do the same: guest-runtime.ts).
   */
  private prefetch(d: Uint32Array, from: number, count: number): void {
    const bytes = this.pool.bytes;
    let touched = 0;
    for (let i = 0; i < count; i++) touched ^= bytes[this.pool.slotOffset(d[(from + i) * DESCRIPTOR_WORDS])];
    this.prefetched ^= touched;
  }

  /** `packets` read together left the chains after `ms`: for the latency figures and the queue limit. */
  private sojourn(ms: number, packets: number): void {
    this.latency.add(ms * 1000, packets);
    this.queue.observe(ms);
  }

  /** Which of `nf`'s replicas gets the packet of descriptor `o`: by flow hash, or by translation. */
  private replicaIndex(nf: NfRuntime, d: Uint32Array, o: number): number {
    const replicas = nf.replicas.length;
    if (nf.translation === null) return (d[o + 3] >>> 0) % replicas;
    return this.steerer.replicaOf(
      nf.translation,
      this.pool.bytes,
      this.pool.slotOffset(d[o]),
      d[o + 1],
      replicas,
    );
  }

  private queueToRing(replica: Replica, d: Uint32Array, o: number): void {
    this.slotRun[d[o]] = replica.nf.run;
    const b = replica.backlogCount * DESCRIPTOR_WORDS;
    if (replica.backlogCount * DESCRIPTOR_WORDS >= replica.backlog.length) {
      const grown = new Uint32Array(replica.backlog.length * 2);
      grown.set(replica.backlog);
      replica.backlog = grown;
    }
    const backlog = replica.backlog;
    backlog[b] = d[o];
    backlog[b + 1] = d[o + 1];
    backlog[b + 2] = d[o + 2];
    backlog[b + 3] = d[o + 3];
    replica.backlogCount++;
  }

  /** Pushes queued descriptors into the guests' input rings, in order. Returns descriptors moved. */
  private flushBacklogs(): number {
    let moved = 0;
    for (const nf of this.nfs) {
      for (const replica of nf.replicas) {
        if (replica.backlogCount === 0 || !replica.up || replica.inRing === null) continue;
        const n = replica.inRing.enqueueBurst(replica.backlog, 0, replica.backlogCount);
        if (n > 0) {
          replica.backlog.copyWithin(0, n * DESCRIPTOR_WORDS, replica.backlogCount * DESCRIPTOR_WORDS);
          replica.backlogCount -= n;
          moved += n;
        }
      }
    }
    return moved;
  }

  private anyBacklog(): boolean {
    for (const nf of this.nfs)
      for (const replica of nf.replicas) if (replica.backlogCount >= this.batchSize) return true;
    for (const nf of this.nfs)
      for (const replica of nf.replicas) if (replica.emulatedInFlight.size >= this.plan.ringSize) return true;
    return false;
  }

  private runInline(replica: Replica, d: Uint32Array, from: number, count: number): void {
    const nf = replica.nf;
    const batch = this.inlineBatch;
    batch.reset(count);
    // What the NF sees: this batch, or for sandboxed code the same memory through its realm.
    const seen = replica.inlineBatch ?? batch;
    seen.count = count;
    for (let i = 0; i < count; i++) {
      const o = (from + i) * DESCRIPTOR_WORDS;
      batch.at[i] = this.pool.slotOffset(d[o]);
      batch.length[i] = d[o + 1];
      batch.inputPort[i] = d[o + 2] & 0xffff;
    }
    try {
      const thrown =
        replica.instance === null ? null : replica.guard.process(replica.instance, seen, nowNs());
      if (thrown !== null && replica.guard.total <= 3)
        this.log(nf.name, `threw on a burst of ${count}, dropped as nf_exception: ${thrown.message}`);
    } catch (error) {
      // A crash loop: the burst it held is lost, and the NF is recreated after backoff.
      for (let i = 0; i < count; i++) this.lose(d[(from + i) * DESCRIPTOR_WORDS]);
      this.fail(replica, (error as Error).message);
      return;
    }
    nf.packets += count;
    // Drops leave here; the sent packets are compacted in place and go on as one burst.
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const o = (from + i) * DESCRIPTOR_WORDS;
      const verdict = batch.verdict[i];
      if (verdict < 0) {
        this.nfDrop(nf, -1 - verdict, d[o]);
        continue;
      }
      d[o + 1] = batch.length[i];
      const k = (from + kept) * DESCRIPTOR_WORDS;
      // Word by word: a copyWithin is a builtin call per packet once a burst has had a drop.
      if (k !== o) for (let w = 0; w < DESCRIPTOR_WORDS; w++) d[k + w] = d[o + w];
      kept++;
    }
    if (kept > 0) this.deliver(this.chains[nf.chain], nf.stage + 1, d, from, kept);
  }

  private postEmulated(replica: Replica, d: Uint32Array, o: number): void {
    const slot = d[o];
    const at = this.pool.slotOffset(slot);
    const id = this.emulatedIds++;
    replica.emulatedInFlight.set(id, slot);
    this.slotRun[slot] = replica.nf.run;
    // Trap-and-emulate: the packet leaves the pool as its own copy, in its own message.
    const bytes = this.pool.bytes.slice(at, at + d[o + 1]);
    const message: HostToGuest = { type: 'packet', packet: { id, port: d[o + 2] & 0xffff, bytes } };
    replica.worker?.postMessage(message, [bytes.buffer]);
  }

  private emulatedVerdict(replica: Replica, id: number, verdict: number, bytes: Uint8Array): void {
    const slot = replica.emulatedInFlight.get(id);
    if (slot === undefined) return; // from before a restart: already counted lost
    replica.emulatedInFlight.delete(id);
    this.slotRun[slot] = NO_RUN;
    const nf = replica.nf;
    nf.packets++;
    if (verdict < 0) {
      this.nfDrop(nf, -1 - verdict, slot);
      return;
    }
    if (bytes.length > this.pool.slotSize) {
      this.hostDrop(HostDrop.Invalid, slot);
      return;
    }
    // …and comes back as a copy that the host writes into the pool again.
    this.pool.bytes.set(bytes, this.pool.slotOffset(slot));
    const d = this.scratch;
    const o = (MAX_BATCH - 1) * DESCRIPTOR_WORDS;
    d[o] = slot;
    d[o + 1] = bytes.length;
    d[o + 2] = 0;
    d[o + 3] = 0;
    this.deliver(this.chains[nf.chain], nf.stage + 1, d, MAX_BATCH - 1, 1);
  }

  /** Drains every ring that leads to the host: sent packets go on, drops are counted. */
  private collect(): number {
    let moved = 0;
    const d = this.scratch;
    // Spare slots a guest used are packets from now on, and the rings get new ones. (One taken after
    // this look and published before the dequeues below is found by validDescriptor.)
    for (const nf of this.nfs) {
      if (nf.definition.originates !== true || nf.run < 0) continue;
      for (const replica of nf.replicas) {
        if (!replica.up || replica.spareRing === null) continue;
        this.syncSpares(replica);
        this.stockSpares(replica);
      }
    }
    for (const run of this.runs) {
      const chain = this.chains[run.chain];
      const last = chain.stages[run.last];
      if (last.plan.placement === 'inline' || last.plan.vnic === 'emulated') continue;
      for (let k = run.first; k <= run.last; k++) {
        const nf = chain.stages[k];
        for (const replica of nf.replicas) {
          if (!replica.up) continue;
          let hostile = 0;
          if (replica.returnRing !== null) {
            const n = replica.returnRing.dequeueBurst(d, 0, MAX_BATCH);
            moved += n;
            for (let i = 0; i < n; i++) {
              const o = i * DESCRIPTOR_WORDS;
              const slot = d[o];
              if (!this.validDescriptor(slot, d[o + 1], nf.run)) {
                hostile++;
                continue;
              }
              const flags = d[o + 2] >>> 16;
              nf.packets++;
              this.nfDrop(nf, flags & FLAG_INDEX_MASK, slot);
            }
          }
          if (k === run.last && replica.outRing !== null) {
            const n = replica.outRing.dequeueBurst(d, 0, MAX_BATCH);
            moved += n;
            let kept = 0;
            for (let i = 0; i < n; i++) {
              const o = i * DESCRIPTOR_WORDS;
              if (!this.validDescriptor(d[o], d[o + 1], nf.run) || (d[o + 2] >>> 16) & FLAG_DROP) {
                hostile++;
                continue;
              }
              this.slotRun[d[o]] = NO_RUN;
              if (kept !== i) {
                const k = kept * DESCRIPTOR_WORDS;
                for (let w = 0; w < DESCRIPTOR_WORDS; w++) d[k + w] = d[o + w];
              }
              kept++;
            }
            last.packets += kept;
            this.deliver(chain, run.last + 1, d, 0, kept);
          }
          const badCursors = (replica.returnRing?.invalid() ?? 0) + (replica.outRing?.invalid() ?? 0);
          if (hostile > 0 || badCursors > 0) {
            // A guest that hands back what it was never given, or scribbles on ring cursors, is
            // not restarted: its run stays down and its chain applies its failure policy.
            nf.quarantined = true;
            this.fail(
              replica,
              `quarantined: ${hostile} invalid descriptors, ${badCursors} impossible ring cursors`,
            );
          }
        }
      }
    }
    return moved;
  }

  /** A guest's descriptor is read once and checked before the host acts on it; a bad one is counted. */
  private validDescriptor(slot: number, length: number, run: number): boolean {
    if (slot < this.pool.slotCount && length <= this.pool.slotSize && this.slotRun[slot] === run) {
      if (this.slotSpare[slot] === 0) return true;
      // A spare slot coming back as a packet: a guest of the run took it after the last look at
      // its spare ring (it took it before publishing the descriptor we just read, so looking again
      // now sees it). Only a slot still waiting in a spare ring is a guest's lie.
      this.syncRunSpares(run);
      if (this.slotSpare[slot] === 0) return true;
    }
    this.hostDrops.set(HostDrop.Invalid, (this.hostDrops.get(HostDrop.Invalid) ?? 0) + 1);
    return false;
  }

  private syncRunSpares(runIndex: number): void {
    const run = this.runs[runIndex];
    if (run === undefined) return;
    const stages = this.chains[run.chain].stages;
    for (let k = run.first; k <= run.last; k++) for (const r of stages[k].replicas) this.syncSpares(r);
  }

  // ── packets the NFs make (`ctx.emit`) ─────────────────────────────────────────────────────────

  /**
   * An inline or emulated NF emitted a packet: it is copied into a free slot and, at the next loop
   * turn, goes on to the stage after the NF (never into a burst that is half done). False when the
   * NF's budget for this tick is spent, it is not running, or no slot is free.
   */
  private originate(
    replica: Replica,
    bytes: Uint8Array,
    at: number,
    length: number,
    output: number,
  ): boolean {
    const nf = replica.nf;
    if (!replica.up || nf.retiring === true || nf.run < 0 || this.stopping) return false;
    if (replica.emitsSinceTick >= MAX_EMITS_PER_TICK || length > this.pool.slotSize) return false;
    if (this.pendingEmitCount === PENDING_EMITS) return false;
    const slot = this.pool.alloc();
    if (slot < 0) return false;
    replica.emitsSinceTick++;
    copyBytes(bytes, at, this.pool.bytes, this.pool.slotOffset(slot), length);
    this.stampOriginated(slot, nf);
    const o = this.pendingEmitCount * DESCRIPTOR_WORDS;
    this.pendingEmits[o] = slot;
    this.pendingEmits[o + 1] = length;
    this.pendingEmits[o + 2] = portFlags(ORIGINATED_PORT, output);
    this.pendingEmits[o + 3] = 0;
    this.pendingEmitFrom[this.pendingEmitCount++] = nf;
    this.originated++;
    this.wake?.();
    return true;
  }

  /** Sends the packets inline and emulated NFs emitted on to the stage after each. */
  private flushEmits(): number {
    const count = this.pendingEmitCount;
    if (count === 0) return 0;
    // A copy: an inline NF downstream may emit again while these are delivered.
    const d = this.emitBurst;
    d.set(this.pendingEmits.subarray(0, count * DESCRIPTOR_WORDS));
    const from = this.pendingEmitFrom.slice(0, count);
    this.pendingEmitFrom.fill(null, 0, count);
    this.pendingEmitCount = 0;
    for (let k = 0; k < count; k++) {
      const nf = from[k];
      if (nf === null || nf.retiring === true || nf.run < 0)
        this.hostDrop(HostDrop.NfDown, d[k * DESCRIPTOR_WORDS]);
      else this.deliver(this.chains[nf.chain], nf.stage + 1, d, k, 1);
    }
    return count;
  }

  /** Timestamps for a packet an NF made: it was "received" now. */
  private stampOriginated(slot: number, nf: NfRuntime): void {
    const wallMs = Date.now();
    this.slotSeconds[slot] = Math.floor(wallMs / 1000);
    this.slotNanos[slot] = (wallMs % 1000) * 1e6;
    this.slotSegmentSize[slot] = 0;
    this.slotRxMs[slot] = performance.now();
    this.slotChain[slot] = nf.chain;
  }

  /**
   * A direct or paravirt guest takes spare slots in ring order; those it took (its ring has room
   * again) are packets now, held by its run like any other.
   */
  private syncSpares(replica: Replica): void {
    const ring = replica.spareRing;
    if (ring === null) return;
    const waiting = SPARE_SLOTS - ring.freeSpace(); // an impossible cursor reads as "all waiting"
    for (let taken = replica.spareCount - waiting; taken > 0; taken--) {
      const slot = replica.spares[replica.spareHead];
      replica.spareHead = (replica.spareHead + 1) % SPARE_SLOTS;
      replica.spareCount--;
      this.slotSpare[slot] = 0;
      this.stampOriginated(slot, replica.nf);
      this.originated++;
    }
  }

  /** Tops a guest's spare ring up to SPARE_SLOTS, leaving at least a burst of free slots for input. */
  private stockSpares(replica: Replica): void {
    const ring = replica.spareRing;
    if (ring === null) return;
    const d = this.spareDescriptor;
    while (replica.spareCount < SPARE_SLOTS && this.pool.freeCount() > this.batchSize) {
      const slot = this.pool.alloc();
      if (slot < 0) return;
      d[0] = slot;
      d[1] = 0;
      d[2] = 0;
      d[3] = 0;
      if (ring.enqueueBurst(d, 0, 1) !== 1) {
        this.pool.free(slot);
        return;
      }
      this.slotRun[slot] = replica.nf.run;
      this.slotSpare[slot] = 1;
      replica.spares[(replica.spareHead + replica.spareCount) % SPARE_SLOTS] = slot;
      replica.spareCount++;
    }
  }

  /** A guest stopped: the spare slots it used are counted (as packets of its run), the rest go back to the pool. */
  reclaimSpares(replica: Replica): void {
    this.syncSpares(replica);
    while (replica.spareCount > 0) {
      const slot = replica.spares[replica.spareHead];
      replica.spareHead = (replica.spareHead + 1) % SPARE_SLOTS;
      replica.spareCount--;
      this.slotSpare[slot] = 0;
      this.release(slot);
    }
    replica.spareRing = null;
  }

  private nfDrop(nf: NfRuntime, reason: number, slot: number): void {
    if (reason < nf.drops.length) nf.drops[reason]++;
    else if (reason === EXCEPTION_REASON) nf.exceptions++;
    this.dropped++;
    this.release(slot);
  }

  private hostDrop(reason: string, slot: number): void {
    this.countHostDrop(reason);
    this.release(slot);
  }

  /** Counts a drop by the host whose slot its caller frees. */
  private countHostDrop(reason: string): void {
    this.hostDrops.set(reason, (this.hostDrops.get(reason) ?? 0) + 1);
    this.dropped++;
  }

  private lose(slot: number): void {
    this.lost++;
    this.release(slot);
  }

  private release(slot: number): void {
    this.slotRun[slot] = NO_RUN;
    this.pool.free(slot);
  }

  private inFlight(): number {
    return this.received + this.originated - this.sent - this.dropped - this.lost;
  }

  /** Marks a replica down, counts what its run held as lost, and schedules the restart. */
  private fail(replica: Replica, why: string): void {
    if (!replica.up && replica.worker === null && replica.instance === null) return;
    const nf = replica.nf;
    if (nf.run < 0) {
      // A guest of a reconfiguration being prepared: not part of the host yet, holds no packets.
      replica.up = false;
      const worker = replica.worker;
      replica.worker = null;
      if (worker) void worker.terminate();
      return;
    }
    this.log(nf.name, `replica ${replica.index} down: ${why}`);
    const run = this.runs[nf.run];
    const chain = this.chains[run.chain];
    // Every guest of the run goes down with it: they share rings.
    for (let k = run.first; k <= run.last; k++) {
      for (const r of chain.stages[k].replicas) {
        r.up = false;
        const worker = r.worker;
        r.worker = null;
        if (worker) void worker.terminate();
        r.instance = null;
        r.backlogCount = 0;
        r.emulatedInFlight.clear();
      }
    }
    for (let k = run.first; k <= run.last; k++)
      for (const r of chain.stages[k].replicas) this.reclaimSpares(r);
    const runIndex = nf.run;
    for (let slot = 0; slot < this.slotRun.length; slot++)
      if (this.slotRun[slot] === runIndex) this.lose(slot);
    nf.restarts++;
    replica.failures++;
    const backoff = Math.min(
      2000,
      (this.plan.restartBackoffMs ?? 50) * 2 ** Math.min(10, replica.failures - 1),
    );
    replica.restartAt = performance.now() + backoff;
    this.wake?.();
  }

  /**
   * Whether any replica is down, asked every turn: allocates nothing, where `restartDue` (an async
   * call, a slice per run) cost ~100 bytes of garbage a turn, 5 MiB per 10⁶ packets of a direct run.
   */
  private anyGuestDown(): boolean {
    for (let n = 0; n < this.nfs.length; n++) {
      const replicas = this.nfs[n].replicas;
      for (let r = 0; r < replicas.length; r++) if (!replicas[r].up) return true;
    }
    return false;
  }

  private async restartDue(): Promise<void> {
    for (const run of this.runs) {
      const chain = this.chains[run.chain];
      const stages = chain.stages.slice(run.first, run.last + 1);
      const down = stages.some((nf) => nf.replicas.some((r) => !r.up));
      if (!down || this.stopping || stages.some((nf) => nf.quarantined || nf.retiring || nf.held)) continue;
      // Near the memory limit no guest starts: a new isolate is the largest allocation we make.
      if (this.overload !== null && this.overload.level !== OverloadLevel.Normal) continue;
      const due = Math.max(...stages.flatMap((nf) => nf.replicas.map((r) => r.restartAt)));
      if (performance.now() < due) continue;
      await this.startRun(run);
    }
  }

  /**
   * The watchdog: a ring guest with queued work whose heartbeat has not moved is hung. Stalled
   * time grows by at most one check period per check: when the host's own timer fires late (a
   * machine loaded far beyond its cores), its guests were most likely starved too, not hung.
   */
  private checkGuests(): void {
    const now = performance.now();
    const limit = this.plan.watchdogMs ?? 2000;
    const sinceLastCheck = Math.min(now - this.lastWatchdogAt, watchdogPeriod(limit));
    this.lastWatchdogAt = now;
    for (const nf of this.nfs) {
      for (const replica of nf.replicas) {
        if (!replica.up || replica.worker === null) continue;
        const beat = Atomics.load(replica.control, Control.Heartbeat);
        const busy =
          replica.emulatedInFlight.size > 0 ||
          replica.backlogCount > 0 ||
          (replica.inRing !== null && replica.inRing.stats().used > 0);
        if (beat !== replica.lastHeartbeat || !busy) {
          replica.lastHeartbeat = beat;
          replica.lastBeatChange = now;
          replica.stalledMs = 0;
        } else if (
          (replica.stalledMs += sinceLastCheck) >
          (replica.snapshotAskedAt !== 0 ? limit * SNAPSHOT_GRACE : limit)
        ) {
          this.fail(
            replica,
            `no progress for ${Math.round(now - replica.lastBeatChange)} ms (watchdog; ${Math.round(replica.stalledMs)} ms counted)`,
          );
        }
      }
    }
    // Timers (expiry) and snapshots for restarts: every guest gets the time; those that keep state
    // are asked for it. Both run between bursts, on the guest's own thread.
    const nowNanos = nowNs();
    for (const nf of this.nfs) {
      for (const replica of nf.replicas) {
        if (!replica.up) continue;
        if (replica.worker) {
          replica.emitsSinceTick = 0;
          // One request outstanding at a time, and none before the duty cycle allows it.
          const askSnapshot = replica.snapshotAskedAt === 0 && now >= replica.nextSnapshotAt;
          if (askSnapshot) replica.snapshotAskedAt = now;
          tellGuest(replica, { type: 'tick', now: nowNanos });
          if (askSnapshot) tellGuest(replica, { type: 'snapshot' });
        } else if (replica.instance) {
          replica.emitsSinceTick = 0;
          replica.instance.tick?.(nowNanos);
          // In the host thread a snapshot stops every port and chain while it is taken: the same
          // duty cycle as a guest's (a firewall holding 4 M connections copies for ~300 ms; taken
          // at every check, it stalled the packet path half the time).
          if (replica.instance.snapshot && now >= replica.nextSnapshotAt) {
            const started = performance.now();
            replica.snapshot = replica.instance.snapshot();
            const took = performance.now() - started;
            replica.nextSnapshotAt = snapshotDueAfter(started + took, took);
          }
        }
      }
    }
  }

  /**
   * Nothing moved this turn. With input waiting behind a full ring, yield to the event loop and try
   * again at once (a guest is draining it); with packets in guests, sleep on a ring the host
   * consumes until a guest publishes into it — blocking for up to BLOCKING_WAIT_MS first, then
   * through the event loop; otherwise sleep briefly (messages wake us early).
   */
  private async idle(): Promise<void> {
    if (!this.inputsDone && this.anyBacklog()) {
      // A guest's input ring is full: sleep until that guest takes some (its dequeue wakes us) or a
      // guest publishes output to move on, instead of spinning through the event loop (that took
      // the CPU the guests needed to drain their rings).
      const full = this.fullInputRing();
      const output = this.inFlight() > 0 ? this.ringToWatch() : null;
      if (full === null) await new Promise((resolve) => setImmediate(resolve));
      else if (output === null) await full.waitForSpaceAsync(1);
      else if (!output.waitForData(0, BLOCKING_WAIT_MS))
        await Promise.race([full.waitForSpaceAsync(1), output.waitForDataAsync(1)]);
      return;
    }
    const ring = this.inFlight() > 0 ? this.ringToWatch() : null;
    if (ring !== null) {
      if (ring.waitForData(0, BLOCKING_WAIT_MS)) return;
      await ring.waitForDataAsync(1);
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 1);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  /** The input ring of a guest whose backlog is a burst or more (the host waits for room in it). */
  private fullInputRing(): DescriptorRing | null {
    for (const nf of this.nfs)
      for (const replica of nf.replicas)
        if (replica.up && replica.inRing !== null && replica.backlogCount >= this.batchSize)
          return replica.inRing;
    return null;
  }

  /** The output ring of the first running ring guest whose output the host consumes, round-robin. */
  private ringToWatch(): DescriptorRing | null {
    const count = this.runs.length;
    for (let k = 0; k < count; k++) {
      const run = this.runs[(this.watchCursor + k) % count];
      const last = this.chains[run.chain].stages[run.last];
      for (const replica of last.replicas) {
        if (replica.up && replica.outRing !== null) {
          this.watchCursor = (this.watchCursor + k + 1) % count;
          return replica.outRing;
        }
      }
    }
    return null;
  }

  /**
   * Asks every running guest for its state once more, so `snapshotsOf()` describes the end of the
   * run (an exporter's last pass reads it); waits at most `timeoutMs` for the answers.
   */
  private async finalSnapshots(timeoutMs: number): Promise<void> {
    const waiting: { replica: Replica; answer: number }[] = [];
    for (const nf of this.nfs) {
      for (const replica of nf.replicas) {
        if (!replica.up) continue;
        if (replica.worker) {
          // A guest answers in order: with a periodic request still outstanding, that answer (maybe
          // taken before the last bursts) comes first, and ours is the one after it.
          const outstanding = replica.snapshotAskedAt !== 0 ? 1 : 0;
          waiting.push({ replica, answer: replica.snapshots + outstanding + 1 });
          tellGuest(replica, { type: 'snapshot' });
        } else if (replica.instance?.snapshot) replica.snapshot = replica.instance.snapshot();
      }
    }
    const deadline = performance.now() + timeoutMs;
    while (
      waiting.some((w) => w.replica.up && w.replica.snapshots < w.answer) &&
      performance.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    const exits: Promise<unknown>[] = [];
    for (const nf of this.nfs) {
      for (const replica of nf.replicas) {
        Atomics.store(replica.control, Control.Stop, 1);
        Atomics.add(replica.control, Control.Doorbell, 1);
        Atomics.notify(replica.control, Control.Doorbell);
        const worker = replica.worker;
        replica.worker = null;
        replica.up = false;
        if (worker) exits.push(worker.terminate());
      }
    }
    await Promise.all(exits);
    for (const nf of this.nfs) for (const replica of nf.replicas) this.reclaimSpares(replica);
    // Only a packet an NF made after the loop's last turn can still be held: it is lost.
    if (this.inFlight() > 0)
      for (let slot = 0; slot < this.slotRun.length; slot++)
        if (this.slotRun[slot] !== NO_RUN) this.lose(slot);
    for (const input of this.inputs) input.close();
    // Every port once: the plan's outputs and tunnels (one only written to is no input), and the old
    // ports chains still draining from a live reconfiguration write to (drainRetiring leaves those
    // to us when the host stops first).
    const closed = new Set<unknown>(this.inputs);
    for (const output of [
      ...this.outputs.values(),
      ...this.tunnels.values(),
      ...this.chains.map((c) => c.output),
    ]) {
      if (closed.has(output)) continue;
      closed.add(output);
      output.close();
    }
    forgetWordView(this.pool.bytes);
  }

  private log(nf: string, message: string): void {
    if (process.env.NFVISOR_QUIET) return;
    process.stderr.write(`[${nf}] ${message}\n`);
  }

  private progress(): HostProgress {
    return {
      seconds: (performance.now() - this.started) / 1000,
      received: this.received,
      originated: this.originated,
      sent: this.sent,
      dropped: this.dropped,
      lost: this.lost,
      nfs: this.nfs.filter(live).map((nf) => ({
        name: nf.name,
        packets: this.nfPackets(nf),
        restarts: nf.restarts,
        up: nf.replicas.every((r) => r.up),
      })),
    };
  }

  private nfPackets(nf: NfRuntime): number {
    // Ring guests count their own packets in shared memory; the host counts the rest.
    let fromGuests = 0;
    for (const replica of nf.replicas)
      if (replica.inRing !== null) fromGuests += Atomics.load(replica.control, Control.Packets);
    return nf.plan.placement === 'isolated' && nf.plan.vnic !== 'emulated'
      ? Math.max(fromGuests, nf.packets)
      : nf.packets;
  }

  /**
   * The live state, for the control plane: the same shape as the end-of-run summary, read while
   * the host runs (counters of ring guests come from shared memory; nothing stops for it).
   */
  status(): HostSummary & {
    running: boolean;
    chains: { name: string; through: string[]; output: string }[];
  } {
    return {
      ...this.summary(),
      running: this.started > 0 && !this.stopping,
      chains: this.chains.filter(live).map((c) => ({
        name: c.name,
        through: c.stages.map((nf) => nf.name),
        output: c.output.name,
      })),
    };
  }

  /**
   * The last state snapshot of each replica of NF `name` (taken twice a second from guests that
   * implement `snapshot()`), or null for an unknown name. For exporters and the control plane.
   */
  snapshotsOf(name: string): unknown[] | null {
    const nf = this.nfs.find((n) => n.name === name && !n.retiring);
    if (!nf) return null;
    // An inline sandboxed NF's snapshots are kept as it made them (in its realm); they leave as host types.
    const realm = hostThreadRealms.get(nf.definition) ?? HOST_REALM;
    return nf.replicas.map((r) => (nf.plan.placement === 'inline' ? realm.release(r.snapshot) : r.snapshot));
  }

  /**
   * Restarts an NF instance (every replica; a direct run restarts together): what is in flight in
   * it is counted lost, its state comes back from its last snapshot. Returns false for an unknown
   * name or a quarantined NF.
   */
  /**
   * Live reconfiguration to `plan` (see ./reconfigure.ts): a dry run returns the diff; otherwise
   * everything is validated and the new guests started before anything changes, the untouched
   * chains keep running, and a failure leaves the running deployment as it was.
   */
  apply(plan: HostPlan, options: ApplyOptions = {}): Promise<ApplyResult> {
    return applyPlan(this as unknown as ReconfigurableHost, plan, options);
  }

  /** Takes NF `name` out of service without losing what it holds (./reconfigure.ts `drainInstance`). */
  drainInstance(name: string): Promise<ApplyResult> {
    return drainInstance(this.reconfigurable(), name);
  }

  /** Takes NF `name` out of service now; what its chains hold is counted lost. */
  stopInstance(name: string): Promise<ApplyResult> {
    return stopInstance(this.reconfigurable(), name);
  }

  /** Copies the next `count` packets crossing hop `hop` of chain `chain` (./reconfigure.ts `captureHop`). */
  captureHop(chain: string, hop: number, count: number, timeoutMs: number): Promise<CapturedPacket[]> {
    return captureHop(this.reconfigurable(), chain, hop, count, timeoutMs);
  }

  restartInstance(name: string): boolean {
    const nf = this.nfs.find((n) => n.name === name && !n.retiring);
    if (!nf || nf.quarantined || this.stopping) return false;
    const replica = nf.replicas[0];
    if (replica === undefined) return false;
    nf.held = false;
    this.fail(replica, 'restart requested');
    replica.restartAt = performance.now();
    replica.failures = 0;
    return true;
  }

  /** Attempts the sandbox refused: the guests' own counts, or this thread's for an inline NF. */
  private refusals(nf: NfRuntime): number {
    if (nf.plan.placement === 'inline') return hostThreadRefusals.get(nf.definition)?.count ?? 0;
    return nf.replicas.reduce(
      (sum, r) => sum + r.refusedBefore + Atomics.load(r.control, Control.Refused),
      0,
    );
  }

  private summary(): HostSummary {
    const ports: HostSummary['ports'] = {};
    for (const output of this.outputs.values()) ports[output.name] = { received: 0, sent: output.packets };
    // Live ports (tunnel endpoints, TAP devices) keep counters of their own: rx, tx, errors, offloads.
    for (const [name, port] of this.tunnels)
      ports[name] = { ...(ports[name] ?? { received: 0, sent: 0 }), counters: { ...port.counters } };
    const nfs = this.nfs.filter(live).map((nf): NfSummary => {
      const counterNames = Object.keys(nf.definition.counters);
      const counters: Record<string, number> = {};
      counterNames.forEach(
        (name, i) => (counters[name] = nf.replicas.reduce((sum, r) => sum + r.counters[i], 0)),
      );
      const drops: Record<string, number> = {};
      Object.keys(nf.definition.drops).forEach((name, i) => {
        if (nf.drops[i] > 0) drops[name] = nf.drops[i];
      });
      if (nf.exceptions > 0) drops[EXCEPTION_DROP] = nf.exceptions;
      return {
        name: nf.name,
        image: nf.definition.name,
        vnic: nf.plan.vnic,
        placement: nf.plan.placement,
        replicas: nf.replicas.length,
        packets: this.nfPackets(nf),
        restarts: nf.restarts,
        quarantined: nf.quarantined,
        counters,
        drops,
        ...(nf.plan.sandbox ? { refusals: this.refusals(nf) } : {}),
      };
    });
    return {
      seconds: (performance.now() - this.started) / 1000,
      received: this.received,
      originated: this.originated,
      sent: this.sent,
      dropped: this.dropped,
      lost: this.lost,
      ports,
      hostDrops: Object.fromEntries(this.hostDrops),
      nfs,
      poolSlots: this.pool.slotCount,
      poolFree: this.pool.freeCount(),
      queueLimit: this.queue.limit,
      startSeconds: this.startSeconds,
      latencyUs: { p50: this.latency.quantile(0.5), p99: this.latency.quantile(0.99), max: this.latency.max },
      ...(this.overload ? { overload: this.overload.status() } : {}),
    };
  }
}

/** How often the watchdog (and the NFs' tick) runs for a watchdog limit of `limitMs`. */
function watchdogPeriod(limitMs: number): number {
  return Math.max(50, limitMs / 4);
}

/** Not being replaced by a live reconfiguration: what status and summaries show. */
function live(item: { retiring?: boolean }): boolean {
  return item.retiring !== true;
}

export function linksDirectly(nf: NfRuntime): boolean {
  return nf.plan.placement === 'isolated' && nf.plan.vnic === 'direct' && nf.plan.replicas === 1;
}

/**
 * Latencies in µs in logarithmic buckets (four per power of two, ≈ 19 % wide), so recording one is
 * an increment and the histogram is a fixed 1 KiB. Quantiles report a bucket's upper bound.
 */
class LatencyHistogram {
  private readonly buckets = new Float64Array(128);
  private count = 0;
  max = 0;

  /** Records `packets` packets that each took `us`. */
  add(us: number, packets: number): void {
    const index = us <= 1 ? 0 : Math.min(127, Math.ceil(4 * Math.log2(us)));
    this.buckets[index] += packets;
    this.count += packets;
    if (us > this.max) this.max = us;
  }

  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= target) return Math.min(this.max, 2 ** (i / 4));
    }
    return this.max;
  }
}
