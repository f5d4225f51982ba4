/**
 * Prevent mode's answer to a blocked TCP segment: the segment is rewritten in place into the RST its
 * sender gets (RFC 9293 §3.10.7.1), sent back out of `out` — the same rewrite as the firewall's
 * `reject` (nfs/firewall/reject.ts); an NF may import only the SDK and the wire formats, so the
 * TCP half of it lives here too.
 *
 * With ACK: <SEQ=SEG.ACK><CTL=RST>; without: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SEG.LEN
 * counting SYN and FIN. No reset answers a reset. MACs, addresses and ports are swapped, the IP
 * header is rebuilt without options (TTL/hop limit 64), checksums are computed afresh, VLAN tags
 * are kept.
 */
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4View } from '../../src/packet/ipv4.js';
import { Ipv6View } from '../../src/packet/ipv6.js';
import { Layer, type PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag, TcpView } from '../../src/packet/tcp.js';

export class TcpResetter {
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly tcp = new TcpView();
  private readonly v6Addresses = new Uint8Array(32);

  /**
   * Rewrites the TCP segment `parser` is attached to (frame at `frameAt`) into a RST to its sender.
   * Returns the new frame length, or -1 when no reset may be sent (not TCP over Ethernet, a
   * tunnel, or a RST).
   */
  build(parser: PacketParser, frameAt: number): number {
    if (parser.tunnelDepth !== 0 || parser.layerKind[0] !== Layer.Ethernet) return -1;
    if (parser.l4 !== Layer.Tcp || parser.fragment) return -1;
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
    const b = parser.eth.bytes;
    const ipAt = parser.eth.payloadAt();
    let tcpAt: number;
    let pseudo: number;
    if (parser.l3 === Layer.Ipv4) {
      const src = parser.ipv4.src();
      const dst = parser.ipv4.dst();
      const v = this.ip4.attachUnchecked(b, ipAt, 20);
      v.setVersionAndHeaderLength(20);
      v.setDscpEcn(0, 0);
      v.setTotalLength(40);
      v.setIdentification(0);
      v.setFragment(false, false, 0);
      v.setTtl(64);
      v.setProtocol(IpProtocol.Tcp);
      v.setSrc(dst);
      v.setDst(src);
      v.fillChecksum();
      tcpAt = ipAt + 20;
      pseudo = pseudoHeaderSumV4(dst, src, IpProtocol.Tcp, 20);
    } else {
      const a = this.v6Addresses;
      const ip = parser.ipv6;
      for (let k = 0; k < 16; k++) {
        a[k] = b[ip.srcAt() + k];
        a[16 + k] = b[ip.dstAt() + k];
      }
      const v = this.ip6.attachUnchecked(b, ipAt, 40);
      v.setVersionTrafficClassFlowLabel(0, 0);
      v.setPayloadLength(20);
      v.setNextHeader(IpProtocol.Tcp);
      v.setHopLimit(64);
      v.setSrc(a, 16);
      v.setDst(a, 0);
      tcpAt = ipAt + 40;
      pseudo = pseudoHeaderSumV6(b, ipAt + 8, ipAt + 24, IpProtocol.Tcp, 20);
    }
    const v = this.tcp.attachUnchecked(b, tcpAt, 20);
    v.setSrcPort(dstPort);
    v.setDstPort(srcPort);
    v.setSeq(seq);
    v.setAck(ack);
    v.setHeaderLength(20);
    v.setFlags(hasAck ? TcpFlag.Rst : TcpFlag.Rst | TcpFlag.Ack);
    v.setWindow(0);
    v.setUrgentPointer(0);
    v.fillChecksum(pseudo);
    const e = parser.eth;
    const d = e.dstAt();
    const s = e.srcAt();
    for (let k = 0; k < 6; k++) {
      const x = b[d + k];
      b[d + k] = b[s + k];
      b[s + k] = x;
    }
    return tcpAt + 20 - frameAt;
  }
}
