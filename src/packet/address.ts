/**
 * Address text ↔ bytes, with strict grammars: `Number()` and `parseInt()` accept "0x10", "1e2" and
 * " 7", and an address parser built on them accepts addresses nobody wrote. These are control-plane
 * helpers (configuration, representations, tests); the packet path works on numbers and bytes.
 */
import { NfvError } from '../errors.js';

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Parses dotted-quad IPv4 text to an unsigned 32-bit number, or returns -1. @example parseIpv4('192.0.2.1') === 0xc0000201 */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return -1;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Like `parseIpv4` but throws NFV_ERR_BAD_ADDRESS. @example ipv4('10.0.0.1') === 0x0a000001 */
export function ipv4(text: string): number {
  const value = parseIpv4(text);
  if (value < 0) throw new NfvError('NFV_ERR_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(text)}`);
  return value;
}

/** Formats an unsigned 32-bit IPv4 address. @example formatIpv4(0xc0000201) === '192.0.2.1' */
export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/**
 * Parses IPv6 text (RFC 4291 §2.2, including `::` and an embedded dotted quad) into `out[at..+16]`.
 * Returns false, leaving `out` unspecified, when the text is not an address.
 * @example parseIpv6('2001:db8::1', buf, 0)
 */
export function parseIpv6(text: string, out: Uint8Array, at = 0): boolean {
  if (text.length < 2 || text.length > 45) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const compressed = halves.length === 2;
  const head = parseHextets(halves[0], !compressed);
  const tail = compressed ? parseHextets(halves[1], true) : [];
  if (head === null || tail === null) return false;
  const zeros = 8 - head.length - tail.length;
  if (compressed ? zeros < 1 : zeros !== 0) return false;
  const words = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[at + 2 * i] = words[i] >>> 8;
    out[at + 2 * i + 1] = words[i] & 0xff;
  }
  return true;
}

/** Colon-separated hextets; the last may be a dotted quad when `dottedAllowed`. Null when malformed. */
function parseHextets(part: string, dottedAllowed: boolean): number[] | null {
  if (part === '') return [];
  const pieces = part.split(':');
  const words: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i];
    if (dottedAllowed && i === pieces.length - 1 && piece.includes('.')) {
      const v4 = parseIpv4(piece);
      if (v4 < 0) return null;
      words.push(v4 >>> 16, v4 & 0xffff);
    } else if (HEXTET.test(piece)) words.push(parseInt(piece, 16));
    else return null;
  }
  return words;
}

/** Like `parseIpv6` but returns a new 16-byte array or throws NFV_ERR_BAD_ADDRESS. @example ipv6('::1')[15] === 1 */
export function ipv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!parseIpv6(text, out))
    throw new NfvError('NFV_ERR_BAD_ADDRESS', `not an IPv6 address: ${JSON.stringify(text)}`);
  return out;
}

/**
 * Formats 16 bytes as IPv6 text in the RFC 5952 canonical form (lowercase, longest run of two or
 * more zero words as `::`, the first such run on a tie). @example formatIpv6(ipv6('2001:DB8:0:0:0:0:0:1')) === '2001:db8::1'
 */
export function formatIpv6(bytes: Uint8Array, at = 0): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (bytes[at + 2 * i] === 0 && bytes[at + 2 * i + 1] === 0) {
      let j = i;
      while (j < 8 && bytes[at + 2 * j] === 0 && bytes[at + 2 * j + 1] === 0) j++;
      if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
      i = j;
    } else i++;
  }
  if (bestLen < 2) bestStart = -1;
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLen - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += ((bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1]).toString(16);
  }
  return text;
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Parses `aa:bb:cc:dd:ee:ff` into `out[at..+6]`; false when malformed. @example parseMac('02:00:00:00:00:01', buf, 0) */
export function parseMac(text: string, out: Uint8Array, at = 0): boolean {
  if (!MAC.test(text)) return false;
  for (let i = 0; i < 6; i++) out[at + i] = parseInt(text.slice(3 * i, 3 * i + 2), 16);
  return true;
}

/** Like `parseMac` but returns 6 new bytes or throws NFV_ERR_BAD_ADDRESS. @example mac('ff:ff:ff:ff:ff:ff') */
export function mac(text: string): Uint8Array {
  const out = new Uint8Array(6);
  if (!parseMac(text, out))
    throw new NfvError('NFV_ERR_BAD_ADDRESS', `not a MAC address: ${JSON.stringify(text)}`);
  return out;
}

/** Formats 6 bytes as lowercase colon-separated MAC text. @example formatMac(mac('02:00:00:00:00:01')) === '02:00:00:00:00:01' */
export function formatMac(bytes: Uint8Array, at = 0): string {
  let text = '';
  for (let i = 0; i < 6; i++) text += (i ? ':' : '') + bytes[at + i].toString(16).padStart(2, '0');
  return text;
}
