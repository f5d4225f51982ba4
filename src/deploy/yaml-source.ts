/**
 * A deployment file's text parsed as YAML 1.2 (JSON is YAML 1.2, so JSON files come through the
 * same parser and get line numbers too), kept as a syntax tree so a field path can be mapped back to
 * the line and column where it was written.
 *
 * Checked here, before the value is built: YAML syntax, duplicate keys, more than one document,
 * unknown tags, keys that are not plain scalars, aliases to missing anchors and aliases that contain
 * themselves (which would make the value cyclic).
 */
import {
  Document,
  LineCounter,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  type Node as YamlNode,
} from './yaml.js';

/** A segment of a field path: a map key or a sequence index. */
export type PathSegment = string | number;

/** Which part of a field an issue points at: its value, or its key (unknown or misnamed keys). */
export type Anchor = 'value' | 'key';

export interface Position {
  line: number;
  column: number;
}

export interface SourceProblem extends Position {
  message: string;
  /** True when the tree is still sound (a duplicate key): schema checks may go on. */
  recoverable: boolean;
}

/** Aliases may expand to at most this many nodes (guards against "billion laughs"). */
const MAX_ALIAS_COUNT = 1000;

export class YamlSource {
  readonly problems: SourceProblem[] = [];
  private readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();

  constructor(text: string) {
    this.doc = parseDocument(text, {
      lineCounter: this.lines,
      prettyErrors: false,
      uniqueKeys: true,
      version: '1.2',
      schema: 'core',
      merge: false,
      strict: true,
    });
    for (const e of this.doc.errors)
      this.problem(e.pos[0], e.message, e.code === 'DUPLICATE_KEY' ? true : false);
    for (const w of this.doc.warnings) this.problem(w.pos[0], w.message, false);
    this.checkTree(this.doc.contents, []);
  }

  /** True when the value can be built and checked against the schema. */
  get sound(): boolean {
    return this.problems.every((p) => p.recoverable);
  }

  /**
   * The plain JS value of the document (maps → objects, sequences → arrays), or a problem when it
   * cannot be built. Only call when `sound`.
   */
  value(): { ok: true; value: unknown } | { ok: false } {
    try {
      return { ok: true, value: this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
    } catch (e) {
      this.problem(0, `cannot build the document: ${e instanceof Error ? e.message : String(e)}`, false);
      return { ok: false };
    }
  }

  /**
   * Where the field at `path` was written: its value (or its key, with `anchor: 'key'`). A path that
   * does not exist (a missing required field) resolves to the nearest enclosing field that does.
   */
  locate(path: readonly PathSegment[], anchor: Anchor = 'value'): Position {
    let node: unknown = this.doc.contents;
    let key: YamlNode | undefined;
    let offset = rangeStart(node) ?? 0;
    for (const segment of path) {
      node = this.deref(node);
      let next: unknown;
      let nextKey: YamlNode | undefined;
      if (isMap(node)) {
        const pair = node.items.findLast((p) => keyText(p.key) === String(segment));
        if (pair === undefined) break;
        nextKey = isScalar(pair.key) || isCollection(pair.key) ? pair.key : undefined;
        next = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        if (segment >= node.items.length) break;
        next = node.items[segment];
        nextKey = undefined;
      } else break;
      key = nextKey;
      node = next;
      const keyOffset = rangeStart(key);
      const valueOffset = rangeStart(node);
      offset = anchor === 'key' && keyOffset !== undefined ? keyOffset : (valueOffset ?? keyOffset ?? offset);
    }
    return this.position(offset);
  }

  private position(offset: number): Position {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  private problem(offset: number, message: string, recoverable: boolean): void {
    this.problems.push({ ...this.position(offset), message, recoverable });
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  /** Keys must be plain scalars; aliases must resolve to a node that does not contain them. */
  private checkTree(node: unknown, ancestors: unknown[]): void {
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) this.problem(rangeStart(node) ?? 0, `unknown anchor "${node.source}"`, false);
      else if (ancestors.includes(target))
        this.problem(rangeStart(node) ?? 0, `alias *${node.source} refers to a node that contains it`, false);
      return;
    }
    if (isMap(node)) {
      ancestors.push(node);
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        if (!isScalar(pair.key) || (pair.key.value !== null && typeof pair.key.value === 'object'))
          this.problem(rangeStart(pair.key) ?? rangeStart(node) ?? 0, 'keys must be plain scalars', false);
        this.checkTree(pair.value, ancestors);
      }
      ancestors.pop();
    } else if (isSeq(node)) {
      ancestors.push(node);
      for (const item of node.items) this.checkTree(item, ancestors);
      ancestors.pop();
    }
  }
}

function rangeStart(node: unknown): number | undefined {
  if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
  const range = (node as { range?: readonly number[] | null }).range;
  return range?.[0];
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}
