import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import fc from 'fast-check';
import { ipv6 } from './address.js';
import { DropReason } from './drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey } from './flow-key.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { UdpView } from './udp.js';
import { hex } from '../../test/support/hex.js';

// A DNS query from 10.0.0.1:53000 to 8.8.8.8:53 (IPv4 + UDP, checksums valid).
const dns4 = hex(`45 00 00 39 1c 46 40 00 40 11 04 5e 0a 00 00 01 08 08 08 08
  cf 08 00 35 00 25 9b 1a ab cd 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01`);
// UDP over IPv6 from [2001:db8::1]:40000 to [2001:db8::2]:5353.
const udp6 = hex(`60 00 00 00 00 14 11 40
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  9c 40 14 e9 00 14 e8 28 68 65 6c 6c 6f 2c 20 69 70 76 36 21`);

test('flow-key: IPv4 extraction from a literal packet', () => {
  const ip = new Ipv4View();
  const udp = new UdpView();
  assert.equal(ip.attach(dns4), DropReason.None);
  assert.equal(udp.attach(dns4, ip.payloadAt(), ip.payloadLength()), DropReason.None);
  const key = new FlowKey();
  key.setV4(ip.src(), ip.dst(), ip.protocol(), udp.srcPort(), udp.dstPort());
  assert.equal(key.version(), 4);
  assert.equal(key.protocol(), IpProtocol.Udp);
  assert.equal(key.srcPort(), 53000);
  assert.equal(key.dstPort(), 53);
  assert.equal(key.srcV4(), 0x0a000001);
  assert.equal(key.dstV4(), 0x08080808);
  assert.equal(key.toString(), '17 10.0.0.1:53000 -> 8.8.8.8:53');
  const addr = new Uint8Array(16);
  key.srcAddressTo(addr);
  assert.deepEqual(addr, ipv6('::ffff:10.0.0.1'), 'IPv4 addresses are stored IPv4-mapped');
  assert.deepEqual([...key.words], [0, 0, 0xffff, 0x0a000001, 0, 0, 0xffff, 0x08080808, 0xcf080035, 0x0411]);
});

test('flow-key: IPv6 extraction from a literal packet', () => {
  const key = new FlowKey();
  key.setV6(udp6, 8, 24, udp6[6], (udp6[40] << 8) | udp6[41], (udp6[42] << 8) | udp6[43]);
  assert.equal(key.version(), 6);
  assert.equal(key.protocol(), IpProtocol.Udp);
  assert.equal(key.srcPort(), 40000);
  assert.equal(key.dstPort(), 5353);
  assert.equal(key.toString(), '17 [2001:db8::1]:40000 -> [2001:db8::2]:5353');
  const addr = new Uint8Array(16);
  key.dstAddressTo(addr);
  assert.deepEqual(addr, ipv6('2001:db8::2'));
  // The same addresses as an IPv4-mapped v6 key and a v4 key differ by version.
  const v4 = new FlowKey();
  v4.setV4(0x0a000001, 0x0a000002, 6, 1, 2);
  const mapped = new FlowKey();
  const b = new Uint8Array(32);
  b.set(ipv6('::ffff:10.0.0.1'));
  b.set(ipv6('::ffff:10.0.0.2'), 16);
  mapped.setV6(b, 0, 16, 6, 1, 2);
  assert.equal(v4.equals(mapped), false);
  assert.notEqual(v4.hash(), mapped.hash());
});

test('flow-key: toString of a TCP key', () => {
  const key = new FlowKey();
  key.setV4(0x0a000001, 0x0a000002, IpProtocol.Tcp, 1234, 80);
  assert.equal(key.toString(), '6 10.0.0.1:1234 -> 10.0.0.2:80');
});

test('flow-key: reverse, copyFrom, equals, and table storage', () => {
  const a = new FlowKey();
  a.setV4(0xc0000201, 0xc6336402, IpProtocol.Tcp, 65535, 443);
  const b = new FlowKey();
  b.copyFrom(a);
  assert.equal(b.equals(a), true);
  assert.equal(b.hash(), a.hash());
  b.reverse();
  assert.equal(b.equals(a), false);
  assert.equal(b.toString(), '6 198.51.100.2:443 -> 192.0.2.1:65535');
  b.reverse();
  assert.equal(b.equals(a), true);

  const table = new Uint32Array(3 * FLOW_KEY_WORDS).fill(0xa5a5a5a5);
  a.writeTo(table, 2 * FLOW_KEY_WORDS);
  assert.equal(a.equalsAt(table, 2 * FLOW_KEY_WORDS), true);
  assert.equal(a.equalsAt(table, FLOW_KEY_WORDS), false);
  assert.equal(table[2 * FLOW_KEY_WORDS - 1], 0xa5a5a5a5, 'writeTo stays inside its slot');
  const c = new FlowKey();
  c.readFrom(table, 2 * FLOW_KEY_WORDS);
  assert.equal(c.equals(a), true);
  for (let i = 0; i < FLOW_KEY_WORDS; i++) {
    c.copyFrom(a);
    c.words[i] ^= 1;
    assert.equal(c.equalsAt(table, 2 * FLOW_KEY_WORDS), false, `word ${i}`);
  }
});

const v4Key = fc.tuple(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(255), fc.nat(0xffff), fc.nat(0xffff));

test('flow-key: the symmetric hash is the same for both directions; the plain hash is not', () => {
  const a = new FlowKey();
  const b = new FlowKey();
  fc.assert(
    fc.property(v4Key, ([src, dst, proto, sp, dp]) => {
      a.setV4(src, dst, proto, sp, dp);
      b.setV4(dst, src, proto, dp, sp);
      assert.equal(a.symmetricHash(), b.symmetricHash());
      b.reverse();
      assert.equal(b.equals(a), true);
      assert.equal(a.hash(), b.hash());
      const h = a.hash();
      assert.ok(h === (h | 0), 'an int32');
    }),
    { numRuns: 5_000 },
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.nat(255),
      fc.nat(0xffff),
      fc.nat(0xffff),
      (addrs, proto, sp, dp) => {
        a.setV6(addrs, 0, 16, proto, sp, dp);
        b.setV6(addrs, 16, 0, proto, dp, sp);
        assert.equal(a.symmetricHash(), b.symmetricHash());
      },
    ),
    { numRuns: 2_000 },
  );
  // Same address, ports swapped: the port order decides.
  a.setV4(1, 1, 6, 10, 20);
  b.setV4(1, 1, 6, 20, 10);
  assert.equal(a.symmetricHash(), b.symmetricHash());
  a.setV4(1, 2, 6, 10, 20);
  b.setV4(2, 1, 6, 10, 20); // not the reverse: ports not swapped
  assert.notEqual(a.symmetricHash(), b.symmetricHash());
  assert.notEqual(a.hash(), b.hash());
});

test('flow-key: hash values are stable (conntrack snapshots store them)', () => {
  // Computed before the IPv4 shortcut in symmetricHash and the unrolled equalsAt; they must not change.
  const k = new FlowKey();
  const v6 = new Uint8Array(32);
  v6.set([0x20, 0x01], 0);
  v6.set([0x20, 0x01], 16);
  v6[15] = 1;
  v6[31] = 2;
  const cases: [() => void, number, number][] = [
    [() => k.setV4(0x0a000001, 0xc0000201, 17, 40000, 53), 574114339, 574114339],
    [() => k.setV4(0xc0000201, 0x0a000001, 17, 53, 40000), 169133194, 574114339],
    [() => k.setV4(0xfffffffe, 0x80000000, 6, 1, 2), -1608813077, -1597094272],
    [() => k.setV4(0x0a000001, 0x0a000001, 6, 9000, 80), -1562558778, 738968613],
    [() => k.setV4(0x0a000001, 0x0a000001, 6, 80, 9000), 738968613, 738968613],
    [() => k.setV6(v6, 0, 16, 58, 7, 7), 1673211315, 1673211315],
    [() => k.setV6(v6, 16, 0, 6, 443, 50000), -1918330982, 1907903498],
  ];
  for (const [set, hash, symmetric] of cases) {
    set();
    assert.equal(k.hash(), hash, k.toString());
    assert.equal(k.symmetricHash(), symmetric, k.toString());
  }
});

test('flow-key: equalsAt tells apart keys differing in any one word', () => {
  const a = new FlowKey();
  a.setV6(udp6, 8, 24, IpProtocol.Udp, 40000, 5353);
  const table = new Uint32Array(3 * FLOW_KEY_WORDS);
  for (let w = 0; w < FLOW_KEY_WORDS; w++) {
    a.writeTo(table, FLOW_KEY_WORDS);
    assert.equal(a.equalsAt(table, FLOW_KEY_WORDS), true);
    table[FLOW_KEY_WORDS + w] ^= 1 << (w * 3);
    assert.equal(a.equalsAt(table, FLOW_KEY_WORDS), false, `word ${w}`);
  }
});

test('flow-key: 10^5 structured keys spread evenly over 2^16 buckets', () => {
  const key = new FlowKey();
  const low = new Uint32Array(1 << 16);
  const high = new Uint32Array(1 << 16);
  const sym = new Uint32Array(1 << 16);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    // Sequential clients and ports (the worst case for a weak hash), one server.
    key.setV4(0xc6120000 + (i >>> 4), 0xc6130001, IpProtocol.Tcp, 1024 + (i & 15), 443);
    const h = key.hash();
    low[h & 0xffff]++;
    high[h >>> 16]++;
    sym[key.symmetricHash() & 0xffff]++;
  }
  // Mean load 1.53; with a uniform hash the maximum over 65536 buckets is about 8–9.
  for (const [name, buckets] of [
    ['low bits', low],
    ['high bits', high],
    ['symmetric', sym],
  ] as const) {
    let max = 0;
    let empty = 0;
    for (const c of buckets) {
      if (c > max) max = c;
      if (c === 0) empty++;
    }
    assert.ok(max <= 13, `${name}: max bucket load ${max}`);
    // Poisson(1.53): about 21.7% of buckets stay empty.
    assert.ok(
      Math.abs(empty / buckets.length - Math.exp(-n / buckets.length)) < 0.01,
      `${name}: ${empty} empty`,
    );
  }
});

// V8 boxes a uint32 result ≥ 2^31 that crosses a call it did not inline (as for any read32 or
// seq()), so hashing is measured in a loop of its own, where the small hash methods are inlined.
test('flow-key: the packet-path methods allocate nothing (no GC in 2·10^6 rounds)', async () => {
  const a = new FlowKey();
  const b = new FlowKey();
  const table = new Uint32Array(4 * FLOW_KEY_WORDS);
  const addrs = new Uint8Array(32).fill(7);
  // Warm up, letting the concurrent optimising compiler finish between rounds.
  for (let warm = 0; warm < 3; warm++) {
    churn(a, b, table, addrs, 100_000);
    hashes(a, addrs, 100_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Positive control: as many rounds, each allocating one small object, are seen collecting.
  const sink: { value: unknown } = { value: null };
  const allocating = await collectionsDuring(() => {
    for (let i = 0; i < 2_000_000; i++) sink.value = { i };
  });
  assert.ok(allocating >= 2, `control: ${allocating} collections`);
  let acc = 0;
  const churned = await collectionsDuring(() => (acc = churn(a, b, table, addrs, 2_000_000)));
  assert.ok(churned <= 1, `set/copy/reverse/compare: ${churned} garbage collections (acc ${acc})`);
  const hashed = await collectionsDuring(() => (acc = hashes(a, addrs, 2_000_000)));
  assert.ok(hashed <= 1, `hash/symmetricHash: ${hashed} garbage collections (acc ${acc})`);
});

/** Every non-hash packet-path method of FlowKey, `rounds` times; returns a digest so nothing is dead code. */
function churn(a: FlowKey, b: FlowKey, table: Uint32Array, addrs: Uint8Array, rounds: number): number {
  let acc = 0;
  for (let i = 0; i < rounds; i++) {
    if (i & 1) a.setV4(i, i ^ 0x5555, 6, i & 0xffff, 80);
    else a.setV6(addrs, 0, 16, 17, i & 0xffff, 53);
    a.writeTo(table, (i & 3) * FLOW_KEY_WORDS);
    b.readFrom(table, (i & 3) * FLOW_KEY_WORDS);
    b.copyFrom(a);
    b.reverse();
    acc ^= (a.equalsAt(table, 0) ? 1 : 0) ^ (a.equals(b) ? 2 : 0);
    acc ^= a.srcPort() ^ a.dstPort() ^ a.protocol() ^ a.version();
  }
  return acc;
}

/** hash() and symmetricHash() over changing v4 and v6 keys. */
function hashes(a: FlowKey, addrs: Uint8Array, rounds: number): number {
  let acc = 0;
  for (let i = 0; i < rounds; i++) {
    if (i & 1) a.setV4(i, i ^ 0x5555, 6, i & 0xffff, 80);
    else a.setV6(addrs, 0, 16, 17, i & 0xffff, 53);
    acc ^= a.hash() ^ a.symmetricHash();
  }
  return acc;
}

/** Garbage collections while `body` runs (GC entries are delivered on a later turn of the loop). */
async function collectionsDuring(body: () => void): Promise<number> {
  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  body();
  await new Promise((resolve) => setTimeout(resolve, 100));
  observer.disconnect();
  return collections;
}
