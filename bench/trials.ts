/**
 * Figures from repeated trials. On a shared VM one trial can land in a slow minute (bench `modes`
 * gave 1.45 and 1.66 Mpps `direct` a minute apart), so a bench row is run several times, its
 * trials interleaved with the other rows', and reported as the median with the lowest and highest.
 */

/** The middle value; for an even count, the mean of the two middle ones. NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The median of a set of trials, and its lowest and highest. */
export interface Spread {
  median: number;
  low: number;
  high: number;
  /** Trials the figure is of (those that gave a value). */
  count: number;
}

/** The spread of the defined values, or undefined when no trial gave one. */
export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const given = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (given.length === 0) return undefined;
  return { median: median(given), low: Math.min(...given), high: Math.max(...given), count: given.length };
}

/** "1.234 (1.100–1.300)": the median, then the range when there was more than one trial. */
export function formatSpread(s: Spread | undefined, digits: number, none = 'n/a'): string {
  if (s === undefined) return none;
  const m = s.median.toFixed(digits);
  return s.count > 1 ? `${m} (${s.low.toFixed(digits)}–${s.high.toFixed(digits)})` : m;
}

/**
 * How many trials a bench runs: the environment variable `name` if it is a whole number from 1 to
 * 100, else `fallback`. A bad value is an error that names it, not a silent default.
 */
export function trialCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 100)
    throw new Error(`${name} must be a whole number from 1 to 100, not ${JSON.stringify(raw)}`);
  return n;
}
