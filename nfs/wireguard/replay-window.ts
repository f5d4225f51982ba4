/**
 * The sliding replay window of RFC 6479 as WireGuard uses it: 8,192 bits in 128 blocks of 64, of
 * which the block holding the newest counter is partly in the future, so a counter is accepted
 * when it is newer than anything seen, or at most WINDOW_SIZE = 8,128 older than the newest and not
 * seen before. Moving forward clears whole blocks instead of shifting bits.
 *
 *   ring (128 blocks × 64 bits, two Uint32 words per block)
 *   [ b0 | b1 | ... | b127 ]    block of counter c = (c >> 6) mod 128, bit = c & 63
 *           ^ block of `last` — blocks after it (mod 128) up to the new block are zeroed on advance
 *
 *   invariant: every counter in (last − WINDOW_SIZE, last] that was accepted has its bit set, and
 *   no bit is set for a counter in that range that was not.
 *
 * Counters are 64-bit; JS numbers hold 53 bits exactly, so a counter travels as two 32-bit halves
 * (hi, lo) — what the packet carries — and nothing here allocates.
 *
 * @example
 * const w = new ReplayWindow();
 * w.accept(0, 5, REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO); // true
 * w.accept(0, 5, REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO); // false: a replay
 */

const BLOCK_BITS_LOG = 6;
const RING_BLOCKS = 128;
const BLOCK_MASK = RING_BLOCKS - 1;
/** How far behind the newest counter a counter may be and still be accepted. */
export const WINDOW_SIZE = (RING_BLOCKS - 1) * 64;
const TWO_32 = 2 ** 32;

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_BLOCKS * 2);
  private lastHi = 0;
  private lastLo = 0;

  /** Forgets everything (a new session). */
  reset(): void {
    this.ring.fill(0);
    this.lastHi = 0;
    this.lastLo = 0;
  }

  /**
   * Records counter (hi, lo) and returns true when it is acceptable: below the limit (limitHi,
   * limitLo), inside the window and not seen before. Call it only after the packet authenticated.
   */
  accept(hi: number, lo: number, limitHi: number, limitLo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi > limitHi || (hi === limitHi && lo >= limitLo)) return false;
    const ring = this.ring;
    if (hi > this.lastHi || (hi === this.lastHi && lo > this.lastLo)) {
      // Newer than anything seen: zero the blocks between the old newest and this one.
      const current = (this.lastLo >>> BLOCK_BITS_LOG) & BLOCK_MASK;
      let blocks = RING_BLOCKS;
      const diffHi = hi - this.lastHi - (lo < this.lastLo ? 1 : 0);
      if (diffHi === 0) {
        // The distance is below 2^32, so block numbers differ by less than 2^26: their low bits suffice.
        blocks = ((lo >>> BLOCK_BITS_LOG) - (this.lastLo >>> BLOCK_BITS_LOG) + (1 << 26)) % (1 << 26);
        if (blocks > RING_BLOCKS) blocks = RING_BLOCKS;
      }
      for (let i = 1; i <= blocks; i++) {
        const b = ((current + i) & BLOCK_MASK) * 2;
        ring[b] = 0;
        ring[b + 1] = 0;
      }
      this.lastHi = hi;
      this.lastLo = lo;
    } else {
      // Older or equal: refuse what fell out of the window (last − counter > WINDOW_SIZE).
      const behindHi = this.lastHi - hi - (this.lastLo < lo ? 1 : 0);
      const behindLo = (this.lastLo - lo + TWO_32) % TWO_32;
      if (behindHi > 0 || behindLo > WINDOW_SIZE) return false;
    }
    const word = ((lo >>> BLOCK_BITS_LOG) & BLOCK_MASK) * 2 + ((lo >>> 5) & 1);
    const bit = 1 << (lo & 31);
    const old = ring[word];
    ring[word] = old | bit;
    return (old & bit) === 0;
  }
}
