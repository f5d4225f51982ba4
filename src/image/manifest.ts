/**
 * The manifest of an NF image: what the host needs to know before it runs any of the image's
 * code — name, version, the SDK API it was built against, the declaration's outputs, drops,
 * counters and config schema (copied from `defineNf` at build time), resources and capabilities.
 *
 * @example
 * const manifest = parseManifest(JSON.parse(text)); // throws NFV_ERR_IMAGE_INVALID when malformed
 * compareVersions('1.10.0', '1.9.3') > 0;          // true
 */
import { NfvError } from '../errors.js';
import type { ConfigSchema } from '../sdk/config-schema.js';
import type { CounterSpec } from '../sdk/define-nf.js';
import { CAPABILITIES, type Capability } from './capabilities.js';

/** The NF API version this nfvisor's SDK offers; images record the one they were built against. */
export const SDK_API_VERSION = 1;
/** SDK API versions this host runs. */
export const SUPPORTED_SDK_API_VERSIONS: readonly number[] = [1];
/** The manifest format. */
export const MANIFEST_SCHEMA_VERSION = 1;
/** The name of the one bundled module in an image. */
export const IMAGE_ENTRY = 'index.mjs';

export interface ImageManifest {
  schemaVersion: 1;
  /** The declaration's name (lower-case kebab). */
  name: string;
  /** Semantic version `MAJOR.MINOR.PATCH[-pre]`; the rollback check orders by it. */
  version: string;
  sdkApiVersion: number;
  /** The bundled module's file name inside the image. */
  entry: string;
  summary: string;
  outputs: string[];
  /** Drop reasons in declaration order (a drop verdict is an index into this list). */
  drops: { name: string; description: string }[];
  /** Counters in declaration order (a guest's counter slots follow it). */
  counters: ({ name: string } & CounterSpec)[];
  config: ConfigSchema;
  resources: { heapMb: number };
  /** What the code may use beyond the SDK; a deployment must also grant each. */
  capabilities: Capability[];
}

const NAME = /^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$/;
const VERSION = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z.-]+))?$/;
const MAX_HEAP_MB = 4096;

/** True for `MAJOR.MINOR.PATCH` with an optional `-prerelease`. */
export function isVersion(text: string): boolean {
  return VERSION.test(text);
}

/**
 * Orders two versions as semver does (numeric parts; a prerelease sorts before its release;
 * prerelease identifiers compare numerically when both are numbers). Negative when a < b.
 */
export function compareVersions(a: string, b: string): number {
  const ma = VERSION.exec(a);
  const mb = VERSION.exec(b);
  if (!ma || !mb) throw new NfvError('NFV_ERR_IMAGE_INVALID', `not a version: ${ma ? b : a}`);
  for (let i = 1; i <= 3; i++) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return Math.sign(d);
  }
  const pa = ma[4];
  const pb = mb[4];
  if (pa === undefined || pb === undefined) return pa === pb ? 0 : pa === undefined ? 1 : -1;
  const xs = pa.split('.');
  const ys = pb.split('.');
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    const x = xs[i];
    const y = ys[i];
    if (x === y) continue;
    const nx = /^[0-9]+$/.test(x);
    const ny = /^[0-9]+$/.test(y);
    if (nx && ny) return Math.sign(Number(x) - Number(y));
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return Math.sign(xs.length - ys.length);
}

/** JSON with object keys sorted at every level and no whitespace: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new NfvError('NFV_ERR_IMAGE_INVALID', 'a manifest cannot hold NaN or Infinity');
    if (value === undefined) throw new NfvError('NFV_ERR_IMAGE_INVALID', 'a manifest cannot hold undefined');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

function invalid(message: string, field?: string): never {
  throw new NfvError('NFV_ERR_IMAGE_INVALID', `manifest: ${message}`, field ? { field } : {});
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks that `raw` has the manifest's shape (it came from disk or an archive and is untrusted)
 * and returns it typed. Does not judge the SDK version or capabilities: the verifier does, with
 * its own error codes.
 */
export function parseManifest(raw: unknown): ImageManifest {
  if (!isRecord(raw)) invalid('not an object');
  const known = [
    'schemaVersion',
    'name',
    'version',
    'sdkApiVersion',
    'entry',
    'summary',
    'outputs',
    'drops',
    'counters',
    'config',
    'resources',
    'capabilities',
  ];
  for (const key of Object.keys(raw)) if (!known.includes(key)) invalid(`unknown field "${key}"`, key);
  if (raw.schemaVersion !== MANIFEST_SCHEMA_VERSION) invalid('schemaVersion must be 1', 'schemaVersion');
  if (typeof raw.name !== 'string' || !NAME.test(raw.name)) invalid('name must be lower-case kebab', 'name');
  if (typeof raw.version !== 'string' || !VERSION.test(raw.version))
    invalid('version must be MAJOR.MINOR.PATCH[-pre]', 'version');
  if (!Number.isSafeInteger(raw.sdkApiVersion) || (raw.sdkApiVersion as number) < 1)
    invalid('sdkApiVersion must be a positive integer', 'sdkApiVersion');
  if (raw.entry !== IMAGE_ENTRY) invalid(`entry must be ${IMAGE_ENTRY}`, 'entry');
  if (typeof raw.summary !== 'string') invalid('summary must be a string', 'summary');
  if (
    !Array.isArray(raw.outputs) ||
    raw.outputs.length === 0 ||
    !raw.outputs.every((o) => typeof o === 'string')
  )
    invalid('outputs must be a non-empty list of names', 'outputs');
  if (
    !Array.isArray(raw.drops) ||
    !raw.drops.every((d) => isRecord(d) && typeof d.name === 'string' && typeof d.description === 'string')
  )
    invalid('drops must be a list of { name, description }', 'drops');
  if (
    !Array.isArray(raw.counters) ||
    !raw.counters.every(
      (c) =>
        isRecord(c) &&
        typeof c.name === 'string' &&
        typeof c.unit === 'string' &&
        typeof c.description === 'string',
    )
  )
    invalid('counters must be a list of { name, unit, description }', 'counters');
  if (!isRecord(raw.config)) invalid('config must be a schema object', 'config');
  const resources = raw.resources;
  if (
    !isRecord(resources) ||
    !Number.isSafeInteger(resources.heapMb) ||
    (resources.heapMb as number) < 1 ||
    (resources.heapMb as number) > MAX_HEAP_MB
  )
    invalid(`resources.heapMb must be an integer 1…${MAX_HEAP_MB}`, 'resources.heapMb');
  if (
    !Array.isArray(raw.capabilities) ||
    !raw.capabilities.every(
      (c) => typeof c === 'string' && (CAPABILITIES as readonly string[]).includes(c),
    ) ||
    new Set(raw.capabilities).size !== raw.capabilities.length
  )
    invalid(`capabilities must be distinct names from ${CAPABILITIES.join(', ')}`, 'capabilities');
  return raw as unknown as ImageManifest;
}
