/**
 * Bearer tokens for the control API. A token is 32 random bytes in base64url, shown once when it
 * is issued; the store keeps only its SHA-256, so a leaked token file does not leak a token. A
 * presented token is hashed and compared with every stored hash by `timingSafeEqual` (hashes are
 * all 32 bytes, so lengths never differ), without stopping at the first match: how long a check
 * takes says nothing about which bytes were right.
 *
 * Roles are ordered: viewer (read) < operator (restart) < admin (stop, and later deploy).
 *
 * @example
 * const tokens = await TokenStore.open('/etc/nfvisor/tokens.json'); // or TokenStore.inMemory()
 * const { token } = await tokens.issue('operator', 'on-call');
 * tokens.verify(token); // → { id, role: 'operator', label: 'on-call' }
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NfvError } from '../errors.js';
import { writeFileAtomic } from '../image/atomic-file.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when `role` may do what `minimum` allows. */
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(minimum);
}

/** What the store knows about a token (never the token itself). */
export interface TokenInfo {
  id: string;
  role: Role;
  label: string;
  /** ISO 8601 time of issue. */
  created: string;
}

interface TokenEntry extends TokenInfo {
  hash: Buffer;
}

interface TokenFile {
  version: 1;
  tokens: (TokenInfo & { sha256: string })[];
}

const TOKEN_BYTES = 32;
/** A token as it may appear in a header: base64url, bounded so a huge header is not hashed. */
const TOKEN_SYNTAX = /^[A-Za-z0-9_-]{16,128}$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class TokenStore {
  private readonly entries: TokenEntry[] = [];

  private constructor(private readonly file: string | null) {}

  /** A store that lives only as long as the process (tests, a one-off `run --control`). */
  static inMemory(): TokenStore {
    return new TokenStore(null);
  }

  /** A store kept in a JSON file (mode 0600, written atomically); a missing file is an empty store. */
  static async open(file: string): Promise<TokenStore> {
    const store = new TokenStore(file);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return store;
      throw new NfvError('NFV_ERR_IO', `cannot read ${file}`, { file }, { cause: e });
    }
    store.entries.push(...parseTokenFile(text, file));
    return store;
  }

  /** Issues a new token with `role`; the token is returned once and never stored. */
  async issue(role: Role, label = ''): Promise<{ id: string; token: string }> {
    if (!ROLES.includes(role)) throw new NfvError('NFV_ERR_BAD_ARGUMENT', `unknown role ${String(role)}`);
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const id = randomBytes(6).toString('hex');
    this.entries.push({ id, role, label, created: new Date().toISOString(), hash: sha256(token) });
    await this.save();
    return { id, token };
  }

  /** Revokes the token with `id`; false when there is none. */
  async revoke(id: string): Promise<boolean> {
    const index = this.entries.findIndex((e) => e.id === id);
    if (index < 0) return false;
    this.entries.splice(index, 1);
    await this.save();
    return true;
  }

  /** The token's identity and role, or null for a token this store does not hold. */
  verify(token: string): TokenInfo | null {
    if (!TOKEN_SYNTAX.test(token)) return null;
    const presented = sha256(token);
    let found: TokenEntry | null = null;
    for (const entry of this.entries) {
      // No early exit: every stored hash is compared, whichever matches.
      if (timingSafeEqual(presented, entry.hash) && found === null) found = entry;
    }
    return found === null ? null : info(found);
  }

  list(): TokenInfo[] {
    return this.entries.map(info);
  }

  private async save(): Promise<void> {
    if (this.file === null) return;
    const data: TokenFile = {
      version: 1,
      tokens: this.entries.map((e) => ({ ...info(e), sha256: e.hash.toString('hex') })),
    };
    await writeFileAtomic(this.file, `${JSON.stringify(data, null, 2)}\n`, 0o600);
  }
}

function info(e: TokenEntry): TokenInfo {
  return { id: e.id, role: e.role, label: e.label, created: e.created };
}

function parseTokenFile(text: string, file: string): TokenEntry[] {
  const bad = (field: string, why: string): NfvError =>
    new NfvError('NFV_ERR_TOKEN_STORE', why, { file, field });
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw bad('', 'not JSON');
  }
  if (typeof data !== 'object' || data === null || (data as { version?: unknown }).version !== 1)
    throw bad('version', 'must be 1');
  const tokens = (data as { tokens?: unknown }).tokens;
  if (!Array.isArray(tokens)) throw bad('tokens', 'must be a list');
  return tokens.map((t: unknown, i): TokenEntry => {
    const field = `tokens[${i}]`;
    if (typeof t !== 'object' || t === null) throw bad(field, 'must be an object');
    const { id, role, label, created, sha256: hex } = t as Record<string, unknown>;
    if (typeof id !== 'string' || id === '') throw bad(`${field}.id`, 'must be a non-empty string');
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role))
      throw bad(`${field}.role`, `must be one of ${ROLES.join(', ')}`);
    if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex))
      throw bad(`${field}.sha256`, 'must be 64 lowercase hex digits');
    return {
      id,
      role: role as Role,
      label: typeof label === 'string' ? label : '',
      created: typeof created === 'string' ? created : '',
      hash: Buffer.from(hex, 'hex'),
    };
  });
}
