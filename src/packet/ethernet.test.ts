import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropReason } from './drop-reason.js';
import { EthernetRepr, EthernetView } from './ethernet.js';
import { EtherType } from './ip-protocol.js';
import { mac } from './address.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// Untagged: 00:00:5e:00:53:01 ← 02:00:00:00:00:01, IPv4, then the first bytes of an IPv4 header.
const untagged = hex('00 00 5e 00 53 01 | 02 00 00 00 00 01 | 08 00 | 45 00 00 73');
// 802.1Q: TCI 0x6064 = PCP 3, DEI 0, VID 100; then IPv4.
const dot1q = hex('ff ff ff ff ff ff | 00 1b 21 3a 4b 5c | 81 00 60 64 | 08 00 | 45 00');
// 802.1ad QinQ: S-tag 0x88a8 TCI 0xb00a (PCP 5, DEI 1, VID 10), C-tag 0x8100 TCI 0x0014 (VID 20); IPv6.
const qinq = hex('33 33 00 00 00 01 | 02 42 ac 11 00 02 | 88 a8 b0 0a | 81 00 00 14 | 86 dd | 60 00');

test('ethernet: reads every field of an untagged frame', () => {
  const eth = attached(untagged);
  assert.equal(eth.dstAt(), 0);
  assert.equal(eth.srcAt(), 6);
  assert.deepEqual(untagged.subarray(eth.dstAt(), eth.dstAt() + 6), mac('00:00:5e:00:53:01'));
  assert.deepEqual(untagged.subarray(eth.srcAt(), eth.srcAt() + 6), mac('02:00:00:00:00:01'));
  assert.equal(eth.tagCount(), 0);
  assert.equal(eth.etherType(), EtherType.Ipv4);
  assert.equal(eth.headerLength(), 14);
  assert.equal(eth.payloadAt(), 14);
});

test('ethernet: reads an 802.1Q tag', () => {
  const eth = attached(dot1q);
  assert.equal(eth.tagCount(), 1);
  assert.equal(eth.tagProtocol(0), EtherType.Vlan);
  assert.equal(eth.tagPcp(0), 3);
  assert.equal(eth.tagDei(0), false);
  assert.equal(eth.tagVid(0), 100);
  assert.equal(eth.etherType(), EtherType.Ipv4);
  assert.equal(eth.headerLength(), 18);
  assert.equal(eth.payloadAt(), 18);
});

test('ethernet: reads 802.1ad QinQ service and customer tags', () => {
  const eth = attached(qinq);
  assert.equal(eth.tagCount(), 2);
  assert.equal(eth.tagProtocol(0), EtherType.QinQ);
  assert.equal(eth.tagPcp(0), 5);
  assert.equal(eth.tagDei(0), true);
  assert.equal(eth.tagVid(0), 10);
  assert.equal(eth.tagProtocol(1), EtherType.Vlan);
  assert.equal(eth.tagPcp(1), 0);
  assert.equal(eth.tagDei(1), false);
  assert.equal(eth.tagVid(1), 20);
  assert.equal(eth.etherType(), EtherType.Ipv6);
  assert.equal(eth.payloadAt(), 22);
  assert.deepEqual(EthernetRepr.parse(eth), {
    dst: '33:33:00:00:00:01',
    src: '02:42:ac:11:00:02',
    tags: [
      { tpid: EtherType.QinQ, pcp: 5, dei: true, vid: 10 },
      { tpid: EtherType.Vlan, pcp: 0, dei: false, vid: 20 },
    ],
    etherType: EtherType.Ipv6,
  });
});

test('ethernet: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  for (const frame of [untagged, dot1q, qinq]) {
    const repr = EthernetRepr.parse(attached(frame));
    const length = EthernetRepr.headerLength(repr);
    for (const at of [0, 9]) {
      const out = dirty(at + length + 3);
      assert.equal(EthernetRepr.emit(repr, out, at), length);
      assert.deepEqual(out.subarray(at, at + length), frame.subarray(0, length));
      assert.equal(out[at + length], 0xa5, 'emit must not write past the header');
    }
  }
});

test('ethernet: parse → emit → parse round trip with every tag bit set, at a non-zero offset', () => {
  const repr: EthernetRepr = {
    dst: 'fe:dc:ba:98:76:54',
    src: '02:00:00:00:00:ff',
    tags: [
      { tpid: EtherType.QinQ, pcp: 7, dei: true, vid: 4095 },
      { tpid: EtherType.Vlan, pcp: 1, dei: false, vid: 1 },
    ],
    etherType: EtherType.Arp,
  };
  const buf = dirty(5 + 22 + 28);
  assert.equal(EthernetRepr.emit(repr, buf, 5), 22);
  const eth = new EthernetView();
  assert.equal(eth.attach(buf, 5, 22 + 28), DropReason.None);
  assert.deepEqual(EthernetRepr.parse(eth), repr);
  assert.equal(eth.payloadAt(), 5 + 22);
});

test('ethernet: setters through attachUnchecked write what the accessors read', () => {
  const buf = dirty(3 + 22);
  const eth = new EthernetView().attachUnchecked(buf, 3, 22, 2);
  const addresses = hex('02 00 00 00 00 01 02 00 00 00 00 02');
  eth.setDst(addresses, 6);
  eth.setSrc(addresses);
  eth.setTagProtocol(0, EtherType.QinQ);
  eth.setTag(0, 2, false, 300);
  eth.setTagProtocol(1, EtherType.Vlan);
  eth.setTag(1, 6, true, 0);
  eth.setEtherType(EtherType.Ipv4);
  assert.deepEqual(buf.subarray(3), hex('02 00 00 00 00 02 02 00 00 00 00 01 88 a8 41 2c 81 00 d0 00 08 00'));
  assert.equal(buf[2], 0xa5);
});

test('ethernet: too many tags is TooManyLayers, a cut tag is Truncated', () => {
  const eth = new EthernetView();
  assert.equal(eth.attach(dot1q, 0, dot1q.length, 0), DropReason.TooManyLayers);
  assert.equal(eth.attach(qinq, 0, qinq.length, 1), DropReason.TooManyLayers);
  assert.equal(eth.attach(qinq, 0, qinq.length, 2), DropReason.None);
  // Three stacked tags against the default limit of two.
  const triple = hex('33 33 00 00 00 01 02 42 ac 11 00 02 88 a8 00 01 81 00 00 02 81 00 00 03 08 00');
  assert.equal(eth.attach(triple), DropReason.TooManyLayers);
  assert.equal(eth.attach(triple, 0, triple.length, 3), DropReason.None);
  assert.equal(eth.tagCount(), 3);
  assert.equal(eth.tagVid(2), 3);
  // The second tag's TPID is present but its TCI and the EtherType are not.
  assert.equal(eth.attach(qinq, 0, 20), DropReason.Truncated);
});

test('ethernet: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(8), fc.nat(4), (bytes, at, maxTags) => {
      const eth = new EthernetView();
      const reason = eth.attach(placeAt(bytes, at, 0), at, bytes.length, maxTags);
      if (reason === DropReason.None) {
        assert.ok(eth.headerLength() <= bytes.length);
        assert.ok(eth.tagCount() <= maxTags);
      }
      // Trailing bytes past `length` (here 0xa5 = not a TPID) never change the verdict.
      const other = new EthernetView();
      assert.equal(other.attach(placeAt(bytes, at, 8), at, bytes.length, maxTags), reason);
      // 0x81 0x00 past `length` would read as a tag if the walk looked there.
      const tagged = placeAt(bytes, at, 8);
      tagged.fill(0x81, at + bytes.length).fill(0, at + bytes.length + 1);
      assert.equal(other.attach(tagged, at, bytes.length, maxTags), reason);
    }),
    { numRuns: 10_000 },
  );
  for (const frame of [untagged, dot1q, qinq]) {
    const headerLength = attached(frame).headerLength();
    for (let n = 0; n < headerLength; n++) {
      assert.equal(new EthernetView().attach(frame.subarray(0, n)), DropReason.Truncated, `prefix ${n}`);
    }
  }
});

function attached(bytes: Uint8Array, at = 0): EthernetView {
  const eth = new EthernetView();
  assert.equal(eth.attach(bytes, at), DropReason.None);
  return eth;
}
