/**
 * A rejection built in place: the rejected packet is rewritten into the answer its sender gets,
 * which goes back out towards it (an NF cannot allocate packets). The firewall's `reject` action
 * uses all of it, the IDS's prevent mode the TCP reset (`buildReset`).
 *
 * - TCP: a RST (RFC 9293 §3.10.7.1): when the segment has ACK, <SEQ=SEG.ACK><CTL=RST>; otherwise
 *   <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SEG.LEN counting SYN and FIN. No reset answers a reset.
 * - Anything else: ICMP destination unreachable, port unreachable (type 3 code 3; ICMPv6 type 1 code
 *   4), quoting as much of the original datagram as fits in 576 bytes (IPv4, RFC 1812 §4.3.2.3) or
 *   1280 bytes (IPv6, RFC 4443 §3.1) and in the packet's slot. No ICMP error answers an ICMP error,
 *   a non-first fragment, or a multicast/broadcast packet or source (RFC 1122 §3.2.2, RFC 4443 §2.4).
 *
 * - A packet too big for the next hop (`buildTooBig`): ICMP fragmentation needed (IPv4 with DF) or
 *   ICMPv6 packet too big, carrying the MTU that hop takes, quoted the same way.
 *
 * MACs, addresses and ports are swapped; the IP header is rebuilt without options or extension
 * headers (TTL/hop limit 64) and every checksum is computed afresh. VLAN tags are kept.
 */
import { write32 } from './bytes.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from './checksum.js';
import { Icmpv4View } from './icmpv4.js';
import { Icmpv6View } from './icmpv6.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { Ipv6View } from './ipv6.js';
import { Layer, type PacketParser } from './packet-parser.js';
import { TcpFlag, TcpView } from './tcp.js';

const IPV4_QUOTE_LIMIT = 576;
const IPV6_QUOTE_LIMIT = 1280;

export class Rejecter {
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly tcp = new TcpView();
  private readonly icmp4 = new Icmpv4View();
  private readonly icmp6 = new Icmpv6View();
  private readonly scratch = new Uint8Array(32);

  /**
   * Rewrites the packet `parser` is attached to (which starts at `frameAt` and may grow to
   * `frameAt + capacity`) into its rejection. Returns the new frame length, or -1 when no answer may
   * be sent (the caller drops the packet instead).
   */
  build(parser: PacketParser, frameAt: number, capacity: number): number {
    if (parser.tunnelDepth !== 0 || parser.layerKind[0] !== Layer.Ethernet) return -1;
    if (parser.l4 === Layer.Tcp && !parser.fragment) return this.reset(parser, frameAt);
    return this.unreachable(parser, frameAt, capacity);
  }

  /**
   * The TCP half only (an IPS resetting a flow): a RST to the sender of the segment `parser` is
   * attached to, or -1 when that is not a whole TCP segment over Ethernet or is itself a RST.
   */
  buildReset(parser: PacketParser, frameAt: number): number {
    if (parser.tunnelDepth !== 0 || parser.layerKind[0] !== Layer.Ethernet) return -1;
    if (parser.l4 !== Layer.Tcp || parser.fragment) return -1;
    return this.reset(parser, frameAt);
  }

  private swapMacs(parser: PacketParser): void {
    const b = parser.eth.bytes;
    const d = parser.eth.dstAt();
    const s = parser.eth.srcAt();
    for (let i = 0; i < 6; i++) {
      const t = b[d + i];
      b[d + i] = b[s + i];
      b[s + i] = t;
    }
  }

  private reset(parser: PacketParser, frameAt: number): number {
    const t = parser.tcp;
    const flags = t.flags();
    if ((flags & TcpFlag.Rst) !== 0) return -1;
    const srcPort = t.srcPort();
    const dstPort = t.dstPort();
    let segLength = t.payloadLength();
    if ((flags & TcpFlag.Syn) !== 0) segLength++;
    if ((flags & TcpFlag.Fin) !== 0) segLength++;
    const hasAck = (flags & TcpFlag.Ack) !== 0;
    const seq = hasAck ? t.ack() : 0;
    const ack = hasAck ? 0 : (t.seq() + segLength) >>> 0;
    const outFlags = hasAck ? TcpFlag.Rst : TcpFlag.Rst | TcpFlag.Ack;
    const b = parser.eth.bytes;
    const ipAt = parser.eth.payloadAt();
    let tcpAt: number;
    let pseudo: number;
    if (parser.l3 === Layer.Ipv4) {
      const src = parser.ipv4.src();
      const dst = parser.ipv4.dst();
      this.writeIpv4(b, ipAt, 20, IpProtocol.Tcp, dst, src);
      tcpAt = ipAt + 20;
      pseudo = pseudoHeaderSumV4(dst, src, IpProtocol.Tcp, 20);
    } else {
      this.saveV6Addresses(parser);
      this.writeIpv6(b, ipAt, 20, IpProtocol.Tcp);
      tcpAt = ipAt + 40;
      pseudo = pseudoHeaderSumV6(b, ipAt + 8, ipAt + 24, IpProtocol.Tcp, 20);
    }
    const v = this.tcp.attachUnchecked(b, tcpAt, 20);
    v.setSrcPort(dstPort);
    v.setDstPort(srcPort);
    v.setSeq(seq);
    v.setAck(ack);
    v.setHeaderLength(20);
    v.setFlags(outFlags);
    v.setWindow(0);
    v.setUrgentPointer(0);
    v.fillChecksum(pseudo);
    this.swapMacs(parser);
    return tcpAt + 20 - frameAt;
  }

  /**
   * The answer of a hop that cannot carry the packet `parser` is attached to in one piece: ICMP
   * destination unreachable, fragmentation needed, with the next-hop MTU (type 3 code 4, RFC 1191)
   * for IPv4 with DF set; ICMPv6 packet too big with the MTU (type 2, RFC 4443 §3.2, RFC 8201) for
   * IPv6. Built in place like the other rejections; -1 when none may be sent (IPv4 without DF: a
   * router would fragment it; and the cases `build` refuses).
   */
  buildTooBig(parser: PacketParser, frameAt: number, capacity: number, mtu: number): number {
    if (parser.tunnelDepth !== 0 || parser.layerKind[0] !== Layer.Ethernet) return -1;
    if (parser.l3 === Layer.Ipv4) {
      if (!parser.ipv4.dontFragment()) return -1;
      return this.icmpError(parser, frameAt, capacity, 3, 4, mtu & 0xffff);
    }
    return this.icmpError(parser, frameAt, capacity, 2, 0, mtu >>> 0);
  }

  private unreachable(parser: PacketParser, frameAt: number, capacity: number): number {
    return parser.l3 === Layer.Ipv4
      ? this.icmpError(parser, frameAt, capacity, 3, 3, 0)
      : this.icmpError(parser, frameAt, capacity, 1, 4, 0);
  }

  /**
   * Rewrites the packet into the ICMP (IPv4) or ICMPv6 error `type`/`code` whose second header
   * word is `word` (0, or an MTU), quoting the original as the RFCs allow; -1 when no error may
   * answer it.
   */
  private icmpError(
    parser: PacketParser,
    frameAt: number,
    capacity: number,
    type: number,
    code: number,
    word: number,
  ): number {
    const b = parser.eth.bytes;
    const ipAt = parser.eth.payloadAt();
    const end = frameAt + capacity;
    if (parser.l3 === Layer.Ipv4) {
      const ip = parser.ipv4;
      if (ip.fragmentOffset() !== 0) return -1;
      if (parser.l4 === Layer.Icmpv4 && isIcmpv4Error(parser.icmpv4.type())) return -1;
      const src = ip.src();
      const dst = ip.dst();
      if (dst >>> 28 === 0xe || dst === 0xffffffff || src >>> 28 === 0xe || src === 0 || src === 0xffffffff)
        return -1;
      const quote = Math.min(ip.totalLength(), IPV4_QUOTE_LIMIT - 28, end - ipAt - 28);
      if (quote < ip.headerLength() + 8) return -1;
      b.copyWithin(ipAt + 28, ipAt, ipAt + quote);
      this.writeIpv4(b, ipAt, 8 + quote, IpProtocol.Icmp, dst, src);
      const m = this.icmp4.attachUnchecked(b, ipAt + 20, 8 + quote);
      m.setType(type);
      m.setCode(code);
      write32(b, ipAt + 24, word);
      m.fillChecksum();
      this.swapMacs(parser);
      return ipAt + 28 + quote - frameAt;
    }
    const ip = parser.ipv6;
    if (parser.fragment && ip.fragmentOffset() !== 0) return -1;
    if (parser.l4 === Layer.Icmpv6 && parser.icmpv6.type() < 128) return -1;
    const srcAt = ip.srcAt();
    if (b[ip.dstAt()] === 0xff || b[srcAt] === 0xff) return -1;
    let unspecified = true;
    for (let i = 0; i < 16; i++) if (b[srcAt + i] !== 0) unspecified = false;
    if (unspecified) return -1;
    this.saveV6Addresses(parser);
    const quote = Math.min(40 + ip.payloadLength(), IPV6_QUOTE_LIMIT - 48, end - ipAt - 48);
    if (quote < 48) return -1;
    b.copyWithin(ipAt + 48, ipAt, ipAt + quote);
    this.writeIpv6(b, ipAt, 8 + quote, IpProtocol.Icmpv6);
    const m = this.icmp6.attachUnchecked(b, ipAt + 40, 8 + quote);
    m.setType(type);
    m.setCode(code);
    write32(b, ipAt + 44, word);
    m.fillChecksum(pseudoHeaderSumV6(b, ipAt + 8, ipAt + 24, IpProtocol.Icmpv6, 8 + quote));
    this.swapMacs(parser);
    return ipAt + 48 + quote - frameAt;
  }

  private writeIpv4(
    b: Uint8Array,
    at: number,
    payload: number,
    protocol: number,
    src: number,
    dst: number,
  ): void {
    const v = this.ip4.attachUnchecked(b, at, 20);
    v.setVersionAndHeaderLength(20);
    v.setDscpEcn(0, 0);
    v.setTotalLength(20 + payload);
    v.setIdentification(0);
    v.setFragment(false, false, 0);
    v.setTtl(64);
    v.setProtocol(protocol);
    v.setSrc(src);
    v.setDst(dst);
    v.fillChecksum();
  }

  /** Keeps the original source (scratch[0..16]) and destination (scratch[16..32]). */
  private saveV6Addresses(parser: PacketParser): void {
    const b = parser.ipv6.bytes;
    this.scratch.set(b.subarray(parser.ipv6.srcAt(), parser.ipv6.srcAt() + 16), 0);
    this.scratch.set(b.subarray(parser.ipv6.dstAt(), parser.ipv6.dstAt() + 16), 16);
  }

  /** A fixed IPv6 header from the original destination to the original source. */
  private writeIpv6(b: Uint8Array, at: number, payload: number, nextHeader: number): void {
    const v = this.ip6.attachUnchecked(b, at, 40);
    v.setVersionTrafficClassFlowLabel(0, 0);
    v.setPayloadLength(payload);
    v.setNextHeader(nextHeader);
    v.setHopLimit(64);
    v.setSrc(this.scratch, 16);
    v.setDst(this.scratch, 0);
  }
}

function isIcmpv4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}
