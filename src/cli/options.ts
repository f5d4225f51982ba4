/**
 * Strict parsers for command-line option values. Commander hands over strings; `Number()` would
 * accept "0x10", "1e3" and "" — these accept only what a person means, and name the option.
 */
import { NfvError } from '../errors.js';

const INTEGER = /^(0|[1-9][0-9]*)$/;
const DECIMAL = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const SCALED = /^(0|[1-9][0-9]*)(\.[0-9]+)?([kKmMgG]?)$/;

function bad(option: string, value: string, what: string): never {
  throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${option} ${JSON.stringify(value)}: expected ${what}`, {
    field: option,
  });
}

/** A whole number, optionally with k/M/G (×10³/10⁶/10⁹): "10000", "1M", "2.5k". */
export function parseCount(option: string, value: string): number {
  const m = SCALED.exec(value);
  if (!m) bad(option, value, 'a whole number, optionally with k, M or G');
  const scale = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 }[m[3]] ?? 1;
  const n = Number(m[1] + (m[2] ?? '')) * scale;
  if (!Number.isSafeInteger(n)) bad(option, value, 'a whole number');
  return n;
}

/** An integer in [min, max]. */
export function parseInteger(option: string, value: string, min: number, max: number): number {
  if (!INTEGER.test(value)) bad(option, value, `an integer ${min}…${max}`);
  const n = Number(value);
  if (n < min || n > max) bad(option, value, `an integer ${min}…${max}`);
  return n;
}

/** A fraction in [0, 1], written as 0.25 or 25%. */
export function parseFraction(option: string, value: string): number {
  const percent = value.endsWith('%');
  const text = percent ? value.slice(0, -1) : value;
  if (!DECIMAL.test(text)) bad(option, value, 'a fraction such as 0.25 or 25%');
  const n = Number(text) / (percent ? 100 : 1);
  if (n > 1) bad(option, value, 'a fraction from 0 to 1');
  return n;
}

/** A positive decimal. */
export function parsePositive(option: string, value: string): number {
  if (!DECIMAL.test(value) || Number(value) <= 0) bad(option, value, 'a positive number');
  return Number(value);
}

/** `tcp:6,udp:3,icmp:1` → weights; unnamed protocols get 0. */
export function parseMix(option: string, value: string): { tcp: number; udp: number; icmp: number } {
  const mix = { tcp: 0, udp: 0, icmp: 0 };
  for (const part of value.split(',')) {
    const [name, weight, extra] = part.split(':');
    if (
      extra !== undefined ||
      !(name === 'tcp' || name === 'udp' || name === 'icmp') ||
      weight === undefined ||
      !DECIMAL.test(weight)
    ) {
      bad(option, value, 'a list like tcp:6,udp:3,icmp:1');
    }
    mix[name] = Number(weight);
  }
  return mix;
}
