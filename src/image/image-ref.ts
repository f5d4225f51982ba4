/**
 * Image references, as deployments and commands write them:
 *
 *   acme/dns-blocklist:1.2.0                      name and tag
 *   acme/dns-blocklist                            name, tag `latest`
 *   acme/dns-blocklist@sha256:<64 hex>            name pinned to a digest
 *   sha256:<64 hex>                               a digest alone
 *
 * A name is one or more `/`-separated lower-case segments; its last segment is the NF's own name
 * (the manifest's), the ones before it a namespace (`builtin/firewall`, `acme/dns-blocklist`).
 *
 * @example
 * parseImageRef('acme/dns-blocklist:1.2.0'); // { name: 'acme/dns-blocklist', tag: '1.2.0' }
 * formatImageRef({ name: 'x', digest: 'sha256:…' }); // 'x@sha256:…'
 */
import { NfvError } from '../errors.js';
import { isDigest } from './image-blob.js';

export interface ImageRef {
  /** Repository name; absent for a bare digest. */
  name?: string;
  tag?: string;
  digest?: string;
}

const SEGMENT = '[a-z0-9]+(?:[._-][a-z0-9]+)*';
const NAME = new RegExp(`^${SEGMENT}(?:/${SEGMENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const DEFAULT_TAG = 'latest';

/** True for a valid repository name. */
export function isImageName(name: string): boolean {
  return NAME.test(name) && name.length <= 255;
}

/** Parses a reference; NFV_ERR_IMAGE_INVALID names what is wrong. */
export function parseImageRef(text: string): ImageRef {
  const bad = (why: string): never => {
    throw new NfvError('NFV_ERR_IMAGE_INVALID', `image reference ${JSON.stringify(text)}: ${why}`);
  };
  if (isDigest(text)) return { digest: text };
  const at = text.indexOf('@');
  if (at >= 0) {
    const name = text.slice(0, at);
    const digest = text.slice(at + 1);
    if (!isImageName(name)) bad('name must be lower-case segments separated by /');
    if (!isDigest(digest)) bad('digest must be sha256: and 64 lower-case hex digits');
    return { name, digest };
  }
  const colon = text.lastIndexOf(':');
  const slash = text.lastIndexOf('/');
  const hasTag = colon > slash;
  const name = hasTag ? text.slice(0, colon) : text;
  const tag = hasTag ? text.slice(colon + 1) : DEFAULT_TAG;
  if (!isImageName(name)) bad('name must be lower-case segments separated by /');
  if (!TAG.test(tag)) bad('tag must be letters, digits, ".", "_" or "-" (at most 128)');
  return { name, tag };
}

export function formatImageRef(ref: ImageRef): string {
  if (ref.name === undefined) return ref.digest ?? '';
  if (ref.digest !== undefined) return `${ref.name}@${ref.digest}`;
  return `${ref.name}:${ref.tag ?? DEFAULT_TAG}`;
}

/** The NF name a repository name stands for: its last segment. */
export function nfNameOf(repository: string): string {
  return repository.slice(repository.lastIndexOf('/') + 1);
}
