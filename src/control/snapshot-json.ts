/**
 * An NF's state snapshot as JSON for the control API. Snapshots are structured-clone data from a
 * guest — Maps, Sets, typed arrays, BigInts — so they are turned into plain JSON, bounded in depth,
 * and every field whose name says it is secret (a private or preshared key, a password, a token, a
 * secret) is replaced by "[redacted]" wherever it sits: the API never hands out key material, even
 * if an NF put some in its state.
 *
 * @example
 * snapshotJson({ peers: [{ publicKey: 'x', presharedKey: 'y' }], table: new Uint32Array(2) });
 * // { peers: [{ publicKey: 'x', presharedKey: '[redacted]' }], table: { typedArray: 'Uint32Array', length: 2, base64: 'AAAAAAAAAAA=' } }
 */
export const REDACTED = '[redacted]';

/** Names of fields never shown: `privateKey`, `preshared_key`, `secret`, `cookieSecret`, `password`, `token` … */
const SECRET_NAME = /private[-_]?key|preshared|secret|passw(or)?d|passphrase|token/i;
const MAX_DEPTH = 32;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function snapshotJson(value: unknown, depth = 0): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value !== 'object') return null; // functions and symbols do not survive a clone anyway
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (ArrayBuffer.isView(value)) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return {
      typedArray: value.constructor.name,
      length: (value as { length?: number }).length ?? bytes.length,
      base64: bytes.toString('base64'),
    };
  }
  if (value instanceof ArrayBuffer)
    return { arrayBuffer: value.byteLength, base64: Buffer.from(value).toString('base64') };
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map)
    return [...value.entries()].map(([k, v]) => [snapshotJson(k, depth + 1), snapshotJson(v, depth + 1)]);
  if (value instanceof Set) return [...value].map((v) => snapshotJson(v, depth + 1));
  if (Array.isArray(value)) return value.map((v) => snapshotJson(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value))
    out[key] = isSecretName(key) ? REDACTED : snapshotJson(v, depth + 1);
  return out;
}
