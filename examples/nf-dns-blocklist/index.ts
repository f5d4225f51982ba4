/**
 * dns-blocklist: drops DNS queries (UDP to port 53, over IPv4 or IPv6) that ask for a blocked
 * domain or, with `subdomains`, any name under one. Everything else passes. A third-party NF: it
 * lives outside nfvisor's `nfs/` and imports only `nfvisor/sdk` and `nfvisor/packet/*`, as any NF
 * built into an image with `nfvisor image build` does.
 *
 * The blocklist is compiled once in `create()`: each domain becomes its wire form (length-prefixed
 * lower-case labels) filed under a hash of its labels read from the right, so the packet path never
 * makes a string:
 *
 *   query  "ads.Example.COM"   labels at a0 a1 a2          (3)ads (7)Example (3)COM (0)
 *   hash   h2 = H(com)  h1 = H(com, example)  h0 = H(com, example, ads)
 *   match  the blocklist holds a hash hk whose wire form equals bytes[ak .. end), case-folded
 *
 * A query whose question cannot be read (header short, label past the end, a compression pointer
 * in the question, a name over 255 bytes) is dropped as `malformed`: a blocklist fails closed.
 */
import { DropReason } from 'nfvisor/packet/drop-reason';
import { Layer, PacketParser } from 'nfvisor/packet/packet-parser';
import { defineNf, type NfInstance } from 'nfvisor/sdk';

export interface DnsBlocklistConfig {
  domains: string[];
  subdomains: boolean;
}

export interface DnsBlocklistInstance extends NfInstance {
  /** Blocked names as compiled (lower case, no trailing dot), for `nfvisor` to print. */
  readonly plan: { domains: readonly string[]; subdomains: boolean };
}

const DNS_PORT = 53;
const DnsField = { Flags: 2, QuestionCount: 4, Questions: 12 } as const;
const DNS_HEADER_LENGTH = DnsField.Questions;
const FLAG_RESPONSE = 0x80;
/** Bytes after a question's name: QTYPE and QCLASS. */
const QUESTION_TAIL = 4;
const MAX_LABEL = 63;
const MAX_NAME = 255;
const MAX_LABELS = 128;
const POINTER_BITS = 0xc0;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function fnv(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, FNV_PRIME) >>> 0;
}

function lower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
}

/** Wire form and right-to-left hash of a domain written as text; throws for a bad name. */
function compileDomain(text: string, index: number): { wire: Uint8Array; hash: number; name: string } {
  const name = text.toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  if (name === '' || !labels.every((l) => LABEL.test(l)) || name.length + 1 > MAX_NAME)
    throw new Error(`dns-blocklist: domains[${index}] ${JSON.stringify(text)} is not a domain name`);
  const wire = new Uint8Array(name.length + 1);
  let at = 0;
  for (const label of labels) {
    wire[at++] = label.length;
    for (let i = 0; i < label.length; i++) wire[at++] = label.charCodeAt(i);
  }
  let hash = FNV_OFFSET;
  for (let l = labels.length - 1; l >= 0; l--) {
    hash = fnv(hash, labels[l].length);
    for (let i = 0; i < labels[l].length; i++) hash = fnv(hash, labels[l].charCodeAt(i));
  }
  return { wire, hash, name };
}

export default defineNf<DnsBlocklistConfig>({
  name: 'dns-blocklist',
  summary: 'Drops DNS queries for blocked domains (and, optionally, their subdomains).',
  outputs: ['out'],
  drops: {
    blocked: 'a DNS query asks for a blocked name',
    malformed: 'the frame does not parse, or a DNS query to port 53 has no readable question',
  },
  counters: {
    queries: { unit: 'packets', description: 'DNS queries inspected' },
    blocked: { unit: 'packets', description: 'DNS queries dropped for a blocked name' },
    other: { unit: 'packets', description: 'packets passed without inspection (not a DNS query)' },
  },
  config: {
    domains: {
      type: 'array',
      description: 'domains to block, e.g. ads.example.com',
      items: { type: 'string', description: 'a domain name' },
      maxItems: 100_000,
      default: [],
    },
    subdomains: {
      type: 'boolean',
      description: 'also block every name under a listed domain',
      default: true,
    },
  },
  create(config, ctx): DnsBlocklistInstance {
    const byHash = new Map<number, Uint8Array[]>();
    const names: string[] = [];
    config.domains.forEach((text, i) => {
      const { wire, hash, name } = compileDomain(text, i);
      const list = byHash.get(hash) ?? [];
      if (!list.some((w) => w.length === wire.length && w.every((b, j) => b === wire[j]))) list.push(wire);
      byHash.set(hash, list);
      names.push(name);
    });
    const subdomains = config.subdomains;
    const parser = new PacketParser();
    const labelAt = new Uint32Array(MAX_LABELS);
    const labelHash = new Uint32Array(MAX_LABELS);
    const queries = ctx.counter('queries');
    const blockedCounter = ctx.counter('blocked');
    const other = ctx.counter('other');
    const BLOCKED = ctx.dropReason('blocked');
    const MALFORMED = ctx.dropReason('malformed');
    const VERDICT_PASS = 0;
    const VERDICT_BLOCK = 1;
    const VERDICT_MALFORMED = 2;

    /** True when bytes[at .. at + wire.length) equal `wire` (case-folded). */
    function equalsWire(bytes: Uint8Array, at: number, wire: Uint8Array): boolean {
      for (let i = 0; i < wire.length; i++) if (lower(bytes[at + i]) !== wire[i]) return false;
      return true;
    }

    /** Reads the question at `at`; returns the verdict and, through `end`, where it stops. */
    let end = 0;
    function question(bytes: Uint8Array, at: number, limit: number): number {
      let p = at;
      let count = 0;
      for (;;) {
        if (p >= limit) return VERDICT_MALFORMED;
        const length = bytes[p];
        if (length === 0) break;
        if ((length & POINTER_BITS) !== 0 || length > MAX_LABEL || count === MAX_LABELS)
          return VERDICT_MALFORMED;
        if (p + 1 + length > limit || p + 1 + length - at > MAX_NAME) return VERDICT_MALFORMED;
        labelAt[count++] = p;
        p += 1 + length;
      }
      const nameEnd = p; // the root label's zero byte
      end = p + 1 + QUESTION_TAIL;
      if (end > limit) return VERDICT_MALFORMED;
      let hash = FNV_OFFSET;
      for (let l = count - 1; l >= 0; l--) {
        const labelStart = labelAt[l];
        const length = bytes[labelStart];
        hash = fnv(hash, length);
        for (let i = 1; i <= length; i++) hash = fnv(hash, lower(bytes[labelStart + i]));
        labelHash[l] = hash;
      }
      for (let l = subdomains ? count - 1 : 0; l >= 0; l--) {
        const candidates = byHash.get(labelHash[l]);
        if (candidates === undefined) continue;
        for (const wire of candidates)
          if (wire.length === nameEnd - labelAt[l] && equalsWire(bytes, labelAt[l], wire))
            return VERDICT_BLOCK;
      }
      return VERDICT_PASS;
    }

    function classify(bytes: Uint8Array, at: number, length: number): number {
      const dns = parser.payloadAt;
      const limit = dns + parser.payloadLength;
      if (limit - dns < DNS_HEADER_LENGTH || limit > at + length) return VERDICT_MALFORMED;
      const questions = (bytes[dns + DnsField.QuestionCount] << 8) | bytes[dns + DnsField.QuestionCount + 1];
      if (questions === 0) return VERDICT_MALFORMED;
      let p = dns + DNS_HEADER_LENGTH;
      for (let q = 0; q < questions; q++) {
        const verdict = question(bytes, p, limit);
        if (verdict !== VERDICT_PASS) return verdict;
        p = end;
      }
      return VERDICT_PASS;
    }

    return {
      plan: { domains: Object.freeze([...names]), subdomains },
      process(batch) {
        let inspected = 0;
        let blocked = 0;
        let passed = 0;
        for (let i = 0; i < batch.count; i++) {
          const at = batch.at[i];
          const length = batch.length[i];
          if (parser.attach(batch.bytes, at, length) !== DropReason.None) {
            batch.drop(i, MALFORMED);
            continue;
          }
          if (
            parser.l4 !== Layer.Udp ||
            parser.udp.dstPort() !== DNS_PORT ||
            (parser.payloadLength > DnsField.Flags &&
              (batch.bytes[parser.payloadAt + DnsField.Flags] & FLAG_RESPONSE) !== 0)
          ) {
            passed++;
            continue;
          }
          inspected++;
          const verdict = classify(batch.bytes, at, length);
          if (verdict === VERDICT_BLOCK) {
            blocked++;
            batch.drop(i, BLOCKED);
          } else if (verdict === VERDICT_MALFORMED) batch.drop(i, MALFORMED);
        }
        ctx.counters[queries] += inspected;
        ctx.counters[blockedCounter] += blocked;
        ctx.counters[other] += passed;
      },
    };
  },
});
