/**
 * Host ports: where packets enter and leave. An input port fills pool slots with frames (the
 * copy a NIC's DMA would make); an output port takes frames out of slots. Ports are the only
 * packet I/O the host does itself.
 */
import { createCaptureWriter, openCapture, type CaptureReader, type CaptureWriter } from '../io/capture.js';
import { copyBytes, MIN_CACHED_BYTES } from '../io/capture-buffer.js';
import { GenevePort } from '../io/geneve-port.js';
import { TapPort, type TapPortOptions } from '../io/tap-port.js';
import type { TunnelPort, TunnelPortOptions } from '../io/tunnel-port.js';
import { MAX_GENERATED_FRAME, TrafficGenerator, type GeneratorOptions } from '../io/traffic-generator.js';
import { VxlanPort } from '../io/vxlan-port.js';
import { LinkType } from '../packet/link-type.js';

export type PortPlan =
  | { kind: 'pcap-in'; path: string }
  | { kind: 'generator'; options: Partial<GeneratorOptions> }
  /** Frames already in memory (benchmarks): `frames[i * stride …]`, `lengths[i]` bytes each, replayed `rounds` times. */
  | { kind: 'memory'; frames: Uint8Array; lengths: Uint16Array; stride: number; rounds?: number }
  | { kind: 'pcap-out'; path: string; nanosecond?: boolean }
  /** A live tunnel endpoint: read and written; it never ends by itself (the host runs until stopped). */
  | { kind: 'vxlan' | 'geneve'; options: TunnelPortOptions }
  /** A TAP or TUN device (native addon): read and written like a tunnel port; never ends by itself. */
  | { kind: 'tap'; options: TapPortOptions }
  | { kind: 'sink' };

export interface InputPort {
  readonly name: string;
  readonly id: number;
  /**
   * Copies the next frame into `bytes[at..]` (at most `room` bytes); returns its length, 0 when
   * nothing is waiting now (a live port), or -1 when the port is finished.
   */
  next(bytes: Uint8Array, at: number, room: number): number;
  /** The last frame's link type and timestamp. */
  linkType: number;
  seconds: number;
  nanos: number;
  /**
   * The last frame's segment size when it is a TCP super-packet (a TAP port with offloads;
   * src/io/tcp-offload.ts), else 0.
   */
  segmentSize: number;
  /** Frames longer than a slot: counted and skipped. */
  oversize: number;
  close(): void;
}

export interface OutputPort {
  readonly name: string;
  readonly id: number;
  /** `segmentSize` > 0: a TCP super-packet, given only to a port whose `superPackets` is true. */
  write(bytes: Uint8Array, at: number, length: number, seconds: number, nanos: number, segmentSize?: number): void;
  /** Takes TCP super-packets whole (a TAP port with offloads); the host cuts them for the others. */
  readonly superPackets?: boolean;
  /** Reads no packet bytes (a sink): the host does not prefetch what it writes here. */
  readonly discards?: boolean;
  packets: number;
  bytes: number;
  close(): void;
}

/** A live port (tunnel endpoint or TAP/TUN device): one object is both the input and the output of its name. */
export type LivePort = TunnelPort | TapPort;
export type LivePortPlan = Extract<PortPlan, { kind: 'vxlan' | 'geneve' | 'tap' }>;

export function isLivePlan(plan: PortPlan): plan is LivePortPlan {
  return plan.kind === 'vxlan' || plan.kind === 'geneve' || plan.kind === 'tap';
}

/** Builds a live port; nothing is opened until its `open()`. */
export function createLivePort(name: string, id: number, plan: LivePortPlan): LivePort {
  if (plan.kind === 'tap') return new TapPort({ ...plan.options, name, id });
  return createTunnelPort(name, id, plan);
}

/** A live tunnel port: one object is both the input and the output of its name. */
export function createTunnelPort(
  name: string,
  id: number,
  plan: Extract<PortPlan, { kind: 'vxlan' | 'geneve' }>,
): TunnelPort {
  const options = { ...plan.options, name, id };
  return plan.kind === 'vxlan' ? new VxlanPort(options) : new GenevePort(options);
}

export function openInputPort(name: string, id: number, plan: PortPlan): InputPort {
  if (plan.kind === 'pcap-in') return new CaptureInput(name, id, openCapture(plan.path));
  if (plan.kind === 'generator') return new GeneratorInput(name, id, new TrafficGenerator(plan.options));
  if (plan.kind === 'memory')
    return new MemoryInput(name, id, plan.frames, plan.lengths, plan.stride, plan.rounds ?? 1);
  throw new Error(`port ${name} cannot be read`);
}

export function openOutputPort(name: string, id: number, plan: PortPlan): OutputPort {
  if (plan.kind === 'pcap-out') {
    return new CaptureOutput(
      name,
      id,
      createCaptureWriter(plan.path, {
        format: plan.path.endsWith('.pcapng') ? 'pcapng' : 'pcap',
        nanosecond: plan.nanosecond ?? true,
      }),
    );
  }
  if (plan.kind === 'sink') return new SinkOutput(name, id);
  throw new Error(`port ${name} cannot be written`);
}

class CaptureInput implements InputPort {
  linkType: number = LinkType.Ethernet;
  seconds = 0;
  nanos = 0;
  segmentSize = 0;
  oversize = 0;
  constructor(
    readonly name: string,
    readonly id: number,
    private readonly reader: CaptureReader,
  ) {}
  next(bytes: Uint8Array, at: number, room: number): number {
    const r = this.reader;
    for (;;) {
      if (!r.next()) return -1;
      if (r.capturedLength > room) {
        this.oversize++;
        continue;
      }
      copyBytes(r.bytes, r.at, bytes, at, r.capturedLength);
      this.linkType = r.linkType;
      this.seconds = r.timestampSeconds;
      this.nanos = r.timestampNanos;
      return r.capturedLength;
    }
  }
  close(): void {
    this.reader.close();
  }
}

class GeneratorInput implements InputPort {
  linkType: number = LinkType.Ethernet;
  seconds = 0;
  nanos = 0;
  segmentSize = 0;
  oversize = 0;
  /**
   * Where a frame is made when a slot may be too small for the largest one; as large as copyBytes
   * needs to copy a short frame into the pool word by word (smaller, a 64-byte frame went through
   * a view object: 70 bytes of garbage a packet with 2 KiB slots).
   */
  private readonly frame = new Uint8Array(Math.max(MAX_GENERATED_FRAME, MIN_CACHED_BYTES));
  constructor(
    readonly name: string,
    readonly id: number,
    private readonly generator: TrafficGenerator,
  ) {}
  next(bytes: Uint8Array, at: number, room: number): number {
    for (;;) {
      const length = this.generator.next(
        room >= MAX_GENERATED_FRAME ? bytes : this.frame,
        room >= MAX_GENERATED_FRAME ? at : 0,
      );
      if (length === 0) return -1;
      this.seconds = this.generator.info.timestampSeconds;
      this.nanos = this.generator.info.timestampNanos;
      if (room >= MAX_GENERATED_FRAME) return length;
      if (length > room) {
        this.oversize++;
        continue;
      }
      copyBytes(this.frame, 0, bytes, at, length);
      return length;
    }
  }
  close(): void {}
}

class MemoryInput implements InputPort {
  linkType: number = LinkType.Ethernet;
  seconds = 0;
  nanos = 0;
  segmentSize = 0;
  oversize = 0;
  private index = 0;
  private round = 0;
  constructor(
    readonly name: string,
    readonly id: number,
    private readonly frames: Uint8Array,
    private readonly lengths: Uint16Array,
    private readonly stride: number,
    private readonly rounds: number,
  ) {}
  next(bytes: Uint8Array, at: number, room: number): number {
    for (;;) {
      if (this.index === this.lengths.length) {
        this.index = 0;
        if (++this.round >= this.rounds) return -1;
      }
      const i = this.index++;
      const length = this.lengths[i];
      if (length > room) {
        this.oversize++;
        continue;
      }
      // The copy a NIC's DMA makes into the pool (no view object for small frames).
      copyBytes(this.frames, i * this.stride, bytes, at, length);
      this.nanos = i;
      return length;
    }
  }
  close(): void {}
}

class CaptureOutput implements OutputPort {
  packets = 0;
  bytes = 0;
  constructor(
    readonly name: string,
    readonly id: number,
    private readonly writer: CaptureWriter,
  ) {}
  write(bytes: Uint8Array, at: number, length: number, seconds: number, nanos: number): void {
    this.writer.writePacket(bytes, at, length, seconds, nanos);
    this.packets++;
    this.bytes += length;
  }
  close(): void {
    this.writer.close();
  }
}

class SinkOutput implements OutputPort {
  readonly discards = true;
  packets = 0;
  bytes = 0;
  constructor(
    readonly name: string,
    readonly id: number,
  ) {}
  write(_bytes: Uint8Array, _at: number, length: number): void {
    this.packets++;
    this.bytes += length;
  }
  close(): void {}
}
