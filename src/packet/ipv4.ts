/**
 * IPv4 (RFC 791): a zero-copy view over header bytes, and a plain representation for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |  DSCP     |ECN|          Total Length         |
 *   |         Identification        |Flags|      Fragment Offset    |
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   |                       Source Address                          |
 *   |                    Destination Address                        |
 *   |                    Options (IHL > 5)                          |
 */
import { formatIpv4, ipv4 } from './address.js';
import { read16, read32, write16, write32 } from './bytes.js';
import { internetChecksum, updateChecksum16 } from './checksum.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the IPv4 header fields; every accessor goes through this table. */
export const Ipv4Field = {
  VersionIhl: 0,
  DscpEcn: 1,
  TotalLength: 2,
  Identification: 4,
  FlagsFragment: 6,
  Ttl: 8,
  Protocol: 9,
  Checksum: 10,
  Src: 12,
  Dst: 16,
  Options: 20,
} as const;

export const IPV4_MIN_HEADER_LENGTH = Ipv4Field.Options;
export const IPV4_MAX_HEADER_LENGTH = 60;
const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;

/** IPv4 option types that the option walk knows have no length byte. */
const OPTION_END = 0;
const OPTION_NOP = 1;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over an IPv4 header. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const ip = new Ipv4View();
 * if (ip.attach(frame, 14) === DropReason.None && ip.ttl() > 1) ip.decrementTtl();
 */
export class Ipv4View {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the capture), which may exceed `totalLength()` (Ethernet padding). */
  available = 0;

  /**
   * Attaches to untrusted bytes and checks them: length, version, IHL, total length, options and
   * header checksum. Returns `DropReason.None` when every accessor is safe to use.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    // Fields are read into locals, not through the accessors: this body runs once per packet and
    // must stay small enough for V8 to inline it into a packet loop.
    const available = Math.max(0, Math.min(length, bytes.length - at));
    this.bytes = bytes;
    this.at = at;
    this.available = available;
    if (available < IPV4_MIN_HEADER_LENGTH) return DropReason.Truncated;
    const versionIhl = bytes[at + Ipv4Field.VersionIhl];
    if (versionIhl >>> 4 !== 4) return DropReason.BadVersion;
    const headerLength = (versionIhl & 0x0f) << 2;
    if (headerLength < IPV4_MIN_HEADER_LENGTH) return DropReason.BadHeaderLength;
    if (headerLength > available) return DropReason.Truncated;
    const total = read16(bytes, at + Ipv4Field.TotalLength);
    if (total < headerLength) return DropReason.BadLength;
    if (total > available) return DropReason.Truncated;
    // A fragment whose end lies beyond 65535 can never be reassembled (the "ping of death").
    const fragmentOffset = (read16(bytes, at + Ipv4Field.FlagsFragment) & FRAGMENT_OFFSET_MASK) << 3;
    if (fragmentOffset + total - headerLength > 0xffff) return DropReason.BadLength;
    if (headerLength > IPV4_MIN_HEADER_LENGTH && !this.optionsWellFormed()) return DropReason.BadOption;
    if (internetChecksum(bytes, at, headerLength) !== 0) return DropReason.BadChecksum;
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission). */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    return this;
  }

  version(): number {
    return this.bytes[this.at + Ipv4Field.VersionIhl] >>> 4;
  }
  /** Header length in bytes (IHL × 4). */
  headerLength(): number {
    return (this.bytes[this.at + Ipv4Field.VersionIhl] & 0x0f) * 4;
  }
  dscp(): number {
    return this.bytes[this.at + Ipv4Field.DscpEcn] >>> 2;
  }
  ecn(): number {
    return this.bytes[this.at + Ipv4Field.DscpEcn] & 0x03;
  }
  totalLength(): number {
    return read16(this.bytes, this.at + Ipv4Field.TotalLength);
  }
  identification(): number {
    return read16(this.bytes, this.at + Ipv4Field.Identification);
  }
  dontFragment(): boolean {
    return (read16(this.bytes, this.at + Ipv4Field.FlagsFragment) & FLAG_DF) !== 0;
  }
  moreFragments(): boolean {
    return (read16(this.bytes, this.at + Ipv4Field.FlagsFragment) & FLAG_MF) !== 0;
  }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  fragmentOffset(): number {
    return (read16(this.bytes, this.at + Ipv4Field.FlagsFragment) & FRAGMENT_OFFSET_MASK) * 8;
  }
  /** True for any fragment: the first (MF set, offset 0) as well as later ones. */
  isFragment(): boolean {
    return (read16(this.bytes, this.at + Ipv4Field.FlagsFragment) & (FLAG_MF | FRAGMENT_OFFSET_MASK)) !== 0;
  }
  ttl(): number {
    return this.bytes[this.at + Ipv4Field.Ttl];
  }
  protocol(): number {
    return this.bytes[this.at + Ipv4Field.Protocol];
  }
  checksum(): number {
    return read16(this.bytes, this.at + Ipv4Field.Checksum);
  }
  /** Source address as an unsigned 32-bit number. */
  src(): number {
    return read32(this.bytes, this.at + Ipv4Field.Src);
  }
  dst(): number {
    return read32(this.bytes, this.at + Ipv4Field.Dst);
  }
  /** Offset of the payload (the L4 header) in `bytes`. */
  payloadAt(): number {
    return this.at + this.headerLength();
  }
  /** Payload length from the header (total length − header length), not from the capture. */
  payloadLength(): number {
    return this.totalLength() - this.headerLength();
  }
  verifyChecksum(): boolean {
    return internetChecksum(this.bytes, this.at, this.headerLength()) === 0;
  }

  setVersionAndHeaderLength(headerLength: number): void {
    this.bytes[this.at + Ipv4Field.VersionIhl] = 0x40 | (headerLength >>> 2);
  }
  setDscpEcn(dscp: number, ecn: number): void {
    this.bytes[this.at + Ipv4Field.DscpEcn] = ((dscp & 0x3f) << 2) | (ecn & 0x03);
  }
  setTotalLength(value: number): void {
    write16(this.bytes, this.at + Ipv4Field.TotalLength, value);
  }
  setIdentification(value: number): void {
    write16(this.bytes, this.at + Ipv4Field.Identification, value);
  }
  /** Sets DF, MF and the fragment offset (in bytes; must be a multiple of 8). */
  setFragment(dontFragment: boolean, moreFragments: boolean, offsetBytes: number): void {
    const value =
      (dontFragment ? FLAG_DF : 0) |
      (moreFragments ? FLAG_MF : 0) |
      ((offsetBytes >>> 3) & FRAGMENT_OFFSET_MASK);
    write16(this.bytes, this.at + Ipv4Field.FlagsFragment, value);
  }
  setTtl(value: number): void {
    this.bytes[this.at + Ipv4Field.Ttl] = value;
  }
  setProtocol(value: number): void {
    this.bytes[this.at + Ipv4Field.Protocol] = value;
  }
  setChecksum(value: number): void {
    write16(this.bytes, this.at + Ipv4Field.Checksum, value);
  }
  setSrc(value: number): void {
    write32(this.bytes, this.at + Ipv4Field.Src, value);
  }
  setDst(value: number): void {
    write32(this.bytes, this.at + Ipv4Field.Dst, value);
  }
  /** Recomputes the header checksum from scratch. */
  fillChecksum(): void {
    this.setChecksum(0);
    this.setChecksum(internetChecksum(this.bytes, this.at, this.headerLength()));
  }
  /** TTL − 1 with an RFC 1624 checksum patch (TTL shares a 16-bit word with the protocol). */
  decrementTtl(): void {
    const wordAt = this.at + Ipv4Field.Ttl;
    const oldWord = read16(this.bytes, wordAt);
    this.bytes[wordAt] = (this.bytes[wordAt] - 1) & 0xff;
    this.setChecksum(updateChecksum16(this.checksum(), oldWord, read16(this.bytes, wordAt)));
  }

  /** Walks options: each is EOL, NOP, or type+length(≥ 2) that stays inside the header. */
  private optionsWellFormed(): boolean {
    const end = this.at + this.headerLength();
    let i = this.at + Ipv4Field.Options;
    while (i < end) {
      const type = this.bytes[i];
      if (type === OPTION_END) return true;
      if (type === OPTION_NOP) {
        i++;
        continue;
      }
      if (i + 1 >= end) return false;
      const length = this.bytes[i + 1];
      if (length < 2 || i + length > end) return false;
      i += length;
    }
    return true;
  }
}

/** A plain IPv4 header for building and comparing packets. Addresses are dotted-quad text. */
export interface Ipv4Repr {
  src: string;
  dst: string;
  protocol: number;
  /** Length of what follows the header, in bytes. */
  payloadLength: number;
  ttl: number;
  dscp: number;
  ecn: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragmentOffset: number;
  /** Raw option bytes, padded by `emit` to a multiple of 4 with EOL; at most 40. */
  options: Uint8Array;
}

/** What `Ipv4Repr.emit` needs; the rest defaults (TTL 64, DF set, no options). */
export type Ipv4ReprInit = Pick<Ipv4Repr, 'src' | 'dst' | 'protocol' | 'payloadLength'> & Partial<Ipv4Repr>;

export const Ipv4Repr = {
  /** Reads a checked view into a representation. */
  parse(view: Ipv4View): Ipv4Repr {
    const optionsAt = view.at + Ipv4Field.Options;
    return {
      src: formatIpv4(view.src()),
      dst: formatIpv4(view.dst()),
      protocol: view.protocol(),
      payloadLength: view.payloadLength(),
      ttl: view.ttl(),
      dscp: view.dscp(),
      ecn: view.ecn(),
      identification: view.identification(),
      dontFragment: view.dontFragment(),
      moreFragments: view.moreFragments(),
      fragmentOffset: view.fragmentOffset(),
      options: view.bytes.slice(optionsAt, view.at + view.headerLength()),
    };
  },

  /** Header length `emit` writes. */
  headerLength(repr: Ipv4ReprInit): number {
    return IPV4_MIN_HEADER_LENGTH + (((repr.options?.length ?? 0) + 3) & ~3);
  },

  /** Writes the header (with checksum) at `bytes[at]`; the payload is the caller's. Returns the header length. */
  emit(repr: Ipv4ReprInit, bytes: Uint8Array, at = 0, view = new Ipv4View()): number {
    const headerLength = Ipv4Repr.headerLength(repr);
    view.attachUnchecked(bytes, at, headerLength);
    view.setVersionAndHeaderLength(headerLength);
    view.setDscpEcn(repr.dscp ?? 0, repr.ecn ?? 0);
    view.setTotalLength(headerLength + repr.payloadLength);
    view.setIdentification(repr.identification ?? 0);
    view.setFragment(repr.dontFragment ?? true, repr.moreFragments ?? false, repr.fragmentOffset ?? 0);
    view.setTtl(repr.ttl ?? 64);
    view.setProtocol(repr.protocol);
    view.setSrc(ipv4(repr.src));
    view.setDst(ipv4(repr.dst));
    const options = repr.options ?? EMPTY;
    bytes.set(options, at + Ipv4Field.Options);
    bytes.fill(OPTION_END, at + Ipv4Field.Options + options.length, at + headerLength);
    view.fillChecksum();
    return headerLength;
  },
};
