import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { GENEVE_OPTION_CRITICAL, GeneveRepr, GeneveView } from './geneve.js';
import { EtherType, UdpPort } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { UdpView } from './udp.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// 192.0.2.1 → 192.0.2.2, UDP 49169 → 6081 (checksum 0), GENEVE version 0, C set, protocol 0x6558,
// VNI 0xabcdef, one critical option (class 0x0103, type 0x80, 4 bytes de ad be ef), then an inner
// Ethernet frame carrying IPv4/UDP "ping" from 10.1.1.1 to 10.1.1.2.
const outerIp = hex('45 00 00 5a 00 08 40 00 40 11 b6 87 c0 00 02 01 c0 00 02 02');
const outerUdp = hex('c0 11 17 c1 00 46 00 00');
const header = hex('02 40 65 58 ab cd ef 00 | 01 03 80 01 de ad be ef');
const inner = hex(`02 00 00 00 00 0b 02 00 00 00 00 0a 08 00
  45 00 00 20 00 01 40 00 40 11 24 c8 0a 01 01 01 0a 01 01 02
  04 57 08 ae 00 0c fd fb 70 69 6e 67`);
const packet = concat(outerIp, outerUdp, header, inner);

test('geneve: reads a literal header and its option behind IPv4/UDP port 6081', () => {
  const ip = new Ipv4View();
  const udp = new UdpView();
  const geneve = new GeneveView();
  assert.equal(ip.attach(packet), DropReason.None);
  assert.equal(udp.attach(packet, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  assert.equal(udp.dstPort(), UdpPort.Geneve);
  assert.equal(geneve.attach(packet, udp.payloadAt(), udp.payloadLength()), DropReason.None);
  assert.equal(geneve.version(), 0);
  assert.equal(geneve.optionsLength(), 8);
  assert.equal(geneve.headerLength(), 16);
  assert.equal(geneve.oam(), false);
  assert.equal(geneve.critical(), true);
  assert.equal(geneve.protocolType(), EtherType.TransparentEthernet);
  assert.equal(geneve.vni(), 0xabcdef);
  assert.equal(geneve.payloadAt(), 20 + 8 + 16);
  assert.equal(geneve.payloadLength(), inner.length);
  assert.equal(geneve.optionCount(), 1);
  const opt = geneve.optionAt(0);
  assert.equal(opt, 20 + 8 + 8);
  assert.equal(geneve.optionAt(1), -1);
  assert.equal(geneve.optionClass(opt), 0x0103);
  assert.equal(geneve.optionType(opt), 0x80);
  assert.equal(geneve.optionType(opt) & GENEVE_OPTION_CRITICAL, GENEVE_OPTION_CRITICAL);
  assert.equal(geneve.optionDataLength(opt), 4);
  assert.equal(geneve.findOption(0x0103, 0x80), opt + 4);
  assert.equal(geneve.findOption(0x0103, 0x01), -1);
  assert.deepEqual(packet.subarray(opt + 4, opt + 8), hex('de ad be ef'));
  const innerIp = new Ipv4View();
  assert.equal(innerIp.attach(packet, geneve.payloadAt() + 14, geneve.payloadLength() - 14), DropReason.None);
});

test('geneve: emit into a dirty buffer reproduces the literal header, at offset 0 and 9', () => {
  const repr = GeneveRepr.parse(attached(header));
  assert.deepEqual(repr, {
    vni: 0xabcdef,
    protocolType: 0x6558,
    oam: false,
    critical: true,
    options: [{ optionClass: 0x0103, type: 0x80, data: hex('de ad be ef') }],
  });
  assert.equal(GeneveRepr.headerLength(repr), 16);
  for (const at of [0, 9]) {
    const out = dirty(at + 16 + 3);
    assert.equal(GeneveRepr.emit(repr, out, at), 16);
    assert.deepEqual(out.subarray(at, at + 16), header);
    assert.equal(out[at + 16], 0xa5, 'emit must not write past the header');
  }
});

test('geneve: parse → emit → parse round trip with several options at a non-zero offset', () => {
  const repr: GeneveRepr = {
    vni: 0xffffff,
    protocolType: EtherType.Ipv6,
    oam: true,
    critical: false,
    options: [
      { optionClass: 0xffff, type: 0x7f, data: new Uint8Array(0) },
      { optionClass: 0x0101, type: 1, data: hex('01 02 03 04 05 06 07 08') },
      { optionClass: 0x0000, type: 0xff, data: new Uint8Array(124).fill(0x5a) },
    ],
  };
  const length = GeneveRepr.headerLength(repr);
  assert.equal(length, 8 + 4 + 12 + 128);
  const buf = dirty(7 + length + 40);
  assert.equal(GeneveRepr.emit(repr, buf, 7), length);
  const geneve = new GeneveView();
  assert.equal(geneve.attach(buf, 7, length + 40), DropReason.None);
  assert.deepEqual(GeneveRepr.parse(geneve), repr);
  assert.equal(geneve.optionCount(), 3);
  assert.equal(geneve.payloadLength(), 40);
  assert.equal(geneve.findOption(0x0101, 1), geneve.optionAt(1) + 4);
});

test('geneve: option data not a multiple of 4 is padded with zeros', () => {
  const out = dirty(16);
  const repr: GeneveRepr = {
    vni: 1,
    protocolType: EtherType.Ipv4,
    oam: false,
    critical: false,
    options: [{ optionClass: 2, type: 3, data: hex('aa bb') }],
  };
  assert.equal(GeneveRepr.emit(repr, out, 0), 16);
  assert.deepEqual(out, hex('02 00 08 00 00 00 01 00 00 02 03 01 aa bb 00 00'));
});

test('geneve: setters clear the reserved bits around their field', () => {
  const b = dirty(8);
  const geneve = new GeneveView().attachUnchecked(b, 0, 8);
  geneve.setOptionsLength(0);
  geneve.setFlags(false, false);
  geneve.setProtocolType(0x6558);
  geneve.setVni(0x123456);
  assert.deepEqual(b, hex('00 00 65 58 12 34 56 00'));
  geneve.setFlags(true, true);
  assert.equal(b[1], 0xc0);
});

test('geneve: each kind of lie is rejected with its own reason', () => {
  const cases: [string, (b: Uint8Array) => void, number, DropReason][] = [
    ['shorter than 8', () => undefined, 7, DropReason.Truncated],
    ['version 1', (b) => (b[0] |= 0x40), 16, DropReason.BadVersion],
    ['version 3', (b) => (b[0] |= 0xc0), 16, DropReason.BadVersion],
    ['options beyond the payload', () => undefined, 15, DropReason.Truncated],
    ['Opt Len 63 beyond the payload', (b) => (b[0] = 0x3f), 16, DropReason.Truncated],
    ['option longer than the area', (b) => (b[11] = 2), 16, DropReason.BadOption],
    ['option shorter than the area', (b) => ((b[0] = 0x03), (b[11] = 1)), 20, DropReason.BadOption],
    ['option data beyond a one-word area', (b) => (b[0] = 0x01), 16, DropReason.BadOption],
    ['option length 31 in a short area', (b) => (b[11] = 0x1f), 16, DropReason.BadOption],
    ['R bits are ignored', (b) => (b[11] |= 0xe0), 16, DropReason.None],
    ['reserved bits are ignored', (b) => ((b[1] |= 0x3f), (b[7] = 0xff)), 16, DropReason.None],
  ];
  for (const [name, mutate, length, reason] of cases) {
    const b = placeAt(header, 0, 8);
    mutate(b);
    assert.equal(new GeneveView().attach(b, 0, length), reason, name);
  }
});

test('geneve: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), fc.nat(90), (bytes, at, length) => {
      const geneve = new GeneveView();
      const reason = geneve.attach(placeAt(bytes, at, 0), at, length);
      if (reason === DropReason.None) {
        assert.ok(geneve.payloadLength() >= 0);
        assert.ok(geneve.payloadAt() + geneve.payloadLength() <= at + bytes.length);
        const count = geneve.optionCount();
        for (let n = 0; n < count; n++) {
          const opt = geneve.optionAt(n);
          assert.ok(
            opt >= 0 && geneve.optionDataAt(opt) + geneve.optionDataLength(opt) <= geneve.payloadAt(),
          );
        }
        assert.equal(geneve.optionAt(count), -1);
        geneve.findOption(0x0101, 1);
      }
    }),
    { numRuns: 10_000 },
  );
  // Random option areas behind a valid fixed header.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (options) => {
      const area = options.subarray(0, options.length & ~3);
      const b = new Uint8Array(8 + area.length);
      b.set(header.subarray(0, 8));
      b[0] = area.length / 4;
      b.set(area, 8);
      const geneve = new GeneveView();
      if (geneve.attach(b) === DropReason.None) {
        assert.equal(GeneveRepr.headerLength(GeneveRepr.parse(geneve)), b.length);
      }
    }),
    { numRuns: 5_000 },
  );
  for (let n = 0; n < header.length; n++) {
    assert.notEqual(new GeneveView().attach(header.subarray(0, n)), DropReason.None, `prefix ${n}`);
    assert.notEqual(new GeneveView().attach(header, 0, n), DropReason.None, `UDP payload ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): GeneveView {
  const geneve = new GeneveView();
  assert.equal(geneve.attach(bytes, at), DropReason.None);
  return geneve;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
