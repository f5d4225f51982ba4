import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { blake2s } from '@noble/hashes/blake2.js';
import { Blake2sMac } from './blake2s.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const range = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);

function digest(key: Uint8Array, message: Uint8Array, outLength: number): string {
  const out = new Uint8Array(outLength);
  new Blake2sMac(key, outLength).digest(message, 0, message.length, out, 0);
  return hex(out);
}

describe('Blake2sMac', () => {
  it('gives the digests of Python’s hashlib.blake2s (keyed), the empty message included', () => {
    // python3 -c "import hashlib; print(hashlib.blake2s(m, key=bytes(range(32)), digest_size=n).hexdigest())"
    assert.equal(
      digest(range(32), new Uint8Array(0), 32),
      '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49',
    );
    assert.equal(
      digest(range(32), range(64), 32),
      '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4',
    );
    assert.equal(digest(range(32), range(116), 16), '072e94ffbfc684bd8ab2a1b9dade2fd5');
  });

  it('agrees with @noble/hashes for any key, digest length and message, at any offset', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 1, max: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 7 }),
        (key, outLength, message, offset) => {
          const bytes = new Uint8Array(offset + message.length + 3).fill(0xee);
          bytes.set(message, offset);
          const out = new Uint8Array(outLength + 2).fill(0xee);
          const mac = new Blake2sMac(key, outLength);
          mac.digest(bytes, offset, message.length, out, 1);
          assert.equal(hex(out.subarray(1, 1 + outLength)), hex(blake2s(message, { key, dkLen: outLength })));
          assert.equal(out[0], 0xee, 'nothing written before the digest');
          assert.equal(out[outLength + 1], 0xee, 'nothing written after it');
          // The same instance again: its state does not carry over from one digest to the next.
          mac.digest(bytes, offset, message.length, out, 1);
          assert.equal(hex(out.subarray(1, 1 + outLength)), hex(blake2s(message, { key, dkLen: outLength })));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses keys and digest lengths BLAKE2s does not have', () => {
    assert.throws(() => new Blake2sMac(new Uint8Array(0), 16), /key of 0 bytes/);
    assert.throws(() => new Blake2sMac(new Uint8Array(33), 16), /key of 33 bytes/);
    assert.throws(() => new Blake2sMac(new Uint8Array(32), 33), /digest of 33 bytes/);
  });
});
