/**
 * A live tunnel endpoint over `node:dgram`: the shared machinery of `VxlanPort` (RFC 7348) and
 * `GenevePort` (RFC 8926). Datagrams arrive on the event loop, are checked once with the format's
 * view, and their inner Ethernet frames are copied into a bounded ring of preallocated slots; the
 * host pulls them synchronously with `next()`. `write()` encapsulates a frame and sends it.
 *
 * Receive ring (one producer: the socket's 'message' handler; one consumer: `next()`; both on the
 * main thread, so plain indices suffice):
 *
 *     frames  [ slot 0 | slot 1 | ... | slot S-1 ]   S × slotSize bytes, allocated once
 *     lengths [ len 0  | len 1  | ... | len S-1  ]   Uint16Array
 *     seconds, nanos                                  arrival time per slot
 *                  ^ head              ^ head + count (mod S): where the next datagram lands
 *
 *   invariant: 0 ≤ count ≤ S; slots head … head+count-1 (mod S) hold frames not yet read.
 *   A datagram arriving with count = S is dropped and counted (`rx_queue_full`, drop-tail):
 *   the queue never grows.
 *
 * `next()` returns a frame length (> 0), 0 when nothing is waiting now (a live port does not end
 * by itself), or -1 once `close()` was called and the ring is drained.
 *
 * Batched I/O: when the native addon is built (`loadNativeAddon()`, src/io/native-addon.ts) and
 * `nativeIo` is not false, the port reads with `recvmmsg` instead of dgram's one `recvmsg` per
 * datagram: `next()` finding the ring empty pulls up to a batch of datagrams straight into its
 * slots (each slot is `slotSize` plus the largest tunnel header, so the datagram lands whole and
 * the inner frame is read where it lies: `innerAt[slot]`), and a one-shot event-loop watch calls
 * `onReadable` when the socket becomes readable again. Sends are staged and leave in one
 * `sendmmsg` per socket when a batch fills or at the next microtask. Behaviour, counters and
 * errors are the same on both paths.
 *
 * Sending: with a `remote`, frames go to it from a small pool of sockets bound to different
 * ephemeral source ports and connected to the remote (a connected send skips the address lookup);
 * a hash of the inner 5-tuple picks the socket, so one flow keeps one outer source port and flows
 * spread over several (RFC 7348 §5, "Source Port"; `dgram` cannot set a source port per datagram).
 * Without a `remote`, the port answers in the tunnel each flow came from: the sender's address and
 * port and the whole tunnel header (VNI, GENEVE options) are remembered per flow (a direct-mapped
 * table indexed by the inner symmetric flow hash), the way an appliance behind a gateway load
 * balancer must reply.
 *
 * Live reconfiguration: a new port for the address a running one is bound to takes that port's
 * socket over (`prepareAdoption` opens what may wait, `adopt` moves the socket, the queued frames,
 * the learned reply flows and the counters between two turns of the host loop) instead of binding
 * the address again, which the kernel refuses while the old port holds it.
 */
import { copyBytes } from './capture-buffer.js';
import { ADDRESS_RECORD_BYTES, loadNativeAddon } from './native-addon.js';
import { UdpBatchSocket } from './udp-batch.js';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { NfvError } from '../errors.js';
import { DropReason } from '../packet/drop-reason.js';
import { formatIpv6, parseIpv6 } from '../packet/address.js';
import { FLOW_KEY_WORDS, FlowKey } from '../packet/flow-key.js';
import { LinkType } from '../packet/link-type.js';
import { PacketParser } from '../packet/packet-parser.js';

export interface TunnelEndpoint {
  address: string;
  /** UDP port; the format's well-known port (4789 VXLAN, 6081 GENEVE) when omitted. */
  port?: number;
}

export interface TunnelPortOptions {
  /** Port name, used in error messages and by the host. */
  name?: string;
  /** Port id for the host's classifier. */
  id?: number;
  /** Local address and UDP port to receive on. */
  bind: TunnelEndpoint;
  /** Where frames are sent. Omitted: each frame goes back through the tunnel its flow arrived in. */
  remote?: TunnelEndpoint;
  /** 24-bit network identifier: only datagrams with it are accepted, and sent frames carry it. */
  vni: number;
  /** Receive ring slots (default 1024). */
  slots?: number;
  /** Bytes per slot: the largest inner frame accepted (default 9216, a jumbo frame; ≤ 65535). */
  slotSize?: number;
  /** Sockets (outer source ports) used towards a `remote` (default 8). */
  sourcePorts?: number;
  /** Flows remembered for replies without a `remote` (a power of two, default 4096). */
  replyFlows?: number;
  /**
   * Socket receive buffer to ask the kernel for, in bytes (default 4 MiB). With the native addon
   * and CAP_NET_ADMIN it is granted past net.core.rmem_max (SO_RCVBUFFORCE); otherwise rmem_max
   * caps it.
   */
  receiveBufferSize?: number;
  /** Wall clock in milliseconds since the epoch, for arrival timestamps (default `performance.timeOrigin + performance.now()`). */
  clock?: () => number;
  /** Use the native addon's recvmmsg/sendmmsg when it is built (default true); false keeps node:dgram. */
  nativeIo?: boolean;
}

/** The counters every tunnel port keeps; tests and the host read them. */
export interface TunnelCounters {
  /** Datagrams accepted and queued. */
  rx: number;
  /** Datagrams the kernel accepted for sending. */
  tx: number;
  /** Datagrams whose tunnel header the view refused (truncated, flags, bad options). */
  rx_malformed: number;
  /** Well-formed datagrams for another VNI. */
  rx_wrong_vni: number;
  /** Well-formed datagrams this port does not forward (GENEVE OAM, an inner protocol other than Ethernet). */
  rx_ignored: number;
  /** Datagrams dropped because the receive ring was full (drop-tail). */
  rx_queue_full: number;
  /** Frames that could not be sent: socket closed, kernel refusal, frame too large for a datagram. */
  tx_errors: number;
  /** Frames not sent because no tunnel is known for their flow (no `remote`, flow never seen). */
  tx_no_tunnel: number;
}

/** Outcome codes of `decapsulate` below zero. */
export const Decap = {
  Malformed: -1,
  WrongVni: -2,
  Ignored: -3,
} as const;

const DEFAULT_SLOTS = 1024;
const DEFAULT_SLOT_SIZE = 9216;
const MAX_SLOT_SIZE = 0xffff;
const DEFAULT_SOURCE_PORTS = 8;
const DEFAULT_REPLY_FLOWS = 4096;
/** The socket receive buffer a tunnel port asks for when its options name none (4 MiB). */
export const DEFAULT_TUNNEL_RECEIVE_BUFFER = 4 << 20;
/** The largest UDP payload over IPv4 (65535 − 20 − 8). */
const MAX_DATAGRAM = 65507;
const MAX_VNI = 0xffffff;
const NS_PER_MS = 1e6;
const MS_PER_S = 1000;
/** Datagrams per recvmmsg / sendmmsg on the batched path. */
const IO_BATCH = 64;
/** -errno values the batched path treats as "nothing now" or a transient ICMP report. */
const ECONNREFUSED = 111;

const defaultClock = (): number => performance.timeOrigin + performance.now();

export abstract class TunnelPort {
  readonly name: string;
  readonly id: number;
  readonly vni: number;
  /** Inner frames are Ethernet. */
  linkType: number = LinkType.Ethernet;
  /** Arrival time of the frame `next()` returned last. */
  seconds = 0;
  nanos = 0;
  /** Never a TCP super-packet (for the host's InputPort). */
  readonly segmentSize = 0;
  /** Frames longer than a slot (on receipt) or than `room` (in `next()`): counted and dropped. */
  oversize = 0;
  /** Frames handed to `write()` and their bytes (the host's output-port counters). */
  packets = 0;
  bytes = 0;
  readonly counters: TunnelCounters = {
    rx: 0,
    tx: 0,
    rx_malformed: 0,
    rx_wrong_vni: 0,
    rx_ignored: 0,
    rx_queue_full: 0,
    tx_errors: 0,
    tx_no_tunnel: 0,
  };
  /**
   * Called when a frame lands in an empty ring, so a host that sleeps while every input returns 0
   * knows when to pull again. At most one call per empty → non-empty transition.
   */
  onReadable: (() => void) | null = null;

  protected readonly bindAddress: string;
  protected readonly bindPort: number;
  protected readonly remoteAddress: string | null;
  protected readonly remotePort: number;

  private readonly slots: number;
  private readonly slotSize: number;
  /** Bytes between slots: slotSize plus the largest tunnel header (a whole datagram fits). */
  private readonly stride: number;
  private readonly frames: Uint8Array;
  private readonly lengths: Uint16Array;
  /** Where each slot's inner frame starts in `frames`. */
  private readonly innerAt: Uint32Array;
  private readonly arrivalSeconds: Float64Array;
  private readonly arrivalNanos: Uint32Array;
  private head = 0;
  private count = 0;

  private readonly sourcePortCount: number;
  private readonly receiveBufferSize: number;
  private readonly clock: () => number;
  private readonly family: 'udp4' | 'udp6';
  private socket: Socket | null = null;
  private txSockets: Socket[] = [];
  private closed = false;
  private opened = false;
  /** The port that took over this one's socket (`adopt`): what is written here goes on to it. */
  private successor: TunnelPort | null = null;
  /** The port whose socket `adopt` may take (set by `prepareAdoption`). */
  private preparedFor: TunnelPort | null = null;

  // The batched path (native addon): sockets, the receive batch's scratch and the send stage.
  private readonly nativeIo: boolean;
  private batchRx: UdpBatchSocket | null = null;
  private batchTx: UdpBatchSocket[] = [];
  private readonly rxOffsets: Uint32Array;
  private readonly rxLengths = new Uint32Array(IO_BATCH);
  private readonly senders = new Uint8Array(IO_BATCH * ADDRESS_RECORD_BYTES);
  private txStage: Uint8Array | null = null;
  private readonly txOffsets = new Uint32Array(IO_BATCH);
  private readonly txLengths = new Uint32Array(IO_BATCH);
  private readonly txSocketOf = new Uint8Array(IO_BATCH);
  private readonly txDestinations = new Uint8Array(IO_BATCH * ADDRESS_RECORD_BYTES);
  private readonly sendOffsets = new Uint32Array(IO_BATCH);
  private readonly sendLengths = new Uint32Array(IO_BATCH);
  private txCount = 0;
  private flushQueued = false;
  private readonly flushStaged = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private readonly parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
  private readonly key = new FlowKey();
  // Reply table (no remote): per flow slot, its key, the sender and the tunnel header it came with.
  private readonly replyMask: number;
  private readonly replyKeys: Uint32Array;
  private readonly replyUsed: Uint8Array;
  private readonly replyPorts: Uint16Array;
  private readonly replyAddresses: string[];
  private readonly replyHeaders: Uint8Array;
  private readonly replyHeaderLengths: Uint16Array;
  /** The sender of each reply-table flow as an address record (batched path). */
  private readonly replyRecords: Uint8Array;
  private readonly onSent = (error: Error | null): void => {
    // A send still in flight when the socket was taken over counts where the totals went on.
    if (this.successor !== null) this.successor.onSent(error);
    else if (error) this.counters.tx_errors++;
    else this.counters.tx++;
  };

  constructor(
    protected readonly kind: string,
    defaultPort: number,
    options: TunnelPortOptions,
  ) {
    this.name = options.name ?? `${kind}:${options.bind.address}:${options.bind.port ?? defaultPort}`;
    this.id = options.id ?? 0;
    const field = (f: string): { field: string; port: string } => ({ field: f, port: this.name });
    if (!Number.isInteger(options.vni) || options.vni < 0 || options.vni > MAX_VNI)
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `${kind} port ${this.name}: vni must be 0…16777215`,
        field('vni'),
      );
    this.vni = options.vni;
    this.family = addressFamily(options.bind.address, `${kind} port ${this.name}`, 'bind.address');
    this.bindAddress = canonicalAddress(options.bind.address);
    this.bindPort = checkPort(options.bind.port ?? defaultPort, `${kind} port ${this.name}`, 'bind.port');
    if (options.remote) {
      if (
        addressFamily(options.remote.address, `${kind} port ${this.name}`, 'remote.address') !== this.family
      )
        throw new NfvError(
          'NFV_ERR_BAD_ARGUMENT',
          `${kind} port ${this.name}: bind and remote addresses must be of one IP version`,
          field('remote.address'),
        );
      this.remoteAddress = options.remote.address;
      this.remotePort = checkPort(
        options.remote.port ?? defaultPort,
        `${kind} port ${this.name}`,
        'remote.port',
      );
    } else {
      this.remoteAddress = null;
      this.remotePort = 0;
    }
    this.slots = positiveInteger(options.slots ?? DEFAULT_SLOTS, `${kind} port ${this.name}`, 'slots');
    this.slotSize = positiveInteger(
      options.slotSize ?? DEFAULT_SLOT_SIZE,
      `${kind} port ${this.name}`,
      'slotSize',
    );
    if (this.slotSize > MAX_SLOT_SIZE)
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `${kind} port ${this.name}: slotSize must be ≤ 65535`,
        field('slotSize'),
      );
    this.sourcePortCount = positiveInteger(
      options.sourcePorts ?? DEFAULT_SOURCE_PORTS,
      `${kind} port ${this.name}`,
      'sourcePorts',
    );
    const flows = positiveInteger(
      options.replyFlows ?? DEFAULT_REPLY_FLOWS,
      `${kind} port ${this.name}`,
      'replyFlows',
    );
    if ((flows & (flows - 1)) !== 0)
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `${kind} port ${this.name}: replyFlows must be a power of two`,
        field('replyFlows'),
      );
    this.receiveBufferSize = options.receiveBufferSize ?? DEFAULT_TUNNEL_RECEIVE_BUFFER;
    this.clock = options.clock ?? defaultClock;
    this.nativeIo = options.nativeIo ?? true;

    this.stride = this.slotSize + this.maxHeaderLength();
    this.frames = new Uint8Array(this.slots * this.stride);
    this.lengths = new Uint16Array(this.slots);
    this.innerAt = new Uint32Array(this.slots);
    this.rxOffsets = new Uint32Array(IO_BATCH);
    for (let i = 0; i < IO_BATCH; i++) this.rxOffsets[i] = i * this.stride;
    this.arrivalSeconds = new Float64Array(this.slots);
    this.arrivalNanos = new Uint32Array(this.slots);

    const replyFlows = this.remoteAddress === null ? flows : 1;
    this.replyMask = replyFlows - 1;
    this.replyKeys = new Uint32Array(replyFlows * FLOW_KEY_WORDS);
    this.replyUsed = new Uint8Array(replyFlows);
    this.replyPorts = new Uint16Array(replyFlows);
    this.replyAddresses = new Array<string>(replyFlows).fill('');
    this.replyHeaders = new Uint8Array(replyFlows * this.maxHeaderLength());
    this.replyHeaderLengths = new Uint16Array(replyFlows);
    this.replyRecords = new Uint8Array(replyFlows * ADDRESS_RECORD_BYTES);
  }

  /** The largest tunnel header this format has (reply-table slot size). */
  protected abstract maxHeaderLength(): number;
  /**
   * Checks a received UDP payload at `payload[at, at+length)`: returns the offset in `payload` of
   * the inner Ethernet frame, or a `Decap` code below zero. Never throws.
   */
  protected abstract decapsulate(payload: Uint8Array, at: number, length: number): number;
  /** The header sent towards `remote` (built once). */
  protected abstract remoteHeader(): Uint8Array;

  /** The address and UDP port the port receives on (after `open()`; port 0 binds an ephemeral one). */
  address(): { address: string; port: number } {
    if (this.batchRx) return { address: this.bindAddress, port: this.batchRx.port };
    if (!this.socket) return { address: this.bindAddress, port: this.bindPort };
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** How datagrams move: 'recvmmsg' (native addon, batched) or 'dgram' (one per call); set by `open()`. */
  io(): 'recvmmsg' | 'dgram' {
    return this.batchRx !== null ? 'recvmmsg' : 'dgram';
  }

  /** Frames waiting in the receive ring. */
  queued(): number {
    return this.count;
  }

  /**
   * Binds the receive socket (and the sending sockets towards `remote`). Rejects with an
   * `NFV_ERR_IO` error naming the port and the errno code (EADDRINUSE, EACCES, EADDRNOTAVAIL).
   */
  async open(): Promise<void> {
    if (this.opened) return;
    if (this.closed)
      throw new NfvError('NFV_ERR_IO', `${this.kind} port ${this.name}: already closed`, { port: this.name });
    this.opened = true;
    const addon = this.nativeIo ? loadNativeAddon() : null;
    if (addon !== null) {
      try {
        this.batchRx = UdpBatchSocket.open(
          addon,
          this.family,
          this.bindAddress,
          this.bindPort,
          this.receiveBufferSize,
        );
      } catch (error) {
        this.close();
        throw this.ioError(`cannot bind ${this.bindAddress}:${this.bindPort}`, error);
      }
    } else {
      const rx = createSocket({ type: this.family });
      this.socket = rx;
      try {
        await bindSocket(rx, this.bindPort, this.bindAddress);
      } catch (error) {
        this.close();
        throw this.ioError(`cannot bind ${this.bindAddress}:${this.bindPort}`, error);
      }
      try {
        rx.setRecvBufferSize(this.receiveBufferSize);
      } catch {
        // The kernel caps SO_RCVBUF at net.core.rmem_max; a smaller buffer only means earlier drops.
      }
    }
    this.listen();
    await this.openSenders();
  }

  /**
   * Why this port cannot `adopt` the receive socket `previous` holds, or '' when it can: the same
   * bind address and (fixed, non-zero) UDP port, the same receive buffer size and the same kind of
   * socket (a node:dgram socket cannot become a native fd, nor the reverse), `previous` holding its
   * socket and this port not opened yet. The tunnel format may differ: a socket is a socket, and
   * the new port decapsulates what it reads with its own format (VXLAN ↔ GENEVE on one address).
   */
  adoptionProblem(previous: TunnelPort): string {
    if (previous === this) return 'a port cannot adopt itself';
    const was = `${previous.bindAddress}:${previous.bindPort}`;
    if (previous.bindAddress !== this.bindAddress || previous.bindPort !== this.bindPort)
      return `the bind address changes (${was} → ${this.bindAddress}:${this.bindPort})`;
    if (this.bindPort === 0) return 'an ephemeral bind port (0) is not an address to keep';
    if (previous.receiveBufferSize !== this.receiveBufferSize)
      return `the receive buffer size changes (${previous.receiveBufferSize} → ${this.receiveBufferSize} bytes), which the socket keeps`;
    if (
      previous.successor !== null ||
      previous.closed ||
      (previous.batchRx === null && previous.socket === null)
    )
      return `${previous.name} does not hold its socket open`;
    const io = this.nativeIo && loadNativeAddon() !== null ? 'recvmmsg' : 'dgram';
    if (previous.io() !== io)
      return `the socket is read with ${previous.io()} and ${this.name} asks for ${io}`;
    if (this.opened || this.closed) return `${this.name} was opened already`;
    return '';
  }

  /**
   * The part of taking over `previous`'s socket that may wait: opens the sending sockets towards
   * this port's `remote`, unless `previous` sends to the same remote from as many sockets (those
   * move over at `adopt`, and every flow keeps its outer source port). Does not bind the receive
   * socket. Rejects with NFV_ERR_BAD_ARGUMENT when `adoptionProblem` says why not, NFV_ERR_IO as
   * `open()` does.
   */
  async prepareAdoption(previous: TunnelPort): Promise<void> {
    this.throwAdoptionProblem(previous);
    this.preparedFor = previous;
    if (!this.sharesSenders(previous)) await this.openSenders();
  }

  /**
   * Takes over the bound receive socket `previous` holds (a node:dgram socket or the native fd,
   * whatever it reads with), instead of binding the address again — which the kernel refuses while
   * the old port holds it: a live reconfiguration that changes a tunnel port's VNI, remote, ring
   * or format on the same address. Frames `previous` had queued and not handed out move to this
   * port's ring (those longer than its slots count in `oversize`, beyond its slots in
   * `rx_queue_full`); what is staged on `previous` is sent first; flows `previous` learned for
   * replies (no `remote`) stay known when the format is the same (a remembered header of another
   * format would not be understood); its counters carry over, so this port continues their totals.
   * Afterwards `previous` reads nothing (`next()` returns -1), what is written to it (an old chain
   * draining) goes on to this port, and closing it no longer closes the socket. Synchronous, so it
   * can run between two turns of the host loop; `prepareAdoption(previous)` must have run first.
   * Throws NFV_ERR_BAD_ARGUMENT when `adoptionProblem` says why not.
   */
  adopt(previous: TunnelPort): void {
    this.throwAdoptionProblem(previous);
    if (this.preparedFor !== previous)
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `${this.kind} port ${this.name}: cannot adopt: prepareAdoption(${previous.name}) did not run`,
        { port: this.name },
      );
    this.preparedFor = null;
    previous.flush();
    if (this.remoteAddress !== null && this.txSockets.length + this.batchTx.length === 0) {
      // sharesSenders(previous): the sending sockets (already connected to this remote) move too.
      this.txSockets = previous.txSockets;
      this.batchTx = previous.batchTx;
      previous.txSockets = [];
      previous.batchTx = [];
      for (const tx of this.txSockets) tx.removeAllListeners('error');
      for (const tx of this.txSockets) tx.on('error', () => this.counters.tx_errors++);
    }
    this.batchRx = previous.batchRx;
    this.socket = previous.socket;
    previous.batchRx = null;
    previous.socket = null;
    previous.txStage = null;
    previous.successor = this;
    this.opened = true;
    this.takeQueued(previous);
    if (this.kind === previous.kind && this.remoteAddress === null && previous.remoteAddress === null)
      this.takeReplies(previous);
    this.addCounters(previous);
    if (this.socket !== null) {
      this.socket.removeAllListeners('message');
      this.socket.removeAllListeners('error');
    }
    this.listen();
  }

  /** Starts reading the receive socket (just bound, or taken over). */
  private listen(): void {
    if (this.batchRx !== null) {
      this.batchRx.watch(() => this.socketReadable());
      this.batchRx.arm();
      this.txStage = new Uint8Array(IO_BATCH * this.stride);
    }
    const rx = this.socket;
    if (rx !== null) {
      // After bind, a socket error is a failed send or a transient ICMP error: count it, never crash.
      rx.on('error', () => this.counters.tx_errors++);
      rx.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.receive(msg, rinfo));
    }
  }

  /** Opens the sending sockets towards `remote` (none without one), of the kind the port reads with. */
  private async openSenders(): Promise<void> {
    if (this.remoteAddress === null) return;
    const addon = this.nativeIo ? loadNativeAddon() : null;
    for (let i = 0; i < this.sourcePortCount; i++) {
      try {
        if (addon !== null) {
          const tx = UdpBatchSocket.open(addon, this.family, this.bindAddress, 0, 0);
          this.batchTx.push(tx);
          tx.connect(this.remoteAddress, this.remotePort);
        } else {
          const tx = createSocket({ type: this.family });
          this.txSockets.push(tx);
          tx.on('error', () => this.counters.tx_errors++);
          await bindSocket(tx, 0, this.bindAddress);
          await connectSocket(tx, this.remotePort, this.remoteAddress);
        }
      } catch (error) {
        this.close();
        throw this.ioError(`cannot open a socket towards ${this.remoteAddress}:${this.remotePort}`, error);
      }
    }
  }

  private throwAdoptionProblem(previous: TunnelPort): void {
    const problem = this.adoptionProblem(previous);
    if (problem !== '')
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${this.kind} port ${this.name}: cannot adopt: ${problem}`, {
        port: this.name,
      });
  }

  /** `previous` sends to this port's remote from as many sockets, which can move over. */
  private sharesSenders(previous: TunnelPort): boolean {
    return (
      this.remoteAddress !== null &&
      previous.remoteAddress === this.remoteAddress &&
      previous.remotePort === this.remotePort &&
      previous.txSockets.length + previous.batchTx.length === this.sourcePortCount
    );
  }

  /** Moves the frames `previous` queued and did not hand out into this port's (empty) ring. */
  private takeQueued(previous: TunnelPort): void {
    let queued = 0;
    for (; previous.count > 0; previous.count--) {
      const slot = previous.head;
      previous.head = slot + 1 === previous.slots ? 0 : slot + 1;
      const length = previous.lengths[slot];
      if (length > this.slotSize) {
        this.oversize++;
        continue;
      }
      if (queued === this.slots) {
        this.counters.rx_queue_full++;
        continue;
      }
      copyBytes(previous.frames, previous.innerAt[slot], this.frames, queued * this.stride, length);
      this.innerAt[queued] = queued * this.stride;
      this.lengths[queued] = length;
      this.arrivalSeconds[queued] = previous.arrivalSeconds[slot];
      this.arrivalNanos[queued] = previous.arrivalNanos[slot];
      queued++;
    }
    this.head = 0;
    this.count = queued;
  }

  /** Copies the flows `previous` remembered for replies (same format), rehashed into this table. */
  private takeReplies(previous: TunnelPort): void {
    const headerStride = this.maxHeaderLength();
    for (let from = 0; from <= previous.replyMask; from++) {
      if (previous.replyUsed[from] === 0) continue;
      this.key.readFrom(previous.replyKeys, from * FLOW_KEY_WORDS);
      const to = this.key.symmetricHash() & this.replyMask;
      this.key.writeTo(this.replyKeys, to * FLOW_KEY_WORDS);
      this.replyUsed[to] = 1;
      this.replyPorts[to] = previous.replyPorts[from];
      this.replyAddresses[to] = previous.replyAddresses[from];
      const headerLength = previous.replyHeaderLengths[from];
      copyBytes(
        previous.replyHeaders,
        from * headerStride,
        this.replyHeaders,
        to * headerStride,
        headerLength,
      );
      this.replyHeaderLengths[to] = headerLength;
      copyBytes(
        previous.replyRecords,
        from * ADDRESS_RECORD_BYTES,
        this.replyRecords,
        to * ADDRESS_RECORD_BYTES,
        ADDRESS_RECORD_BYTES,
      );
    }
  }

  /** Adds `previous`'s counts to this port's: the totals go on across a takeover. */
  private addCounters(previous: TunnelPort): void {
    for (const name of Object.keys(this.counters) as (keyof TunnelCounters)[])
      this.counters[name] += previous.counters[name];
    this.oversize += previous.oversize;
    this.packets += previous.packets;
    this.bytes += previous.bytes;
  }

  /**
   * Copies the oldest queued frame into `bytes[at..]` (at most `room` bytes) and returns its
   * length; 0 when nothing is waiting now; -1 once the port is closed and its ring drained.
   * A frame longer than `room` is counted in `oversize` and skipped.
   */
  next(bytes: Uint8Array, at: number, room: number): number {
    if (this.count === 0 && this.batchRx !== null) this.receiveBatch();
    while (this.count > 0) {
      const slot = this.head;
      this.head = slot + 1 === this.slots ? 0 : slot + 1;
      this.count--;
      const length = this.lengths[slot];
      if (length > room) {
        this.oversize++;
        continue;
      }
      copyBytes(this.frames, this.innerAt[slot], bytes, at, length);
      this.seconds = this.arrivalSeconds[slot];
      this.nanos = this.arrivalNanos[slot];
      return length;
    }
    return this.closed || this.successor !== null ? -1 : 0;
  }

  /**
   * Encapsulates `bytes[at, at+length)` and sends it: to `remote`, or back through the tunnel the
   * frame's flow arrived in. Failures are counted, never thrown. The timestamp is not sent.
   */
  write(bytes: Uint8Array, at: number, length: number, seconds: number, nanos: number): void {
    if (this.successor !== null) {
      this.successor.write(bytes, at, length, seconds, nanos);
      return;
    }
    this.packets++;
    this.bytes += length;
    if (this.txStage !== null && !this.closed) {
      this.stage(bytes, at, length);
      return;
    }
    if (this.closed || !this.socket) {
      this.counters.tx_errors++;
      return;
    }
    const hashed = this.flowOf(bytes, at, length);
    if (this.remoteAddress !== null) {
      const header = this.remoteHeader();
      if (header.length + length > MAX_DATAGRAM) {
        this.counters.tx_errors++;
        return;
      }
      const datagram = Buffer.allocUnsafe(header.length + length);
      datagram.set(header, 0);
      datagram.set(bytes.subarray(at, at + length), header.length);
      const h = hashed ? this.key.hash() : ethernetHash(bytes, at, length);
      this.txSockets[(h >>> 0) % this.txSockets.length].send(datagram, this.onSent);
      return;
    }
    const slot = hashed ? this.findReply() : -1;
    if (slot < 0) {
      this.counters.tx_no_tunnel++;
      return;
    }
    const headerLength = this.replyHeaderLengths[slot];
    if (headerLength + length > MAX_DATAGRAM) {
      this.counters.tx_errors++;
      return;
    }
    const datagram = Buffer.allocUnsafe(headerLength + length);
    const stride = this.maxHeaderLength();
    datagram.set(this.replyHeaders.subarray(slot * stride, slot * stride + headerLength), 0);
    datagram.set(bytes.subarray(at, at + length), headerLength);
    this.socket.send(datagram, this.replyPorts[slot], this.replyAddresses[slot], this.onSent);
  }

  /** Stops receiving and closes the sockets; queued frames can still be read, then `next()` returns -1. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.batchRx?.close();
    for (const tx of this.batchTx) tx.close();
    this.batchTx = [];
    this.txStage = null;
    if (this.socket) closeQuietly(this.socket);
    for (const tx of this.txSockets) closeQuietly(tx);
    this.txSockets = [];
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    const length = msg.length;
    const inner = this.decapsulate(msg, 0, length);
    if (inner < 0) {
      if (inner === Decap.WrongVni) this.counters.rx_wrong_vni++;
      else if (inner === Decap.Ignored) this.counters.rx_ignored++;
      else this.counters.rx_malformed++;
      return;
    }
    const frameLength = length - inner;
    if (frameLength > this.slotSize) {
      this.oversize++;
      return;
    }
    if (this.count === this.slots) {
      this.counters.rx_queue_full++;
      return;
    }
    if (this.remoteAddress === null && this.flowOf(msg, inner, frameLength)) {
      const flow = this.remember(msg, 0, inner);
      this.replyPorts[flow] = rinfo.port;
      if (this.replyAddresses[flow] !== rinfo.address) this.replyAddresses[flow] = rinfo.address;
    }
    let slot = this.head + this.count;
    if (slot >= this.slots) slot -= this.slots;
    copyBytes(msg, inner, this.frames, slot * this.stride, frameLength);
    this.innerAt[slot] = slot * this.stride;
    this.lengths[slot] = frameLength;
    const ms = this.clock();
    const seconds = Math.floor(ms / MS_PER_S);
    this.arrivalSeconds[slot] = seconds;
    this.arrivalNanos[slot] = Math.floor((ms - seconds * MS_PER_S) * NS_PER_MS);
    this.count++;
    this.counters.rx++;
    if (this.count === 1 && this.onReadable !== null) this.onReadable();
  }

  /** Parses the inner frame and fills `key` with its 5-tuple; false for frames without IP. */
  private flowOf(bytes: Uint8Array, at: number, length: number): boolean {
    return (
      this.parser.attach(bytes, at, length, LinkType.Ethernet) === DropReason.None &&
      this.parser.flowKey(this.key)
    );
  }

  /**
   * Records the tunnel header `msg[from, inner)` for the flow in `key` (filled by `flowOf`) and
   * returns its reply-table slot; the caller records the sender.
   */
  private remember(msg: Uint8Array, from: number, inner: number): number {
    const slot = this.key.symmetricHash() & this.replyMask;
    this.key.writeTo(this.replyKeys, slot * FLOW_KEY_WORDS);
    this.replyUsed[slot] = 1;
    copyBytes(msg, from, this.replyHeaders, slot * this.maxHeaderLength(), inner - from);
    this.replyHeaderLengths[slot] = inner - from;
    return slot;
  }

  /**
   * The batched receive: one recvmmsg into ring slots 0… (the ring is empty), each datagram checked
   * in place; the frames accepted are queued in arrival order. Re-arms the readability watch when
   * the socket had nothing.
   */
  private receiveBatch(): void {
    const socket = this.batchRx;
    if (socket === null) return;
    const want = Math.min(IO_BATCH, this.slots);
    const n = socket.receive(this.frames, this.rxOffsets, this.rxLengths, want, this.stride, this.senders);
    if (n <= 0) {
      // -ECONNREFUSED is an ICMP port-unreachable for an earlier send: nothing to read.
      if (n < 0 && n !== -ECONNREFUSED) this.counters.tx_errors++;
      socket.arm();
      return;
    }
    const ms = this.clock();
    const seconds = Math.floor(ms / MS_PER_S);
    const nanos = Math.floor((ms - seconds * MS_PER_S) * NS_PER_MS);
    this.head = 0;
    let queued = 0;
    for (let i = 0; i < n; i++) {
      const from = this.rxOffsets[i];
      const length = this.rxLengths[i];
      if (length > this.stride) {
        this.oversize++;
        continue;
      }
      const inner = this.decapsulate(this.frames, from, length);
      if (inner < 0) {
        if (inner === Decap.WrongVni) this.counters.rx_wrong_vni++;
        else if (inner === Decap.Ignored) this.counters.rx_ignored++;
        else this.counters.rx_malformed++;
        continue;
      }
      const frameLength = from + length - inner;
      if (frameLength > this.slotSize) {
        this.oversize++;
        continue;
      }
      if (this.remoteAddress === null && this.flowOf(this.frames, inner, frameLength)) {
        const flow = this.remember(this.frames, from, inner);
        copyBytes(
          this.senders,
          i * ADDRESS_RECORD_BYTES,
          this.replyRecords,
          flow * ADDRESS_RECORD_BYTES,
          ADDRESS_RECORD_BYTES,
        );
      }
      this.innerAt[queued] = inner;
      this.lengths[queued] = frameLength;
      this.arrivalSeconds[queued] = seconds;
      this.arrivalNanos[queued] = nanos;
      queued++;
    }
    this.count = queued;
    this.counters.rx += queued;
    // A full batch with frames: more may be waiting and the consumer keeps pulling. Otherwise
    // watch for more (a full batch of refused datagrams wakes us again at once).
    if (n < want || queued === 0) socket.arm();
  }

  /**
   * The readability watch fired: pull a batch now if the ring is empty (so counters move and
   * `onReadable` fires as on the dgram path); a non-empty ring is pulled by `next()` when drained.
   */
  private socketReadable(): void {
    if (this.count > 0 || this.closed) return;
    this.receiveBatch();
    if (this.count > 0 && this.onReadable !== null) this.onReadable();
  }

  /** Builds the datagram for `bytes[at, at+length)` in the send stage (batched path). */
  private stage(bytes: Uint8Array, at: number, length: number): void {
    const stageBytes = this.txStage;
    if (stageBytes === null) return;
    const hashed = this.flowOf(bytes, at, length);
    const e = this.txCount;
    const o = e * this.stride;
    let headerLength: number;
    if (this.remoteAddress !== null) {
      const header = this.remoteHeader();
      headerLength = header.length;
      if (headerLength + length > this.stride) {
        this.counters.tx_errors++;
        return;
      }
      copyBytes(header, 0, stageBytes, o, headerLength);
      const h = hashed ? this.key.hash() : ethernetHash(bytes, at, length);
      this.txSocketOf[e] = (h >>> 0) % this.batchTx.length;
    } else {
      const slot = hashed ? this.findReply() : -1;
      if (slot < 0) {
        this.counters.tx_no_tunnel++;
        return;
      }
      headerLength = this.replyHeaderLengths[slot];
      if (headerLength + length > this.stride) {
        this.counters.tx_errors++;
        return;
      }
      copyBytes(this.replyHeaders, slot * this.maxHeaderLength(), stageBytes, o, headerLength);
      copyBytes(
        this.replyRecords,
        slot * ADDRESS_RECORD_BYTES,
        this.txDestinations,
        e * ADDRESS_RECORD_BYTES,
        ADDRESS_RECORD_BYTES,
      );
    }
    copyBytes(bytes, at, stageBytes, o + headerLength, length);
    this.txOffsets[e] = o;
    this.txLengths[e] = headerLength + length;
    this.txCount = e + 1;
    if (this.txCount === IO_BATCH) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushStaged);
    }
  }

  /** Sends the staged datagrams: one sendmmsg per socket. */
  private flush(): void {
    const count = this.txCount;
    const stageBytes = this.txStage;
    if (count === 0 || stageBytes === null) return;
    this.txCount = 0;
    if (this.remoteAddress === null) {
      if (this.batchRx !== null)
        this.countSent(
          count,
          this.batchRx.send(stageBytes, this.txOffsets, this.txLengths, count, this.txDestinations),
        );
      return;
    }
    for (let s = 0; s < this.batchTx.length; s++) {
      let k = 0;
      for (let e = 0; e < count; e++) {
        if (this.txSocketOf[e] !== s) continue;
        this.sendOffsets[k] = this.txOffsets[e];
        this.sendLengths[k++] = this.txLengths[e];
      }
      if (k > 0)
        this.countSent(k, this.batchTx[s].send(stageBytes, this.sendOffsets, this.sendLengths, k, null));
    }
  }

  private countSent(count: number, sent: number): void {
    const ok = sent > 0 ? sent : 0;
    this.counters.tx += ok;
    this.counters.tx_errors += count - ok;
  }

  /** The reply-table slot holding `key`'s flow (either direction), or -1. */
  private findReply(): number {
    const slot = this.key.symmetricHash() & this.replyMask;
    if (this.replyUsed[slot] === 0) return -1;
    if (this.key.equalsAt(this.replyKeys, slot * FLOW_KEY_WORDS)) return slot;
    this.key.reverse();
    const found = this.key.equalsAt(this.replyKeys, slot * FLOW_KEY_WORDS);
    this.key.reverse();
    return found ? slot : -1;
  }

  private ioError(what: string, error: unknown): NfvError {
    const code = (error as { code?: string }).code ?? 'error';
    const message = error instanceof Error ? error.message : String(error);
    return new NfvError(
      'NFV_ERR_IO',
      `${this.kind} port ${this.name}: ${what}: ${code}`,
      { port: this.name, errno: code, reason: message },
      { cause: error },
    );
  }
}

/** FNV-1a over the Ethernet addresses and EtherType: the source-port hash for frames without IP (ARP). */
function ethernetHash(bytes: Uint8Array, at: number, length: number): number {
  let h = 0x811c9dc5;
  const end = at + Math.min(length, 14);
  for (let i = at; i < end; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h | 0;
}

function addressFamily(address: string, who: string, field: string): 'udp4' | 'udp6' {
  const version = isIP(address);
  if (version === 0)
    throw new NfvError(
      'NFV_ERR_BAD_ADDRESS',
      `${who}: ${field} must be an IPv4 or IPv6 address, not '${address}'`,
      {
        field,
      },
    );
  return version === 6 ? 'udp6' : 'udp4';
}

function checkPort(port: number, who: string, field: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff)
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${who}: ${field} must be a UDP port 0…65535`, { field });
  return port;
}

function positiveInteger(value: number, who: string, field: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${who}: ${field} must be a positive integer`, { field });
  return value;
}

/** Closes a socket that may never have bound (close() throws ERR_SOCKET_DGRAM_NOT_RUNNING then). */
function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // Already closed or never running: nothing to release.
  }
}

function bindSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function connectSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.connect(port, address, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

/**
 * One spelling per address, so that two ports bound to `::1` and `0:0::1` are known for one
 * socket (a live apply takes it over instead of failing with "address in use"): IPv6 in RFC 5952
 * form; IPv4 (dotted quads have one spelling) and anything unparsable as given.
 */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  const bytes = new Uint8Array(16);
  return parseIpv6(address, bytes) ? formatIpv6(bytes) : address;
}
