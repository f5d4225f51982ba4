/**
 * firewall: a stateful first-match packet filter over IPv4 and IPv6, with the semantics of
 * iptables/nftables.
 *
 * Rules are compiled once, in `create()`, into parallel typed arrays (one entry per rule): CIDRs,
 * protocol, port ranges, TCP flag mask/value, ICMP type/code, input port and a connection-state mask
 * (`FirewallProgram`). A rule index (classify.ts) files each rule under its destination port, its
 * IPv4 destination or source /16, or a generic list, so a packet looks at a few short lists instead
 * of every rule, with the same first match as a linear scan. When no rule tests TCP flags or ICMP
 * type/code, the decision is also kept per connection and direction (for the state and input port
 * it was made for), so the packets of an established connection skip the rule index altogether.
 *
 * Connection tracking (conntrack.ts) gives every IP packet a state — new, established, related (an
 * ICMP error quoting a tracked connection), invalid — with netfilter's TCP state machine (no loose
 * pick-up: only a SYN opens a TCP connection) and per-state timeouts; an accepted packet creates or
 * updates its connection. A full table evicts the oldest un-replied connection, and with none
 * drops the new one as `conntrack_full`. Time comes from process(batch, now) and tick(now) (ns).
 *
 * `reject` (src/packet/reject.ts) rewrites the packet in place into a TCP RST or an ICMP/ICMPv6 port
 * unreachable and sends it out of `out`, back towards the sender. A later IP fragment follows the
 * verdict of its accepted first fragment (fragments.ts); unknown later fragments are dropped when
 * any rule looks past the IP header. Frames the parser refuses are dropped as `malformed`; frames
 * without IP are passed on and counted. Tunnels are not entered.
 */
import { parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag } from '../../src/packet/tcp.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { Icmpv4Type } from '../../src/packet/icmpv4.js';
import { Icmpv6Type } from '../../src/packet/icmpv6.js';
import {
  Conntrack,
  CtState,
  TCP_IGNORE,
  TCP_INVALID,
  TcpState,
  Timeout,
  TIMEOUT_SLOTS,
  tcpEvent,
  tcpNext,
} from './conntrack.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';
import { buildIndex } from './classify.js';
import { FragmentTable } from './fragments.js';
import { Rejecter } from '../../src/packet/reject.js';

/** One rule as written in the configuration (defaults filled: absent fields are 'any'). */
export interface FirewallRule {
  action: 'accept' | 'drop' | 'reject';
  /** CIDR (`10.0.0.0/8`, `2001:db8::/32`), a bare address (a /32 or /128), or 'any'. */
  src: string;
  dst: string;
  /** 'tcp', 'udp', 'icmp' (ICMPv6 over IPv6), a protocol number '0'–'255', or 'any'. */
  protocol: string;
  /** A port '80', a range '1024-65535', or 'any'. */
  srcPort: string;
  dstPort: string;
  /** TCP flags: 'SYN,!ACK' (listed flags set, '!' ones clear), 'SYN,ACK,RST/SYN' (mask/value), or 'any'. */
  tcpFlags?: string;
  /** ICMP (ICMPv6 over IPv6) type 0–255 or 'any'; needs protocol 'icmp'. */
  icmpType?: string;
  /** ICMP code 0–255 or 'any'; needs icmpType. */
  icmpCode?: string;
  /** Input port (host port id) the packet came from, or -1 for any. */
  inPort?: number;
  /** Connection states the packet must be in (any of them); empty for any. */
  state?: readonly string[];
}

/** Timeouts in seconds, netfilter's defaults. */
export interface FirewallTimeouts {
  synSent: number;
  synRecv: number;
  established: number;
  finWait: number;
  closeWait: number;
  lastAck: number;
  timeWait: number;
  close: number;
  udpUnreplied: number;
  udpReplied: number;
  icmp: number;
  generic: number;
}

export interface FirewallConfig {
  default: 'accept' | 'drop';
  rules: FirewallRule[];
  maxConnections: number;
  /** Multiplies every timeout (e.g. 0.001 to run netfilter's timeouts a thousand times faster). */
  timeoutScale: number;
  timeouts: FirewallTimeouts;
  /** First fragments remembered (accepted datagrams whose later fragments may follow). */
  maxFragmentedDatagrams: number;
  /** Seconds a first fragment's verdict holds for its later fragments (scaled by timeoutScale). */
  fragmentTimeout: number;
}

/** The compiled rule set: read-only to everything but `compileRules`. */
export interface FirewallProgram {
  readonly count: number;
  readonly action: Uint8Array;
  readonly family: Uint8Array;
  readonly v4Src: Int32Array;
  readonly v4SrcMask: Int32Array;
  readonly v4Dst: Int32Array;
  readonly v4DstMask: Int32Array;
  readonly v6Src: Int32Array;
  readonly v6SrcMask: Int32Array;
  readonly v6Dst: Int32Array;
  readonly v6DstMask: Int32Array;
  readonly protoV4: Int16Array;
  readonly protoV6: Int16Array;
  readonly ports: Uint8Array;
  readonly srcLo: Int32Array;
  readonly srcHi: Int32Array;
  readonly dstLo: Int32Array;
  readonly dstHi: Int32Array;
  /** TCP flags: the rule matches when (flags & tcpMask[r]) === tcpValue[r] (mask 0: no flag test). */
  readonly tcpMask: Uint8Array;
  readonly tcpValue: Uint8Array;
  /** ICMP type and code, -1 for any. */
  readonly icmpType: Int16Array;
  readonly icmpCode: Int16Array;
  /** Input port, -1 for any. */
  readonly inPort: Int32Array;
  /** Connection states (CtState bits) the rule accepts, 0 for any. */
  readonly stateMask: Uint8Array;
  /** True when some rule looks past the IP header (ports, TCP flags, ICMP type, state). */
  readonly usesL4: boolean;
  /** Each rule as text, in order, for `nfvisor` to print what the firewall will do. */
  readonly text: readonly string[];
}

/** What `create()` returns: the handler plus the compiled program and per-rule hit counts. */
export interface FirewallInstance extends NfInstance {
  readonly program: FirewallProgram;
  /** Packets each rule decided (index = rule number). */
  readonly hits: Float64Array;
  /** The connection table (read-only to callers). */
  readonly conntrack: Conntrack;
  /** A digest of the whole state (rule hits and connection table): equal after snapshot → restore. */
  digest(): number;
}

const MAX_RULES = 10000;
const ANY = 'any';
const PORT = /^(0|[1-9][0-9]{0,4})$/;
const PREFIX = /^(0|[1-9][0-9]{0,2})$/;
const PROTOCOL_NUMBER = /^(0|[1-9][0-9]{0,2})$/;

const FAMILY_ANY = 0;
const FAMILY_V4 = 4;
const FAMILY_V6 = 6;

/** A parsed CIDR: family, and the address and mask as int32 words (one for v4, four for v6). */
interface Cidr {
  family: 0 | 4 | 6;
  words: Int32Array;
  masks: Int32Array;
}

function parseCidr(text: string, path: string): Cidr {
  if (text === ANY) return { family: FAMILY_ANY, words: new Int32Array(4), masks: new Int32Array(4) };
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? null : text.slice(slash + 1);
  const v6 = addressText.includes(':');
  const maxPrefix = v6 ? 128 : 32;
  if (prefixText !== null && (!PREFIX.test(prefixText) || Number(prefixText) > maxPrefix))
    throw new Error(`${path}: prefix length must be 0–${maxPrefix} (got "${text}")`);
  const prefix = prefixText === null ? maxPrefix : Number(prefixText);
  const words = new Int32Array(4);
  const masks = new Int32Array(4);
  if (!v6) {
    const address = parseIpv4(addressText);
    if (address < 0) throw new Error(`${path}: not an IPv4 or IPv6 CIDR (got "${text}")`);
    words[0] = address | 0;
    masks[0] = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) | 0;
  } else {
    const bytes = new Uint8Array(16);
    if (!parseIpv6(addressText, bytes)) throw new Error(`${path}: not an IPv4 or IPv6 CIDR (got "${text}")`);
    for (let i = 0; i < 4; i++) {
      words[i] = (bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) | bytes[4 * i + 3];
      const bits = Math.max(0, Math.min(32, prefix - 32 * i));
      masks[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
    }
  }
  for (let i = 0; i < 4; i++) {
    if ((words[i] & masks[i]) !== words[i])
      throw new Error(`${path}: "${text}" has bits set beyond its /${prefix} prefix`);
  }
  return { family: v6 ? FAMILY_V6 : FAMILY_V4, words, masks };
}

function parsePortRange(text: string, path: string): [number, number] | null {
  if (text === ANY) return null;
  const dash = text.indexOf('-');
  const loText = dash < 0 ? text : text.slice(0, dash);
  const hiText = dash < 0 ? text : text.slice(dash + 1);
  if (!PORT.test(loText) || !PORT.test(hiText))
    throw new Error(`${path}: must be a port "80" or a range "1024-65535" (got "${text}")`);
  const lo = Number(loText);
  const hi = Number(hiText);
  if (lo > 65535 || hi > 65535) throw new Error(`${path}: ports are 0–65535 (got "${text}")`);
  if (lo > hi) throw new Error(`${path}: range starts after it ends (got "${text}")`);
  return [lo, hi];
}

/** [IPv4 protocol, IPv6 protocol], -1 for any. */
function parseProtocol(text: string, path: string): [number, number] {
  if (text === ANY) return [-1, -1];
  if (text === 'tcp') return [IpProtocol.Tcp, IpProtocol.Tcp];
  if (text === 'udp') return [IpProtocol.Udp, IpProtocol.Udp];
  if (text === 'icmp') return [IpProtocol.Icmp, IpProtocol.Icmpv6];
  if (PROTOCOL_NUMBER.test(text) && Number(text) <= 255) return [Number(text), Number(text)];
  throw new Error(`${path}: must be tcp, udp, icmp, any or a number 0–255 (got "${text}")`);
}

const STATE_BITS: Readonly<Record<string, number>> = {
  new: CtState.New,
  established: CtState.Established,
  related: CtState.Related,
  invalid: CtState.Invalid,
};

const TCP_FLAG_NAMES: Readonly<Record<string, number>> = {
  FIN: TcpFlag.Fin,
  SYN: TcpFlag.Syn,
  RST: TcpFlag.Rst,
  PSH: TcpFlag.Psh,
  ACK: TcpFlag.Ack,
  URG: TcpFlag.Urg,
  ECE: TcpFlag.Ece,
  CWR: TcpFlag.Cwr,
};

function parseFlagList(text: string, path: string, allowNot: boolean): [number, number] {
  let mask = 0;
  let value = 0;
  if (text === '' || text.toUpperCase() === 'NONE') return [0, 0];
  for (const item of text.split(',')) {
    const not = item.startsWith('!');
    const name = (not ? item.slice(1) : item).trim().toUpperCase();
    const bit = TCP_FLAG_NAMES[name];
    if (bit === undefined || (not && !allowNot))
      throw new Error(
        `${path}: flags are FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, as "SYN,!ACK" or "SYN,ACK,RST/SYN" (got "${text}")`,
      );
    mask |= bit;
    if (!not) value |= bit;
  }
  return [mask, value];
}

/** [mask, value]: a packet matches when (flags & mask) === value; [0, 0] for any. */
function parseTcpFlags(text: string, path: string): [number, number] {
  if (text === ANY) return [0, 0];
  const slash = text.indexOf('/');
  if (slash < 0) return parseFlagList(text, path, true);
  const [mask] = parseFlagList(text.slice(0, slash), path, false);
  const [value] = parseFlagList(text.slice(slash + 1), path, false);
  if ((value & ~mask) !== 0)
    throw new Error(`${path}: the value names a flag outside the mask (got "${text}")`);
  return [mask, value];
}

function parseByte(text: string, path: string, what: string): number {
  if (text === ANY) return -1;
  if (!PROTOCOL_NUMBER.test(text) || Number(text) > 255)
    throw new Error(`${path}: ${what} must be a number 0–255 or any (got "${text}")`);
  return Number(text);
}

/**
 * Validates and compiles rules. Throws an Error whose message starts with the field path
 * (`rules[3].src: …`) for the first bad value. Pure: safe to call to check a configuration.
 *
 * @example compileRules([{ action: 'accept', src: '10.0.0.0/8', dst: 'any', protocol: 'tcp', srcPort: 'any', dstPort: '22' }]).count === 1
 */
export function compileRules(rules: readonly FirewallRule[]): FirewallProgram {
  if (rules.length > MAX_RULES) throw new Error(`rules: at most ${MAX_RULES} rules (got ${rules.length})`);
  const n = rules.length;
  const p = {
    count: n,
    action: new Uint8Array(n),
    family: new Uint8Array(n),
    v4Src: new Int32Array(n),
    v4SrcMask: new Int32Array(n),
    v4Dst: new Int32Array(n),
    v4DstMask: new Int32Array(n),
    v6Src: new Int32Array(4 * n),
    v6SrcMask: new Int32Array(4 * n),
    v6Dst: new Int32Array(4 * n),
    v6DstMask: new Int32Array(4 * n),
    protoV4: new Int16Array(n),
    protoV6: new Int16Array(n),
    ports: new Uint8Array(n),
    srcLo: new Int32Array(n),
    srcHi: new Int32Array(n),
    dstLo: new Int32Array(n),
    dstHi: new Int32Array(n),
    tcpMask: new Uint8Array(n),
    tcpValue: new Uint8Array(n),
    icmpType: new Int16Array(n),
    icmpCode: new Int16Array(n),
    inPort: new Int32Array(n),
    stateMask: new Uint8Array(n),
    usesL4: false,
    text: [] as string[],
  };
  rules.forEach((rule, r) => {
    const at = `rules[${r}]`;
    const src = parseCidr(rule.src ?? ANY, `${at}.src`);
    const dst = parseCidr(rule.dst ?? ANY, `${at}.dst`);
    if (src.family !== FAMILY_ANY && dst.family !== FAMILY_ANY && src.family !== dst.family)
      throw new Error(
        `${at}.dst: IPv${dst.family} destination with an IPv${src.family} source never matches`,
      );
    const [protoV4, protoV6] = parseProtocol(rule.protocol ?? ANY, `${at}.protocol`);
    const srcPorts = parsePortRange(rule.srcPort ?? ANY, `${at}.srcPort`);
    const dstPorts = parsePortRange(rule.dstPort ?? ANY, `${at}.dstPort`);
    const hasPorts = srcPorts !== null || dstPorts !== null;
    if (hasPorts && protoV4 !== -1 && protoV4 !== IpProtocol.Tcp && protoV4 !== IpProtocol.Udp)
      throw new Error(`${at}.protocol: ports apply only to tcp and udp (got "${rule.protocol}")`);
    const [tcpMask, tcpValue] = parseTcpFlags(rule.tcpFlags ?? ANY, `${at}.tcpFlags`);
    if (tcpMask !== 0 && protoV4 !== IpProtocol.Tcp)
      throw new Error(`${at}.tcpFlags: TCP flags need protocol tcp (got "${rule.protocol ?? ANY}")`);
    const icmpType = parseByte(rule.icmpType ?? ANY, `${at}.icmpType`, 'an ICMP type');
    const icmpCode = parseByte(rule.icmpCode ?? ANY, `${at}.icmpCode`, 'an ICMP code');
    if ((icmpType >= 0 || icmpCode >= 0) && protoV4 !== IpProtocol.Icmp)
      throw new Error(
        `${at}.icmpType: ICMP type and code need protocol icmp (got "${rule.protocol ?? ANY}")`,
      );
    if (icmpCode >= 0 && icmpType < 0) throw new Error(`${at}.icmpCode: an ICMP code needs an icmpType`);
    const inPort = rule.inPort ?? -1;
    if (!Number.isInteger(inPort) || inPort < -1 || inPort > 65535)
      throw new Error(`${at}.inPort: must be a port id 0–65535, or -1 for any (got ${inPort})`);
    p.action[r] = rule.action === 'accept' ? 1 : rule.action === 'reject' ? 2 : 0;
    p.tcpMask[r] = tcpMask;
    p.tcpValue[r] = tcpValue;
    p.icmpType[r] = icmpType;
    p.icmpCode[r] = icmpCode;
    p.inPort[r] = inPort;
    let stateMask = 0;
    for (const name of rule.state ?? []) {
      const bit = STATE_BITS[name];
      if (bit === undefined)
        throw new Error(`${at}.state: states are new, established, related, invalid (got "${name}")`);
      stateMask |= bit;
    }
    p.stateMask[r] = stateMask;
    if (hasPorts || tcpMask !== 0 || icmpType >= 0 || stateMask !== 0) p.usesL4 = true;
    p.family[r] = src.family !== FAMILY_ANY ? src.family : dst.family;
    p.v4Src[r] = src.family === FAMILY_V4 ? src.words[0] : 0;
    p.v4SrcMask[r] = src.family === FAMILY_V4 ? src.masks[0] : 0;
    p.v4Dst[r] = dst.family === FAMILY_V4 ? dst.words[0] : 0;
    p.v4DstMask[r] = dst.family === FAMILY_V4 ? dst.masks[0] : 0;
    if (src.family === FAMILY_V6) {
      p.v6Src.set(src.words, 4 * r);
      p.v6SrcMask.set(src.masks, 4 * r);
    }
    if (dst.family === FAMILY_V6) {
      p.v6Dst.set(dst.words, 4 * r);
      p.v6DstMask.set(dst.masks, 4 * r);
    }
    p.protoV4[r] = protoV4;
    p.protoV6[r] = protoV6;
    p.ports[r] = hasPorts ? 1 : 0;
    p.srcLo[r] = srcPorts?.[0] ?? 0;
    p.srcHi[r] = srcPorts?.[1] ?? 65535;
    p.dstLo[r] = dstPorts?.[0] ?? 0;
    p.dstHi[r] = dstPorts?.[1] ?? 65535;
    let extra = '';
    if (tcpMask !== 0) extra += ` flags ${rule.tcpFlags}`;
    if (icmpType >= 0) extra += ` icmp-type ${icmpType}${icmpCode >= 0 ? `/${icmpCode}` : ''}`;
    if (inPort >= 0) extra += ` in-port ${inPort}`;
    if (stateMask !== 0) extra += ` state ${(rule.state ?? []).join(',')}`;
    p.text.push(
      `${r}: ${rule.action} ${rule.protocol ?? ANY} ${rule.src ?? ANY}:${rule.srcPort ?? ANY} -> ${rule.dst ?? ANY}:${rule.dstPort ?? ANY}${extra}`,
    );
  });
  return p;
}

const cidrField = (what: string) =>
  ({
    type: 'string',
    default: ANY,
    description: `${what}: a CIDR (10.0.0.0/8, 2001:db8::/32), a bare address, or any`,
  }) as const;
const portField = (what: string) =>
  ({
    type: 'string',
    default: ANY,
    numbersAsText: true,
    description: `${what}: a port 443, a range "1024-65535", or any`,
  }) as const;

const timeoutField = (seconds: number, what: string) =>
  ({ type: 'number', default: seconds, minimum: 0, description: `${what}, seconds` }) as const;

/** Timeouts in ns per Timeout slot. */
function compileTimeouts(t: FirewallTimeouts, scale: number): Float64Array {
  const out = new Float64Array(TIMEOUT_SLOTS);
  const seconds = [
    0,
    t.synSent,
    t.synRecv,
    t.established,
    t.finWait,
    t.closeWait,
    t.lastAck,
    t.timeWait,
    t.close,
  ];
  seconds.forEach((value, i) => (out[i] = value * scale * 1e9));
  out[Timeout.UdpUnreplied] = t.udpUnreplied * scale * 1e9;
  out[Timeout.UdpReplied] = t.udpReplied * scale * 1e9;
  out[Timeout.Icmp] = t.icmp * scale * 1e9;
  out[Timeout.Generic] = t.generic * scale * 1e9;
  return out;
}

function isIcmpError(l4: number, type: number): boolean {
  if (l4 === Layer.Icmpv4) return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
  return type >= 1 && type <= 4;
}

const Commit = { None: 0, Create: 1, Update: 2, Reopen: 3 } as const;

export default defineNf<FirewallConfig>({
  name: 'firewall',
  summary:
    'Stateful first-match filter: addresses, protocol, ports, TCP flags, ICMP type, input port and connection state; accept, drop or reject.',
  outputs: ['out'],
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length or checksum)',
    denied:
      'a drop rule matched, no rule matched and the default is drop, or a reject rule matched a packet no answer may be sent to (a RST, an ICMP error, a later fragment, multicast)',
    conntrack_full: 'an accepted new connection found the tracking table full of replied connections',
    fragment_unknown:
      'a later fragment whose first fragment was not accepted (or not seen) while rules look at ports, flags, ICMP types or state',
  },
  counters: {
    accepted: { unit: 'packets', description: 'IP packets accepted (by a rule or the default)' },
    denied: { unit: 'packets', description: 'IP packets dropped by a rule or the default' },
    malformed: { unit: 'packets', description: 'frames the parser refused' },
    non_ip: { unit: 'packets', description: 'frames without IP (ARP, other EtherTypes), passed on' },
    rule_hits: { unit: 'packets', description: 'packets decided by a rule rather than the default' },
    ct_created: { unit: 'connections', description: 'connections entered in the tracking table' },
    ct_evicted: { unit: 'connections', description: 'un-replied connections evicted to make room' },
    ct_expired: { unit: 'connections', description: 'connections removed by their timeout' },
    conntrack_full: {
      unit: 'packets',
      description: 'new connections dropped: table full and nothing un-replied to evict',
    },
    ct_invalid: { unit: 'packets', description: 'IP packets in connection state invalid' },
    ct_out_of_window: {
      unit: 'packets',
      description:
        'TCP segments outside the window netfilter-style tracking allows (sequence or ack), state invalid',
    },
    fragments_followed: {
      unit: 'packets',
      description: 'later fragments accepted because their first fragment was',
    },
    fragment_unknown: {
      unit: 'packets',
      description: 'later fragments dropped: their first fragment was not accepted or not seen',
    },
    rejected: {
      unit: 'packets',
      description:
        'packets a reject rule turned into a TCP RST or ICMP unreachable sent back (others are denied)',
    },
  },
  config: {
    default: {
      type: 'string',
      enum: ['accept', 'drop'],
      default: 'drop',
      description: 'verdict for IP packets no rule matches',
    },
    rules: {
      type: 'array',
      default: [],
      maxItems: MAX_RULES,
      description: 'rules, tried in order; the first that matches decides',
      items: {
        type: 'object',
        description: 'one rule; every field but action defaults to any',
        properties: {
          action: {
            type: 'string',
            enum: ['accept', 'drop', 'reject'],
            description:
              'verdict when the rule matches; reject answers the sender (TCP RST, else ICMP port unreachable) out of out',
          },
          src: cidrField('source'),
          dst: cidrField('destination'),
          protocol: {
            type: 'string',
            default: ANY,
            numbersAsText: true,
            description: 'tcp, udp, icmp (ICMPv6 over IPv6), a protocol number 0–255, or any',
          },
          srcPort: portField('source port'),
          dstPort: portField('destination port'),
          tcpFlags: {
            type: 'string',
            default: ANY,
            description:
              'TCP flags (protocol tcp): "SYN,!ACK" (listed flags set, ! flags clear), "SYN,ACK,RST/SYN" (mask/value), or any',
          },
          icmpType: {
            type: 'string',
            default: ANY,
            numbersAsText: true,
            description: 'ICMP type 0–255 (ICMPv6 type over IPv6; protocol icmp), or any',
          },
          icmpCode: {
            type: 'string',
            default: ANY,
            numbersAsText: true,
            description: 'ICMP code 0–255 (with icmpType), or any',
          },
          inPort: {
            type: 'integer',
            default: -1,
            minimum: -1,
            maximum: 65535,
            description: 'input port (host port id) the packet arrived on, or -1 for any',
          },
          state: {
            type: 'array',
            default: [],
            maxItems: 4,
            description: 'connection states, any of: new, established, related, invalid (empty: any)',
            items: {
              type: 'string',
              enum: ['new', 'established', 'related', 'invalid'],
              description: 'a connection state',
            },
          },
        },
      },
    },
    maxFragmentedDatagrams: {
      type: 'integer',
      default: 1024,
      minimum: 1,
      maximum: 1048576,
      description:
        'accepted first fragments remembered so their later fragments follow them (rounded up to a power of 2)',
    },
    fragmentTimeout: {
      type: 'number',
      default: 30,
      minimum: 0,
      description: "seconds a first fragment's verdict holds for its later fragments (netfilter ipfrag_time)",
    },
    maxConnections: {
      type: 'integer',
      default: 65536,
      minimum: 1,
      maximum: 4194304,
      description: 'connections the tracking table holds; when full, only un-replied ones are evicted',
    },
    timeoutScale: {
      type: 'number',
      default: 1,
      minimum: 0,
      description: 'multiplies every connection timeout (0.01 runs them a hundred times faster)',
    },
    timeouts: {
      type: 'object',
      description: 'connection timeouts in seconds (netfilter defaults)',
      properties: {
        synSent: timeoutField(120, 'TCP SYN_SENT'),
        synRecv: timeoutField(60, 'TCP SYN_RECV'),
        established: timeoutField(432000, 'TCP ESTABLISHED (5 days)'),
        finWait: timeoutField(120, 'TCP FIN_WAIT'),
        closeWait: timeoutField(60, 'TCP CLOSE_WAIT'),
        lastAck: timeoutField(30, 'TCP LAST_ACK'),
        timeWait: timeoutField(120, 'TCP TIME_WAIT'),
        close: timeoutField(10, 'TCP CLOSE (after a RST)'),
        udpUnreplied: timeoutField(30, 'UDP, no reply seen'),
        udpReplied: timeoutField(120, 'UDP, replied (a stream)'),
        icmp: timeoutField(30, 'ICMP/ICMPv6 echo'),
        generic: timeoutField(600, 'other protocols'),
      },
    },
  },
  create(config, ctx): FirewallInstance {
    const program = compileRules(config.rules);
    const hits = new Float64Array(program.count);
    const defaultAccept = config.default === 'accept';
    // L4 checksums are not verified: a forwarding NF passes a segment's checksum on (patched
    // incrementally where it rewrites), as routers and netfilter do; the end host verifies it.
    // Header checks — lengths, IPv4 header checksum, options — still apply to every packet.
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const v6Words = new Int32Array(8); // src words 0–3, dst words 4–7 of the packet being matched
    const timeouts = compileTimeouts(config.timeouts, config.timeoutScale);
    const conntrack = new Conntrack(config.maxConnections, timeouts);
    const key = new FlowKey();
    const reverseKey = new FlowKey();
    // The connection state of the packet being decided, and what to write back if it is accepted.
    let ctEntry = -1;
    let ctHash = 0;
    let ctCommit: number = Commit.None;
    let ctNextTcp = 0;
    let ctTimeout = 0;
    let ctReply = 0;
    const out = ctx.output('out');
    const dropMalformed = ctx.dropReason('malformed');
    const dropDenied = ctx.dropReason('denied');
    const cAccepted = ctx.counter('accepted');
    const cDenied = ctx.counter('denied');
    const cMalformed = ctx.counter('malformed');
    const cNonIp = ctx.counter('non_ip');
    const cRuleHits = ctx.counter('rule_hits');
    const cCreated = ctx.counter('ct_created');
    const cEvicted = ctx.counter('ct_evicted');
    const cExpired = ctx.counter('ct_expired');
    const cFull = ctx.counter('conntrack_full');
    const cInvalid = ctx.counter('ct_invalid');
    const cOutOfWindow = ctx.counter('ct_out_of_window');
    /** TCP segments found out of window in the current batch. */
    let outOfWindow = 0;
    const cRejected = ctx.counter('rejected');
    const rejecter = new Rejecter();
    const fragments = new FragmentTable(
      config.maxFragmentedDatagrams,
      config.fragmentTimeout * config.timeoutScale * 1e9,
    );
    const fragKey = new FlowKey();
    const cFollowed = ctx.counter('fragments_followed');
    const cFragUnknown = ctx.counter('fragment_unknown');
    const dropFragUnknown = ctx.dropReason('fragment_unknown');
    const usesL4 = program.usesL4;

    /** Fills fragKey with the datagram of the parsed fragment; returns its fragment offset. */
    function datagramKey(): number {
      if (parser.l3 === Layer.Ipv4) {
        const ip = parser.ipv4;
        fragKey.setV4At(ip.bytes, ip.at + 12, ip.at + 16, parser.protocol, 0, ip.identification());
        return ip.fragmentOffset();
      }
      const ip = parser.ipv6;
      const id = ip.fragmentIdentification();
      fragKey.setV6(ip.bytes, ip.srcAt(), ip.dstAt(), parser.protocol, id >>> 16, id & 0xffff);
      return ip.fragmentOffset();
    }
    const dropFull = ctx.dropReason('conntrack_full');
    const {
      count,
      action,
      family,
      v4Src,
      v4SrcMask,
      v4Dst,
      v4DstMask,
      v6Src,
      v6SrcMask,
      v6Dst,
      v6DstMask,
      protoV4,
      protoV6,
      ports,
      srcLo,
      srcHi,
      dstLo,
      dstHi,
      tcpMask,
      tcpValue,
      icmpType,
      icmpCode,
      inPort,
      stateMask,
    } = program;

    // The rule decision per connection and direction. With no rule testing TCP flags or ICMP
    // type/code, every field a rule reads is fixed within one direction of a connection except the
    // state and the input port, so a decision made for (entry, direction, state, port) holds for
    // the next packet that has them: established traffic skips the classifier. Entry e's two
    // directions live at 2e and 2e + 1; a key of 0 is "none", and the slots are cleared whenever
    // the entry is (re)created or the table restored.
    const verdictCacheable = Array.from(
      { length: program.count },
      (_, r) => tcpMask[r] === 0 && icmpType[r] < 0,
    ).every(Boolean);
    const verdictKey = new Int32Array(2 * config.maxConnections);
    const verdictRule = new Int32Array(2 * config.maxConnections);

    /**
     * The connection state (a CtState bit) of the parsed packet; fills ctEntry/ctCommit/… with what
     * to write to the table should the packet be accepted. Needs the parsed packet (l3 is IP).
     */
    function track(now: number): number {
      ctEntry = -1;
      ctCommit = Commit.None;
      const l4 = parser.l4;
      if (l4 === Layer.Icmpv4 || l4 === Layer.Icmpv6) {
        const state = trackIcmp(l4, now);
        if (state !== 0) return state;
      }
      if (parser.fragment && l4 === Layer.None) return CtState.New; // a later fragment: see fragments
      parser.flowKey(key);
      ctHash = key.symmetricHash();
      const e = conntrack.find(key, reverseKey, ctHash, now);
      if (e < 0) return trackNew(l4);
      ctEntry = e;
      ctReply = conntrack.reply;
      if (l4 === Layer.Tcp) return trackTcp(e);
      if (l4 === Layer.Icmpv4 || l4 === Layer.Icmpv6) {
        ctTimeout = Timeout.Icmp;
      } else if (parser.protocol === IpProtocol.Udp) {
        ctTimeout = ctReply === 1 || conntrack.replied(e) ? Timeout.UdpReplied : Timeout.UdpUnreplied;
      } else ctTimeout = Timeout.Generic;
      ctCommit = Commit.Update;
      return ctReply === 1 || conntrack.replied(e) ? CtState.Established : CtState.New;
    }

    // track()'s less common cases live apart, so that what every packet runs stays small enough for
    // V8 to inline into the packet loop.

    /** The state of an ICMP error or an untracked ICMP message, or 0 for echo (tracked like a flow). */
    function trackIcmp(l4: number, now: number): number {
      const type = l4 === Layer.Icmpv4 ? parser.icmpv4.type() : parser.icmpv6.type();
      if (isIcmpError(l4, type)) {
        if (!quotedKey(l4)) return CtState.Invalid;
        return conntrack.find(key, reverseKey, key.symmetricHash(), now) >= 0
          ? CtState.Related
          : CtState.Invalid;
      }
      const request = l4 === Layer.Icmpv4 ? type === Icmpv4Type.EchoRequest : type === Icmpv6Type.EchoRequest;
      const reply = l4 === Layer.Icmpv4 ? type === Icmpv4Type.EchoReply : type === Icmpv6Type.EchoReply;
      // Other informational messages (neighbour discovery, router advertisements…) are not tracked.
      if (!request && !reply) return CtState.New;
      return 0;
    }

    /** The state of a packet with no entry, and the entry its acceptance would create. */
    function trackNew(l4: number): number {
      if (l4 === Layer.Tcp) {
        // Only a SYN opens a TCP connection (netfilter with nf_conntrack_tcp_loose=0).
        if ((parser.tcp.flags() & (TcpFlag.Syn | TcpFlag.Ack | TcpFlag.Rst | TcpFlag.Fin)) !== TcpFlag.Syn)
          return CtState.Invalid;
        ctNextTcp = TcpState.SynSent;
        ctTimeout = TcpState.SynSent;
      } else if (l4 === Layer.Icmpv4 || l4 === Layer.Icmpv6) {
        const type = l4 === Layer.Icmpv4 ? parser.icmpv4.type() : parser.icmpv6.type();
        if (type === Icmpv4Type.EchoReply || type === Icmpv6Type.EchoReply) return CtState.Invalid;
        ctTimeout = Timeout.Icmp;
      } else ctTimeout = parser.protocol === IpProtocol.Udp ? Timeout.UdpUnreplied : Timeout.Generic;
      ctCommit = Commit.Create;
      return CtState.New;
    }

    /** The state of a TCP segment of entry e (direction ctReply), through the state machine and window. */
    function trackTcp(e: number): number {
      const state = conntrack.tcpState[e];
      const next = tcpNext(ctReply, tcpEvent(parser.tcp.flags()), state);
      if (next === TCP_INVALID) return CtState.Invalid;
      if (next === TCP_IGNORE) return conntrack.replied(e) ? CtState.Established : CtState.New;
      if (next === TcpState.SynSent && (state === TcpState.TimeWait || state === TcpState.Close)) {
        // A SYN on a closed connection opens a new one (netfilter re-creates the entry).
        ctCommit = Commit.Reopen;
        ctNextTcp = TcpState.SynSent;
        ctTimeout = TcpState.SynSent;
        return CtState.New;
      }
      if (!parser.fragment && !tcpWindow(e, state, false)) {
        outOfWindow++;
        return CtState.Invalid;
      }
      ctNextTcp = next;
      ctTimeout = next;
      ctCommit = Commit.Update;
      return ctReply === 1 || conntrack.replied(e) ? CtState.Established : CtState.New;
    }

    /** The parsed TCP segment against entry e's window (conntrack.tcpInWindow), moving it when `apply`. */
    function tcpWindow(e: number, state: number, apply: boolean): boolean {
      const tcp = parser.tcp;
      const flags = tcp.flags();
      return conntrack.tcpInWindow(
        e,
        ctReply,
        state,
        tcp.seq() | 0,
        tcp.ack() | 0,
        tcp.window(),
        flags,
        tcp.payloadLength(),
        (flags & TcpFlag.Syn) !== 0 ? tcp.windowScale() : -1,
        apply,
      );
    }

    /** Writes the tracked state of an accepted packet; false when a new connection finds no room. */
    function commit(now: number, c: Float64Array): boolean {
      if (ctCommit === Commit.None) return true;
      if (ctCommit === Commit.Update) {
        if (parser.l4 === Layer.Tcp) {
          if (!parser.fragment) tcpWindow(ctEntry, conntrack.tcpState[ctEntry], true);
          conntrack.tcpState[ctEntry] = ctNextTcp;
        }
        conntrack.expires[ctEntry] = now + timeouts[ctTimeout];
        if (ctReply === 1) conntrack.markReplied(ctEntry);
        return true;
      }
      if (ctCommit === Commit.Reopen) conntrack.remove(ctEntry);
      const e = conntrack.insert(
        key,
        ctHash,
        now + timeouts[ctTimeout],
        parser.l4 === Layer.Tcp ? ctNextTcp : 0,
      );
      if (conntrack.evicted !== 0) c[cEvicted]++;
      if (e < 0) return false;
      verdictKey[2 * e] = 0;
      verdictKey[2 * e + 1] = 0;
      if (parser.l4 === Layer.Tcp && !parser.fragment) {
        const tcp = parser.tcp;
        conntrack.tcpStart(
          e,
          tcp.seq() | 0,
          tcp.payloadLength(),
          tcp.flags(),
          tcp.window(),
          tcp.windowScale(),
        );
      }
      c[cCreated]++;
      return true;
    }

    /** Fills `key` with the connection an ICMP error quotes (as quoted); false when it quotes too little. */
    function quotedKey(l4: number): boolean {
      const v4 = l4 === Layer.Icmpv4;
      const b = v4 ? parser.icmpv4.bytes : parser.icmpv6.bytes;
      const q = v4 ? parser.icmpv4.payloadAt() : parser.icmpv6.payloadAt();
      const length = v4 ? parser.icmpv4.payloadLength() : parser.icmpv6.payloadLength();
      let upper: number;
      let protocol: number;
      if (v4) {
        if (length < 20 || b[q] >>> 4 !== 4) return false;
        upper = q + (b[q] & 15) * 4;
        protocol = b[q + 9];
        if ((((b[q + 6] & 0x1f) << 8) | b[q + 7]) !== 0) return false; // quotes a later fragment
      } else {
        if (length < 40 || b[q] >>> 4 !== 6) return false;
        upper = q + 40;
        protocol = b[q + 6];
      }
      let srcPort = 0;
      let dstPort = 0;
      const end = q + length;
      if (protocol === IpProtocol.Tcp || protocol === IpProtocol.Udp) {
        if (upper + 4 > end) return false;
        srcPort = (b[upper] << 8) | b[upper + 1];
        dstPort = (b[upper + 2] << 8) | b[upper + 3];
      } else if ((v4 && protocol === IpProtocol.Icmp) || (!v4 && protocol === IpProtocol.Icmpv6)) {
        if (upper + 8 > end) return false;
        const type = b[upper];
        const echo = v4
          ? type === Icmpv4Type.EchoRequest || type === Icmpv4Type.EchoReply
          : type === Icmpv6Type.EchoRequest || type === Icmpv6Type.EchoReply;
        if (!echo) return false;
        srcPort = dstPort = (b[upper + 4] << 8) | b[upper + 5];
      }
      if (v4) key.setV4At(b, q + 12, q + 16, protocol, srcPort, dstPort);
      else key.setV6(b, q + 8, q + 24, protocol, srcPort, dstPort);
      return true;
    }

    // The packet being classified, as numbers (set by match, read by test).
    let pV4 = false;
    let pProtocol = 0;
    let pSrc = 0;
    let pDst = 0;
    let pSrcPort = -1;
    let pDstPort = -1;
    let pFlags = -1;
    let pType = -1;
    let pCode = -1;
    let pPort = 0;
    let pCtState = 0;
    const index = buildIndex(program);

    /** The first rule matching the parsed packet, or -1 (through the rule index, see classify.ts). */
    function match(port: number, ctState: number): number {
      const v4 = parser.l3 === Layer.Ipv4;
      const protocol = parser.protocol;
      let src = 0;
      let dst = 0;
      if (v4) {
        const b = parser.ipv4.bytes;
        const a = parser.ipv4.at + 12;
        src = (b[a] << 24) | (b[a + 1] << 16) | (b[a + 2] << 8) | b[a + 3];
        dst = (b[a + 4] << 24) | (b[a + 5] << 16) | (b[a + 6] << 8) | b[a + 7];
      } else {
        const b = parser.ipv6.bytes;
        const s = parser.ipv6.srcAt();
        const d = parser.ipv6.dstAt();
        for (let i = 0; i < 4; i++) {
          const o = 4 * i;
          v6Words[i] = (b[s + o] << 24) | (b[s + o + 1] << 16) | (b[s + o + 2] << 8) | b[s + o + 3];
          v6Words[4 + i] = (b[d + o] << 24) | (b[d + o + 1] << 16) | (b[d + o + 2] << 8) | b[d + o + 3];
        }
      }
      let srcPort = -1;
      let dstPort = -1;
      let flags = -1;
      let type = -1;
      let code = -1;
      if (parser.l4 === Layer.Tcp) {
        srcPort = parser.tcp.srcPort();
        dstPort = parser.tcp.dstPort();
        flags = parser.tcp.flags();
      } else if (parser.l4 === Layer.Icmpv4) {
        type = parser.icmpv4.type();
        code = parser.icmpv4.code();
      } else if (parser.l4 === Layer.Icmpv6) {
        type = parser.icmpv6.type();
        code = parser.icmpv6.code();
      } else if (parser.l4 === Layer.Udp) {
        srcPort = parser.udp.srcPort();
        dstPort = parser.udp.dstPort();
      }
      pV4 = v4;
      pProtocol = protocol;
      pSrc = src;
      pDst = dst;
      pSrcPort = srcPort;
      pDstPort = dstPort;
      pFlags = flags;
      pType = type;
      pCode = code;
      pPort = port;
      pCtState = ctState;
      let best = scan(0, count);
      if (srcPort >= 0) {
        const table = parser.l4 === Layer.Tcp ? index.tcpPort : index.udpPort;
        best = scan(table[dstPort], best);
      }
      if (v4) {
        best = scan(index.dst16[dst >>> 16], best);
        best = scan(index.src16[src >>> 16], best);
      }
      return best < count ? best : -1;
    }

    /** The first rule of list `l` below `best` that matches, else `best`. */
    function scan(l: number, best: number): number {
      const end = index.start[l + 1];
      const list = index.rules;
      for (let j = index.start[l]; j < end; j++) {
        const r = list[j];
        if (r >= best) return best;
        if (test(r)) return r;
      }
      return best;
    }

    /** Whether rule r matches the packet described by the p* variables. */
    function test(r: number): boolean {
      const f = family[r];
      if (pV4) {
        if (f === FAMILY_V6) return false;
        if ((pSrc & v4SrcMask[r]) !== v4Src[r] || (pDst & v4DstMask[r]) !== v4Dst[r]) return false;
        if (protoV4[r] >= 0 && protoV4[r] !== pProtocol) return false;
      } else {
        if (f === FAMILY_V4) return false;
        if (f === FAMILY_V6 && !v6Match(r)) return false;
        if (protoV6[r] >= 0 && protoV6[r] !== pProtocol) return false;
      }
      if (ports[r] === 1) {
        if (pSrcPort < 0) return false;
        if (pSrcPort < srcLo[r] || pSrcPort > srcHi[r] || pDstPort < dstLo[r] || pDstPort > dstHi[r])
          return false;
      }
      if (tcpMask[r] !== 0 && (pFlags < 0 || (pFlags & tcpMask[r]) !== tcpValue[r])) return false;
      if (icmpType[r] >= 0 && (pType !== icmpType[r] || (icmpCode[r] >= 0 && pCode !== icmpCode[r])))
        return false;
      if (inPort[r] >= 0 && inPort[r] !== pPort) return false;
      if (stateMask[r] !== 0 && (stateMask[r] & pCtState) === 0) return false;
      return true;
    }

    function v6Match(r: number): boolean {
      const w = 4 * r;
      for (let i = 0; i < 4; i++) {
        if ((v6Words[i] & v6SrcMask[w + i]) !== v6Src[w + i]) return false;
        if ((v6Words[4 + i] & v6DstMask[w + i]) !== v6Dst[w + i]) return false;
      }
      return true;
    }

    return {
      program,
      hits,
      conntrack,
      digest() {
        let h = conntrack.digest();
        for (let r = 0; r < hits.length; r++) h = Math.imul(h ^ hits[r], 0x01000193);
        return h >>> 0;
      },
      tick(now) {
        ctx.counters[cExpired] += conntrack.sweep(now);
      },
      process(batch, now) {
        const c = ctx.counters;
        let invalid = 0;
        let full = 0;
        let rejected = 0;
        let followed = 0;
        let fragUnknown = 0;
        let accepted = 0;
        let denied = 0;
        let malformed = 0;
        let nonIp = 0;
        let ruleHits = 0;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(batch.bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            batch.drop(i, dropMalformed);
            malformed++;
            ctx.malformed(parser.failedLayer, reason);
            continue;
          }
          if (parser.l3 !== Layer.Ipv4 && parser.l3 !== Layer.Ipv6) {
            batch.send(i, out);
            nonIp++;
            continue;
          }
          let firstFragment = false;
          if (parser.fragment) {
            if (datagramKey() !== 0) {
              if (fragments.accepted(fragKey, now)) {
                batch.send(i, out);
                accepted++;
                followed++;
                continue;
              }
              if (usesL4) {
                batch.drop(i, dropFragUnknown);
                fragUnknown++;
                continue;
              }
            } else firstFragment = true;
          }
          const ctState = track(now);
          if (ctState === CtState.Invalid) invalid++;
          const port = batch.inputPort[i];
          let r: number;
          if (verdictCacheable && ctEntry >= 0) {
            const slot = 2 * ctEntry + ctReply;
            const wanted = ((ctState << 16) | port) + 1;
            if (verdictKey[slot] === wanted) r = verdictRule[slot];
            else {
              r = match(port, ctState);
              verdictKey[slot] = wanted;
              verdictRule[slot] = r;
            }
          } else r = match(port, ctState);
          let accept = defaultAccept;
          if (r >= 0) {
            hits[r]++;
            ruleHits++;
            accept = action[r] === 1;
            if (action[r] === 2) {
              const length = rejecter.build(parser, batch.at[i], batch.capacity);
              if (length >= 0 && batch.setLength(i, length)) {
                batch.send(i, out);
                rejected++;
                continue;
              }
            }
          }
          if (accept && !commit(now, c)) {
            batch.drop(i, dropFull);
            full++;
          } else if (accept) {
            batch.send(i, out);
            accepted++;
            if (firstFragment) fragments.remember(fragKey, now);
          } else {
            batch.drop(i, dropDenied);
            denied++;
          }
        }
        c[cAccepted] += accepted;
        c[cInvalid] += invalid;
        c[cOutOfWindow] += outOfWindow;
        outOfWindow = 0;
        c[cFull] += full;
        c[cRejected] += rejected;
        c[cFollowed] += followed;
        c[cFragUnknown] += fragUnknown;
        c[cDenied] += denied;
        c[cMalformed] += malformed;
        c[cNonIp] += nonIp;
        c[cRuleHits] += ruleHits;
      },
      snapshot() {
        return { hits: hits.slice(), conntrack: conntrack.snapshot(), fragments: fragments.snapshot() };
      },
      restore(state) {
        const saved = state as { hits?: unknown; conntrack?: unknown; fragments?: unknown } | null;
        fragments.restore(saved?.fragments);
        if (saved?.hits instanceof Float64Array && saved.hits.length === hits.length) hits.set(saved.hits);
        verdictKey.fill(0);
        if (saved?.conntrack !== undefined && !conntrack.restore(saved.conntrack))
          ctx.log(
            'the saved connection table does not fit this configuration (capacity differs); starting empty',
          );
      },
    };
  },
});
