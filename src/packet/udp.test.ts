import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { UdpRepr, UdpView } from './udp.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// A DNS query for example.com/A from 10.0.0.1:53000 to 8.8.8.8:53, IPv4 header and UDP checksum valid.
const ipHeader = hex('45 00 00 39 1c 46 40 00 40 11 04 5e 0a 00 00 01 08 08 08 08');
const datagram = hex(`cf 08 00 35 00 25 9b 1a
  ab cd 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01`);
const packet = new Uint8Array(ipHeader.length + datagram.length);
packet.set(ipHeader);
packet.set(datagram, ipHeader.length);
const SRC = 0x0a000001;
const DST = 0x08080808;
const pseudo = (len: number): number => pseudoHeaderSumV4(SRC, DST, IpProtocol.Udp, len);

// UDP over IPv6 from [2001:db8::1]:40000 to [2001:db8::2]:5353 carrying "hello, ipv6!".
const ipv6Header = hex(`60 00 00 00 00 14 11 40
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02`);
const datagram6 = hex('9c 40 14 e9 00 14 e8 28 68 65 6c 6c 6f 2c 20 69 70 76 36 21');

test('udp: reads every field of a literal datagram inside an IPv4 packet', () => {
  const ip = new Ipv4View();
  assert.equal(ip.attach(packet), DropReason.None);
  const udp = new UdpView();
  assert.equal(udp.attach(packet, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  assert.equal(udp.srcPort(), 53000);
  assert.equal(udp.dstPort(), 53);
  assert.equal(udp.length(), 0x25);
  assert.equal(udp.checksum(), 0x9b1a);
  assert.equal(udp.payloadAt(), 28);
  assert.equal(udp.payloadLength(), 29);
  assert.equal(
    udp.verifyChecksum(pseudoHeaderSumV4(ip.src(), ip.dst(), ip.protocol(), udp.length()), false),
    true,
  );
});

test('udp: the IPv6 literal verifies with the v6 pseudo-header', () => {
  const b = new Uint8Array(40 + datagram6.length);
  b.set(ipv6Header);
  b.set(datagram6, 40);
  const udp = new UdpView();
  assert.equal(udp.attach(b, 40, 20), DropReason.None);
  assert.equal(udp.srcPort(), 40000);
  assert.equal(udp.dstPort(), 5353);
  assert.equal(udp.verifyChecksum(pseudoHeaderSumV6(b, 8, 24, IpProtocol.Udp, 20), true), true);
  b[47] ^= 0x01;
  assert.equal(udp.verifyChecksum(pseudoHeaderSumV6(b, 8, 24, IpProtocol.Udp, 20), true), false);
});

test('udp: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  const repr = UdpRepr.parse(attached(datagram));
  assert.deepEqual(repr, { srcPort: 53000, dstPort: 53, payloadLength: 29 });
  assert.equal(UdpRepr.headerLength(repr), 8);
  for (const at of [0, 9]) {
    const out = dirty(at + datagram.length + 3);
    out.set(datagram.subarray(8), at + 8); // the payload is the caller's
    assert.equal(UdpRepr.emit(repr, out, at, pseudo(datagram.length)), 8);
    assert.deepEqual(out.subarray(at, at + datagram.length), datagram);
    assert.equal(out[at + datagram.length], 0xa5, 'emit must not write past the datagram');
  }
});

test('udp: emit without a pseudo sum leaves the checksum 0 ("none")', () => {
  const out = dirty(8);
  UdpRepr.emit({ srcPort: 1, dstPort: 4789, payloadLength: 0 }, out, 0, null);
  assert.deepEqual(out, hex('00 01 12 b5 00 08 00 00'));
});

test('udp: parse → emit → parse round trip at a non-zero offset', () => {
  const repr: UdpRepr = { srcPort: 65535, dstPort: 1, payloadLength: 5 };
  const buf = dirty(13 + 8 + 5);
  buf.set(hex('01 02 03 04 05'), 13 + 8);
  UdpRepr.emit(repr, buf, 13, pseudo(13));
  const udp = new UdpView();
  assert.equal(udp.attach(buf, 13, 13), DropReason.None);
  assert.deepEqual(UdpRepr.parse(udp), repr);
  assert.equal(udp.verifyChecksum(pseudo(13), false), true);
});

test('udp: checksum 0 is "none" over IPv4 and invalid over IPv6', () => {
  const b = datagram.slice();
  const udp = attached(b);
  udp.setChecksum(0);
  assert.equal(udp.verifyChecksum(pseudo(b.length), false), true);
  assert.equal(udp.verifyChecksum(pseudo(b.length), true), false);
});

test('udp: a computed checksum of 0 is sent as 0xFFFF, and verifies', () => {
  // Choose the last payload word so that the whole sum folds to 0xFFFF (checksum 0).
  const b = dirty(12);
  const udp = new UdpView().attachUnchecked(b, 0, 12);
  UdpRepr.emit({ srcPort: 1234, dstPort: 5678, payloadLength: 4 }, b, 0, null, udp);
  b.fill(0, 8, 12);
  udp.fillChecksum(pseudo(12));
  const needed = udp.checksum();
  b[10] = needed >>> 8;
  b[11] = needed & 0xff;
  udp.fillChecksum(pseudo(12));
  assert.equal(udp.checksum(), 0xffff);
  assert.equal(udp.verifyChecksum(pseudo(12), false), true);
  assert.equal(udp.verifyChecksum(pseudo(12), true), true);
});

test('udp: each kind of lie is rejected with its own reason', () => {
  const cases: [string, (b: Uint8Array) => void, number, DropReason][] = [
    ['fewer than 8 bytes of IP payload', () => undefined, 7, DropReason.Truncated],
    ['length field 7', (b) => ((b[4] = 0), (b[5] = 7)), datagram.length, DropReason.BadLength],
    ['length field 0', (b) => ((b[4] = 0), (b[5] = 0)), datagram.length, DropReason.BadLength],
    ['length field beyond IP payload', (b) => (b[5] += 1), datagram.length, DropReason.Truncated],
    ['IP payload beyond the buffer', () => undefined, datagram.length + 100, DropReason.None],
  ];
  for (const [name, mutate, length, reason] of cases) {
    const b = datagram.slice();
    mutate(b);
    assert.equal(new UdpView().attach(b, 0, length), reason, name);
  }
  // A length field shorter than the IP payload is fine (trailing bytes are padding).
  const udp = attached(datagram);
  assert.equal(udp.attach(placeAt(datagram, 0, 6), 0, datagram.length + 6), DropReason.None);
  const bad = datagram.slice();
  bad[20] ^= 0x40;
  assert.equal(attached(bad).verifyChecksum(pseudo(bad.length), false), false);
});

test('udp: setters write exactly their field', () => {
  const b = dirty(8);
  const udp = new UdpView().attachUnchecked(b, 0, 8);
  udp.setSrcPort(0x0102);
  udp.setDstPort(0x0304);
  udp.setLength(0x0506);
  udp.setChecksum(0x0708);
  assert.deepEqual(b, hex('01 02 03 04 05 06 07 08'));
});

test('udp: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(8), fc.nat(48), (bytes, at, length) => {
      const udp = new UdpView();
      const reason = udp.attach(placeAt(bytes, at, 0), at, length);
      if (reason === DropReason.None) {
        assert.ok(udp.length() <= Math.min(length, bytes.length));
        udp.verifyChecksum(0, true);
      }
    }),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < datagram.length; n++) {
    assert.notEqual(new UdpView().attach(datagram.subarray(0, n)), DropReason.None, `prefix ${n}`);
    assert.notEqual(new UdpView().attach(datagram, 0, n), DropReason.None, `IP payload ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): UdpView {
  const udp = new UdpView();
  assert.equal(udp.attach(bytes, at), DropReason.None);
  return udp;
}
