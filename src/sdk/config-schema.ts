/**
 * The configuration schema an NF declares: a small JSON-Schema-like tree with defaults, checked
 * once in `create()`'s caller so NF code receives a complete, typed object. Every error names the
 * field path (`config.rules[3].action`) so the deployment loader can point at the file's line.
 *
 * @example
 * const schema = { default: { type: 'string', enum: ['accept', 'drop'], default: 'drop', description: 'verdict when no rule matches' } } as const;
 * const { value, errors } = validateConfig(schema, { default: 'accept' });
 */

export type FieldSchema =
  | {
      type: 'string';
      description: string;
      default?: string;
      enum?: readonly string[];
      /** Accept a number and keep it as its decimal text (ports and protocol numbers written bare in YAML). */
      numbersAsText?: boolean;
    }
  | { type: 'number' | 'integer'; description: string; default?: number; minimum?: number; maximum?: number }
  | { type: 'boolean'; description: string; default?: boolean }
  | {
      type: 'array';
      description: string;
      default?: readonly unknown[];
      items: FieldSchema;
      maxItems?: number;
    }
  | { type: 'object'; description: string; properties: ConfigSchema; optional?: boolean };

/** Field name → field. Every field is required unless it has a default (or is an optional object). */
export type ConfigSchema = Readonly<Record<string, FieldSchema>>;

export interface ConfigError {
  /** Dotted path from the config root, e.g. `rules[2].dst`. */
  path: string;
  message: string;
}

/** Checks `raw` against `schema`, fills defaults, rejects unknown keys. Never throws. */
export function validateConfig(
  schema: ConfigSchema,
  raw: unknown,
): { value: Record<string, unknown>; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const value = checkObject(schema, raw ?? {}, '', errors);
  return { value: value ?? {}, errors };
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function checkObject(
  schema: ConfigSchema,
  raw: unknown,
  path: string,
  errors: ConfigError[],
): Record<string, unknown> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    errors.push({ path: path || '(config)', message: `must be an object (got ${describe(raw)})` });
    return undefined;
  }
  const input = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(schema, key)) {
      const known = Object.keys(schema).join(', ');
      errors.push({ path: join(path, key), message: `unknown field (known: ${known || 'none'})` });
    }
  }
  for (const [key, field] of Object.entries(schema)) {
    const fieldPath = join(path, key);
    if (input[key] === undefined) {
      if (field.type === 'object') {
        if (field.optional) continue;
        out[key] = checkObject(field.properties, {}, fieldPath, errors);
      } else if (field.default !== undefined) {
        out[key] = structuredClone(field.default);
      } else errors.push({ path: fieldPath, message: 'is required' });
      continue;
    }
    out[key] = checkField(field, input[key], fieldPath, errors);
  }
  return out;
}

function checkField(field: FieldSchema, raw: unknown, path: string, errors: ConfigError[]): unknown {
  switch (field.type) {
    case 'string':
      if (field.numbersAsText && typeof raw === 'number' && Number.isFinite(raw)) raw = String(raw);
      if (typeof raw !== 'string') return fail(errors, path, `must be a string (got ${describe(raw)})`);
      if (field.enum && !field.enum.includes(raw))
        return fail(errors, path, `must be one of ${field.enum.join(', ')} (got "${raw}")`);
      return raw;
    case 'number':
    case 'integer':
      if (typeof raw !== 'number' || !Number.isFinite(raw))
        return fail(errors, path, `must be a number (got ${describe(raw)})`);
      if (field.type === 'integer' && !Number.isInteger(raw))
        return fail(errors, path, `must be an integer (got ${raw})`);
      if (field.minimum !== undefined && raw < field.minimum)
        return fail(errors, path, `must be ≥ ${field.minimum} (got ${raw})`);
      if (field.maximum !== undefined && raw > field.maximum)
        return fail(errors, path, `must be ≤ ${field.maximum} (got ${raw})`);
      return raw;
    case 'boolean':
      if (typeof raw !== 'boolean') return fail(errors, path, `must be true or false (got ${describe(raw)})`);
      return raw;
    case 'array': {
      if (!Array.isArray(raw)) return fail(errors, path, `must be a list (got ${describe(raw)})`);
      if (field.maxItems !== undefined && raw.length > field.maxItems)
        return fail(errors, path, `must have at most ${field.maxItems} entries (got ${raw.length})`);
      return raw.map((item, i) => checkField(field.items, item, `${path}[${i}]`, errors));
    }
    case 'object':
      return checkObject(field.properties, raw, path, errors);
  }
}

function fail(errors: ConfigError[], path: string, message: string): undefined {
  errors.push({ path, message });
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return 'an object';
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}
