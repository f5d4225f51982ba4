/**
 * How many packets the host lets into its chains at once. A source that never runs dry (a pcap
 * file, the memory port, a saturated live port) otherwise fills every ring and the pool: the
 * chain moves no more packets, but each one waits behind thousands (deep rings and an 8,192-slot
 * pool: p50 4–7 ms, p99 0.1–0.26 s in a direct fw → NAT → LB chain).
 *
 * The limit adapts as CoDel (RFC 8289) judges a queue: by the least time a packet spent in the
 * chains during an interval (its sojourn, from read to output port). That minimum is the standing
 * queue — bursts come and go, a standing queue stays. Once per interval in which the limit held
 * packets back:
 *
 *   least sojourn ≤ target   the chains have room to spare: let a burst more in (up to `ceiling`);
 *   least sojourn > target   a standing queue: take an eighth off (down to `floor`).
 *
 * An interval in which the limit held nothing back changes nothing: the source was slower than the
 * chains, and no queue formed at the host's hand. The floor keeps every stage busy: two bursts per
 * thread (one being processed, one waiting), whatever the sojourn — with more threads than cores
 * a packet waits for each thread's turn on a core however short the queues are.
 *
 * @example
 * const queue = new QueueLimit({ floor: 1024, ceiling: 8192, step: 128, targetMs: 1 });
 * const room = queue.room(inFlight, burst);    // packets that may be read now (≤ burst)
 * queue.observe(sojournMs);                     // for each run of packets sent
 * queue.update(performance.now());              // every loop turn
 */
export interface QueueLimitOptions {
  /** Packets always allowed in flight. */
  floor: number;
  /** Packets never allowed in flight (the pool's size). */
  ceiling: number;
  /** Packets added per interval while there is room (a burst). */
  step: number;
  /** The standing delay aimed at, in milliseconds; 0 turns the limit off (ceiling only). */
  targetMs: number;
  /** How often the limit is judged, in milliseconds. */
  intervalMs?: number;
}

/**
 * The default target (`HostPlan.queueTargetMs`; a deployment's default is the same). 2 ms, not 1:
 * with more threads than cores under SCHED_BATCH (host.ts), a stage waits for its core a time
 * slice at a time, and a 1 ms target took that wait for a standing queue and kept the chain near
 * its floor. fw → NAT → LB `direct`, 7 interleaved rounds (2026-12-07 ~19:55), 1 → 2 ms: after
 * the first second median 2.41 → 2.86 Mpps, p50 1.2 → 2.4 ms, p99 2.9–4.1 → 5.8–6.9 ms; 2
 * accept-all firewalls 3.15 → 3.42, 8 of them 0.88 → 0.97; `paravirt` no faster (1.11–1.18 →
 * 1.01–1.23 Mpps) and p50 1.7–2.0 → 3.4 ms — a deployment of paravirt guests that cares more for
 * delay than rate sets 1.
 */
export const QUEUE_TARGET_MS = 2;

/** CoDel's interval is 100 ms for Internet paths; a chain's round trip is well under a millisecond. */
const DEFAULT_INTERVAL_MS = 20;

export class QueueLimit {
  /** Packets allowed in flight now. */
  limit: number;
  private readonly floor: number;
  private readonly ceiling: number;
  private readonly step: number;
  private readonly targetMs: number;
  private readonly intervalMs: number;
  private intervalEndsAt = 0;
  private leastSojournMs = Infinity;
  private heldBack = false;

  constructor(options: QueueLimitOptions) {
    this.ceiling = Math.max(1, Math.floor(options.ceiling));
    this.floor = Math.min(this.ceiling, Math.max(1, Math.floor(options.floor)));
    this.step = Math.max(1, Math.floor(options.step));
    this.targetMs = options.targetMs;
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.limit = this.targetMs > 0 ? this.floor : this.ceiling;
  }

  /** Packets that may enter now with `inFlight` inside; asking for more than that is held back. */
  room(inFlight: number, wanted: number): number {
    const room = this.limit - inFlight;
    if (room >= wanted) return wanted;
    this.heldBack = true;
    return room > 0 ? room : 0;
  }

  /** A run of packets left the chains after `sojournMs`. */
  observe(sojournMs: number): void {
    if (sojournMs < this.leastSojournMs) this.leastSojournMs = sojournMs;
  }

  /** Judges the interval that ended by `nowMs`, if one has; cheap to call every loop turn. */
  update(nowMs: number): void {
    if (nowMs < this.intervalEndsAt) return;
    if (this.intervalEndsAt !== 0 && this.heldBack && this.targetMs > 0 && this.leastSojournMs !== Infinity) {
      if (this.leastSojournMs <= this.targetMs) this.limit = Math.min(this.ceiling, this.limit + this.step);
      else this.limit = Math.max(this.floor, this.limit - Math.max(1, this.limit >>> 3));
    }
    this.intervalEndsAt = nowMs + this.intervalMs;
    this.leastSojournMs = Infinity;
    this.heldBack = false;
  }
}
