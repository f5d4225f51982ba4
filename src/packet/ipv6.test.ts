import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv6Repr, Ipv6View } from './ipv6.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// An ICMPv6 echo request ::1 → ::1 captured on Linux loopback (flow label 0x9156d, hop limit 64).
const echo = hex(`
  60 09 15 6d 00 40 3a 40 | 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  80 00 ee b6 1c 46 00 01 d2 e7 06 6b 00 00 00 00 d3 5f 09 00 00 00 00 00
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27
  28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37`);

const fixed = (payloadLength: string, nextHeader: string) =>
  `60 00 00 00 ${payloadLength} ${nextHeader} 40
   20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
   20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02`;

// RFC 8200 §4.1 order: Hop-by-Hop → Routing → Fragment → Destination Options → UDP.
const chain = hex(`${fixed('00 40', '00')}
  2b 00 05 02 00 00 01 00
  2c 02 02 01 00 00 00 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 03
  3c 00 00 01 12 34 56 78
  11 00 01 04 00 00 00 00
  04 d2 00 35 00 10 d4 f1 6e 66 76 69 73 6f 72 21`);
// HBH: next Routing, len 0, Router Alert (05 02 00 00), PadN(0).
// Routing: next Fragment, len 2 (24 bytes), type 2, segments left 1, one address.
// Fragment: next DestOpts, offset 0, M = 1, identification 0x12345678.
// DestOpts: next UDP, len 0, PadN(4).
// UDP 1234 → 53, length 16, "nfvisor!".

// A later fragment: offset 185 × 8 = 1480, M = 0. Its Next Header says Destination Options, but the
// bytes after it are fragment data (here a malformed option TLV) and must not be walked.
const laterFragment = hex(`${fixed('00 18', '2c')}
  3c 00 05 c8 de ad be ef
  11 00 05 ff 00 00 00 00 01 02 03 04 05 06 07 08`);

test('ipv6: reads every field of a captured echo request', () => {
  const ip = attached(echo);
  assert.equal(ip.version(), 6);
  assert.equal(ip.trafficClass(), 0);
  assert.equal(ip.flowLabel(), 0x9156d);
  assert.equal(ip.payloadLength(), 64);
  assert.equal(ip.nextHeader(), IpProtocol.Icmpv6);
  assert.equal(ip.hopLimit(), 64);
  assert.equal(ip.srcAt(), 8);
  assert.equal(ip.dstAt(), 24);
  assert.equal(ip.payloadAt(), 40);
  assert.equal(ip.upperProtocol(), IpProtocol.Icmpv6);
  assert.equal(ip.upperAt(), 40);
  assert.equal(ip.upperLength(), 64);
  assert.equal(ip.extensionHeaderCount(), 0);
  assert.equal(ip.isFragment(), false);
  assert.equal(ip.fragmentOffset(), 0);
  assert.deepEqual(Ipv6Repr.parse(ip), {
    src: '::1',
    dst: '::1',
    nextHeader: IpProtocol.Icmpv6,
    payloadLength: 64,
    hopLimit: 64,
    trafficClass: 0,
    flowLabel: 0x9156d,
  });
});

test('ipv6: walks Hop-by-Hop → Routing → Fragment → Destination Options → UDP', () => {
  const ip = attached(chain);
  assert.equal(ip.nextHeader(), IpProtocol.HopByHop);
  assert.equal(ip.extensionHeaderCount(), 4);
  assert.equal(ip.upperProtocol(), IpProtocol.Udp);
  assert.equal(ip.upperAt(), 40 + 8 + 24 + 8 + 8);
  assert.equal(ip.upperLength(), 16);
  assert.equal(ip.isFragment(), true);
  assert.equal(ip.fragmentOffset(), 0);
  assert.equal(ip.moreFragments(), true);
  assert.equal(ip.fragmentIdentification(), 0x12345678);
  assert.equal(new Ipv6View().attach(chain, 0, chain.length, 3), DropReason.TooManyLayers);
  assert.equal(new Ipv6View().attach(chain, 0, chain.length, 4), DropReason.None);
});

test('ipv6: a later fragment stops the walk at its Fragment header', () => {
  const ip = attached(laterFragment);
  assert.equal(ip.extensionHeaderCount(), 1);
  assert.equal(ip.isFragment(), true);
  assert.equal(ip.fragmentOffset(), 1480);
  assert.equal(ip.moreFragments(), false);
  assert.equal(ip.fragmentIdentification(), 0xdeadbeef);
  assert.equal(ip.upperProtocol(), IpProtocol.Ipv6DestOpts);
  assert.equal(ip.upperAt(), 48);
  assert.equal(ip.upperLength(), 16);
});

test('ipv6: AH is walked in 4-byte units; ESP and No Next Header end the chain', () => {
  // AH: next ICMPv6, len 4 → (4 + 2) × 4 = 24 bytes (SPI, sequence, 12-byte ICV); then 8 bytes of ICMPv6.
  const ah = hex(`${fixed('00 20', '33')}
    3a 04 00 00 00 00 01 00 00 00 00 07 aa aa aa aa aa aa aa aa aa aa aa aa
    80 00 00 00 00 01 00 01`);
  const ip = attached(ah);
  assert.equal(ip.extensionHeaderCount(), 1);
  assert.equal(ip.upperProtocol(), IpProtocol.Icmpv6);
  assert.equal(ip.upperAt(), 64);
  assert.equal(ip.upperLength(), 8);
  ah[41] = 0; // (0 + 2) × 4 = 8 bytes: shorter than AH's fixed part.
  assert.equal(new Ipv6View().attach(ah), DropReason.BadHeaderLength);

  const esp = attached(hex(`${fixed('00 08', '32')} 00 00 01 00 00 00 00 01`));
  assert.equal(esp.upperProtocol(), IpProtocol.Esp);
  assert.equal(esp.extensionHeaderCount(), 0);
  const none = attached(hex(`${fixed('00 08', '3c')} 3b 00 01 04 00 00 00 00`));
  assert.equal(none.upperProtocol(), IpProtocol.Ipv6NoNext);
  assert.equal(none.upperAt(), 48);
  assert.equal(none.upperLength(), 0);
});

test('ipv6: Ethernet padding after the payload is allowed and not counted', () => {
  const padded = placeAt(echo, 0, 6);
  const ip = attached(padded);
  assert.equal(ip.available, echo.length + 6);
  assert.equal(ip.upperLength(), 64);
});

test('ipv6: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  const repr = Ipv6Repr.parse(attached(echo));
  for (const at of [0, 9]) {
    const out = dirty(at + 40 + 3);
    assert.equal(Ipv6Repr.emit(repr, out, at), 40);
    assert.equal(Ipv6Repr.headerLength(repr), 40);
    assert.deepEqual(out.subarray(at, at + 40), echo.subarray(0, 40));
    assert.equal(out[at + 40], 0xa5, 'emit must not write past the header');
  }
});

test('ipv6: parse → emit → parse round trip with every field set, at a non-zero offset', () => {
  const repr: Ipv6Repr = {
    src: 'fe80::fc:ff:fe00:1',
    dst: 'ff02::1:ff00:2',
    nextHeader: IpProtocol.Ipv6NoNext,
    payloadLength: 3,
    hopLimit: 255,
    trafficClass: 0xb9,
    flowLabel: 0xfffff,
  };
  const buf = dirty(5 + 40 + 3);
  assert.equal(Ipv6Repr.emit(repr, buf, 5), 40);
  const ip = new Ipv6View();
  assert.equal(ip.attach(buf, 5, 43), DropReason.None);
  assert.deepEqual(Ipv6Repr.parse(ip), repr);
  assert.deepEqual(buf.subarray(5, 9), hex('6b 9f ff ff'));
});

test('ipv6: each kind of lie is rejected with its own reason', () => {
  const cases: [string, Uint8Array, DropReason][] = [
    ['version 4', echo.map((b, i) => (i === 0 ? 0x45 : b)), DropReason.BadVersion],
    ['payload length beyond capture', echo.subarray(0, echo.length - 1), DropReason.Truncated],
    // Routing → Hop-by-Hop.
    [
      'Hop-by-Hop second',
      hex(`${fixed('00 10', '2b')} 00 00 00 00 00 00 00 00 3b 00 01 04 00 00 00 00`),
      DropReason.BadField,
    ],
    // Router Alert claims 7 data bytes; 4 remain in the header.
    ['option overrun', hex(`${fixed('00 08', '00')} 3b 00 05 07 00 00 00 00`), DropReason.BadOption],
    // Five Pad1, then an option type in the last byte with no room for its length.
    ['option type at the end', hex(`${fixed('00 08', '3c')} 3b 00 00 00 00 00 00 05`), DropReason.BadOption],
    // Destination Options claims 16 bytes; the payload has 8.
    ['header beyond payload', hex(`${fixed('00 08', '3c')} 3b 01 01 04 00 00 00 00`), DropReason.Truncated],
    ['header cut short', hex(`${fixed('00 04', '3c')} 3b 00 01 00`), DropReason.Truncated],
    // M = 1 with 9 bytes of fragment data.
    [
      'fragment not a multiple of 8',
      hex(`${fixed('00 11', '2c')} 11 00 00 01 00 00 00 01 ${'00 '.repeat(9)}`),
      DropReason.BadLength,
    ],
    // Offset 65528 + 16 bytes > 65535.
    [
      'fragment beyond 65535',
      hex(`${fixed('00 18', '2c')} 11 00 ff f8 00 00 00 01 ${'00 '.repeat(16)}`),
      DropReason.BadLength,
    ],
    [
      'two Fragment headers',
      hex(`${fixed('00 18', '2c')} 2c 00 00 01 00 00 00 01 11 00 00 01 00 00 00 01 ${'00 '.repeat(8)}`),
      DropReason.BadField,
    ],
  ];
  for (const [name, bytes, reason] of cases) assert.equal(new Ipv6View().attach(bytes), reason, name);
});

test('ipv6: setters through attachUnchecked write what the accessors read', () => {
  const buf = dirty(2 + 40);
  const addresses = new Uint8Array(32).map((_, i) => i);
  const ip = new Ipv6View().attachUnchecked(buf, 2, 40);
  ip.setVersionTrafficClassFlowLabel(0x12, 0x34567);
  ip.setPayloadLength(0);
  ip.setNextHeader(IpProtocol.Ipv6NoNext);
  ip.setHopLimit(1);
  ip.setSrc(addresses, 16);
  ip.setDst(addresses);
  assert.deepEqual(buf.subarray(2, 10), hex('61 23 45 67 00 00 3b 01'));
  assert.deepEqual(buf.subarray(10, 26), addresses.subarray(16));
  assert.deepEqual(buf.subarray(26, 42), addresses.subarray(0, 16));
  assert.equal(ip.upperProtocol(), IpProtocol.Ipv6NoNext);
  assert.equal(ip.upperAt(), 42);
  assert.equal(buf[1], 0xa5);
});

test('ipv6: random bytes and every truncation are rejected, never read past the end', () => {
  const extension = fc.constantFrom(0, 43, 44, 51, 60, 17, 59);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 120 }),
      fc.nat(8),
      extension,
      fc.boolean(),
      fc.nat(10),
      (bytes, at, next, shaped, maxExtensionHeaders) => {
        if (shaped && bytes.length >= 40) {
          // A valid fixed header over random extension headers exercises the walk.
          bytes[0] = 0x60;
          bytes[4] = (bytes.length - 40) >>> 8;
          bytes[5] = bytes.length - 40;
          bytes[6] = next;
        }
        const ip = new Ipv6View();
        const reason = ip.attach(placeAt(bytes, at, 0), at, bytes.length, maxExtensionHeaders);
        if (reason === DropReason.None) {
          assert.ok(40 + ip.payloadLength() <= bytes.length);
          assert.ok(
            ip.upperAt() >= at + 40 && ip.upperAt() - at + ip.upperLength() === 40 + ip.payloadLength(),
          );
          assert.ok(ip.extensionHeaderCount() <= maxExtensionHeaders);
        }
        // Bytes past `length` never change the verdict.
        const other = new Ipv6View();
        assert.equal(other.attach(placeAt(bytes, at, 64), at, bytes.length, maxExtensionHeaders), reason);
      },
    ),
    { numRuns: 10_000 },
  );
  for (const packet of [echo, chain, laterFragment]) {
    for (let n = 0; n < packet.length; n++) {
      assert.notEqual(new Ipv6View().attach(packet.subarray(0, n)), DropReason.None, `prefix ${n}`);
    }
  }
});

function attached(bytes: Uint8Array, at = 0): Ipv6View {
  const ip = new Ipv6View();
  assert.equal(ip.attach(bytes, at), DropReason.None);
  return ip;
}
