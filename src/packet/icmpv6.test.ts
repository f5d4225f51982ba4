import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pseudoHeaderSumV6 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { Icmpv6Repr, Icmpv6Type, Icmpv6View } from './icmpv6.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv6View } from './ipv6.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// An ICMPv6 echo request ::1 → ::1 (id 0x1c46, seq 1, 56 bytes of data), captured on Linux loopback
// with its IPv6 header; the checksum 0xeeb6 was filled in by the kernel.
const request = hex(`
  60 09 15 6d 00 40 3a 40 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  80 00 ee b6 1c 46 00 01 d2 e7 06 6b 00 00 00 00 d3 5f 09 00 00 00 00 00
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27
  28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37`);
// The echo reply the kernel sent back in the same capture (new flow label, type 129, checksum 0xedb6).
const reply = hex(`
  60 0c 6d 3b 00 40 3a 40 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  81 00 ed b6 1c 46 00 01 d2 e7 06 6b 00 00 00 00 d3 5f 09 00 00 00 00 00
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27
  28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37`);
const message = request.subarray(40);
const pseudo = pseudoHeaderSumV6(request, 8, 24, IpProtocol.Icmpv6, 64);

test('icmpv6: reads every field of a captured echo request and verifies it against its IPv6 header', () => {
  const ip = new Ipv6View();
  assert.equal(ip.attach(request), DropReason.None);
  const icmp = new Icmpv6View();
  assert.equal(icmp.attach(request, ip.upperAt(), ip.upperLength()), DropReason.None);
  assert.equal(icmp.type(), Icmpv6Type.EchoRequest);
  assert.equal(icmp.code(), 0);
  assert.equal(icmp.checksum(), 0xeeb6);
  assert.equal(icmp.identifier(), 0x1c46);
  assert.equal(icmp.sequence(), 1);
  assert.equal(icmp.restOfHeader(), 0x1c460001);
  assert.equal(icmp.payloadAt(), 48);
  assert.equal(icmp.payloadLength(), 56);
  const sum = pseudoHeaderSumV6(request, ip.srcAt(), ip.dstAt(), ip.upperProtocol(), ip.upperLength());
  assert.equal(icmp.verifyChecksum(sum), true);
  assert.equal(icmp.verifyChecksum(0), false, 'the pseudo-header is part of the checksum');
  assert.equal(icmp.verifyChecksum(sum + 1), false);
});

test('icmpv6: the kernel-built reply verifies; emitting it as a request gives the request bytes', () => {
  const icmp = attached(reply, 40);
  assert.equal(icmp.type(), Icmpv6Type.EchoReply);
  assert.equal(icmp.verifyChecksum(pseudoHeaderSumV6(reply, 8, 24, IpProtocol.Icmpv6, 64)), true);
  const asRequest = Icmpv6Repr.parse(icmp);
  asRequest.type = Icmpv6Type.EchoRequest;
  const out = dirty(64);
  assert.equal(Icmpv6Repr.emit(asRequest, out, 0, pseudo), 64);
  assert.deepEqual(out, message);
});

test('icmpv6: a checked attach does not verify the checksum (it needs the pseudo-header)', () => {
  const corrupt = message.slice();
  corrupt[2] ^= 0xff;
  const icmp = attached(corrupt);
  assert.equal(icmp.verifyChecksum(pseudo), false);
  icmp.fillChecksum(pseudo);
  assert.deepEqual(corrupt, message);
});

test('icmpv6: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  const repr = Icmpv6Repr.parse(attached(message));
  assert.equal(Icmpv6Repr.messageLength(repr), 64);
  for (const at of [0, 9]) {
    const out = dirty(at + 64 + 3);
    assert.equal(Icmpv6Repr.emit(repr, out, at, pseudo), 64);
    assert.deepEqual(out.subarray(at, at + 64), message);
    assert.equal(out[at + 64], 0xa5, 'emit must not write past the message');
  }
});

test('icmpv6: parse → emit → parse round trip inside a full IPv6 packet at a non-zero offset', () => {
  // Packet Too Big (MTU 1280 in the rest of the header) carrying the start of the offending packet.
  const repr: Icmpv6Repr = {
    type: Icmpv6Type.PacketTooBig,
    code: 0,
    identifier: 0,
    sequence: 1280,
    payload: request.subarray(0, 12),
  };
  const at = 5;
  const length = Icmpv6Repr.messageLength(repr);
  const buf = dirty(at + 40 + length + 2);
  buf.set(request.subarray(0, 40), at);
  buf[at + 5] = length; // payload length
  const sum = pseudoHeaderSumV6(buf, at + 8, at + 24, IpProtocol.Icmpv6, length);
  assert.equal(Icmpv6Repr.emit(repr, buf, at + 40, sum), length);
  const ip = new Ipv6View();
  assert.equal(ip.attach(buf, at, 40 + length), DropReason.None);
  const icmp = attached(buf.subarray(0, at + 40 + length), ip.upperAt());
  assert.equal(icmp.verifyChecksum(sum), true);
  assert.equal(icmp.restOfHeader(), 1280);
  assert.deepEqual(Icmpv6Repr.parse(icmp), repr);
});

test('icmpv6: setters through attachUnchecked write what the accessors read', () => {
  const buf = placeAt(message, 3);
  const icmp = new Icmpv6View().attachUnchecked(buf, 3, 64);
  icmp.setType(Icmpv6Type.EchoReply);
  icmp.setCode(0);
  icmp.setIdentifier(0x1c46);
  icmp.setSequence(1);
  icmp.fillChecksum(pseudo);
  assert.deepEqual(buf.subarray(3, 11), hex('81 00 ed b6 1c 46 00 01'));
  assert.equal(buf[2], 0xa5);
});

test('icmpv6: short and cut messages are rejected', () => {
  const icmp = new Icmpv6View();
  assert.equal(icmp.attach(message, 0, 7), DropReason.Truncated);
  assert.equal(icmp.attach(message, 0, 65), DropReason.Truncated, 'length beyond the bytes');
  assert.equal(icmp.attach(message, 0, 8), DropReason.None);
  assert.equal(icmp.payloadLength(), 0);
});

test('icmpv6: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 80 }),
      fc.nat(8),
      fc.integer({ min: -2, max: 90 }),
      fc.nat(),
      (bytes, at, length, sum) => {
        const icmp = new Icmpv6View();
        const reason = icmp.attach(placeAt(bytes, at, 0), at, length);
        if (reason === DropReason.None) {
          assert.ok(icmp.payloadAt() + icmp.payloadLength() <= at + bytes.length);
          icmp.verifyChecksum(sum);
        }
        if (length <= bytes.length) assert.equal(icmp.attach(placeAt(bytes, at, 9), at, length), reason);
      },
    ),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < 8; n++) {
    assert.equal(new Icmpv6View().attach(message.subarray(0, n)), DropReason.Truncated, `prefix ${n}`);
  }
  // A cut message no longer verifies against the pseudo-header of the full one.
  for (let n = 8; n < message.length; n++) {
    const icmp = new Icmpv6View();
    assert.equal(icmp.attach(message.subarray(0, n)), DropReason.None);
    assert.equal(icmp.verifyChecksum(pseudo), false, `prefix ${n}`);
    assert.equal(
      icmp.verifyChecksum(pseudoHeaderSumV6(request, 8, 24, IpProtocol.Icmpv6, n)),
      false,
      `prefix ${n}`,
    );
  }
});

function attached(bytes: Uint8Array, at = 0): Icmpv6View {
  const icmp = new Icmpv6View();
  assert.equal(icmp.attach(bytes, at), DropReason.None);
  return icmp;
}
