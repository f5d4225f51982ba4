/**
 * Generated frames in memory for the benches that replay them (`modes`, `cores`): 64-byte and
 * IMIX TCP and UDP over 1,024 flows, seeded, so every run replays the same traffic.
 */
import { MAX_GENERATED_FRAME, TrafficGenerator } from '../src/io/traffic-generator.js';

/**
 * `count` frames packed at a stride of the largest one rounded up to a cache line: the memory port
 * plays a NIC, whose DMA costs the CPU nothing, so its copy should not be a cache miss per packet
 * (2048-byte strides spread 64-byte frames over 400 MB and made that copy a sixth of the host's time).
 */
export function packedFrames(
  frameSize: number | 'imix',
  count: number,
): { frames: Uint8Array; lengths: Uint16Array; stride: number } {
  const generator = new TrafficGenerator({
    seed: 7,
    packets: count,
    frameSize,
    flows: 1024,
    ipv6: 0,
    tcpSessions: false,
    mix: { tcp: 1, udp: 1, icmp: 0 },
  });
  const scratch = new Uint8Array(MAX_GENERATED_FRAME);
  const generated: Uint8Array[] = [];
  for (let i = 0; i < count; i++) generated.push(scratch.slice(0, generator.next(scratch, 0)));
  const stride = Math.ceil(generated.reduce((most, f) => Math.max(most, f.length), 0) / 64) * 64;
  const frames = new Uint8Array(count * stride);
  const lengths = new Uint16Array(count);
  generated.forEach((frame, i) => {
    frames.set(frame, i * stride);
    lengths[i] = frame.length;
  });
  return { frames, lengths, stride };
}
