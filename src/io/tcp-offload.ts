/**
 * TCP super-packets: the offloads a virtio NIC and Linux's TAP device share (TSO/GSO, partial
 * checksums), so a TCP stream crosses a chain as frames of up to 64 KiB instead of one per MSS.
 *
 * A super-packet is an Ethernet frame holding one IPv4 or IPv6 packet whose TCP payload is longer
 * than its segment size (the sender's MSS): the segments it stands for share every header but the
 * IP length and id, the sequence number and the FIN/PSH/CWR flags. Its IP header is complete (total
 * length = the whole packet, IPv4 header checksum valid); its TCP checksum is left *partial*, as
 * Linux's CHECKSUM_PARTIAL: the field holds the folded, uncomplemented sum of the pseudo-header over
 * the whole TCP length, and whoever cuts the segments completes each one's checksum.
 *
 * NFs rewrite super-packets like any packet (addresses, ports, TTL); their incremental checksum
 * updates leave the partial field meaningless, so nothing here trusts it: `partialChecksum` is
 * written again from the final headers before a super-packet leaves through an offloading TAP
 * device, and `TcpSegmenter` computes every segment's checksum from scratch for ports that take
 * only wire-sized frames (the host's software GSO).
 *
 * The virtio-net header (virtio 1.x §5.1.6, `struct virtio_net_hdr`, 10 bytes, little-endian on
 * this machine) precedes each frame read from or written to an offloading TAP device:
 *
 *   byte 0 flags (1 NEEDS_CSUM) │ 1 gso_type (0 none, 1 TCPv4, 4 TCPv6, | 0x80 ECN) │ 2 hdr_len
 *   │ 4 gso_size │ 6 csum_start │ 8 csum_offset                        (u16 fields little-endian)
 *
 * @example
 * const shape = new SuperPacketShape();
 * if (shape.read(frame, 0, length)) checksumField = partialChecksum(frame, 0, length, shape);
 */
import { copyBytes } from './capture-buffer.js';
import {
  foldSum,
  internetChecksum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  sum16,
} from '../packet/checksum.js';

export const VNET_HEADER_LENGTH = 10;
export const VnetFlag = { NeedsChecksum: 1, DataValid: 2 } as const;
export const VnetGso = { None: 0, TcpV4: 1, Udp: 3, TcpV6: 4, Ecn: 0x80 } as const;
export const VnetField = {
  Flags: 0,
  GsoType: 1,
  HeaderLength: 2,
  GsoSize: 4,
  ChecksumStart: 6,
  ChecksumOffset: 8,
} as const;

/** Smallest segment size accepted (Linux's TCP_MIN_SND_MSS): bounds the segments one frame makes. */
export const MIN_SEGMENT_SIZE = 48;
/** The largest frame a super-packet can be: an Ethernet header and a 65,535-byte IP packet. */
export const MAX_SUPER_FRAME = 14 + 0xffff;
/**
 * Slot size for a TAP port with offloads, and the pool slot size its chains need: a super-frame
 * with its virtio-net header and, in TUN mode, the synthesized Ethernet header, rounded up to the
 * pool's 64-byte multiple (65,600).
 */
export const SUPER_PACKET_SLOT_SIZE = Math.ceil((MAX_SUPER_FRAME + VNET_HEADER_LENGTH + 14) / 64) * 64;

const ETHERNET_HEADER = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const PROTO_TCP = 6;
const IPV6_HEADER = 40;
const TCP_MIN_HEADER = 20;
const TCP_CHECKSUM_AT = 16;
const TCP_FLAGS_AT = 13;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/**
 * Where the headers of a TCP frame lie (offsets from the frame's start), read by `read` from an
 * Ethernet frame carrying IPv4 (no fragment) or IPv6 (TCP as the first next header) and TCP.
 */
export class SuperPacketShape {
  /** 4 or 6. */
  version = 0;
  /** The IP header's offset (14). */
  l3 = 0;
  /** The TCP header's offset. */
  l4 = 0;
  /** Ethernet + IP + TCP headers: where the payload starts. */
  headerLength = 0;

  /**
   * True when `bytes[at, at+length)` is an Ethernet frame of TCP over IPv4 or IPv6 whose IP length
   * is exactly the frame's, with every header inside it. Never throws.
   */
  read(bytes: Uint8Array, at: number, length: number): boolean {
    if (length < ETHERNET_HEADER + 20 + TCP_MIN_HEADER) return false;
    const etherType = (bytes[at + 12] << 8) | bytes[at + 13];
    const l3 = ETHERNET_HEADER;
    let l4: number;
    if (etherType === ETHERTYPE_IPV4) {
      if (bytes[at + l3] >> 4 !== 4 || bytes[at + l3 + 9] !== PROTO_TCP) return false;
      l4 = l3 + (bytes[at + l3] & 0x0f) * 4;
      const total = (bytes[at + l3 + 2] << 8) | bytes[at + l3 + 3];
      const fragment = ((bytes[at + l3 + 6] & 0x3f) << 8) | bytes[at + l3 + 7]; // MF + offset
      if (l4 < l3 + 20 || fragment !== 0 || l3 + total !== length) return false;
      this.version = 4;
    } else if (etherType === ETHERTYPE_IPV6) {
      if (bytes[at + l3] >> 4 !== 6 || bytes[at + l3 + 6] !== PROTO_TCP) return false;
      const payload = (bytes[at + l3 + 4] << 8) | bytes[at + l3 + 5];
      l4 = l3 + IPV6_HEADER;
      if (l4 + payload !== length) return false;
      this.version = 6;
    } else return false;
    if (l4 + TCP_MIN_HEADER > length) return false;
    const headerLength = l4 + (bytes[at + l4 + 12] >> 4) * 4;
    if (headerLength < l4 + TCP_MIN_HEADER || headerLength > length) return false;
    this.l3 = l3;
    this.l4 = l4;
    this.headerLength = headerLength;
    return true;
  }

  /** The unfolded pseudo-header sum of this frame's IP addresses for a TCP length of `l4Length`. */
  pseudoSum(bytes: Uint8Array, at: number, l4Length: number): number {
    const ip = at + this.l3;
    if (this.version === 4) {
      const src = (bytes[ip + 12] << 24) | (bytes[ip + 13] << 16) | (bytes[ip + 14] << 8) | bytes[ip + 15];
      const dst = (bytes[ip + 16] << 24) | (bytes[ip + 17] << 16) | (bytes[ip + 18] << 8) | bytes[ip + 19];
      return pseudoHeaderSumV4(src >>> 0, dst >>> 0, PROTO_TCP, l4Length);
    }
    return pseudoHeaderSumV6(bytes, ip + 8, ip + 24, PROTO_TCP, l4Length);
  }
}

/**
 * The partial TCP checksum a super-packet leaves with: the pseudo-header sum over its whole TCP
 * length, folded and not complemented, computed from its headers as they are now.
 */
export function partialChecksum(
  bytes: Uint8Array,
  at: number,
  length: number,
  shape: SuperPacketShape,
): number {
  return foldSum(shape.pseudoSum(bytes, at, length - shape.l4));
}

/**
 * Completes a checksum the kernel left partial (NEEDS_CSUM without GSO): the field at
 * `start + offset` holds the pseudo-header sum; the checksum covers `start` to the packet's end.
 * Offsets are from `at`. False, changing nothing, when the field does not lie inside the packet.
 */
export function completePartialChecksum(
  bytes: Uint8Array,
  at: number,
  length: number,
  start: number,
  offset: number,
): boolean {
  const field = start + offset;
  if (start >= length || field + 2 > length || offset < 0) return false;
  let checksum = ~foldSum(sum16(bytes, at + start, length - start)) & 0xffff;
  // UDP (its checksum is 6 bytes in) sends a computed 0 as 0xFFFF: 0 means "no checksum" (RFC 768).
  if (checksum === 0 && offset === 6) checksum = 0xffff;
  bytes[at + field] = checksum >> 8;
  bytes[at + field + 1] = checksum & 0xff;
  return true;
}

/** Where the segments of a super-packet go: an output port. */
export interface SegmentSink {
  write(bytes: Uint8Array, at: number, length: number, seconds: number, nanos: number): void;
}

/** Uint32Array reads little-endian words here (every machine nfvisor runs on; checked once). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Software GSO: cuts a TCP super-packet into segments of at most `segmentSize` payload bytes, each
 * a complete frame with its own IP length (IPv4: id + n, header checksum), sequence number, flags
 * (FIN and PSH only on the last, CWR only on the first) and full TCP checksum — what Linux's
 * tcp_gso_segment makes when a device cannot. One scratch frame, allocated once; each segment's
 * payload is summed as 32-bit words (RFC 1071 §2: the sum does not depend on byte order), which
 * is the whole cost of a segment beyond its copy.
 */
export class TcpSegmenter {
  private readonly scratch = new Uint8Array(MAX_SUPER_FRAME + 8);
  private readonly words = new Uint32Array(this.scratch.buffer, 0, (MAX_SUPER_FRAME + 8) >> 2);
  private readonly shape = new SuperPacketShape();

  /**
   * Writes the segments of `bytes[at, at+length)` to `sink`; returns how many, or -1 (nothing
   * written) when the frame is not a TCP super-packet this can cut or `segmentSize` is below
   * MIN_SEGMENT_SIZE.
   */
  segment(
    bytes: Uint8Array,
    at: number,
    length: number,
    segmentSize: number,
    sink: SegmentSink,
    seconds: number,
    nanos: number,
  ): number {
    const shape = this.shape;
    if (segmentSize < MIN_SEGMENT_SIZE || !shape.read(bytes, at, length)) return -1;
    const s = this.scratch;
    const headers = shape.headerLength;
    // The frame sits in the scratch so that its payload starts on a 4-byte boundary.
    const base = (4 - (headers & 3)) & 3;
    const ip = base + shape.l3;
    const l4 = base + shape.l4;
    const payloadAt = base + headers;
    const checksumAt = l4 + TCP_CHECKSUM_AT;
    const payload = length - headers;
    copyBytes(bytes, at, s, base, headers);
    const firstSeq =
      ((bytes[at + shape.l4 + 4] << 24) |
        (bytes[at + shape.l4 + 5] << 16) |
        (bytes[at + shape.l4 + 6] << 8) |
        bytes[at + shape.l4 + 7]) >>>
      0;
    const firstId = (bytes[at + shape.l3 + 4] << 8) | bytes[at + shape.l3 + 5];
    const flags = bytes[at + shape.l4 + TCP_FLAGS_AT];
    let count = 0;
    let offset = 0;
    // At least one segment: a super-packet whose payload an NF emptied still leaves as one.
    do {
      const size = Math.min(segmentSize, payload - offset);
      const last = offset + size >= payload;
      copyBytes(bytes, at + headers + offset, s, payloadAt, size);
      const l4Length = payloadAt - l4 + size;
      if (shape.version === 4) {
        const total = payloadAt - ip + size;
        s[ip + 2] = total >> 8;
        s[ip + 3] = total & 0xff;
        const id = (firstId + count) & 0xffff;
        s[ip + 4] = id >> 8;
        s[ip + 5] = id & 0xff;
        s[ip + 10] = 0;
        s[ip + 11] = 0;
        const ipChecksum = internetChecksum(s, ip, l4 - ip);
        s[ip + 10] = ipChecksum >> 8;
        s[ip + 11] = ipChecksum & 0xff;
      } else {
        s[ip + 4] = l4Length >> 8;
        s[ip + 5] = l4Length & 0xff;
      }
      const seq = (firstSeq + offset) >>> 0;
      s[l4 + 4] = seq >>> 24;
      s[l4 + 5] = (seq >>> 16) & 0xff;
      s[l4 + 6] = (seq >>> 8) & 0xff;
      s[l4 + 7] = seq & 0xff;
      let segmentFlags = flags;
      if (!last) segmentFlags &= ~(TCP_FIN | TCP_PSH);
      if (count > 0) segmentFlags &= ~TCP_CWR;
      s[l4 + TCP_FLAGS_AT] = segmentFlags;
      s[checksumAt] = 0;
      s[checksumAt + 1] = 0;
      const sum =
        sum16(s, l4, payloadAt - l4, shape.pseudoSum(s, base, l4Length)) + this.payloadSum(payloadAt, size);
      const checksum = ~foldSum(sum) & 0xffff;
      s[checksumAt] = checksum >> 8;
      s[checksumAt + 1] = checksum & 0xff;
      sink.write(s, base, payloadAt - base + size, seconds, nanos);
      count++;
      offset += segmentSize;
    } while (offset < payload);
    return count;
  }

  /** The one's complement sum (unfolded, big-endian words) of scratch[at, at+size); `at` is 4-aligned. */
  private payloadSum(at: number, size: number): number {
    if (!LITTLE_ENDIAN) return sum16(this.scratch, at, size);
    const w = this.words;
    const first = at >> 2;
    const end = first + (size >> 2);
    let sum = 0; // < 2^46 for 64 KiB: exact in a double
    for (let i = first; i < end; i++) sum += w[i];
    // Fold to 16 bits of little-endian words, then swap to the big-endian sum (RFC 1071 §2B).
    while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
    const swapped = ((sum & 0xff) << 8) | (sum >> 8);
    const tail = size & 3;
    return tail === 0 ? swapped : sum16(this.scratch, at + size - tail, tail, swapped);
  }
}
