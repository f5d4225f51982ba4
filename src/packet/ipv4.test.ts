import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { Ipv4Repr, Ipv4View } from './ipv4.js';
import { IpProtocol } from './ip-protocol.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// A UDP datagram header from 192.168.0.1 to 192.168.0.199, checksum 0xb861 (a widely used worked example).
const header = hex('45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7');
const packet = new Uint8Array(0x73);
packet.set(header);

test('ipv4: reads every field of a literal header', () => {
  const ip = new Ipv4View();
  assert.equal(ip.attach(packet), DropReason.None);
  assert.equal(ip.version(), 4);
  assert.equal(ip.headerLength(), 20);
  assert.equal(ip.totalLength(), 0x73);
  assert.equal(ip.dontFragment(), true);
  assert.equal(ip.moreFragments(), false);
  assert.equal(ip.isFragment(), false);
  assert.equal(ip.ttl(), 64);
  assert.equal(ip.protocol(), IpProtocol.Udp);
  assert.equal(ip.checksum(), 0xb861);
  assert.equal(ip.src(), 0xc0a80001);
  assert.equal(ip.dst(), 0xc0a800c7);
  assert.equal(ip.payloadAt(), 20);
  assert.equal(ip.payloadLength(), 0x73 - 20);
});

test('ipv4: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  const repr = Ipv4Repr.parse(attached(packet));
  for (const at of [0, 9]) {
    const out = dirty(at + 20 + 3);
    assert.equal(Ipv4Repr.emit(repr, out, at), 20);
    assert.deepEqual(out.subarray(at, at + 20), header);
    assert.equal(out[at + 20], 0xa5, 'emit must not write past the header');
  }
});

test('ipv4: parse → emit → parse round trip with options at a non-zero offset', () => {
  const repr: Ipv4Repr = {
    src: '10.1.2.3',
    dst: '203.0.113.9',
    protocol: IpProtocol.Tcp,
    payloadLength: 8,
    ttl: 3,
    dscp: 46,
    ecn: 1,
    identification: 0xbeef,
    dontFragment: false,
    moreFragments: true,
    fragmentOffset: 1480,
    options: hex('01 01 07 07 04 00 00 00 00 00 00 00'), // NOP NOP RR(len 7, pointer 4) + EOL padding
  };
  const buf = dirty(5 + 32 + 8);
  const len = Ipv4Repr.emit(repr, buf, 5);
  assert.equal(len, 32);
  const ip = new Ipv4View();
  assert.equal(ip.attach(buf, 5, 40), DropReason.None);
  assert.deepEqual(Ipv4Repr.parse(ip), repr);
});

test('ipv4: each kind of lie is rejected with its own reason', () => {
  const cases: [string, (b: Uint8Array) => void, number, DropReason][] = [
    ['version 6', (b) => (b[0] = 0x65), 0x73, DropReason.BadVersion],
    ['IHL 4', (b) => (b[0] = 0x44), 0x73, DropReason.BadHeaderLength],
    ['IHL 15 beyond capture', (b) => (b[0] = 0x4f), 40, DropReason.Truncated],
    ['total length 19', (b) => (b[3] = 19), 0x73, DropReason.BadLength],
    ['total length beyond capture', () => undefined, 0x70, DropReason.Truncated],
    ['checksum off by one', (b) => (b[11] ^= 1), 0x73, DropReason.BadChecksum],
    ['fragment beyond 65535', (b) => ((b[6] = 0x1f), (b[7] = 0xff)), 0x73, DropReason.BadLength],
  ];
  for (const [name, mutate, length, reason] of cases) {
    const b = packet.slice();
    mutate(b);
    // Fix the checksum after the mutation, unless the checksum is what the case breaks.
    if (
      reason !== DropReason.BadChecksum &&
      b[0] >>> 4 === 4 &&
      (b[0] & 15) >= 5 &&
      (b[0] & 15) * 4 <= length
    ) {
      const v = new Ipv4View().attachUnchecked(b, 0, length);
      v.fillChecksum();
    }
    assert.equal(new Ipv4View().attach(b, 0, length), reason, name);
  }
});

test('ipv4: option lengths of 0, 1 and overrun are bad options', () => {
  for (const opt of ['07 00 00 00', '07 01 00 00', '07 09 04 00']) {
    const b = new Uint8Array(24 + 4);
    Ipv4Repr.emit({ src: '1.1.1.1', dst: '2.2.2.2', protocol: 17, payloadLength: 4, options: hex(opt) }, b);
    assert.equal(new Ipv4View().attach(b), DropReason.BadOption, opt);
  }
});

test('ipv4: decrementTtl keeps the header checksum valid', () => {
  const b = placeAt(packet, 3);
  const ip = attached(b, 3);
  for (let i = 0; i < 64; i++) {
    ip.decrementTtl();
    assert.equal(ip.verifyChecksum(), true);
  }
  assert.equal(ip.ttl(), 0);
});

test('ipv4: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), (bytes, at) => {
      const ip = new Ipv4View();
      const reason = ip.attach(placeAt(bytes, at, 0), at);
      if (reason === DropReason.None) assert.ok(ip.totalLength() <= bytes.length);
    }),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < packet.length; n++) {
    assert.notEqual(new Ipv4View().attach(packet.subarray(0, n)), DropReason.None, `prefix ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): Ipv4View {
  const ip = new Ipv4View();
  assert.equal(ip.attach(bytes, at), DropReason.None);
  return ip;
}
