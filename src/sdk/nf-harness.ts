/**
 * Runs one NF in the test's own thread, the way the host's `inline` placement does, on packets
 * given as byte arrays: for NF unit tests and examples. Packets sit in one buffer at slot-sized
 * strides, at a non-zero offset, as they do in the pool.
 *
 * @example
 * const nf = new NfHarness(firewall, { default: 'drop', rules: [] });
 * const [result] = nf.run([frame]);
 * assert.equal(result.drop, 'no_match');
 */
import {
  checkNfConfig,
  createNfContext,
  MAX_EMITS_PER_TICK,
  type NfDefinition,
  type NfInstance,
} from './define-nf.js';
import { MAX_BATCH, PacketBatch } from './packet-batch.js';

export interface HarnessResult {
  /** The output the packet was sent to, or undefined when dropped. */
  output?: string;
  /** The drop reason, or undefined when sent. */
  drop?: string;
  /** The packet's bytes after the NF (rewrites included). */
  bytes: Uint8Array;
}

const HEADROOM = 64;

export class NfHarness<Config> {
  readonly instance: NfInstance;
  readonly counterValues: Float64Array;
  readonly logs: string[] = [];
  /** Packets the NF made with `ctx.emit`, in order (a test takes them with `takeEmitted`). */
  readonly emitted: HarnessResult[] = [];
  private readonly batch: PacketBatch;
  private emittedSinceTick = 0;

  constructor(
    readonly definition: NfDefinition<Config>,
    rawConfig: unknown,
    options: { slotSize?: number; replica?: number; replicas?: number } = {},
  ) {
    const { value, errors } = checkNfConfig(definition, rawConfig);
    if (errors.length > 0) {
      throw new Error(
        `${definition.name} config: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
      );
    }
    const slotSize = options.slotSize ?? 2048;
    this.batch = new PacketBatch(new Uint8Array(HEADROOM + MAX_BATCH * slotSize), slotSize);
    this.counterValues = new Float64Array(Object.keys(definition.counters).length);
    const ctx = createNfContext(
      definition,
      'test',
      options.replica ?? 0,
      options.replicas ?? 1,
      (message) => this.logs.push(message),
      this.counterValues,
      (bytes, at, length, output) => {
        if (this.emittedSinceTick >= MAX_EMITS_PER_TICK || length > slotSize) return false;
        this.emittedSinceTick++;
        this.emitted.push({ output: definition.outputs[output], bytes: bytes.slice(at, at + length) });
        return true;
      },
    );
    this.instance = definition.create(value as Config, ctx);
  }

  /** Runs `packets` through the NF in bursts of at most MAX_BATCH; returns each packet's fate. */
  run(packets: readonly Uint8Array[], now = 0, inputPort = 0): HarnessResult[] {
    const results: HarnessResult[] = [];
    const { batch } = this;
    const drops = Object.keys(this.definition.drops);
    for (let start = 0; start < packets.length; start += MAX_BATCH) {
      const count = Math.min(MAX_BATCH, packets.length - start);
      batch.reset(count);
      for (let i = 0; i < count; i++) {
        const packet = packets[start + i];
        if (packet.length > batch.capacity)
          throw new Error(`packet ${start + i} is larger than the slot size`);
        batch.at[i] = HEADROOM + i * batch.capacity;
        batch.length[i] = packet.length;
        batch.inputPort[i] = inputPort;
        batch.bytes.set(packet, batch.at[i]);
      }
      this.instance.process(batch, now);
      for (let i = 0; i < count; i++) {
        const verdict = batch.verdict[i];
        const bytes = batch.bytes.slice(batch.at[i], batch.at[i] + batch.length[i]);
        if (verdict >= 0) results.push({ output: this.definition.outputs[verdict] ?? `#${verdict}`, bytes });
        else results.push({ drop: drops[-1 - verdict] ?? `#${-1 - verdict}`, bytes });
      }
    }
    return results;
  }

  /** Calls the NF's `tick(now)` as the host does between bursts (and renews its emit budget). */
  tick(now: number): void {
    this.emittedSinceTick = 0;
    this.instance.tick?.(now);
  }

  /** The packets emitted since the last call, oldest first. */
  takeEmitted(): HarnessResult[] {
    return this.emitted.splice(0, this.emitted.length);
  }

  /** The counters by name. */
  counters(): Record<string, number> {
    const names = Object.keys(this.definition.counters);
    return Object.fromEntries(names.map((name, i) => [name, this.counterValues[i]]));
  }
}
