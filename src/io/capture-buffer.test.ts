import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { CaptureBuffer, CaptureOutputBuffer, copyBytes, forgetWordView } from './capture-buffer.js';

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

  it('keeps no array alive once forgotten, though it still copies it if asked again', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collected = async (make: () => WeakRef<Uint8Array>): Promise<boolean> => {
      const ref = make();
      for (let i = 0; i < 3 && ref.deref() !== undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 0)); // a WeakRef holds until the job ends
        gc();
      }
      return ref.deref() === undefined;
    };
    const copyInAndOut = (pool: Uint8Array): WeakRef<Uint8Array> => {
      const port = new Uint8Array(1 << 17).fill(7);
      copyBytes(port, 0, pool, 64, 60); // port → pool, then pool → port: both sides cached
      copyBytes(pool, 64, port, 128, 60);
      return new WeakRef(pool);
    };
    // Remembered by identity, the pool outlives its last copy; forgotten, it goes.
    assert.equal(await collected(() => copyInAndOut(new Uint8Array(1 << 20))), false);
    // Forgetting an array still in use must not break its next copy (a stale cached view would
    // copy into nothing).
    const pool = new Uint8Array(1 << 20);
    copyInAndOut(pool);
    forgetWordView(pool);
    pool.fill(0);
    copyInAndOut(pool);
    assert.equal(pool[64 + 59], 7);
    assert.equal(
      await collected(() => {
        const doomed = new Uint8Array(1 << 20);
        const ref = copyInAndOut(doomed);
        forgetWordView(doomed);
        return ref;
      }),
      true,
    );
  });
});

describe('capture buffers', () => {
  // Records of random sizes written through a small output buffer and read back through a small
  // window: the bytes round-trip, and every record keeps its file offset modulo 8 in the buffer
  // (copyBytes then moves aligned records word by word; moved to index 0, they were misaligned
  // after every refill or flush).
  it('round-trip records through refills and flushes, each at its file offset modulo 8', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfv-capbuf-'));
    try {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 120 }),
          fc.integer({ min: 64, max: 700 }),
          (sizes, chunk) => {
            const file = join(dir, 'records.bin');
            const out = new CaptureOutputBuffer(file, chunk);
            const offsets: number[] = [];
            for (const [k, size] of sizes.entries()) {
              const fileOffset = out.total;
              const at = out.reserve(size);
              assert.equal(at & 7, fileOffset & 7, 'output: buffer index and file offset modulo 8');
              for (let i = 0; i < size; i++) out.bytes[at + i] = (k * 31 + i) & 0xff;
              offsets.push(fileOffset);
            }
            out.close();
            const input = new CaptureBuffer(file, chunk);
            try {
              for (const [k, size] of sizes.entries()) {
                assert.equal(input.fill(size), size);
                assert.equal(input.base + input.start, offsets[k]);
                assert.equal(input.start & 7, offsets[k] & 7, 'input: window index and file offset modulo 8');
                for (let i = 0; i < size; i++)
                  assert.equal(input.bytes[input.start + i], (k * 31 + i) & 0xff);
                input.consume(size);
              }
              assert.equal(input.fill(1), 0, 'nothing after the last record');
            } finally {
              input.close();
            }
          },
        ),
        { numRuns: 150, seed: 7 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
