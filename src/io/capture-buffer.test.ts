import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { copyBytes } from './capture-buffer.js';

describe('copyBytes', () => {
  // Large arrays take the word path at aligned offsets; a view at an odd byteOffset and small
  // arrays take the byte and native paths. Every path must equal a plain copy, bytes around untouched.
  const backing = new Uint8Array((1 << 17) + 8);
  const sources = [
    new Uint8Array(1 << 17),
    new Uint8Array(backing.buffer, 1, 1 << 17), // odd byteOffset: never a word view
    new Uint8Array(3000),
  ];
  for (const source of sources) for (let i = 0; i < source.length; i++) source[i] = (i * 131 + 7) & 0xff;

  it('equals a plain copy for every path: aligned or not, short or long, large arrays or small', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 1600 }),
        fc.boolean(),
        (which, srcAt, dstAt, n, largeDst) => {
          const src = sources[which];
          const dst = new Uint8Array(largeDst ? 1 << 17 : 4096).fill(0xa5);
          copyBytes(src, srcAt, dst, dstAt, n);
          const expected = new Uint8Array(dst.length).fill(0xa5);
          expected.set(src.subarray(srcAt, srcAt + n), dstAt);
          assert.deepEqual(dst.subarray(0, dstAt + n + 8), expected.subarray(0, dstAt + n + 8));
        },
      ),
      { numRuns: 600, seed: 42 },
    );
  });

  it('copies up to the very end of a large array with a length that is not a multiple of 4', () => {
    const src = sources[0];
    const dst = new Uint8Array(1 << 17);
    copyBytes(src, 4, dst, dst.length - 63, 63);
    assert.deepEqual(dst.subarray(dst.length - 63), src.subarray(4, 67));
    copyBytes(src, src.length - 61, dst, 0, 61);
    assert.deepEqual(dst.subarray(0, 61), src.subarray(src.length - 61));
  });
});
