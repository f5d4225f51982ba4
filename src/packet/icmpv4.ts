/**
 * ICMP for IPv4 (RFC 792): a zero-copy view over a whole message, and a plain representation for
 * building. The checksum covers the whole message (no pseudo-header), so `attach` verifies it.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   |           Identifier          |        Sequence Number        |  (echo; other types: rest of header)
 *   |     Data ...  (echo: the echoed data; errors: the offending IP header + 8 bytes)
 *   +-+-+-+-+-
 */
import { read16, read32, write16 } from './bytes.js';
import { internetChecksum } from './checksum.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the ICMPv4 header fields; every accessor goes through this table. */
export const Icmpv4Field = {
  Type: 0,
  Code: 1,
  Checksum: 2,
  /** Echo identifier; for other types the first half of the 4-byte "rest of header". */
  Identifier: 4,
  Sequence: 6,
  Payload: 8,
} as const;

export const ICMPV4_HEADER_LENGTH = Icmpv4Field.Payload;

/** ICMPv4 message types nfvisor names (IANA "ICMP Type Numbers"); others pass as plain numbers. */
export const Icmpv4Type = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  EchoRequest: 8,
  TimeExceeded: 11,
  ParameterProblem: 12,
} as const;
export type Icmpv4Type = number;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over one ICMPv4 message. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const icmp = new Icmpv4View();
 * if (icmp.attach(frame, ip.payloadAt(), ip.payloadLength()) === DropReason.None && icmp.type() === Icmpv4Type.EchoRequest)
 *   flow = icmp.identifier();
 */
export class Icmpv4View {
  bytes: Uint8Array = EMPTY;
  /** Offset of the message's first byte in `bytes`. */
  at = 0;
  /** Message length (from the IP header), header included. */
  length = 0;

  /**
   * Attaches to untrusted bytes: `length` is the message length the IP header gives. Checks that
   * the header and the whole message are present and that the checksum over `length` bytes verifies.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.length = Math.max(0, length);
    if (this.length < ICMPV4_HEADER_LENGTH || this.length > bytes.length - at) return DropReason.Truncated;
    if (internetChecksum(bytes, at, this.length) !== 0) return DropReason.BadChecksum;
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
    return this.bytes[this.at + Icmpv4Field.Type];
  }
  code(): number {
    return this.bytes[this.at + Icmpv4Field.Code];
  }
  checksum(): number {
    return read16(this.bytes, this.at + Icmpv4Field.Checksum);
  }
  /** Echo identifier (meaningful for echo request and reply). */
  identifier(): number {
    return read16(this.bytes, this.at + Icmpv4Field.Identifier);
  }
  /** Echo sequence number (meaningful for echo request and reply). */
  sequence(): number {
    return read16(this.bytes, this.at + Icmpv4Field.Sequence);
  }
  /** The 4 bytes after the checksum as one number (gateway of a Redirect, next-hop MTU, pointer). */
  restOfHeader(): number {
    return read32(this.bytes, this.at + Icmpv4Field.Identifier);
  }
  /** Offset of the data after the 8-byte header in `bytes`. */
  payloadAt(): number {
    return this.at + ICMPV4_HEADER_LENGTH;
  }
  payloadLength(): number {
    return this.length - ICMPV4_HEADER_LENGTH;
  }
  verifyChecksum(): boolean {
    return internetChecksum(this.bytes, this.at, this.length) === 0;
  }

  setType(value: number): void {
    this.bytes[this.at + Icmpv4Field.Type] = value;
  }
  setCode(value: number): void {
    this.bytes[this.at + Icmpv4Field.Code] = value;
  }
  setChecksum(value: number): void {
    write16(this.bytes, this.at + Icmpv4Field.Checksum, value);
  }
  setIdentifier(value: number): void {
    write16(this.bytes, this.at + Icmpv4Field.Identifier, value);
  }
  setSequence(value: number): void {
    write16(this.bytes, this.at + Icmpv4Field.Sequence, value);
  }
  /** Recomputes the checksum over the whole message (`length` bytes). */
  fillChecksum(): void {
    this.setChecksum(0);
    this.setChecksum(internetChecksum(this.bytes, this.at, this.length));
  }
}

/** A plain ICMPv4 message for building and comparing packets. */
export interface Icmpv4Repr {
  type: number;
  code: number;
  /** Echo identifier, or the first 16 bits of the rest of the header for other types. */
  identifier: number;
  /** Echo sequence number, or the last 16 bits of the rest of the header for other types. */
  sequence: number;
  /** Data after the 8-byte header; none when absent. */
  payload?: Uint8Array;
}

export const Icmpv4Repr = {
  /** Reads a checked view into a representation (the payload is copied). */
  parse(view: Icmpv4View): Icmpv4Repr {
    return {
      type: view.type(),
      code: view.code(),
      identifier: view.identifier(),
      sequence: view.sequence(),
      payload: view.bytes.slice(view.payloadAt(), view.payloadAt() + view.payloadLength()),
    };
  },

  /** Message length `emit` writes: header and payload. */
  messageLength(repr: Icmpv4Repr): number {
    return ICMPV4_HEADER_LENGTH + (repr.payload?.length ?? 0);
  },

  /** Writes the whole message with its checksum at `bytes[at]`. Returns the message length. */
  emit(repr: Icmpv4Repr, bytes: Uint8Array, at = 0, view = new Icmpv4View()): number {
    const length = Icmpv4Repr.messageLength(repr);
    view.attachUnchecked(bytes, at, length);
    view.setType(repr.type);
    view.setCode(repr.code);
    view.setIdentifier(repr.identifier);
    view.setSequence(repr.sequence);
    bytes.set(repr.payload ?? EMPTY, view.payloadAt());
    view.fillChecksum();
    return length;
  },
};
