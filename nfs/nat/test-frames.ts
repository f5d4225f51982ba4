/**
 * Test frames for the NAT's tests (unit and system): Ethernet / IPv4 or IPv6 / TCP, UDP or ICMP
 * with every checksum filled, and ICMP errors quoting such a frame.
 */
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { Icmpv4Repr } from '../../src/packet/icmpv4.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';

export interface FrameSpec {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'icmp' | number;
  srcPort?: number;
  dstPort?: number;
  /** UDP without checksum (0). */
  noChecksum?: boolean;
  icmpType?: number;
  /** Bytes of payload (0x61, 0x62, …). */
  payload?: number;
  ttl?: number;
}

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };

/** Ethernet / IPv4 or IPv6 / TCP, UDP or ICMP echo with a payload, checksums filled. */
export function frame(spec: FrameSpec): Uint8Array {
  const v6 = spec.src.includes(':');
  const protocol =
    spec.protocol === 'tcp'
      ? IpProtocol.Tcp
      : spec.protocol === 'udp'
        ? IpProtocol.Udp
        : spec.protocol === 'icmp'
          ? IpProtocol.Icmp
          : spec.protocol;
  const payload = Uint8Array.from({ length: spec.payload ?? 5 }, (_, i) => 0x61 + i);
  const l4Length = (protocol === IpProtocol.Tcp ? 20 : 8) + payload.length;
  const ipLength = v6 ? 40 : 20;
  const bytes = new Uint8Array(14 + ipLength + l4Length);
  EthernetRepr.emit({ ...ETH, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 }, bytes);
  if (v6)
    Ipv6Repr.emit({ src: spec.src, dst: spec.dst, nextHeader: protocol, payloadLength: l4Length }, bytes, 14);
  else
    Ipv4Repr.emit(
      {
        src: spec.src,
        dst: spec.dst,
        protocol,
        payloadLength: l4Length,
        ...(spec.ttl ? { ttl: spec.ttl } : {}),
      },
      bytes,
      14,
    );
  const at = 14 + ipLength;
  const pseudo = v6
    ? pseudoHeaderSumV6(bytes, 14 + 8, 14 + 24, protocol, l4Length)
    : pseudoHeaderSumV4(ipv4(spec.src), ipv4(spec.dst), protocol, l4Length);
  const srcPort = spec.srcPort ?? 40000;
  const dstPort = spec.dstPort ?? 80;
  if (protocol === IpProtocol.Tcp) {
    bytes.set(payload, at + 20);
    const tcp = { srcPort, dstPort, seq: 1, ack: 0, flags: 0x18, window: 1000, urgentPointer: 0 };
    TcpRepr.emit({ ...tcp, options: new Uint8Array(0), payloadLength: payload.length }, bytes, at, pseudo);
  } else if (protocol === IpProtocol.Udp) {
    bytes.set(payload, at + 8);
    UdpRepr.emit(
      { srcPort, dstPort, payloadLength: payload.length },
      bytes,
      at,
      spec.noChecksum ? null : pseudo,
    );
  } else if (protocol === IpProtocol.Icmp) {
    const type = spec.icmpType ?? 8;
    Icmpv4Repr.emit({ type, code: 0, identifier: srcPort, sequence: 1, payload }, bytes, at);
  } else bytes.set(payload, at);
  return bytes;
}

/**
 * An ICMPv4 error from `from` to `to` quoting the IP packet of `offending` (an Ethernet frame) and
 * `quote` bytes of its payload (RFC 792: at least 8; Linux quotes as much as fits in 576 bytes).
 */
export function icmpError(
  from: string,
  to: string,
  type: number,
  code: number,
  offending: Uint8Array,
  quote = 8,
): Uint8Array {
  const ip = offending.subarray(14);
  const header = (ip[0] & 0x0f) * 4;
  const quoted = ip.slice(0, Math.min(ip.length, header + quote));
  const length = 8 + quoted.length;
  const bytes = new Uint8Array(14 + 20 + length);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src: from, dst: to, protocol: IpProtocol.Icmp, payloadLength: length }, bytes, 14);
  Icmpv4Repr.emit({ type, code, identifier: 0, sequence: 0, payload: quoted }, bytes, 34);
  return bytes;
}
