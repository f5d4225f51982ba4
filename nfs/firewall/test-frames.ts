/** Test frames for the firewall's tests: Ethernet / IPv4 / TCP or UDP with checksums filled. */
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const RST = 0x04;

export function tcp(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  flags: number,
  seq = 1000,
  ack = 0,
  payload = 0,
): Uint8Array {
  const bytes = new Uint8Array(14 + 20 + 20 + payload);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src, dst, protocol: IpProtocol.Tcp, payloadLength: 20 + payload }, bytes, 14);
  const pseudo = pseudoHeaderSumV4(ipv4(src), ipv4(dst), IpProtocol.Tcp, 20 + payload);
  TcpRepr.emit(
    {
      srcPort,
      dstPort,
      seq,
      ack,
      flags,
      window: 1000,
      urgentPointer: 0,
      options: new Uint8Array(0),
      payloadLength: payload,
    },
    bytes,
    34,
    pseudo,
  );
  return bytes;
}

export function udp(src: string, dst: string, srcPort: number, dstPort: number): Uint8Array {
  const bytes = new Uint8Array(14 + 20 + 8);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src, dst, protocol: IpProtocol.Udp, payloadLength: 8 }, bytes, 14);
  UdpRepr.emit(
    { srcPort, dstPort, payloadLength: 0 },
    bytes,
    34,
    pseudoHeaderSumV4(ipv4(src), ipv4(dst), 17, 8),
  );
  return bytes;
}
