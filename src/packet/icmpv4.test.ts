import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { Icmpv4Repr, Icmpv4Type, Icmpv4View } from './icmpv4.js';
import { Ipv4View } from './ipv4.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// A ping (echo request, id 0x1c46, seq 1, 56 bytes of data: a timestamp, then 0x10..0x37) from
// 127.0.0.1 to itself, captured on Linux loopback with its IPv4 header.
const request = hex(`
  45 00 00 54 50 57 40 00 40 01 ec 4f 7f 00 00 01 7f 00 00 01
  08 00 64 35 1c 46 00 01 d2 e7 06 6b 00 00 00 00 d6 5d 09 00 00 00 00 00
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27
  28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37`);
// The echo reply the Linux kernel sent back, checksum and all, in the same capture.
const reply = hex(`
  45 00 00 54 50 58 00 00 40 01 2c 4f 7f 00 00 01 7f 00 00 01
  00 00 6c 35 1c 46 00 01 d2 e7 06 6b 00 00 00 00 d6 5d 09 00 00 00 00 00
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23 24 25 26 27
  28 29 2a 2b 2c 2d 2e 2f 30 31 32 33 34 35 36 37`);
const message = request.subarray(20);

test('icmpv4: reads every field of a captured echo request, located through its IPv4 header', () => {
  const ip = new Ipv4View();
  assert.equal(ip.attach(request), DropReason.None);
  const icmp = new Icmpv4View();
  assert.equal(icmp.attach(request, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  assert.equal(icmp.type(), Icmpv4Type.EchoRequest);
  assert.equal(icmp.code(), 0);
  assert.equal(icmp.checksum(), 0x6435);
  assert.equal(icmp.identifier(), 0x1c46);
  assert.equal(icmp.sequence(), 1);
  assert.equal(icmp.restOfHeader(), 0x1c460001);
  assert.equal(icmp.payloadAt(), 28);
  assert.equal(icmp.payloadLength(), 56);
  assert.equal(icmp.verifyChecksum(), true);
});

test('icmpv4: the kernel-built reply verifies and differs from the request only in type and checksum', () => {
  const icmp = attached(reply, 20);
  assert.equal(icmp.type(), Icmpv4Type.EchoReply);
  assert.equal(icmp.checksum(), 0x6c35);
  const asRequest = Icmpv4Repr.parse(icmp);
  asRequest.type = Icmpv4Type.EchoRequest;
  const out = dirty(64);
  assert.equal(Icmpv4Repr.emit(asRequest, out), 64);
  assert.deepEqual(out, message);
});

test('icmpv4: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  const repr = Icmpv4Repr.parse(attached(message));
  assert.equal(Icmpv4Repr.messageLength(repr), 64);
  for (const at of [0, 9]) {
    const out = dirty(at + 64 + 3);
    assert.equal(Icmpv4Repr.emit(repr, out, at), 64);
    assert.deepEqual(out.subarray(at, at + 64), message);
    assert.equal(out[at + 64], 0xa5, 'emit must not write past the message');
  }
});

test('icmpv4: parse → emit → parse round trip at a non-zero offset, with and without data', () => {
  const reprs: Icmpv4Repr[] = [
    { type: Icmpv4Type.TimeExceeded, code: 1, identifier: 0, sequence: 0, payload: hex('45 00 00 1c 00 01') },
    { type: Icmpv4Type.EchoReply, code: 0, identifier: 0xffff, sequence: 0xfffe, payload: new Uint8Array(0) },
  ];
  for (const repr of reprs) {
    const length = Icmpv4Repr.messageLength(repr);
    const buf = dirty(5 + length + 2);
    assert.equal(Icmpv4Repr.emit(repr, buf, 5), length);
    assert.deepEqual(Icmpv4Repr.parse(attached(buf.subarray(0, 5 + length), 5)), repr);
  }
  const bare = dirty(8);
  assert.equal(
    Icmpv4Repr.emit({ type: Icmpv4Type.EchoRequest, code: 0, identifier: 1, sequence: 2 }, bare),
    8,
  );
  assert.deepEqual(bare, hex('08 00 f7 fc 00 01 00 02'));
});

test('icmpv4: setters through attachUnchecked write what the accessors read', () => {
  const buf = placeAt(message, 3);
  const icmp = new Icmpv4View().attachUnchecked(buf, 3, 64);
  icmp.setType(Icmpv4Type.DestinationUnreachable);
  icmp.setCode(4);
  icmp.setIdentifier(0);
  icmp.setSequence(1400);
  icmp.fillChecksum();
  assert.equal(new Icmpv4View().attach(buf, 3, 64), DropReason.None);
  assert.deepEqual(buf.subarray(3, 11), hex('03 04 80 00 00 00 05 78'));
  assert.equal(icmp.restOfHeader(), 1400);
});

test('icmpv4: short, cut and corrupted messages are rejected', () => {
  const icmp = new Icmpv4View();
  assert.equal(icmp.attach(message, 0, 7), DropReason.Truncated);
  assert.equal(icmp.attach(message, 0, 65), DropReason.Truncated, 'length beyond the bytes');
  assert.equal(icmp.attach(message, 0, 63), DropReason.BadChecksum, 'one byte short of the message');
  const corrupt = message.slice();
  corrupt[40] ^= 0x80;
  assert.equal(icmp.attach(corrupt), DropReason.BadChecksum);
});

test('icmpv4: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 80 }),
      fc.nat(8),
      fc.integer({ min: -2, max: 90 }),
      (bytes, at, length) => {
        const icmp = new Icmpv4View();
        const reason = icmp.attach(placeAt(bytes, at, 0), at, length);
        if (reason === DropReason.None) {
          assert.ok(icmp.payloadAt() + icmp.payloadLength() <= at + bytes.length);
          assert.equal(icmp.verifyChecksum(), true);
        }
        // Bytes past `length` never change the verdict.
        if (length <= bytes.length) assert.equal(icmp.attach(placeAt(bytes, at, 9), at, length), reason);
      },
    ),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < message.length; n++) {
    assert.notEqual(new Icmpv4View().attach(message.subarray(0, n)), DropReason.None, `prefix ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): Icmpv4View {
  const icmp = new Icmpv4View();
  assert.equal(icmp.attach(bytes, at), DropReason.None);
  return icmp;
}
