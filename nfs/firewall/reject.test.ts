import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4, formatIpv6 } from '../../src/packet/address.js';
import { pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { read16, read32 } from '../../src/packet/bytes.js';
import { Rejecter } from '../../src/packet/reject.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import { ACK, RST, SYN, tcp, udp } from './test-frames.js';
import firewall from './index.js';

const REJECT_ALL = { default: 'accept', rules: [{ action: 'reject' }] };

function parsed(bytes: Uint8Array): PacketParser {
  const parser = new PacketParser(); // verifies every checksum
  assert.equal(parser.attach(bytes, 0, bytes.length), DropReason.None);
  return parser;
}

function v6(protocol: 'tcp' | 'udp', flags = SYN): Uint8Array {
  const l4 = protocol === 'tcp' ? 20 : 8;
  const bytes = new Uint8Array(14 + 40 + l4);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv6 },
    bytes,
  );
  const nh = protocol === 'tcp' ? IpProtocol.Tcp : IpProtocol.Udp;
  Ipv6Repr.emit({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: nh, payloadLength: l4 }, bytes, 14);
  const pseudo = pseudoHeaderSumV6(bytes, 22, 38, nh, l4);
  if (protocol === 'tcp')
    TcpRepr.emit(
      {
        srcPort: 40000,
        dstPort: 22,
        seq: 77,
        ack: 0,
        flags,
        window: 1,
        urgentPointer: 0,
        options: new Uint8Array(0),
        payloadLength: 0,
      },
      bytes,
      54,
      pseudo,
    );
  else UdpRepr.emit({ srcPort: 5000, dstPort: 53, payloadLength: 0 }, bytes, 54, pseudo);
  return bytes;
}

describe('firewall reject', () => {
  it('never throws on random or truncated frames with reject, state and fragment rules', () => {
    const nf = new NfHarness(firewall, {
      default: 'drop',
      maxConnections: 16,
      rules: [
        { action: 'accept', state: ['established', 'related'] },
        { action: 'drop', state: ['invalid'] },
        { action: 'reject', protocol: 'tcp', dstPort: '22' },
        { action: 'reject' },
      ],
    });
    const seeds = [
      tcp('10.0.0.1', '192.0.2.10', 40000, 22, SYN),
      udp('10.0.0.1', '192.0.2.10', 5000, 53),
      v6('udp'),
    ];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(120),
        fc.nat(2),
        fc.nat(255),
        (random, cut, which, flip) => {
          const truncated = seeds[which].subarray(0, Math.min(cut, seeds[which].length));
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          for (const result of nf.run([random, truncated, flipped], cut * 1e9)) {
            assert.ok(result.output === 'out' || result.drop !== undefined);
            if (result.output === 'out' && result.bytes.length > 14 && result.bytes !== random) {
              // Whatever went out parses (answers with valid checksums, or untouched non-IP frames).
              const reason = new PacketParser({ verifyChecksums: false }).attach(
                result.bytes,
                0,
                result.bytes.length,
              );
              assert.equal(reason, DropReason.None);
            }
          }
        },
      ),
      { seed: 3, numRuns: 400 },
    );
  });

  it('answers a TCP SYN with RST,ACK (SEQ 0, ACK = SEG.SEQ + 1), addresses, ports and MACs swapped', () => {
    const nf = new NfHarness(firewall, REJECT_ALL);
    const [result] = nf.run([tcp('10.0.0.1', '192.0.2.10', 40000, 22, SYN, 1000)]);
    assert.equal(result.output, 'out');
    assert.equal(result.bytes.length, 54);
    const p = parsed(result.bytes);
    assert.equal(formatIpv4(p.ipv4.src()), '192.0.2.10');
    assert.equal(formatIpv4(p.ipv4.dst()), '10.0.0.1');
    assert.equal(p.ipv4.ttl(), 64);
    assert.deepEqual([p.tcp.srcPort(), p.tcp.dstPort()], [22, 40000]);
    assert.deepEqual([p.tcp.flags(), p.tcp.seq(), p.tcp.ack(), p.tcp.window()], [RST | ACK, 0, 1001, 0]);
    assert.deepEqual(Array.from(result.bytes.subarray(0, 12)), [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    assert.equal(nf.counters().rejected, 1);
    assert.equal(nf.counters().accepted, 0);
  });

  it('answers a segment with ACK by RST with SEQ = SEG.ACK; never answers a RST', () => {
    const nf = new NfHarness(firewall, REJECT_ALL);
    const [withAck, reset] = nf.run([
      tcp('10.0.0.1', '192.0.2.10', 40000, 22, ACK, 5000, 0xfffffff0, 100),
      tcp('10.0.0.1', '192.0.2.10', 40000, 22, RST, 5000),
    ]);
    const p = parsed(withAck.bytes);
    assert.deepEqual(
      [p.tcp.flags(), p.tcp.seq(), p.tcp.ack(), p.tcp.payloadLength()],
      [RST, 0xfffffff0, 0, 0],
    );
    assert.equal(reset.drop, 'denied');
    assert.deepEqual([nf.counters().rejected, nf.counters().denied], [1, 1]);
  });

  it('answers UDP with ICMP port unreachable quoting the original datagram', () => {
    const nf = new NfHarness(firewall, REJECT_ALL);
    const original = udp('10.0.0.1', '192.0.2.10', 5000, 53);
    const [result] = nf.run([original]);
    const p = parsed(result.bytes);
    assert.equal(p.l4, Layer.Icmpv4);
    assert.deepEqual([p.icmpv4.type(), p.icmpv4.code()], [3, 3]);
    assert.equal(formatIpv4(p.ipv4.src()), '192.0.2.10');
    assert.equal(formatIpv4(p.ipv4.dst()), '10.0.0.1');
    assert.deepEqual(result.bytes.subarray(14 + 28), original.subarray(14));
    assert.equal(result.bytes.length, 14 + 28 + 28);
  });

  it('quotes at most 576 bytes of IPv4 and never answers an ICMP error', () => {
    const nf = new NfHarness(firewall, REJECT_ALL);
    const [big] = nf.run([udpWithPayload(1400)]);
    const p = parsed(big.bytes);
    assert.equal(p.ipv4.totalLength(), 576);
    const [again] = nf.run([big.bytes]); // the ICMP error itself: no error about an error
    assert.equal(again.drop, 'denied');
  });

  it('IPv6: TCP RST and ICMPv6 port unreachable (type 1 code 4), checksums valid', () => {
    const nf = new NfHarness(firewall, REJECT_ALL);
    const [rst, unreach] = nf.run([v6('tcp'), v6('udp')]);
    const t = parsed(rst.bytes);
    assert.equal(formatIpv6(t.ipv6.bytes.subarray(t.ipv6.srcAt(), t.ipv6.srcAt() + 16)), '2001:db8::2');
    assert.deepEqual([t.tcp.flags(), t.tcp.seq(), t.tcp.ack()], [RST | ACK, 0, 78]);
    const u = parsed(unreach.bytes);
    assert.equal(u.l4, Layer.Icmpv6);
    assert.deepEqual([u.icmpv6.type(), u.icmpv6.code()], [1, 4]);
    assert.equal(unreach.bytes.length, 14 + 48 + 48);
    assert.equal(nf.counters().rejected, 2);
  });
});

function udpWithPayload(n: number): Uint8Array {
  const base = udp('10.0.0.1', '192.0.2.10', 5000, 53);
  const bytes = new Uint8Array(base.length + n);
  bytes.set(base);
  // Rewrite lengths and checksums for the bigger datagram.
  const view = new DataView(bytes.buffer);
  view.setUint16(16, 28 + n);
  view.setUint16(24, 0);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += view.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  view.setUint16(24, ~sum & 0xffff);
  view.setUint16(38, 8 + n);
  view.setUint16(40, 0); // UDP checksum 0: none (IPv4)
  return bytes;
}

describe('Rejecter.buildTooBig (a hop too narrow for the packet)', () => {
  it('answers IPv4 with DF by fragmentation needed with the MTU, IPv6 by packet too big; both parse with every checksum checked', () => {
    const rejecter = new Rejecter();
    const slot = new Uint8Array(2048);
    const original = tcp('10.0.0.1', '10.0.0.2', 40000, 443, ACK, 1000, 1, 1400);
    slot.set(original);
    const parser = new PacketParser();
    assert.equal(parser.attach(slot, 0, original.length), DropReason.None);
    const n = rejecter.buildTooBig(parser, 0, slot.length, 1400);
    const answer = parsed(slot.slice(0, n));
    assert.equal(answer.l4, Layer.Icmpv4);
    assert.deepEqual([answer.icmpv4.type(), answer.icmpv4.code()], [3, 4]);
    assert.equal(
      read16(slot, answer.icmpv4.at + 6),
      1400,
      'next-hop MTU in the second half of the word (RFC 1191)',
    );
    assert.equal(read16(slot, answer.icmpv4.at + 4), 0);
    assert.equal(formatIpv4(answer.ipv4.src()), '10.0.0.2');
    assert.equal(formatIpv4(answer.ipv4.dst()), '10.0.0.1');
    assert.equal(n, 14 + 576, 'quotes up to 576 bytes of IP datagram (RFC 1812)');
    assert.deepEqual([...slot.subarray(42, 62)], [...original.subarray(14, 34)], 'the original IP header');

    const six = new Uint8Array(2048);
    const original6 = v6('udp');
    six.set(original6);
    assert.equal(parser.attach(six, 0, original6.length), DropReason.None);
    const n6 = rejecter.buildTooBig(parser, 0, six.length, 1280);
    const answer6 = parsed(six.slice(0, n6));
    assert.equal(answer6.l4, Layer.Icmpv6);
    assert.deepEqual([answer6.icmpv6.type(), answer6.icmpv6.code()], [2, 0]);
    assert.equal(read32(six, answer6.icmpv6.at + 4), 1280, 'the MTU (RFC 4443 §3.2)');
    assert.equal(formatIpv6(six, answer6.ipv6.dstAt()), '2001:db8::1');
  });

  it('sends nothing for IPv4 without DF (a router would fragment it) or for an ICMP error', () => {
    const rejecter = new Rejecter();
    const bytes = new Uint8Array(2048);
    EthernetRepr.emit(
      { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
      bytes,
    );
    Ipv4Repr.emit(
      { src: '10.0.0.1', dst: '10.0.0.2', protocol: IpProtocol.Udp, payloadLength: 8, dontFragment: false },
      bytes,
      14,
    );
    UdpRepr.emit({ srcPort: 1, dstPort: 2, payloadLength: 0 }, bytes, 34, null);
    const parser = new PacketParser();
    assert.equal(parser.attach(bytes, 0, 42), DropReason.None);
    assert.equal(rejecter.buildTooBig(parser, 0, bytes.length, 1400), -1);
    // An ICMP error (this answer itself) is never answered.
    const slot = new Uint8Array(2048);
    slot.set(tcp('10.0.0.1', '10.0.0.2', 40000, 443, ACK));
    assert.equal(parser.attach(slot, 0, 54), DropReason.None);
    const n = rejecter.buildTooBig(parser, 0, slot.length, 1400);
    assert.equal(parser.attach(slot, 0, n), DropReason.None);
    assert.equal(rejecter.buildTooBig(parser, 0, slot.length, 1400), -1);
  });
});
