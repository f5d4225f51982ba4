/**
 * Chain steering: which chain a packet from a port takes. Each chain may match on input port,
 * protocol, source and destination prefixes (v4 or v6) and port ranges; chains are tried in order
 * and the first match wins. Matches are compiled once into numbers; `classify` reads the parser's
 * views and allocates nothing.
 *
 * @example
 * const classifier = new Classifier([{ chain: 0, inPort: 0 }, { chain: 1, inPort: 0, protocol: 17 }]);
 * const chain = classifier.classify(parser, inputPort); // -1: no chain takes it
 */
import { Layer, type PacketParser } from '../packet/packet-parser.js';

export interface PrefixMatch {
  version: 4 | 6;
  /** The prefix's address: 16 bytes for v6, 4 for v4. */
  bytes: Uint8Array;
  prefixLength: number;
}

export interface MatchPlan {
  chain: number;
  inPort?: number;
  protocol?: number;
  src?: PrefixMatch;
  dst?: PrefixMatch;
  srcPort?: [number, number];
  dstPort?: [number, number];
}

export class Classifier {
  /**
   * The answer that needs no packet field, per input port id (the last entry: any port no match
   * names): the chain when the first match that applies to the port tests no field, -1 when none
   * applies, NEEDS_FIELDS when packets must be looked at. With the usual plan — chains told apart
   * by input port only — classify() is one array read per packet.
   */
  private readonly byPort: Int32Array;
  private readonly testsFields: boolean[];

  constructor(private readonly matches: readonly MatchPlan[]) {
    this.testsFields = matches.map(
      (m) => m.protocol !== undefined || !!m.src || !!m.dst || !!m.srcPort || !!m.dstPort,
    );
    const named = matches.map((m) => m.inPort ?? -1).filter((p) => Number.isInteger(p) && p >= 0);
    const ports = named.length === 0 ? 0 : Math.max(...named) + 1;
    this.byPort = new Int32Array(ports + 1);
    for (let p = 0; p <= ports; p++) {
      const first = matches.findIndex((m) => m.inPort === undefined || (p < ports && m.inPort === p));
      this.byPort[p] = first < 0 ? -1 : this.testsFields[first] ? NEEDS_FIELDS : matches[first].chain;
    }
  }

  /** The chain for the packet the parser holds (after a successful or failed attach), or -1. */
  classify(parser: PacketParser, inPort: number, parsed: boolean): number {
    const last = this.byPort.length - 1;
    const fixed = this.byPort[inPort >= 0 && inPort < last ? inPort : last];
    return fixed !== NEEDS_FIELDS ? fixed : this.classifyByFields(parser, inPort, parsed);
  }

  /** The matches in order, reading the packet's fields where a match tests them. */
  private classifyByFields(parser: PacketParser, inPort: number, parsed: boolean): number {
    for (let i = 0; i < this.matches.length; i++) {
      const m = this.matches[i];
      if (m.inPort !== undefined && m.inPort !== inPort) continue;
      if (!this.testsFields[i]) return m.chain;
      if (!parsed) continue;
      if (m.protocol !== undefined && m.protocol !== parser.protocol) continue;
      if (m.src && !prefixMatches(parser, m.src, true)) continue;
      if (m.dst && !prefixMatches(parser, m.dst, false)) continue;
      if (m.srcPort || m.dstPort) {
        const ports = l4Ports(parser);
        if (ports < 0) continue;
        if (m.srcPort && !inRange(ports >>> 16, m.srcPort)) continue;
        if (m.dstPort && !inRange(ports & 0xffff, m.dstPort)) continue;
      }
      return m.chain;
    }
    return -1;
  }
}

/** byPort's mark for "the first applicable match tests packet fields". */
const NEEDS_FIELDS = -2;

function inRange(port: number, range: [number, number]): boolean {
  return port >= range[0] && port <= range[1];
}

/** srcPort << 16 | dstPort of the innermost TCP/UDP header, or -1. */
function l4Ports(parser: PacketParser): number {
  if (parser.l4 === Layer.Tcp) return ((parser.tcp.srcPort() << 16) | parser.tcp.dstPort()) >>> 0;
  if (parser.l4 === Layer.Udp) return ((parser.udp.srcPort() << 16) | parser.udp.dstPort()) >>> 0;
  return -1;
}

function prefixMatches(parser: PacketParser, prefix: PrefixMatch, source: boolean): boolean {
  let bytes: Uint8Array;
  let at: number;
  if (prefix.version === 4) {
    if (parser.l3 !== Layer.Ipv4) return false;
    bytes = parser.ipv4.bytes;
    at = parser.ipv4.at + (source ? 12 : 16);
  } else {
    if (parser.l3 !== Layer.Ipv6) return false;
    bytes = parser.ipv6.bytes;
    at = source ? parser.ipv6.srcAt() : parser.ipv6.dstAt();
  }
  let bits = prefix.prefixLength;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[at + i] & mask) !== (prefix.bytes[i] & mask)) return false;
  }
  return true;
}
