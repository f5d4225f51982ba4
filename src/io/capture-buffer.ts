/**
 * Streaming byte windows over capture files: `CaptureBuffer` reads, `CaptureOutputBuffer` writes.
 * Both keep ONE reusable buffer, so reading or writing a packet allocates nothing, and a file may
 * be far larger than memory.
 *
 *   CaptureBuffer.bytes                                 (file offset of bytes[0] is `base`)
 *   +----------------+---------------------------+----------------------+
 *   | consumed       | unconsumed, valid         | free                 |
 *   +----------------+---------------------------+----------------------+
 *   0              start                         end              bytes.length
 *
 * Invariant: 0 <= start <= end <= bytes.length, and bytes[start, end) holds the file's bytes
 * [base + start, base + end); `base` is a multiple of 8, so a byte's index in `bytes` and its file
 * offset agree modulo 8 (a record aligned in the file is aligned in the window, and copyBytes moves
 * it word by word). `consume()` only moves `start`, so bytes already handed out stay valid until
 * the next `fill()`; `fill(n)` moves the unconsumed tail to the front (at its offset modulo 8) and
 * reads more when fewer than n bytes are left, and grows the buffer only when n exceeds its size.
 * The output buffer keeps the same agreement.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { NfvError } from '../errors.js';

/** Default read and write chunk: 1 MiB. */
export const DEFAULT_CHUNK_SIZE = 1 << 20;

function ioError(action: string, file: string, e: unknown, offset?: number): NfvError {
  const why = e instanceof Error ? e.message : String(e);
  const detail = offset === undefined ? { file } : { file, offset };
  return new NfvError('NFV_ERR_IO', `cannot ${action} ${file}: ${why}`, detail, { cause: e });
}

/**
 * A forward-only read window over a file. @example
 * const input = new CaptureBuffer('a.pcap');
 * if (input.fill(24) < 24) throw new Error('short'); // input.bytes[input.start ...] is the header
 * input.consume(24);
 */
export class CaptureBuffer {
  readonly file: string;
  /** The window; replaced (never shrunk) when one record needs more than its size. */
  bytes: Uint8Array;
  /** A DataView over `bytes`, replaced with it. */
  view: DataView;
  /** Index in `bytes` of the first unconsumed byte. */
  start = 0;
  /** Index in `bytes` one past the last valid byte. */
  end = 0;
  /** File offset of `bytes[0]`. */
  base = 0;
  private fd: number;
  private eof = false;

  constructor(file: string, chunkSize = DEFAULT_CHUNK_SIZE) {
    if (!Number.isInteger(chunkSize) || chunkSize < 64) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `chunk size ${chunkSize} must be an integer >= 64`, {
        field: 'chunkSize',
      });
    }
    this.file = file;
    try {
      this.fd = openSync(file, 'r');
    } catch (e) {
      throw ioError('open', file, e);
    }
    this.bytes = new Uint8Array(chunkSize);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** File offset of the first unconsumed byte. */
  offset(): number {
    return this.base + this.start;
  }

  /**
   * Makes at least `n` unconsumed bytes available from `start`, reading as needed. Returns how
   * many are available, which is less than `n` only at the end of the file.
   */
  fill(n: number): number {
    if (this.end - this.start >= n) return n;
    if (this.fd < 0) return this.end - this.start;
    if (this.start > 7) {
      // The unconsumed bytes move to the front, keeping their file offset modulo 8: a record
      // aligned in the file stays aligned in the buffer, so copyBytes can move it word by word
      // (moved to 0, every record after a refill could be misaligned and copied byte by byte).
      const keep = this.start & 7;
      this.bytes.copyWithin(keep, this.start, this.end);
      this.base += this.start - keep;
      this.end -= this.start - keep;
      this.start = keep;
    }
    // Grow only as far as the file reaches: a corrupt length must not allocate gigabytes.
    const reach = this.start + n > this.bytes.length ? this.fileSize() - this.base : 0;
    if (reach > this.bytes.length) {
      const grown = new Uint8Array(Math.min(Math.max(this.start + n, this.bytes.length * 2), reach));
      grown.set(this.bytes.subarray(0, this.end));
      this.bytes = grown;
      this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
    }
    while (this.end - this.start < n && !this.eof) {
      let got: number;
      try {
        got = readSync(this.fd, this.bytes, this.end, this.bytes.length - this.end, this.base + this.end);
      } catch (e) {
        throw ioError('read', this.file, e, this.base + this.end);
      }
      if (got === 0) this.eof = true;
      this.end += got;
    }
    return Math.min(n, this.end - this.start);
  }

  /** The file's current size (it may grow while being read); unbounded for a pipe or device. */
  private fileSize(): number {
    try {
      const st = fstatSync(this.fd);
      return st.isFile() ? st.size : Number.POSITIVE_INFINITY;
    } catch (e) {
      throw ioError('stat', this.file, e);
    }
  }

  /** Marks `n` bytes (no more than `fill` made available) as read. */
  consume(n: number): void {
    this.start += n;
  }

  /** Closes the file; idempotent. Bytes already in the window stay readable. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    this.eof = true;
    try {
      closeSync(fd);
    } catch (e) {
      throw ioError('close', this.file, e);
    }
  }
}

/**
 * A write-behind buffer for a file: `reserve(n)` returns where to write n bytes in `bytes`, and
 * the buffer goes to the file with one `writeSync` whenever it is full. @example
 * const out = new CaptureOutputBuffer('b.pcap');
 * const at = out.reserve(4);
 * out.view.setUint32(at, 0xa1b2c3d4, true);
 * out.close();
 */
export class CaptureOutputBuffer {
  readonly file: string;
  bytes: Uint8Array;
  view: DataView;
  /** Bytes reserved so far: written to the file plus still buffered. */
  total = 0;
  /**
   * The buffered bytes are bytes[start, used). After a flush they start at the file offset modulo
   * 8, so a record aligned in the file is aligned in `bytes` (copyBytes moves it word by word).
   */
  private start = 0;
  private used = 0;
  private fd: number;

  constructor(file: string, chunkSize = DEFAULT_CHUNK_SIZE) {
    this.file = file;
    try {
      this.fd = openSync(file, 'w');
    } catch (e) {
      throw ioError('create', file, e);
    }
    this.bytes = new Uint8Array(chunkSize);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** Returns the index in `bytes` where the caller writes the next `n` bytes. */
  reserve(n: number): number {
    if (this.used + n > this.bytes.length) {
      this.flush();
      if (this.used + n > this.bytes.length) {
        this.bytes = new Uint8Array(Math.max(this.used + n, this.bytes.length * 2));
        this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
      }
    }
    const at = this.used;
    this.used += n;
    this.total += n;
    return at;
  }

  /** Writes everything buffered to the file. */
  flush(): void {
    let done = this.start;
    while (done < this.used) {
      try {
        done += writeSync(this.fd, this.bytes, done, this.used - done);
      } catch (e) {
        throw ioError('write', this.file, e, this.total - this.used + done);
      }
    }
    this.start = this.used = this.total & 7;
  }

  /** Flushes and closes the file; idempotent. */
  close(): void {
    if (this.fd < 0) return;
    try {
      this.flush();
    } finally {
      const fd = this.fd;
      this.fd = -1;
      try {
        closeSync(fd);
      } catch (e) {
        // eslint-disable-next-line no-unsafe-finally
        throw ioError('close', this.file, e);
      }
    }
  }
}

/**
 * Copies `n` bytes without allocating anything per call. Between two large arrays (the pool, a
 * port's batch buffer, a capture's read buffer) it moves 32-bit words: measured on the development
 * machine, a 64-byte frame costs ~20–40 ns that way against ~230–360 ns a byte at a time, and the
 * host's receive loop spent a third of an inline chain's time in that copy. The destination is
 * brought to a word boundary first; a source then off by 1–3 bytes is read as whole words and
 * shifted into place (a capture's records sit at any offset: in a pcap of 60- and 62-byte frames,
 * half of them are 2 bytes off, and went a byte at a time). Other short copies go a byte at a
 * time. From MAX_WORD_COPY bytes on, the native copy wins even with the view object it needs (the
 * one allocation here, deliberate): 38 against 81 ns at 256 bytes, 65 against 456 at 1514.
 */
export function copyBytes(src: Uint8Array, srcAt: number, dst: Uint8Array, dstAt: number, n: number): void {
  if (srcAt === 0 && n === src.length) {
    dst.set(src, dstAt);
    return;
  }
  if (n >= MIN_WORD_COPY && n < MAX_WORD_COPY) {
    // Arrays by identity first: reading byteOffset/byteLength is a builtin call that V8 does not
    // inline where it has seen several kinds of array (a profile of the host's receive loop showed
    // those calls per packet), so an array's word view — or that it has none — is looked up once.
    if (src !== lastSrc) {
      lastSrc = src;
      lastSrcWords = wordViewOf(src);
    }
    if (dst !== lastDst) {
      lastDst = dst;
      lastDstWords = wordViewOf(dst);
    }
    const from = lastSrcWords;
    const to = lastDstWords;
    if (from !== null && to !== null) {
      const head = (4 - (dstAt & 3)) & 3;
      for (let i = 0; i < head; i++) dst[dstAt + i] = src[srcAt + i];
      const s0 = srcAt + head;
      const words = (n - head) >>> 2;
      const s = s0 >>> 2;
      const d = (dstAt + head) >>> 2;
      const off = s0 & 3;
      if (off === 0) {
        for (let i = 0; i < words; i++) to[d + i] = from[s + i];
      } else if (LITTLE_ENDIAN && s + words < from.length) {
        // Each destination word is the high bytes of one source word and the low bytes of the next.
        const right = off << 3;
        const left = 32 - right;
        let low = from[s];
        for (let i = 0; i < words; i++) {
          const high = from[s + i + 1];
          to[d + i] = (low >>> right) | (high << left);
          low = high;
        }
      } else {
        for (let i = 0; i < words << 2; i++) dst[dstAt + head + i] = src[s0 + i];
      }
      for (let i = head + (words << 2); i < n; i++) dst[dstAt + i] = src[srcAt + i];
      return;
    }
  }
  if (n < MAX_WORD_COPY) {
    for (let i = 0; i < n; i++) dst[dstAt + i] = src[srcAt + i];
  } else {
    dst.set(src.subarray(srcAt, srcAt + n), dstAt);
  }
}

/** Typed arrays use the platform's byte order; the shifted copy assumes little-endian words. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Word copies pay off from here; shorter ones go a byte at a time. */
const MIN_WORD_COPY = 16;
/** From here the native copy is faster (words 26–34 ns against 35–41 at 64 bytes, 46 against 37–42 at 128). */
const MAX_WORD_COPY = 96;
/**
 * Only arrays this large get a cached word view: packet-sized arrays come and go. A long-lived
 * source of packet bytes (the generator's payload pattern) is made at least this large so its
 * copies take the word path, not a view object per copy.
 */
export const MIN_CACHED_BYTES = 1 << 16;
/**
 * Word views of the last few large arrays copied from or to, by identity. Strong references: at
 * most VIEW_CACHE arrays (pools, port buffers) outlive their last use until replaced.
 */
const VIEW_CACHE = 8;
const cachedBytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(VIEW_CACHE).fill(null);
const EMPTY_WORDS = new Uint32Array(0);
const cachedWords: Uint32Array[] = new Array<Uint32Array>(VIEW_CACHE).fill(EMPTY_WORDS);
let nextVictim = 0;
/** The usual caller copies between the same two arrays packet after packet: those first. */
let lastSrc: Uint8Array | null = null;
let lastSrcWords: Uint32Array | null = null;
let lastDst: Uint8Array | null = null;
let lastDstWords: Uint32Array | null = null;

/**
 * Drops the cached word view of `bytes`, so the cache no longer keeps it alive: the host calls it for
 * its pool when it shuts down (without it, a process that runs host after host — the control API's
 * applies, the chaos soak, a test suite — held up to VIEW_CACHE finished pools: 68 MiB of the soak's
 * memory after four rounds).
 */
export function forgetWordView(bytes: Uint8Array): void {
  for (let k = 0; k < VIEW_CACHE; k++) {
    if (cachedBytes[k] !== bytes) continue;
    cachedBytes[k] = null;
    cachedWords[k] = EMPTY_WORDS;
  }
  if (lastSrc === bytes) lastSrc = lastSrcWords = null;
  if (lastDst === bytes) lastDst = lastDstWords = null;
}

/** The word view of a large array that starts on a word boundary; null for any other (bytewise). */
function wordViewOf(bytes: Uint8Array): Uint32Array | null {
  if ((bytes.byteOffset & 3) !== 0 || bytes.byteLength < MIN_CACHED_BYTES) return null;
  return wordsOf(bytes);
}

function wordsOf(bytes: Uint8Array): Uint32Array {
  for (let k = 0; k < VIEW_CACHE; k++) if (cachedBytes[k] === bytes) return cachedWords[k];
  // A word view ends at the last whole word; copies stay inside `bytes` (the tail goes bytewise).
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  cachedBytes[nextVictim] = bytes;
  cachedWords[nextVictim] = words;
  nextVictim = (nextVictim + 1) % VIEW_CACHE;
  return words;
}

/** Checks writer options shared by both formats; returns the snaplen and link type to use. */
export function checkWriterOptions(options: { snaplen?: number; linkType?: number }): {
  snaplen: number;
  linkType: number;
} {
  const snaplen = options.snaplen ?? 262144;
  const linkType = options.linkType ?? 1;
  if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 0x7fffffff) {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `snaplen ${snaplen} must be an integer in 1..2^31-1`, {
      field: 'snaplen',
    });
  }
  if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0xffff) {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `link type ${linkType} must be an integer in 0..65535`, {
      field: 'linkType',
    });
  }
  return { snaplen, linkType };
}

/** Checks one writePacket call's arguments (cheap: a few comparisons). */
export function checkPacketArguments(
  file: string,
  bytes: Uint8Array,
  at: number,
  length: number,
  timestampSeconds: number,
  timestampNanos: number,
  originalLength: number,
): void {
  if (
    !(at >= 0 && length >= 0 && at + length <= bytes.length) ||
    !Number.isInteger(at) ||
    !Number.isInteger(length) ||
    !Number.isInteger(originalLength) ||
    originalLength < length ||
    originalLength > 0xffffffff ||
    !Number.isInteger(timestampSeconds) ||
    timestampSeconds < 0 ||
    !Number.isInteger(timestampNanos) ||
    timestampNanos < 0 ||
    timestampNanos >= 1e9
  ) {
    throw new NfvError(
      'NFV_ERR_BAD_ARGUMENT',
      `bad packet: at ${at}, length ${length} of ${bytes.length}, original length ${originalLength}, ` +
        `timestamp ${timestampSeconds}s ${timestampNanos}ns`,
      { file },
    );
  }
}
