/**
 * UDP (RFC 768): a zero-copy view over a datagram, and a plain representation for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   |            Length             |           Checksum            |
 *   |                          Payload ...                          |
 *
 * Checksum corner cases (RFC 768, RFC 8200 §8.1): a transmitted checksum of 0 means "none" and is
 * accepted over IPv4, but is invalid over IPv6; a computed checksum of 0 is sent as 0xFFFF.
 */
import { read16, write16 } from './bytes.js';
import { internetChecksum } from './checksum.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the UDP header fields; every accessor goes through this table. */
export const UdpField = {
  SrcPort: 0,
  DstPort: 2,
  Length: 4,
  Checksum: 6,
  Payload: 8,
} as const;

export const UDP_HEADER_LENGTH = UdpField.Payload;
/** "No checksum" on the wire (IPv4 only). */
const NO_CHECKSUM = 0;
/** How a computed checksum of 0 is transmitted, so that it is not read as "none". */
const ZERO_CHECKSUM_ON_WIRE = 0xffff;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over a UDP datagram. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const udp = new UdpView();
 * if (udp.attach(frame, ip.payloadAt(), ip.payloadLength()) === DropReason.None) udp.dstPort();
 */
export class UdpView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the IP payload length, clipped to the buffer); may exceed `length()`. */
  available = 0;

  /**
   * Attaches to untrusted bytes and checks the length field against the IP payload length
   * (`length`). The checksum needs the IP pseudo-header: check it with `verifyChecksum`.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    if (this.available < UDP_HEADER_LENGTH) return DropReason.Truncated;
    const datagram = this.length();
    if (datagram < UDP_HEADER_LENGTH) return DropReason.BadLength;
    if (datagram > this.available) return DropReason.Truncated;
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission). */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    return this;
  }

  srcPort(): number {
    return read16(this.bytes, this.at + UdpField.SrcPort);
  }
  dstPort(): number {
    return read16(this.bytes, this.at + UdpField.DstPort);
  }
  /** The length field: header plus payload, in bytes. */
  length(): number {
    return read16(this.bytes, this.at + UdpField.Length);
  }
  checksum(): number {
    return read16(this.bytes, this.at + UdpField.Checksum);
  }
  /** Offset of the payload in `bytes`. */
  payloadAt(): number {
    return this.at + UdpField.Payload;
  }
  /** Payload length from the length field (not from the IP header or the capture). */
  payloadLength(): number {
    return this.length() - UDP_HEADER_LENGTH;
  }

  /**
   * Verifies the checksum over the datagram (`length()` bytes) and the IP pseudo-header sum, which
   * must use `length()` as its L4 length. A checksum of 0 is "none": valid over IPv4, invalid over
   * IPv6 (RFC 8200 §8.1).
   *
   * @example udp.verifyChecksum(pseudoHeaderSumV4(ip.src(), ip.dst(), 17, udp.length()), false)
   */
  verifyChecksum(pseudoSum: number, v6: boolean): boolean {
    if (this.checksum() === NO_CHECKSUM) return !v6;
    return internetChecksum(this.bytes, this.at, this.length(), pseudoSum) === 0;
  }

  setSrcPort(value: number): void {
    write16(this.bytes, this.at + UdpField.SrcPort, value);
  }
  setDstPort(value: number): void {
    write16(this.bytes, this.at + UdpField.DstPort, value);
  }
  setLength(value: number): void {
    write16(this.bytes, this.at + UdpField.Length, value);
  }
  setChecksum(value: number): void {
    write16(this.bytes, this.at + UdpField.Checksum, value);
  }
  /**
   * Computes the checksum over `length()` bytes (write the length and payload first) and the
   * pseudo-header sum; a computed 0 is written as 0xFFFF.
   */
  fillChecksum(pseudoSum: number): void {
    this.setChecksum(0);
    const sum = internetChecksum(this.bytes, this.at, this.length(), pseudoSum);
    this.setChecksum(sum === 0 ? ZERO_CHECKSUM_ON_WIRE : sum);
  }
}

/** A plain UDP header for building and comparing packets. */
export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** Bytes after the 8-byte header. */
  payloadLength: number;
}

export const UdpRepr = {
  /** Reads a checked view into a representation. */
  parse(view: UdpView): UdpRepr {
    return { srcPort: view.srcPort(), dstPort: view.dstPort(), payloadLength: view.payloadLength() };
  },

  /** Header length `emit` writes (always 8). */
  headerLength(_repr?: UdpRepr): number {
    return UDP_HEADER_LENGTH;
  },

  /**
   * Writes the header at `bytes[at]`. With a pseudo-header sum (over header + payload length), the
   * payload must already be in place and the checksum is filled; with `null` the checksum is left 0
   * ("none", IPv4 only). Returns the header length.
   *
   * @example UdpRepr.emit({ srcPort: 5353, dstPort: 53, payloadLength: 12 }, buf, 34, pseudo)
   */
  emit(
    repr: UdpRepr,
    bytes: Uint8Array,
    at = 0,
    pseudoSum: number | null = null,
    view = new UdpView(),
  ): number {
    const length = UDP_HEADER_LENGTH + repr.payloadLength;
    view.attachUnchecked(bytes, at, length);
    view.setSrcPort(repr.srcPort);
    view.setDstPort(repr.dstPort);
    view.setLength(length);
    if (pseudoSum === null) view.setChecksum(NO_CHECKSUM);
    else view.fillChecksum(pseudoSum);
    return UDP_HEADER_LENGTH;
  },
};
