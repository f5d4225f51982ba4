/**
 * load-balancer: a stateless layer-4 load balancer for one IPv4 virtual IP and port.
 *
 * A TCP or UDP packet to `vip:port` gets its destination address rewritten to one of `backends`,
 * chosen by the symmetric hash of its original 5-tuple (`FlowKey.symmetricHash`), so every packet of
 * a connection goes to the same backend, on every replica, with no state to share or lose. A packet
 * from `backend:port` gets its source rewritten back to the VIP. Checksums are patched incrementally
 * (RFC 1624; a UDP checksum of 0 stays 0). Everything else passes untouched. Only the IP header
 * changes: delivering the frame to the backend (MAC addresses, routing) is the next hop's job.
 *
 *   backendAddr[b]        backend b's address (int32), b < backends.length
 *   lookupKey/lookupValue open-addressing index address → b + 1 for replies (0 = empty slot)
 *   backendPackets[b]     packets sent to backend b (in `snapshot()`)
 *
 * A fragment to the VIP is dropped (`fragment`): later fragments carry no ports to hash, so the
 * pieces of one datagram could reach different backends. Fragments from a backend pass untouched.
 */
import { formatIpv4, parseIpv4 } from '../../src/packet/address.js';
import { rewriteIpv4Address, type L4ChecksumSite } from '../../src/packet/checksum.js';
import { DropReason, dropReasonName } from '../../src/packet/drop-reason.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Field } from '../../src/packet/ipv4.js';
import { Layer, layerName, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpField } from '../../src/packet/tcp.js';
import { UdpField } from '../../src/packet/udp.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';

export interface LoadBalancerConfig {
  vip: string;
  port: number;
  backends: string[];
  protocol: 'tcp' | 'udp' | 'any';
}

export interface LoadBalancerInstance extends NfInstance {
  /** Packets sent to each backend, in `backends` order. */
  readonly backendPackets: Float64Array;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: { vip: string; port: number; backends: readonly string[]; protocols: readonly number[] };
}

const MAX_BACKENDS = 256;
const LOOKUP_SIZE = 1024; // a power of two ≥ 4 × MAX_BACKENDS: probe runs stay short
const LOOKUP_MASK = LOOKUP_SIZE - 1;

/**
 * The backend for a flow: its symmetric hash (int32) reduced to [0, n). A pure function of the
 * 5-tuple, so replicas agree and both directions of a connection agree.
 *
 * @example backendIndex(key.symmetricHash(), 4) // 0–3
 */
export function backendIndex(symmetricHash: number, n: number): number {
  return (symmetricHash >>> 0) % n;
}

function lookupSlot(address: number): number {
  return Math.imul(address, 0x9e3779b9) >>> 22; // top 10 bits: 0 … LOOKUP_SIZE − 1
}

/** A big-endian 32-bit word as int32 (never a heap number). */
function read32s(b: Uint8Array, at: number): number {
  return (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
}

export default defineNf<LoadBalancerConfig>({
  name: 'load-balancer',
  summary: 'Stateless L4 load balancer: spreads connections to vip:port over backends by flow hash.',
  outputs: ['out'],
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length or checksum)',
    fragment: 'an IPv4 fragment to the VIP (fragments cannot be balanced without reassembly)',
  },
  counters: {
    to_backend: { unit: 'packets', description: 'packets to vip:port rewritten to a backend' },
    from_backend: {
      unit: 'packets',
      description: 'packets from backend:port rewritten to come from the VIP',
    },
    passed: { unit: 'packets', description: 'other packets, sent on untouched' },
  },
  config: {
    vip: { type: 'string', description: 'the virtual IPv4 address clients connect to' },
    port: {
      type: 'integer',
      minimum: 1,
      maximum: 65535,
      description: 'the service port, on the VIP and the backends',
    },
    backends: {
      type: 'array',
      maxItems: MAX_BACKENDS,
      items: { type: 'string', description: 'a backend IPv4 address' },
      description: 'backend IPv4 addresses (1–256), each listening on `port`',
    },
    protocol: {
      type: 'string',
      enum: ['tcp', 'udp', 'any'],
      default: 'any',
      description: 'the transport balanced: tcp, udp or any (both)',
    },
  },
  create(config, ctx): LoadBalancerInstance {
    const vipU = parseIpv4(config.vip);
    if (vipU < 0 || vipU === 0) throw new Error(`vip: not a usable IPv4 address (got "${config.vip}")`);
    const vip = vipU | 0;
    const port = config.port;
    const n = config.backends.length;
    if (n === 0) throw new Error('backends: at least one backend is needed');
    const backendAddr = new Int32Array(n);
    const lookupKey = new Int32Array(LOOKUP_SIZE);
    const lookupValue = new Int16Array(LOOKUP_SIZE);
    config.backends.forEach((text, b) => {
      const address = parseIpv4(text);
      if (address <= 0) throw new Error(`backends[${b}]: not a usable IPv4 address (got "${text}")`);
      if ((address | 0) === vip) throw new Error(`backends[${b}]: a backend cannot be the VIP (${text})`);
      let slot = lookupSlot(address | 0);
      while (lookupValue[slot] !== 0) {
        if (lookupKey[slot] === (address | 0))
          throw new Error(`backends[${b}]: ${text} is listed twice (backends[${lookupValue[slot] - 1}])`);
        slot = (slot + 1) & LOOKUP_MASK;
      }
      lookupKey[slot] = address | 0;
      lookupValue[slot] = b + 1;
      backendAddr[b] = address | 0;
    });
    const tcp = config.protocol !== 'udp';
    const udp = config.protocol !== 'tcp';
    const backendPackets = new Float64Array(n);

    // L4 checksums are not verified: a forwarding NF passes a segment's checksum on (patched
    // incrementally where it rewrites), as routers and netfilter do; the end host verifies it.
    // Header checks — lengths, IPv4 header checksum, options — still apply to every packet.
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const key = new FlowKey();
    const site: L4ChecksumSite = { at: -1, udp: false };
    const dMalformed = ctx.dropReason('malformed');
    const dFragment = ctx.dropReason('fragment');
    const cTo = ctx.counter('to_backend');
    const cFrom = ctx.counter('from_backend');
    const cPassed = ctx.counter('passed');
    let loggedMalformed = false;

    /** Backend number of `address` (int32), or -1. */
    function backendOf(address: number): number {
      let slot = lookupSlot(address);
      while (lookupValue[slot] !== 0) {
        if (lookupKey[slot] === address) return lookupValue[slot] - 1;
        slot = (slot + 1) & LOOKUP_MASK;
      }
      return -1;
    }

    const instance: LoadBalancerInstance = {
      backendPackets,
      plan: {
        vip: formatIpv4(vipU),
        port,
        backends: config.backends.slice(),
        protocols: [...(tcp ? [IpProtocol.Tcp] : []), ...(udp ? [IpProtocol.Udp] : [])],
      },

      process(batch) {
        let toBackend = 0;
        let fromBackend = 0;
        let passed = 0;
        const bytes = batch.bytes;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            batch.drop(i, dMalformed);
            if (!loggedMalformed) {
              loggedMalformed = true;
              ctx.log(
                `dropped a malformed frame (${layerName(parser.failedLayer)}: ${dropReasonName(reason)}); later ones are only counted`,
              );
            }
            continue;
          }
          const protocol = parser.protocol;
          if (
            parser.l3 !== Layer.Ipv4 ||
            !((tcp && protocol === IpProtocol.Tcp) || (udp && protocol === IpProtocol.Udp))
          ) {
            passed++;
            continue;
          }
          const ipAt = parser.ipv4.at;
          let l4At = -1;
          if (parser.l4 === Layer.Tcp) {
            l4At = parser.tcp.at;
            site.at = l4At + TcpField.Checksum;
            site.udp = false;
          } else if (parser.l4 === Layer.Udp) {
            l4At = parser.udp.at;
            site.at = l4At + UdpField.Checksum;
            site.udp = true;
          }
          const dstAt = ipAt + Ipv4Field.Dst;
          if (read32s(bytes, dstAt) === vip) {
            if (parser.fragment) {
              batch.drop(i, dFragment);
              continue;
            }
            // l4At ≥ 0 here: an unfragmented TCP/UDP packet the parser accepted has its L4 header.
            if (l4At < 0 || ((bytes[l4At + 2] << 8) | bytes[l4At + 3]) !== port) {
              passed++;
              continue;
            }
            parser.flowKey(key);
            const b = backendIndex(key.symmetricHash(), n);
            rewriteIpv4Address(bytes, ipAt, dstAt, backendAddr[b], site);
            backendPackets[b]++;
            toBackend++;
            continue;
          }
          const srcAt = ipAt + Ipv4Field.Src;
          if (
            !parser.fragment &&
            l4At >= 0 &&
            ((bytes[l4At] << 8) | bytes[l4At + 1]) === port &&
            backendOf(read32s(bytes, srcAt)) >= 0
          ) {
            rewriteIpv4Address(bytes, ipAt, srcAt, vip, site);
            fromBackend++;
            continue;
          }
          passed++;
        }
        const c = ctx.counters;
        c[cTo] += toBackend;
        c[cFrom] += fromBackend;
        c[cPassed] += passed;
      },

      snapshot() {
        return { backends: config.backends.slice(), backendPackets: backendPackets.slice() };
      },

      restore(state) {
        const s = state as { backends?: unknown; backendPackets?: unknown } | null;
        if (
          s?.backendPackets instanceof Float64Array &&
          s.backendPackets.length === n &&
          Array.isArray(s.backends) &&
          s.backends.every((text, b) => text === config.backends[b])
        )
          backendPackets.set(s.backendPackets);
      },
    };
    return instance;
  },
});
