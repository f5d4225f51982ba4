/**
 * The rule language: a documented subset of Snort/Suricata signatures, parsed and checked once in
 * `create()`. Every error names the rule (`rules[3]`, its sid when known) and the option.
 *
 *   action proto src_addr src_port direction dst_addr dst_port (option; option: value; …)
 *
 * - action: alert, drop, reject, pass.     proto: tcp, udp, icmp (v4 and v6), ip (any).
 * - addresses: any, an IPv4/IPv6 address or CIDR, a list [a, b, …], negation !a / ![…],
 *   variables $NAME (from the `vars` config; HOME_NET and EXTERNAL_NET default to any).
 * - ports: any, 80, 1024:65535, :1023, 1024:, lists [80, 443], negation !80, variables $NAME.
 * - direction: -> or <> (either way).
 * - options: msg, sid, rev, classtype; content:"…" with |hex| bytes and \" \; \\ escapes, each
 *   followed by its modifiers nocase, offset, depth (absolute), distance, within (relative to the
 *   previous content's end); pcre:"/…/flags"; flow: established, to_server/from_client,
 *   to_client/from_server, stateless (tcp rules only). reference, metadata, priority, gid and
 *   fast_pattern are accepted and ignored. Anything else is an error.
 *
 * pcre policy: a pcre runs only after the rule's contents matched (a rule with pcre needs at least
 * one content), on the inspection window (≤ `windowBytes`), with JavaScript's regex engine. To keep
 * it from backtracking exponentially, a pattern is refused when it has back-references,
 * look-around, or a quantified group that itself contains a quantifier or an alternation
 * (`(a+)+`, `(a|aa)*`); repetition counts above 1000 are refused. Flags: i, s, m, and R (relative:
 * the match starts where the last content ended).
 */
import { parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';

export const Action = { Alert: 0, Drop: 1, Reject: 2, Pass: 3 } as const;
export type Action = (typeof Action)[keyof typeof Action];
export const ACTION_NAMES = ['alert', 'drop', 'reject', 'pass'] as const;

/** Rule protocol: 0 = ip (any). */
export const RuleProtocol = {
  Ip: 0,
  Tcp: IpProtocol.Tcp,
  Udp: IpProtocol.Udp,
  Icmp: IpProtocol.Icmp,
} as const;

/** flow: option bits. */
export const FlowFlag = { Established: 1, ToServer: 2, ToClient: 4 } as const;

/** An address set: a tree of CIDRs, lists and negations. */
export type AddressSet =
  | { kind: 'any' }
  | { kind: 'cidr'; v6: boolean; words: Int32Array; masks: Int32Array }
  | { kind: 'list'; items: AddressSet[] }
  | { kind: 'not'; item: AddressSet };

export type PortSet =
  | { kind: 'any' }
  | { kind: 'range'; lo: number; hi: number }
  | { kind: 'list'; items: PortSet[] }
  | { kind: 'not'; item: PortSet };

export interface Content {
  /** The bytes as written (case kept: nocase compares folded). */
  bytes: Uint8Array;
  nocase: boolean;
  /** Absolute: the match starts at ≥ offset and ends at ≤ offset + depth (-1: no depth). */
  offset: number;
  depth: number;
  /** Relative to the previous content's end (null: not relative). */
  distance: number | null;
  /** The match ends at ≤ previous end + distance + within (-1: no within). */
  within: number;
}

export interface Pcre {
  source: string;
  regex: RegExp;
  relative: boolean;
}

export interface Rule {
  /** The index of the rule in `rules` (its "line"). */
  line: number;
  action: Action;
  protocol: number;
  src: AddressSet;
  srcPorts: PortSet;
  dst: AddressSet;
  dstPorts: PortSet;
  bidirectional: boolean;
  flow: number;
  msg: string;
  sid: number;
  rev: number;
  classtype: string;
  contents: Content[];
  pcres: Pcre[];
  /** The rule text, for the compiled plan. */
  text: string;
}

const MAX_VAR_DEPTH = 8;

class RuleError extends Error {}

/** Parses `NAME=value` variable definitions; HOME_NET and EXTERNAL_NET default to any. */
export function parseVars(list: readonly string[]): Map<string, string> {
  const vars = new Map<string, string>([
    ['HOME_NET', 'any'],
    ['EXTERNAL_NET', 'any'],
  ]);
  list.forEach((entry, i) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$/.exec(entry);
    if (!m) throw new Error(`vars[${i}]: must be NAME=value (got "${entry}")`);
    vars.set(m[1], m[2]);
  });
  return vars;
}

/**
 * Parses every rule; throws one Error listing every broken rule (`rules[i] (sid n): option "x": …`).
 * Blank entries and `#` comments are skipped.
 */
export function parseRules(lines: readonly string[], vars: Map<string, string>): Rule[] {
  const rules: Rule[] = [];
  const problems: string[] = [];
  const sids = new Map<number, number>();
  lines.forEach((text, line) => {
    const trimmed = text.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    try {
      const rule = parseRule(trimmed, line, vars);
      const earlier = sids.get(rule.sid);
      if (earlier !== undefined) throw new RuleError(`option "sid": ${rule.sid} is also rules[${earlier}]'s`);
      sids.set(rule.sid, line);
      rules.push(rule);
    } catch (error) {
      if (!(error instanceof RuleError)) throw error;
      const sid = /\bsid\s*:\s*(\d+)/.exec(trimmed);
      problems.push(`rules[${line}]${sid ? ` (sid ${sid[1]})` : ''}: ${error.message}`);
    }
  });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return rules;
}

const HEADER =
  /^(\S+)\s+(\S+)\s+(\[[^\]]*\]|\S+)\s+(\[[^\]]*\]|\S+)\s+(->|<>|<-)\s+(\[[^\]]*\]|\S+)\s+(\[[^\]]*\]|\S+)\s*\((.*)\)\s*$/s;

function parseRule(text: string, line: number, vars: Map<string, string>): Rule {
  const m = HEADER.exec(text);
  if (!m)
    throw new RuleError(
      'not a rule: expected "action proto src sport -> dst dport (options)" with the options in parentheses',
    );
  const [, actionText, protoText, srcText, sportText, dirText, dstText, dportText, optionsText] = m;
  const action = ACTION_NAMES.indexOf(actionText as (typeof ACTION_NAMES)[number]);
  if (action < 0) throw new RuleError(`action "${actionText}": must be alert, drop, reject or pass`);
  const protocols: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, ip: 0 };
  if (!Object.hasOwn(protocols, protoText))
    throw new RuleError(`protocol "${protoText}": must be tcp, udp, icmp or ip`);
  if (dirText === '<-') throw new RuleError('direction "<-": not supported, write the rule with ->');
  const rule: Rule = {
    line,
    action: action as Action,
    protocol: protocols[protoText],
    src: parseAddress(srcText, vars, 'source address', 0),
    srcPorts: parsePorts(sportText, vars, 'source port', 0),
    dst: parseAddress(dstText, vars, 'destination address', 0),
    dstPorts: parsePorts(dportText, vars, 'destination port', 0),
    bidirectional: dirText === '<>',
    flow: 0,
    msg: '',
    sid: -1,
    rev: 1,
    classtype: '',
    contents: [],
    pcres: [],
    text,
  };
  if (rule.protocol !== RuleProtocol.Tcp && rule.protocol !== RuleProtocol.Udp) {
    if (rule.srcPorts.kind !== 'any' || rule.dstPorts.kind !== 'any')
      throw new RuleError(`ports: only tcp and udp rules have ports (write any)`);
  }
  for (const option of splitOptions(optionsText)) applyOption(rule, option);
  if (rule.sid < 0) throw new RuleError('option "sid": every rule needs one');
  if (rule.pcres.length > 0 && rule.contents.length === 0)
    throw new RuleError('option "pcre": a rule with pcre needs at least one content (the prefilter)');
  return rule;
}

/** Splits `a; b:"x;y"; c` at semicolons outside quotes (a `\;` escape stays inside). */
function splitOptions(text: string): { name: string; value: string | null }[] {
  const out: { name: string; value: string | null }[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      current += c + text[i + 1];
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      push();
      continue;
    }
    current += c;
  }
  if (quoted) throw new RuleError('options: a quoted value is not closed');
  push();
  return out;

  function push(): void {
    const option = current.trim();
    current = '';
    if (option === '') return;
    const colon = option.indexOf(':');
    if (colon < 0) out.push({ name: option.toLowerCase(), value: null });
    else
      out.push({ name: option.slice(0, colon).trim().toLowerCase(), value: option.slice(colon + 1).trim() });
  }
}

const IGNORED = new Set(['reference', 'metadata', 'priority', 'gid', 'fast_pattern']);
const INTEGER = /^-?(0|[1-9][0-9]{0,8})$/;

function applyOption(rule: Rule, { name, value }: { name: string; value: string | null }): void {
  const where = `option "${name}"`;
  const need = (): string => {
    if (value === null || value === '') throw new RuleError(`${where}: needs a value`);
    return value;
  };
  const integer = (min: number, max: number): number => {
    const v = need();
    if (!INTEGER.test(v) || Number(v) < min || Number(v) > max)
      throw new RuleError(`${where}: must be an integer ${min}…${max} (got "${v}")`);
    return Number(v);
  };
  const last = (): Content => {
    const content = rule.contents.at(-1);
    if (!content) throw new RuleError(`${where}: modifies a content, and none comes before it`);
    return content;
  };
  switch (name) {
    case 'msg':
      rule.msg = unquote(need(), where);
      return;
    case 'sid':
      rule.sid = integer(1, 2 ** 31 - 1);
      return;
    case 'rev':
      rule.rev = integer(0, 2 ** 31 - 1);
      return;
    case 'classtype':
      if (!/^[A-Za-z0-9_-]+$/.test(need())) throw new RuleError(`${where}: must be a name (got "${value}")`);
      rule.classtype = need();
      return;
    case 'content': {
      const v = need();
      if (v.startsWith('!')) throw new RuleError(`${where}: negated content is not supported`);
      const bytes = contentBytes(unquote(v, where), where);
      if (bytes.length === 0) throw new RuleError(`${where}: must not be empty`);
      rule.contents.push({ bytes, nocase: false, offset: 0, depth: -1, distance: null, within: -1 });
      return;
    }
    case 'nocase':
      if (value !== null) throw new RuleError(`${where}: takes no value`);
      last().nocase = true;
      return;
    case 'offset':
    case 'depth': {
      const c = last();
      if (c.distance !== null || c.within >= 0)
        throw new RuleError(`${where}: cannot be mixed with distance/within on the same content`);
      if (name === 'offset') c.offset = integer(0, 65535);
      else {
        c.depth = integer(1, 65535);
        if (c.depth < c.bytes.length)
          throw new RuleError(`${where}: ${c.depth} is shorter than the content (${c.bytes.length} bytes)`);
      }
      return;
    }
    case 'distance':
    case 'within': {
      const c = last();
      if (rule.contents.length < 2)
        throw new RuleError(`${where}: is relative to a previous content, and this is the first`);
      if (c.offset !== 0 || c.depth >= 0)
        throw new RuleError(`${where}: cannot be mixed with offset/depth on the same content`);
      if (name === 'distance') c.distance = integer(-65535, 65535);
      else {
        c.within = integer(1, 65535);
        if (c.within < c.bytes.length)
          throw new RuleError(`${where}: ${c.within} is shorter than the content (${c.bytes.length} bytes)`);
        c.distance ??= 0;
      }
      return;
    }
    case 'pcre':
      rule.pcres.push(parsePcre(unquote(need(), where), where));
      return;
    case 'flow': {
      if (rule.protocol !== RuleProtocol.Tcp)
        throw new RuleError(`${where}: only tcp rules can use flow (streams are tracked for TCP)`);
      for (const word of need().split(',')) {
        const w = word.trim();
        if (w === 'established') rule.flow |= FlowFlag.Established;
        else if (w === 'to_server' || w === 'from_client') rule.flow |= FlowFlag.ToServer;
        else if (w === 'to_client' || w === 'from_server') rule.flow |= FlowFlag.ToClient;
        else if (w !== 'stateless')
          throw new RuleError(
            `${where}: "${w}" is not one of established, to_server, from_client, to_client, from_server, stateless`,
          );
      }
      if ((rule.flow & FlowFlag.ToServer) !== 0 && (rule.flow & FlowFlag.ToClient) !== 0)
        throw new RuleError(`${where}: to_server and to_client exclude each other`);
      return;
    }
    default:
      if (IGNORED.has(name)) return;
      throw new RuleError(`${where}: not supported (see the subset in nfs/ids/rules.ts)`);
  }
}

function unquote(value: string, where: string): string {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"'))
    throw new RuleError(`${where}: must be a quoted string (got ${value})`);
  return value.slice(1, -1);
}

/** Content text → bytes: |41 42| hex runs, \" \; \\ \: escapes, other characters as UTF-8. */
function contentBytes(text: string, where: string): Uint8Array {
  const out: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '|') {
      const end = text.indexOf('|', i + 1);
      if (end < 0) throw new RuleError(`${where}: a |hex| run is not closed`);
      const hex = text.slice(i + 1, end).replace(/\s+/g, '');
      if (!/^([0-9A-Fa-f]{2})*$/.test(hex))
        throw new RuleError(`${where}: |${text.slice(i + 1, end)}| is not pairs of hex digits`);
      for (let k = 0; k < hex.length; k += 2) out.push(parseInt(hex.slice(k, k + 2), 16));
      i = end;
    } else if (c === '\\') {
      const next = text[i + 1];
      if (next !== '"' && next !== ';' && next !== '\\' && next !== ':')
        throw new RuleError(`${where}: unknown escape \\${next ?? ''}`);
      out.push(next.charCodeAt(0));
      i++;
    } else if (c === '"' || c === ';') {
      throw new RuleError(
        `${where}: ${c} inside a content must be escaped (\\${c} or |${c.charCodeAt(0).toString(16)}|)`,
      );
    } else out.push(...encoder.encode(c));
  }
  return Uint8Array.from(out);
}

/**
 * True when a group that repeats (`*`, `+`, `{n,}`, `{n,m}`) holds a quantifier, an alternation or
 * another group: the shapes (`(a+)+`, `(a|aa)*`) that backtrack exponentially.
 */
function hasNestedRepetition(source: string): boolean {
  const risky: boolean[] = [];
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      // A character class: skip to its closing bracket (a leading ] or an escaped one is literal).
      let j = i + 1;
      if (source[j] === '^') j++;
      if (source[j] === ']') j++;
      while (j < source.length && source[j] !== ']') j += source[j] === '\\' ? 2 : 1;
      i = j;
      continue;
    }
    if (c === '(') {
      if (risky.length > 0) risky[risky.length - 1] = true;
      risky.push(false);
      continue;
    }
    if (c === ')') {
      const inner = risky.pop() ?? false;
      const next = source[i + 1];
      const repeats =
        next === '*' ||
        next === '+' ||
        (next === '{' && /^\{\d*,\d*\}|^\{\d*[2-9]\d*\}|^\{\d{2,}\}/.test(source.slice(i + 1)));
      if (inner && repeats) return true;
      if (repeats && risky.length > 0) risky[risky.length - 1] = true;
      continue;
    }
    if ((c === '*' || c === '+' || c === '?' || c === '{' || c === '|') && risky.length > 0)
      risky[risky.length - 1] = true;
  }
  return false;
}

function parsePcre(text: string, where: string): Pcre {
  const m = /^\/(.*)\/([A-Za-z]*)$/s.exec(text);
  if (!m) throw new RuleError(`${where}: must be "/pattern/flags"`);
  const [, source, flags] = m;
  let jsFlags = '';
  let relative = false;
  for (const f of flags) {
    if (f === 'i' || f === 's' || f === 'm') jsFlags += f;
    else if (f === 'R') relative = true;
    else throw new RuleError(`${where}: flag "${f}" is not supported (i, s, m, R)`);
  }
  if (/\\[1-9]|\\k</.test(source))
    throw new RuleError(`${where}: back-references are refused (backtracking)`);
  if (/\(\?<?[=!]/.test(source)) throw new RuleError(`${where}: look-around is refused (backtracking)`);
  if (hasNestedRepetition(source))
    throw new RuleError(
      `${where}: a repeated group with a quantifier or alternation inside is refused (backtracking)`,
    );
  for (const rep of source.matchAll(/\{(\d+)(?:,(\d*))?\}/g))
    if (Number(rep[1]) > 1000 || Number(rep[2] ?? 0) > 1000)
      throw new RuleError(`${where}: repetition counts above 1000 are refused`);
  try {
    // 'g' lets lastIndex say where a search starts (the last content's end for R).
    return { source: text, regex: new RegExp(source, jsFlags + 'g'), relative };
  } catch (error) {
    throw new RuleError(`${where}: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses and ports

function resolveVar(text: string, vars: Map<string, string>, what: string, depth: number): string | null {
  if (!text.startsWith('$')) return null;
  if (depth >= MAX_VAR_DEPTH) throw new RuleError(`${what} "${text}": variables nest too deep`);
  const value = vars.get(text.slice(1));
  if (value === undefined) throw new RuleError(`${what} "${text}": undefined variable (define it in vars)`);
  return value;
}

/** Splits the inside of `[a, [b, c], !d]` at top-level commas. */
function splitList(text: string, what: string): string[] {
  const items: string[] = [];
  let level = 0;
  let current = '';
  for (const c of text) {
    if (c === '[') level++;
    if (c === ']') level--;
    if (level < 0) throw new RuleError(`${what}: unbalanced brackets`);
    if (c === ',' && level === 0) {
      items.push(current.trim());
      current = '';
    } else current += c;
  }
  if (level !== 0) throw new RuleError(`${what}: unbalanced brackets`);
  items.push(current.trim());
  if (items.some((item) => item === '')) throw new RuleError(`${what}: empty list item`);
  return items;
}

function parseAddress(text: string, vars: Map<string, string>, what: string, depth: number): AddressSet {
  const t = text.trim();
  const resolved = resolveVar(t, vars, what, depth);
  if (resolved !== null) return parseAddress(resolved, vars, what, depth + 1);
  if (t.startsWith('!')) return { kind: 'not', item: parseAddress(t.slice(1), vars, what, depth) };
  if (t === 'any') return { kind: 'any' };
  if (t.startsWith('[')) {
    if (!t.endsWith(']')) throw new RuleError(`${what} "${t}": unbalanced brackets`);
    return {
      kind: 'list',
      items: splitList(t.slice(1, -1), `${what} "${t}"`).map((i) => parseAddress(i, vars, what, depth)),
    };
  }
  const slash = t.indexOf('/');
  const addressText = slash < 0 ? t : t.slice(0, slash);
  const v6 = addressText.includes(':');
  const max = v6 ? 128 : 32;
  const prefixText = slash < 0 ? String(max) : t.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max)
    throw new RuleError(`${what} "${t}": prefix length must be 0–${max}`);
  const prefix = Number(prefixText);
  const words = new Int32Array(4);
  const masks = new Int32Array(4);
  if (!v6) {
    const a = parseIpv4(addressText);
    if (a < 0) throw new RuleError(`${what} "${t}": not an address, CIDR, list, variable or any`);
    words[0] = a | 0;
    masks[0] = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) | 0;
  } else {
    const bytes = new Uint8Array(16);
    if (!parseIpv6(addressText, bytes)) throw new RuleError(`${what} "${t}": not an IPv6 address or CIDR`);
    for (let i = 0; i < 4; i++) {
      words[i] = (bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) | bytes[4 * i + 3];
      const bits = Math.max(0, Math.min(32, prefix - 32 * i));
      masks[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
    }
  }
  for (let i = 0; i < 4; i++) words[i] &= masks[i];
  return { kind: 'cidr', v6, words, masks };
}

function parsePorts(text: string, vars: Map<string, string>, what: string, depth: number): PortSet {
  const t = text.trim();
  const resolved = resolveVar(t, vars, what, depth);
  if (resolved !== null) return parsePorts(resolved, vars, what, depth + 1);
  if (t.startsWith('!')) return { kind: 'not', item: parsePorts(t.slice(1), vars, what, depth) };
  if (t === 'any') return { kind: 'any' };
  if (t.startsWith('[')) {
    if (!t.endsWith(']')) throw new RuleError(`${what} "${t}": unbalanced brackets`);
    return {
      kind: 'list',
      items: splitList(t.slice(1, -1), `${what} "${t}"`).map((i) => parsePorts(i, vars, what, depth)),
    };
  }
  const m = /^(\d{1,5})?(:)?(\d{1,5})?$/.exec(t);
  if (!m || (m[1] === undefined && m[3] === undefined) || (m[2] === undefined && m[3] !== undefined))
    throw new RuleError(
      `${what} "${t}": must be a port 80, a range 1024:65535, :1023 or 1024:, a list or any`,
    );
  const lo = m[1] === undefined ? 0 : Number(m[1]);
  const hi = m[2] === undefined ? lo : m[3] === undefined ? 65535 : Number(m[3]);
  if (lo > 65535 || hi > 65535) throw new RuleError(`${what} "${t}": ports are 0–65535`);
  if (lo > hi) throw new RuleError(`${what} "${t}": the range starts after it ends`);
  return { kind: 'range', lo, hi };
}

/**
 * Does `set` contain the address? IPv4: `v4` (uint32), IPv6: the 16 bytes at `bytes[at]`. Used on
 * the candidate path (rules whose contents the automaton saw), allocation-free.
 */
export function addressMatches(
  set: AddressSet,
  v6: boolean,
  v4: number,
  bytes: Uint8Array,
  at: number,
): boolean {
  switch (set.kind) {
    case 'any':
      return true;
    case 'not':
      return !addressMatches(set.item, v6, v4, bytes, at);
    case 'list':
      for (const item of set.items) if (addressMatches(item, v6, v4, bytes, at)) return true;
      return false;
    case 'cidr':
      if (set.v6 !== v6) return false;
      if (!v6) return ((v4 & set.masks[0]) | 0) === set.words[0];
      for (let i = 0; i < 4; i++) {
        const p = at + 4 * i;
        const word = (bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3];
        if ((word & set.masks[i]) !== set.words[i]) return false;
      }
      return true;
  }
}

export function portMatches(set: PortSet, port: number): boolean {
  switch (set.kind) {
    case 'any':
      return true;
    case 'not':
      return !portMatches(set.item, port);
    case 'list':
      for (const item of set.items) if (portMatches(item, port)) return true;
      return false;
    case 'range':
      return port >= set.lo && port <= set.hi;
  }
}
