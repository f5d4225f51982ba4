/**
 * nat: source NAT with port translation (NAPT, RFC 3022) for IPv4 TCP, UDP and ICMP echo.
 *
 * Outbound packets (from `inside`, or from anything but `external` when `inside` is any) get their
 * source address rewritten to `external` and their source port (ICMP echo: identifier) to a port
 * allocated per flow from `portRange`. Inbound packets (to `external`) are looked up by
 * (protocol, external port), checked against the flow's remote endpoint (address- and
 * port-dependent filtering, RFC 4787), and rewritten back. Checksums are patched incrementally
 * (RFC 1624); a UDP checksum of 0 stays 0.
 *
 * State, all typed arrays sized in `create()`:
 *
 *   table        FlowTable of outbound 5-tuples (inside src, remote dst, protocol, ports)
 *   slot s:      extPort[s]   the external port the flow was given
 *                lastSeen[s]  time of the last packet either way (ns)
 *   owner[p·65536 + port]     slot + 1 of the flow holding `port` for protocol p (0 tcp, 1 udp,
 *                             2 icmp), 0 when free
 *
 * Invariant: owner[p·65536 + extPort[s]] === s + 1 for every live slot s, and every non-zero owner
 * entry points at a live slot. FlowTable never frees a slot, so `tick(now)` rebuilds the table from
 * the flows that have not expired whenever some have; between ticks an idle flow that speaks again
 * keeps its port, and an inbound packet for an idle flow is refused.
 *
 * Not translated (later issues): ICMP errors (their embedded header), hairpinning, inbound
 * non-first fragments (no ports to find the flow; outbound ones get their address rewritten).
 */
import { formatIpv4, parseIpv4 } from '../../src/packet/address.js';
import { rewriteIpv4Address, rewriteL4Word, type L4ChecksumSite } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey, FlowKeyWord } from '../../src/packet/flow-key.js';
import { FlowTable } from '../../src/packet/flow-table.js';
import { Icmpv4Field, Icmpv4Type } from '../../src/packet/icmpv4.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Field } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpField } from '../../src/packet/tcp.js';
import { UdpField } from '../../src/packet/udp.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';

export interface NatConfig {
  external: string;
  portRange: string;
  timeoutSeconds: number;
  maxFlows: number;
  inside: string;
}

/** What `snapshot()` returns and `restore()` accepts (structured-cloneable). */
export interface NatSnapshot {
  version: 1;
  external: string;
  /** FLOW_KEY_WORDS words per flow: the outbound 5-tuple. */
  keys: Uint32Array;
  ports: Uint16Array;
  lastSeen: Float64Array;
}

export interface NatInstance extends NfInstance {
  /** Flows holding a port now. */
  activeFlows(): number;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: {
    external: string;
    portLo: number;
    portHi: number;
    inside: string;
    timeoutNs: number;
    capacity: number;
  };
}

const PORTS = 65536;
const PROTO_TCP = 0;
const PROTO_UDP = 1;
const PROTO_ICMP = 2;
const PORT = /^([1-9][0-9]{0,4})$/;
const PREFIX = /^(0|[1-9][0-9]?)$/;

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

export default defineNf<NatConfig>({
  name: 'nat',
  summary: 'Source NAT with port translation (NAPT) for IPv4 TCP, UDP and ICMP echo.',
  outputs: ['out'],
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length or checksum)',
    no_mapping: 'an inbound packet to the external address that belongs to no live flow',
    ports_exhausted: 'a new outbound flow found every port of the range taken',
    table_full: 'a new outbound flow found the flow table full (maxFlows)',
    unsupported: 'IPv4 that cannot be translated: protocols other than TCP/UDP/ICMP echo, ICMP errors',
    fragment: 'an inbound non-first fragment (it carries no ports to find its flow)',
  },
  counters: {
    translated_out: { unit: 'packets', description: 'outbound packets rewritten to the external address' },
    translated_in: { unit: 'packets', description: 'inbound packets rewritten back to an inside host' },
    new_mappings: { unit: 'flows', description: 'flows given an external port' },
    expired: { unit: 'flows', description: 'flows whose port was freed after the idle timeout' },
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
      description: 'idle time after which a flow is forgotten and its port freed',
    },
    maxFlows: {
      type: 'integer',
      default: 65536,
      minimum: 1,
      maximum: 1 << 22,
      description: 'flows tracked at most',
    },
    inside: {
      type: 'string',
      default: 'any',
      description: 'IPv4 CIDR of the hosts to translate; any = every source but the external address',
    },
  },
  create(config, ctx): NatInstance {
    const externalU = parseIpv4(config.external);
    if (externalU < 0) throw new Error(`external: not an IPv4 address (got "${config.external}")`);
    const external = externalU | 0;
    const [portLo, portHi] = parseRange(config.portRange);
    const rangeSize = portHi - portLo + 1;
    const inside = parseInside(config.inside);
    const insideAddr = inside?.[0] ?? 0;
    const insideMask = inside?.[1] ?? 0;
    const anyInside = inside === null;
    const timeoutNs = config.timeoutSeconds * 1e9;
    const maxFlows = config.maxFlows;

    const table = new FlowTable(maxFlows * 2);
    const extPort = new Uint16Array(table.capacity);
    const lastSeen = new Float64Array(table.capacity);
    const owner = new Int32Array(3 * PORTS);
    const portsUsed = new Int32Array(3);
    const cursor = new Int32Array(3).fill(portLo);

    // L4 checksums are not verified: a forwarding NF passes a segment's checksum on (patched
    // incrementally where it rewrites), as routers and netfilter do; the end host verifies it.
    // Header checks — lengths, IPv4 header checksum, options — still apply to every packet.
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const key = new FlowKey();
    const scratch = new FlowKey();
    const site: L4ChecksumSite = { at: -1, udp: false };
    const out = ctx.output('out');
    const dMalformed = ctx.dropReason('malformed');
    const dNoMapping = ctx.dropReason('no_mapping');
    const dExhausted = ctx.dropReason('ports_exhausted');
    const dTableFull = ctx.dropReason('table_full');
    const dUnsupported = ctx.dropReason('unsupported');
    const dFragment = ctx.dropReason('fragment');
    const cOut = ctx.counter('translated_out');
    const cIn = ctx.counter('translated_in');
    const cNew = ctx.counter('new_mappings');
    const cExpired = ctx.counter('expired');
    const cPassed = ctx.counter('passed_through');
    let loggedExhausted = false;

    /** A free port for protocol `p`, preferring `wanted`; -1 when the range is full. */
    function allocatePort(p: number, wanted: number): number {
      if (portsUsed[p] >= rangeSize) return -1;
      const base = p * PORTS;
      if (wanted >= portLo && wanted <= portHi && owner[base + wanted] === 0) return wanted;
      let port = cursor[p];
      for (let n = 0; n < rangeSize; n++) {
        if (owner[base + port] === 0) {
          cursor[p] = port === portHi ? portLo : port + 1;
          return port;
        }
        port = port === portHi ? portLo : port + 1;
      }
      return -1;
    }

    /** Stores a flow (key in `k`) with its port; returns the slot or -1. */
    function addFlow(k: FlowKey, p: number, port: number, seen: number): number {
      const slot = table.insert(k, k.hash());
      if (slot < 0) return -1;
      extPort[slot] = port;
      lastSeen[slot] = seen;
      owner[p * PORTS + port] = slot + 1;
      portsUsed[p]++;
      return slot;
    }

    /** Empties the table and re-adds `n` flows from the arrays given (tick and restore). */
    function rebuild(keys: Uint32Array, ports: Uint16Array, seen: Float64Array, n: number): number {
      table.clear();
      owner.fill(0);
      portsUsed.fill(0);
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
          table.size >= maxFlows ||
          table.find(scratch, scratch.hash()) >= 0 ||
          addFlow(scratch, p, port, seen[i]) < 0
        )
          lost++;
      }
      return lost;
    }

    /** Live flows as parallel arrays (optionally only those seen at or after `since`). */
    function collect(since: number): {
      keys: Uint32Array;
      ports: Uint16Array;
      seen: Float64Array;
      n: number;
    } {
      const keys = new Uint32Array(table.size * FLOW_KEY_WORDS);
      const ports = new Uint16Array(table.size);
      const seen = new Float64Array(table.size);
      let n = 0;
      for (let s = 0; s < table.capacity; s++) {
        if (table.used[s] === 0 || lastSeen[s] < since) continue;
        keys.set(table.keys.subarray(s * FLOW_KEY_WORDS, (s + 1) * FLOW_KEY_WORDS), n * FLOW_KEY_WORDS);
        ports[n] = extPort[s];
        seen[n] = lastSeen[s];
        n++;
      }
      return { keys, ports, seen, n };
    }

    const instance: NatInstance = {
      plan: {
        external: formatIpv4(externalU),
        portLo,
        portHi,
        inside: config.inside,
        timeoutNs,
        capacity: table.capacity,
      },
      activeFlows: () => table.size,

      process(batch, now) {
        let translatedOut = 0;
        let translatedIn = 0;
        let newMappings = 0;
        let passed = 0;
        const bytes = batch.bytes;
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
          const src = read32s(bytes, srcAt);
          const dst = read32s(bytes, dstAt);
          const inbound = dst === external;
          const outbound = !inbound && src !== external && (anyInside || (src & insideMask) === insideAddr);
          if (!inbound && !outbound) {
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
          let portAt = -1; // the source port outbound, the destination port inbound
          let l4At = -1;
          if (parser.l4 === Layer.Tcp) {
            l4At = parser.tcp.at;
            portAt = l4At + (inbound ? TcpField.DstPort : TcpField.SrcPort);
            site.at = l4At + TcpField.Checksum;
            site.udp = false;
          } else if (parser.l4 === Layer.Udp) {
            l4At = parser.udp.at;
            portAt = l4At + (inbound ? UdpField.DstPort : UdpField.SrcPort);
            site.at = l4At + UdpField.Checksum;
            site.udp = true;
          } else if (parser.l4 === Layer.Icmpv4) {
            const type = parser.icmpv4.type();
            if (type !== Icmpv4Type.EchoRequest && type !== Icmpv4Type.EchoReply) {
              batch.drop(i, dUnsupported);
              continue;
            }
            l4At = parser.icmpv4.at;
            portAt = l4At + Icmpv4Field.Identifier;
            site.at = l4At + Icmpv4Field.Checksum;
            site.udp = false;
          }
          if (portAt < 0) {
            // A non-first fragment: no ports. Outbound, the address alone is rewritten (the first
            // fragment carries the translated port and the L4 checksum); inbound, the flow is unknown.
            if (inbound) {
              batch.drop(i, dFragment);
              continue;
            }
            site.at = -1;
            rewriteIpv4Address(bytes, ipAt, srcAt, external, site);
            translatedOut++;
            continue;
          }
          const port = (bytes[portAt] << 8) | bytes[portAt + 1];
          if (inbound) {
            const slot = owner[p * PORTS + port] - 1;
            if (slot < 0 || now - lastSeen[slot] > timeoutNs) {
              batch.drop(i, dNoMapping);
              continue;
            }
            // The packet must come from the flow's remote endpoint (its destination outbound).
            const k = table.keys;
            const w = slot * FLOW_KEY_WORDS;
            const remotePort = k[w + FlowKeyWord.Ports] & 0xffff;
            const peerPort = p === PROTO_ICMP ? remotePort : (bytes[l4At] << 8) | bytes[l4At + 1];
            if ((k[w + FlowKeyWord.Dst + 3] | 0) !== src || peerPort !== remotePort) {
              batch.drop(i, dNoMapping);
              continue;
            }
            const insidePort = k[w + FlowKeyWord.Ports] >>> 16;
            lastSeen[slot] = now;
            // The pseudo-header covers the address, so the L4 checksum is patched for TCP/UDP only.
            const l4Site = site.at;
            if (p === PROTO_ICMP) site.at = -1;
            rewriteIpv4Address(bytes, ipAt, dstAt, k[w + FlowKeyWord.Src + 3] | 0, site);
            site.at = l4Site;
            rewriteL4Word(bytes, portAt, insidePort, site);
            translatedIn++;
            continue;
          }
          parser.flowKey(key);
          const hash = key.hash();
          let slot = table.find(key, hash);
          if (slot < 0) {
            if (table.size >= maxFlows) {
              batch.drop(i, dTableFull);
              continue;
            }
            const allocated = allocatePort(p, port);
            if (allocated < 0) {
              batch.drop(i, dExhausted);
              if (!loggedExhausted) {
                loggedExhausted = true;
                ctx.log(`ports ${portLo}-${portHi} exhausted for a new flow ${key.toString()}`);
              }
              continue;
            }
            slot = addFlow(key, p, allocated, now);
            if (slot < 0) {
              batch.drop(i, dTableFull);
              continue;
            }
            newMappings++;
          }
          lastSeen[slot] = now;
          const l4Site = site.at;
          if (p === PROTO_ICMP) site.at = -1;
          rewriteIpv4Address(bytes, ipAt, srcAt, external, site);
          site.at = l4Site;
          rewriteL4Word(bytes, portAt, extPort[slot], site);
          translatedOut++;
        }
        const c = ctx.counters;
        c[cOut] += translatedOut;
        c[cIn] += translatedIn;
        c[cNew] += newMappings;
        c[cPassed] += passed;
      },

      tick(now) {
        let stale = 0;
        for (let s = 0; s < table.capacity; s++)
          if (table.used[s] === 1 && now - lastSeen[s] > timeoutNs) stale++;
        if (stale === 0) return;
        const live = collect(now - timeoutNs);
        const lost = rebuild(live.keys, live.ports, live.seen, live.n);
        ctx.counters[cExpired] += stale + lost;
      },

      snapshot(): NatSnapshot {
        const live = collect(-Infinity);
        return {
          version: 1,
          external: formatIpv4(externalU),
          keys: live.keys,
          ports: live.ports,
          lastSeen: live.seen,
        };
      },

      restore(state) {
        const s = state as Partial<NatSnapshot> | null;
        if (
          s?.version !== 1 ||
          s.external !== formatIpv4(externalU) ||
          !(s.keys instanceof Uint32Array) ||
          !(s.ports instanceof Uint16Array) ||
          !(s.lastSeen instanceof Float64Array) ||
          s.keys.length !== s.ports.length * FLOW_KEY_WORDS ||
          s.lastSeen.length !== s.ports.length
        ) {
          ctx.log('nat: ignored a snapshot of another version or external address');
          return;
        }
        const lost = rebuild(s.keys, s.ports, s.lastSeen, s.ports.length);
        if (lost > 0) ctx.log(`nat: ${lost} flows of the snapshot did not fit this configuration`);
      },
    };
    return instance;
  },
});
