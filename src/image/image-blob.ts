/**
 * An image's bytes: the one canonical serialization of (manifest, bundle). The image's identity is
 * the SHA-256 of exactly these bytes, so two images with the same manifest and code have the same
 * digest, and a single changed byte anywhere changes it.
 *
 *   offset  size   field
 *   0       8      magic "NFVIMG\0\x01" (format version 1)
 *   8       4      M = manifest length, big-endian
 *   12      M      manifest: canonical JSON (sorted keys, no whitespace), UTF-8
 *   12+M    4      B = bundle length, big-endian
 *   16+M    B      bundle: one ES module, UTF-8
 *   16+M+B         end (no trailing bytes)
 *
 * Decoding checks that the manifest text is canonical, so no other bytes decode to the same image.
 *
 * @example
 * const blob = encodeImage(manifest, bundle);
 * const digest = imageDigest(blob); // 'sha256:…'
 * decodeImage(blob).manifest.name === manifest.name;
 */
import { createHash } from 'node:crypto';
import { NfvError } from '../errors.js';
import { canonicalJson, parseManifest, type ImageManifest } from './manifest.js';

const MAGIC = Uint8Array.of(0x4e, 0x46, 0x56, 0x49, 0x4d, 0x47, 0x00, 0x01);
const LENGTH_SIZE = 4;
const MANIFEST_AT = MAGIC.length + LENGTH_SIZE;
/** Largest image accepted (manifest + bundle). */
export const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

export interface DecodedImage {
  manifest: ImageManifest;
  /** The bundled module's bytes. */
  bundle: Uint8Array;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** True for `sha256:` and 64 lower-case hex digits. */
export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

/** `sha256:<hex>` of `bytes`. */
export function imageDigest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The canonical bytes of an image. */
export function encodeImage(manifest: ImageManifest, bundle: Uint8Array): Uint8Array {
  const manifestBytes = Buffer.from(canonicalJson(manifest), 'utf8');
  const out = new Uint8Array(MANIFEST_AT + manifestBytes.length + LENGTH_SIZE + bundle.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(MAGIC, 0);
  view.setUint32(MAGIC.length, manifestBytes.length);
  out.set(manifestBytes, MANIFEST_AT);
  const bundleLengthAt = MANIFEST_AT + manifestBytes.length;
  view.setUint32(bundleLengthAt, bundle.length);
  out.set(bundle, bundleLengthAt + LENGTH_SIZE);
  return out;
}

/** Splits image bytes into manifest and bundle; NFV_ERR_IMAGE_INVALID when they are not an image. */
export function decodeImage(bytes: Uint8Array, file?: string): DecodedImage {
  const bad = (message: string, offset?: number): never => {
    throw new NfvError('NFV_ERR_IMAGE_INVALID', message, { ...(file ? { file } : {}), offset });
  };
  if (bytes.length < MANIFEST_AT + LENGTH_SIZE || !MAGIC.every((b, i) => bytes[i] === b))
    bad('not an nfvisor image (bad magic)', 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const manifestLength = view.getUint32(MAGIC.length);
  const bundleLengthAt = MANIFEST_AT + manifestLength;
  if (bundleLengthAt + LENGTH_SIZE > bytes.length) bad('manifest length runs past the end', MAGIC.length);
  const bundleLength = view.getUint32(bundleLengthAt);
  const bundleAt = bundleLengthAt + LENGTH_SIZE;
  if (bundleAt + bundleLength !== bytes.length) bad('bundle length does not end the image', bundleLengthAt);
  const manifestText = Buffer.from(bytes.subarray(MANIFEST_AT, bundleLengthAt)).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(manifestText);
  } catch {
    bad('manifest is not JSON', MANIFEST_AT);
  }
  const manifest = parseManifest(raw);
  if (canonicalJson(manifest) !== manifestText) bad('manifest is not in canonical form', MANIFEST_AT);
  return { manifest, bundle: bytes.subarray(bundleAt) };
}
