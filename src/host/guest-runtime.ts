/**
 * The guest side: the entry point of an NF's worker thread (its own V8 isolate and heap). It loads
 * the NF module, creates the instance from the validated configuration, and then moves bursts
 * according to its vNIC mode:
 *
 *   direct    descriptors in from `inRing` (the host's or the previous guest's), packets processed
 *             in place in the shared pool, sent ones out on `outRing` (the next guest's or the
 *             host's), dropped ones to the host on `returnRing`;
 *   paravirt  the same rings, but every packet is copied into guest-private memory, processed
 *             there and copied back, and both rings lead to the host, which mediates every hop;
 *   emulated  no shared memory at all: each packet arrives as its own message holding a copy and
 *             leaves as its own message (trap-and-emulate, with the host repeating the copy).
 *
 * The loop beats `control[Heartbeat]` every turn so the host's watchdog can tell a hung guest from
 * an idle one. An NF image's code is loaded into the guest sandbox (guest-sandbox.ts) with the
 * capabilities its deployment grants; a compiled module (a path in the deployment) is imported as
 * trusted code.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPool } from '../mem/buffer-pool.js';
import { copyBytes } from '../io/capture-buffer.js';
import { DESCRIPTOR_WORDS, DescriptorRing, portFlags } from '../mem/descriptor-ring.js';
import {
  createNfContext,
  MAX_EMITS_PER_TICK,
  type EmitSink,
  type NfDefinition,
  type NfInstance,
} from '../sdk/define-nf.js';
import { MAX_BATCH, PacketBatch } from '../sdk/packet-batch.js';
import {
  Control,
  FLAG_DROP,
  ORIGINATED_PORT,
  type GuestInit,
  type GuestToHost,
  type HostToGuest,
} from './guest-protocol.js';
import { nowNs } from './clock.js';
import { ExceptionGuard } from './exception-guard.js';
import {
  describeRefusal,
  HOST_REALM,
  loadSandboxedNf,
  lockHostRealm,
  type NfRealm,
  type SandboxHooks,
  type SandboxPlan,
} from './guest-sandbox.js';

const init = workerData as GuestInit;
if (parentPort === null) throw new Error('guest-runtime runs only as a worker thread');
const port = parentPort;
const control = new Int32Array(init.control);
const post = (message: GuestToHost): void => port.postMessage(message);
const guard = new ExceptionGuard();
/** Where the NF's code runs: an image's sandbox realm, or this thread's for a module (see guest-sandbox.ts). */
let realm: NfRealm = HOST_REALM;

/** Lines a guest may log before it falls silent (a chatty or hostile NF cannot flood the host). */
const MAX_LOG_LINES = 100;
/** Refusals logged one by one; after these only the count in control[Refused] grows. */
const LOGGED_REFUSALS = 10;

/** Packets the NF emitted since the host's last tick (at most MAX_EMITS_PER_TICK). */
let emittedSinceTick = 0;
/**
 * How an emitted packet leaves the guest. Emulated: as its own message, a copy the host puts into
 * a slot. The ring loop replaces it with the spare-ring path (a slot the host set aside).
 */
let emitPacket: EmitSink = (bytes, at, length, output) => {
  if (length > init.pool.slotSize) return false;
  post({ type: 'emit', output, bytes: bytes.slice(at, at + length) });
  return true;
};
const emit: EmitSink = (bytes, at, length, output) => {
  if (emittedSinceTick >= MAX_EMITS_PER_TICK || !emitPacket(bytes, at, length, output)) return false;
  emittedSinceTick++;
  return true;
};

async function start(): Promise<void> {
  let logged = 0;
  const log = (message: string): void => {
    if (logged++ < MAX_LOG_LINES) post({ type: 'log', message });
  };
  const definition = init.sandbox
    ? loadImage(init.sandbox, log)
    : ((await import(init.nfModule)) as { default: NfDefinition<Record<string, unknown>> }).default;
  const counters = realm.counters(new Float64Array(init.counters));
  const ctx = createNfContext(definition, init.instance, init.replica, init.replicas, log, counters, emit);
  const instance = definition.create(init.config, ctx);
  if (init.snapshot !== undefined && instance.restore) instance.restore(realm.adopt(init.snapshot));
  port.on('message', (message: HostToGuest) => {
    if (message.type === 'snapshot')
      post({ type: 'snapshot', state: instance.snapshot ? instance.snapshot() : undefined });
    else if (message.type === 'tick') {
      emittedSinceTick = 0;
      instance.tick?.(message.now);
    } else if (message.type === 'packet') emulated(instance, message);
  });
  post({ type: 'ready' });
  if (init.mode !== 'emulated') ringLoop(instance);
}

/**
 * Runs an image's code in the sandbox: every refused attempt is counted in control[Refused] and
 * the first ones are logged with the capability they needed; the host realm's constructors are
 * locked before any of the image's code runs.
 */
function loadImage(plan: SandboxPlan, log: (message: string) => void): NfDefinition<Record<string, unknown>> {
  const hooks: SandboxHooks = {
    refused(refusal) {
      const n = Atomics.add(control, Control.Refused, 1) + 1;
      if (n < LOGGED_REFUSALS) log(describeRefusal(refusal));
      else if (n === LOGGED_REFUSALS) log(`${describeRefusal(refusal)} (further refusals are only counted)`);
    },
    log,
  };
  lockHostRealm(hooks);
  const loaded = loadSandboxedNf(plan, hooks);
  const definition = loaded.definition;
  realm = loaded.realm;
  if (typeof definition !== 'object' || definition === null || !('create' in definition))
    throw new Error(`${plan.script} has no default export (an NF definition)`);
  return definition as NfDefinition<Record<string, unknown>>;
}

/** One packet per message; the guest's private batch holds one packet. */
const privateBatch = new PacketBatch(new Uint8Array(MAX_BATCH * init.pool.slotSize), init.pool.slotSize);
/** privateBatch as the NF's code sees it (made once the NF is loaded). */
let privateSeen: PacketBatch | null = null;
function emulated(instance: NfInstance, message: Extract<HostToGuest, { type: 'packet' }>): void {
  const { packet } = message;
  const batch = privateBatch;
  batch.reset(1);
  batch.at[0] = 0;
  batch.length[0] = packet.bytes.length;
  batch.inputPort[0] = packet.port;
  batch.bytes.set(packet.bytes, 0);
  const seen = (privateSeen ??= realm.batch(privateBatch));
  seen.count = 1;
  const thrown = guard.process(instance, seen, nowNs());
  if (thrown !== null && guard.total <= 3)
    post({ type: 'log', message: `threw on a packet, dropped as nf_exception: ${thrown.message}` });
  Atomics.add(control, Control.Batches, 1);
  Atomics.add(control, Control.Packets, 1);
  Atomics.add(control, Control.Heartbeat, 1);
  const bytes = batch.bytes.slice(0, batch.length[0]);
  post({ type: 'verdict', verdict: { id: packet.id, verdict: batch.verdict[0], bytes } });
}

/**
 * The ring loop of `direct` and `paravirt`. It runs until the host sets `control[Stop]`; between
 * bursts it polls a bounded number of times, then sleeps on the ring until the producer wakes it,
 * so an idle guest costs no CPU. Message handlers (snapshot, tick) run when it yields.
 */
function ringLoop(instance: NfInstance): void {
  const pool = BufferPool.attach(init.pool);
  const inRing = DescriptorRing.attach(requireRing(init.inRing));
  const outRing = DescriptorRing.attach(requireRing(init.outRing));
  const returnRing = DescriptorRing.attach(requireRing(init.returnRing));
  const copy = init.mode === 'paravirt';
  const batch = copy ? privateBatch : new PacketBatch(pool.bytes, pool.slotSize);
  // The same memory as the NF's code sees it (its realm's arrays when it runs in the sandbox).
  const seen = realm.batch(batch);
  const limit = Math.min(init.batch, MAX_BATCH);
  const incoming = new Uint32Array(limit * DESCRIPTOR_WORDS);
  const sent = new Uint32Array(limit * DESCRIPTOR_WORDS);
  const dropped = new Uint32Array(limit * DESCRIPTOR_WORDS);
  if (init.spareRing !== null) {
    // An emitted packet goes into a spare slot and out on the output ring, after any burst this
    // thread already sent there (message handlers run between bursts: one producer, in order).
    const spareRing = DescriptorRing.attach(init.spareRing);
    const spare = new Uint32Array(DESCRIPTOR_WORDS);
    emitPacket = (bytes, at, length, output) => {
      if (length > pool.slotSize || spareRing.dequeueBurst(spare, 0, 1) !== 1) return false;
      if (spare[0] >= pool.slotCount) return false; // not a slot: the host never hands out such
      copyBytes(bytes, at, pool.bytes, pool.slotOffset(spare[0]), length);
      spare[1] = length;
      spare[2] = portFlags(ORIGINATED_PORT, output);
      spare[3] = 0;
      pushAll(outRing, spare, 1);
      return true;
    };
  } else emitPacket = () => false;

  // The bursts of one turn are a function of their own, left by a plain return. When the loop sat
  // in `turn`, V8 compiled it on stack (OSR) before the call after the loop (setImmediate) had ever
  // run, and that code, kept in V8's OSR cache, left the loop through a deoptimization every turn
  // ("insufficient type feedback for call": 24 times a guest in a 1 s run), and `turn` was compiled
  // again and again — 7 compiles of 11–26 ms each on the guest's own thread (it has no concurrent
  // compiler: v8-tuning.ts), while its ring waited.
  const runBursts = (): void => {
    // Bursts until the ring is empty, then back to the event loop for control messages.
    for (let bursts = 0; bursts < 64 && Atomics.load(control, Control.Stop) === 0; bursts++) {
      Atomics.add(control, Control.Heartbeat, 1);
      const n = inRing.dequeueBurst(incoming, 0, limit);
      if (n === 0) {
        // Woken by data: go on with it at once (an event-loop turn per wake-up costs more than the
        // burst). Timed out: back to the event loop, where ticks and snapshot requests wait.
        if (inRing.waitForData(init.spinPolls, 20)) continue;
        break;
      }
      batch.reset(n);
      let touched = 0;
      for (let i = 0; i < n; i++) {
        const d = i * DESCRIPTOR_WORDS;
        const slotAt = pool.slotOffset(incoming[d]);
        const length = Math.min(incoming[d + 1], pool.slotSize);
        batch.inputPort[i] = incoming[d + 2] & 0xffff;
        batch.length[i] = length;
        if (copy) {
          batch.at[i] = i * pool.slotSize;
          copyBytes(pool.bytes, slotAt, batch.bytes, batch.at[i], length);
        } else {
          batch.at[i] = slotAt;
          // A prefetch: the packet was last written on another core, and the NF's header reads
          // depend on each other, so each packet's first one waited for its cache line alone.
          // These loads are independent: the core fetches the burst's lines together.
          touched ^= pool.bytes[slotAt];
        }
      }
      prefetched.bytes ^= touched;
      seen.count = n;
      const thrown = guard.process(instance, seen, nowNs());
      if (thrown !== null && guard.total <= 3)
        post({
          type: 'log',
          message: `threw on a burst of ${n}, dropped as nf_exception: ${thrown.message}`,
        });
      let sentCount = 0;
      let droppedCount = 0;
      for (let i = 0; i < n; i++) {
        const d = i * DESCRIPTOR_WORDS;
        const verdict = batch.verdict[i];
        const length = batch.length[i];
        if (copy && verdict >= 0) {
          const slotAt = pool.slotOffset(incoming[d]);
          copyBytes(batch.bytes, batch.at[i], pool.bytes, slotAt, length);
        }
        const target = verdict >= 0 ? sent : dropped;
        const t = (verdict >= 0 ? sentCount++ : droppedCount++) * DESCRIPTOR_WORDS;
        target[t] = incoming[d];
        target[t + 1] = length;
        target[t + 2] = portFlags(incoming[d + 2], verdict >= 0 ? verdict : FLAG_DROP | (-1 - verdict));
        target[t + 3] = incoming[d + 3];
      }
      pushAll(outRing, sent, sentCount);
      pushAll(returnRing, dropped, droppedCount);
      Atomics.add(control, Control.Batches, 1);
      Atomics.add(control, Control.Packets, n);
    }
  };
  // The ring's sleep path, once, before the loop is hot (a sleep of 0 ms on a ring that is most
  // likely still empty): V8 compiles runBursts while the guest's ring is busy, and code compiled
  // before a path ever ran leaves through a deoptimization the first time it runs ("insufficient
  // type feedback", ~1 s into a run in each guest), then is compiled again on the guest's own
  // thread while its ring waits.
  inRing.waitForData(0, 0);
  const turn = (): void => {
    runBursts();
    if (Atomics.load(control, Control.Stop) === 0) setImmediate(turn);
    else port.close();
  };
  turn();
}

/**
 * Enqueues every descriptor; while the ring is full, sleeps until its consumer takes some (its
 * dequeue wakes us), looking at `control[Stop]` at least every FULL_RING_WAIT_MS.
 */
function pushAll(ring: DescriptorRing, descriptors: Uint32Array, count: number): void {
  let done = 0;
  while (done < count) {
    done += ring.enqueueBurst(descriptors, done, count - done);
    if (done < count) {
      if (Atomics.load(control, Control.Stop) !== 0) return;
      ring.waitForSpace(FULL_RING_WAIT_MS);
    }
  }
}

/** Where the prefetching loads' bytes go, so that the compiler keeps them (read by nothing else). */
const prefetched = { bytes: 0 };

/** The longest a guest sleeps on a full ring before looking at `control[Stop]` again. */
const FULL_RING_WAIT_MS = 5;

function requireRing<T>(ring: T | null): T {
  if (ring === null) throw new Error(`${init.mode} guest started without its rings`);
  return ring;
}

start().catch((error: unknown) => {
  const e = error as { code?: string; message?: string };
  post({ type: 'failed', error: { code: e.code, message: e.message ?? String(error) } });
  process.exit(1);
});
