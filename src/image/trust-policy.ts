/**
 * The host's trust policy: which public keys may sign which image names. Keys are pinned here (the
 * public key itself, checked against its id), so a signature file naming a key id is only as good
 * as this file says.
 *
 *   {
 *     "version": 1,
 *     "keys": [
 *       { "id": "sha256:…", "publicKey": "-----BEGIN PUBLIC KEY-----…", "names": ["acme/*"] }
 *     ]
 *   }
 *
 * Name patterns: `*` matches within one `/`-segment, `**` matches across segments; anything else
 * is literal. `acme/*` allows `acme/dns-blocklist` but not `acme/x/y`; `**` allows every name.
 *
 * @example
 * const policy = parseTrustPolicy(JSON.parse(text), 'trust-policy.json');
 * policy.keysFor('acme/dns-blocklist'); // the entries whose patterns match
 */
import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { NfvError } from '../errors.js';
import { keyIdOf, publicKeyFromPem } from './signing.js';
import { writeFileAtomic } from './atomic-file.js';

export interface TrustedKeyEntry {
  id: string;
  publicKey: string;
  names: string[];
  /** A person-readable label. */
  comment?: string;
}

export interface TrustPolicyFile {
  version: 1;
  keys: TrustedKeyEntry[];
}

export interface TrustedKey {
  id: string;
  key: KeyObject;
  names: readonly string[];
}

export class TrustPolicy {
  private readonly byId: Map<string, TrustedKey>;

  constructor(readonly keys: readonly TrustedKey[]) {
    this.byId = new Map(keys.map((k) => [k.id, k]));
  }

  /** The pinned key with this id, whatever names it may sign. */
  key(id: string): TrustedKey | undefined {
    return this.byId.get(id);
  }

  /** True when key `id` is pinned and one of its patterns matches `name`. */
  allows(id: string, name: string): boolean {
    const entry = this.byId.get(id);
    return entry !== undefined && entry.names.some((pattern) => matchesName(pattern, name));
  }
}

/** Glob match of an image name against a policy pattern (see the file comment). */
export function matchesName(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(name);
}

/** Checks and loads a policy document; NFV_ERR_TRUST_POLICY names the problem. */
export function parseTrustPolicy(raw: unknown, file?: string): TrustPolicy {
  const bad = (message: string, field?: string): never => {
    throw new NfvError('NFV_ERR_TRUST_POLICY', message, {
      ...(file ? { file } : {}),
      ...(field ? { field } : {}),
    });
  };
  if (typeof raw !== 'object' || raw === null) bad('not a JSON object');
  const doc = raw as Record<string, unknown>;
  if (doc.version !== 1) bad('version must be 1', 'version');
  if (!Array.isArray(doc.keys)) bad('keys must be a list', 'keys');
  const keys: TrustedKey[] = [];
  (doc.keys as unknown[]).forEach((entry, i) => {
    const field = `keys[${i}]`;
    if (typeof entry !== 'object' || entry === null) bad('must be an object', field);
    const e = entry as Record<string, unknown>;
    if (typeof e.id !== 'string') bad('id must be a string', `${field}.id`);
    if (typeof e.publicKey !== 'string') bad('publicKey must be a PEM string', `${field}.publicKey`);
    if (!Array.isArray(e.names) || !e.names.every((n) => typeof n === 'string' && n.length > 0))
      bad('names must be a list of name patterns', `${field}.names`);
    let key: KeyObject;
    try {
      key = publicKeyFromPem(e.publicKey as string);
    } catch {
      return bad('publicKey is not an Ed25519 public key', `${field}.publicKey`);
    }
    if (keyIdOf(key) !== e.id) bad(`id does not match the public key (it is ${keyIdOf(key)})`, `${field}.id`);
    keys.push({ id: e.id as string, key, names: e.names as string[] });
  });
  return new TrustPolicy(keys);
}

/** Reads a policy file. */
export async function readTrustPolicy(file: string): Promise<TrustPolicy> {
  return parseTrustPolicy(await readPolicyDocument(file), file);
}

async function readPolicyDocument(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new NfvError('NFV_ERR_TRUST_POLICY', `cannot read trust policy: ${(e as Error).message}`, { file });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new NfvError('NFV_ERR_TRUST_POLICY', 'not JSON', { file });
  }
}

/**
 * Adds (or widens) a key in a policy file, creating the file when absent: the public key PEM and
 * the name patterns it may sign. Returns the key id.
 */
export async function trustKey(
  file: string,
  publicPem: string,
  names: readonly string[],
  comment?: string,
): Promise<string> {
  const key = publicKeyFromPem(publicPem);
  const id = keyIdOf(key);
  let doc: TrustPolicyFile = { version: 1, keys: [] };
  if (existsSync(file)) {
    doc = (await readPolicyDocument(file)) as TrustPolicyFile;
    parseTrustPolicy(doc, file);
  }
  const existing = doc.keys.find((k) => k.id === id);
  if (existing) existing.names = [...new Set([...existing.names, ...names])];
  else
    doc.keys.push({
      id,
      publicKey: key.export({ format: 'pem', type: 'spki' }).toString(),
      names: [...names],
      ...(comment ? { comment } : {}),
    });
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`);
  return id;
}
