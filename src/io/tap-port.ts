/**
 * A Linux TAP or TUN device as a live port, through nfvisor's native addon (native/nfvisor_io.c):
 * the way a hypervisor gives a VM a NIC. The port creates (or attaches to) the device with
 * IFF_NO_PI, non-blocking; the device lives as long as the port holds it open, and what is done
 * with it — addresses, `ip link set up`, moving it into a namespace (the fd keeps working) — is the
 * operator's business.
 *
 * Receive batch (one producer: `receiveBatch`, called by `next()` when the batch is used up or by
 * the readability watch; one consumer: `next()`; both on the main thread):
 *
 *     frames  [ slot 0 | slot 1 | ... | slot B-1 ]   B × slotSize bytes, allocated once
 *     frameAt, lengths, per queued frame: where it lies and how long it is
 *                  ^ head              ^ count
 *
 *   invariant: 0 ≤ head ≤ count ≤ B; frames head … count-1 are not yet read. A batch is read only
 *   when every frame of the last one was taken (head = count), so nothing is overwritten: when the
 *   consumer is slow, frames wait in the kernel's device queue (txqueuelen), which drops and counts
 *   them itself.
 *
 * One `readFrames` call reads up to a batch (one read() each: a TAP fd has no recvmmsg), straight
 * into the slots, with no JS object per frame. Sends are staged and leave in one `writeFrames` call
 * when a batch fills or at the next microtask. When a read finds the device empty, a one-shot
 * event-loop watch (uv_poll) is armed and calls `onReadable` when frames arrive: no busy polling.
 *
 * TUN mode: a TUN device carries bare IP packets. The port presents them to chains as Ethernet
 * frames, so every NF sees one link type: on receive it writes a synthesized header before the
 * packet — destination `TUN_NFVISOR_MAC`, source `TUN_DEVICE_MAC`, EtherType from the IP version
 * nibble (4 → 0x0800, 6 → 0x86DD; anything else is counted in `rx_not_ip` and dropped); on send it
 * strips the 14-byte header and writes the IP packet, whatever the MAC addresses (frames with
 * another EtherType — ARP, VLAN tags — are counted in `tx_not_ip` and dropped).
 *
 * Offloads (`offload: true`): the device is opened with a virtio-net header before every frame and
 * the kernel's TSO and checksum offloads (IFF_VNET_HDR, TUNSETOFFLOAD), as vhost-net serves a VM's
 * virtio NIC: a TCP stream reaches the port as super-packets of up to 64 KiB (`segmentSize` says
 * the MSS they stand for) instead of one frame per segment, and leaves the same way, the kernel
 * cutting or delivering them whole (tcp-offload.ts). A checksum the kernel left partial on an
 * ordinary frame is completed on receipt, so chains see complete checksums on every frame but
 * super-packets. Slots must then hold a whole super-packet (SUPER_PACKET_SLOT_SIZE, the default).
 *
 *     slot i (offload):  [ virtio-net header | frame ... ]     the frame starts 10 bytes in
 *     slot i (TUN):      [ … | synthesized Ethernet | virtio-net header read here, then the IP packet ]
 *                        (the header is read, then the Ethernet header written over its place)
 *
 * @example
 * const port = new TapPort({ device: 'nfv-tap0', mode: 'tap' });
 * await port.open(); // NFV_ERR_IO naming the port: no addon, EPERM, /dev/net/tun missing, EBUSY
 * port.onReadable = () => { let n; while ((n = port.next(buf, 0, buf.length)) > 0) other.write(buf, 0, n, 0, 0); };
 */
import { copyBytes } from './capture-buffer.js';
import {
  completePartialChecksum,
  MIN_SEGMENT_SIZE,
  partialChecksum,
  SUPER_PACKET_SLOT_SIZE,
  SuperPacketShape,
  VNET_HEADER_LENGTH,
  VnetField,
  VnetFlag,
  VnetGso,
} from './tcp-offload.js';
import { NfvError } from '../errors.js';
import { EtherType } from '../packet/ip-protocol.js';
import { LinkType } from '../packet/link-type.js';
import {
  addonUnavailableReason,
  explainErrno,
  loadNativeAddon,
  MAX_NATIVE_BATCH,
  type NativeAddon,
  type NativeWatch,
} from './native-addon.js';

export interface TapPortOptions {
  /** Port name, used in error messages and by the host. */
  name?: string;
  /** Port id for the host's classifier. */
  id?: number;
  /** Interface name (≤ 15 bytes); a name with `%d` (or '') lets the kernel number it (`tap%d`). */
  device: string;
  /** 'tap' (Ethernet frames, the default) or 'tun' (IP packets; see the module comment). */
  mode?: 'tap' | 'tun';
  /** Frames per receive batch and per send batch (default 64, ≤ 256). */
  batch?: number;
  /** Bytes per slot: the largest frame accepted (default 9216, with `offload` SUPER_PACKET_SLOT_SIZE). */
  slotSize?: number;
  /**
   * TSO and checksum offloads with the kernel (virtio-net header; see the module comment). Default
   * false.
   */
  offload?: boolean;
  /**
   * The device's queue of frames waiting for this port (its txqueuelen), set when the port opens
   * it: what arrives while the host is busy or asleep waits here instead of being dropped. Default
   * DEFAULT_TAP_QUEUE_LENGTH (the kernel gives a new TAP device 1,000).
   */
  queueLength?: number;
  /** Wall clock in milliseconds since the epoch, for arrival timestamps. */
  clock?: () => number;
}

/** The counters of a TAP/TUN port; tests and the host read them. */
export interface TapCounters {
  /** Frames read from the device and queued. */
  rx: number;
  /** Frames the device accepted. */
  tx: number;
  /** Reads the device refused (other than "nothing now"). */
  rx_errors: number;
  /** Frames the device refused (link down, malformed for the kernel) or too large for a slot. */
  tx_errors: number;
  /** TUN: packets whose IP version nibble is neither 4 nor 6 (no Ethernet header can say what they are). */
  rx_not_ip: number;
  /** TUN: frames to send that are not IPv4/IPv6 over Ethernet (ARP, VLAN-tagged, shorter than 14 bytes). */
  tx_not_ip: number;
  /** Offload: frames whose virtio-net header was unusable (a GSO type other than TCP, a checksum outside the frame). */
  rx_bad_offload: number;
  /** Offload: TCP super-packets received (each counted once in `rx` too). */
  rx_super: number;
  /** Offload: TCP super-packets handed to the device whole. */
  tx_super: number;
}

/** Source address of the Ethernet header a TUN port puts before received packets: the device. */
export const TUN_DEVICE_MAC = Uint8Array.of(0x02, 0x6e, 0x66, 0x76, 0x00, 0x01);
/** Destination address of that header: nfvisor. */
export const TUN_NFVISOR_MAC = Uint8Array.of(0x02, 0x6e, 0x66, 0x76, 0x00, 0x00);

const ETHERNET_HEADER = 14;
const ETHERTYPE_AT = 12;
const DEFAULT_BATCH = 64;
/** The fewest frames a read asks for after one that found few. */
const MIN_READ_AHEAD = 8;
const DEFAULT_SLOT_SIZE = 9216;
const MAX_SLOT_SIZE = SUPER_PACKET_SLOT_SIZE;
const TCP_CHECKSUM_OFFSET = 16;
const TCP_FLAGS_OFFSET = 13;
const TCP_CWR = 0x80;
/**
 * Frames a TAP device holds for the port by default: 4,096 (~40 ms at 100 kpps), where the kernel
 * gives a new device 1,000. Through the live testbed's TAP chain, inline, 3 alternating pairs
 * (2026-12-07 01:00): 167–196 kpps delivered under overload with 1,000, 287–343 with 4,096; its
 * throughput (≤ 0.1 % loss) 146–168 against 159–215. A host woken late (this 2-core VM halts an
 * idle vCPU) loses less of what arrived meanwhile.
 */
export const DEFAULT_TAP_QUEUE_LENGTH = 4096;
const MAX_TAP_QUEUE_LENGTH = 1 << 20;
const IFNAMSIZ_MAX = 15;
const NS_PER_MS = 1e6;
const MS_PER_S = 1000;

const defaultClock = (): number => performance.timeOrigin + performance.now();

export class TapPort {
  readonly name: string;
  readonly id: number;
  readonly mode: 'tap' | 'tun';
  /** Frames are Ethernet (TUN packets get a synthesized header). */
  linkType: number = LinkType.Ethernet;
  seconds = 0;
  nanos = 0;
  /** Frames longer than a slot (on receipt) or than `room` (in `next()`): counted and dropped. */
  oversize = 0;
  /** Frames handed to `write()` and their bytes (the host's output-port counters). */
  packets = 0;
  bytes = 0;
  readonly counters: TapCounters = {
    rx: 0,
    tx: 0,
    rx_errors: 0,
    tx_errors: 0,
    rx_not_ip: 0,
    tx_not_ip: 0,
    rx_bad_offload: 0,
    rx_super: 0,
    tx_super: 0,
  };
  /** Offloads on: the port takes TCP super-packets whole (the host's output check). */
  readonly superPackets: boolean;
  /** The last frame `next()` returned: its segment size when it is a TCP super-packet, else 0. */
  segmentSize = 0;
  /** Called when frames are waiting and the batch was empty (once per empty → non-empty transition). */
  onReadable: (() => void) | null = null;

  private readonly device: string;
  private readonly batch: number;
  private readonly slotSize: number;
  private readonly queueLength: number;
  private readonly clock: () => number;
  /** Where a frame's bytes are read to in its slot: after the synthesized header in TUN mode. */
  private readonly readShift: number;
  /** Bytes of virtio-net header before each frame read or written: 10 with offloads, else 0. */
  private readonly vnetLength: number;
  private readonly shape = new SuperPacketShape();
  private readonly frames: Uint8Array;
  private readonly readOffsets: Uint32Array;
  private readonly readLengths: Uint32Array;
  private readonly frameAt: Uint32Array;
  private readonly lengths: Uint32Array;
  private readonly segmentSizes: Uint16Array;
  private head = 0;
  private count = 0;
  /** Frames the next read asks for (≤ batch), following what the last ones found. */
  private readAhead: number;
  private batchSeconds = 0;
  private batchNanos = 0;
  private readonly stage: Uint8Array;
  private readonly stageOffsets: Uint32Array;
  private readonly stageLengths: Uint32Array;
  private staged = 0;
  private flushQueued = false;
  private readonly flushStaged = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private addon: NativeAddon | null = null;
  private fd = -1;
  private watch: NativeWatch | null = null;
  private actualDevice = '';
  private opened = false;
  private closed = false;
  /** The port that took over this one's device (`adopt`): what is written here goes on to it. */
  private successor: TapPort | null = null;

  constructor(options: TapPortOptions) {
    this.mode = options.mode ?? 'tap';
    this.name = options.name ?? `${this.mode}:${options.device}`;
    this.id = options.id ?? 0;
    const who = `${this.mode} port ${this.name}`;
    const bad = (field: string, message: string): NfvError =>
      new NfvError('NFV_ERR_BAD_ARGUMENT', `${who}: ${field} ${message}`, { field, port: this.name });
    if (this.mode !== 'tap' && this.mode !== 'tun') throw bad('mode', "must be 'tap' or 'tun'");
    if (typeof options.device !== 'string' || Buffer.byteLength(options.device) > IFNAMSIZ_MAX)
      throw bad('device', `must be an interface name of at most ${IFNAMSIZ_MAX} bytes`);
    if (/[\s/]/.test(options.device)) throw bad('device', 'must not contain spaces or slashes');
    this.device = options.device;
    this.batch = options.batch ?? DEFAULT_BATCH;
    if (!Number.isInteger(this.batch) || this.batch < 1 || this.batch > MAX_NATIVE_BATCH)
      throw bad('batch', `must be an integer 1…${MAX_NATIVE_BATCH}`);
    this.superPackets = options.offload === true;
    this.vnetLength = this.superPackets ? VNET_HEADER_LENGTH : 0;
    this.slotSize = options.slotSize ?? (this.superPackets ? SUPER_PACKET_SLOT_SIZE : DEFAULT_SLOT_SIZE);
    const minSlot = ETHERNET_HEADER + this.vnetLength + 1;
    if (!Number.isInteger(this.slotSize) || this.slotSize < minSlot || this.slotSize > MAX_SLOT_SIZE)
      throw bad('slotSize', `must be an integer ${minSlot}…${MAX_SLOT_SIZE}`);
    this.queueLength = options.queueLength ?? DEFAULT_TAP_QUEUE_LENGTH;
    if (
      !Number.isInteger(this.queueLength) ||
      this.queueLength < 1 ||
      this.queueLength > MAX_TAP_QUEUE_LENGTH
    )
      throw bad('queueLength', `must be an integer 1…${MAX_TAP_QUEUE_LENGTH}`);
    this.clock = options.clock ?? defaultClock;
    this.readShift = this.mode === 'tun' ? ETHERNET_HEADER : 0;

    this.frames = new Uint8Array(this.batch * this.slotSize);
    this.readOffsets = new Uint32Array(this.batch);
    for (let i = 0; i < this.batch; i++) this.readOffsets[i] = i * this.slotSize + this.readShift;
    this.readLengths = new Uint32Array(this.batch);
    this.frameAt = new Uint32Array(this.batch);
    this.lengths = new Uint32Array(this.batch);
    this.segmentSizes = new Uint16Array(this.batch);
    this.readAhead = this.batch;
    this.stage = new Uint8Array(this.batch * this.slotSize);
    this.stageOffsets = new Uint32Array(this.batch);
    this.stageLengths = new Uint32Array(this.batch);
  }

  /** The interface name the kernel gave the device (after `open()`; the asked name before). */
  deviceName(): string {
    return this.actualDevice || this.device;
  }

  /** Frames read from the device and not yet taken by `next()`. */
  queued(): number {
    return this.count - this.head;
  }

  /**
   * Opens /dev/net/tun and creates or attaches to the device. Rejects with `NFV_ERR_IO` naming the
   * port, the device and the cause: the addon not built, no permission (EPERM: needs
   * CAP_NET_ADMIN), /dev/net/tun missing (ENOENT), the device busy or of another kind (EBUSY, EINVAL).
   */
  open(): Promise<void> {
    if (this.opened) return Promise.resolve();
    const who = `${this.mode} port ${this.name}`;
    if (this.closed)
      return Promise.reject(new NfvError('NFV_ERR_IO', `${who}: already closed`, { port: this.name }));
    this.opened = true;
    const addon = loadNativeAddon();
    if (addon === null) {
      this.closed = true;
      const reason = addonUnavailableReason();
      return Promise.reject(
        new NfvError('NFV_ERR_IO', `${who}: needs nfvisor's native addon, which is ${reason}`, {
          port: this.name,
          device: this.device,
          reason,
        }),
      );
    }
    try {
      const [fd, actual] = addon.openTun(this.device, this.mode === 'tap', this.superPackets);
      this.addon = addon;
      this.fd = fd;
      this.actualDevice = actual;
      addon.setTxQueueLength(actual, this.queueLength);
      this.watch = addon.watchCreate(fd, () => this.deviceReadable());
      addon.watchArm(this.watch);
    } catch (error) {
      this.closed = true;
      if (this.fd >= 0) addon.closeFd(this.fd);
      this.fd = -1;
      return Promise.reject(this.openError(error));
    }
    return Promise.resolve();
  }

  /**
   * Why this port cannot `adopt` the device `previous` holds, or '' when it can: both TAP or both
   * TUN, the same device, `previous` open and this one not opened yet.
   */
  adoptionProblem(previous: TapPort): string {
    if (previous === this) return 'a port cannot adopt itself';
    if (previous.mode !== this.mode) return `the mode changes (${previous.mode} → ${this.mode})`;
    if (previous.device !== this.device) return `the device changes (${previous.device} → ${this.device})`;
    if (previous.superPackets !== this.superPackets)
      return `offload changes (${previous.superPackets} → ${this.superPackets}; the device must be opened again)`;
    if (!previous.opened || previous.closed || previous.fd < 0)
      return `${previous.name} does not hold its device open`;
    if (this.opened || this.closed) return `${this.name} was opened already`;
    return '';
  }

  /**
   * Takes over the device `previous` holds open, instead of opening it again: for a live
   * reconfiguration that changes a port's batch or slot size. Opening the device a second time would
   * fail (EBUSY) — or, once the device has been moved into another namespace, create a new device of
   * that name here while the configured one disappeared with the old port's fd. The fd moves over;
   * the device, its namespace, addresses and bridge stay. Frames `previous` had read and not handed
   * out move too (those longer than this port's slots are counted in `oversize`); what is staged on
   * `previous` is sent first; what is written to `previous` afterwards (an old chain draining) goes
   * on to this port; closing `previous` no longer closes the device; this port's counters (and
   * `packets`, `bytes`, `oversize`) continue `previous`'s totals. Synchronous, so it can run
   * between two turns of the host loop. Throws NFV_ERR_BAD_ARGUMENT when `adoptionProblem` says why not.
   */
  adopt(previous: TapPort): void {
    const problem = this.adoptionProblem(previous);
    if (problem !== '')
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${this.mode} port ${this.name}: cannot adopt: ${problem}`, {
        port: this.name,
      });
    const addon = previous.addon!;
    previous.flush();
    // One uv_poll per fd: the old watch stops before the new one is made.
    if (previous.watch !== null) addon.watchStop(previous.watch);
    previous.watch = null;
    this.addon = addon;
    this.fd = previous.fd;
    this.actualDevice = previous.actualDevice;
    this.opened = true;
    let queued = 0;
    for (let i = previous.head; i < previous.count && queued < this.batch; i++) {
      const length = previous.lengths[i];
      if (length > this.slotSize) {
        this.oversize++;
        continue;
      }
      const frameAt = queued * this.slotSize + this.vnetLength;
      copyBytes(previous.frames, previous.frameAt[i], this.frames, frameAt, length);
      this.frameAt[queued] = frameAt;
      this.lengths[queued] = length;
      this.segmentSizes[queued] = previous.segmentSizes[i];
      queued++;
    }
    this.head = 0;
    this.count = queued;
    this.batchSeconds = previous.batchSeconds;
    this.batchNanos = previous.batchNanos;
    previous.head = previous.count;
    previous.fd = -1;
    previous.closed = true;
    previous.successor = this;
    // The port goes on under a new object: its totals go on too (previous's stop moving here).
    for (const name of Object.keys(this.counters) as (keyof TapCounters)[])
      this.counters[name] += previous.counters[name];
    this.oversize += previous.oversize;
    this.packets += previous.packets;
    this.bytes += previous.bytes;
    this.watch = addon.watchCreate(this.fd, () => this.deviceReadable());
    addon.watchArm(this.watch);
  }

  /**
   * Copies the next frame into `bytes[at..]` (at most `room` bytes) and returns its length; 0 when
   * nothing is waiting now; -1 once the port is closed and its batch drained. A frame longer than
   * `room` is counted in `oversize` and skipped.
   */
  next(bytes: Uint8Array, at: number, room: number): number {
    if (this.head === this.count) this.receiveBatch();
    while (this.head < this.count) {
      const i = this.head++;
      const length = this.lengths[i];
      if (length > room) {
        this.oversize++;
        continue;
      }
      copyBytes(this.frames, this.frameAt[i], bytes, at, length);
      this.segmentSize = this.segmentSizes[i];
      this.seconds = this.batchSeconds;
      this.nanos = this.batchNanos;
      return length;
    }
    return this.closed ? -1 : 0;
  }

  /**
   * Queues `bytes[at, at+length)` for the device (in TUN mode, its IP packet). Failures are
   * counted, never thrown. The timestamp is not sent. A `segmentSize` > 0 marks a TCP super-packet
   * (its checksum partial): only a port with offloads takes one (the host cuts it for the others).
   */
  write(
    bytes: Uint8Array,
    at: number,
    length: number,
    seconds: number,
    nanos: number,
    segmentSize = 0,
  ): void {
    if (this.successor !== null) {
      this.successor.write(bytes, at, length, seconds, nanos, segmentSize);
      return;
    }
    this.packets++;
    this.bytes += length;
    if (this.closed || this.fd < 0) {
      this.counters.tx_errors++;
      return;
    }
    let from = at;
    let size = length;
    if (this.mode === 'tun') {
      const etherType =
        length >= ETHERNET_HEADER ? (bytes[at + ETHERTYPE_AT] << 8) | bytes[at + ETHERTYPE_AT + 1] : 0;
      if (etherType !== EtherType.Ipv4 && etherType !== EtherType.Ipv6) {
        this.counters.tx_not_ip++;
        return;
      }
      from += ETHERNET_HEADER;
      size -= ETHERNET_HEADER;
    }
    if (size + this.vnetLength > this.slotSize) {
      this.counters.tx_errors++;
      return;
    }
    const e = this.staged++;
    const o = e * this.slotSize;
    copyBytes(bytes, from, this.stage, o + this.vnetLength, size);
    if (this.vnetLength !== 0) this.writeVnetHeader(o, bytes, at, length, segmentSize);
    this.stageOffsets[e] = o;
    this.stageLengths[e] = size + this.vnetLength;
    if (this.staged === this.batch) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushStaged);
    }
  }

  /** Sends what is staged, stops watching and closes the device (which then disappears unless persistent). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.addon !== null) {
      if (this.watch !== null) this.addon.watchStop(this.watch);
      if (this.fd >= 0) this.addon.closeFd(this.fd);
    }
    this.watch = null;
    this.fd = -1;
  }

  /** The watch fired: read a batch if the last one was used up, and tell the consumer. */
  private deviceReadable(): void {
    if (this.closed || this.head < this.count) return;
    this.receiveBatch();
    if (this.head < this.count && this.onReadable !== null) this.onReadable();
  }

  /** Reads up to a batch into the slots (the last batch is used up). Arms the watch when the device is empty. */
  private receiveBatch(): void {
    const addon = this.addon;
    if (addon === null || this.closed) return;
    this.head = 0;
    this.count = 0;
    const room = this.slotSize - this.readShift;
    const want = this.readAhead;
    const n = addon.readFrames(this.fd, this.frames, this.readOffsets, this.readLengths, want, room);
    // The addon queues a batch's reads at once (io_uring), and a read that finds the device empty
    // still costs: ask for about twice what the last batch found, the whole batch while it fills.
    this.readAhead =
      n === want ? Math.min(this.batch, want * 2) : Math.min(this.batch, Math.max(MIN_READ_AHEAD, n * 2));
    if (n <= 0) {
      if (n < 0) this.counters.rx_errors++;
      else if (this.watch !== null) addon.watchArm(this.watch);
      return;
    }
    const ms = this.clock();
    this.batchSeconds = Math.floor(ms / MS_PER_S);
    this.batchNanos = Math.floor((ms - this.batchSeconds * MS_PER_S) * NS_PER_MS);
    let queued = 0;
    const vnet = this.vnetLength;
    for (let i = 0; i < n; i++) {
      const read = this.readLengths[i]; // the packet, after its virtio-net header with offloads
      if (read > room) {
        this.oversize++;
        continue;
      }
      const frameAt = i * this.slotSize + vnet;
      const length = read - vnet;
      let segmentSize = 0;
      if (vnet !== 0) {
        segmentSize = length < 0 ? -1 : this.takeOffload(frameAt + this.readShift - vnet, length);
        if (segmentSize < 0) {
          this.counters.rx_bad_offload++;
          continue;
        }
        if (segmentSize > 0) this.counters.rx_super++;
      }
      if (this.mode === 'tun' && !this.addEthernetHeader(frameAt, length)) {
        this.counters.rx_not_ip++;
        continue;
      }
      this.frameAt[queued] = frameAt;
      this.lengths[queued] = length + this.readShift;
      this.segmentSizes[queued] = segmentSize;
      queued++;
    }
    this.count = queued;
    this.counters.rx += queued;
    if ((n < want || queued === 0) && this.watch !== null) addon.watchArm(this.watch);
  }

  /** Writes the synthesized Ethernet header before the IP packet at `frames[frameAt + 14..]`. */
  private addEthernetHeader(frameAt: number, length: number): boolean {
    const f = this.frames;
    const version = length > 0 ? f[frameAt + ETHERNET_HEADER] >> 4 : 0;
    const etherType = version === 4 ? EtherType.Ipv4 : version === 6 ? EtherType.Ipv6 : 0;
    if (etherType === 0) return false;
    f.set(TUN_NFVISOR_MAC, frameAt);
    f.set(TUN_DEVICE_MAC, frameAt + 6);
    f[frameAt + ETHERTYPE_AT] = etherType >> 8;
    f[frameAt + ETHERTYPE_AT + 1] = etherType & 0xff;
    return true;
  }

  /**
   * Acts on the virtio-net header the kernel put at `frames[headerAt..]` before a packet of
   * `length` bytes: completes a partial checksum of an ordinary frame; returns the segment size of
   * a TCP super-packet, 0 for an ordinary frame, -1 for a header this port cannot honour.
   */
  private takeOffload(headerAt: number, length: number): number {
    const f = this.frames;
    const gsoType = f[headerAt + VnetField.GsoType] & ~VnetGso.Ecn;
    if (gsoType === VnetGso.None) {
      if ((f[headerAt + VnetField.Flags] & VnetFlag.NeedsChecksum) === 0) return 0;
      const start = f[headerAt + VnetField.ChecksumStart] | (f[headerAt + VnetField.ChecksumStart + 1] << 8);
      const offset =
        f[headerAt + VnetField.ChecksumOffset] | (f[headerAt + VnetField.ChecksumOffset + 1] << 8);
      return completePartialChecksum(f, headerAt + VNET_HEADER_LENGTH, length, start, offset) ? 0 : -1;
    }
    const segmentSize = f[headerAt + VnetField.GsoSize] | (f[headerAt + VnetField.GsoSize + 1] << 8);
    if ((gsoType !== VnetGso.TcpV4 && gsoType !== VnetGso.TcpV6) || segmentSize < MIN_SEGMENT_SIZE) return -1;
    return segmentSize;
  }

  /**
   * The virtio-net header before the frame staged at `stage[o + 10..]`, from the frame as the
   * chain left it (`bytes[at, at+length)`, Ethernet even in TUN mode): none for an ordinary frame;
   * for a TCP super-packet, its partial checksum (written again from its final headers) and, when
   * its payload still spans more than one segment, the GSO request. A frame marked as a
   * super-packet that is no longer TCP over IP leaves as it is.
   */
  private writeVnetHeader(
    o: number,
    bytes: Uint8Array,
    at: number,
    length: number,
    segmentSize: number,
  ): void {
    const s = this.stage;
    s.fill(0, o, o + VNET_HEADER_LENGTH);
    const shape = this.shape;
    if (segmentSize === 0 || !shape.read(bytes, at, length)) return;
    // Offsets in the header count from the packet the device gets: the frame, or in TUN mode its IP packet.
    const shift = this.mode === 'tun' ? ETHERNET_HEADER : 0;
    const packetAt = o + VNET_HEADER_LENGTH - shift;
    const checksum = partialChecksum(bytes, at, length, shape);
    s[packetAt + shape.l4 + TCP_CHECKSUM_OFFSET] = checksum >> 8;
    s[packetAt + shape.l4 + TCP_CHECKSUM_OFFSET + 1] = checksum & 0xff;
    s[o + VnetField.Flags] = VnetFlag.NeedsChecksum;
    writeLe16(s, o + VnetField.ChecksumStart, shape.l4 - shift);
    writeLe16(s, o + VnetField.ChecksumOffset, TCP_CHECKSUM_OFFSET);
    writeLe16(s, o + VnetField.HeaderLength, shape.headerLength - shift);
    if (length - shape.headerLength <= segmentSize) return;
    const cwr = (bytes[at + shape.l4 + TCP_FLAGS_OFFSET] & TCP_CWR) !== 0;
    s[o + VnetField.GsoType] =
      (shape.version === 4 ? VnetGso.TcpV4 : VnetGso.TcpV6) | (cwr ? VnetGso.Ecn : 0);
    writeLe16(s, o + VnetField.GsoSize, segmentSize);
    this.counters.tx_super++;
  }

  private flush(): void {
    const count = this.staged;
    if (count === 0) return;
    this.staged = 0;
    if (this.addon === null || this.fd < 0) {
      this.counters.tx_errors += count;
      return;
    }
    const written = this.addon.writeFrames(this.fd, this.stage, this.stageOffsets, this.stageLengths, count);
    const ok = written > 0 ? written : 0;
    this.counters.tx += ok;
    this.counters.tx_errors += count - ok;
  }

  private openError(error: unknown): NfvError {
    const code = (error as { code?: string }).code ?? 'EIO';
    const message = error instanceof Error ? error.message : String(error);
    return new NfvError(
      'NFV_ERR_IO',
      `${this.mode} port ${this.name}: cannot open device ${this.device}: ${explainErrno(code)}`,
      { port: this.name, device: this.device, errno: code, reason: message },
      { cause: error },
    );
  }
}

function writeLe16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = value >> 8;
}
