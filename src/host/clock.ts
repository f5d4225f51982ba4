/**
 * The host's clock: nanoseconds since the epoch as a plain number (ms precision is kept to the
 * microsecond; a double holds epoch nanoseconds to within 256 ns, plenty for timeouts).
 */
export function nowNs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1e6);
}
