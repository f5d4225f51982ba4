import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { UdpPort } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { UdpView } from './udp.js';
import { VXLAN_HEADER_LENGTH, VxlanRepr, VxlanView } from './vxlan.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// 192.0.2.1 → 192.0.2.2, UDP 49169 → 4789 (checksum 0), VXLAN VNI 0x123456, then an inner
// Ethernet frame carrying IPv4/UDP "ping" from 10.1.1.1 to 10.1.1.2.
const outerIp = hex('45 00 00 52 00 07 40 00 40 11 b6 90 c0 00 02 01 c0 00 02 02');
const outerUdp = hex('c0 11 12 b5 00 3e 00 00');
const header = hex('08 00 00 00 12 34 56 00');
const inner = hex(`02 00 00 00 00 0b 02 00 00 00 00 0a 08 00
  45 00 00 20 00 01 40 00 40 11 24 c8 0a 01 01 01 0a 01 01 02
  04 57 08 ae 00 0c fd fb 70 69 6e 67`);
const packet = concat(outerIp, outerUdp, header, inner);

test('vxlan: reads a literal header behind IPv4/UDP port 4789', () => {
  const ip = new Ipv4View();
  const udp = new UdpView();
  const vxlan = new VxlanView();
  assert.equal(ip.attach(packet), DropReason.None);
  assert.equal(udp.attach(packet, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  assert.equal(udp.dstPort(), UdpPort.Vxlan);
  assert.equal(udp.verifyChecksum(0, false), true, 'checksum 0 over IPv4: none');
  assert.equal(vxlan.attach(packet, udp.payloadAt(), udp.payloadLength()), DropReason.None);
  assert.equal(vxlan.flags(), 0x08);
  assert.equal(vxlan.vni(), 0x123456);
  assert.equal(vxlan.payloadAt(), 20 + 8 + 8);
  assert.equal(vxlan.payloadLength(), inner.length);
  assert.deepEqual(packet.subarray(vxlan.payloadAt(), vxlan.payloadAt() + 6), hex('02 00 00 00 00 0b'));
  const innerIp = new Ipv4View();
  assert.equal(innerIp.attach(packet, vxlan.payloadAt() + 14, vxlan.payloadLength() - 14), DropReason.None);
  assert.equal(innerIp.src(), 0x0a010101);
});

test('vxlan: emit into a dirty buffer reproduces the literal header, at offset 0 and 9', () => {
  const repr = VxlanRepr.parse(attached(header));
  assert.deepEqual(repr, { vni: 0x123456 });
  assert.equal(VxlanRepr.headerLength(repr), VXLAN_HEADER_LENGTH);
  for (const at of [0, 9]) {
    const out = dirty(at + 8 + 3);
    assert.equal(VxlanRepr.emit(repr, out, at), 8);
    assert.deepEqual(out.subarray(at, at + 8), header);
    assert.equal(out[at + 8], 0xa5, 'emit must not write past the header');
  }
});

test('vxlan: parse → emit → parse round trip at a non-zero offset, VNI extremes', () => {
  for (const vni of [0, 1, 0xffffff, 0x800000]) {
    const buf = dirty(5 + 8 + 14);
    VxlanRepr.emit({ vni }, buf, 5);
    const vxlan = new VxlanView();
    assert.equal(vxlan.attach(buf, 5), DropReason.None);
    assert.deepEqual(VxlanRepr.parse(vxlan), { vni });
    assert.equal(vxlan.payloadLength(), 14);
  }
});

test('vxlan: setters clear the reserved bits around their field', () => {
  const b = dirty(8);
  const vxlan = new VxlanView().attachUnchecked(b, 0, 8);
  vxlan.setFlags(0x08);
  vxlan.setVni(0xabcdef);
  assert.deepEqual(b, hex('08 00 00 00 ab cd ef 00'));
});

test('vxlan: a missing I flag and short payloads are rejected; reserved bits are ignored', () => {
  const b = header.slice();
  b[0] = 0x00;
  assert.equal(new VxlanView().attach(b), DropReason.BadField);
  b[0] = 0xf7; // every bit but I
  assert.equal(new VxlanView().attach(b), DropReason.BadField);
  b[0] = 0xff;
  b[1] = 0xff;
  b[7] = 0xff;
  assert.equal(new VxlanView().attach(b), DropReason.None);
  assert.equal(new VxlanView().attach(header, 0, 7), DropReason.Truncated);
});

test('vxlan: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 24 }), fc.nat(8), fc.nat(30), (bytes, at, length) => {
      const vxlan = new VxlanView();
      const reason = vxlan.attach(placeAt(bytes, at, 0), at, length);
      if (reason === DropReason.None) {
        assert.ok(vxlan.payloadLength() >= 0);
        assert.ok(vxlan.payloadAt() + vxlan.payloadLength() <= at + bytes.length);
        assert.ok(vxlan.vni() <= 0xffffff);
      }
    }),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < header.length; n++) {
    assert.notEqual(new VxlanView().attach(header.subarray(0, n)), DropReason.None, `prefix ${n}`);
    assert.notEqual(new VxlanView().attach(header, 0, n), DropReason.None, `UDP payload ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): VxlanView {
  const vxlan = new VxlanView();
  assert.equal(vxlan.attach(bytes, at), DropReason.None);
  return vxlan;
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
