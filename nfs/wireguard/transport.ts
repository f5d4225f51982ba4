/**
 * Transport data encryption (whitepaper §5.4.6): ChaCha20-Poly1305 with the session key, the
 * 64-bit message counter as nonce and no associated data, over the packet padded with zeros to a
 * multiple of 16 bytes. `node:crypto` does the work; it returns the result in a new Buffer per call
 * (it has no "into this buffer" form), which is the one allocation per packet this path makes.
 * Everything else — nonce, padding — is preallocated.
 *
 * @example
 * const t = new TransportCipher();
 * const n = t.seal(key, 0, 0, plain, 0, 5, out, 0); // 16 + 16 bytes: padded packet and tag
 * t.open(key, 0, 0, out, 0, n, back, 0); // 16: the padded packet
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { TAG_LENGTH, writeNonce } from './crypto.js';

export const PADDING = 16;
const ZEROS = new Uint8Array(PADDING);

/** A session key as node:crypto wants it (made once per session, not per packet). */
export function transportKey(raw: Uint8Array): KeyObject {
  return createSecretKey(raw);
}

/** The length of a packet of `length` bytes once padded. */
export function paddedLength(length: number): number {
  return (length + PADDING - 1) & ~(PADDING - 1);
}

export class TransportCipher {
  private readonly nonce = new Uint8Array(12);

  /**
   * Seals `src[srcAt, srcAt+length)` padded to a multiple of 16 under counter (hi, lo) and writes
   * ciphertext ‖ tag to `out[outAt…]` (which may overlap the source further on: every byte is read
   * before any is written). Returns the bytes written.
   */
  seal(
    key: KeyObject,
    counterHi: number,
    counterLo: number,
    src: Uint8Array,
    srcAt: number,
    length: number,
    out: Uint8Array,
    outAt: number,
  ): number {
    writeNonce(this.nonce, counterLo, counterHi);
    const padded = paddedLength(length);
    const cipher = createCipheriv('chacha20-poly1305', key, this.nonce, { authTagLength: TAG_LENGTH });
    const body = cipher.update(src.subarray(srcAt, srcAt + length));
    const pad = padded > length ? cipher.update(ZEROS.subarray(0, padded - length)) : null;
    cipher.final();
    const tag = cipher.getAuthTag();
    out.set(body, outAt);
    if (pad !== null) out.set(pad, outAt + body.length);
    out.set(tag, outAt + padded);
    return padded + TAG_LENGTH;
  }

  /**
   * Opens `msg[at, at+length)` (ciphertext ‖ tag) under counter (hi, lo) into `out[outAt…]`.
   * Returns the plaintext length, or −1 when the tag does not verify (nothing is written then).
   */
  open(
    key: KeyObject,
    counterHi: number,
    counterLo: number,
    msg: Uint8Array,
    at: number,
    length: number,
    out: Uint8Array,
    outAt: number,
  ): number {
    if (length < TAG_LENGTH) return -1;
    const bodyLength = length - TAG_LENGTH;
    writeNonce(this.nonce, counterLo, counterHi);
    const decipher = createDecipheriv('chacha20-poly1305', key, this.nonce, { authTagLength: TAG_LENGTH });
    decipher.setAuthTag(msg.subarray(at + bodyLength, at + length));
    const body = decipher.update(msg.subarray(at, at + bodyLength));
    try {
      decipher.final();
    } catch {
      return -1;
    }
    out.set(body, outAt);
    return bodyLength;
  }
}
