/**
 * `mem` bench part: descriptor rings between threads, on the machine it runs on.
 *
 *   one thread           enqueue + dequeue bursts of 32 on one thread: the copy and cursor cost alone.
 *   main → worker        the main thread produces descriptors in bursts of 1, 8, 32, 128 into one
 *                        ring; a worker drains it (adaptive polling, then Atomics.wait). Mdesc/s
 *                        from the first enqueue until the worker has released the last entry.
 *   … consumer sleeps    burst 32 with the worker going to sleep as soon as the ring is empty
 *                        (spinPolls 0): what a wake-up per burst costs.
 *   host → worker → host one descriptor in flight (µs per round trip), then bursts of 32 with up
 *                        to 512 in flight (Mdesc/s back at the host).
 *
 * Every figure is the best of ROUNDS runs; each run is bounded by a count and a 3 s deadline (a run
 * cut short reports the rate of what it moved, marked DEADLINE, and ends the rounds). This file
 * is also its own worker script: loaded in a worker with `workerData.memBench`, it plays the
 * consumer or echo side.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { DESCRIPTOR_WORDS, Desc, DescriptorRing, type DescriptorRingShared } from '../src/mem/index.js';

const CAPACITY = 1024;
const ROUNDS = 3;
const DEADLINE_MS = 3000;

interface WorkerJob {
  role: 'drain' | 'echo';
  input: DescriptorRingShared;
  output?: DescriptorRingShared;
  total: number;
  spinPolls: number;
  deadline: number;
}

interface WorkerReport {
  moved: number;
  checksum: number;
  sleeps: number;
}

// ── worker side ─────────────────────────────────────────────────────────────────────────────────

function runWorker(job: WorkerJob): void {
  const input = DescriptorRing.attach(job.input);
  const output = job.output ? DescriptorRing.attach(job.output) : null;
  const burst = new Uint32Array(256 * DESCRIPTOR_WORDS);
  let moved = 0;
  let checksum = 0;
  parentPort?.postMessage('ready');
  while (moved < job.total) {
    if (!input.waitForData(job.spinPolls, 50)) {
      if (Date.now() > job.deadline) break;
      continue;
    }
    const n = input.dequeueBurst(burst, 0, 256);
    for (let i = 0; i < n; i++) checksum = (checksum + burst[i * DESCRIPTOR_WORDS + Desc.Meta]) | 0;
    if (output) {
      let done = 0;
      while (done < n) {
        done += output.enqueueBurst(burst, done, n - done);
        if (done < n && Date.now() > job.deadline) break;
      }
    }
    moved += n;
  }
  const report: WorkerReport = { moved, checksum, sleeps: input.stats().sleeps };
  parentPort?.postMessage(report);
}

// ── main side ───────────────────────────────────────────────────────────────────────────────────

interface Started {
  worker: Worker;
  report: Promise<WorkerReport>;
}

async function startWorker(job: WorkerJob): Promise<Started> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { memBench: job } });
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const report = new Promise<WorkerReport>((resolve, reject) => {
    worker.on('message', (m: 'ready' | WorkerReport) => (m === 'ready' ? ready() : resolve(m)));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`bench worker exited (${code})`)));
  });
  report.catch(() => undefined);
  await Promise.race([isReady, report]);
  return { worker, report };
}

function elapsed(started: number): number {
  return (performance.now() - started) / 1000;
}

/**
 * Producer on the main thread: `total` descriptors in bursts of `burst`, until the consumer has
 * released them all or the deadline passes; returns seconds.
 */
function produce(ring: DescriptorRing, total: number, burst: number, deadline: number): number {
  const src = new Uint32Array(burst * DESCRIPTOR_WORDS);
  const started = performance.now();
  let seq = 0;
  let checks = 0;
  while (seq < total) {
    const n = Math.min(burst, total - seq);
    for (let i = 0; i < n; i++) {
      const d = i * DESCRIPTOR_WORDS;
      src[d + Desc.Slot] = (seq + i) & 4095;
      src[d + Desc.Length] = 64;
      src[d + Desc.Meta] = seq + i;
    }
    let done = 0;
    while (done < n) {
      done += ring.enqueueBurst(src, done, n - done);
      if (done < n && (++checks & 0xffff) === 0 && Date.now() > deadline) return elapsed(started);
    }
    seq += n;
  }
  // Done when the consumer has released every entry.
  while (ring.freeSpace() < ring.capacity) {
    if ((++checks & 0xffff) === 0 && Date.now() > deadline) break;
  }
  return elapsed(started);
}

function line(name: string, value: number, unit: string, note: string): void {
  const shown = value >= 100 ? value.toFixed(0) : value.toFixed(2);
  console.log(`  ${name.padEnd(52)}${shown.padStart(9)} ${unit.padEnd(8)}  ${note}`);
}

async function oneWay(
  total: number,
  burst: number,
  spinPolls: number,
): Promise<{ rate: number; note: string }> {
  let best = 0;
  let note = '';
  for (let round = 0; round < ROUNDS; round++) {
    const ring = DescriptorRing.create(CAPACITY);
    const deadline = Date.now() + DEADLINE_MS;
    const w = await startWorker({ role: 'drain', input: ring.shared, total, spinPolls, deadline });
    try {
      const seconds = produce(ring, total, burst, deadline);
      const report = await w.report;
      const s = ring.stats();
      const complete = s.dequeued === total;
      const expected = Number(((BigInt(total) * BigInt(total - 1)) / 2n) & 0xffffffffn) | 0;
      if (complete && report.checksum !== expected) throw new Error('mem bench: descriptors garbled');
      const rate = s.dequeued / seconds / 1e6;
      if (rate > best) {
        best = rate;
        note =
          `(${s.dequeued} desc in ${seconds.toFixed(3)} s${complete ? '' : ', DEADLINE'}; ` +
          `${s.sleeps} sleeps, ${s.wakeups} wakeups)`;
      }
      if (!complete) break;
    } finally {
      await w.worker.terminate();
    }
  }
  return { rate: best, note };
}

/** Host → worker → host with at most `window` in flight, in bursts of `burst`, until `total` or the deadline. */
function roundTrips(
  there: DescriptorRing,
  back: DescriptorRing,
  total: number,
  burst: number,
  window: number,
  deadline: number,
): { seconds: number; received: number } {
  const src = new Uint32Array(burst * DESCRIPTOR_WORDS);
  const rx = new Uint32Array(256 * DESCRIPTOR_WORDS);
  const started = performance.now();
  let sent = 0;
  let received = 0;
  let checks = 0;
  while (received < total) {
    const room = Math.min(burst, total - sent, window - (sent - received));
    if (room > 0) {
      for (let i = 0; i < room; i++) src[i * DESCRIPTOR_WORDS + Desc.Meta] = sent + i;
      sent += there.enqueueBurst(src, 0, room);
    }
    const n = back.dequeueBurst(rx, 0, 256);
    for (let i = 0; i < n; i++) {
      if (rx[i * DESCRIPTOR_WORDS + Desc.Meta] !== received + i) throw new Error('mem bench: reordered');
    }
    received += n;
    if ((++checks & 0xffff) === 0 && Date.now() > deadline) break;
  }
  return { seconds: elapsed(started), received };
}

/** Best of ROUNDS: descriptors back at the host per second, and whether every run completed. */
async function roundTrip(
  total: number,
  burst: number,
  window: number,
): Promise<{ rate: number; note: string }> {
  let best = 0;
  let note = '';
  for (let round = 0; round < ROUNDS; round++) {
    const there = DescriptorRing.create(CAPACITY);
    const back = DescriptorRing.create(CAPACITY);
    const deadline = Date.now() + DEADLINE_MS;
    const w = await startWorker({
      role: 'echo',
      input: there.shared,
      output: back.shared,
      total,
      spinPolls: 1000,
      deadline,
    });
    try {
      const { seconds, received } = roundTrips(there, back, total, burst, window, deadline);
      await w.report;
      const rate = received / seconds;
      if (rate > best) {
        best = rate;
        note = `(${received} desc in ${seconds.toFixed(3)} s${received === total ? '' : ', DEADLINE'})`;
      }
      if (received < total) break;
    } finally {
      await w.worker.terminate();
    }
  }
  return { rate: best, note };
}

/** The ring's own cost with no second thread: enqueue then dequeue bursts of 32 on one thread. */
function sameThread(total: number): { rate: number; note: string } {
  const ring = DescriptorRing.create(CAPACITY);
  const src = new Uint32Array(32 * DESCRIPTOR_WORDS);
  const dst = new Uint32Array(32 * DESCRIPTOR_WORDS);
  let best = Infinity;
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (let moved = 0; moved < total; moved += 32) {
      src[Desc.Meta] = moved;
      ring.enqueueBurst(src, 0, 32);
      sink ^= ring.dequeueBurst(dst, 0, 32) + dst[Desc.Meta];
    }
    best = Math.min(best, elapsed(started));
  }
  return {
    rate: total / best / 1e6,
    note: `(${total} desc in ${best.toFixed(3)} s${sink === 0.5 ? '' : ''})`,
  };
}

export async function benchMem(): Promise<void> {
  console.log(`mem: descriptor rings between threads (capacity ${CAPACITY}), best of ${ROUNDS} rounds`);
  const alone = sameThread(8_000_000);
  line('one thread, enqueue + dequeue, burst 32 (no sharing)', alone.rate, 'Mdesc/s', alone.note);
  for (const [burst, total] of [
    [1, 500_000],
    [8, 2_000_000],
    [32, 4_000_000],
    [128, 4_000_000],
  ] as const) {
    const { rate, note } = await oneWay(total, burst, 1000);
    line(`main → worker, burst ${burst}`, rate, 'Mdesc/s', note);
  }
  const sleepy = await oneWay(2_000_000, 32, 0);
  line('main → worker, burst 32, consumer sleeps when empty', sleepy.rate, 'Mdesc/s', sleepy.note);

  const ping = await roundTrip(100_000, 1, 1);
  line('host → worker → host, 1 in flight', 1e6 / ping.rate, 'µs/trip', ping.note);
  const echo = await roundTrip(4_000_000, 32, 512);
  line('host → worker → host, bursts of 32, ≤ 512 in flight', echo.rate / 1e6, 'Mdesc/s', echo.note);
}

if (!isMainThread && (workerData as { memBench?: WorkerJob } | null)?.memBench) {
  runWorker((workerData as { memBench: WorkerJob }).memBench);
}
