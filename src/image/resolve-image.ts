/**
 * Verifying an image before anything of it runs, and handing the host a module it can import.
 *
 * In order, each failure with its own code (the error names the image and, where there is one,
 * the file):
 *   1. the reference resolves in the store                      NFV_ERR_IMAGE_NOT_FOUND
 *   2. the bytes hash to the digest (recomputed, never trusted)  NFV_ERR_IMAGE_DIGEST
 *   3. they decode as an image with a well-formed manifest       NFV_ERR_IMAGE_INVALID
 *   4. the manifest's name is the name referred to               NFV_ERR_IMAGE_NAME
 *   5. its SDK API version is one this host runs                 NFV_ERR_IMAGE_SDK_VERSION
 *   6. the code imports nothing beyond its capabilities          NFV_ERR_IMAGE_CAPABILITY
 *   7. a signature by a key the trust policy allows for the name, over a payload naming this
 *      digest and this name                                      NFV_ERR_IMAGE_UNSIGNED,
 *      _UNTRUSTED, _SIGNATURE, _SIGNATURE_DIGEST, _NAME — skipped only with allowUnsigned
 *   8. the version is not lower than one verified before for the name (signed images raise
 *      that floor)                                               NFV_ERR_IMAGE_ROLLBACK
 * Only then is the bundle — the very bytes that were checked — written out for `import()`.
 *
 * @example
 * const { moduleUrl, manifest } = await resolveImage('acme/dns-blocklist:1.0.0', { store, policy });
 * const nf = (await import(moduleUrl)).default;
 */
import { NfvError, type ErrorCode } from '../errors.js';
import { describeImportProblems, uncoveredImports } from './capabilities.js';
import { bundleImports, IMPORT_SCANNER } from './bundle-imports.js';
import { decodeImage, imageDigest } from './image-blob.js';
import { formatImageRef, nfNameOf, parseImageRef } from './image-ref.js';
import { ImageStore } from './image-store.js';
import { compareVersions, SUPPORTED_SDK_API_VERSIONS, type ImageManifest } from './manifest.js';
import { decodePayload, verifySignatureBytes } from './signing.js';
import type { TrustPolicy } from './trust-policy.js';

export interface VerifyOptions {
  /** The image store's directory. */
  store: string;
  /** Which keys may sign which names; without one, no signature is trusted. */
  policy?: TrustPolicy;
  /** Accept an image without a valid trusted signature (development only; say so in the deployment). */
  allowUnsigned?: boolean;
  /** Accept a version lower than one verified before for the same name. */
  allowRollback?: boolean;
}

export interface VerifiedImage {
  digest: string;
  manifest: ImageManifest;
  /** The repository name the image was verified for. */
  name: string;
  /** The bundle's bytes, exactly as verified. */
  bundle: Uint8Array;
  /** The key that signed it, or undefined when accepted unsigned. */
  signedBy?: string;
}

/** Runs checks 1–8 without writing the module out. Records the version (rollback floor) when signed. */
export async function verifyImage(ref: string, options: VerifyOptions): Promise<VerifiedImage> {
  const store = new ImageStore(options.store);
  const parsed = parseImageRef(ref);
  const { digest } = await store.resolve(parsed);
  const label = formatImageRef(parsed.name !== undefined ? parsed : { digest });
  const fail = (code: ErrorCode, message: string, detail: Record<string, unknown> = {}): never => {
    throw new NfvError(code, `image ${label}: ${message}`, { image: label, ...detail });
  };
  const file = store.blobPath(digest);

  const bytes = await store.readBlob(digest);
  const actual = imageDigest(bytes);
  if (actual !== digest) fail('NFV_ERR_IMAGE_DIGEST', `content hashes to ${actual}, not ${digest}`, { file });
  const { manifest, bundle } = decodeImage(bytes, file);
  const name = parsed.name ?? manifest.name;
  if (nfNameOf(name) !== manifest.name)
    fail(
      'NFV_ERR_IMAGE_NAME',
      `the manifest names NF "${manifest.name}", the reference "${nfNameOf(name)}"`,
      { file },
    );
  if (!SUPPORTED_SDK_API_VERSIONS.includes(manifest.sdkApiVersion))
    fail(
      'NFV_ERR_IMAGE_SDK_VERSION',
      `built against SDK API ${manifest.sdkApiVersion}; this host runs ${SUPPORTED_SDK_API_VERSIONS.join(', ')}`,
      { file },
    );
  // The scan of these bytes (hashed above) made when the image last passed verification in this
  // store, else a new one; image-store.ts `recordedImports` says why the record can be trusted.
  const recorded = await store.recordedImports(digest, IMPORT_SCANNER);
  const imports = recorded ?? (await bundleImports(bundle));
  const problems = uncoveredImports(imports, manifest.capabilities);
  if (problems.length > 0) fail('NFV_ERR_IMAGE_CAPABILITY', describeImportProblems(problems), { file });

  let signedBy: string | undefined;
  if (!options.allowUnsigned) signedBy = await checkSignatures(store, digest, name, options.policy, fail);

  await store.checkAndRecordVersion(
    name,
    manifest.version,
    (highest) => {
      if (!options.allowRollback && highest !== undefined && compareVersions(manifest.version, highest) < 0)
        fail(
          'NFV_ERR_IMAGE_ROLLBACK',
          `version ${manifest.version} is older than ${highest}, verified before`,
          {
            version: manifest.version,
            highest,
          },
        );
    },
    (a, b) => compareVersions(a, b) > 0,
    signedBy !== undefined,
  );
  if (recorded === undefined) await store.recordImports(digest, IMPORT_SCANNER, imports);
  return { digest, manifest, name, bundle, signedBy };
}

/**
 * Finds a signature that passes every check; when none does, reports the failure of the signature
 * that got furthest (untrusted key < bad signature < other digest < other name).
 */
async function checkSignatures(
  store: ImageStore,
  digest: string,
  name: string,
  policy: TrustPolicy | undefined,
  fail: (code: ErrorCode, message: string, detail?: Record<string, unknown>) => never,
): Promise<string> {
  const files = await store.signatures(digest);
  if (files.length === 0) fail('NFV_ERR_IMAGE_UNSIGNED', `no signature (at ${store.signatureDir(digest)})`);
  let best: { rank: number; code: ErrorCode; message: string; file: string } | undefined;
  const miss = (rank: number, code: ErrorCode, message: string, file: string): void => {
    if (best === undefined || rank > best.rank) best = { rank, code, message, file };
  };
  for (const { file, signature } of files) {
    if (signature === undefined) {
      miss(1, 'NFV_ERR_IMAGE_SIGNATURE', 'a signature file is malformed', file);
      continue;
    }
    const trusted = policy?.key(signature.keyId);
    if (trusted === undefined || policy === undefined) {
      miss(
        0,
        'NFV_ERR_IMAGE_UNTRUSTED',
        `signed by ${signature.keyId}, which the trust policy does not hold`,
        file,
      );
      continue;
    }
    if (!verifySignatureBytes(trusted.key, signature)) {
      miss(1, 'NFV_ERR_IMAGE_SIGNATURE', `the signature does not verify with key ${signature.keyId}`, file);
      continue;
    }
    const payload = decodePayload(signature);
    if (payload === undefined) {
      miss(1, 'NFV_ERR_IMAGE_SIGNATURE', 'the signed payload is not an nfvisor image signature', file);
      continue;
    }
    if (payload.critical.image.digest !== digest) {
      miss(
        2,
        'NFV_ERR_IMAGE_SIGNATURE_DIGEST',
        `the signature is for ${payload.critical.image.digest}, not this image (${digest})`,
        file,
      );
      continue;
    }
    if (payload.critical.identity.name !== name) {
      miss(
        3,
        'NFV_ERR_IMAGE_NAME',
        `the signature is for name "${payload.critical.identity.name}", not "${name}"`,
        file,
      );
      continue;
    }
    if (!policy.allows(signature.keyId, name)) {
      miss(
        0,
        'NFV_ERR_IMAGE_UNTRUSTED',
        `key ${signature.keyId} may not sign "${name}" under the trust policy`,
        file,
      );
      continue;
    }
    return signature.keyId;
  }
  const b = best!;
  return fail(b.code, b.message, { file: b.file });
}

/**
 * Verifies `ref` in the store (every check of `verifyImage`) and returns the file URL of the
 * verified module for the host to `import()`, the path of the same code as a script for the guest
 * sandbox, its manifest and digest.
 */
export async function resolveImage(
  ref: string,
  options: { store: string; policy?: TrustPolicy; allowUnsigned?: boolean; allowRollback?: boolean },
): Promise<{ moduleUrl: string; script: string; manifest: ImageManifest; digest: string }> {
  const verified = await verifyImage(ref, options);
  const { moduleUrl, script } = await new ImageStore(options.store).unpack(verified.digest, verified.bundle);
  return { moduleUrl, script, manifest: verified.manifest, digest: verified.digest };
}
