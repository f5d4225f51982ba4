/**
 * A UDP socket moved in batches by the native addon: one `recvmmsg` fills up to a batch of
 * datagrams straight into caller memory (offsets into one byte array), one `sendmmsg` sends a
 * batch, and a one-shot event-loop watch says when the socket has become readable. No JS object is
 * made per datagram; senders and destinations are 20-byte address records
 * (`ADDRESS_RECORD_BYTES`: family 4|6, port big endian, address).
 *
 * Node's dgram does one recvmsg per datagram (see ECOSYSTEM.md); the tunnel ports use this socket
 * when `loadNativeAddon()` finds the addon, and dgram otherwise.
 *
 * @example
 * const socket = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 1 << 20);
 * socket.watch(() => { const n = socket.receive(bytes, offsets, lengths, 64, 2048, senders); … });
 * socket.arm();
 */
import { ADDRESS_RECORD_BYTES, type NativeAddon, type NativeWatch } from './native-addon.js';

export class UdpBatchSocket {
  private watcher: NativeWatch | null = null;
  private closed = false;

  private constructor(
    private readonly addon: NativeAddon,
    readonly fd: number,
    /** The bound UDP port (the kernel's choice when 0 was asked). */
    readonly port: number,
    private readonly ipv6: boolean,
  ) {}

  /**
   * Opens a non-blocking socket bound to `address:port`. Throws the addon's Error, whose `code`
   * is the errno name (EADDRINUSE, EACCES, EADDRNOTAVAIL); callers wrap it naming their port.
   */
  static open(
    addon: NativeAddon,
    family: 'udp4' | 'udp6',
    address: string,
    port: number,
    receiveBuffer: number,
  ): UdpBatchSocket {
    const [fd, bound] = addon.udpOpen(family === 'udp6', address, port, receiveBuffer);
    return new UdpBatchSocket(addon, fd, bound, family === 'udp6');
  }

  /** Fixes the peer: `send(…, null)` then goes there (and the kernel skips the address lookup). */
  connect(address: string, port: number): void {
    this.addon.udpConnect(this.fd, this.ipv6, address, port);
  }

  /** Datagrams read (≥ 0) or -errno; datagram i at bytes[offsets[i]..], lengths[i] > room when cut. */
  receive(
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    room: number,
    senders: Uint8Array,
  ): number {
    if (this.closed) return 0;
    return this.addon.recvBatch(this.fd, bytes, offsets, lengths, count, room, senders);
  }

  /** Datagrams the kernel took (≥ 0) or -errno; `destinations` null sends to the connected peer. */
  send(
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    destinations: Uint8Array | null,
  ): number {
    if (this.closed) return -9; // EBADF
    return this.addon.sendBatch(this.fd, bytes, offsets, lengths, count, destinations);
  }

  /** Sets the function `arm()` calls back (once per arming) when the socket is readable; replaces an earlier one. */
  watch(onReadable: () => void): void {
    if (this.closed) return;
    if (this.watcher !== null) this.addon.watchStop(this.watcher); // one uv_poll per fd: stop before the new one
    this.watcher = this.addon.watchCreate(this.fd, onReadable);
  }

  /** Asks for one call of the watch function when the socket is (or becomes) readable. */
  arm(): void {
    if (this.watcher !== null && !this.closed) this.addon.watchArm(this.watcher);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watcher !== null) this.addon.watchStop(this.watcher);
    this.watcher = null;
    this.addon.closeFd(this.fd);
  }
}

/** Writes an address record for `address` (a dotted quad or IPv6 text) and `port` at `records[at..]`. */
export function writeAddressRecord(records: Uint8Array, at: number, address: string, port: number): void {
  records.fill(0, at, at + ADDRESS_RECORD_BYTES);
  records[at + 2] = port >>> 8;
  records[at + 3] = port & 0xff;
  if (address.includes(':')) {
    records[at] = 6;
    const groups = expandIpv6(address);
    for (let g = 0; g < 8; g++) {
      records[at + 4 + 2 * g] = groups[g] >>> 8;
      records[at + 5 + 2 * g] = groups[g] & 0xff;
    }
  } else {
    records[at] = 4;
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) records[at + 4 + i] = Number(parts[i]) & 0xff;
  }
}

/** The address and port of the record at `records[at..]`, as text (tests and messages). */
export function readAddressRecord(records: Uint8Array, at: number): { address: string; port: number } {
  const port = (records[at + 2] << 8) | records[at + 3];
  if (records[at] === 6) {
    const groups: string[] = [];
    for (let g = 0; g < 8; g++)
      groups.push(((records[at + 4 + 2 * g] << 8) | records[at + 5 + 2 * g]).toString(16));
    return { address: groups.join(':'), port };
  }
  return { address: Array.from(records.subarray(at + 4, at + 8)).join('.'), port };
}

/** The eight 16-bit groups of an IPv6 address already validated by `net.isIP`. */
function expandIpv6(address: string): number[] {
  let text = address;
  const percent = text.indexOf('%');
  if (percent >= 0) text = text.slice(0, percent);
  const tail: number[] = [];
  // An embedded IPv4 tail (::ffff:192.0.2.1) is the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, null];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const first = parse(head);
  const last = rest === null ? [] : parse(rest);
  const missing = 8 - tail.length - first.length - last.length;
  return [...first, ...new Array<number>(rest === null ? 0 : missing).fill(0), ...last, ...tail];
}
