/**
 * router: IPv4 and IPv6 forwarding by longest-prefix match, as a router's forwarding plane does it
 * (RFC 1812 §5.2–5.3, RFC 8200 §3): the destination address selects a route, the route a neighbor,
 * and the frame leaves with the neighbor's MAC as destination, the router's MAC as source, and the
 * TTL / hop limit one lower (IPv4 header checksum patched incrementally, RFC 1624).
 *
 * Routes: `{ prefix, nextHop }` where nextHop is a neighbor's address, `connected` (the prefix is
 * on the link: the destination itself must be a listed neighbor) or `blackhole` (drop). Neighbors
 * are the static ARP / NDP table: `{ address, mac }`. A neighbor inside a connected prefix becomes
 * a host route (/32, /128), as a FIB's attached host routes do; a connected destination that is no
 * neighbor is dropped as `no_neighbor` (no ARP or neighbor solicitation is sent).
 *
 * The forwarding table is a multibit trie of stride 4 per family, compiled once in `create()` into
 * one Int32Array (16 entries per node) with leaf pushing, so a lookup is at most 8 (IPv4) or 32
 * (IPv6) array reads and never compares strings:
 *
 *   node n, entry k (k = next 4 bits of the address):  trie[16n + k]
 *     > 0   child node index (the root is node 0 and never a child)
 *     = -1  no route
 *     ≤ -2  route (-2 - entry) matched: the longest prefix covering these bits
 *
 * Prefixes are inserted shortest first; a prefix whose length is not a multiple of 4 fills the
 * 2, 4 or 8 entries it covers (controlled prefix expansion), and a new child node starts as copies
 * of its parent entry (leaf pushing), so longer prefixes always override shorter ones.
 *
 * TTL / hop limit ≤ 1: with `address` (IPv4) / `address6` (IPv6) set, the packet is turned in
 * place into an ICMP / ICMPv6 time-exceeded message to its source (routed like any packet, at most
 * `icmpPerSecond`), quoting as much of it as fits in 576 / 1280 bytes (RFC 1812 §4.3.2.3, RFC 4443
 * §2.4); never about an ICMP error, a non-first IPv4 fragment or a martian. Otherwise it is dropped.
 *
 * Martians (RFC 1812 §5.3.7, RFC 4291): sources or destinations in 0/8, 127/8, 169.254/16,
 * 224/4 and 240/4 (multicast and broadcast are not routed), or ::, ::1, fe80::/10 and ff00::/8 —
 * dropped as `martian`. IPv4 options are forwarded unchanged (Record Route is not filled in).
 */
import {
  formatIpv4,
  formatIpv6,
  formatMac,
  parseIpv4,
  parseIpv6,
  parseMac,
} from '../../src/packet/address.js';
import { pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetField, EthernetView } from '../../src/packet/ethernet.js';
import { ICMPV4_HEADER_LENGTH, Icmpv4Type, Icmpv4View } from '../../src/packet/icmpv4.js';
import { ICMPV6_HEADER_LENGTH, Icmpv6View } from '../../src/packet/icmpv6.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { IPV4_MIN_HEADER_LENGTH, Ipv4Field, Ipv4View } from '../../src/packet/ipv4.js';
import { IPV6_HEADER_LENGTH, Ipv6Field, Ipv6View } from '../../src/packet/ipv6.js';
import { Layer } from '../../src/packet/packet-parser.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';

export interface RouterConfig {
  mac: string;
  address: string;
  address6: string;
  routes: { prefix: string; nextHop: string }[];
  neighbors: { address: string; mac: string }[];
  icmpPerSecond: number;
}

/** A route as compiled: config routes first (in config order), then neighbor host routes. */
export interface CompiledRoute {
  prefix: string;
  /** A neighbor index, CONNECTED (no neighbor: drop) or BLACKHOLE. */
  action: number;
  /** Where it came from: `routes[3]`, or `neighbors[1]` for a neighbor's host route. */
  source: string;
}

export interface RouterSnapshot {
  version: 1;
  /** Compiled route prefixes, in order: hits are restored only onto an identical table. */
  routes: string[];
  hits: Float64Array;
}

export interface RouterInstance extends NfInstance {
  /** The route index a destination address (text) matches, or -1. Control plane: allocates. */
  lookup(address: string): number;
  /** Packets forwarded by each compiled route. */
  readonly hits: Float64Array;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: {
    routes: readonly CompiledRoute[];
    neighbors: readonly { address: string; mac: string }[];
    /** Trie nodes (16 entries of 4 bytes each) per family. */
    nodesV4: number;
    nodesV6: number;
  };
}

export const CONNECTED = -1;
export const BLACKHOLE = -2;
const NO_ROUTE = -1;
const STRIDE = 4;
const FANOUT = 1 << STRIDE;
const MAX_ROUTES = 1_000_000;
const MAX_NEIGHBORS = 65536;
const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;
/** RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes; RFC 4443 §2.4(c): ICMPv6 at most 1280. */
const ICMP4_MAX = 576;
const ICMP6_MAX = 1280;
const ICMP6_TIME_EXCEEDED = 3;
/** ICMPv6 types below 128 are errors (RFC 4443 §2.1). */
const ICMP6_FIRST_INFO = 128;
const MAC_LENGTH = 6;
const NS_PER_SECOND = 1e9;

/** An address family's trie, grown while compiling and trimmed at the end. */
class TrieBuilder {
  nodes = new Int32Array(FANOUT * 64).fill(NO_ROUTE);
  count = 1;

  /** Inserts `length` leading bits of `address` (4 or 16 bytes) → entry value `value` (≤ -2). */
  insert(address: Uint8Array, length: number, value: number): void {
    let node = 0;
    let depth = 0;
    while (length > STRIDE * (depth + 1)) {
      const at = node * FANOUT + nibble(address, 0, depth);
      let entry = this.nodes[at];
      if (entry < 0) {
        entry = this.newNode(entry);
        this.nodes[at] = entry;
      }
      node = entry;
      depth++;
    }
    const rest = length - STRIDE * depth; // 0–4 bits of the prefix in this node
    const span = 1 << (STRIDE - rest);
    const first = nibble(address, 0, depth) & ~(span - 1) & (FANOUT - 1);
    for (let k = 0; k < span; k++) {
      // Shortest prefixes go in first, so no entry here has a child yet (children come from longer ones).
      this.nodes[node * FANOUT + first + k] = value;
    }
  }

  private newNode(fill: number): number {
    if ((this.count + 1) * FANOUT > this.nodes.length) {
      const grown = new Int32Array(this.nodes.length * 2);
      grown.set(this.nodes);
      this.nodes = grown;
    }
    const index = this.count++;
    this.nodes.fill(fill, index * FANOUT, (index + 1) * FANOUT);
    return index;
  }

  finish(): Int32Array {
    return this.nodes.slice(0, this.count * FANOUT);
  }
}

/** The `depth`-th 4-bit group of the address at `bytes[at]`. */
function nibble(bytes: Uint8Array, at: number, depth: number): number {
  const byte = bytes[at + (depth >>> 1)];
  return depth & 1 ? byte & 0x0f : byte >>> 4;
}

/** Longest-prefix match in a compiled trie: the route index, or -1. */
function lookupTrie(trie: Int32Array, bytes: Uint8Array, at: number, maxDepth: number): number {
  let node = 0;
  for (let depth = 0; depth < maxDepth; depth++) {
    const byte = bytes[at + (depth >>> 1)];
    const entry = trie[node * FANOUT + (depth & 1 ? byte & 0x0f : byte >>> 4)];
    if (entry < 0) return -2 - entry;
    node = entry;
  }
  return -1; // not reached: the last level holds only routes
}

interface ParsedPrefix {
  v6: boolean;
  bytes: Uint8Array;
  length: number;
}

function parseAddress(text: string): { v6: boolean; bytes: Uint8Array } | null {
  const v4 = parseIpv4(text);
  if (v4 >= 0) return { v6: false, bytes: Uint8Array.of(v4 >>> 24, v4 >>> 16, v4 >>> 8, v4) };
  const bytes = new Uint8Array(16);
  return parseIpv6(text, bytes) ? { v6: true, bytes } : null;
}

function parsePrefix(text: string, path: string): ParsedPrefix {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (address === null) throw new Error(`${path}: not an IPv4 or IPv6 CIDR (got "${text}")`);
  const max = address.v6 ? 128 : 32;
  const lengthText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!PREFIX_LENGTH.test(lengthText) || Number(lengthText) > max)
    throw new Error(`${path}: prefix length must be 0–${max} (got "${text}")`);
  const length = Number(lengthText);
  for (let bit = length; bit < max; bit++)
    if (address.bytes[bit >>> 3] & (0x80 >>> (bit & 7)))
      throw new Error(`${path}: "${text}" has bits set beyond its /${length} prefix`);
  return { ...address, length };
}

function prefixText(p: ParsedPrefix): string {
  const address = p.v6
    ? formatIpv6(p.bytes)
    : formatIpv4(((p.bytes[0] << 24) | (p.bytes[1] << 16) | (p.bytes[2] << 8) | p.bytes[3]) >>> 0);
  return `${address}/${p.length}`;
}

function covers(prefix: ParsedPrefix, address: Uint8Array): boolean {
  for (let bit = 0; bit < prefix.length; bit++) {
    const mask = 0x80 >>> (bit & 7);
    if ((prefix.bytes[bit >>> 3] & mask) !== (address[bit >>> 3] & mask)) return false;
  }
  return true;
}

/** IPv4 martian (RFC 1812 §5.3.7, RFC 3927 §7): 0/8, 127/8, 169.254/16, 224/4, 240/4 — by first octets. */
function martianV4(first: number, second: number): boolean {
  return first === 0 || first === 127 || first >= 224 || (first === 169 && second === 254);
}

/** IPv6 martian (RFC 4291): ::, ::1, fe80::/10, ff00::/8. */
function martianV6(b: Uint8Array, at: number): boolean {
  const first = b[at];
  if (first === 0xff) return true;
  if (first === 0xfe && (b[at + 1] & 0xc0) === 0x80) return true;
  if (first !== 0) return false;
  for (let i = 1; i < 15; i++) if (b[at + i] !== 0) return false;
  return b[at + 15] <= 1;
}

export default defineNf<RouterConfig>({
  name: 'router',
  summary:
    'IPv4/IPv6 longest-prefix-match forwarding: next-hop MAC rewrite, TTL decrement, ICMP time exceeded.',
  outputs: ['out'],
  drops: {
    malformed: 'the Ethernet or IP header is invalid (truncated, bad length, bad IPv4 header checksum)',
    not_ip: 'a frame that is neither IPv4 nor IPv6 (ARP and others are not routed)',
    martian:
      'a source or destination that is never routed: loopback, link-local, multicast, broadcast, unspecified',
    no_route: 'no route covers the destination',
    blackhole: 'the matching route is a blackhole route',
    no_neighbor: 'the destination is on a connected prefix but is not a listed neighbor',
    ttl_expired:
      'TTL or hop limit ≤ 1 and no ICMP time-exceeded was sent (no router address, rate limit, or not allowed)',
  },
  counters: {
    forwarded: { unit: 'packets', description: 'packets sent to their next hop' },
    no_route: { unit: 'packets', description: 'packets without a matching route' },
    ttl_expired: {
      unit: 'packets',
      description: 'packets whose TTL or hop limit ran out (ICMP sent or not)',
    },
    icmp_sent: { unit: 'packets', description: 'packets turned into ICMP / ICMPv6 time-exceeded messages' },
  },
  config: {
    mac: { type: 'string', description: 'the router’s MAC address: the source MAC of every frame it sends' },
    address: {
      type: 'string',
      default: 'none',
      description: 'the router’s IPv4 address, source of ICMP time-exceeded; none: send no ICMP',
    },
    address6: {
      type: 'string',
      default: 'none',
      description: 'the router’s IPv6 address, source of ICMPv6 time-exceeded; none: send no ICMPv6',
    },
    routes: {
      type: 'array',
      maxItems: MAX_ROUTES,
      description: 'the routing table (IPv4 and IPv6, any order; the longest matching prefix wins)',
      items: {
        type: 'object',
        description: 'one route',
        properties: {
          prefix: { type: 'string', description: 'destination CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32' },
          nextHop: {
            type: 'string',
            default: 'connected',
            description:
              'a neighbor’s address; connected: the destination itself is the neighbor; blackhole: drop',
          },
        },
      },
    },
    neighbors: {
      type: 'array',
      default: [],
      maxItems: MAX_NEIGHBORS,
      description: 'the static neighbor table (ARP / NDP): which MAC each next hop has',
      items: {
        type: 'object',
        description: 'one neighbor',
        properties: {
          address: { type: 'string', description: 'the neighbor’s IPv4 or IPv6 address' },
          mac: { type: 'string', description: 'its MAC address' },
        },
      },
    },
    icmpPerSecond: {
      type: 'integer',
      minimum: 0,
      maximum: 1_000_000,
      default: 100,
      description: 'ICMP time-exceeded messages sent per second at most (RFC 1812 §4.3.2.8)',
    },
  },
  create(config, ctx): RouterInstance {
    // ---- compile (control plane: may allocate and throw) ----
    const routerMac = new Uint8Array(MAC_LENGTH);
    if (!parseMac(config.mac, routerMac)) throw new Error(`mac: not a MAC address (got "${config.mac}")`);
    const address4 = new Uint8Array(4);
    const has4 = config.address !== 'none';
    if (has4) {
      const a = parseAddress(config.address);
      if (a === null || a.v6)
        throw new Error(`address: not an IPv4 address or none (got "${config.address}")`);
      address4.set(a.bytes);
    }
    const address6 = new Uint8Array(16);
    const has6 = config.address6 !== 'none';
    if (has6) {
      const a = parseAddress(config.address6);
      if (a === null || !a.v6)
        throw new Error(`address6: not an IPv6 address or none (got "${config.address6}")`);
      address6.set(a.bytes);
    }

    const n = config.neighbors.length;
    const neighborMacs = new Uint8Array(n * MAC_LENGTH);
    const neighborAddresses: { v6: boolean; bytes: Uint8Array }[] = [];
    const neighborIndex = new Map<string, number>();
    config.neighbors.forEach((neighbor, i) => {
      const a = parseAddress(neighbor.address);
      if (a === null)
        throw new Error(`neighbors[${i}].address: not an IPv4 or IPv6 address (got "${neighbor.address}")`);
      if (!parseMac(neighbor.mac, neighborMacs, i * MAC_LENGTH))
        throw new Error(`neighbors[${i}].mac: not a MAC address (got "${neighbor.mac}")`);
      const canonical = a.v6 ? formatIpv6(a.bytes) : neighbor.address;
      const earlier = neighborIndex.get(canonical);
      if (earlier !== undefined)
        throw new Error(`neighbors[${i}].address: ${canonical} is listed twice (neighbors[${earlier}])`);
      neighborIndex.set(canonical, i);
      neighborAddresses.push(a);
    });

    const routes: CompiledRoute[] = [];
    const parsed: ParsedPrefix[] = [];
    const seen = new Map<string, number>();
    config.routes.forEach((route, i) => {
      const path = `routes[${i}]`;
      const prefix = parsePrefix(route.prefix, `${path}.prefix`);
      const text = prefixText(prefix);
      const earlier = seen.get(text);
      if (earlier !== undefined)
        throw new Error(`${path}.prefix: ${text} is listed twice (routes[${earlier}])`);
      seen.set(text, i);
      let action: number;
      if (route.nextHop === 'connected') action = CONNECTED;
      else if (route.nextHop === 'blackhole') action = BLACKHOLE;
      else {
        const hop = parseAddress(route.nextHop);
        if (hop === null)
          throw new Error(
            `${path}.nextHop: must be an address, connected or blackhole (got "${route.nextHop}")`,
          );
        if (hop.v6 !== prefix.v6)
          throw new Error(`${path}.nextHop: ${route.nextHop} is not of the prefix's address family`);
        const index = neighborIndex.get(hop.v6 ? formatIpv6(hop.bytes) : route.nextHop);
        if (index === undefined)
          throw new Error(`${path}.nextHop: ${route.nextHop} is not a listed neighbor (add it to neighbors)`);
        action = index;
      }
      routes.push({ prefix: text, action, source: path });
      parsed.push(prefix);
    });
    // A neighbor on a connected prefix is reachable directly: a host route, unless one is configured.
    neighborAddresses.forEach((a, i) => {
      let best = -1;
      for (let r = 0; r < config.routes.length; r++)
        if (
          parsed[r].v6 === a.v6 &&
          covers(parsed[r], a.bytes) &&
          (best < 0 || parsed[r].length > parsed[best].length)
        )
          best = r;
      if (best < 0 || routes[best].action !== CONNECTED) return;
      const host = { ...a, length: a.v6 ? 128 : 32 };
      if (parsed[best].length === host.length) routes[best].action = i;
      else {
        routes.push({ prefix: prefixText(host), action: i, source: `neighbors[${i}]` });
        parsed.push(host);
      }
    });

    const order = parsed.map((_, r) => r).sort((x, y) => parsed[x].length - parsed[y].length);
    const builders = [new TrieBuilder(), new TrieBuilder()];
    for (const r of order) builders[parsed[r].v6 ? 1 : 0].insert(parsed[r].bytes, parsed[r].length, -2 - r);
    const trie4 = builders[0].finish();
    const trie6 = builders[1].finish();
    const action = Int32Array.from(routes, (r) => r.action);
    const hits = new Float64Array(routes.length);

    // ---- run (allocation-free) ----
    const eth = new EthernetView();
    const ip4 = new Ipv4View();
    const ip6 = new Ipv6View();
    const icmp4 = new Icmpv4View();
    const icmp6 = new Icmpv6View();
    const dMalformed = ctx.dropReason('malformed');
    const dNotIp = ctx.dropReason('not_ip');
    const dMartian = ctx.dropReason('martian');
    const dNoRoute = ctx.dropReason('no_route');
    const dBlackhole = ctx.dropReason('blackhole');
    const dNoNeighbor = ctx.dropReason('no_neighbor');
    const dExpired = ctx.dropReason('ttl_expired');
    const cForwarded = ctx.counter('forwarded');
    const cNoRoute = ctx.counter('no_route');
    const cExpired = ctx.counter('ttl_expired');
    const cIcmp = ctx.counter('icmp_sent');
    let icmpWindow = -1;
    let icmpInWindow = 0;

    /** The drop reason for route `r` of a packet, or the neighbor index (≥ 0) to send it to. */
    function resolve(r: number): number {
      if (r < 0) return -1 - dNoRoute;
      const a = action[r];
      if (a >= 0) return a;
      return -1 - (a === BLACKHOLE ? dBlackhole : dNoNeighbor);
    }

    /** Writes the next hop's MAC as destination and the router's as source. */
    function rewriteMacs(bytes: Uint8Array, frameAt: number, neighbor: number): void {
      for (let k = 0; k < MAC_LENGTH; k++) {
        bytes[frameAt + EthernetField.Dst + k] = neighborMacs[neighbor * MAC_LENGTH + k];
        bytes[frameAt + EthernetField.Src + k] = routerMac[k];
      }
    }

    function icmpAllowed(now: number): boolean {
      const window = Math.floor(now / NS_PER_SECOND);
      if (window !== icmpWindow) {
        icmpWindow = window;
        icmpInWindow = 0;
      }
      if (icmpInWindow >= config.icmpPerSecond) return false;
      icmpInWindow++;
      return true;
    }

    /**
     * Turns the IPv4 packet at `ipAt` into an ICMP time exceeded to its source, in place; returns
     * the neighbor to send it to, or a negative value when none may be sent.
     */
    function timeExceededV4(bytes: Uint8Array, ipAt: number, capacityEnd: number, now: number): number {
      if (!has4 || ip4.fragmentOffset() !== 0) return -1;
      const headerLength = ip4.headerLength();
      if (ip4.protocol() === IpProtocol.Icmp && ip4.payloadLength() > 0) {
        const type = bytes[ipAt + headerLength];
        if (type !== Icmpv4Type.EchoRequest && type !== Icmpv4Type.EchoReply && type < 13) return -1; // an error
      }
      const route = lookupTrie(trie4, bytes, ipAt + Ipv4Field.Src, 8);
      const neighbor = resolve(route);
      if (neighbor < 0) return -1;
      const overhead = IPV4_MIN_HEADER_LENGTH + ICMPV4_HEADER_LENGTH;
      const quote = Math.min(ip4.totalLength(), ICMP4_MAX - overhead, capacityEnd - ipAt - overhead);
      if (quote < Math.min(ip4.totalLength(), headerLength + 8) || !icmpAllowed(now)) return -1;
      bytes.copyWithin(ipAt + overhead, ipAt, ipAt + quote);
      const quotedSrc = ipAt + overhead + Ipv4Field.Src;
      ip4.attachUnchecked(bytes, ipAt, IPV4_MIN_HEADER_LENGTH);
      ip4.setVersionAndHeaderLength(IPV4_MIN_HEADER_LENGTH);
      ip4.setDscpEcn(0x30, 0); // precedence 6, internetwork control (RFC 1812 §4.3.2.5)
      ip4.setTotalLength(overhead + quote);
      ip4.setIdentification(0);
      ip4.setFragment(false, false, 0);
      ip4.setTtl(64);
      ip4.setProtocol(IpProtocol.Icmp);
      for (let k = 0; k < 4; k++) {
        bytes[ipAt + Ipv4Field.Src + k] = address4[k];
        bytes[ipAt + Ipv4Field.Dst + k] = bytes[quotedSrc + k];
      }
      ip4.fillChecksum();
      icmp4.attachUnchecked(bytes, ipAt + IPV4_MIN_HEADER_LENGTH, ICMPV4_HEADER_LENGTH + quote);
      icmp4.setType(Icmpv4Type.TimeExceeded);
      icmp4.setCode(0);
      icmp4.setIdentifier(0);
      icmp4.setSequence(0);
      icmp4.fillChecksum();
      return neighbor;
    }

    /** As timeExceededV4, for IPv6 (ICMPv6 type 3 code 0). */
    function timeExceededV6(bytes: Uint8Array, ipAt: number, capacityEnd: number, now: number): number {
      if (!has6) return -1;
      if (ip6.upperProtocol() === IpProtocol.Icmpv6 && ip6.fragmentOffset() === 0 && ip6.upperLength() > 0) {
        if (bytes[ip6.upperAt()] < ICMP6_FIRST_INFO) return -1; // an error message
      }
      const route = lookupTrie(trie6, bytes, ipAt + Ipv6Field.Src, 32);
      const neighbor = resolve(route);
      if (neighbor < 0) return -1;
      const overhead = IPV6_HEADER_LENGTH + ICMPV6_HEADER_LENGTH;
      const quote = Math.min(
        IPV6_HEADER_LENGTH + ip6.payloadLength(),
        ICMP6_MAX - overhead,
        capacityEnd - ipAt - overhead,
      );
      if (quote < IPV6_HEADER_LENGTH || !icmpAllowed(now)) return -1;
      bytes.copyWithin(ipAt + overhead, ipAt, ipAt + quote);
      ip6.attachUnchecked(bytes, ipAt, IPV6_HEADER_LENGTH);
      ip6.setVersionTrafficClassFlowLabel(0, 0);
      ip6.setPayloadLength(ICMPV6_HEADER_LENGTH + quote);
      ip6.setNextHeader(IpProtocol.Icmpv6);
      ip6.setHopLimit(64);
      ip6.setSrc(address6);
      ip6.setDst(bytes, ipAt + overhead + Ipv6Field.Src);
      icmp6.attachUnchecked(bytes, ipAt + IPV6_HEADER_LENGTH, ICMPV6_HEADER_LENGTH + quote);
      icmp6.setType(ICMP6_TIME_EXCEEDED);
      icmp6.setCode(0);
      icmp6.setIdentifier(0);
      icmp6.setSequence(0);
      icmp6.fillChecksum(
        pseudoHeaderSumV6(
          bytes,
          ipAt + Ipv6Field.Src,
          ipAt + Ipv6Field.Dst,
          IpProtocol.Icmpv6,
          ICMPV6_HEADER_LENGTH + quote,
        ),
      );
      return neighbor;
    }

    const instance: RouterInstance = {
      hits,
      plan: {
        routes,
        neighbors: config.neighbors.map((nb, i) => ({
          address: nb.address,
          mac: formatMac(neighborMacs, i * MAC_LENGTH),
        })),
        nodesV4: trie4.length / FANOUT,
        nodesV6: trie6.length / FANOUT,
      },

      lookup(text) {
        const a = parseAddress(text);
        if (a === null) return -1;
        return a.v6 ? lookupTrie(trie6, a.bytes, 0, 32) : lookupTrie(trie4, a.bytes, 0, 8);
      },

      process(batch, now) {
        let forwarded = 0;
        let noRoute = 0;
        let expired = 0;
        let icmpSent = 0;
        const bytes = batch.bytes;
        for (let i = 0; i < batch.count; i++) {
          const frameAt = batch.at[i];
          const length = batch.length[i];
          let reason: number = eth.attach(bytes, frameAt, length);
          let ipAt = 0;
          let v6 = false;
          if (reason === DropReason.None) {
            ipAt = eth.payloadAt();
            const type = eth.etherType();
            if (type === EtherType.Ipv4) reason = ip4.attach(bytes, ipAt, frameAt + length - ipAt);
            else if (type === EtherType.Ipv6) {
              v6 = true;
              reason = ip6.attach(bytes, ipAt, frameAt + length - ipAt);
            } else {
              batch.drop(i, dNotIp);
              continue;
            }
          }
          if (reason !== DropReason.None) {
            batch.drop(i, dMalformed);
            ctx.malformed(ipAt === 0 ? Layer.Ethernet : v6 ? Layer.Ipv6 : Layer.Ipv4, reason);
            continue;
          }
          let neighbor: number;
          let hops: number;
          if (!v6) {
            const src = ipAt + Ipv4Field.Src;
            const dst = ipAt + Ipv4Field.Dst;
            if (martianV4(bytes[src], bytes[src + 1]) || martianV4(bytes[dst], bytes[dst + 1])) {
              batch.drop(i, dMartian);
              continue;
            }
            const route = lookupTrie(trie4, bytes, dst, 8);
            neighbor = resolve(route);
            hops = ip4.ttl();
            if (neighbor >= 0 && hops > 1) hits[route]++;
          } else {
            if (martianV6(bytes, ipAt + Ipv6Field.Src) || martianV6(bytes, ipAt + Ipv6Field.Dst)) {
              batch.drop(i, dMartian);
              continue;
            }
            const route = lookupTrie(trie6, bytes, ipAt + Ipv6Field.Dst, 32);
            neighbor = resolve(route);
            hops = ip6.hopLimit();
            if (neighbor >= 0 && hops > 1) hits[route]++;
          }
          if (neighbor < 0) {
            batch.drop(i, -1 - neighbor); // the drop reason resolve() chose
            if (neighbor === -1 - dNoRoute) noRoute++;
            continue;
          }
          if (hops <= 1) {
            expired++;
            const capacityEnd = frameAt + batch.capacity;
            const back = v6
              ? timeExceededV6(bytes, ipAt, capacityEnd, now)
              : timeExceededV4(bytes, ipAt, capacityEnd, now);
            if (back < 0) {
              batch.drop(i, dExpired);
              continue;
            }
            const total = v6 ? IPV6_HEADER_LENGTH + ip6.payloadLength() : ip4.totalLength();
            batch.setLength(i, ipAt - frameAt + total);
            rewriteMacs(bytes, frameAt, back);
            icmpSent++;
            continue;
          }
          if (v6) ip6.setHopLimit(hops - 1);
          else ip4.decrementTtl();
          rewriteMacs(bytes, frameAt, neighbor);
          forwarded++;
        }
        const c = ctx.counters;
        c[cForwarded] += forwarded;
        c[cNoRoute] += noRoute;
        c[cExpired] += expired;
        c[cIcmp] += icmpSent;
      },

      snapshot(): RouterSnapshot {
        return { version: 1, routes: routes.map((r) => r.prefix), hits: hits.slice() };
      },

      restore(state) {
        const s = state as Partial<RouterSnapshot> | null;
        if (
          s?.version === 1 &&
          s.hits instanceof Float64Array &&
          Array.isArray(s.routes) &&
          s.routes.length === routes.length &&
          s.hits.length === routes.length &&
          s.routes.every((p, r) => p === routes[r].prefix)
        )
          hits.set(s.hits);
        else ctx.log('router: ignored a snapshot of another version or routing table');
      },
    };
    return instance;
  },
});
