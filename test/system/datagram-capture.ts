/**
 * Test helpers shared by the system tests that hand UDP payloads to tshark: a capture of datagrams
 * as Ethernet/IPv4/UDP frames on loopback (what a collector or a tunnel peer would have captured),
 * and a wait for a condition with a deadline.
 */
import assert from 'node:assert/strict';
import { createCaptureWriter } from '../../src/io/capture.js';
import { ETHERNET_HEADER_LENGTH, EthernetRepr } from '../../src/packet/ethernet.js';
import { IPV4_MIN_HEADER_LENGTH, Ipv4Repr } from '../../src/packet/ipv4.js';
import { UDP_HEADER_LENGTH, UdpRepr } from '../../src/packet/udp.js';

/** Writes each datagram as an Ethernet/IPv4/UDP frame from 127.0.0.1:`srcPort` to 127.0.0.1:`dstPort`. */
export function writeDatagramPcap(
  path: string,
  datagrams: readonly Uint8Array[],
  ports: { srcPort: number; dstPort: number },
): void {
  const writer = createCaptureWriter(path, { format: 'pcap' });
  const headers = ETHERNET_HEADER_LENGTH + IPV4_MIN_HEADER_LENGTH + UDP_HEADER_LENGTH;
  datagrams.forEach((d, i) => {
    const frame = new Uint8Array(headers + d.length);
    let at = EthernetRepr.emit(
      { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: 0x0800 },
      frame,
      0,
    );
    at += Ipv4Repr.emit(
      { src: '127.0.0.1', dst: '127.0.0.1', protocol: 17, payloadLength: UDP_HEADER_LENGTH + d.length },
      frame,
      at,
    );
    frame.set(d, at + UDP_HEADER_LENGTH);
    UdpRepr.emit({ ...ports, payloadLength: d.length }, frame, at);
    writer.writePacket(frame, 0, frame.length, 1_700_000_000 + i, 0);
  });
  writer.close();
}

/** Polls `cond` every 20 ms; fails naming `what` after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
