/**
 * The classic libpcap file format (draft-ietf-opsawg-pcap): a 24-byte file header, then per
 * packet a 16-byte record header and the captured bytes. Both byte orders and both timestamp
 * resolutions (magic a1b2c3d4: microseconds, a1b23c4d: nanoseconds) are read and written.
 *
 *   file header: magic(4) major(2) minor(2) reserved(4) reserved(4) snaplen(4) linktype(4)
 *   record:      seconds(4) micro-or-nanoseconds(4) captured length(4) original length(4) data
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

/** Field offsets of the file header. */
const FileHeader = {
  MAGIC: 0,
  VERSION_MAJOR: 4,
  VERSION_MINOR: 6,
  SNAPLEN: 16,
  LINKTYPE: 20,
  LENGTH: 24,
} as const;

/** Field offsets of a record header. */
const RecordHeader = {
  SECONDS: 0,
  FRACTION: 4,
  CAPTURED_LENGTH: 8,
  ORIGINAL_LENGTH: 12,
  LENGTH: 16,
} as const;

/** Magic numbers as read big-endian from the first four bytes. */
export const PcapMagic = {
  MICROSECONDS: 0xa1b2c3d4,
  NANOSECONDS: 0xa1b23c4d,
  MICROSECONDS_SWAPPED: 0xd4c3b2a1,
  NANOSECONDS_SWAPPED: 0x4d3cb2a1,
} as const;

/** The link type sits in the low 26 bits; the top bits may carry an FCS length (draft §4). */
const LINKTYPE_MASK = 0x03ffffff;

/** Captured lengths above max(snaplen, this) are taken as corruption, not a packet. */
export const PCAP_SANE_CAPLEN = 262144;
/** ...and so are captured lengths above this, whatever the snaplen says. */
const PCAP_MAX_CAPLEN = 64 << 20;

/**
 * For a big-endian-read magic number: whether the file is little-endian and uses nanoseconds,
 * or undefined if it is not a pcap magic.
 */
export function pcapMagic(magic: number): { littleEndian: boolean; nanosecond: boolean } | undefined {
  switch (magic) {
    case PcapMagic.MICROSECONDS:
      return { littleEndian: false, nanosecond: false };
    case PcapMagic.NANOSECONDS:
      return { littleEndian: false, nanosecond: true };
    case PcapMagic.MICROSECONDS_SWAPPED:
      return { littleEndian: true, nanosecond: false };
    case PcapMagic.NANOSECONDS_SWAPPED:
      return { littleEndian: true, nanosecond: true };
    default:
      return undefined;
  }
}

/** A streaming pcap reader over a `CaptureBuffer` positioned at the file header. */
export class PcapReader implements CaptureReader {
  readonly format = 'pcap' as const;
  readonly littleEndian: boolean;
  readonly nanosecond: boolean;
  readonly snaplen: number;
  readonly versionMajor: number;
  readonly versionMinor: number;
  bytes: Uint8Array;
  at = 0;
  capturedLength = 0;
  originalLength = 0;
  timestampSeconds = 0;
  timestampNanos = 0;
  linkType: number;
  interfaceId = 0;
  recordOffset = 0;
  packetsRead = 0;
  private readonly input: CaptureBuffer;
  private readonly maxCaplen: number;
  private pending = 0;

  constructor(input: CaptureBuffer) {
    this.input = input;
    const file = input.file;
    if (input.fill(FileHeader.LENGTH) < FileHeader.LENGTH) {
      throw new NfvError('NFV_ERR_CAPTURE_TRUNCATED', 'pcap file header cut short', { file, offset: 0 });
    }
    const v = input.view;
    const h = input.start;
    const kind = pcapMagic(v.getUint32(h + FileHeader.MAGIC, false));
    if (kind === undefined) {
      throw new NfvError('NFV_ERR_CAPTURE_FORMAT', 'not a pcap magic number', { file, offset: 0 });
    }
    const le = kind.littleEndian;
    this.littleEndian = le;
    this.nanosecond = kind.nanosecond;
    this.versionMajor = v.getUint16(h + FileHeader.VERSION_MAJOR, le);
    this.versionMinor = v.getUint16(h + FileHeader.VERSION_MINOR, le);
    if (this.versionMajor !== 2) {
      throw new NfvError(
        'NFV_ERR_CAPTURE_UNSUPPORTED',
        `pcap version ${this.versionMajor}.${this.versionMinor} (only 2.x is read)`,
        { file, offset: FileHeader.VERSION_MAJOR },
      );
    }
    this.snaplen = v.getUint32(h + FileHeader.SNAPLEN, le);
    this.linkType = v.getUint32(h + FileHeader.LINKTYPE, le) & LINKTYPE_MASK;
    this.maxCaplen = Math.min(Math.max(this.snaplen, PCAP_SANE_CAPLEN), PCAP_MAX_CAPLEN);
    input.consume(FileHeader.LENGTH);
    this.bytes = input.bytes;
  }

  next(): boolean {
    const input = this.input;
    input.consume(this.pending);
    this.pending = 0;
    const offset = input.offset();
    const got = input.fill(RecordHeader.LENGTH);
    if (got === 0) return false;
    const file = input.file;
    if (got < RecordHeader.LENGTH) {
      throw new NfvError(
        'NFV_ERR_CAPTURE_TRUNCATED',
        `pcap record header cut short: ${got} of ${RecordHeader.LENGTH} bytes`,
        { file, offset },
      );
    }
    const le = this.littleEndian;
    let r = input.start;
    const caplen = input.view.getUint32(r + RecordHeader.CAPTURED_LENGTH, le);
    if (caplen > this.maxCaplen) {
      throw new NfvError(
        'NFV_ERR_CAPTURE_FORMAT',
        `pcap record captured length ${caplen} exceeds the file's snaplen ${this.snaplen} (corrupt record)`,
        { file, offset },
      );
    }
    const size = RecordHeader.LENGTH + caplen;
    const have = input.fill(size);
    if (have < size) {
      throw new NfvError(
        'NFV_ERR_CAPTURE_TRUNCATED',
        `pcap record cut short: ${have - RecordHeader.LENGTH} of ${caplen} captured bytes`,
        { file, offset },
      );
    }
    r = input.start; // fill() may have moved the record to the front
    const v = input.view;
    const seconds = v.getUint32(r + RecordHeader.SECONDS, le);
    const fraction = v.getUint32(r + RecordHeader.FRACTION, le);
    let nanos = this.nanosecond ? fraction : fraction * 1000;
    // A writer may store a fraction of a second or more; carry it rather than reject the file.
    let carry = 0;
    if (nanos >= 1e9) {
      carry = Math.floor(nanos / 1e9);
      nanos -= carry * 1e9;
    }
    this.bytes = input.bytes;
    this.at = r + RecordHeader.LENGTH;
    this.capturedLength = caplen;
    this.originalLength = v.getUint32(r + RecordHeader.ORIGINAL_LENGTH, le);
    this.timestampSeconds = seconds + carry;
    this.timestampNanos = nanos;
    this.recordOffset = offset;
    this.packetsRead++;
    this.pending = size;
    return true;
  }

  timestampNs(): bigint {
    return BigInt(this.timestampSeconds) * 1_000_000_000n + BigInt(this.timestampNanos);
  }

  close(): void {
    this.input.close();
  }
}

/** Writes a pcap file: the header at creation, then one record per `writePacket`. */
export class PcapWriter implements CaptureWriter {
  readonly format = 'pcap' as const;
  readonly snaplen: number;
  readonly linkType: number;
  readonly nanosecond: boolean;
  readonly littleEndian: boolean;
  packetsWritten = 0;
  private readonly out: CaptureOutputBuffer;

  constructor(path: string, options: Omit<CaptureWriterOptions, 'format'>) {
    const { snaplen, linkType } = checkWriterOptions(options);
    this.snaplen = snaplen;
    this.linkType = linkType;
    this.nanosecond = options.nanosecond ?? false;
    this.littleEndian = options.littleEndian ?? true;
    this.out = new CaptureOutputBuffer(path, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const le = this.littleEndian;
    const h = this.out.reserve(FileHeader.LENGTH);
    const v = this.out.view;
    v.setUint32(h + FileHeader.MAGIC, this.nanosecond ? PcapMagic.NANOSECONDS : PcapMagic.MICROSECONDS, le);
    v.setUint16(h + FileHeader.VERSION_MAJOR, 2, le);
    v.setUint16(h + FileHeader.VERSION_MINOR, 4, le);
    v.setUint32(h + 8, 0, le); // reserved (was thiszone)
    v.setUint32(h + 12, 0, le); // reserved (was sigfigs)
    v.setUint32(h + FileHeader.SNAPLEN, snaplen, le);
    v.setUint32(h + FileHeader.LINKTYPE, linkType, le);
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
    if (timestampSeconds > 0xffffffff) {
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `timestamp ${timestampSeconds}s does not fit pcap's 32 bits`,
        {
          file: out.file,
        },
      );
    }
    const caplen = length < this.snaplen ? length : this.snaplen;
    const r = out.reserve(RecordHeader.LENGTH + caplen);
    const v = out.view;
    const le = this.littleEndian;
    v.setUint32(r + RecordHeader.SECONDS, timestampSeconds, le);
    v.setUint32(
      r + RecordHeader.FRACTION,
      this.nanosecond ? timestampNanos : Math.floor(timestampNanos / 1000),
      le,
    );
    v.setUint32(r + RecordHeader.CAPTURED_LENGTH, caplen, le);
    v.setUint32(r + RecordHeader.ORIGINAL_LENGTH, originalLength, le);
    copyBytes(bytes, at, out.bytes, r + RecordHeader.LENGTH, caplen);
    this.packetsWritten++;
  }

  close(): void {
    this.out.close();
  }
}
