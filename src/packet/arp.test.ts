import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mac } from './address.js';
import { ArpOperation, ArpRepr, ArpView } from './arp.js';
import { DropReason } from './drop-reason.js';
import { EthernetView } from './ethernet.js';
import { EtherType } from './ip-protocol.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// "Who has 192.168.1.1? Tell 192.168.1.100" in a broadcast Ethernet frame padded to 60 bytes.
const frame = hex(`
  ff ff ff ff ff ff 00 1b 21 3a 4b 5c 08 06
  00 01 08 00 06 04 00 01 00 1b 21 3a 4b 5c c0 a8 01 64 00 00 00 00 00 00 c0 a8 01 01
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00`);
const request = frame.subarray(14, 14 + 28);
// The answer: "192.168.1.1 is at 00:00:5e:00:53:01".
const reply = hex('00 01 08 00 06 04 00 02 00 00 5e 00 53 01 c0 a8 01 01 00 1b 21 3a 4b 5c c0 a8 01 64');

test('arp: reads every field of a request, located through its Ethernet header', () => {
  const eth = new EthernetView();
  assert.equal(eth.attach(frame), DropReason.None);
  assert.equal(eth.etherType(), EtherType.Arp);
  const arp = new ArpView();
  assert.equal(arp.attach(frame, eth.payloadAt()), DropReason.None);
  assert.equal(arp.available, 46, 'the Ethernet padding is part of the capture');
  assert.equal(arp.hardwareType(), 1);
  assert.equal(arp.protocolType(), EtherType.Ipv4);
  assert.equal(arp.operation(), ArpOperation.Request);
  assert.equal(arp.senderMacAt(), 22);
  assert.deepEqual(frame.subarray(22, 28), mac('00:1b:21:3a:4b:5c'));
  assert.equal(arp.senderIp(), 0xc0a80164);
  assert.equal(arp.targetMacAt(), 32);
  assert.equal(arp.targetIp(), 0xc0a80101);
  assert.equal(arp.headerLength(), 28);
  assert.deepEqual(ArpRepr.parse(arp), {
    operation: ArpOperation.Request,
    senderMac: '00:1b:21:3a:4b:5c',
    senderIp: '192.168.1.100',
    targetMac: '00:00:00:00:00:00',
    targetIp: '192.168.1.1',
  });
});

test('arp: emit into a dirty buffer reproduces the literal bytes, at offset 0 and 9', () => {
  for (const packet of [request, reply]) {
    const repr = ArpRepr.parse(attached(packet));
    for (const at of [0, 9]) {
      const out = dirty(at + 28 + 3);
      assert.equal(ArpRepr.emit(repr, out, at), 28);
      assert.equal(ArpRepr.headerLength(repr), 28);
      assert.deepEqual(out.subarray(at, at + 28), packet);
      assert.equal(out[at + 28], 0xa5, 'emit must not write past the packet');
    }
  }
});

test('arp: parse → emit → parse round trip at a non-zero offset', () => {
  const repr: ArpRepr = {
    operation: ArpOperation.Reply,
    senderMac: 'fe:dc:ba:98:76:54',
    senderIp: '255.255.255.254',
    targetMac: '02:00:00:00:00:01',
    targetIp: '0.0.0.1',
  };
  const buf = dirty(5 + 28 + 18);
  assert.equal(ArpRepr.emit(repr, buf, 5), 28);
  const arp = new ArpView();
  assert.equal(arp.attach(buf, 5, 28), DropReason.None);
  assert.deepEqual(ArpRepr.parse(arp), repr);
});

test('arp: a request becomes its reply in place through the setters', () => {
  const buf = placeAt(request, 3);
  const arp = attached(buf, 3);
  const answer = mac('00:00:5e:00:53:01');
  const asker = arp.senderIp();
  arp.setOperation(ArpOperation.Reply);
  arp.setTargetMac(buf, arp.senderMacAt());
  arp.setTargetIp(asker);
  arp.setSenderMac(answer);
  arp.setSenderIp(0xc0a80101);
  assert.deepEqual(buf.subarray(3, 31), reply);
  assert.equal(buf[2], 0xa5);
  assert.equal(buf[31], 0xa5);
  const fresh = new ArpView().attachUnchecked(dirty(28));
  fresh.setEthernetIpv4();
  assert.deepEqual(fresh.bytes.subarray(0, 6), hex('00 01 08 00 06 04'));
});

test('arp: other hardware, protocols and address lengths are BadField; short is Truncated', () => {
  const cases: [string, number, number][] = [
    ['hardware type 6 (IEEE 802)', 1, 6],
    ['protocol type IPv6', 2, 0x86],
    ['hardware length 8', 4, 8],
    ['protocol length 16', 5, 16],
  ];
  for (const [name, index, value] of cases) {
    const b = request.slice();
    b[index] = value;
    assert.equal(new ArpView().attach(b), DropReason.BadField, name);
  }
  assert.equal(new ArpView().attach(frame, 14, 27), DropReason.Truncated);
});

test('arp: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(8), fc.boolean(), (bytes, at, shaped) => {
      if (shaped && bytes.length >= 6) bytes.set(hex('00 01 08 00 06 04'));
      const arp = new ArpView();
      const reason = arp.attach(placeAt(bytes, at, 0), at, bytes.length);
      if (reason === DropReason.None) assert.ok(bytes.length >= 28);
      assert.equal(arp.attach(placeAt(bytes, at, 30), at, bytes.length), reason);
    }),
    { numRuns: 10_000 },
  );
  for (let n = 0; n < request.length; n++) {
    assert.equal(new ArpView().attach(request.subarray(0, n)), DropReason.Truncated, `prefix ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): ArpView {
  const arp = new ArpView();
  assert.equal(arp.attach(bytes, at), DropReason.None);
  return arp;
}
