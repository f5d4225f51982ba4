/**
 * nat: source NAT with port translation (NAPT, RFC 3022) for IPv4 TCP, UDP and ICMP echo, with the
 * behaviour RFC 4787 (UDP), RFC 5382 (TCP) and RFC 5508 (ICMP) ask of a NAT:
 *
 * - **Endpoint-independent mapping** (RFC 4787 REQ-1): an inside endpoint (address, port or ICMP
 *   identifier) keeps one external port for every destination it talks to. The inside port is kept
 *   when it is free and in `portRange` (port preservation, REQ-2 says "not required", it helps).
 * - **Filtering** as configured (REQ-8): `endpoint-independent` lets any remote reach a live mapping;
 *   `address-dependent` (the default) only the remote addresses the inside endpoint has sent to.
 * - **Port forwarding** (`forward`): static mappings from an external port to an inside
 *   address:port, reachable from anywhere; the inside server's replies leave from that port.
 * - **ICMP errors** (destination unreachable, time exceeded, parameter problem) about a translated
 *   packet are translated both ways with their quoted IP and transport headers (RFC 5508 §4.2):
 *   the outer address, the quoted address and port, the quoted IP header checksum, the quoted
 *   transport checksum when the quote holds it (UDP and ICMP always, TCP when ≥ 18 bytes are quoted)
 *   and the ICMP checksum over all of it, each patched incrementally (RFC 1624).
 * - **Hairpinning** (REQ-9): an inside host sending to the external address and a mapped port
 *   reaches the inside endpoint behind it, seen as coming from its own external mapping.
 *
 * Checksums are patched incrementally; a UDP checksum of 0 stays 0.
 *
 * State, all typed arrays sized in `create()`:
 *
 *   mappings     FlowTable of (inside address, inside port, protocol) keys (other key fields 0)
 *   slot m:      extPort[m]   the external port of the mapping
 *                mapSeen[m]   time of the last packet either way (ns)
 *                isStatic[m]  1 for a `forward` rule's mapping (never expires, filters nothing)
 *   owner[p·65536 + port]     m + 1 of the mapping holding `port` for protocol p (0 tcp, 1 udp,
 *                             2 icmp), 0 when free
 *   peers        (address-dependent filtering) FlowTable of (inside address, inside port, remote
 *                address, protocol): the remotes each mapping may hear from
 *   slot s:      peerMapping[s]  the mapping slot, peerSeen[s] time of the last packet (ns)
 *
 * Invariants: owner[p·65536 + extPort[m]] === m + 1 for every live mapping m, and every non-zero
 * owner entry points at a live mapping — so no external port is ever held by two mappings.
 * FlowTable never frees a slot, so `tick(now)` rebuilds both tables from what has not expired
 * whenever something has; between ticks an idle mapping that speaks again keeps its port, and an
 * inbound packet for an idle one is refused.
 *
 * Not translated (later issues): inbound non-first fragments (no ports to find the mapping;
 * outbound ones get their address rewritten), ICMP queries other than echo, IPv6.
 */
import { formatIpv4, parseIpv4 } from '../../src/packet/address.js';
import { read16, write16, write32 } from '../../src/packet/bytes.js';
import {
  applyChecksumDelta,
  delta32,
  rewriteIpv4Address,
  rewriteL4Word,
  type L4ChecksumSite,
} from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey, FlowKeyWord } from '../../src/packet/flow-key.js';
import { FlowTable } from '../../src/packet/flow-table.js';
import { Icmpv4Field, Icmpv4Type } from '../../src/packet/icmpv4.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Field } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpField } from '../../src/packet/tcp.js';
import { UdpField } from '../../src/packet/udp.js';
import { defineNf, replicaOwnsPort, type NfInstance } from '../../src/sdk/index.js';

export interface NatForward {
  protocol: string;
  port: number;
  to: string;
}

export interface NatConfig {
  external: string;
  portRange: string;
  timeoutSeconds: number;
  maxFlows: number;
  inside: string;
  filtering: string;
  forward: NatForward[];
}

/** What `snapshot()` returns and `restore()` accepts (structured-cloneable). */
export interface NatSnapshot {
  version: 2;
  external: string;
  /** FLOW_KEY_WORDS words per dynamic mapping: (inside address, inside port, protocol). */
  keys: Uint32Array;
  ports: Uint16Array;
  lastSeen: Float64Array;
  /** FLOW_KEY_WORDS words per peer (address-dependent filtering): inside endpoint and remote address. */
  peerKeys: Uint32Array;
  peerLastSeen: Float64Array;
}

export interface NatInstance extends NfInstance {
  /** Mappings holding a port now (forwarding rules included). */
  activeFlows(): number;
  /** The external port mapped to an inside endpoint, or -1 (tests and `nfvisor` inspection). */
  externalPort(protocol: 'tcp' | 'udp' | 'icmp', insideAddress: string, insidePort: number): number;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: {
    external: string;
    portLo: number;
    portHi: number;
    inside: string;
    filtering: string;
    timeoutNs: number;
    capacity: number;
    forward: readonly { protocol: string; port: number; to: string }[];
  };
}

const PORTS = 65536;
const PROTO_TCP = 0;
const PROTO_UDP = 1;
const PROTO_ICMP = 2;
const PORT = /^([1-9][0-9]{0,4})$/;
const PREFIX = /^(0|[1-9][0-9]?)$/;
/** The quoted transport bytes RFC 792 guarantees in an ICMP error: enough for both ports. */
const QUOTED_L4_MIN = 8;
/** Bytes of a quoted TCP header needed to reach (and patch) its checksum. */
const QUOTED_TCP_WITH_CHECKSUM = TcpField.Checksum + 2;

function parseRange(text: string): [number, number] {
  const dash = text.indexOf('-');
  const lo = dash < 0 ? text : text.slice(0, dash);
  const hi = dash < 0 ? text : text.slice(dash + 1);
  if (!PORT.test(lo) || !PORT.test(hi) || Number(lo) > 65535 || Number(hi) > 65535)
    throw new Error(`portRange: must be "lo-hi" with ports 1–65535 (got "${text}")`);
  if (Number(lo) > Number(hi)) throw new Error(`portRange: range starts after it ends (got "${text}")`);
  return [Number(lo), Number(hi)];
}

/** [address, mask] as int32, or null for 'any'. */
function parseInside(text: string): [number, number] | null {
  if (text === 'any') return null;
  const slash = text.indexOf('/');
  const address = parseIpv4(slash < 0 ? text : text.slice(0, slash));
  const prefixText = slash < 0 ? '32' : text.slice(slash + 1);
  if (address < 0 || !PREFIX.test(prefixText) || Number(prefixText) > 32)
    throw new Error(`inside: must be an IPv4 CIDR such as 10.0.0.0/8, or any (got "${text}")`);
  const prefix = Number(prefixText);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) | 0;
  if ((address & mask) !== (address | 0))
    throw new Error(`inside: "${text}" has bits set beyond its /${prefix} prefix`);
  return [address | 0, mask];
}

/** "a.b.c.d:port" → [address as int32, port]. */
function parseEndpoint(text: string, field: string): [number, number] {
  const colon = text.lastIndexOf(':');
  const address = colon < 0 ? -1 : parseIpv4(text.slice(0, colon));
  const port = colon < 0 ? '' : text.slice(colon + 1);
  if (address < 0 || !PORT.test(port) || Number(port) > 65535)
    throw new Error(`${field}: must be "address:port" such as 10.0.0.5:80 (got "${text}")`);
  return [address | 0, Number(port)];
}

/** A big-endian 32-bit word as int32 (never a heap number). */
function read32s(b: Uint8Array, at: number): number {
  return (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
}

function protoIndex(protocol: number): number {
  return protocol === IpProtocol.Tcp
    ? PROTO_TCP
    : protocol === IpProtocol.Udp
      ? PROTO_UDP
      : protocol === IpProtocol.Icmp
        ? PROTO_ICMP
        : -1;
}

const PROTOCOL_OF_INDEX = [IpProtocol.Tcp, IpProtocol.Udp, IpProtocol.Icmp];

function isIcmpError(type: number): boolean {
  return (
    type === Icmpv4Type.DestinationUnreachable ||
    type === Icmpv4Type.TimeExceeded ||
    type === Icmpv4Type.ParameterProblem
  );
}

/**
 * Writes a 16-bit word inside an ICMP message and returns the RFC 1624 delta it makes to the
 * ICMP checksum (which covers the whole message).
 */
function setWord(bytes: Uint8Array, at: number, value: number): number {
  const old = read16(bytes, at);
  write16(bytes, at, value);
  return (~old & 0xffff) + value;
}

export default defineNf<NatConfig>({
  name: 'nat',
  summary:
    'Source NAT (NAPT) for IPv4 TCP, UDP, ICMP: endpoint-independent mapping, port forwarding, hairpinning.',
  outputs: ['out'],
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length, IP or ICMP checksum)',
    no_mapping: 'an inbound packet (or ICMP error) to the external address that belongs to no live mapping',
    filtered:
      'an inbound packet from a remote address the mapped inside endpoint has not sent to (address-dependent filtering)',
    ports_exhausted: 'a new mapping found every port of the range taken',
    table_full: 'a new mapping (or remote of a mapping) found its table full (maxFlows)',
    unsupported:
      'IPv4 that cannot be translated: protocols other than TCP/UDP/ICMP, ICMP other than echo and errors, an ICMP error quoting such a packet',
    fragment: 'an inbound non-first fragment (it carries no ports to find its mapping)',
  },
  counters: {
    translated_out: { unit: 'packets', description: 'outbound packets rewritten to the external address' },
    translated_in: { unit: 'packets', description: 'inbound packets rewritten back to an inside host' },
    hairpinned: {
      unit: 'packets',
      description: 'inside-to-inside packets sent to the external address, translated both ways',
    },
    icmp_errors: {
      unit: 'packets',
      description: 'ICMP errors translated with their quoted header (either way)',
    },
    new_mappings: { unit: 'flows', description: 'inside endpoints given an external port' },
    expired: { unit: 'flows', description: 'mappings whose port was freed after the idle timeout' },
    passed_through: {
      unit: 'packets',
      description: 'packets neither outbound nor inbound (non-IPv4, or not from inside), sent on unchanged',
    },
  },
  config: {
    external: { type: 'string', description: 'the IPv4 address inside hosts are translated to' },
    portRange: {
      type: 'string',
      default: '1024-65535',
      description: 'external ports (and ICMP identifiers) to allocate, "lo-hi"',
    },
    timeoutSeconds: {
      type: 'integer',
      default: 300,
      minimum: 1,
      maximum: 86400,
      description: 'idle time after which a mapping (and a remote it may hear from) is forgotten',
    },
    maxFlows: {
      type: 'integer',
      default: 65536,
      minimum: 1,
      maximum: 1 << 22,
      description: 'mappings kept at most (and, with address-dependent filtering, remote addresses)',
    },
    inside: {
      type: 'string',
      default: 'any',
      description: 'IPv4 CIDR of the hosts to translate; any = every source but the external address',
    },
    filtering: {
      type: 'string',
      enum: ['endpoint-independent', 'address-dependent'],
      default: 'address-dependent',
      description:
        'who may reach a mapping from outside (RFC 4787 §5): any remote, or only addresses the inside endpoint has sent to',
    },
    forward: {
      type: 'array',
      default: [],
      maxItems: 4096,
      description: 'port forwarding (destination NAT): static mappings reachable from any remote',
      items: {
        type: 'object',
        description: 'one forwarded port',
        properties: {
          protocol: { type: 'string', enum: ['tcp', 'udp'], description: 'tcp or udp' },
          port: { type: 'integer', minimum: 1, maximum: 65535, description: 'the external port' },
          to: { type: 'string', description: 'the inside "address:port" it leads to' },
        },
      },
    },
  },
  translation(config) {
    const [portLo, portHi] = parseRange(config.portRange);
    return { address: config.external, portLo, portHi };
  },
  create(config, ctx): NatInstance {
    const externalU = parseIpv4(config.external);
    if (externalU < 0) throw new Error(`external: not an IPv4 address (got "${config.external}")`);
    const external = externalU | 0;
    const [portLo, portHi] = parseRange(config.portRange);
    const rangeSize = portHi - portLo + 1;
    // With replicas each hands out its own share of the range: the host steers a reply to the
    // replica owning its port (NfDefinition.translation).
    const owns = (port: number): boolean => replicaOwnsPort(port, portLo, ctx.replica, ctx.replicas);
    let ownedPorts = 0;
    for (let port = portLo; port <= portHi; port++) if (owns(port)) ownedPorts++;
    if (ownedPorts === 0)
      throw new Error(`portRange: ${rangeSize} ports cannot be shared by ${ctx.replicas} replicas`);
    const inside = parseInside(config.inside);
    const insideAddr = inside?.[0] ?? 0;
    const insideMask = inside?.[1] ?? 0;
    const anyInside = inside === null;
    const isInside = (address: number): boolean =>
      address !== external && (anyInside || (address & insideMask) === insideAddr);
    const timeoutNs = config.timeoutSeconds * 1e9;
    const maxFlows = config.maxFlows;
    const addressDependent = config.filtering === 'address-dependent';

    // Forwarding rules, checked and compiled: p, external port, inside address, inside port.
    const forwards: { p: number; port: number; address: number; insidePort: number }[] = [];
    config.forward.forEach((rule, i) => {
      const p = rule.protocol === 'tcp' ? PROTO_TCP : PROTO_UDP;
      const [address, insidePort] = parseEndpoint(rule.to, `forward[${i}].to`);
      if (!isInside(address))
        throw new Error(`forward[${i}].to: ${rule.to} is not an inside address (inside: ${config.inside})`);
      for (const [j, other] of forwards.entries()) {
        if (other.p === p && other.port === rule.port)
          throw new Error(
            `forward[${i}].port: ${rule.protocol} port ${rule.port} is already forwarded by forward[${j}]`,
          );
        if (other.p === p && other.address === address && other.insidePort === insidePort)
          throw new Error(
            `forward[${i}].to: ${rule.to} is already the target of forward[${j}] (one external port per inside endpoint)`,
          );
      }
      forwards.push({ p, port: rule.port, address, insidePort });
    });
    if (forwards.length > maxFlows)
      throw new Error(`forward: ${forwards.length} rules exceed maxFlows ${maxFlows}`);

    // A mapping holds a port: there can never be more than 3 protocols × 65,536 of them, however
    // large maxFlows is (maxFlows bounds the remotes as well, which are not so limited).
    const mappings = new FlowTable(Math.min(maxFlows, 3 * PORTS) * 2);
    const extPort = new Uint16Array(mappings.capacity);
    const mapSeen = new Float64Array(mappings.capacity);
    const isStatic = new Uint8Array(mappings.capacity);
    const owner = new Int32Array(3 * PORTS);
    /** Owned ports inside portRange, per protocol: the range is exhausted when this reaches ownedPorts. */
    const portsUsed = new Int32Array(3);
    const cursor = new Int32Array(3).fill(portLo);
    const peers = new FlowTable(addressDependent ? maxFlows * 2 : 16);
    const peerMapping = new Int32Array(peers.capacity);
    const peerSeen = new Float64Array(peers.capacity);

    // L4 checksums are not verified: a forwarding NF passes a segment's checksum on (patched
    // incrementally where it rewrites), as routers and netfilter do; the end host verifies it.
    // Header checks — lengths, IPv4 header checksum, options, the ICMP checksum — still apply.
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const mapKey = new FlowKey();
    const peerKey = new FlowKey();
    const scratch = new FlowKey();
    const site: L4ChecksumSite = { at: -1, udp: false };
    const noL4: L4ChecksumSite = { at: -1, udp: false };
    const out = ctx.output('out');
    const dMalformed = ctx.dropReason('malformed');
    const dNoMapping = ctx.dropReason('no_mapping');
    const dFiltered = ctx.dropReason('filtered');
    const dExhausted = ctx.dropReason('ports_exhausted');
    const dTableFull = ctx.dropReason('table_full');
    const dUnsupported = ctx.dropReason('unsupported');
    const dFragment = ctx.dropReason('fragment');
    const cOut = ctx.counter('translated_out');
    const cIn = ctx.counter('translated_in');
    const cHairpin = ctx.counter('hairpinned');
    const cIcmpErrors = ctx.counter('icmp_errors');
    const cNew = ctx.counter('new_mappings');
    const cExpired = ctx.counter('expired');
    const cPassed = ctx.counter('passed_through');
    let loggedExhausted = false;
    /** Why the last `mapOutbound`/`mapInbound` failed (a drop reason id). */
    let failure = 0;
    /** Mappings made during the current batch (counted once per batch). */
    let newMappings = 0;

    const insideAddressOf = (m: number): number =>
      mappings.keys[m * FLOW_KEY_WORDS + FlowKeyWord.Src + 3] | 0;
    const insidePortOf = (m: number): number => mappings.keys[m * FLOW_KEY_WORDS + FlowKeyWord.Ports] >>> 16;

    /** A free port for protocol `p`, preferring `wanted`; -1 when the range is full. */
    function allocatePort(p: number, wanted: number): number {
      if (portsUsed[p] >= ownedPorts) return -1;
      const base = p * PORTS;
      if (wanted >= portLo && wanted <= portHi && owns(wanted) && owner[base + wanted] === 0) return wanted;
      let port = cursor[p];
      for (let n = 0; n < rangeSize; n++) {
        if (owner[base + port] === 0 && owns(port)) {
          cursor[p] = port === portHi ? portLo : port + 1;
          return port;
        }
        port = port === portHi ? portLo : port + 1;
      }
      return -1;
    }

    /** Stores a mapping (key in `k`) holding `port`; returns its slot or -1. */
    function addMapping(k: FlowKey, p: number, port: number, seen: number, fixed: number): number {
      const m = mappings.insert(k, k.hash());
      if (m < 0) return -1;
      extPort[m] = port;
      mapSeen[m] = seen;
      isStatic[m] = fixed;
      owner[p * PORTS + port] = m + 1;
      if (port >= portLo && port <= portHi && owns(port)) portsUsed[p]++;
      return m;
    }

    /** Stores a remote address mapping `m` may hear from (key in `k`); returns its slot or -1. */
    function addPeer(k: FlowKey, hash: number, m: number, seen: number): number {
      if (peers.size >= maxFlows) return -1;
      const s = peers.insert(k, hash);
      if (s < 0) return -1;
      peerMapping[s] = m;
      peerSeen[s] = seen;
      return s;
    }

    /**
     * The mapping of inside endpoint (src, insidePort) for a packet to `remote`, made if new, with
     * `remote` recorded as a peer (address-dependent filtering). Returns the slot, or -1 with
     * `failure` set.
     */
    function mapOutbound(
      src: number,
      remote: number,
      protocol: number,
      p: number,
      insidePort: number,
      now: number,
    ): number {
      let peerHash = 0;
      if (addressDependent) {
        // Fast path: a known (endpoint, remote) pair leads straight to its mapping.
        peerKey.setV4(src, remote, protocol, insidePort, 0);
        peerHash = peerKey.hash();
        const s = peers.find(peerKey, peerHash);
        if (s >= 0) {
          const m = peerMapping[s];
          peerSeen[s] = now;
          mapSeen[m] = now;
          return m;
        }
      }
      return mapOutboundSlow(src, protocol, p, insidePort, peerHash, now);
    }

    /**
     * mapOutbound past its fast path (no known peer): finds or makes the endpoint's mapping and
     * records the peer. Apart so that the fast path stays small enough for V8 to inline.
     */
    function mapOutboundSlow(
      src: number,
      protocol: number,
      p: number,
      insidePort: number,
      peerHash: number,
      now: number,
    ): number {
      mapKey.setV4(src, 0, protocol, insidePort, 0);
      let m = mappings.find(mapKey, mapKey.hash());
      if (m < 0) {
        if (mappings.size >= maxFlows) {
          failure = dTableFull;
          return -1;
        }
        const port = allocatePort(p, insidePort);
        if (port < 0) {
          failure = dExhausted;
          if (!loggedExhausted) {
            loggedExhausted = true;
            ctx.log(`ports ${portLo}-${portHi} exhausted for a new mapping of ${mapKey.toString()}`);
          }
          return -1;
        }
        m = addMapping(mapKey, p, port, now, 0);
        if (m < 0) {
          failure = dTableFull;
          return -1;
        }
        newMappings++;
      }
      if (addressDependent && isStatic[m] === 0 && addPeer(peerKey, peerHash, m, now) < 0) {
        failure = dTableFull;
        return -1;
      }
      mapSeen[m] = now;
      return m;
    }

    /**
     * The live mapping holding external `port` of protocol `p` that `remote` may reach, refreshed;
     * -1 with `failure` set when there is none or filtering refuses `remote`.
     */
    function mapInbound(p: number, port: number, remote: number, now: number): number {
      const m = owner[p * PORTS + port] - 1;
      if (m < 0 || (isStatic[m] === 0 && now - mapSeen[m] > timeoutNs)) {
        failure = dNoMapping;
        return -1;
      }
      if (addressDependent && isStatic[m] === 0) {
        peerKey.setV4(insideAddressOf(m), remote, PROTOCOL_OF_INDEX[p], insidePortOf(m), 0);
        const s = peers.find(peerKey, peerKey.hash());
        if (s < 0 || now - peerSeen[s] > timeoutNs) {
          failure = dFiltered;
          return -1;
        }
        peerSeen[s] = now;
      }
      mapSeen[m] = now;
      return m;
    }

    /**
     * Translates an ICMP error (message at `icmpAt`, `icmpLength` bytes, checksum already verified)
     * whose quoted packet belongs to a mapping. Inbound, the quote is a packet the NAT sent out
     * (source = external:mapped port); outbound, one it delivered in (destination = inside:port).
     * Returns -1 when translated, else the drop reason.
     */
    function translateIcmpError(
      bytes: Uint8Array,
      ipAt: number,
      icmpAt: number,
      icmpLength: number,
      inbound: boolean,
      now: number,
    ): number {
      const q = icmpAt + Icmpv4Field.Payload;
      const quoted = icmpLength - Icmpv4Field.Payload;
      if (quoted < 20 || bytes[q] >> 4 !== 4) return dUnsupported;
      const qHeader = (bytes[q] & 0x0f) * 4;
      if (qHeader < 20 || quoted < qHeader + QUOTED_L4_MIN) return dUnsupported;
      // A quoted later fragment has no ports.
      if (((bytes[q + Ipv4Field.FlagsFragment] & 0x1f) | bytes[q + Ipv4Field.FlagsFragment + 1]) !== 0)
        return dUnsupported;
      const protocol = bytes[q + Ipv4Field.Protocol];
      const p = protoIndex(protocol);
      if (p < 0) return dUnsupported;
      const l4 = q + qHeader;
      const l4Quoted = quoted - qHeader;
      if (p === PROTO_ICMP) {
        const type = bytes[l4 + Icmpv4Field.Type];
        if (type !== Icmpv4Type.EchoRequest && type !== Icmpv4Type.EchoReply) return dUnsupported;
      }
      // The quoted address and port to translate: our side of the quoted packet.
      const addrAt = q + (inbound ? Ipv4Field.Src : Ipv4Field.Dst);
      const portAt =
        p === PROTO_ICMP ? l4 + Icmpv4Field.Identifier : l4 + (inbound ? TcpField.SrcPort : TcpField.DstPort);
      const quotedAddr = read32s(bytes, addrAt);
      const quotedPort = read16(bytes, portAt);
      let m: number;
      let newAddr: number;
      let newPort: number;
      if (inbound) {
        if (quotedAddr !== external) return dNoMapping;
        // Filtering applies to the quoted packet's destination: the remote the mapping sent to.
        m = mapInbound(p, quotedPort, read32s(bytes, q + Ipv4Field.Dst), now);
        if (m < 0) return failure;
        newAddr = insideAddressOf(m);
        newPort = insidePortOf(m);
      } else {
        scratch.setV4(quotedAddr, 0, protocol, quotedPort, 0);
        m = mappings.find(scratch, scratch.hash());
        if (m < 0) return dNoMapping;
        newAddr = external;
        newPort = extPort[m];
      }
      const addrDelta = delta32(quotedAddr, newAddr);
      const portDelta = (~quotedPort & 0xffff) + newPort;
      // Every word changed inside the ICMP message adds to the ICMP checksum's delta.
      let icmpDelta = addrDelta + portDelta;
      const qChecksumAt = q + Ipv4Field.Checksum;
      icmpDelta += setWord(bytes, qChecksumAt, applyChecksumDelta(read16(bytes, qChecksumAt), addrDelta));
      write32(bytes, addrAt, newAddr);
      // The quoted transport checksum, when the quote holds it: TCP/UDP cover the pseudo-header (the
      // address) and the port, ICMP echo only the identifier. A quoted UDP checksum of 0 stays 0.
      let l4ChecksumAt = -1;
      let l4Delta = portDelta;
      if (p === PROTO_TCP) {
        if (l4Quoted >= QUOTED_TCP_WITH_CHECKSUM) l4ChecksumAt = l4 + TcpField.Checksum;
        l4Delta += addrDelta;
      } else if (p === PROTO_UDP) {
        if (read16(bytes, l4 + UdpField.Checksum) !== 0) l4ChecksumAt = l4 + UdpField.Checksum;
        l4Delta += addrDelta;
      } else l4ChecksumAt = l4 + Icmpv4Field.Checksum;
      if (l4ChecksumAt >= 0) {
        const next = applyChecksumDelta(read16(bytes, l4ChecksumAt), l4Delta);
        icmpDelta += setWord(bytes, l4ChecksumAt, next === 0 && p === PROTO_UDP ? 0xffff : next);
      }
      write16(bytes, portAt, newPort);
      const icmpChecksumAt = icmpAt + Icmpv4Field.Checksum;
      write16(bytes, icmpChecksumAt, applyChecksumDelta(read16(bytes, icmpChecksumAt), icmpDelta));
      // The outer header: ICMP has no pseudo-header, so only the IPv4 header checksum follows.
      rewriteIpv4Address(
        bytes,
        ipAt,
        ipAt + (inbound ? Ipv4Field.Dst : Ipv4Field.Src),
        inbound ? insideAddressOf(m) : external,
        noL4,
      );
      return -1;
    }

    /** Adds the mappings of the `forward` rules (create, tick and restore). */
    function addStatics(): void {
      for (const f of forwards) {
        scratch.setV4(f.address, 0, PROTOCOL_OF_INDEX[f.p], f.insidePort, 0);
        addMapping(scratch, f.p, f.port, 0, 1);
      }
    }

    /**
     * Empties both tables and re-adds the static mappings, `n` dynamic mappings and `np` peers from
     * the arrays given (tick and restore). Returns the mappings that could not be re-added.
     */
    function rebuild(
      keys: Uint32Array,
      ports: Uint16Array,
      seen: Float64Array,
      n: number,
      pKeys: Uint32Array,
      pSeen: Float64Array,
      np: number,
    ): number {
      mappings.clear();
      peers.clear();
      owner.fill(0);
      portsUsed.fill(0);
      addStatics();
      let lost = 0;
      for (let i = 0; i < n; i++) {
        scratch.readFrom(keys, i * FLOW_KEY_WORDS);
        const p = protoIndex(scratch.protocol());
        const port = ports[i];
        if (
          scratch.version() !== 4 ||
          p < 0 ||
          port < portLo ||
          port > portHi ||
          owner[p * PORTS + port] !== 0 ||
          mappings.size >= maxFlows ||
          mappings.find(scratch, scratch.hash()) >= 0 ||
          addMapping(scratch, p, port, seen[i], 0) < 0
        )
          lost++;
      }
      if (!addressDependent) return lost;
      for (let i = 0; i < np; i++) {
        peerKey.readFrom(pKeys, i * FLOW_KEY_WORDS);
        scratch.setV4(peerKey.srcV4(), 0, peerKey.protocol(), peerKey.srcPort(), 0);
        const m = mappings.find(scratch, scratch.hash());
        const hash = peerKey.hash();
        if (m >= 0 && isStatic[m] === 0 && peers.find(peerKey, hash) < 0) addPeer(peerKey, hash, m, pSeen[i]);
      }
      return lost;
    }

    /** Live dynamic mappings and peers as parallel arrays (those seen at or after `since`). */
    function collect(since: number): {
      keys: Uint32Array;
      ports: Uint16Array;
      seen: Float64Array;
      n: number;
      peerKeys: Uint32Array;
      peerSeen: Float64Array;
      np: number;
    } {
      const keys = new Uint32Array(mappings.size * FLOW_KEY_WORDS);
      const ports = new Uint16Array(mappings.size);
      const seen = new Float64Array(mappings.size);
      let n = 0;
      for (let m = 0; m < mappings.size; m++) {
        if (mappings.used[m] === 0 || isStatic[m] === 1 || mapSeen[m] < since) continue;
        // Word by word: a subarray per mapping was most of what a running chain allocated.
        for (let w = 0; w < FLOW_KEY_WORDS; w++)
          keys[n * FLOW_KEY_WORDS + w] = mappings.keys[m * FLOW_KEY_WORDS + w];
        ports[n] = extPort[m];
        seen[n] = mapSeen[m];
        n++;
      }
      const pKeys = new Uint32Array(peers.size * FLOW_KEY_WORDS);
      const pSeen = new Float64Array(peers.size);
      let np = 0;
      for (let s = 0; s < peers.size; s++) {
        if (peers.used[s] === 0 || peerSeen[s] < since) continue;
        for (let w = 0; w < FLOW_KEY_WORDS; w++)
          pKeys[np * FLOW_KEY_WORDS + w] = peers.keys[s * FLOW_KEY_WORDS + w];
        pSeen[np] = peerSeen[s];
        np++;
      }
      return {
        keys: keys.subarray(0, n * FLOW_KEY_WORDS),
        ports: ports.subarray(0, n),
        seen: seen.subarray(0, n),
        n,
        peerKeys: pKeys.subarray(0, np * FLOW_KEY_WORDS),
        peerSeen: pSeen.subarray(0, np),
        np,
      };
    }

    addStatics();

    const instance: NatInstance = {
      plan: {
        external: formatIpv4(externalU),
        portLo,
        portHi,
        inside: config.inside,
        filtering: config.filtering,
        timeoutNs,
        capacity: mappings.capacity,
        forward: config.forward.map((f) => ({ protocol: f.protocol, port: f.port, to: f.to })),
      },
      activeFlows: () => mappings.size,
      externalPort(protocol, insideAddress, insidePort) {
        const p = protocol === 'tcp' ? PROTO_TCP : protocol === 'udp' ? PROTO_UDP : PROTO_ICMP;
        scratch.setV4(parseIpv4(insideAddress), 0, PROTOCOL_OF_INDEX[p], insidePort, 0);
        const m = mappings.find(scratch, scratch.hash());
        return m < 0 ? -1 : extPort[m];
      },

      process(batch, now) {
        let translatedOut = 0;
        let translatedIn = 0;
        let hairpinned = 0;
        let icmpErrors = 0;
        let passed = 0;
        newMappings = 0;
        const bytes = batch.bytes;
        const words = parser.wordView(bytes);
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            batch.drop(i, dMalformed);
            ctx.malformed(parser.failedLayer, reason);
            continue;
          }
          if (parser.l3 !== Layer.Ipv4) {
            batch.send(i, out);
            passed++;
            continue;
          }
          const ipAt = parser.ipv4.at;
          const srcAt = ipAt + Ipv4Field.Src;
          const dstAt = ipAt + Ipv4Field.Dst;
          const src = words.getInt32(srcAt);
          const dst = words.getInt32(dstAt);
          const inbound = dst === external;
          const fromInside = isInside(src);
          // With inside = any, everything to the external address is inbound; hairpinning needs
          // an inside prefix to tell inside senders apart.
          const hairpin = inbound && fromInside && !anyInside;
          if (!inbound && !fromInside) {
            batch.send(i, out);
            passed++;
            continue;
          }
          const p = protoIndex(parser.protocol);
          if (p < 0) {
            batch.drop(i, dUnsupported);
            continue;
          }
          // Where the port (or ICMP identifier) to translate is, and the L4 checksum site.
          let srcPortAt = -1;
          let dstPortAt = -1;
          if (parser.l4 === Layer.Tcp) {
            const l4At = parser.tcp.at;
            srcPortAt = l4At + TcpField.SrcPort;
            dstPortAt = l4At + TcpField.DstPort;
            site.at = l4At + TcpField.Checksum;
            site.udp = false;
          } else if (parser.l4 === Layer.Udp) {
            const l4At = parser.udp.at;
            srcPortAt = l4At + UdpField.SrcPort;
            dstPortAt = l4At + UdpField.DstPort;
            site.at = l4At + UdpField.Checksum;
            site.udp = true;
          } else if (parser.l4 === Layer.Icmpv4) {
            const type = parser.icmpv4.type();
            if (isIcmpError(type)) {
              const failed = translateIcmpError(
                bytes,
                ipAt,
                parser.icmpv4.at,
                parser.icmpv4.length,
                inbound && !hairpin,
                now,
              );
              if (failed >= 0) batch.drop(i, failed);
              else icmpErrors++;
              continue;
            }
            // Echo requests leave, their replies come back; nothing else is a query we map.
            if (
              inbound
                ? type !== Icmpv4Type.EchoReply
                : type !== Icmpv4Type.EchoRequest && type !== Icmpv4Type.EchoReply
            ) {
              batch.drop(i, inbound ? dNoMapping : dUnsupported);
              continue;
            }
            srcPortAt = dstPortAt = parser.icmpv4.at + Icmpv4Field.Identifier;
            // ICMP has no pseudo-header: the address rewrite leaves its checksum alone.
            site.at = -1;
            site.udp = false;
          }
          if (srcPortAt < 0) {
            // A non-first fragment: no ports. Outbound, the address alone is rewritten (the first
            // fragment carries the translated port and the L4 checksum); inbound, the mapping is unknown.
            if (inbound) {
              batch.drop(i, dFragment);
              continue;
            }
            rewriteIpv4Address(bytes, ipAt, srcAt, external, noL4);
            batch.send(i, out);
            translatedOut++;
            continue;
          }
          const l4Site = site.at;
          const icmpSite = parser.l4 === Layer.Icmpv4 ? parser.icmpv4.at + Icmpv4Field.Checksum : -1;
          if (inbound && !(hairpin && p !== PROTO_ICMP)) {
            const m = mapInbound(p, words.getUint16(dstPortAt), src, now);
            if (m < 0) {
              batch.drop(i, failure);
              continue;
            }
            rewriteIpv4Address(bytes, ipAt, dstAt, insideAddressOf(m), site);
            site.at = l4Site < 0 ? icmpSite : l4Site;
            rewriteL4Word(bytes, dstPortAt, insidePortOf(m), site);
            batch.send(i, out);
            translatedIn++;
            continue;
          }
          // Outbound — or hairpinned: from inside to the external address, translated both ways.
          const m = mapOutbound(src, dst, parser.protocol, p, words.getUint16(srcPortAt), now);
          if (m < 0) {
            batch.drop(i, failure);
            continue;
          }
          let target = -1;
          if (hairpin) {
            target = mapInbound(p, read16(bytes, dstPortAt), external, now);
            if (target < 0) {
              batch.drop(i, failure);
              continue;
            }
          }
          rewriteIpv4Address(bytes, ipAt, srcAt, external, site);
          site.at = l4Site < 0 ? icmpSite : l4Site;
          rewriteL4Word(bytes, srcPortAt, extPort[m], site);
          if (hairpin) {
            rewriteIpv4Address(bytes, ipAt, dstAt, insideAddressOf(target), site);
            rewriteL4Word(bytes, dstPortAt, insidePortOf(target), site);
            hairpinned++;
          } else translatedOut++;
          batch.send(i, out);
        }
        const c = ctx.counters;
        c[cOut] += translatedOut;
        c[cIn] += translatedIn;
        c[cHairpin] += hairpinned;
        c[cIcmpErrors] += icmpErrors;
        c[cNew] += newMappings;
        c[cPassed] += passed;
      },

      tick(now) {
        let staleMappings = 0;
        let stalePeers = 0;
        for (let m = 0; m < mappings.size; m++)
          if (mappings.used[m] === 1 && isStatic[m] === 0 && now - mapSeen[m] > timeoutNs) staleMappings++;
        for (let s = 0; s < peers.size; s++)
          if (peers.used[s] === 1 && now - peerSeen[s] > timeoutNs) stalePeers++;
        if (staleMappings === 0 && stalePeers === 0) return;
        const live = collect(now - timeoutNs);
        const lost = rebuild(live.keys, live.ports, live.seen, live.n, live.peerKeys, live.peerSeen, live.np);
        ctx.counters[cExpired] += staleMappings + lost;
      },

      snapshot(): NatSnapshot {
        const live = collect(-Infinity);
        return {
          version: 2,
          external: formatIpv4(externalU),
          keys: live.keys.slice(),
          ports: live.ports.slice(),
          lastSeen: live.seen.slice(),
          peerKeys: live.peerKeys.slice(),
          peerLastSeen: live.peerSeen.slice(),
        };
      },

      restore(state) {
        const s = state as Partial<NatSnapshot> | null;
        if (
          s?.version !== 2 ||
          s.external !== formatIpv4(externalU) ||
          !(s.keys instanceof Uint32Array) ||
          !(s.ports instanceof Uint16Array) ||
          !(s.lastSeen instanceof Float64Array) ||
          !(s.peerKeys instanceof Uint32Array) ||
          !(s.peerLastSeen instanceof Float64Array) ||
          s.keys.length !== s.ports.length * FLOW_KEY_WORDS ||
          s.lastSeen.length !== s.ports.length ||
          s.peerKeys.length !== s.peerLastSeen.length * FLOW_KEY_WORDS
        ) {
          ctx.log('nat: ignored a snapshot of another version or external address');
          return;
        }
        const lost = rebuild(
          s.keys,
          s.ports,
          s.lastSeen,
          s.ports.length,
          s.peerKeys,
          s.peerLastSeen,
          s.peerLastSeen.length,
        );
        if (lost > 0) ctx.log(`nat: ${lost} mappings of the snapshot did not fit this configuration`);
      },
    };
    return instance;
  },
});
