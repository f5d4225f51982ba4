import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pseudoHeaderSumV4 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { TcpFlag, TcpOption, TcpRepr, TcpView } from './tcp.js';
import { dirty, hex, placeAt } from '../../test/support/hex.js';

// A Linux-style SYN from 192.168.1.10:51234 to 93.184.216.34:80 with MSS 1460, SACK permitted,
// timestamps (TSval 123456, TSecr 0), NOP and window scale 7; IPv4 and TCP checksums valid.
const ipHeader = hex('45 00 00 3c 8a 3f 40 00 40 06 b8 ef c0 a8 01 0a 5d b8 d8 22');
const syn = hex(`c8 22 00 50 3a de 68 b1 00 00 00 00 a0 02 fa f0 07 3e 00 00
  02 04 05 b4 04 02 08 0a 00 01 e2 40 00 00 00 00 01 03 03 07`);
const packet = new Uint8Array(ipHeader.length + syn.length);
packet.set(ipHeader);
packet.set(syn, ipHeader.length);
const SRC = 0xc0a8010a;
const DST = 0x5db8d822;
const pseudo = (len: number): number => pseudoHeaderSumV4(SRC, DST, IpProtocol.Tcp, len);

test('tcp: reads every field and option of a literal SYN inside an IPv4 packet', () => {
  const ip = new Ipv4View();
  assert.equal(ip.attach(packet), DropReason.None);
  const tcp = new TcpView();
  assert.equal(tcp.attach(packet, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  assert.equal(tcp.srcPort(), 51234);
  assert.equal(tcp.dstPort(), 80);
  assert.equal(tcp.seq(), 0x3ade68b1);
  assert.equal(tcp.ack(), 0);
  assert.equal(tcp.headerLength(), 40);
  assert.equal(tcp.flags(), TcpFlag.Syn);
  assert.equal(tcp.window(), 64240);
  assert.equal(tcp.checksum(), 0x073e);
  assert.equal(tcp.urgentPointer(), 0);
  assert.equal(tcp.payloadAt(), 60);
  assert.equal(tcp.payloadLength(), 0);
  assert.equal(tcp.mss(), 1460);
  assert.equal(tcp.sackPermitted(), true);
  assert.equal(tcp.tsVal(), 123456);
  assert.equal(tcp.tsEcr(), 0);
  assert.equal(tcp.windowScale(), 7);
  assert.equal(tcp.findOption(TcpOption.Timestamp), 20 + 20 + 6);
  assert.equal(tcp.findOption(TcpOption.Sack), -1);
  assert.equal(
    tcp.verifyChecksum(pseudoHeaderSumV4(ip.src(), ip.dst(), ip.protocol(), ip.payloadLength())),
    true,
  );
});

test('tcp: unsigned 32-bit sequence numbers and absent options', () => {
  const b = dirty(20);
  const repr: TcpRepr = {
    srcPort: 1,
    dstPort: 2,
    seq: 0xffffffff,
    ack: 0x80000000,
    flags: TcpFlag.Ack | TcpFlag.Cwr,
    window: 0,
    urgentPointer: 0,
    options: new Uint8Array(0),
    payloadLength: 0,
  };
  TcpRepr.emit(repr, b, 0, pseudo(20));
  const tcp = attached(b);
  assert.equal(tcp.seq(), 0xffffffff);
  assert.equal(tcp.ack(), 0x80000000);
  assert.equal(tcp.mss(), -1);
  assert.equal(tcp.windowScale(), -1);
  assert.equal(tcp.sackPermitted(), false);
  assert.equal(tcp.tsVal(), -1);
  assert.equal(tcp.tsEcr(), -1);
});

test('tcp: options after End of Option List and options of the wrong length are not read', () => {
  const b = new Uint8Array(32);
  const options = hex('00 00 00 00 02 04 05 b4 00 00 00 00'); // EOL first: MSS is padding
  TcpRepr.emit({ ...TcpRepr.parse(attached(syn)), options, payloadLength: 0 }, b, 0, 0);
  assert.equal(attached(b).mss(), -1);
  TcpRepr.emit({ ...TcpRepr.parse(attached(syn)), options: hex('02 03 05 01'), payloadLength: 0 }, b, 0, 0);
  assert.equal(new TcpView().attach(b, 0, 24), DropReason.None);
  assert.equal(new TcpView().attachUnchecked(b, 0, 24).mss(), -1, 'MSS with length 3');
});

test('tcp: emit into a dirty buffer reproduces the literal SYN, at offset 0 and 9', () => {
  const repr = TcpRepr.parse(attached(syn));
  assert.equal(TcpRepr.headerLength(repr), 40);
  for (const at of [0, 9]) {
    const out = dirty(at + syn.length + 3);
    assert.equal(TcpRepr.emit(repr, out, at, pseudo(syn.length)), 40);
    assert.deepEqual(out.subarray(at, at + syn.length), syn);
    assert.equal(out[at + syn.length], 0xa5, 'emit must not write past the header');
  }
});

test('tcp: parse → emit → parse round trip with payload at a non-zero offset', () => {
  const repr: TcpRepr = {
    srcPort: 443,
    dstPort: 60001,
    seq: 0xdeadbeef,
    ack: 0x01020304,
    flags: TcpFlag.Psh | TcpFlag.Ack | TcpFlag.Urg | TcpFlag.Ece,
    window: 0xffff,
    urgentPointer: 3,
    options: hex('01 01 08 0a 11 22 33 44 55 66 77 88'),
    payloadLength: 7,
  };
  const at = 11;
  const buf = dirty(at + 32 + 7 + 4);
  buf.set(hex('61 62 63 64 65 66 67'), at + 32);
  assert.equal(TcpRepr.emit(repr, buf, at, pseudo(39)), 32);
  const tcp = new TcpView();
  assert.equal(tcp.attach(buf, at, 39), DropReason.None);
  assert.deepEqual(TcpRepr.parse(tcp), repr);
  assert.equal(tcp.verifyChecksum(pseudo(39)), true);
  assert.equal(tcp.tsVal(), 0x11223344);
  assert.equal(tcp.tsEcr(), 0x55667788);
  assert.equal(tcp.payloadAt(), at + 32);
  buf[at + 32 + 6] ^= 0x20;
  assert.equal(tcp.verifyChecksum(pseudo(39)), false, 'a flipped payload bit');
});

test('tcp: options are padded with End of Option List to a multiple of 4', () => {
  const out = dirty(24);
  TcpRepr.emit({ ...TcpRepr.parse(attached(syn)), options: hex('03 03 07'), payloadLength: 0 }, out, 0, 0);
  assert.deepEqual(out.subarray(12, 13), hex('60'));
  assert.deepEqual(out.subarray(20, 24), hex('03 03 07 00'));
});

test('tcp: each kind of lie is rejected with its own reason', () => {
  const cases: [string, (b: Uint8Array) => void, number, DropReason][] = [
    ['segment shorter than 20', () => undefined, 19, DropReason.Truncated],
    ['data offset 4', (b) => (b[12] = 0x40), syn.length, DropReason.BadHeaderLength],
    ['data offset 0', (b) => (b[12] = 0x00), syn.length, DropReason.BadHeaderLength],
    ['data offset 15 beyond segment', (b) => (b[12] = 0xf0), syn.length, DropReason.Truncated],
    ['header beyond segment', () => undefined, 39, DropReason.Truncated],
    ['MSS length 0', (b) => (b[21] = 0), syn.length, DropReason.BadOption],
    ['MSS length 1', (b) => (b[21] = 1), syn.length, DropReason.BadOption],
    ['window scale overruns header', (b) => (b[38] = 4), syn.length, DropReason.BadOption],
    [
      'kind without length at the end',
      (b) => ((b[37] = 1), (b[38] = 1), (b[39] = 3)),
      syn.length,
      DropReason.BadOption,
    ],
    ['EOL ends the walk', (b) => ((b[36] = 0), (b[38] = 0xff)), syn.length, DropReason.None],
  ];
  for (const [name, mutate, length, reason] of cases) {
    const b = syn.slice();
    mutate(b);
    assert.equal(new TcpView().attach(b, 0, length), reason, name);
  }
});

test('tcp: setters write exactly their field; setHeaderLength clears the reserved bits', () => {
  const b = dirty(20);
  const tcp = new TcpView().attachUnchecked(b, 0, 20);
  tcp.setSrcPort(0x0102);
  tcp.setDstPort(0x0304);
  tcp.setSeq(0x05060708);
  tcp.setAck(0x090a0b0c);
  tcp.setHeaderLength(20);
  tcp.setFlags(TcpFlag.Fin | TcpFlag.Rst);
  tcp.setWindow(0x0e0f);
  tcp.setChecksum(0x1011);
  tcp.setUrgentPointer(0x1213);
  assert.deepEqual(b, hex('01 02 03 04 05 06 07 08 09 0a 0b 0c 50 05 0e 0f 10 11 12 13'));
});

test('tcp: random bytes and every truncation are rejected, never read past the end', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), fc.nat(90), (bytes, at, length) => {
      const tcp = new TcpView();
      const reason = tcp.attach(placeAt(bytes, at, 0), at, length);
      if (reason === DropReason.None) {
        assert.ok(tcp.headerLength() <= Math.min(length, bytes.length));
        assert.ok(tcp.payloadLength() >= 0);
        tcp.mss();
        tcp.windowScale();
        tcp.sackPermitted();
        tcp.tsVal();
        tcp.tsEcr();
        tcp.findOption(0x42);
      }
    }),
    { numRuns: 10_000 },
  );
  // Random option areas behind a valid fixed header.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 40, maxLength: 40 }), (options) => {
      const b = new Uint8Array(60);
      b.set(syn.subarray(0, 20));
      b[12] = 0xf0; // data offset 15: 40 bytes of options
      b.set(options, 20);
      const tcp = new TcpView();
      if (tcp.attach(b) === DropReason.None) {
        const mss = tcp.mss();
        assert.ok(mss >= -1 && mss <= 0xffff);
        const ts = tcp.tsVal();
        assert.ok(ts >= -1 && ts <= 0xffffffff);
      }
    }),
    { numRuns: 5_000 },
  );
  for (let n = 0; n < syn.length; n++) {
    assert.notEqual(new TcpView().attach(syn.subarray(0, n)), DropReason.None, `prefix ${n}`);
    assert.notEqual(new TcpView().attach(syn, 0, n), DropReason.None, `segment ${n}`);
  }
});

function attached(bytes: Uint8Array, at = 0): TcpView {
  const tcp = new TcpView();
  assert.equal(tcp.attach(bytes, at), DropReason.None);
  return tcp;
}
