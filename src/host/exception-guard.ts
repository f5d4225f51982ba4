/**
 * What happens when an NF throws (TESTING.md E2, "query of death"). The burst it was processing is
 * dropped, each packet counted as `nf_exception` — packets of a burst may already have been
 * rewritten in place, so re-running them one by one to spare the innocent ones could apply a
 * rewrite twice — and the NF keeps running with its state. Only a crash loop (more than
 * `maxPerSecond` exceptions in one second) takes the guest down, for the supervisor to restart
 * it with backoff.
 */
import type { NfInstance } from '../sdk/define-nf.js';
import type { PacketBatch } from '../sdk/packet-batch.js';
import { FLAG_INDEX_MASK } from './guest-protocol.js';

/** The drop-reason index that means "the NF threw": the highest index a descriptor can carry. */
export const EXCEPTION_REASON = FLAG_INDEX_MASK;
export const EXCEPTION_DROP = 'nf_exception';

export class ExceptionGuard {
  /** Exceptions since the guard was made. */
  total = 0;
  private windowStart = 0;
  private inWindow = 0;

  constructor(private readonly maxPerSecond = 10) {}

  /**
   * Runs `process`; when it throws, marks every packet of the burst as an `nf_exception` drop and
   * returns the error; rethrows only when the NF is in a crash loop.
   */
  process(instance: NfInstance, batch: PacketBatch, now: number): Error | null {
    try {
      instance.process(batch, now);
      return null;
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(String(thrown));
      for (let i = 0; i < batch.count; i++) batch.drop(i, EXCEPTION_REASON);
      this.total++;
      const nowMs = performance.now();
      if (nowMs - this.windowStart > 1000) {
        this.windowStart = nowMs;
        this.inWindow = 0;
      }
      if (++this.inWindow > this.maxPerSecond) {
        throw new Error(`crash loop: ${this.inWindow} exceptions within a second (last: ${error.message})`, {
          cause: thrown,
        });
      }
      return error;
    }
  }
}
