/**
 * Ed25519 image signatures in the cosign "simple signing" shape: what is signed is a small JSON
 * payload naming the image's digest and the repository name it is signed for — never the name
 * alone — so a signature cannot be moved onto other content or another name.
 *
 *   payload  {"critical":{"identity":{"name":"acme/dns-blocklist"},
 *                         "image":{"digest":"sha256:…"},"type":"nfvisor image signature"},
 *             "optional":{"version":"1.2.0"}}
 *   file     {"schemaVersion":1,"keyId":"sha256:…","payload":"<base64>","signature":"<base64>"}
 *
 * A key's id is `sha256:` + hex SHA-256 of its raw 32-byte public key.
 *
 * @example
 * const key = generateSigningKey();
 * const sig = signImage(key.privateKey, 'sha256:…', 'acme/dns-blocklist', '1.2.0');
 * verifySignatureBytes(key.publicKey, sig); // true
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NfvError } from '../errors.js';
import { canonicalJson } from './manifest.js';

export const SIGNATURE_TYPE = 'nfvisor image signature';

export interface SignaturePayload {
  critical: { identity: { name: string }; image: { digest: string }; type: string };
  optional?: Record<string, string>;
}

export interface ImageSignature {
  schemaVersion: 1;
  keyId: string;
  /** Base64 of the payload's bytes, exactly as signed. */
  payload: string;
  /** Base64 of the Ed25519 signature over those bytes. */
  signature: string;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

/** `sha256:<hex>` of the raw Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new NfvError('NFV_ERR_KEY_INVALID', 'not an Ed25519 public key');
  const raw = Buffer.from(jwk.x, 'base64url');
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** PEM texts of a key pair: PKCS#8 private, SPKI public. */
export function exportKeyPair(key: SigningKey): { privatePem: string; publicPem: string } {
  return {
    privatePem: key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: key.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Parses an Ed25519 public key from PEM; NFV_ERR_KEY_INVALID otherwise. */
export function publicKeyFromPem(pem: string, file?: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new NfvError('NFV_ERR_KEY_INVALID', 'not a PEM public key', file ? { file } : {}, { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new NfvError(
      'NFV_ERR_KEY_INVALID',
      `not an Ed25519 key (${key.asymmetricKeyType})`,
      file ? { file } : {},
    );
  return key;
}

/** Reads a private signing key (PKCS#8 PEM) file. */
export async function readSigningKey(file: string): Promise<SigningKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new NfvError(
      'NFV_ERR_KEY_INVALID',
      `cannot read key: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(text);
  } catch (e) {
    throw new NfvError('NFV_ERR_KEY_INVALID', 'not a PEM private key', { file }, { cause: e });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new NfvError('NFV_ERR_KEY_INVALID', `not an Ed25519 key (${privateKey.asymmetricKeyType})`, {
      file,
    });
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** Signs the payload for (`digest`, `name`). */
export function signImage(
  privateKey: KeyObject,
  digest: string,
  name: string,
  version?: string,
): ImageSignature {
  const payload: SignaturePayload = {
    critical: { identity: { name }, image: { digest }, type: SIGNATURE_TYPE },
    ...(version !== undefined ? { optional: { version } } : {}),
  };
  const bytes = Buffer.from(canonicalJson(payload), 'utf8');
  const publicKey = createPublicKey(privateKey);
  return {
    schemaVersion: 1,
    keyId: keyIdOf(publicKey),
    payload: bytes.toString('base64'),
    signature: sign(null, bytes, privateKey).toString('base64'),
  };
}

/** True when `sig.signature` is a valid Ed25519 signature by `publicKey` over `sig.payload`. */
export function verifySignatureBytes(publicKey: KeyObject, sig: ImageSignature): boolean {
  try {
    return verify(null, Buffer.from(sig.payload, 'base64'), publicKey, Buffer.from(sig.signature, 'base64'));
  } catch {
    return false;
  }
}

/** Parses a signature file's JSON (untrusted); undefined when it is not one. */
export function parseSignature(raw: unknown): ImageSignature | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const s = raw as Record<string, unknown>;
  if (
    s.schemaVersion !== 1 ||
    typeof s.keyId !== 'string' ||
    !/^sha256:[0-9a-f]{64}$/.test(s.keyId) ||
    typeof s.payload !== 'string' ||
    typeof s.signature !== 'string'
  )
    return undefined;
  return { schemaVersion: 1, keyId: s.keyId, payload: s.payload, signature: s.signature };
}

/** Decodes the signed payload (after the signature verified); undefined when malformed. */
export function decodePayload(sig: ImageSignature): SignaturePayload | undefined {
  try {
    const p = JSON.parse(Buffer.from(sig.payload, 'base64').toString('utf8')) as SignaturePayload;
    if (
      typeof p?.critical?.identity?.name !== 'string' ||
      typeof p.critical.image?.digest !== 'string' ||
      p.critical.type !== SIGNATURE_TYPE
    )
      return undefined;
    return p;
  } catch {
    return undefined;
  }
}
