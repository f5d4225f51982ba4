/**
 * TCP (RFC 9293): a zero-copy view over a segment, and a plain representation for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   |                        Sequence Number                        |
 *   |                    Acknowledgment Number                      |
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |           Checksum            |         Urgent Pointer        |
 *   |                    Options (data offset > 5)                  |
 *
 * Options are read in place (`mss()`, `windowScale()`, `sackPermitted()`, `tsVal()`, `tsEcr()`,
 * `findOption()`), so reading them allocates nothing.
 */
import { read16, read32, write16, write32 } from './bytes.js';
import { internetChecksum } from './checksum.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the TCP header fields; every accessor goes through this table. */
export const TcpField = {
  SrcPort: 0,
  DstPort: 2,
  Seq: 4,
  Ack: 8,
  DataOffset: 12,
  Flags: 13,
  Window: 14,
  Checksum: 16,
  UrgentPointer: 18,
  Options: 20,
} as const;

export const TCP_MIN_HEADER_LENGTH = TcpField.Options;
export const TCP_MAX_HEADER_LENGTH = 60;

/** The flag bits of byte 13 (RFC 9293, RFC 3168 for ECE/CWR). @example flags & TcpFlag.Syn */
export const TcpFlag = {
  Fin: 0x01,
  Syn: 0x02,
  Rst: 0x04,
  Psh: 0x08,
  Ack: 0x10,
  Urg: 0x20,
  Ece: 0x40,
  Cwr: 0x80,
} as const;
export type TcpFlag = number;

/** TCP option kinds (IANA "TCP Option Kind Numbers"); unknown kinds are plain numbers. */
export const TcpOption = {
  End: 0,
  Nop: 1,
  Mss: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamp: 8,
} as const;
export type TcpOption = number;

/** Offsets inside one option TLV. */
const OptionField = { Kind: 0, Length: 1, Data: 2 } as const;
/** The only valid total lengths of the options this view decodes (RFC 9293, RFC 7323, RFC 2018). */
const MSS_LENGTH = 4;
const WINDOW_SCALE_LENGTH = 3;
const SACK_PERMITTED_LENGTH = 2;
const TIMESTAMP_LENGTH = 10;
/** Offsets of TSval and TSecr inside the timestamp option. */
const TS_VAL = OptionField.Data;
const TS_ECR = OptionField.Data + 4;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over a TCP segment. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const tcp = new TcpView();
 * if (tcp.attach(frame, ip.payloadAt(), ip.payloadLength()) === DropReason.None && tcp.flags() & TcpFlag.Syn) {
 *   const mss = tcp.mss(); // -1 when absent
 * }
 */
export class TcpView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Segment length (from the IP header), clipped to the buffer: header plus payload. */
  available = 0;

  /**
   * Attaches to untrusted bytes; `length` is the segment length from the IP header. Checks the data
   * offset and the option walk. The checksum needs the IP pseudo-header: check it with
   * `verifyChecksum`.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    if (this.available < TCP_MIN_HEADER_LENGTH) return DropReason.Truncated;
    const headerLength = this.headerLength();
    if (headerLength < TCP_MIN_HEADER_LENGTH) return DropReason.BadHeaderLength;
    if (headerLength > this.available) return DropReason.Truncated;
    if (headerLength > TCP_MIN_HEADER_LENGTH && !this.optionsWellFormed()) return DropReason.BadOption;
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
    return read16(this.bytes, this.at + TcpField.SrcPort);
  }
  dstPort(): number {
    return read16(this.bytes, this.at + TcpField.DstPort);
  }
  /** Sequence number, unsigned 32-bit. */
  seq(): number {
    return read32(this.bytes, this.at + TcpField.Seq);
  }
  /** Acknowledgment number, unsigned 32-bit. */
  ack(): number {
    return read32(this.bytes, this.at + TcpField.Ack);
  }
  /** Header length in bytes (data offset × 4). */
  headerLength(): number {
    return (this.bytes[this.at + TcpField.DataOffset] >>> 4) * 4;
  }
  /** The eight flag bits (`TcpFlag`). */
  flags(): number {
    return this.bytes[this.at + TcpField.Flags];
  }
  window(): number {
    return read16(this.bytes, this.at + TcpField.Window);
  }
  checksum(): number {
    return read16(this.bytes, this.at + TcpField.Checksum);
  }
  urgentPointer(): number {
    return read16(this.bytes, this.at + TcpField.UrgentPointer);
  }
  /** Offset of the payload in `bytes`. */
  payloadAt(): number {
    return this.at + this.headerLength();
  }
  /** Payload length: segment length − header length. */
  payloadLength(): number {
    return this.available - this.headerLength();
  }

  /**
   * Offset in `bytes` of the first option of `kind` (its kind byte), or -1. Stops at End of
   * Option List. Only meaningful after a successful `attach` (the walk is then in bounds).
   */
  findOption(kind: number): number {
    const end = this.at + this.headerLength();
    let i = this.at + TcpField.Options;
    while (i < end) {
      const k = this.bytes[i + OptionField.Kind];
      if (k === TcpOption.End) return -1;
      if (k === kind) return i;
      if (k === TcpOption.Nop) {
        i++;
        continue;
      }
      if (i + 1 >= end) return -1;
      const length = this.bytes[i + OptionField.Length];
      if (length < 2) return -1;
      i += length;
    }
    return -1;
  }
  /** Maximum segment size option (RFC 9293 §3.7.1), or -1 when absent or malformed. */
  mss(): number {
    const i = this.optionOf(TcpOption.Mss, MSS_LENGTH);
    return i < 0 ? -1 : read16(this.bytes, i + OptionField.Data);
  }
  /** Window scale shift count (RFC 7323 §2), or -1. */
  windowScale(): number {
    const i = this.optionOf(TcpOption.WindowScale, WINDOW_SCALE_LENGTH);
    return i < 0 ? -1 : this.bytes[i + OptionField.Data];
  }
  /** True when the SACK-permitted option (RFC 2018) is present. */
  sackPermitted(): boolean {
    return this.optionOf(TcpOption.SackPermitted, SACK_PERMITTED_LENGTH) >= 0;
  }
  /** Timestamp value TSval (RFC 7323 §3), unsigned 32-bit, or -1. */
  tsVal(): number {
    const i = this.optionOf(TcpOption.Timestamp, TIMESTAMP_LENGTH);
    return i < 0 ? -1 : read32(this.bytes, i + TS_VAL);
  }
  /** Timestamp echo reply TSecr, unsigned 32-bit, or -1. */
  tsEcr(): number {
    const i = this.optionOf(TcpOption.Timestamp, TIMESTAMP_LENGTH);
    return i < 0 ? -1 : read32(this.bytes, i + TS_ECR);
  }

  /**
   * Verifies the checksum over the whole segment (`available` bytes) and the IP pseudo-header sum,
   * which must use the same segment length.
   *
   * @example tcp.verifyChecksum(pseudoHeaderSumV4(ip.src(), ip.dst(), 6, ip.payloadLength()))
   */
  verifyChecksum(pseudoSum: number): boolean {
    return internetChecksum(this.bytes, this.at, this.available, pseudoSum) === 0;
  }

  setSrcPort(value: number): void {
    write16(this.bytes, this.at + TcpField.SrcPort, value);
  }
  setDstPort(value: number): void {
    write16(this.bytes, this.at + TcpField.DstPort, value);
  }
  setSeq(value: number): void {
    write32(this.bytes, this.at + TcpField.Seq, value);
  }
  setAck(value: number): void {
    write32(this.bytes, this.at + TcpField.Ack, value);
  }
  /** Sets the data offset from a header length in bytes (a multiple of 4); clears the reserved bits. */
  setHeaderLength(bytes: number): void {
    this.bytes[this.at + TcpField.DataOffset] = (bytes >>> 2) << 4;
  }
  setFlags(value: number): void {
    this.bytes[this.at + TcpField.Flags] = value;
  }
  setWindow(value: number): void {
    write16(this.bytes, this.at + TcpField.Window, value);
  }
  setChecksum(value: number): void {
    write16(this.bytes, this.at + TcpField.Checksum, value);
  }
  setUrgentPointer(value: number): void {
    write16(this.bytes, this.at + TcpField.UrgentPointer, value);
  }
  /** Computes the checksum over the segment (`available` bytes; write the payload first). */
  fillChecksum(pseudoSum: number): void {
    this.setChecksum(0);
    this.setChecksum(internetChecksum(this.bytes, this.at, this.available, pseudoSum));
  }

  /** The option of `kind` when it has exactly `length` bytes, else -1. */
  private optionOf(kind: number, length: number): number {
    const i = this.findOption(kind);
    return i >= 0 && this.bytes[i + OptionField.Length] === length ? i : -1;
  }

  /** Walks options: each is End, NOP, or kind+length(≥ 2) that stays inside the header. */
  private optionsWellFormed(): boolean {
    const end = this.at + this.headerLength();
    let i = this.at + TcpField.Options;
    while (i < end) {
      const kind = this.bytes[i + OptionField.Kind];
      if (kind === TcpOption.End) return true;
      if (kind === TcpOption.Nop) {
        i++;
        continue;
      }
      if (i + 1 >= end) return false;
      const length = this.bytes[i + OptionField.Length];
      if (length < 2 || i + length > end) return false;
      i += length;
    }
    return true;
  }
}

/** A plain TCP header for building and comparing packets. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgentPointer: number;
  /** Raw option bytes, padded by `emit` to a multiple of 4 with End of Option List; at most 40. */
  options: Uint8Array;
  /** Bytes after the header. */
  payloadLength: number;
}

export const TcpRepr = {
  /** Reads a checked view into a representation (options include any padding). */
  parse(view: TcpView): TcpRepr {
    return {
      srcPort: view.srcPort(),
      dstPort: view.dstPort(),
      seq: view.seq(),
      ack: view.ack(),
      flags: view.flags(),
      window: view.window(),
      urgentPointer: view.urgentPointer(),
      options: view.bytes.slice(view.at + TcpField.Options, view.at + view.headerLength()),
      payloadLength: view.payloadLength(),
    };
  },

  /** Header length `emit` writes. */
  headerLength(repr: Pick<TcpRepr, 'options'>): number {
    return TCP_MIN_HEADER_LENGTH + ((repr.options.length + 3) & ~3);
  },

  /**
   * Writes the header at `bytes[at]` and fills the checksum from `pseudoSum` (over header + payload
   * length), so the payload must already be in place. Returns the header length.
   *
   * @example TcpRepr.emit(repr, buf, 34, pseudoHeaderSumV4(src, dst, 6, 20 + repr.payloadLength))
   */
  emit(repr: TcpRepr, bytes: Uint8Array, at: number, pseudoSum: number, view = new TcpView()): number {
    const headerLength = TcpRepr.headerLength(repr);
    view.attachUnchecked(bytes, at, headerLength + repr.payloadLength);
    view.setSrcPort(repr.srcPort);
    view.setDstPort(repr.dstPort);
    view.setSeq(repr.seq);
    view.setAck(repr.ack);
    view.setHeaderLength(headerLength);
    view.setFlags(repr.flags);
    view.setWindow(repr.window);
    view.setUrgentPointer(repr.urgentPointer);
    bytes.set(repr.options, at + TcpField.Options);
    bytes.fill(TcpOption.End, at + TcpField.Options + repr.options.length, at + headerLength);
    view.fillChecksum(pseudoSum);
    return headerLength;
  },
};
