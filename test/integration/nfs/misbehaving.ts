/**
 * A test NF that misbehaves on purpose: after `after` packets (counted since it was created) it
 * throws, hangs in a busy loop, allocates until its heap limit kills it, or lies about packet
 * lengths (what a compromised guest would hand the host); its snapshots, or every packet, can be made slow. Everything else is
 * passed on unchanged. Used to prove that a failing guest is contained and restarted.
 */
import { defineNf } from '../../../src/sdk/index.js';

interface MisbehavingConfig {
  failure: string;
  after: number;
  snapshotMs: number;
  pauseAfterSnapshotMs: number;
  slowUsPerPacket: number;
}

export default defineNf<MisbehavingConfig>({
  name: 'misbehaving',
  summary: 'Passes packets on, then fails in the configured way after a number of them.',
  outputs: ['out'],
  drops: {},
  counters: { seen: { unit: 'packets', description: 'packets seen by this incarnation' } },
  config: {
    failure: {
      type: 'string',
      enum: ['throw', 'poison', 'hang', 'stall', 'heap-bomb', 'lie', 'none'],
      default: 'none',
      description:
        'how to fail; poison: throw on one burst in every `after` packets; lie: claim packet lengths larger than any slot (a hostile guest)',
    },
    after: { type: 'integer', minimum: 1, default: 1000, description: 'packets before failing' },
    snapshotMs: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'how long snapshot() keeps the thread busy (a large state being copied)',
    },
    pauseAfterSnapshotMs: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description:
        'how long the thread stays busy after a snapshot has been sent, before its next heartbeat (a loaded machine)',
    },
    slowUsPerPacket: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'microseconds each packet holds the thread (asleep, so a test costs no CPU): a slow NF',
    },
  },
  create(config, ctx) {
    const seen = ctx.counter('seen');
    let count = 0;
    let stalled = false;
    const hoard: number[][] = [];
    let snapshots = 0;
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    return {
      snapshot() {
        const until = performance.now() + config.snapshotMs;
        while (performance.now() < until);
        // Runs once the answer has been posted, before the guest's loop beats again.
        if (config.pauseAfterSnapshotMs > 0)
          queueMicrotask(() =>
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, config.pauseAfterSnapshotMs),
          );
        return { snapshots: ++snapshots, count };
      },
      process(batch) {
        if (config.slowUsPerPacket > 0)
          Atomics.wait(sleeper, 0, 0, (batch.count * config.slowUsPerPacket) / 1000);
        const before = count;
        count += batch.count;
        // poison: one burst in every `after` packets throws (a query of death), the rest pass.
        if (config.failure === 'poison') {
          if (Math.floor(count / config.after) !== Math.floor(before / config.after))
            throw new Error('poison packet');
          return;
        }
        ctx.counters[seen] += batch.count;
        if (count < config.after) return;
        if (config.failure === 'throw') throw new Error('misbehaving: thrown on purpose');
        if (config.failure === 'hang') for (;;);
        // stall: stop consuming for 1.5 s once (a paused guest), then carry on normally.
        if (config.failure === 'stall' && !stalled) {
          stalled = true;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
        }
        if (config.failure === 'heap-bomb') for (;;) hoard.push(new Array<number>(1 << 20).fill(count));
        if (config.failure === 'lie') for (let i = 0; i < batch.count; i++) batch.length[i] = 1_000_000;
      },
    };
  },
});
