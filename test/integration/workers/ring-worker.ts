/**
 * A guest stand-in for the memory stress tests: one thread playing one role on descriptor rings
 * attached from shared memory, checking every descriptor it sees and reporting once at the end.
 *
 *   source   makes `total` descriptors (meta = sequence number, slot = seq mod slotCount of the
 *            slots the host lent it), stamps each slot's first word with the sequence number, and
 *            enqueues them to `output` in seeded random bursts of 1 … `burst`
 *   forward  dequeues from `input`, checks order (meta), payload (slot word 0 = meta, word 1 =
 *            stage − 1), stamps word 1 = stage, and enqueues everything to `output`
 *   sink     dequeues from `input` and checks like `forward`, with word 1 left alone (0)
 *
 * The consumer side sleeps with `waitForData` (adaptive polling), the producer side backs off with
 * short timed sleeps when `output` is full, and every loop stops at `deadline` (epoch ms).
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  BufferPool,
  DESCRIPTOR_WORDS,
  Desc,
  DescriptorRing,
  type BufferPoolShared,
  type DescriptorRingShared,
} from '../../../src/mem/index.js';

export interface RingWorkerData {
  role: 'source' | 'forward' | 'sink';
  pool: BufferPoolShared;
  input?: DescriptorRingShared;
  output?: DescriptorRingShared;
  /** Descriptors to move; the worker reports after this many. */
  total: number;
  /** Stage number of a `forward` (1, 2, …): the value it expects in word 1 is stage − 1. */
  stage: number;
  /** Largest burst, and the seed of the random burst sizes. */
  burst: number;
  seed: number;
  spinPolls: number;
  deadline: number;
}

export interface RingWorkerResult {
  role: string;
  moved: number;
  errors: number;
  firstError: string | null;
  timedOut: boolean;
  invalid: number;
  sleeps: number;
  fullBackoffs: number;
}

const data = workerData as RingWorkerData;
const pool = BufferPool.attach(data.pool);
const words = new Uint32Array(pool.bytes.buffer, pool.bytes.byteOffset, pool.bytes.byteLength / 4);
const slotWords = pool.slotSize / 4;
const input = data.input ? DescriptorRing.attach(data.input) : null;
const output = data.output ? DescriptorRing.attach(data.output) : null;
const burst = new Uint32Array(data.burst * DESCRIPTOR_WORDS);
const nap = new Int32Array(new SharedArrayBuffer(4));
let random = data.seed | 1;
let errors = 0;
let firstError: string | null = null;
let timedOut = false;
let fullBackoffs = 0;

function nextBurst(): number {
  random ^= random << 13;
  random ^= random >>> 17;
  random ^= random << 5;
  return ((random >>> 0) % data.burst) + 1;
}

function fail(message: string): void {
  if (errors++ === 0) firstError = message;
}

/** Enqueues all of `burst[0 … n)`, backing off while `output` is full. False past the deadline. */
function sendAll(ring: DescriptorRing, n: number): boolean {
  let done = 0;
  let tries = 0;
  while (done < n) {
    const sent = ring.enqueueBurst(burst, done, n - done);
    done += sent;
    if (sent > 0) {
      tries = 0;
      continue;
    }
    fullBackoffs++;
    if (++tries > 256) {
      Atomics.wait(nap, 0, 0, 0.05);
      if (Date.now() > data.deadline) return false;
    }
  }
  return true;
}

function source(ring: DescriptorRing): number {
  let seq = 0;
  while (seq < data.total) {
    const n = Math.min(nextBurst(), data.total - seq);
    for (let i = 0; i < n; i++) {
      const slot = (seq + i) % pool.slotCount;
      words[slot * slotWords] = seq + i;
      const d = i * DESCRIPTOR_WORDS;
      burst[d + Desc.Slot] = slot;
      burst[d + Desc.Length] = 64;
      burst[d + Desc.PortFlags] = 0;
      burst[d + Desc.Meta] = seq + i;
    }
    if (!sendAll(ring, n)) {
      timedOut = true;
      break;
    }
    seq += n;
  }
  return seq;
}

function consume(ring: DescriptorRing, out: DescriptorRing | null): number {
  const expectMark = data.role === 'forward' ? data.stage - 1 : 0;
  let expected = 0;
  while (expected < data.total) {
    if (!ring.waitForData(data.spinPolls, 20)) {
      if (Date.now() > data.deadline) {
        timedOut = true;
        break;
      }
      continue;
    }
    const n = ring.dequeueBurst(burst, 0, nextBurst());
    for (let i = 0; i < n; i++) {
      const d = i * DESCRIPTOR_WORDS;
      const slot = burst[d + Desc.Slot];
      const seq = burst[d + Desc.Meta];
      if (seq !== expected + i) fail(`expected sequence ${expected + i}, got ${seq}`);
      if (slot >= pool.slotCount) {
        fail(`slot ${slot} out of range`);
        continue;
      }
      const w = slot * slotWords;
      if (words[w] !== seq) fail(`slot ${slot} holds ${words[w]}, descriptor says ${seq}`);
      if (out !== null) {
        if (words[w + 1] !== expectMark) fail(`slot ${slot} mark ${words[w + 1]}, expected ${expectMark}`);
        words[w + 1] = data.stage;
      }
    }
    if (out !== null && !sendAll(out, n)) {
      timedOut = true;
      break;
    }
    expected += n;
  }
  return expected;
}

let moved = 0;
if (data.role === 'source' && output) moved = source(output);
else if (input) moved = consume(input, data.role === 'forward' ? output : null);
else fail(`role ${data.role} without its rings`);

const result: RingWorkerResult = {
  role: data.role,
  moved,
  errors,
  firstError,
  timedOut,
  invalid: (input?.invalid() ?? 0) + (output?.invalid() ?? 0),
  sleeps: input?.stats().sleeps ?? 0,
  fullBackoffs,
};
parentPort?.postMessage(result);
