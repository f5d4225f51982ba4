/**
 * Frames for the IDS tests and benchmark: Ethernet / IPv4 or IPv6 (by the address text) / TCP or
 * UDP with a payload, checksums filled; a TCP conversation builder that tracks sequence numbers; and
 * IP fragments of such a frame (IPv4, or IPv6 with a Fragment header), for the reassembly tests.
 */
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr, Ipv4View } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
const encoder = new TextEncoder();

export function bytesOf(payload: Uint8Array | string): Uint8Array {
  return typeof payload === 'string' ? encoder.encode(payload) : payload;
}

export interface SegmentSpec {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
  seq: number;
  ack?: number;
  payload?: Uint8Array | string;
}

function ipFrame(
  src: string,
  dst: string,
  protocol: number,
  l4Length: number,
): { bytes: Uint8Array; l4At: number; pseudo: number } {
  const v6 = src.includes(':');
  const ipLength = v6 ? 40 : 20;
  const bytes = new Uint8Array(14 + ipLength + l4Length);
  EthernetRepr.emit({ ...ETH, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 }, bytes);
  if (v6) Ipv6Repr.emit({ src, dst, nextHeader: protocol, payloadLength: l4Length }, bytes, 14);
  else Ipv4Repr.emit({ src, dst, protocol, payloadLength: l4Length }, bytes, 14);
  const pseudo = v6
    ? pseudoHeaderSumV6(bytes, 14 + 8, 14 + 24, protocol, l4Length)
    : pseudoHeaderSumV4(ipv4(src), ipv4(dst), protocol, l4Length);
  return { bytes, l4At: 14 + ipLength, pseudo };
}

export function tcpSegment(spec: SegmentSpec): Uint8Array {
  const payload = bytesOf(spec.payload ?? '');
  const { bytes, l4At, pseudo } = ipFrame(spec.src, spec.dst, IpProtocol.Tcp, 20 + payload.length);
  bytes.set(payload, l4At + 20);
  TcpRepr.emit(
    {
      srcPort: spec.srcPort,
      dstPort: spec.dstPort,
      seq: spec.seq >>> 0,
      ack: (spec.ack ?? 0) >>> 0,
      flags: spec.flags,
      window: 65535,
      urgentPointer: 0,
      options: new Uint8Array(0),
      payloadLength: payload.length,
    },
    bytes,
    l4At,
    pseudo,
  );
  return bytes;
}

export function udpPacket(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array | string,
): Uint8Array {
  const data = bytesOf(payload);
  const { bytes, l4At, pseudo } = ipFrame(src, dst, IpProtocol.Udp, 8 + data.length);
  bytes.set(data, l4At + 8);
  UdpRepr.emit({ srcPort, dstPort, payloadLength: data.length }, bytes, l4At, pseudo);
  return bytes;
}

/**
 * A TCP connection between a client and a server: the handshake, then data segments with the right
 * sequence numbers (`at` places a segment at a byte offset of the direction's stream, for
 * out-of-order and overlapping tests).
 */
export class Conversation {
  private readonly isn = [1000, 5000];
  constructor(
    readonly client: string,
    readonly server: string,
    readonly clientPort = 40000,
    readonly serverPort = 80,
  ) {}

  handshake(): Uint8Array[] {
    const [c, s] = this.isn;
    return [
      this.segment(0, SYN, c, 0),
      this.segment(1, SYN | ACK, s, c + 1),
      this.segment(0, ACK, c + 1, s + 1),
    ];
  }

  /** A data segment of direction 0 (client → server) or 1, at stream offset `at`. */
  data(direction: 0 | 1, at: number, payload: Uint8Array | string, flags = ACK | PSH): Uint8Array {
    const seq = this.isn[direction] + 1 + at;
    return this.segment(direction, flags, seq, this.isn[1 - direction] + 1, payload);
  }

  private segment(
    direction: number,
    flags: number,
    seq: number,
    ack: number,
    payload: Uint8Array | string = '',
  ): Uint8Array {
    const toServer = direction === 0;
    return tcpSegment({
      src: toServer ? this.client : this.server,
      dst: toServer ? this.server : this.client,
      srcPort: toServer ? this.clientPort : this.serverPort,
      dstPort: toServer ? this.serverPort : this.clientPort,
      flags,
      seq,
      ack,
      payload,
    });
  }
}

export interface FragmentOptions {
  /** IPv4 identification (16 bits) or IPv6 fragment identification (32 bits); 0x1234 by default. */
  id?: number;
  /** The MF flag; by default set unless the fragment reaches the end of the payload. */
  more?: boolean;
  /** The fragment's bytes instead of the original ones (an overlap with different bytes). */
  data?: Uint8Array | string;
}

/**
 * One fragment of the IP packet in `frame` (Ethernet + IPv4 without options or IPv6 without
 * extension headers, as the builders above make): bytes [offset, offset + length) of its IP payload
 * (the transport header included), at fragment offset `offset` (a multiple of 8 for a valid one).
 */
export function ipFragment(
  frame: Uint8Array,
  offset: number,
  length: number,
  options: FragmentOptions = {},
): Uint8Array {
  const v6 = frame[12] === 0x86 && frame[13] === 0xdd;
  const ipAt = 14;
  const header = v6 ? 40 : 20;
  const payloadLength = v6
    ? (frame[ipAt + 4] << 8) | frame[ipAt + 5]
    : ((frame[ipAt + 2] << 8) | frame[ipAt + 3]) - header;
  const payload = frame.subarray(ipAt + header, ipAt + header + payloadLength);
  const data = options.data === undefined ? payload.subarray(offset, offset + length) : bytesOf(options.data);
  const more = options.more ?? offset + data.length < payloadLength;
  const id = options.id ?? 0x1234;
  const extra = v6 ? 8 : 0;
  const out = new Uint8Array(ipAt + header + extra + data.length);
  out.set(frame.subarray(0, ipAt + header));
  out.set(data, ipAt + header + extra);
  if (v6) {
    const f = ipAt + header;
    out[f] = frame[ipAt + 6];
    out[ipAt + 6] = IpProtocol.Ipv6Fragment;
    const n = extra + data.length;
    out[ipAt + 4] = n >>> 8;
    out[ipAt + 5] = n & 0xff;
    const offsetFlags = (offset & 0xfff8) | (more ? 1 : 0);
    out[f + 2] = offsetFlags >>> 8;
    out[f + 3] = offsetFlags & 0xff;
    new DataView(out.buffer).setUint32(f + 4, id >>> 0);
  } else {
    const ip = new Ipv4View().attachUnchecked(out, ipAt);
    ip.setTotalLength(header + data.length);
    ip.setIdentification(id & 0xffff);
    ip.setFragment(false, more, offset);
    ip.fillChecksum();
  }
  return out;
}

/** The IP payload of `frame` cut at `cuts` (payload offsets, ascending) into fragments, in order. */
export function ipFragments(frame: Uint8Array, cuts: number[], id?: number): Uint8Array[] {
  const v6 = frame[12] === 0x86 && frame[13] === 0xdd;
  const payloadLength = v6 ? (frame[18] << 8) | frame[19] : ((frame[16] << 8) | frame[17]) - 20;
  const edges = [0, ...cuts, payloadLength];
  const out: Uint8Array[] = [];
  for (let k = 0; k + 1 < edges.length; k++)
    out.push(ipFragment(frame, edges[k], edges[k + 1] - edges[k], { id }));
  return out;
}
