/**
 * A minimal POSIX ustar writer and reader: regular files only, enough to carry images between
 * hosts in a file `tar -tf` lists.
 *
 *   per file:  512-byte header | data | zero padding to a multiple of 512
 *   end:       two 512-byte zero blocks
 *
 *   header offset  size  field
 *     0            100   name (NUL-terminated unless exactly 100)
 *   100              8   mode, octal          124   12  size, octal      136  12  mtime, octal
 *   148              8   checksum: sum of the header's bytes with this field as spaces, octal
 *   156              1   type: '0' (or NUL) regular file
 *   257              6   magic "ustar\0"      263    2  version "00"
 *   345            155   prefix: a path longer than 100 is prefix + "/" + name
 *
 * The reader is for untrusted files: it checks each checksum and size, refuses anything but
 * regular files and directories, and never returns more than `maxBytes` of data.
 *
 * @example
 * const tar = writeTar([{ name: 'a.txt', data: bytes }]);
 * readTar(tar)[0].name === 'a.txt';
 */
import { NfvError } from '../errors.js';

export interface TarEntry {
  name: string;
  data: Uint8Array;
}

const BLOCK = 512;
const Field = {
  Name: 0,
  Mode: 100,
  Uid: 108,
  Gid: 116,
  Size: 124,
  Mtime: 136,
  Checksum: 148,
  Type: 156,
  Magic: 257,
  Version: 263,
  Prefix: 345,
} as const;
const NAME_LENGTH = 100;
const PREFIX_LENGTH = 155;
const MAX_SIZE = 0o77777777777; // 11 octal digits

function writeString(header: Uint8Array, at: number, text: string): void {
  header.set(Buffer.from(text, 'utf8'), at);
}

function writeOctal(header: Uint8Array, at: number, width: number, value: number): void {
  writeString(header, at, `${value.toString(8).padStart(width - 1, '0')}\0`);
}

function splitName(name: string): { prefix: string; base: string } {
  if (Buffer.byteLength(name) <= NAME_LENGTH) return { prefix: '', base: name };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const base = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= PREFIX_LENGTH && Buffer.byteLength(base) <= NAME_LENGTH)
      return { prefix, base };
  }
  throw new NfvError('NFV_ERR_BAD_ARGUMENT', `path too long for ustar: ${name}`);
}

function checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= Field.Checksum && i < Field.Checksum + 8 ? 0x20 : header[i];
  return sum;
}

/** A ustar archive of `entries` (mode 0644, owner 0, mtime 0: the same entries give the same bytes). */
export function writeTar(entries: readonly TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    if (entry.data.length > MAX_SIZE)
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `file too large for ustar: ${entry.name}`);
    const header = new Uint8Array(BLOCK);
    const { prefix, base } = splitName(entry.name);
    writeString(header, Field.Name, base);
    writeOctal(header, Field.Mode, 8, 0o644);
    writeOctal(header, Field.Uid, 8, 0);
    writeOctal(header, Field.Gid, 8, 0);
    writeOctal(header, Field.Size, 12, entry.data.length);
    writeOctal(header, Field.Mtime, 12, 0);
    header[Field.Type] = 0x30; // '0'
    writeString(header, Field.Magic, 'ustar\0');
    writeString(header, Field.Version, '00');
    writeString(header, Field.Prefix, prefix);
    writeString(header, Field.Checksum, `${checksum(header).toString(8).padStart(6, '0')}\0 `);
    parts.push(header, entry.data);
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return Buffer.concat(parts);
}

function readString(header: Uint8Array, at: number, length: number): string {
  const field = header.subarray(at, at + length);
  const end = field.indexOf(0);
  return Buffer.from(end >= 0 ? field.subarray(0, end) : field).toString('utf8');
}

function readOctal(header: Uint8Array, at: number, length: number): number {
  const text = readString(header, at, length).trim();
  if (!/^[0-7]+$/.test(text)) return -1;
  return parseInt(text, 8);
}

/** The regular files in a ustar archive. NFV_ERR_IMAGE_INVALID (with the byte offset) when malformed. */
export function readTar(tar: Uint8Array, maxBytes = 256 * 1024 * 1024, file?: string): TarEntry[] {
  const bad = (message: string, offset: number): never => {
    throw new NfvError('NFV_ERR_IMAGE_INVALID', `archive: ${message}`, { ...(file ? { file } : {}), offset });
  };
  const entries: TarEntry[] = [];
  let total = 0;
  let at = 0;
  for (;;) {
    if (at + BLOCK > tar.length) bad('ends without the two zero blocks', at);
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    if (readString(header, Field.Magic, 6) !== 'ustar') bad('not a ustar header', at);
    const sum = readOctal(header, Field.Checksum, 8);
    if (sum !== checksum(header)) bad('header checksum mismatch', at);
    const size = readOctal(header, Field.Size, 12);
    if (size < 0) bad('bad size field', at + Field.Size);
    const dataAt = at + BLOCK;
    if (dataAt + size > tar.length) bad('file data runs past the end', at);
    const type = header[Field.Type];
    const prefix = readString(header, Field.Prefix, PREFIX_LENGTH);
    const base = readString(header, Field.Name, NAME_LENGTH);
    const name = prefix ? `${prefix}/${base}` : base;
    if (type === 0x30 || type === 0) {
      total += size;
      if (total > maxBytes) bad(`more than ${maxBytes} bytes of data`, at);
      entries.push({ name, data: tar.slice(dataAt, dataAt + size) });
    } else if (type !== 0x35) bad(`entry ${name} is not a regular file or directory`, at);
    at = dataAt + Math.ceil(size / BLOCK) * BLOCK;
  }
  return entries;
}
