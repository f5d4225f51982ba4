/**
 * The pcapng file format (draft-ietf-opsawg-pcapng): a sequence of blocks, each
 *
 *   type(4) total length(4) body(total length - 12) total length(4)
 *
 * A Section Header Block (SHB) starts each section and sets its byte order; Interface Description
 * Blocks (IDB) number the interfaces of the section from 0, each with its link type, snaplen and
 * timestamp resolution and offset; packets come in Enhanced (EPB), Simple (SPB) and the obsolete
 * Packet (OPB) blocks. Other blocks (name resolution, statistics, custom...) are skipped by their
 * length. The writer produces one SHB, one IDB and an EPB per packet.
 */
import { NfvError } from '../errors.js';
import {
  CaptureBuffer,
  CaptureOutputBuffer,
  DEFAULT_CHUNK_SIZE,
  checkPacketArguments,
  checkWriterOptions,
  copyBytes,
} from './capture-buffer.js';
import type { CaptureReader, CaptureWriter, CaptureWriterOptions } from './capture.js';

/** Block type numbers. The SHB type is a palindrome, so it reads the same in both byte orders. */
export const BlockType = {
  SHB: 0x0a0d0d0a,
  IDB: 0x00000001,
  OPB: 0x00000002,
  SPB: 0x00000003,
  NRB: 0x00000004,
  ISB: 0x00000005,
  EPB: 0x00000006,
} as const;
export const PCAPNG_SHB_TYPE = BlockType.SHB;

/** The SHB byte-order magic, as written in the section's own byte order. */
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/** Offsets common to every block, and the 4-byte trailer. */
const Block = { TYPE: 0, TOTAL_LENGTH: 4, BODY: 8, TRAILER: 4, MIN_LENGTH: 12 } as const;

/** Section Header Block. */
const Shb = { BYTE_ORDER: 8, MAJOR: 12, MINOR: 14, SECTION_LENGTH: 16, OPTIONS: 24, MIN_LENGTH: 28 } as const;

/** Interface Description Block. */
const Idb = { LINKTYPE: 8, RESERVED: 10, SNAPLEN: 12, OPTIONS: 16, MIN_LENGTH: 20 } as const;

/** Enhanced Packet Block. */
const Epb = {
  INTERFACE: 8,
  TIMESTAMP_HIGH: 12,
  TIMESTAMP_LOW: 16,
  CAPTURED_LENGTH: 20,
  ORIGINAL_LENGTH: 24,
  DATA: 28,
  MIN_LENGTH: 32,
} as const;

/** Obsolete Packet Block: as the EPB, with a 16-bit interface and a 16-bit drops count. */
const Opb = {
  INTERFACE: 8,
  DROPS: 10,
  TIMESTAMP_HIGH: 12,
  TIMESTAMP_LOW: 16,
  CAPTURED_LENGTH: 20,
  ORIGINAL_LENGTH: 24,
  DATA: 28,
  MIN_LENGTH: 32,
} as const;

/** Simple Packet Block. */
const Spb = { ORIGINAL_LENGTH: 8, DATA: 12, MIN_LENGTH: 16 } as const;

/** Option header: code(2) length(2), value padded to 4 bytes. */
const Option = { CODE: 0, LENGTH: 2, VALUE: 4, END: 0 } as const;
export const IdbOption = { IF_TSRESOL: 9, IF_TSOFFSET: 14 } as const;

/** Blocks longer than this are taken as corruption (libpcap allows 16 MiB). */
export const PCAPNG_MAX_BLOCK = 64 << 20;

const pad4 = (n: number): number => (n + 3) & ~3;

/** Ways to turn a 64-bit timestamp in interface units into seconds and nanoseconds. */
const TsKind = { DECIMAL: 0, BINARY: 1, BIGINT: 2 } as const;

/** One interface of the current section, from its IDB. */
interface PcapngInterface {
  linkType: number;
  snaplen: number;
  /** TsKind; DECIMAL: units are 10^-exponent s with exponent <= 9; BINARY: 2^-exponent s, <= 32. */
  tsKind: number;
  tsExponent: number;
  /** Units per second, for the BIGINT path (resolutions finer than 1 ns or 2^-32 s). */
  tsUnits: bigint;
  /** if_tsoffset, seconds added to every timestamp. */
  tsOffset: number;
}

const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const TWO32 = 0x100000000;

/** A streaming pcapng reader over a `CaptureBuffer` positioned at the first SHB. */
export class PcapngReader implements CaptureReader {
  readonly format = 'pcapng' as const;
  bytes: Uint8Array;
  at = 0;
  capturedLength = 0;
  originalLength = 0;
  timestampSeconds = 0;
  timestampNanos = 0;
  linkType = 0;
  interfaceId = 0;
  recordOffset = 0;
  packetsRead = 0;
  /** Byte order of the current section. */
  littleEndian = true;
  /** Sections (SHBs) seen so far. */
  sections = 0;
  /** Interfaces of the current section, indexed by interface id. */
  readonly interfaces: PcapngInterface[] = [];
  private readonly input: CaptureBuffer;
  private pending = 0;

  constructor(input: CaptureBuffer) {
    this.input = input;
    this.bytes = input.bytes;
  }

  private fail(
    code: 'NFV_ERR_CAPTURE_FORMAT' | 'NFV_ERR_CAPTURE_TRUNCATED',
    message: string,
    offset: number,
  ) {
    return new NfvError(code, message, { file: this.input.file, offset });
  }

  next(): boolean {
    const input = this.input;
    for (;;) {
      input.consume(this.pending);
      this.pending = 0;
      const offset = input.offset();
      const got = input.fill(Block.MIN_LENGTH);
      if (got === 0) {
        if (this.sections === 0) throw this.fail('NFV_ERR_CAPTURE_TRUNCATED', 'empty pcapng file', offset);
        return false;
      }
      if (got < Block.MIN_LENGTH) {
        throw this.fail('NFV_ERR_CAPTURE_TRUNCATED', `pcapng block header cut short: ${got} bytes`, offset);
      }
      let b = input.start;
      const type = input.view.getUint32(b + Block.TYPE, this.littleEndian);
      if (type === BlockType.SHB) {
        const magic = input.view.getUint32(b + Shb.BYTE_ORDER, true);
        if (magic === BYTE_ORDER_MAGIC) this.littleEndian = true;
        else if (magic === 0x4d3c2b1a) this.littleEndian = false;
        else {
          throw this.fail(
            'NFV_ERR_CAPTURE_FORMAT',
            `section header byte-order magic 0x${magic.toString(16)} is not 1a2b3c4d in either byte order`,
            offset,
          );
        }
      } else if (this.sections === 0) {
        throw this.fail('NFV_ERR_CAPTURE_FORMAT', 'pcapng file does not start with a section header', offset);
      }
      const le = this.littleEndian;
      const length = input.view.getUint32(b + Block.TOTAL_LENGTH, le);
      if (length < Block.MIN_LENGTH || (length & 3) !== 0 || length > PCAPNG_MAX_BLOCK) {
        throw this.fail(
          'NFV_ERR_CAPTURE_FORMAT',
          `block type 0x${type.toString(16)} has a bad total length ${length}`,
          offset,
        );
      }
      const have = input.fill(length);
      if (have < length) {
        throw this.fail(
          'NFV_ERR_CAPTURE_TRUNCATED',
          `block type 0x${type.toString(16)} of ${length} bytes cut short at ${have} bytes`,
          offset,
        );
      }
      b = input.start; // fill() may have moved the block to the front
      const v = input.view;
      const trailer = v.getUint32(b + length - Block.TRAILER, le);
      if (trailer !== length) {
        throw this.fail(
          'NFV_ERR_CAPTURE_FORMAT',
          `block type 0x${type.toString(16)}: trailing length ${trailer} differs from the leading ${length}`,
          offset,
        );
      }
      this.pending = length;
      switch (type) {
        case BlockType.SHB:
          this.readSectionHeader(b, length, offset);
          break;
        case BlockType.IDB:
          this.readInterface(b, length, offset);
          break;
        case BlockType.EPB:
        case BlockType.OPB:
          this.readPacket(type, b, length, offset);
          return true;
        case BlockType.SPB:
          this.readSimplePacket(b, length, offset);
          return true;
        default:
          break; // NRB, ISB, custom and unknown blocks: skipped by their length
      }
    }
  }

  private tooShort(name: string, length: number, min: number, offset: number): void {
    if (length < min) {
      throw this.fail(
        'NFV_ERR_CAPTURE_FORMAT',
        `${name} block of ${length} bytes is shorter than ${min}`,
        offset,
      );
    }
  }

  private readSectionHeader(b: number, length: number, offset: number): void {
    this.tooShort('section header', length, Shb.MIN_LENGTH, offset);
    const major = this.input.view.getUint16(b + Shb.MAJOR, this.littleEndian);
    const minor = this.input.view.getUint16(b + Shb.MINOR, this.littleEndian);
    if (major !== 1) {
      throw new NfvError(
        'NFV_ERR_CAPTURE_UNSUPPORTED',
        `pcapng version ${major}.${minor} (only 1.x is read)`,
        {
          file: this.input.file,
          offset: offset + Shb.MAJOR,
        },
      );
    }
    this.sections++;
    this.interfaces.length = 0;
  }

  private readInterface(b: number, length: number, offset: number): void {
    this.tooShort('interface description', length, Idb.MIN_LENGTH, offset);
    const v = this.input.view;
    const le = this.littleEndian;
    const iface: PcapngInterface = {
      linkType: v.getUint16(b + Idb.LINKTYPE, le),
      snaplen: v.getUint32(b + Idb.SNAPLEN, le),
      tsKind: TsKind.DECIMAL,
      tsExponent: 6,
      tsUnits: 1_000_000n,
      tsOffset: 0,
    };
    const end = b + length - Block.TRAILER;
    let o = b + Idb.OPTIONS;
    while (o + Option.VALUE <= end) {
      const code = v.getUint16(o + Option.CODE, le);
      const len = v.getUint16(o + Option.LENGTH, le);
      if (code === Option.END) break;
      if (o + Option.VALUE + len > end) {
        throw this.fail(
          'NFV_ERR_CAPTURE_FORMAT',
          `interface option ${code} of ${len} bytes overruns its block`,
          offset + (o - b),
        );
      }
      if (code === IdbOption.IF_TSRESOL) {
        if (len !== 1) {
          throw this.fail('NFV_ERR_CAPTURE_FORMAT', `if_tsresol has length ${len}, not 1`, offset + (o - b));
        }
        const r = v.getUint8(o + Option.VALUE);
        const exponent = r & 0x7f;
        const binary = (r & 0x80) !== 0;
        iface.tsExponent = exponent;
        iface.tsUnits = binary ? 1n << BigInt(exponent) : 10n ** BigInt(exponent);
        iface.tsKind =
          binary && exponent <= 32
            ? TsKind.BINARY
            : !binary && exponent <= 9
              ? TsKind.DECIMAL
              : TsKind.BIGINT;
      } else if (code === IdbOption.IF_TSOFFSET) {
        if (len !== 8) {
          throw this.fail('NFV_ERR_CAPTURE_FORMAT', `if_tsoffset has length ${len}, not 8`, offset + (o - b));
        }
        iface.tsOffset = Number(v.getBigInt64(o + Option.VALUE, le));
      }
      o += Option.VALUE + pad4(len);
    }
    this.interfaces.push(iface);
  }

  private readPacket(type: number, b: number, length: number, offset: number): void {
    const epb = type === BlockType.EPB;
    this.tooShort(epb ? 'enhanced packet' : 'packet', length, Epb.MIN_LENGTH, offset);
    const v = this.input.view;
    const le = this.littleEndian;
    const id = epb ? v.getUint32(b + Epb.INTERFACE, le) : v.getUint16(b + Opb.INTERFACE, le);
    if (id >= this.interfaces.length) {
      throw this.fail(
        'NFV_ERR_CAPTURE_FORMAT',
        `packet names interface ${id} but the section has ${this.interfaces.length}`,
        offset,
      );
    }
    const caplen = v.getUint32(b + Epb.CAPTURED_LENGTH, le);
    if (caplen > length - Epb.MIN_LENGTH) {
      throw this.fail(
        'NFV_ERR_CAPTURE_FORMAT',
        `captured length ${caplen} does not fit a block of ${length} bytes`,
        offset,
      );
    }
    const iface = this.interfaces[id];
    this.setTimestamp(iface, v.getUint32(b + Epb.TIMESTAMP_HIGH, le), v.getUint32(b + Epb.TIMESTAMP_LOW, le));
    this.bytes = this.input.bytes;
    this.at = b + Epb.DATA;
    this.capturedLength = caplen;
    this.originalLength = v.getUint32(b + Epb.ORIGINAL_LENGTH, le);
    this.linkType = iface.linkType;
    this.interfaceId = id;
    this.recordOffset = offset;
    this.packetsRead++;
  }

  private readSimplePacket(b: number, length: number, offset: number): void {
    this.tooShort('simple packet', length, Spb.MIN_LENGTH, offset);
    if (this.interfaces.length === 0) {
      throw this.fail('NFV_ERR_CAPTURE_FORMAT', 'simple packet block before any interface', offset);
    }
    const iface = this.interfaces[0];
    const original = this.input.view.getUint32(b + Spb.ORIGINAL_LENGTH, this.littleEndian);
    let caplen = length - Spb.MIN_LENGTH;
    if (original < caplen) caplen = original;
    if (iface.snaplen !== 0 && iface.snaplen < caplen) caplen = iface.snaplen;
    this.bytes = this.input.bytes;
    this.at = b + Spb.DATA;
    this.capturedLength = caplen;
    this.originalLength = original;
    this.timestampSeconds = 0; // a simple packet has no timestamp
    this.timestampNanos = 0;
    this.linkType = iface.linkType;
    this.interfaceId = 0;
    this.recordOffset = offset;
    this.packetsRead++;
  }

  /** Splits a 64-bit count of interface units into seconds and nanoseconds, exactly. */
  private setTimestamp(iface: PcapngInterface, high: number, low: number): void {
    let seconds: number;
    let nanos: number;
    const e = iface.tsExponent;
    if (iface.tsKind === TsKind.DECIMAL) {
      // Long division by 10^e (<= 1e9) over 16-bit digits: each step stays below 2^53.
      const d = POW10[e];
      let rem = 0;
      let q = 0;
      for (let shift = 48; shift >= 0; shift -= 16) {
        const digit = shift >= 32 ? (high >>> (shift - 32)) & 0xffff : (low >>> shift) & 0xffff;
        const cur = rem * 65536 + digit;
        const qd = Math.floor(cur / d);
        rem = cur - qd * d;
        q = q * 65536 + qd;
      }
      seconds = q;
      nanos = rem * POW10[9 - e];
    } else if (iface.tsKind === TsKind.BINARY) {
      // units of 2^-e s, e <= 32: the fraction is the low e bits, and 1e9 = 1953125 * 2^9.
      if (e === 32) {
        seconds = high;
        nanos = Math.floor((low * 1953125) / 8388608); // 2^23 = 2^(32-9)
      } else {
        seconds = high * 2 ** (32 - e) + Math.floor(low / 2 ** e);
        const fraction = low % 2 ** e;
        nanos = e >= 9 ? Math.floor((fraction * 1953125) / 2 ** (e - 9)) : fraction * 1953125 * 2 ** (9 - e);
      }
    } else {
      const ts = (BigInt(high) << 32n) | BigInt(low);
      seconds = Number(ts / iface.tsUnits);
      nanos = Number(((ts % iface.tsUnits) * 1_000_000_000n) / iface.tsUnits);
    }
    this.timestampSeconds = seconds + iface.tsOffset;
    this.timestampNanos = nanos;
  }

  timestampNs(): bigint {
    return BigInt(this.timestampSeconds) * 1_000_000_000n + BigInt(this.timestampNanos);
  }

  close(): void {
    this.input.close();
  }
}

/** Writes a pcapng file: one SHB and one IDB at creation, then one EPB per packet. */
export class PcapngWriter implements CaptureWriter {
  readonly format = 'pcapng' as const;
  readonly snaplen: number;
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly littleEndian: boolean;
  packetsWritten = 0;
  private readonly out: CaptureOutputBuffer;
  private readonly units: number;

  constructor(path: string, options: Omit<CaptureWriterOptions, 'format'>) {
    const { snaplen, linkType } = checkWriterOptions(options);
    this.snaplen = snaplen;
    this.linkType = linkType;
    this.nanosecond = options.nanosecond ?? false;
    this.littleEndian = options.littleEndian ?? true;
    this.units = this.nanosecond ? 1e9 : 1e6;
    this.out = new CaptureOutputBuffer(path, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const le = this.littleEndian;
    const v = this.out.view;
    const s = this.out.reserve(Shb.MIN_LENGTH);
    v.setUint32(s + Block.TYPE, BlockType.SHB, le);
    v.setUint32(s + Block.TOTAL_LENGTH, Shb.MIN_LENGTH, le);
    v.setUint32(s + Shb.BYTE_ORDER, BYTE_ORDER_MAGIC, le);
    v.setUint16(s + Shb.MAJOR, 1, le);
    v.setUint16(s + Shb.MINOR, 0, le);
    v.setBigInt64(s + Shb.SECTION_LENGTH, -1n, le); // unknown
    v.setUint32(s + Shb.MIN_LENGTH - Block.TRAILER, Shb.MIN_LENGTH, le);
    const idbLength = Idb.MIN_LENGTH + Option.VALUE + 4 + Option.VALUE; // if_tsresol, opt_endofopt
    const i = this.out.reserve(idbLength);
    v.setUint32(i + Block.TYPE, BlockType.IDB, le);
    v.setUint32(i + Block.TOTAL_LENGTH, idbLength, le);
    v.setUint16(i + Idb.LINKTYPE, linkType, le);
    v.setUint16(i + Idb.RESERVED, 0, le);
    v.setUint32(i + Idb.SNAPLEN, snaplen, le);
    const o = i + Idb.OPTIONS;
    v.setUint16(o + Option.CODE, IdbOption.IF_TSRESOL, le);
    v.setUint16(o + Option.LENGTH, 1, le);
    v.setUint32(o + Option.VALUE, 0, le);
    v.setUint8(o + Option.VALUE, this.nanosecond ? 9 : 6);
    v.setUint32(o + Option.VALUE + 4, 0, le); // opt_endofopt
    v.setUint32(i + idbLength - Block.TRAILER, idbLength, le);
  }

  get bytesWritten(): number {
    return this.out.total;
  }

  writePacket(
    bytes: Uint8Array,
    at: number,
    length: number,
    timestampSeconds: number,
    timestampNanos: number,
    originalLength = length,
  ): void {
    const out = this.out;
    if (out.closed) throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'writer is closed', { file: out.file });
    checkPacketArguments(out.file, bytes, at, length, timestampSeconds, timestampNanos, originalLength);
    // units = seconds * U + fraction, as 32-bit halves without rounding: split the seconds at 2^16.
    const fraction = this.nanosecond ? timestampNanos : Math.floor(timestampNanos / 1000);
    const lowPart = (timestampSeconds % 65536) * this.units + fraction; // < 2^46
    const highPart = Math.floor(timestampSeconds / 65536) * this.units; // in units of 2^16
    let low = (lowPart % TWO32) + (highPart % 65536) * 65536;
    const carry = Math.floor(low / TWO32);
    low -= carry * TWO32;
    const high = Math.floor(lowPart / TWO32) + Math.floor(highPart / 65536) + carry;
    if (high >= TWO32) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `timestamp ${timestampSeconds}s overflows 64 bits`, {
        file: out.file,
      });
    }
    const caplen = length < this.snaplen ? length : this.snaplen;
    const padded = pad4(caplen);
    const total = Epb.MIN_LENGTH + padded;
    const b = out.reserve(total);
    const v = out.view;
    const le = this.littleEndian;
    v.setUint32(b + Block.TYPE, BlockType.EPB, le);
    v.setUint32(b + Block.TOTAL_LENGTH, total, le);
    v.setUint32(b + Epb.INTERFACE, 0, le);
    v.setUint32(b + Epb.TIMESTAMP_HIGH, high, le);
    v.setUint32(b + Epb.TIMESTAMP_LOW, low, le);
    v.setUint32(b + Epb.CAPTURED_LENGTH, caplen, le);
    v.setUint32(b + Epb.ORIGINAL_LENGTH, originalLength, le);
    copyBytes(bytes, at, out.bytes, b + Epb.DATA, caplen);
    for (let p = caplen; p < padded; p++) out.bytes[b + Epb.DATA + p] = 0;
    v.setUint32(b + total - Block.TRAILER, total, le);
    this.packetsWritten++;
  }

  close(): void {
    this.out.close();
  }
}
