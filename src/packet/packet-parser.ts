/**
 * The layered parser: walks a frame from its link layer to the innermost transport header, checking
 * each layer with its view, and records where every layer starts. It is iterative (a loop over a
 * `next` layer, no recursion), so nesting depth costs no stack, and it is bounded: more tags,
 * extension headers, tunnels or layers than configured is a `TooManyLayers` drop.
 *
 * After a successful `attach`, the views (`eth`, `ipv4`/`ipv6`, `tcp`/`udp`/`icmpv4`/`icmpv6`)
 * describe the innermost packet: for a VXLAN or GENEVE frame that is the encapsulated one, and
 * `tunnel`, `tunnelAt` and the layer list tell where the outer headers were.
 *
 * @example
 * const parser = new PacketParser();
 * const reason = parser.attach(frame, 0, frame.length, LinkType.Ethernet);
 * if (reason !== DropReason.None) drops[parser.failedLayer * DROP_REASON_COUNT + reason]++;
 * else if (parser.flowKey(key)) table.lookup(key);
 */
import { ArpView } from './arp.js';
import { foldSum, pseudoHeaderSumV4At, pseudoHeaderSumV6, sum16 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { ETHERNET_HEADER_LENGTH, EthernetView } from './ethernet.js';
import type { FlowKey } from './flow-key.js';
import { GeneveView } from './geneve.js';
import { Icmpv4Type, Icmpv4View } from './icmpv4.js';
import { Icmpv6Type, Icmpv6View } from './icmpv6.js';
import { EtherType, IpProtocol, UdpPort } from './ip-protocol.js';
import { IPV4_MIN_HEADER_LENGTH, Ipv4Field, Ipv4View } from './ipv4.js';
import { Ipv6View } from './ipv6.js';
import { LinkType } from './link-type.js';
import { TCP_MIN_HEADER_LENGTH, TcpView } from './tcp.js';
import { UDP_HEADER_LENGTH, UdpView } from './udp.js';
import { VxlanView } from './vxlan.js';

/** The layers the parser knows. */
export const Layer = {
  None: 0,
  Ethernet: 1,
  Arp: 2,
  Ipv4: 3,
  Ipv6: 4,
  Tcp: 5,
  Udp: 6,
  Icmpv4: 7,
  Icmpv6: 8,
  Vxlan: 9,
  Geneve: 10,
  /** A link type or EtherType the parser does not walk into; not a drop. */
  Unknown: 11,
} as const;
export type Layer = (typeof Layer)[keyof typeof Layer];
export const LAYER_COUNT = 12;
const layerNames = [
  'none',
  'ethernet',
  'arp',
  'ipv4',
  'ipv6',
  'tcp',
  'udp',
  'icmpv4',
  'icmpv6',
  'vxlan',
  'geneve',
  'unknown',
];

/** The snake_case layer name used in counters. @example layerName(Layer.Ipv4) === 'ipv4' */
export function layerName(layer: number): string {
  return layerNames[layer] ?? `layer_${layer}`;
}

export interface ParserOptions {
  /** VLAN tags allowed per Ethernet header (802.1Q/802.1ad). */
  maxTags: number;
  /** IPv6 extension headers allowed per IPv6 header. */
  maxExtensionHeaders: number;
  /** Tunnels to decapsulate (VXLAN, GENEVE); 0 treats them as plain UDP. */
  maxTunnelDepth: number;
  /** Verify TCP, UDP and ICMPv6 checksums (ICMPv4 and IPv4 header checksums are always verified). */
  verifyChecksums: boolean;
}

export const DEFAULT_PARSER_OPTIONS: ParserOptions = {
  maxTags: 2,
  maxExtensionHeaders: 8,
  maxTunnelDepth: 1,
  verifyChecksums: true,
};

/** Layers recorded per frame at most (outer and inner stacks together). */
export const MAX_LAYERS = 16;

export class PacketParser {
  readonly options: ParserOptions;
  readonly eth = new EthernetView();
  readonly arp = new ArpView();
  readonly ipv4 = new Ipv4View();
  readonly ipv6 = new Ipv6View();
  readonly tcp = new TcpView();
  readonly udp = new UdpView();
  readonly icmpv4 = new Icmpv4View();
  readonly icmpv6 = new Icmpv6View();
  readonly vxlan = new VxlanView();
  readonly geneve = new GeneveView();

  /** Kind and offset of each layer of the last frame, outermost first. */
  readonly layerKind = new Uint8Array(MAX_LAYERS);
  readonly layerAt = new Uint32Array(MAX_LAYERS);
  layerCount = 0;
  /** The layer that refused the frame (Layer.None after a success). */
  failedLayer: Layer = Layer.None;
  /** Innermost network layer: Ipv4, Ipv6, Arp, Unknown or None. */
  l3: Layer = Layer.None;
  /** Innermost transport layer, or None (ARP, a non-first fragment, an unknown protocol). */
  l4: Layer = Layer.None;
  /** The outermost tunnel decapsulated, or None. */
  tunnel: Layer = Layer.None;
  /** Tunnels decapsulated. */
  tunnelDepth = 0;
  /** IP protocol of the innermost IP packet (after IPv6 extension headers). */
  protocol = 0;
  /** True when the innermost IP packet is a fragment (first or later). */
  fragment = false;
  /** Start and length of the innermost L4 payload (or IP payload when there is no L4 header). */
  payloadAt = 0;
  payloadLength = 0;

  /** A DataView of the last `bytes` attachCommon read (packets come from one pool: made once). */
  private wordBytes: Uint8Array | null = null;
  private words: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

  constructor(options: Partial<ParserOptions> = {}) {
    this.options = { ...DEFAULT_PARSER_OPTIONS, ...options };
  }

  /** Parses `bytes[at, at+length)` as a frame of `linkType`. Never throws; returns why it refused. */
  attach(bytes: Uint8Array, at: number, length: number, linkType: LinkType = LinkType.Ethernet): DropReason {
    if (linkType === LinkType.Ethernet && this.attachCommon(bytes, at, length)) return DropReason.None;
    return this.attachLayers(bytes, at, length, linkType);
  }

  /**
   * The fast path for the common frame: untagged Ethernet, IPv4 without options and not a fragment,
   * then TCP without options or UDP that is not a tunnel port. It reads the headers directly, a
   * 32-bit word at a time through a DataView (no view calls, which V8 stops inlining in a long
   * packet loop), and succeeds only when every check the layered walk makes passes, leaving exactly
   * the state the walk would. Anything else — another layout, or a check that fails — returns false
   * and the walk decides (and names the drop).
   *
   * Word reads rather than byte reads: each typed-array byte read is a bounds-checked load, and the
   * IPv4 header alone took 40 of them; five DataView words (each one bounds check and a byte swap)
   * made this function ~35 % cheaper in a microbenchmark (22–26 → 13–17 ns for the IPv4 part).
   */
  private attachCommon(bytes: Uint8Array, at: number, length: number): boolean {
    const limit = Math.min(bytes.length, at + Math.max(0, length));
    const ip = at + ETHERNET_HEADER_LENGTH;
    const l4 = ip + IPV4_MIN_HEADER_LENGTH;
    // Written as !(a <= b) so that a NaN length fails here too and the walk decides. A DataView
    // read throws where a byte read gives undefined: only whole offsets in 0..2^32-1 come this way.
    if (!(l4 + UDP_HEADER_LENGTH <= limit) || at >>> 0 !== at) return false;
    const view = bytes === this.wordBytes ? this.words : this.wordsOf(bytes);
    // Words of the IPv4 header, as int32 (never boxed): version·IHL·TOS·total length,
    // identification·flags·fragment offset, TTL·protocol·checksum, source, destination.
    const w0 = view.getInt32(ip);
    if (view.getUint16(at + 12) !== EtherType.Ipv4 || w0 >>> 24 !== 0x45) return false;
    const total = w0 & 0xffff;
    // Total length covers the header and fits the capture; MF clear and fragment offset 0.
    if (total < IPV4_MIN_HEADER_LENGTH || !(ip + total <= limit)) return false;
    const w1 = view.getInt32(ip + 4);
    if ((w1 & 0x3fff) !== 0) return false;
    const w2 = view.getInt32(ip + 8);
    const src = view.getInt32(ip + 12);
    const dst = view.getInt32(ip + 16);
    const addresses = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
    let sum =
      (w0 >>> 16) + (w0 & 0xffff) + (w1 >>> 16) + (w1 & 0xffff) + (w2 >>> 16) + (w2 & 0xffff) + addresses;
    sum = (sum & 0xffff) + (sum >>> 16);
    if ((sum & 0xffff) + (sum >>> 16) !== 0xffff) return false;
    const protocol = (w2 >>> 16) & 0xff;
    const segment = total - IPV4_MIN_HEADER_LENGTH;
    const verify = this.options.verifyChecksums;
    let payloadAt: number;
    let payloadLength: number;
    let layer: Layer;
    if (protocol === IpProtocol.Udp) {
      if (segment < UDP_HEADER_LENGTH) return false;
      // Length·checksum word; the ports word's low half is the destination port.
      const lengthChecksum = view.getInt32(l4 + 4);
      const datagram = lengthChecksum >>> 16;
      if (datagram < UDP_HEADER_LENGTH || datagram > segment) return false;
      if (isTunnelPort(view.getUint16(l4 + 2))) return false;
      if (verify && (lengthChecksum & 0xffff) !== 0) {
        if (foldSum(sum16(bytes, l4, datagram, addresses + IpProtocol.Udp + datagram)) !== 0xffff)
          return false;
      }
      payloadAt = l4 + UDP_HEADER_LENGTH;
      payloadLength = datagram - UDP_HEADER_LENGTH;
      layer = Layer.Udp;
      this.udp.attachUnchecked(bytes, l4, segment);
    } else if (protocol === IpProtocol.Tcp) {
      if (segment < TCP_MIN_HEADER_LENGTH || bytes[l4 + 12] >>> 4 !== 5) return false;
      if (verify && foldSum(sum16(bytes, l4, segment, addresses + IpProtocol.Tcp + segment)) !== 0xffff)
        return false;
      payloadAt = l4 + TCP_MIN_HEADER_LENGTH;
      payloadLength = segment - TCP_MIN_HEADER_LENGTH;
      layer = Layer.Tcp;
      this.tcp.attachUnchecked(bytes, l4, segment);
    } else return false;
    this.eth.attachUnchecked(bytes, at, limit - at, 0);
    this.ipv4.attachUnchecked(bytes, ip, limit - ip);
    this.layerKind[0] = Layer.Ethernet;
    this.layerAt[0] = at;
    this.layerKind[1] = Layer.Ipv4;
    this.layerAt[1] = ip;
    this.layerKind[2] = layer;
    this.layerAt[2] = l4;
    this.layerCount = 3;
    this.failedLayer = Layer.None;
    this.l3 = Layer.Ipv4;
    this.l4 = layer;
    this.tunnel = Layer.None;
    this.tunnelDepth = 0;
    this.protocol = protocol;
    this.fragment = false;
    this.payloadAt = payloadAt;
    this.payloadLength = payloadLength;
    return true;
  }

  /**
   * A DataView over all of `bytes` for word reads (`getInt32`, `getUint16`: big-endian, one bounds
   * check each), the one the fast path uses: made when the parser meets a new array, so an NF asks
   * once per batch, not per packet. @example const words = parser.wordView(batch.bytes);
   */
  wordView(bytes: Uint8Array): DataView<ArrayBufferLike> {
    return bytes === this.wordBytes ? this.words : this.wordsOf(bytes);
  }

  private wordsOf(bytes: Uint8Array): DataView<ArrayBufferLike> {
    this.wordBytes = bytes;
    this.words = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return this.words;
  }

  /**
   * The layered walk alone: every link type, tag, extension header and tunnel, and the drop reasons.
   * `attach` uses it for every frame the fast path does not take; call `attach`.
   */
  attachLayers(bytes: Uint8Array, at: number, length: number, linkType: LinkType): DropReason {
    this.layerCount = 0;
    this.failedLayer = Layer.None;
    this.l3 = Layer.None;
    this.l4 = Layer.None;
    this.tunnel = Layer.None;
    this.tunnelDepth = 0;
    this.protocol = 0;
    this.fragment = false;
    const limit = Math.min(bytes.length, at + Math.max(0, length));
    let next: Layer =
      linkType === LinkType.Ethernet
        ? Layer.Ethernet
        : linkType === LinkType.Ipv4
          ? Layer.Ipv4
          : linkType === LinkType.Ipv6
            ? Layer.Ipv6
            : Layer.None;
    if (linkType === LinkType.RawIp)
      next = at < limit ? (bytes[at] >>> 4 === 6 ? Layer.Ipv6 : Layer.Ipv4) : Layer.Ipv4;
    if (next === Layer.None) next = Layer.Unknown;
    let p = at;
    this.payloadAt = at;
    this.payloadLength = limit - at;

    while (next !== Layer.None) {
      if (this.layerCount === MAX_LAYERS) return this.fail(next, DropReason.TooManyLayers);
      this.layerKind[this.layerCount] = next;
      this.layerAt[this.layerCount] = p;
      this.layerCount++;
      const available = limit - p;
      let reason: DropReason = DropReason.None;
      const current: Layer = next;
      next = Layer.None;
      switch (current) {
        case Layer.Ethernet: {
          reason = this.eth.attach(bytes, p, available, this.options.maxTags);
          if (reason !== DropReason.None) break;
          const type = this.eth.etherType();
          p = this.eth.payloadAt();
          next =
            type === EtherType.Ipv4
              ? Layer.Ipv4
              : type === EtherType.Ipv6
                ? Layer.Ipv6
                : type === EtherType.Arp
                  ? Layer.Arp
                  : Layer.Unknown;
          this.payloadAt = p;
          this.payloadLength = limit - p;
          break;
        }
        case Layer.Arp:
          reason = this.arp.attach(bytes, p, available);
          this.l3 = Layer.Arp;
          break;
        case Layer.Ipv4:
          reason = this.ipv4.attach(bytes, p, available);
          if (reason !== DropReason.None) break;
          this.l3 = Layer.Ipv4;
          this.l4 = Layer.None;
          this.protocol = this.ipv4.protocol();
          this.fragment = this.ipv4.isFragment();
          p = this.ipv4.payloadAt();
          this.payloadAt = p;
          this.payloadLength = this.ipv4.payloadLength();
          // A later fragment carries no transport header; a first fragment carries one, but not
          // the whole segment, so its checksum cannot be verified.
          if (this.ipv4.fragmentOffset() === 0) next = transportLayer(this.protocol, false);
          break;
        case Layer.Ipv6:
          reason = this.ipv6.attach(bytes, p, available, this.options.maxExtensionHeaders);
          if (reason !== DropReason.None) break;
          this.l3 = Layer.Ipv6;
          this.l4 = Layer.None;
          this.protocol = this.ipv6.upperProtocol();
          this.fragment = this.ipv6.isFragment();
          p = this.ipv6.upperAt();
          this.payloadAt = p;
          this.payloadLength = this.ipv6.upperLength();
          if (this.ipv6.fragmentOffset() === 0) next = transportLayer(this.protocol, true);
          break;
        case Layer.Tcp:
          // A first fragment holds the header (ports, flags) but not the segment: the view checks
          // the header against what the fragment carries; the checksum is skipped (verifiable()).
          reason = this.tcp.attach(bytes, p, this.payloadLength);
          if (
            reason === DropReason.None &&
            this.verifiable() &&
            !this.tcp.verifyChecksum(this.pseudoSum(this.payloadLength))
          ) {
            reason = DropReason.BadChecksum;
          }
          if (reason !== DropReason.None) break;
          this.l4 = Layer.Tcp;
          this.payloadAt = this.tcp.payloadAt();
          this.payloadLength = this.tcp.payloadLength();
          break;
        case Layer.Udp: {
          if (this.fragment) {
            // A first fragment's UDP length covers the whole datagram, not this fragment: read
            // the ports, never the length, and never decapsulate a tunnel from a fragment.
            if (this.payloadLength < UDP_HEADER_LENGTH) {
              reason = DropReason.Truncated;
              break;
            }
            this.udp.attachUnchecked(bytes, p, this.payloadLength);
            this.l4 = Layer.Udp;
            this.payloadAt = p + UDP_HEADER_LENGTH;
            this.payloadLength -= UDP_HEADER_LENGTH;
            break;
          }
          reason = this.udp.attach(bytes, p, this.payloadLength);
          if (
            reason === DropReason.None &&
            this.verifiable() &&
            !this.udp.verifyChecksum(this.pseudoSum(this.udp.length()), this.l3 === Layer.Ipv6)
          ) {
            reason = DropReason.BadChecksum;
          }
          if (reason !== DropReason.None) break;
          this.l4 = Layer.Udp;
          this.payloadAt = this.udp.payloadAt();
          this.payloadLength = this.udp.payloadLength();
          if (this.tunnelDepth < this.options.maxTunnelDepth && !this.fragment) {
            const port = this.udp.dstPort();
            if (port === UdpPort.Vxlan) next = Layer.Vxlan;
            else if (port === UdpPort.Geneve) next = Layer.Geneve;
            p = this.payloadAt; // the tunnel header starts after UDP
          } else if (this.options.maxTunnelDepth > 0 && isTunnelPort(this.udp.dstPort()) && !this.fragment) {
            reason = DropReason.TooManyLayers;
          }
          break;
        }
        case Layer.Icmpv4:
          reason = this.icmpv4.attach(bytes, p, this.payloadLength);
          if (reason !== DropReason.None) break;
          this.l4 = Layer.Icmpv4;
          this.payloadAt = this.icmpv4.payloadAt();
          this.payloadLength = this.icmpv4.payloadLength();
          break;
        case Layer.Icmpv6:
          reason = this.icmpv6.attach(bytes, p, this.payloadLength);
          if (
            reason === DropReason.None &&
            this.verifiable() &&
            !this.icmpv6.verifyChecksum(this.pseudoSum(this.payloadLength))
          ) {
            reason = DropReason.BadChecksum;
          }
          if (reason !== DropReason.None) break;
          this.l4 = Layer.Icmpv6;
          this.payloadAt = this.icmpv6.payloadAt();
          this.payloadLength = this.icmpv6.payloadLength();
          break;
        case Layer.Vxlan:
          reason = this.vxlan.attach(bytes, this.payloadAt, this.payloadLength);
          if (reason !== DropReason.None) break;
          p = this.enterTunnel(Layer.Vxlan, this.vxlan.payloadAt());
          next = Layer.Ethernet;
          break;
        case Layer.Geneve: {
          reason = this.geneve.attach(bytes, this.payloadAt, this.payloadLength);
          if (reason !== DropReason.None) break;
          const inner = this.geneve.protocolType();
          p = this.enterTunnel(Layer.Geneve, this.geneve.payloadAt());
          next =
            inner === EtherType.TransparentEthernet
              ? Layer.Ethernet
              : inner === EtherType.Ipv4
                ? Layer.Ipv4
                : inner === EtherType.Ipv6
                  ? Layer.Ipv6
                  : Layer.Unknown;
          break;
        }
        case Layer.Unknown:
          if (this.l3 === Layer.None) this.l3 = Layer.Unknown;
          break;
      }
      if (reason !== DropReason.None) return this.fail(current, reason);
    }
    return DropReason.None;
  }

  /** Offset of the first recorded layer of `kind`, or -1. */
  layerOffset(kind: Layer): number {
    for (let i = 0; i < this.layerCount; i++) if (this.layerKind[i] === kind) return this.layerAt[i];
    return -1;
  }

  /**
   * Fills `key` with the innermost 5-tuple and returns true, or returns false when the frame has
   * no IP layer. Ports are 0 for fragments and protocols without ports; ICMP echo uses its
   * identifier for both ports, so a request and its reply are one flow.
   */
  flowKey(key: FlowKey): boolean {
    // The common case first, small enough to inline; every other layering takes flowKeyAny().
    if (this.l3 === Layer.Ipv4 && (this.l4 === Layer.Udp || this.l4 === Layer.Tcp)) {
      const b = this.ipv4.bytes;
      const ip = this.ipv4.at;
      const l4 = this.l4 === Layer.Udp ? this.udp.at : this.tcp.at;
      if (b === this.wordBytes) {
        // Three word reads (the fast path made this array's DataView); as int32, never boxed.
        const view = this.words;
        const ports = view.getInt32(l4);
        key.setV4(
          view.getInt32(ip + Ipv4Field.Src),
          view.getInt32(ip + Ipv4Field.Dst),
          this.protocol,
          ports >>> 16,
          ports & 0xffff,
        );
        return true;
      }
      key.setV4At(
        b,
        ip + Ipv4Field.Src,
        ip + Ipv4Field.Dst,
        this.protocol,
        (b[l4] << 8) | b[l4 + 1],
        (b[l4 + 2] << 8) | b[l4 + 3],
      );
      return true;
    }
    return this.flowKeyAny(key);
  }

  private flowKeyAny(key: FlowKey): boolean {
    let srcPort = 0;
    let dstPort = 0;
    // l4 is reset at every IP layer and tunnel, so the transport views describe the innermost packet.
    if (this.l4 === Layer.Tcp) {
      srcPort = this.tcp.srcPort();
      dstPort = this.tcp.dstPort();
    } else if (this.l4 === Layer.Udp) {
      srcPort = this.udp.srcPort();
      dstPort = this.udp.dstPort();
    } else if (this.l4 === Layer.Icmpv4) {
      const type = this.icmpv4.type();
      if (type === Icmpv4Type.EchoRequest || type === Icmpv4Type.EchoReply)
        srcPort = dstPort = this.icmpv4.identifier();
    } else if (this.l4 === Layer.Icmpv6) {
      const type = this.icmpv6.type();
      if (type === Icmpv6Type.EchoRequest || type === Icmpv6Type.EchoReply)
        srcPort = dstPort = this.icmpv6.identifier();
    }
    if (this.l3 === Layer.Ipv4) {
      key.setV4At(
        this.ipv4.bytes,
        this.ipv4.at + Ipv4Field.Src,
        this.ipv4.at + Ipv4Field.Dst,
        this.protocol,
        srcPort,
        dstPort,
      );
      return true;
    }
    if (this.l3 === Layer.Ipv6) {
      key.setV6(this.ipv6.bytes, this.ipv6.srcAt(), this.ipv6.dstAt(), this.protocol, srcPort, dstPort);
      return true;
    }
    return false;
  }

  private enterTunnel(kind: Layer, innerAt: number): number {
    if (this.tunnelDepth === 0) this.tunnel = kind;
    this.tunnelDepth++;
    this.l3 = Layer.None;
    this.l4 = Layer.None;
    this.fragment = false;
    return innerAt;
  }

  /** Checksums are verified only when asked, and never on a fragment (the segment is incomplete). */
  private verifiable(): boolean {
    return this.options.verifyChecksums && !this.fragment;
  }

  private pseudoSum(l4Length: number): number {
    if (this.l3 === Layer.Ipv4)
      return pseudoHeaderSumV4At(this.ipv4.bytes, this.ipv4.at, this.protocol, l4Length);
    return pseudoHeaderSumV6(
      this.ipv6.bytes,
      this.ipv6.srcAt(),
      this.ipv6.finalDstAt(),
      this.protocol,
      l4Length,
    );
  }

  private fail(layer: Layer, reason: DropReason): DropReason {
    this.failedLayer = layer;
    return reason;
  }
}

function transportLayer(protocol: number, v6: boolean): Layer {
  if (protocol === IpProtocol.Tcp) return Layer.Tcp;
  if (protocol === IpProtocol.Udp) return Layer.Udp;
  if (protocol === IpProtocol.Icmp && !v6) return Layer.Icmpv4;
  if (protocol === IpProtocol.Icmpv6 && v6) return Layer.Icmpv6;
  return Layer.None;
}

function isTunnelPort(port: number): boolean {
  return port === UdpPort.Vxlan || port === UdpPort.Geneve;
}
