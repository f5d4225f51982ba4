/**
 * Input recipes for the golden pcap cases (test/pcap/<case>/case.json, `"input": { "recipe": name }`):
 * each returns the frames of the case's input capture, crafted with every checksum filled, so a
 * case's input is reviewable code instead of an opaque binary.
 */
import { ACK, SYN, tcp, udp } from '../../nfs/firewall/test-frames.js';
import { frame, icmpError } from '../../nfs/nat/test-frames.js';

const SERVER = '198.51.100.7';
const NAT_ADDRESS = '203.0.113.1';
const ROUTER = '192.0.2.1';

/**
 * 24 inside clients (10.0.0.1–24) each open a web session (SYN, ACK, data) and try SSH to the
 * server; the server answers the web sessions at the NAT's address; a router on the path sends
 * back time-exceeded errors quoting 8 of the translated web packets; a few DNS queries and pings.
 */
function clientsThroughNat(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let c = 1; c <= 24; c++) {
    const client = `10.0.0.${c}`;
    const port = 40000 + c;
    frames.push(tcp(client, SERVER, port, 80, SYN, 1000));
    frames.push(tcp(client, SERVER, port + 100, 22, SYN, 5000));
    frames.push(tcp(SERVER, NAT_ADDRESS, 80, port, SYN | ACK, 9000, 1001));
    frames.push(tcp(client, SERVER, port, 80, ACK, 1001, 9001));
    frames.push(tcp(client, SERVER, port, 80, ACK, 1001, 9001, 64));
    frames.push(tcp(client, SERVER, port + 100, 22, ACK, 5001, 0, 32));
    if (c <= 8) {
      // The router quotes the whole translated packet, as the NAT sent it (port preserved), as Linux does up to 576 bytes: tshark then checks the quoted TCP checksum too.
      frames.push(
        icmpError(ROUTER, NAT_ADDRESS, 11, 0, tcp(NAT_ADDRESS, SERVER, port, 80, ACK, 1001, 9001, 64), 1000),
      );
    }
    if (c % 4 === 0) {
      frames.push(udp(client, '198.51.100.53', 5300 + c, 53));
      frames.push(frame({ src: client, dst: SERVER, protocol: 'icmp', srcPort: 700 + c }));
    }
  }
  return frames;
}

/** 200 clients, each a TCP connection of 4 packets to the VIP 192.0.2.10:80, interleaved. */
function clientsToVip(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let round = 0; round < 4; round++)
    for (let c = 0; c < 200; c++)
      frames.push(
        tcp(`172.16.${c >> 8}.${c & 255}`, '192.0.2.10', 20000 + c, 80, round === 0 ? SYN : ACK, 100 + round),
      );
  return frames;
}

/** UDP to three routed prefixes at TTL 64, and to one at TTL 1 (the router answers time exceeded). */
function routedTraffic(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let n = 0; n < 30; n++) {
    frames.push(frame({ src: '192.168.0.10', dst: `10.1.0.${n + 1}`, protocol: 'udp', srcPort: 1000 + n }));
    frames.push(frame({ src: '192.168.0.10', dst: `10.2.${n}.1`, protocol: 'tcp', srcPort: 2000 + n }));
    frames.push(
      frame({ src: '192.168.0.10', dst: `172.20.0.${n + 1}`, protocol: 'icmp', srcPort: 3000 + n }),
    );
  }
  for (let n = 0; n < 5; n++)
    frames.push(
      frame({ src: '192.168.0.10', dst: `10.1.0.${n + 1}`, protocol: 'udp', srcPort: 4000 + n, ttl: 1 }),
    );
  return frames;
}

export const RECIPES: Readonly<Record<string, () => Uint8Array[]>> = {
  'clients-through-nat': clientsThroughNat,
  'clients-to-vip': clientsToVip,
  'routed-traffic': routedTraffic,
};
