/**
 * Capture files, either format: `openCapture` detects pcap or pcapng by the magic number and
 * returns a streaming reader; `createCaptureWriter` writes one. Readers and writers are
 * synchronous and allocate nothing per packet, so they serve hot loops and benchmarks.
 *
 * @example
 * const reader = openCapture('in.pcapng');
 * try {
 *   while (reader.next()) handle(reader.bytes, reader.at, reader.capturedLength);
 * } finally {
 *   reader.close();
 * }
 */
import { NfvError } from '../errors.js';
import { CaptureBuffer, DEFAULT_CHUNK_SIZE } from './capture-buffer.js';
import { PcapReader, PcapWriter, pcapMagic } from './pcap.js';
import { PCAPNG_SHB_TYPE, PcapngReader, PcapngWriter } from './pcapng.js';

export type CaptureFormat = 'pcap' | 'pcapng';

/**
 * A forward-only cursor over the packets of a capture file. The packet fields describe the
 * current packet and are overwritten by `next()`; `bytes[at, at + capturedLength)` stays valid
 * until the next call of `next()` (it is the reader's own buffer — copy what you keep).
 */
export interface CaptureReader {
  readonly format: CaptureFormat;
  /** Moves to the next packet; false at a clean end of file. Throws NfvError on a bad file. */
  next(): boolean;
  bytes: Uint8Array;
  at: number;
  capturedLength: number;
  originalLength: number;
  timestampSeconds: number;
  /** 0 .. 999 999 999, after applying the interface's resolution and offset. */
  timestampNanos: number;
  linkType: number;
  /** pcapng interface (IDB) index within its section; always 0 for pcap. */
  interfaceId: number;
  /** File offset of the current record (pcap) or block (pcapng). */
  recordOffset: number;
  packetsRead: number;
  /** The current packet's timestamp in nanoseconds since the epoch. Allocates; not for hot loops. */
  timestampNs(): bigint;
  close(): void;
}

export interface CaptureReaderOptions {
  /** Bytes read from the file at a time; the buffer grows only for a larger record. Default 1 MiB. */
  chunkSize?: number;
}

export interface CaptureWriterOptions {
  format: CaptureFormat;
  /** Nanosecond timestamps (pcap magic a1b23c4d, pcapng if_tsresol 9); default microseconds. */
  nanosecond?: boolean;
  /** Longer packets are cut to this length, keeping their original length. Default 262144. */
  snaplen?: number;
  /** LINKTYPE_* number; default 1 (Ethernet). */
  linkType?: number;
  /** Default true. */
  littleEndian?: boolean;
  /** Bytes buffered before each write. Default 1 MiB. */
  chunkSize?: number;
}

export interface CaptureWriter {
  readonly format: CaptureFormat;
  /**
   * Appends `bytes[at, at + length)` as one packet; a packet longer than the snaplen is cut to it.
   * `originalLength` is the length on the wire (default `length`).
   */
  writePacket(
    bytes: Uint8Array,
    at: number,
    length: number,
    timestampSeconds: number,
    timestampNanos: number,
    originalLength?: number,
  ): void;
  readonly packetsWritten: number;
  /** Bytes of file produced so far, headers included (some may still be buffered). */
  readonly bytesWritten: number;
  /** Flushes and closes the file; idempotent. */
  close(): void;
}

/** The LINKTYPE_* numbers live with the wire formats; re-exported for capture users. */
export { LinkType } from '../packet/link-type.js';

/**
 * Opens a pcap or pcapng file for streaming. Throws NfvError NFV_ERR_CAPTURE_FORMAT (offset 0)
 * for an unknown magic number and NFV_ERR_IO when the file cannot be read.
 */
export function openCapture(path: string, options: CaptureReaderOptions = {}): CaptureReader {
  const input = new CaptureBuffer(path, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  try {
    if (input.fill(4) < 4) {
      throw new NfvError('NFV_ERR_CAPTURE_TRUNCATED', 'file is too short to be a capture (no magic number)', {
        file: path,
        offset: 0,
      });
    }
    const magic = input.view.getUint32(input.start, false);
    if (magic === PCAPNG_SHB_TYPE) return new PcapngReader(input);
    if (pcapMagic(magic) !== undefined) return new PcapReader(input);
    throw new NfvError(
      'NFV_ERR_CAPTURE_FORMAT',
      `unknown magic number 0x${magic.toString(16).padStart(8, '0')}: not pcap or pcapng`,
      { file: path, offset: 0 },
    );
  } catch (e) {
    input.close();
    throw e;
  }
}

/** Creates (or truncates) `path` and writes the file header. */
export function createCaptureWriter(path: string, options: CaptureWriterOptions): CaptureWriter {
  switch (options.format) {
    case 'pcap':
      return new PcapWriter(path, options);
    case 'pcapng':
      return new PcapngWriter(path, options);
    default:
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `unknown capture format ${String(options.format)}`, {
        field: 'format',
      });
  }
}

/** One packet, copied out of the file: what `readAllPackets` returns. */
export interface CapturedPacket {
  data: Uint8Array;
  originalLength: number;
  timestampSeconds: number;
  timestampNanos: number;
  linkType: number;
  interfaceId: number;
  recordOffset: number;
}

/** Reads every packet of a file into memory (allocates; for tests and small files). */
export function readAllPackets(path: string, options: CaptureReaderOptions = {}): CapturedPacket[] {
  const reader = openCapture(path, options);
  const packets: CapturedPacket[] = [];
  try {
    while (reader.next()) {
      packets.push({
        data: reader.bytes.slice(reader.at, reader.at + reader.capturedLength),
        originalLength: reader.originalLength,
        timestampSeconds: reader.timestampSeconds,
        timestampNanos: reader.timestampNanos,
        linkType: reader.linkType,
        interfaceId: reader.interfaceId,
        recordOffset: reader.recordOffset,
      });
    }
  } finally {
    reader.close();
  }
  return packets;
}
