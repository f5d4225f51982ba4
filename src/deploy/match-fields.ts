/**
 * Strict parsers for the fields of a chain's `match`: prefixes, protocols and port ranges. Each
 * returns the parsed value or a message saying what was expected; none throws.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../packet/address.js';
import type { Cidr, PortRange } from './deployment.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(message: string): Parsed<T> => ({ ok: false, message });

/** Protocol names a match may use, lowercase, as IANA assigns them. */
export const PROTOCOL_NAMES: Readonly<Record<string, number>> = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
};

/** Protocols that carry ports, so `srcPort` / `dstPort` can match them. */
export const PORTED_PROTOCOLS: readonly number[] = [6, 17, 132, 136];

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses `a.b.c.d/n`, `x:y::/n` or a bare address (a host prefix). Host bits must be zero:
 * `10.0.0.1/8` is rejected, since it is usually a typo for a host or for `10.0.0.0/8`.
 * @example parseCidr('10.0.0.0/8') → { ok: true, value: { version: 4, address: 0x0a000000, mask: 0xff000000, prefixLength: 8, text: '10.0.0.0/8' } }
 */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  const isV6 = addressText.includes(':');
  const max = isV6 ? 128 : 32;
  let prefixLength = max;
  if (prefixText !== undefined) {
    if (!PREFIX.test(prefixText) || Number(prefixText) > max)
      return fail(`prefix length must be 0…${max} (got ${JSON.stringify(text)})`);
    prefixLength = Number(prefixText);
  }
  if (!isV6) {
    const address = parseIpv4(addressText);
    if (address < 0) return fail(`must be an IPv4 or IPv6 address or prefix (got ${JSON.stringify(text)})`);
    const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
    if ((address & ~mask) >>> 0 !== 0)
      return fail(`has host bits set; did you mean ${formatIpv4((address & mask) >>> 0)}/${prefixLength}?`);
    return ok({ version: 4, address, mask, prefixLength, text: `${formatIpv4(address)}/${prefixLength}` });
  }
  const bytes = new Uint8Array(16);
  if (!parseIpv6(addressText, bytes))
    return fail(`must be an IPv4 or IPv6 address or prefix (got ${JSON.stringify(text)})`);
  const masked = bytes.slice();
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - 8 * i));
    masked[i] &= (0xff00 >> keep) & 0xff;
  }
  if (masked.some((b, i) => b !== bytes[i]))
    return fail(`has host bits set; did you mean ${formatIpv6(masked)}/${prefixLength}?`);
  return ok({ version: 6, bytes, prefixLength, text: `${formatIpv6(bytes)}/${prefixLength}` });
}

/** A protocol name from `PROTOCOL_NAMES` or an integer 0…255. @example parseProtocol('tcp') → 6 */
export function parseProtocol(value: string | number): Parsed<number> {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 255
      ? ok(value)
      : fail(`must be a protocol number 0…255 (got ${value})`);
  }
  const number = PROTOCOL_NAMES[value];
  if (Object.hasOwn(PROTOCOL_NAMES, value) && number !== undefined) return ok(number);
  return fail(
    `must be one of ${Object.keys(PROTOCOL_NAMES).join(', ')} or a number 0…255 (got ${JSON.stringify(value)})`,
  );
}

const PORT = '(0|[1-9][0-9]{0,4})';
const PORT_TEXT = new RegExp(`^${PORT}(?:-${PORT})?$`);

/** A port (number or decimal text) or a range `lo-hi` with lo ≤ hi, ports 0…65535. @example parsePortRange('1024-65535') */
export function parsePortRange(value: string | number): Parsed<PortRange> {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 65535
      ? ok({ lo: value, hi: value })
      : fail(`must be a port 0…65535 (got ${value})`);
  }
  const m = PORT_TEXT.exec(value);
  if (m === null) return fail(`must be a port 0…65535 or a range lo-hi (got ${JSON.stringify(value)})`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) return fail(`ports must be 0…65535 (got ${JSON.stringify(value)})`);
  if (lo > hi) return fail(`range must have lo ≤ hi (got ${JSON.stringify(value)})`);
  return ok({ lo, hi });
}
