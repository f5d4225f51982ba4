/**
 * The primitives of the WireGuard whitepaper (§5.4), named as it names them:
 *
 *   HASH(x)        BLAKE2s-256                                    node:crypto 'blake2s256'
 *   MAC(key, x)    keyed BLAKE2s, 16-byte output (mac1, mac2)     ./blake2s.ts (node has no keyed BLAKE2s)
 *   HMAC(key, x)   HMAC-BLAKE2s-256                               node:crypto
 *   KDFn(key, x)   HKDF over HMAC, n outputs of 32 bytes
 *   AEAD(k, n, p, a)   ChaCha20-Poly1305, nonce = 4 zero bytes ‖ 64-bit little-endian counter
 *   XAEAD(k, n, p, a)  XChaCha20-Poly1305, 24-byte random nonce (cookie replies)  @noble/ciphers
 *   DH(priv, pub)  X25519                                         node:crypto, keys as KeyObjects
 *   TAI64N()       12-byte timestamp: TAI64 seconds ‖ nanoseconds, both big-endian
 *
 * These run on the handshake path (a few per handshake) and allocate freely; the transport data
 * path uses `node:crypto`'s ChaCha20-Poly1305 directly (see transport.ts).
 *
 * @example
 * const a = generateKeyPair(), b = generateKeyPair();
 * assert.deepEqual(dh(a.privateKey, b.publicKey), dh(b.privateKey, a.publicKey));
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { Blake2sMac } from './blake2s.js';

export const KEY_LENGTH = 32;
export const TAG_LENGTH = 16;
export const MAC_LENGTH = 16;
export const TIMESTAMP_LENGTH = 12;

/** DER prefixes that wrap a raw 32-byte X25519 key (RFC 8410): node imports keys only in a container. */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const part of parts) h.update(part);
  return h.digest();
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('blake2s256', key);
  for (const part of parts) h.update(part);
  return h.digest();
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte digest (the key is 16 or 32 bytes). */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  const out = new Uint8Array(MAC_LENGTH);
  macFor(key).digest(input, 0, input.length, out, 0);
  return out;
}

/** MAC(key, bytes[at, at+length)) into `out[outAt, outAt+16)`: the same without allocating. */
export function macInto(
  key: Uint8Array,
  bytes: Uint8Array,
  at: number,
  length: number,
  out: Uint8Array,
  outAt: number,
): void {
  macFor(key).digest(bytes, at, length, out, outAt);
}

/**
 * A MAC keeps its key's block compressed; these are the last few keys used (a gateway's own mac1
 * key, its peers', the cookie secret). By content, not identity: a cookie secret is refreshed in
 * place.
 */
const MAC_CACHE = 8;
const macKeys: Uint8Array[] = [];
const macs: Blake2sMac[] = [];
function macFor(key: Uint8Array): Blake2sMac {
  for (let i = 0; i < macKeys.length; i++)
    if (macKeys[i].length === key.length && equalBytes(macKeys[i], 0, key, 0, key.length)) return macs[i];
  if (macKeys.length === MAC_CACHE) {
    macKeys.shift();
    macs.shift();
  }
  const made = new Blake2sMac(key, MAC_LENGTH);
  macKeys.push(key.slice());
  macs.push(made);
  return made;
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDFn(key, input) for n = 1, 2 or 3: τ0 = HMAC(key, input), τi = HMAC(τ0, τi−1 ‖ i). */
export function kdf(key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array[] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  if (n === 1) return [t1];
  const t2 = hmac(t0, t1, TWO);
  if (n === 2) return [t1, t2];
  return [t1, t2, hmac(t0, t2, THREE)];
}

/** The 12-byte AEAD nonce for a 64-bit counter given as two 32-bit halves. */
export function writeNonce(nonce: Uint8Array, counterLo: number, counterHi: number): void {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  nonce[4] = counterLo & 0xff;
  nonce[5] = (counterLo >>> 8) & 0xff;
  nonce[6] = (counterLo >>> 16) & 0xff;
  nonce[7] = counterLo >>> 24;
  nonce[8] = counterHi & 0xff;
  nonce[9] = (counterHi >>> 8) & 0xff;
  nonce[10] = (counterHi >>> 16) & 0xff;
  nonce[11] = counterHi >>> 24;
}

const ZERO_NONCE = new Uint8Array(12);

/** AEAD(key, 0, plaintext, ad) with the zero counter the handshake uses: ciphertext ‖ tag. */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LENGTH });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([body, cipher.getAuthTag()]);
}

/** Opens what `aeadSeal` made; null when the tag does not verify. */
export function aeadOpen(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (sealed.length < TAG_LENGTH) return null;
  const bodyLength = sealed.length - TAG_LENGTH;
  const decipher = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LENGTH });
  decipher.setAAD(ad, { plaintextLength: bodyLength });
  decipher.setAuthTag(sealed.subarray(bodyLength));
  const body = decipher.update(sealed.subarray(0, bodyLength));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return body;
}

/** XAEAD(key, nonce24, plaintext, ad): ciphertext ‖ tag. */
export function xaeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/** Opens what `xaeadSeal` made; null when the tag does not verify. */
export function xaeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  ad: Uint8Array,
): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
  } catch {
    return null;
  }
}

/** A raw 32-byte X25519 private key as a KeyObject (never exported again except as its public half). */
export function privateKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_LENGTH)
    throw new Error(`an X25519 private key is ${KEY_LENGTH} bytes (got ${raw.length})`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
}

/** The raw public key of an X25519 private key. */
export function publicKeyOf(privateKey: KeyObject): Uint8Array {
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_X25519.length));
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY_LENGTH)
    throw new Error(`an X25519 public key is ${KEY_LENGTH} bytes (got ${raw.length})`);
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: Uint8Array;
}

export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/**
 * DH(priv, pub): the shared secret, or null when there is none — the public key is of low order
 * (the result is all zeros; OpenSSL refuses it) or not a key at all. A null ends the handshake.
 */
export function dh(privateKey: KeyObject, publicKey: Uint8Array): Uint8Array | null {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: publicKeyFromRaw(publicKey) });
  } catch {
    return null;
  }
  let any = 0;
  for (let i = 0; i < shared.length; i++) any |= shared[i];
  return any === 0 ? null : shared;
}

/** TAI64 label of the Unix epoch: 2^62 + 10 (the TAI−UTC offset of 1970). */
const TAI64_EPOCH_HI = 0x40000000;
const TAI64_EPOCH_LO = 10;

/**
 * TAI64N(now) for `nowNs` nanoseconds since the Unix epoch, into `out[at, at+12)`. The nanoseconds
 * are rounded down to a multiple of 2^24 ns (≈16.8 ms), as wireguard-go and the kernel do, so the
 * timestamp says little about when the packet was sent (a timing side channel).
 */
export function writeTai64n(out: Uint8Array, at: number, nowNs: number): void {
  const seconds = Math.floor(nowNs / 1e9);
  const nanos = Math.floor(nowNs - seconds * 1e9) & ~0xffffff;
  const view = new DataView(out.buffer, out.byteOffset + at, TIMESTAMP_LENGTH);
  const lo = seconds + TAI64_EPOCH_LO;
  view.setUint32(0, TAI64_EPOCH_HI + Math.floor(lo / 2 ** 32));
  view.setUint32(4, lo >>> 0);
  view.setUint32(8, nanos >>> 0);
}

/** Compares two 12-byte timestamps as big-endian numbers: < 0, 0 or > 0. */
export function compareTimestamps(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TIMESTAMP_LENGTH; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** Constant-time equality of two byte strings of one length. */
export function equalBytes(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, length: number): boolean {
  let diff = 0;
  for (let i = 0; i < length; i++) diff |= a[aAt + i] ^ b[bAt + i];
  return diff === 0;
}

/** Decodes a base64 key of exactly 32 bytes, or null (wg's keys are standard base64 with padding). */
export function decodeKey(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) return null;
  return new Uint8Array(Buffer.from(text, 'base64'));
}

export function encodeKey(raw: Uint8Array): string {
  return Buffer.from(raw).toString('base64');
}
