/**
 * GENEVE (RFC 8926): the header after UDP port 6081, with variable-length option TLVs, followed by
 * the inner packet whose EtherType is `protocolType()` (0x6558: an Ethernet frame).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 *   |        Virtual Network Identifier (VNI)       |    Reserved   |
 *   |                    Variable-Length Options                    |
 *
 * Each option (RFC 8926 §3.5):
 *
 *   |          Option Class         |      Type     |R|R|R| Length  |
 *   |                 Variable-Length Option Data                   |
 *
 * Opt Len and each option's Length count 4-byte words, excluding the 8-byte header and the 4-byte
 * option header respectively. Options are iterated in place (`optionCount`/`optionAt`/
 * `findOption`), so reading them allocates nothing.
 */
import { read16, read24, write16, write24 } from './bytes.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the GENEVE header fields; every accessor goes through this table. */
export const GeneveField = {
  VersionOptionsLength: 0,
  Flags: 1,
  ProtocolType: 2,
  Vni: 4,
  Reserved: 7,
  Options: 8,
} as const;

/** Byte offsets inside one option TLV. */
export const GeneveOptionField = {
  Class: 0,
  Type: 2,
  Length: 3,
  Data: 4,
} as const;

export const GENEVE_MIN_HEADER_LENGTH = GeneveField.Options;
/** 8 + 63 × 4: the largest Opt Len. */
export const GENEVE_MAX_HEADER_LENGTH = 260;
/** The largest option data: 31 × 4 bytes. */
export const GENEVE_MAX_OPTION_DATA = 124;
/** The high bit of an option type marks it critical (RFC 8926 §3.5.1). */
export const GENEVE_OPTION_CRITICAL = 0x80;
const OPTION_HEADER_LENGTH = GeneveOptionField.Data;
const WORD = 4;
const VERSION_SHIFT = 6;
const OPTIONS_LENGTH_MASK = 0x3f;
const FLAG_OAM = 0x80;
const FLAG_CRITICAL = 0x40;
const OPTION_LENGTH_MASK = 0x1f;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over a GENEVE header. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const geneve = new GeneveView();
 * if (geneve.attach(frame, udp.payloadAt(), udp.payloadLength()) === DropReason.None) {
 *   const dataAt = geneve.findOption(0x0101, 1); // -1 when absent
 * }
 */
export class GeneveView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the UDP payload, clipped to the buffer). */
  available = 0;

  /**
   * Attaches to untrusted bytes: version 0, the options inside the payload, and option TLVs that
   * exactly fill the options area.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    if (this.available < GENEVE_MIN_HEADER_LENGTH) return DropReason.Truncated;
    if (this.version() !== 0) return DropReason.BadVersion;
    if (this.headerLength() > this.available) return DropReason.Truncated;
    if (!this.optionsWellFormed()) return DropReason.BadOption;
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
    return this.bytes[this.at + GeneveField.VersionOptionsLength] >>> VERSION_SHIFT;
  }
  /** Length of the options area in bytes (Opt Len × 4). */
  optionsLength(): number {
    return (this.bytes[this.at + GeneveField.VersionOptionsLength] & OPTIONS_LENGTH_MASK) * WORD;
  }
  /** Header length in bytes, options included. */
  headerLength(): number {
    return GENEVE_MIN_HEADER_LENGTH + this.optionsLength();
  }
  /** O: an OAM (control) packet, not data. */
  oam(): boolean {
    return (this.bytes[this.at + GeneveField.Flags] & FLAG_OAM) !== 0;
  }
  /** C: at least one critical option is present. */
  critical(): boolean {
    return (this.bytes[this.at + GeneveField.Flags] & FLAG_CRITICAL) !== 0;
  }
  /** EtherType of the inner packet (`EtherType.TransparentEthernet` for an Ethernet frame). */
  protocolType(): number {
    return read16(this.bytes, this.at + GeneveField.ProtocolType);
  }
  /** The 24-bit Virtual Network Identifier. */
  vni(): number {
    return read24(this.bytes, this.at + GeneveField.Vni);
  }
  /** Offset of the inner packet in `bytes`. */
  payloadAt(): number {
    return this.at + this.headerLength();
  }
  /** Length of the inner packet: what follows the header in the UDP payload. */
  payloadLength(): number {
    return this.available - this.headerLength();
  }

  /** Number of options (a walk over the TLVs). */
  optionCount(): number {
    const end = this.at + this.headerLength();
    let count = 0;
    for (let i = this.at + GeneveField.Options; i < end; i += this.optionTotalLength(i)) count++;
    return count;
  }
  /** Offset of option number `index`'s TLV header in `bytes`, or -1. */
  optionAt(index: number): number {
    const end = this.at + this.headerLength();
    let i = this.at + GeneveField.Options;
    for (let n = 0; i < end; n++, i += this.optionTotalLength(i)) if (n === index) return i;
    return -1;
  }
  /** Option class of the TLV at `optionAt`. */
  optionClass(optionAt: number): number {
    return read16(this.bytes, optionAt + GeneveOptionField.Class);
  }
  /** Option type (with the critical bit, `GENEVE_OPTION_CRITICAL`) of the TLV at `optionAt`. */
  optionType(optionAt: number): number {
    return this.bytes[optionAt + GeneveOptionField.Type];
  }
  /** Offset of the data of the TLV at `optionAt`. */
  optionDataAt(optionAt: number): number {
    return optionAt + GeneveOptionField.Data;
  }
  /** Data length in bytes of the TLV at `optionAt`. */
  optionDataLength(optionAt: number): number {
    return (this.bytes[optionAt + GeneveOptionField.Length] & OPTION_LENGTH_MASK) * WORD;
  }
  /** Offset of the data of the first option of (`optionClass`, `type`), or -1. */
  findOption(optionClass: number, type: number): number {
    const end = this.at + this.headerLength();
    for (let i = this.at + GeneveField.Options; i < end; i += this.optionTotalLength(i)) {
      if (this.optionClass(i) === optionClass && this.optionType(i) === type) return this.optionDataAt(i);
    }
    return -1;
  }

  /** Sets the version to 0 and Opt Len from an options length in bytes (a multiple of 4). */
  setOptionsLength(bytes: number): void {
    this.bytes[this.at + GeneveField.VersionOptionsLength] = (bytes >>> 2) & OPTIONS_LENGTH_MASK;
  }
  /** Sets O and C and clears the reserved bits. */
  setFlags(oam: boolean, critical: boolean): void {
    this.bytes[this.at + GeneveField.Flags] = (oam ? FLAG_OAM : 0) | (critical ? FLAG_CRITICAL : 0);
  }
  setProtocolType(value: number): void {
    write16(this.bytes, this.at + GeneveField.ProtocolType, value);
  }
  /** Sets the VNI and clears the reserved byte after it. */
  setVni(value: number): void {
    write24(this.bytes, this.at + GeneveField.Vni, value);
    this.bytes[this.at + GeneveField.Reserved] = 0;
  }

  /** Option header plus data, in bytes. */
  private optionTotalLength(optionAt: number): number {
    return OPTION_HEADER_LENGTH + this.optionDataLength(optionAt);
  }

  /** Each option's header and data stay inside the options area, and the last one ends at its end. */
  private optionsWellFormed(): boolean {
    const end = this.at + this.headerLength();
    let i = this.at + GeneveField.Options;
    while (i < end) {
      if (i + OPTION_HEADER_LENGTH > end) return false;
      i += this.optionTotalLength(i);
    }
    return i === end;
  }
}

/** One GENEVE option TLV. */
export interface GeneveOption {
  optionClass: number;
  /** Option type; the high bit (`GENEVE_OPTION_CRITICAL`) marks it critical. */
  type: number;
  /** Option data: a multiple of 4 bytes (emit pads with zeros), at most 124. */
  data: Uint8Array;
}

/** A plain GENEVE header for building and comparing packets. */
export interface GeneveRepr {
  /** 24-bit Virtual Network Identifier. */
  vni: number;
  /** EtherType of the inner packet. */
  protocolType: number;
  oam: boolean;
  critical: boolean;
  /** At most 252 bytes of options in all (4-byte headers included). */
  options: GeneveOption[];
}

export const GeneveRepr = {
  /** Reads a checked view into a representation. */
  parse(view: GeneveView): GeneveRepr {
    const options: GeneveOption[] = [];
    const count = view.optionCount();
    for (let n = 0; n < count; n++) {
      const i = view.optionAt(n);
      const dataAt = view.optionDataAt(i);
      options.push({
        optionClass: view.optionClass(i),
        type: view.optionType(i),
        data: view.bytes.slice(dataAt, dataAt + view.optionDataLength(i)),
      });
    }
    return {
      vni: view.vni(),
      protocolType: view.protocolType(),
      oam: view.oam(),
      critical: view.critical(),
      options,
    };
  },

  /** Header length `emit` writes: 8 plus each option's 4-byte header and padded data. */
  headerLength(repr: Pick<GeneveRepr, 'options'>): number {
    let length = GENEVE_MIN_HEADER_LENGTH;
    for (const option of repr.options) length += OPTION_HEADER_LENGTH + paddedLength(option.data.length);
    return length;
  },

  /**
   * Writes the header and its options at `bytes[at]`; the inner packet is the caller's. Returns the
   * header length. @example p += GeneveRepr.emit({ vni, protocolType: 0x6558, oam: false, critical: false, options: [] }, out, p)
   */
  emit(repr: GeneveRepr, bytes: Uint8Array, at = 0, view = new GeneveView()): number {
    const headerLength = GeneveRepr.headerLength(repr);
    view.attachUnchecked(bytes, at, headerLength);
    view.setOptionsLength(headerLength - GENEVE_MIN_HEADER_LENGTH);
    view.setFlags(repr.oam, repr.critical);
    view.setProtocolType(repr.protocolType);
    view.setVni(repr.vni);
    let i = at + GeneveField.Options;
    for (const option of repr.options) {
      const dataLength = paddedLength(option.data.length);
      write16(bytes, i + GeneveOptionField.Class, option.optionClass);
      bytes[i + GeneveOptionField.Type] = option.type;
      bytes[i + GeneveOptionField.Length] = (dataLength / WORD) & OPTION_LENGTH_MASK;
      bytes.set(option.data, i + GeneveOptionField.Data);
      bytes.fill(0, i + GeneveOptionField.Data + option.data.length, i + OPTION_HEADER_LENGTH + dataLength);
      i += OPTION_HEADER_LENGTH + dataLength;
    }
    return headerLength;
  },
};

function paddedLength(length: number): number {
  return (length + WORD - 1) & ~(WORD - 1);
}
