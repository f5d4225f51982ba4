/**
 * ICMP for IPv6 (RFC 4443): a zero-copy view over a whole message, and a plain representation for
 * building. The checksum covers an IPv6 pseudo-header (RFC 8200 §8.1) as well as the message, so
 * `attach` cannot verify it alone: the caller passes the pseudo-header sum to `verifyChecksum`.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   |           Identifier          |        Sequence Number        |  (echo; other types: rest of header)
 *   |     Data ...  (echo: the echoed data; errors: as much of the offending packet as fits in 1280)
 *   +-+-+-+-+-
 */
import { read16, read32, write16 } from './bytes.js';
import { internetChecksum } from './checksum.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the ICMPv6 header fields; every accessor goes through this table. */
export const Icmpv6Field = {
  Type: 0,
  Code: 1,
  Checksum: 2,
  /** Echo identifier; for other types the first half of the 4-byte "rest of header". */
  Identifier: 4,
  Sequence: 6,
  Payload: 8,
} as const;

export const ICMPV6_HEADER_LENGTH = Icmpv6Field.Payload;

/**
 * ICMPv6 message types nfvisor names (IANA "ICMPv6 Type Numbers"; RFC 4443, RFC 4861 for neighbour
 * discovery); others pass as plain numbers. Types below 128 are errors, 128 and above informational.
 */
export const Icmpv6Type = {
  DestinationUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParameterProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  RouterSolicitation: 133,
  RouterAdvertisement: 134,
  NeighborSolicitation: 135,
  NeighborAdvertisement: 136,
} as const;
export type Icmpv6Type = number;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over one ICMPv6 message. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const icmp = new Icmpv6View();
 * const pseudo = pseudoHeaderSumV6(frame, ip.srcAt(), ip.dstAt(), IpProtocol.Icmpv6, ip.upperLength());
 * if (icmp.attach(frame, ip.upperAt(), ip.upperLength()) === DropReason.None && icmp.verifyChecksum(pseudo))
 *   flow = icmp.identifier();
 */
export class Icmpv6View {
  bytes: Uint8Array = EMPTY;
  /** Offset of the message's first byte in `bytes`. */
  at = 0;
  /** Message length (from the IP header), header included. */
  length = 0;

  /**
   * Attaches to untrusted bytes: `length` is the upper-layer length the IPv6 header gives. Checks
   * that the header and the whole message are present; the checksum is `verifyChecksum`'s job.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.length = Math.max(0, length);
    if (this.length < ICMPV6_HEADER_LENGTH || this.length > bytes.length - at) return DropReason.Truncated;
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission). */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.length = length;
    return this;
  }

  type(): number {
    return this.bytes[this.at + Icmpv6Field.Type];
  }
  code(): number {
    return this.bytes[this.at + Icmpv6Field.Code];
  }
  checksum(): number {
    return read16(this.bytes, this.at + Icmpv6Field.Checksum);
  }
  /** Echo identifier (meaningful for echo request and reply). */
  identifier(): number {
    return read16(this.bytes, this.at + Icmpv6Field.Identifier);
  }
  /** Echo sequence number (meaningful for echo request and reply). */
  sequence(): number {
    return read16(this.bytes, this.at + Icmpv6Field.Sequence);
  }
  /** The 4 bytes after the checksum as one number (Packet Too Big MTU, Parameter Problem pointer, NA flags). */
  restOfHeader(): number {
    return read32(this.bytes, this.at + Icmpv6Field.Identifier);
  }
  /** Offset of the data after the 8-byte header in `bytes`. */
  payloadAt(): number {
    return this.at + ICMPV6_HEADER_LENGTH;
  }
  payloadLength(): number {
    return this.length - ICMPV6_HEADER_LENGTH;
  }
  /**
   * True when the checksum verifies over the message and the IPv6 pseudo-header whose unfolded sum
   * is `pseudoSum` (`pseudoHeaderSumV6(bytes, srcAt, dstAt, 58, length)`).
   */
  verifyChecksum(pseudoSum: number): boolean {
    return internetChecksum(this.bytes, this.at, this.length, pseudoSum) === 0;
  }

  setType(value: number): void {
    this.bytes[this.at + Icmpv6Field.Type] = value;
  }
  setCode(value: number): void {
    this.bytes[this.at + Icmpv6Field.Code] = value;
  }
  setChecksum(value: number): void {
    write16(this.bytes, this.at + Icmpv6Field.Checksum, value);
  }
  setIdentifier(value: number): void {
    write16(this.bytes, this.at + Icmpv6Field.Identifier, value);
  }
  setSequence(value: number): void {
    write16(this.bytes, this.at + Icmpv6Field.Sequence, value);
  }
  /** Recomputes the checksum over the whole message (`length` bytes) and the pseudo-header sum. */
  fillChecksum(pseudoSum: number): void {
    this.setChecksum(0);
    this.setChecksum(internetChecksum(this.bytes, this.at, this.length, pseudoSum));
  }
}

/** A plain ICMPv6 message for building and comparing packets. */
export interface Icmpv6Repr {
  type: number;
  code: number;
  /** Echo identifier, or the first 16 bits of the rest of the header for other types. */
  identifier: number;
  /** Echo sequence number, or the last 16 bits of the rest of the header for other types. */
  sequence: number;
  /** Data after the 8-byte header; none when absent. */
  payload?: Uint8Array;
}

export const Icmpv6Repr = {
  /** Reads a checked view into a representation (the payload is copied). */
  parse(view: Icmpv6View): Icmpv6Repr {
    return {
      type: view.type(),
      code: view.code(),
      identifier: view.identifier(),
      sequence: view.sequence(),
      payload: view.bytes.slice(view.payloadAt(), view.payloadAt() + view.payloadLength()),
    };
  },

  /** Message length `emit` writes: header and payload. */
  messageLength(repr: Icmpv6Repr): number {
    return ICMPV6_HEADER_LENGTH + (repr.payload?.length ?? 0);
  },

  /**
   * Writes the whole message at `bytes[at]` with its checksum over `pseudoSum`, the IPv6
   * pseudo-header sum for this message's length. Returns the message length.
   */
  emit(repr: Icmpv6Repr, bytes: Uint8Array, at: number, pseudoSum: number, view = new Icmpv6View()): number {
    const length = Icmpv6Repr.messageLength(repr);
    view.attachUnchecked(bytes, at, length);
    view.setType(repr.type);
    view.setCode(repr.code);
    view.setIdentifier(repr.identifier);
    view.setSequence(repr.sequence);
    bytes.set(repr.payload ?? EMPTY, view.payloadAt());
    view.fillChecksum(pseudoSum);
    return length;
  },
};
