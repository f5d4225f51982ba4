import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isNfvError } from '../errors.js';
import {
  decodeIpfix,
  IPFIX_HEADER_LENGTH,
  IPFIX_RECORD_LENGTH,
  IPFIX_TEMPLATE_SET_LENGTH,
  IpfixEncoder,
  IpfixIe,
  IpfixTemplateId,
  type IpfixFlow,
} from './ipfix.js';

const V4: IpfixFlow = {
  ipVersion: 4,
  src: '10.0.0.1',
  dst: '10.0.0.2',
  srcPort: 40000,
  dstPort: 80,
  protocol: 6,
  packets: 10,
  octets: 1500,
  tcpFlags: 0x1b,
  startMs: 1_700_000_000_123,
  endMs: 1_700_000_001_456,
  endReason: 1,
};
const V6: IpfixFlow = {
  ...V4,
  ipVersion: 6,
  src: 'fd00::1',
  dst: '2001:db8::abcd',
  srcPort: 5353,
  dstPort: 53,
  protocol: 17,
  tcpFlags: 0,
  packets: 2 ** 40,
  octets: 2 ** 52 + 1,
  endReason: 2,
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('IpfixEncoder', () => {
  it('writes the header, the template set and an IPv4 record byte for byte', () => {
    const enc = new IpfixEncoder({ observationDomainId: 7 });
    enc.begin(1_700_000_000.9, true);
    assert.equal(enc.add(V4), true);
    const m = enc.finish();
    const length = IPFIX_HEADER_LENGTH + IPFIX_TEMPLATE_SET_LENGTH + 4 + IPFIX_RECORD_LENGTH.ipv4;
    assert.equal(m.length, length);
    // version 10, length, export time 1700000000 (0x6553f100), sequence 0, domain 7
    assert.equal(
      hex(m.subarray(0, 16)),
      `000a${length.toString(16).padStart(4, '0')}6553f1000000000000000007`,
    );
    // template set: id 2, length 100; template 256 with 11 fields, the first flowStartMilliseconds/8
    assert.equal(IPFIX_TEMPLATE_SET_LENGTH, 100);
    assert.equal(hex(m.subarray(16, 28)), '000200640100000b00980008');
    // IPv6 template 257 follows the 11 fields of 256
    assert.equal(hex(m.subarray(16 + 4 + 48, 16 + 4 + 48 + 4)), '0101000b');
    const d = 16 + 100;
    assert.equal(hex(m.subarray(d, d + 4)), `0100${(4 + 48).toString(16).padStart(4, '0')}`);
    assert.equal(
      hex(m.subarray(d + 4)),
      [
        '0000018bcfe5687b', // 1700000000123
        '0000018bcfe56db0', // 1700000001456
        '000000000000000a',
        '00000000000005dc',
        '0a000001',
        '0a000002',
        '9c40',
        '0050',
        '06',
        '001b',
        '01',
      ].join(''),
    );
  });

  it('round-trips IPv4 and IPv6 records, one data set per template run, at a non-zero buffer offset', () => {
    const enc = new IpfixEncoder({ observationDomainId: 1 });
    enc.begin(1, true);
    for (const f of [V4, V4, V6, V4]) assert.equal(enc.add(f), true);
    const m = enc.finish();
    const padded = new Uint8Array(m.length + 3).fill(0xa5);
    padded.set(m, 3);
    const [msg] = decodeIpfix(padded.subarray(3));
    assert.deepEqual(msg.templateIds, [IpfixTemplateId.ipv4, IpfixTemplateId.ipv6]);
    assert.deepEqual(msg.dataSetIds, [256, 257, 256]);
    assert.deepEqual(msg.flows, [V4, V4, V6, V4]);
  });

  it('numbers messages by the data records sent before them and fills each up to the bound', () => {
    const enc = new IpfixEncoder({ maxMessageLength: 512 });
    const messages: Uint8Array[] = [];
    let i = 0;
    const total = 30;
    let first = true;
    while (i < total) {
      enc.begin(0, first);
      first = false;
      while (i < total && enc.add(V4)) i++;
      const m = enc.finish();
      assert.ok(m.length <= 512);
      messages.push(m.slice());
    }
    const templates = new Map<number, (readonly [number, number])[]>();
    const decoded = messages.map((m) => decodeIpfix(m, templates)[0]);
    let sequence = 0;
    for (const d of decoded) {
      assert.equal(d.header.sequence, sequence);
      sequence += d.flows.length;
    }
    assert.equal(sequence, total);
    assert.equal(enc.sequence(), total);
    // first message: 512 - 16 - 100 - 4 = 392 → 8 records; then (512 - 20) / 48 → 10
    assert.deepEqual(
      decoded.map((d) => d.flows.length),
      [8, 10, 10, 2],
    );
  });

  it('refuses a record whose address does not parse, writing nothing', () => {
    const enc = new IpfixEncoder();
    enc.begin(0, false);
    assert.equal(enc.add({ ...V4, src: '10.0.0.256' }), false);
    assert.equal(enc.add({ ...V6, dst: 'fd00::g' }), false);
    assert.equal(enc.finish().length, IPFIX_HEADER_LENGTH);
  });

  it('clamps counts and keeps tcpControlBits to 16 bits', () => {
    const enc = new IpfixEncoder();
    enc.begin(0, true);
    enc.add({ ...V4, packets: -1, octets: Number.POSITIVE_INFINITY, tcpFlags: 0x1ff });
    const [msg] = decodeIpfix(enc.finish());
    assert.equal(msg.flows[0].packets, 0);
    assert.equal(msg.flows[0].octets, Number.MAX_SAFE_INTEGER);
    assert.equal(msg.flows[0].tcpFlags, 0x1ff);
  });

  it('rejects bad options with NFV_ERR_BAD_ARGUMENT', () => {
    assert.throws(
      () => new IpfixEncoder({ maxMessageLength: 100 }),
      (e) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT'),
    );
    assert.throws(
      () => new IpfixEncoder({ observationDomainId: -1 }),
      (e) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT'),
    );
  });

  it('uses the IANA element ids', () => {
    assert.deepEqual(
      [
        IpfixIe.sourceIPv4Address,
        IpfixIe.destinationIPv6Address,
        IpfixIe.flowEndReason,
        IpfixIe.flowEndMilliseconds,
      ],
      [8, 28, 136, 153],
    );
  });
});

describe('decodeIpfix', () => {
  const good = (): Uint8Array => {
    const enc = new IpfixEncoder();
    enc.begin(0, true);
    enc.add(V4);
    return enc.finish().slice();
  };

  it('reports malformed messages with NFV_ERR_IPFIX_MALFORMED', () => {
    const malformed = (e: unknown): boolean => isNfvError(e, 'NFV_ERR_IPFIX_MALFORMED');
    const version = good();
    version[1] = 9;
    assert.throws(() => decodeIpfix(version), malformed);
    const long = good();
    long[3] += 1;
    assert.throws(() => decodeIpfix(long), malformed);
    assert.throws(() => decodeIpfix(good().subarray(0, 10)), malformed);
    const noTemplate = new IpfixEncoder();
    noTemplate.begin(0, false);
    noTemplate.add(V4);
    assert.throws(() => decodeIpfix(noTemplate.finish()), malformed);
    const set = good();
    set[16 + 3] = 3; // template set length below its header
    assert.throws(() => decodeIpfix(set), malformed);
  });

  it('never throws anything but NfvError on random bytes', () => {
    let seed = 1;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const b = good();
      for (let k = 0; k < 4; k++) b[rand() % b.length] = rand();
      try {
        decodeIpfix(b);
      } catch (e) {
        assert.ok(isNfvError(e, 'NFV_ERR_IPFIX_MALFORMED'), String(e));
      }
    }
  });
});
