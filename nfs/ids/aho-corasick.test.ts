import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AhoCorasick, FOLD } from './aho-corasick.js';

/** Every (pattern, end) pair a naive case-folded search finds. */
function naive(patterns: Uint8Array[], text: Uint8Array): string[] {
  const out: string[] = [];
  for (let end = 1; end <= text.length; end++)
    patterns.forEach((p, id) => {
      if (p.length === 0 || p.length > end) return;
      for (let k = 0; k < p.length; k++) if (FOLD[p[k]] !== FOLD[text[end - p.length + k]]) return;
      out.push(`${id}@${end}`);
    });
  return out.sort();
}

function automaton(ac: AhoCorasick, text: Uint8Array, chunks: number[] = [text.length]): string[] {
  const out: string[] = [];
  let state = 0;
  let at = 0;
  // Feeding the text in chunks, carrying the state, must find the same as one pass.
  for (const size of chunks) {
    for (let k = at; k < Math.min(text.length, at + size); k++) {
      state = ac.step(state, text[k]);
      if (ac.hasOutput(state)) ac.forEachOutput(state, (id) => out.push(`${id}@${k + 1}`));
    }
    at += size;
  }
  return out.sort();
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('AhoCorasick', () => {
  it('finds overlapping patterns and suffixes, folding case', () => {
    const patterns = ['he', 'she', 'his', 'hers', 'HE'].map(enc);
    const ac = AhoCorasick.compile(patterns);
    assert.deepEqual(automaton(ac, enc('uSHErs')), naive(patterns, enc('uSHErs')));
    assert.deepEqual(automaton(ac, enc('uSHErs')), ['0@4', '1@4', '3@6', '4@4'].sort());
  });

  it('agrees with a naive search on random patterns and texts, in one pass and in chunks', () => {
    const alphabet = fc.constantFrom(0x41, 0x61, 0x62, 0x42, 0x00, 0xff, 0x63);
    fc.assert(
      fc.property(
        fc.array(
          fc.uint8Array({ minLength: 1, maxLength: 6 }).map((a) => a),
          { minLength: 1, maxLength: 30 },
        ),
        fc
          .array(alphabet, { minLength: 1, maxLength: 6 })
          .chain((p) => fc.array(fc.constant(Uint8Array.from(p)), { maxLength: 3 })),
        fc.array(alphabet, { maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (random, small, textBytes, chunks) => {
          const patterns = [...random, ...small];
          const text = Uint8Array.from(textBytes);
          const ac = AhoCorasick.compile(patterns);
          const total = chunks.reduce((a, b) => a + b, 0);
          const expected = naive(patterns, text);
          assert.deepEqual(automaton(ac, text), expected);
          if (total >= text.length) assert.deepEqual(automaton(ac, text, chunks), expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps deep states sparse (10,000 patterns stay small)', () => {
    const patterns: Uint8Array[] = [];
    for (let i = 0; i < 10_000; i++) patterns.push(enc(`sig-${i * 7919}-payload`));
    const ac = AhoCorasick.compile(patterns);
    assert.ok(ac.memoryBytes() < 64 << 20, `${ac.memoryBytes()} bytes`);
    assert.deepEqual(automaton(ac, enc('xxSIG-7919-PAYLOADxx')), ['1@18']);
  });
});
