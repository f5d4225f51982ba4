/**
 * A multi-pattern automaton (Aho–Corasick) over typed arrays: every `content` of every rule is
 * compiled into it once, and the packet path walks each inspected byte through it once, carrying
 * the state from one segment of a TCP stream to the next.
 *
 * It is a prefilter: patterns are stored case-folded (A–Z as a–z), so a hit says "this pattern may
 * end here"; the rule verifier then checks case, positions and the other contents exactly.
 *
 *   state s (0 = root):  depth[s]                   pattern bytes from the root
 *                        fail[s]                    longest proper suffix that is also a state
 *                        edgeStart[s] … [s+1]       sparse goto edges, sorted by byte:
 *                          edgeByte[e], edgeTarget[e]
 *                        outStart[s] … [s+1]        patterns ending exactly here: outPattern[o]
 *                        dictLink[s]                nearest state on the fail chain with its own
 *                                                   patterns (-1: none)
 *   dense rows:          states with denseRow[s] ≥ 0 (the root and shallow states, at most
 *                        MAX_DENSE_ROWS) hold a full 256-entry row dense[row*256 + b] = δ(s, b),
 *                        failures already resolved
 *
 * Invariant: the fail chain of every state ends at the root, whose row is dense, so `step` ends
 * after at most depth(s) sparse look-ups. Random traffic mostly stays in the dense rows.
 *
 * @example
 * const ac = AhoCorasick.compile([bytes('evil'), bytes('attack')]);
 * let state = 0;
 * for (const b of payload) { state = ac.step(state, b); if (ac.hasOutput(state)) … }
 */

/** Case folding table: A–Z → a–z, every other byte unchanged. */
export const FOLD = new Uint8Array(256);
for (let b = 0; b < 256; b++) FOLD[b] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;

/** Shallow states that get a dense row: the root's row and its children's (≤ 257 × 1 KiB), and more. */
const MAX_DENSE_ROWS = 4096;
const DENSE_DEPTH = 2;

export class AhoCorasick {
  readonly states: number;
  readonly patterns: number;
  private readonly fail: Int32Array;
  private readonly edgeStart: Uint32Array;
  private readonly edgeByte: Uint8Array;
  private readonly edgeTarget: Int32Array;
  private readonly outStart: Uint32Array;
  private readonly outPattern: Uint32Array;
  private readonly dictLink: Int32Array;
  /** Read by the scan loop directly (its fast path inlined); never written after compile. */
  readonly denseRow: Int32Array;
  readonly dense: Int32Array;
  /** 1 when the state or a state on its fail chain ends a pattern. */
  readonly emits: Uint8Array;

  private constructor(parts: {
    fail: Int32Array;
    edgeStart: Uint32Array;
    edgeByte: Uint8Array;
    edgeTarget: Int32Array;
    outStart: Uint32Array;
    outPattern: Uint32Array;
    dictLink: Int32Array;
    denseRow: Int32Array;
    dense: Int32Array;
    emits: Uint8Array;
    patterns: number;
  }) {
    this.fail = parts.fail;
    this.edgeStart = parts.edgeStart;
    this.edgeByte = parts.edgeByte;
    this.edgeTarget = parts.edgeTarget;
    this.outStart = parts.outStart;
    this.outPattern = parts.outPattern;
    this.dictLink = parts.dictLink;
    this.denseRow = parts.denseRow;
    this.dense = parts.dense;
    this.emits = parts.emits;
    this.states = parts.fail.length;
    this.patterns = parts.patterns;
  }

  /** Builds the automaton of `patterns` (folded here; empty patterns never match). Compile time only. */
  static compile(patterns: readonly Uint8Array[]): AhoCorasick {
    // 1. The trie: one Map from (state, byte) to state, and per state a list of its children (this
    // runs once, in create(); a Map per state costs seconds of GC at 10,000 patterns).
    const goto = new Map<number, number>();
    const child = (s: number, b: number): number => goto.get(s * 256 + b) ?? -1;
    const depth: number[] = [0];
    const childHead: number[] = [-1];
    const sibling: number[] = [-1];
    const label: number[] = [0];
    const ownHead: number[] = [-1];
    const ownNext = new Int32Array(patterns.length).fill(-1);
    patterns.forEach((pattern, id) => {
      if (pattern.length === 0) return;
      let s = 0;
      for (const raw of pattern) {
        const b = FOLD[raw];
        let next = child(s, b);
        if (next < 0) {
          next = depth.length;
          depth.push(depth[s] + 1);
          childHead.push(-1);
          sibling.push(childHead[s]);
          label.push(b);
          ownHead.push(-1);
          childHead[s] = next;
          goto.set(s * 256 + b, next);
        }
        s = next;
      }
      ownNext[id] = ownHead[s];
      ownHead[s] = id;
    });
    const n = depth.length;
    /** The children of s, sorted by byte. */
    const childrenOf = (s: number): number[] => {
      const out: number[] = [];
      for (let t = childHead[s]; t >= 0; t = sibling[t]) out.push(t);
      return out.length > 1 ? out.sort((x, y) => label[x] - label[y]) : out;
    };
    // 2. Failure and dictionary links, breadth first.
    const fail = new Int32Array(n);
    const dictLink = new Int32Array(n).fill(-1);
    const emits = new Uint8Array(n);
    const order: number[] = [0];
    for (let head = 0; head < order.length; head++) {
      const s = order[head];
      for (let t = childHead[s]; t >= 0; t = sibling[t]) {
        const b = label[t];
        order.push(t);
        if (s === 0) fail[t] = 0;
        else {
          let f = fail[s];
          while (f !== 0 && child(f, b) < 0) f = fail[f];
          const g = child(f, b);
          fail[t] = g >= 0 && g !== t ? g : 0;
        }
        const f = fail[t];
        dictLink[t] = ownHead[f] >= 0 ? f : dictLink[f];
        emits[t] = ownHead[t] >= 0 || dictLink[t] >= 0 ? 1 : 0;
      }
    }
    // 3. Sparse edges and outputs in CSR form.
    let outs = 0;
    for (let id = 0; id < patterns.length; id++) if (patterns[id].length > 0) outs++;
    const edges = n - 1;
    const edgeStart = new Uint32Array(n + 1);
    const edgeByte = new Uint8Array(edges);
    const edgeTarget = new Int32Array(edges);
    const outStart = new Uint32Array(n + 1);
    const outPattern = new Uint32Array(outs);
    let e = 0;
    let o = 0;
    for (let s = 0; s < n; s++) {
      edgeStart[s] = e;
      for (const t of childrenOf(s)) {
        edgeByte[e] = label[t];
        edgeTarget[e] = t;
        e++;
      }
      outStart[s] = o;
      for (let id = ownHead[s]; id >= 0; id = ownNext[id]) outPattern[o++] = id;
    }
    edgeStart[n] = e;
    outStart[n] = o;
    // 4. Dense rows for shallow states, in breadth-first order so a state's fail row exists first.
    const denseRow = new Int32Array(n).fill(-1);
    let rows = 0;
    for (const s of order) {
      if (depth[s] > DENSE_DEPTH || rows === MAX_DENSE_ROWS) break;
      denseRow[s] = rows++;
    }
    const dense = new Int32Array(rows * 256);
    for (const s of order) {
      const row = denseRow[s];
      if (row < 0) break;
      for (let b = 0; b < 256; b++) {
        const t = child(s, FOLD[b]);
        // Only folded bytes label edges; an upper-case byte follows its lower-case edge.
        if (t >= 0) dense[row * 256 + b] = t;
        else dense[row * 256 + b] = s === 0 ? 0 : dense[denseRow[fail[s]] * 256 + b];
      }
    }
    return new AhoCorasick({
      fail,
      edgeStart,
      edgeByte,
      edgeTarget,
      outStart,
      outPattern,
      dictLink,
      denseRow,
      dense,
      emits,
      patterns: patterns.length,
    });
  }

  /** The state after reading `byte` in `state`. */
  step(state: number, byte: number): number {
    let s = state;
    for (;;) {
      const row = this.denseRow[s];
      if (row >= 0) return this.dense[(row << 8) | byte];
      const b = FOLD[byte];
      const end = this.edgeStart[s + 1];
      for (let e = this.edgeStart[s]; e < end; e++) {
        const eb = this.edgeByte[e];
        if (eb === b) return this.edgeTarget[e];
        if (eb > b) break;
      }
      s = this.fail[s];
    }
  }

  /** True when some pattern ends in `state` (its own or one on its fail chain). */
  hasOutput(state: number): boolean {
    return this.emits[state] === 1;
  }

  /**
   * Calls `found(pattern)` for every pattern ending in `state`. `found` is made once by the caller
   * (in create), not per packet.
   */
  forEachOutput(state: number, found: (pattern: number) => void): void {
    for (let s = state; s >= 0; s = this.dictLink[s]) {
      const end = this.outStart[s + 1];
      for (let o = this.outStart[s]; o < end; o++) found(this.outPattern[o]);
    }
  }

  /** Bytes held by the automaton's arrays (for the compiled plan). */
  memoryBytes(): number {
    return (
      this.fail.byteLength +
      this.edgeStart.byteLength +
      this.edgeByte.byteLength +
      this.edgeTarget.byteLength +
      this.outStart.byteLength +
      this.outPattern.byteLength +
      this.dictLink.byteLength +
      this.denseRow.byteLength +
      this.dense.byteLength +
      this.emits.byteLength
    );
  }
}
