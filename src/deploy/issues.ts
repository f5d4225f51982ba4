/**
 * Collects the problems of one deployment file, each at a field path, and turns TypeBox schema
 * errors into short messages ("must be one of …", "must be 1…64", "unknown field …").
 */
import { Value, ValueErrorType, type TSchema, type ValueError } from './typebox.js';
import { DeploymentError, type DeploymentIssue } from './deployment-error.js';
import type { Anchor, PathSegment, YamlSource } from './yaml-source.js';

interface PendingIssue {
  path: readonly PathSegment[];
  message: string;
  anchor: Anchor;
}

export class Issues {
  private readonly pending: PendingIssue[] = [];
  private readonly located: DeploymentIssue[] = [];

  constructor(
    readonly file: string,
    private readonly source: YamlSource,
  ) {}

  get count(): number {
    return this.pending.length + this.located.length;
  }

  /** A problem at a field; `anchor: 'key'` points at the key (an unknown or misnamed field). */
  add(path: readonly PathSegment[], message: string, anchor: Anchor = 'value'): void {
    this.pending.push({ path, message, anchor });
  }

  /** A problem already located by the YAML parser (syntax, duplicate keys, aliases). */
  addAt(line: number, column: number, message: string): void {
    this.located.push({ file: this.file, line, column, path: '', message });
  }

  /** True when a problem was reported at `path` or inside it. */
  hasUnder(path: readonly PathSegment[]): boolean {
    return this.pending.some(
      (p) => p.path.length >= path.length && path.every((s, i) => String(s) === String(p.path[i])),
    );
  }

  /** Checks `value` against `schema`, reporting errors under `prefix`; returns how many were found. */
  checkSchema(schema: TSchema, value: unknown, prefix: readonly PathSegment[]): number {
    const seen = new Set<string>();
    let found = 0;
    for (const error of Value.Errors(schema, value)) {
      if (seen.has(error.path)) continue; // one problem per field: "required" hides "expected string"
      seen.add(error.path);
      const path = [...prefix, ...pointerSegments(error.path)];
      const anchor = error.type === ValueErrorType.ObjectAdditionalProperties ? 'key' : 'value';
      this.add(
        path,
        schemaMessage(error),
        error.type === ValueErrorType.ObjectRequiredProperty ? 'key' : anchor,
      );
      found++;
    }
    return found;
  }

  /** Line and column of a field (for errors found after parsing, such as an image that fails to verify). */
  locate(path: readonly PathSegment[]): { line: number; column: number } {
    return this.source.locate(path, 'value');
  }

  /** Every problem, in file order, or an empty list. */
  list(): DeploymentIssue[] {
    const all = [
      ...this.located,
      ...this.pending.map((p) => ({
        file: this.file,
        ...this.source.locate(p.path, p.anchor),
        path: formatPath(p.path),
        message: p.message,
      })),
    ];
    const unique = new Map<string, DeploymentIssue>();
    for (const issue of all) {
      const key = `${issue.line}:${issue.column}:${issue.path}:${issue.message}`;
      if (!unique.has(key)) unique.set(key, issue);
    }
    return [...unique.values()].sort((a, b) => a.line - b.line || a.column - b.column);
  }

  /** Throws the DeploymentError listing every problem, if there is any. */
  throwIfAny(): void {
    if (this.count > 0) throw new DeploymentError(this.list());
  }
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['chains', 0, 'match', 'src']` → `chains[0].match.src`; odd keys are quoted: `ports["a b"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** A JSON pointer (`/nfs/fw/vnic`) as path segments; digit-only segments become indexes. */
export function pointerSegments(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

/**
 * A field path as an NF's config hook writes it: `rules[0].src`, `rules.0.src` or a JSON pointer
 * `/rules/0/src`; '' is the config itself.
 */
export function parseFieldPath(text: string): PathSegment[] {
  if (text.startsWith('/')) return pointerSegments(text);
  const segments: PathSegment[] = [];
  for (const part of text.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null) {
      segments.push(part);
      continue;
    }
    if (m[1] !== '') segments.push(/^(0|[1-9][0-9]*)$/.test(m[1]) ? Number(m[1]) : m[1]);
    for (const index of m[2].matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]));
  }
  return segments;
}

/** How a value looks in a message: strings quoted (and cut short), collections by kind. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return typeof value;
}

function schemaMessage(error: ValueError): string {
  const schema = error.schema as TSchema & {
    errorMessage?: string;
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: number;
    exclusiveMaximum?: number;
    minItems?: number;
    const?: unknown;
    properties?: Record<string, unknown>;
  };
  const got = error.value === undefined ? '' : ` (got ${show(error.value)})`;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.ObjectAdditionalProperties:
      return `unknown field (expected ${Object.keys(schema.properties ?? {}).join(', ')})`;
    case ValueErrorType.Object:
      return `must be a mapping${got}`;
    case ValueErrorType.Array:
      return `must be a list${got}`;
    case ValueErrorType.String:
      return `must be a string${got}`;
    case ValueErrorType.Boolean:
      return `must be true or false${got}`;
    case ValueErrorType.Integer:
      return `must be an integer${got}`;
    case ValueErrorType.Number:
      return `must be a finite number${got}`;
    case ValueErrorType.Literal:
      return `must be ${show(schema.const)}${got}`;
    case ValueErrorType.Union:
      return `${schema.errorMessage ?? 'has the wrong type'}${got}`;
    case ValueErrorType.StringMinLength:
      return 'must not be empty';
    case ValueErrorType.ArrayMinItems:
      return `must have at least ${schema.minItems ?? 1} item${schema.minItems === 1 ? '' : 's'}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.NumberExclusiveMaximum:
      return `must be ${range(schema)}${got}`;
    default:
      return `${schema.errorMessage ?? error.message}${got}`;
  }
}

function range(s: {
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}): string {
  if (s.minimum !== undefined && s.maximum !== undefined) return `${s.minimum}…${s.maximum}`;
  const parts: string[] = [];
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  return parts.join(' and ');
}
