export { buildImage, checkDeclaration, type BuildOptions, type BuiltImage } from './build-image.js';
export { builtinImage, type BuiltinImage } from './builtin-images.js';
export { bundleImports } from './bundle-imports.js';
export {
  CAPABILITIES,
  sandboxPolicy,
  uncoveredImports,
  type Capability,
  type ImportProblem,
} from './capabilities.js';
export { loadImage, saveImage } from './image-archive.js';
export { decodeImage, encodeImage, imageDigest, isDigest, type DecodedImage } from './image-blob.js';
export {
  DEFAULT_TAG,
  formatImageRef,
  isImageName,
  nfNameOf,
  parseImageRef,
  type ImageRef,
} from './image-ref.js';
export { ImageStore, type SignatureFile, type StoredImage } from './image-store.js';
export {
  canonicalJson,
  compareVersions,
  IMAGE_ENTRY,
  isVersion,
  parseManifest,
  SDK_API_VERSION,
  SUPPORTED_SDK_API_VERSIONS,
  type ImageManifest,
} from './manifest.js';
export { resolveImage, verifyImage, type VerifiedImage, type VerifyOptions } from './resolve-image.js';
export {
  exportKeyPair,
  generateSigningKey,
  keyIdOf,
  publicKeyFromPem,
  readSigningKey,
  signImage,
  verifySignatureBytes,
  type ImageSignature,
  type SigningKey,
} from './signing.js';
export {
  matchesName,
  parseTrustPolicy,
  readTrustPolicy,
  trustKey,
  TrustPolicy,
  type TrustPolicyFile,
} from './trust-policy.js';
export { readTar, writeTar, type TarEntry } from './tar.js';
export { runNfTests, scaffoldNf } from './nf-project.js';
