import type { PortPlan } from '../../src/host/ports.js';
import { TrafficGenerator, type GeneratorOptions } from '../../src/io/traffic-generator.js';

/**
 * A memory port replaying `count` generated frames (one per 2 KiB stride) until the test stops the
 * host: an input that never runs dry. `options` go to the generator (`packets` is `count`).
 * @example ports: { in: endlessMemoryPort(256, { seed: 3, tcpSessions: false }), out: { kind: 'sink' } }
 */
export function endlessMemoryPort(count: number, options: Partial<GeneratorOptions>): PortPlan {
  const generator = new TrafficGenerator({ ...options, packets: count });
  const frames = new Uint8Array(count * 2048);
  const lengths = new Uint16Array(count);
  for (let i = 0; i < count; i++) lengths[i] = generator.next(frames, i * 2048);
  return { kind: 'memory', frames, lengths, stride: 2048, rounds: 1e9 };
}
