/**
 * A small, fast, seeded PRNG (sfc32, the "small fast chaotic" generator from PractRand) so that
 * every generated capture is reproducible from its seed on any machine. Not for cryptography.
 *
 * @example
 * const rng = new SeededRandom(42);
 * const coin = rng.below(2); // 0 or 1, the same sequence for seed 42 every time
 */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /**
   * The last draw, an unsigned 32-bit integer. Left in a field rather than returned: a draw of 2^30
   * or more (or a float) returned from a call V8 did not inline is a heap number, an allocation per
   * packet where the generator draws per packet; a double field is updated in place.
   */
  private drawn = 0.5;

  constructor(seed: number) {
    // Spread the seed over the state with splitmix32 so that nearby seeds give unrelated streams.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Advances the state by one draw, left in `drawn`. */
  private advance(): void {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    this.drawn = t >>> 0;
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    this.advance();
    return this.drawn;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    this.advance();
    return this.drawn / 0x100000000;
  }

  /**
   * A uniform integer in [0, n) for 0 < n ≤ 2^32: a small integer for the small `n` of the packet
   * path, never boxed. @example rng.below(6) + 1 // a die
   */
  below(n: number): number {
    this.advance();
    return Math.floor((this.drawn / 0x100000000) * n);
  }
}

/**
 * Draws ranks 0…n−1 with P(k) ∝ 1/(k+1)^s (Zipf), by binary search in a precomputed cumulative
 * table: O(log n) per draw and no allocation after construction.
 *
 * @example
 * const zipf = new ZipfSampler(1000, 1.0);
 * const flow = zipf.sample(rng); // flow 0 is the most frequent
 */
export class ZipfSampler {
  private readonly cumulative: Float64Array;

  constructor(n: number, exponent: number) {
    this.cumulative = new Float64Array(n);
    let total = 0;
    for (let k = 0; k < n; k++) {
      total += 1 / Math.pow(k + 1, exponent);
      this.cumulative[k] = total;
    }
    for (let k = 0; k < n; k++) this.cumulative[k] /= total;
  }

  sample(rng: SeededRandom): number {
    const u = rng.float();
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
