/**
 * The compiled rule set: every content of every rule in one automaton (aho-corasick.ts), the
 * rules each pattern belongs to, and the verifier that checks a candidate rule exactly.
 *
 *   pattern p:   patternRuleStart[p] … [p+1]  → patternRules[…]  rules that contain it (unique)
 *   rule r:      rules[r] (rules.ts), hits[r]
 *   headerOnly:  rules without contents, checked on every packet by their header alone
 *
 * Verification of rule r over a window — `buf[0, length)` holding stream positions
 * [base, base + length), of which [newFrom, …) are new — places each content in order, honouring
 * offset/depth (absolute stream positions) and distance/within (from the previous content's end),
 * trying later occurrences when a later content fails (as Snort and Suricata do), and succeeds only
 * when the match ends in new data: a match found once is not found again by the next segment.
 * The number of content occurrences tried per rule is bounded (VERIFY_BUDGET); a rule that runs out
 * does not match and is counted.
 */
import { AhoCorasick, FOLD } from './aho-corasick.js';
import { type Rule } from './rules.js';

/** Content occurrences tried per rule verification at most. */
export const VERIFY_BUDGET = 256;

interface CompiledContent {
  bytes: Uint8Array;
  /** FOLD applied when nocase. */
  folded: Uint8Array;
  nocase: boolean;
  relative: boolean;
  offset: number;
  /** Exclusive end limit for absolute contents (offset + depth), or Infinity. */
  depth: number;
  distance: number;
  within: number;
}

export class RuleSet {
  readonly rules: readonly Rule[];
  readonly automaton: AhoCorasick;
  readonly patternRuleStart: Uint32Array;
  readonly patternRules: Uint32Array;
  readonly headerOnly: Uint32Array;
  readonly hits: Float64Array;
  /** Verifications cut short by VERIFY_BUDGET since the last read (the NF adds it to a counter). */
  budgetExhausted = 0;
  private readonly contents: CompiledContent[][];
  private budget = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private length = 0;
  private base = 0;
  private newFrom = 0;
  private text: string | null = null;

  constructor(rules: readonly Rule[]) {
    this.rules = rules;
    this.hits = new Float64Array(rules.length);
    const patternIds = new Map<string, number>();
    const patterns: Uint8Array[] = [];
    const owners: Set<number>[] = [];
    const headerOnly: number[] = [];
    rules.forEach((rule, r) => {
      if (rule.contents.length === 0) headerOnly.push(r);
      for (const content of rule.contents) {
        const key = Array.from(content.bytes, (b) => FOLD[b].toString(16).padStart(2, '0')).join('');
        let id = patternIds.get(key);
        if (id === undefined) {
          id = patterns.length;
          patternIds.set(key, id);
          patterns.push(content.bytes);
          owners.push(new Set());
        }
        owners[id].add(r);
      }
    });
    this.automaton = AhoCorasick.compile(patterns);
    this.patternRuleStart = new Uint32Array(patterns.length + 1);
    const flat: number[] = [];
    owners.forEach((set, p) => {
      this.patternRuleStart[p] = flat.length;
      flat.push(...[...set].sort((a, b) => a - b));
    });
    this.patternRuleStart[patterns.length] = flat.length;
    this.patternRules = Uint32Array.from(flat);
    this.headerOnly = Uint32Array.from(headerOnly);
    this.contents = rules.map((rule) =>
      rule.contents.map((c) => ({
        bytes: c.bytes,
        folded: c.nocase ? c.bytes.map((b) => FOLD[b]) : c.bytes,
        nocase: c.nocase,
        relative: c.distance !== null,
        offset: c.offset,
        depth: c.depth >= 0 ? c.offset + c.depth : Infinity,
        distance: c.distance ?? 0,
        within: c.within >= 0 ? c.within : Infinity,
      })),
    );
  }

  /** Sets the window the next `verify` calls look at. */
  setWindow(buf: Uint8Array, length: number, base: number, newFrom: number): void {
    this.buf = buf;
    this.length = length;
    this.base = base;
    this.newFrom = newFrom;
    this.text = null;
  }

  /** Do rule r's contents and pcres match in the window, ending in new data? */
  verify(r: number): boolean {
    const contents = this.contents[r];
    if (contents.length === 0) return this.pcresMatch(r, this.base);
    this.budget = VERIFY_BUDGET;
    const ok = this.place(r, contents, 0, this.base, -Infinity);
    if (this.budget < 0) this.budgetExhausted++;
    return ok;
  }

  private place(
    r: number,
    contents: CompiledContent[],
    ci: number,
    prevEnd: number,
    maxEnd: number,
  ): boolean {
    const c = contents[ci];
    const len = c.bytes.length;
    let lo: number;
    let hiEnd: number;
    if (c.relative) {
      lo = prevEnd + c.distance;
      hiEnd = lo + c.within;
    } else {
      lo = c.offset;
      hiEnd = c.depth;
    }
    const base = this.base;
    if (lo < base) lo = base;
    if (hiEnd > base + this.length) hiEnd = base + this.length;
    const buf = this.buf;
    const pattern = c.folded;
    const first = pattern[0];
    const last = ci === contents.length - 1;
    for (let p = lo; p + len <= hiEnd; p++) {
      const at = p - base;
      if ((c.nocase ? FOLD[buf[at]] : buf[at]) !== first) continue;
      let k = 1;
      if (c.nocase) while (k < len && FOLD[buf[at + k]] === pattern[k]) k++;
      else while (k < len && buf[at + k] === pattern[k]) k++;
      if (k < len) continue;
      if (--this.budget < 0) return false;
      const end = p + len;
      const newMax = end > maxEnd ? end : maxEnd;
      if (last) {
        if (newMax > this.newFrom && this.pcresMatch(r, end)) return true;
      } else if (this.place(r, contents, ci + 1, end, newMax)) return true;
      if (this.budget < 0) return false;
    }
    return false;
  }

  /** Every pcre of rule r matches (R: from `lastEnd`, else anywhere in the window). */
  private pcresMatch(r: number, lastEnd: number): boolean {
    const pcres = this.rules[r].pcres;
    if (pcres.length === 0) return true;
    // Candidate path only: the window as a latin1 string, once per window.
    if (this.text === null) {
      let s = '';
      for (let k = 0; k < this.length; k += 4096)
        s += String.fromCharCode(...this.buf.subarray(k, Math.min(this.length, k + 4096)));
      this.text = s;
    }
    for (const pcre of pcres) {
      pcre.regex.lastIndex = pcre.relative ? Math.max(0, lastEnd - this.base) : 0;
      if (pcre.regex.exec(this.text) === null) return false;
    }
    return true;
  }

  /** The compiled form, for `nfvisor` to print. */
  plan(): { rules: number; patterns: number; states: number; automatonBytes: number; headerOnly: number } {
    return {
      rules: this.rules.length,
      patterns: this.automaton.patterns,
      states: this.automaton.states,
      automatonBytes: this.automaton.memoryBytes(),
      headerOnly: this.headerOnly.length,
    };
  }
}
