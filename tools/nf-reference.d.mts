// Types of tools/nf-reference.mjs, for the TypeScript test that imports it.
import type { FieldSchema, ConfigSchema } from '../src/sdk/config-schema.js';
import type { NfDefinition } from '../src/sdk/define-nf.js';

/** A built-in NF found under dist/nfs/: its folder name and its declaration. */
export interface BuiltinNf {
  folder: string;
  definition: NfDefinition<never>;
}

/** One row of the configuration table: `rules`, `rules[]`, `rules[].action`. */
export interface ConfigFieldRow {
  path: string;
  field: FieldSchema;
  /** A value must be written wherever the parent is (no default, not an optional object). */
  required: boolean;
  /** The row describes each entry of a list (`path` ends in `[]`). */
  item: boolean;
}

export function loadBuiltinNfs(distNfs?: URL): Promise<BuiltinNf[]>;
export function configFields(schema: ConfigSchema, prefix?: string): ConfigFieldRow[];
export function renderNfReference(
  definition: NfDefinition<never>,
  options?: { source?: string },
): Promise<string>;
export function renderNfIndex(definitions: readonly NfDefinition<never>[]): Promise<string>;
export function deploymentSnippet(definition: NfDefinition<never>): string[];
