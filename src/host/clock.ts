/**
 * The host's clock: nanoseconds since the epoch as a plain number (ms precision is kept to the
 * microsecond; a double holds epoch nanoseconds to within 256 ns, plenty for timeouts).
 */

/** Read once per thread: the `timeOrigin` getter is a call into Node's bindings every time. */
const TIME_ORIGIN = performance.timeOrigin;

export function nowNs(): number {
  return Math.round((TIME_ORIGIN + performance.now()) * 1e6);
}
