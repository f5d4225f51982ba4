/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI 2016, §3.4): a lookup table of prime size M in which every backend owns about
 * M / N slots, built so that adding or removing one backend moves few slots of the others.
 *
 * Each backend has a permutation of 0 … M−1 given by two independent hashes of its name:
 * offset = h1 mod M, skip = h2 mod (M − 1) + 1, slot j of the permutation = (offset + j·skip) mod M
 * (M prime, so every skip is coprime with M and the permutation covers every slot). Backends take
 * turns, round by round, each claiming the next still-empty slot of its own permutation until the
 * table is full. With equal weights every backend claims one slot per round, so slot counts differ
 * by at most 1. A weight w gives a backend w / max(weights) turns per round on average (integer
 * credit, no floating point), hence a share of slots proportional to its weight.
 *
 *   table[slot]  position (in the list given to `populateMaglev`) of the backend owning the slot
 *
 * @example
 * const size = maglevTableSize(3); // 307: the smallest prime ≥ 300
 * const table = populateMaglev(['10.0.0.1', '10.0.0.2', '10.0.0.3'], [1, 1, 1], size);
 * const backend = table[(flowHash >>> 0) % size];
 */

/** The largest table: a prime, 2^16 + 1, so table entries and sizes stay small. */
export const MAGLEV_MAX_SIZE = 65537;
/** Slots per backend at least (the paper suggests M ≫ N; 100 keeps the imbalance ≤ 1 %). */
export const MAGLEV_SLOTS_PER_BACKEND = 100;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The smallest prime ≥ `n` (n ≥ 2). @example nextPrime(100) === 101 */
export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

/** The table size for `backends` backends: the smallest prime ≥ 100 × backends, capped at 65537. */
export function maglevTableSize(backends: number): number {
  return Math.min(MAGLEV_MAX_SIZE, nextPrime(MAGLEV_SLOTS_PER_BACKEND * Math.max(1, backends)));
}

/**
 * A 32-bit string hash: a multiply-xor pass over the UTF-16 code units from `seed`, finished with
 * MurmurHash3's fmix32. Two different seeds and multipliers give the two independent hashes.
 */
export function hashName(text: string, seed: number, multiplier: number): number {
  let h = seed | 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), multiplier);
  h ^= text.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A backend's permutation parameters in a table of prime size `size`. */
export function maglevPermutation(name: string, size: number): { offset: number; skip: number } {
  const h1 = hashName(name, 0x811c9dc5, 0x01000193); // FNV-1a's basis and prime
  const h2 = hashName(name, 0x9747b28c, 0x5bd1e995); // MurmurHash2's seed-style constant and m
  return { offset: h1 % size, skip: (h2 % (size - 1)) + 1 };
}

/**
 * Fills a Maglev table of prime size `size` for the backends `names` (weights ≥ 1, integers). Returns
 * each slot's backend position in `names`. The result depends on the order of `names` only where
 * two backends contend for a slot in the same round: pass them in a canonical order (sorted) so
 * that every replica builds the same table. Throws for an empty list (the caller handles "no
 * backend") or a size that is not prime.
 */
export function populateMaglev(
  names: readonly string[],
  weights: readonly number[],
  size: number,
): Uint16Array {
  const n = names.length;
  if (n === 0) throw new Error('populateMaglev: no backends');
  if (n > 0xffff) throw new Error('populateMaglev: too many backends');
  if (!isPrime(size)) throw new Error(`populateMaglev: size ${size} is not prime`);
  const position = new Uint32Array(n); // the next permutation slot each backend will try
  const skip = new Uint32Array(n);
  const weight = new Uint32Array(n);
  const credit = new Uint32Array(n);
  let maxWeight = 1;
  for (let b = 0; b < n; b++) {
    const p = maglevPermutation(names[b], size);
    position[b] = p.offset;
    skip[b] = p.skip;
    const w = Math.max(1, Math.floor(weights[b] ?? 1));
    weight[b] = w;
    if (w > maxWeight) maxWeight = w;
  }
  const table = new Uint16Array(size);
  const taken = new Uint8Array(size);
  let filled = 0;
  while (filled < size) {
    for (let b = 0; b < n && filled < size; b++) {
      credit[b] += weight[b];
      while (credit[b] >= maxWeight && filled < size) {
        credit[b] -= maxWeight;
        let slot = position[b];
        while (taken[slot] !== 0) {
          slot += skip[b];
          if (slot >= size) slot -= size;
        }
        taken[slot] = 1;
        table[slot] = b;
        filled++;
        slot += skip[b];
        position[b] = slot >= size ? slot - size : slot;
      }
    }
  }
  return table;
}
