import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4, formatIpv6, formatMac, ipv4, ipv6, mac } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { Icmpv4Repr } from '../../src/packet/icmpv4.js';
import { Icmpv6Repr } from '../../src/packet/icmpv6.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr, Ipv4View } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import router, { type RouterInstance, type RouterSnapshot } from './index.js';

const ROUTER_MAC = '02:00:00:00:00:fe';
const SENDER_MAC = '02:00:00:00:00:01';
const MAC_A = '02:aa:00:00:00:01';
const MAC_B = '02:bb:00:00:00:02';
const MAC_C = '02:cc:00:00:00:03';
const MAC_D = '02:dd:00:00:00:04';
const MAC_V6 = '02:66:00:00:00:06';

interface FrameSpec {
  src: string;
  dst: string;
  protocol?: 'tcp' | 'udp' | 'icmp';
  ttl?: number;
  payload?: number;
  /** ICMP type (echo request by default). */
  icmpType?: number;
  vlan?: number;
  identification?: number;
  dscp?: number;
}

/** Ethernet (to the router) / IPv4 or IPv6 / UDP, TCP or ICMP, checksums filled. */
function frame(spec: FrameSpec): Uint8Array {
  const v6 = spec.src.includes(':');
  const kind = spec.protocol ?? 'udp';
  const protocol =
    kind === 'tcp'
      ? IpProtocol.Tcp
      : kind === 'udp'
        ? IpProtocol.Udp
        : v6
          ? IpProtocol.Icmpv6
          : IpProtocol.Icmp;
  const payload = Uint8Array.from({ length: spec.payload ?? 12 }, (_, i) => (i * 7 + 3) & 0xff);
  const l4Length = (kind === 'tcp' ? 20 : 8) + payload.length;
  const ipLength = v6 ? 40 : 20;
  const tags = spec.vlan === undefined ? [] : [{ tpid: EtherType.Vlan, pcp: 0, dei: false, vid: spec.vlan }];
  const ethLength = 14 + 4 * tags.length;
  const bytes = new Uint8Array(ethLength + ipLength + l4Length);
  EthernetRepr.emit(
    { dst: ROUTER_MAC, src: SENDER_MAC, tags, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 },
    bytes,
  );
  const ttl = spec.ttl ?? 64;
  if (v6)
    Ipv6Repr.emit(
      { src: spec.src, dst: spec.dst, nextHeader: protocol, payloadLength: l4Length, hopLimit: ttl },
      bytes,
      ethLength,
    );
  else
    Ipv4Repr.emit(
      {
        src: spec.src,
        dst: spec.dst,
        protocol,
        payloadLength: l4Length,
        ttl,
        identification: spec.identification ?? 0x1234,
        dscp: spec.dscp ?? 0,
      },
      bytes,
      ethLength,
    );
  const at = ethLength + ipLength;
  const pseudo = v6
    ? pseudoHeaderSumV6(bytes, ethLength + 8, ethLength + 24, protocol, l4Length)
    : pseudoHeaderSumV4(ipv4(spec.src), ipv4(spec.dst), protocol, l4Length);
  if (kind === 'tcp') {
    bytes.set(payload, at + 20);
    const tcp = { srcPort: 40000, dstPort: 443, seq: 7, ack: 9, flags: 0x18, window: 500, urgentPointer: 0 };
    TcpRepr.emit({ ...tcp, options: new Uint8Array(0), payloadLength: payload.length }, bytes, at, pseudo);
  } else if (kind === 'udp') {
    bytes.set(payload, at + 8);
    UdpRepr.emit({ srcPort: 5000, dstPort: 53, payloadLength: payload.length }, bytes, at, pseudo);
  } else if (v6) {
    const message = { type: spec.icmpType ?? 128, code: 0, identifier: 1, sequence: 2, payload };
    Icmpv6Repr.emit(message, bytes, at, pseudo);
  } else {
    Icmpv4Repr.emit({ type: spec.icmpType ?? 8, code: 0, identifier: 1, sequence: 2, payload }, bytes, at);
  }
  return bytes;
}

/** What the router must emit: the same frame with next-hop MACs and TTL − 1 (checksum recomputed). */
function forwarded(input: Uint8Array, nextHopMac: string): Uint8Array {
  const out = input.slice();
  out.set(mac(nextHopMac), 0);
  out.set(mac(ROUTER_MAC), 6);
  const ethLength = out[12] === 0x81 ? 18 : 14;
  if (out[ethLength] >>> 4 === 6) out[ethLength + 7]--;
  else {
    const ip = new Ipv4View().attachUnchecked(out, ethLength);
    ip.setTtl(ip.ttl() - 1);
    ip.fillChecksum();
  }
  return out;
}

/** Parses with every checksum verified; fails the test when the frame does not parse. */
function parse(bytes: Uint8Array): PacketParser {
  const parser = new PacketParser({ maxTunnelDepth: 0 });
  assert.equal(parser.attach(bytes, 0, bytes.length), DropReason.None, 'the output frame must parse');
  return parser;
}

const CONFIG = {
  mac: ROUTER_MAC,
  routes: [
    { prefix: '10.0.0.0/8', nextHop: '192.168.1.1' },
    { prefix: '10.1.0.0/16', nextHop: '192.168.1.2' },
    { prefix: '10.1.2.128/25', nextHop: '192.168.1.1' },
    { prefix: '0.0.0.0/0', nextHop: '192.168.1.3' },
    { prefix: '192.168.1.0/24' },
    { prefix: '172.16.0.0/12', nextHop: 'blackhole' },
    { prefix: '2001:db8::/32', nextHop: 'fe80::1' },
    { prefix: '2001:db8:1::/48', nextHop: 'fe80::2' },
  ],
  neighbors: [
    { address: '192.168.1.1', mac: MAC_A },
    { address: '192.168.1.2', mac: MAC_B },
    { address: '192.168.1.3', mac: MAC_C },
    { address: '192.168.1.9', mac: MAC_D },
    { address: 'fe80::1', mac: MAC_V6 },
    { address: 'fe80::2', mac: MAC_D },
  ],
};

function fates(nf: NfHarness<unknown>, frames: Uint8Array[], now = 0): string[] {
  return nf.run(frames, now).map((r) => (r.output ? formatMac(r.bytes, 0) : `drop:${r.drop}`));
}

describe('router', () => {
  it('forwards IPv4 by longest prefix: next-hop MAC, router MAC, TTL − 1, header checksum valid', () => {
    const nf = new NfHarness(router, CONFIG);
    const cases: [string, string][] = [
      ['10.2.3.4', MAC_A], // 10/8
      ['10.1.2.3', MAC_B], // 10.1/16
      ['10.1.2.200', MAC_A], // 10.1.2.128/25
      ['10.1.2.127', MAC_B],
      ['8.8.8.8', MAC_C], // default
      ['192.168.1.9', MAC_D], // a neighbor on the connected /24
    ];
    for (const protocol of ['udp', 'tcp', 'icmp'] as const) {
      const inputs = cases.map(([dst]) => frame({ src: '198.51.100.7', dst, protocol }));
      const results = nf.run(inputs);
      results.forEach((result, i) => {
        assert.equal(result.output, 'out', cases[i][0]);
        assert.deepEqual(result.bytes, forwarded(inputs[i], cases[i][1]), `${protocol} to ${cases[i][0]}`);
        const parser = parse(result.bytes);
        assert.equal(parser.ipv4.ttl(), 63);
      });
    }
    assert.deepEqual(nf.counters(), { forwarded: 18, no_route: 0, ttl_expired: 0, icmp_sent: 0 });
    const instance = nf.instance as RouterInstance;
    assert.equal(instance.hits[0] + instance.hits[1] + instance.hits[2] + instance.hits[3], 15);
  });

  it('forwards IPv6 with the hop limit decremented, and VLAN-tagged frames with their tag', () => {
    const nf = new NfHarness(router, CONFIG);
    const inputs = [
      frame({ src: '2001:db8:ffff::9', dst: '2001:db8:5::1', protocol: 'tcp' }),
      frame({ src: '2001:db8:ffff::9', dst: '2001:db8:1:2::3', protocol: 'icmp' }),
      frame({ src: '198.51.100.7', dst: '10.9.9.9', vlan: 42 }),
      frame({ src: '2001:db8:ffff::9', dst: '2001:db8:1::5', vlan: 7 }),
    ];
    const expected = [MAC_V6, MAC_D, MAC_A, MAC_D];
    nf.run(inputs).forEach((result, i) => {
      assert.deepEqual(result.bytes, forwarded(inputs[i], expected[i]));
      const parser = parse(result.bytes);
      if (parser.l3 === Layer.Ipv6) assert.equal(parser.ipv6.hopLimit(), 63);
    });
    assert.equal(parse(nf.run([inputs[2]])[0].bytes).eth.tagVid(0), 42);
  });

  it('drops what it cannot route, each for its own reason', () => {
    const nf = new NfHarness(router, {
      ...CONFIG,
      routes: CONFIG.routes.filter((r) => r.prefix !== '0.0.0.0/0'),
    });
    const arp = new Uint8Array(60);
    EthernetRepr.emit({ dst: ROUTER_MAC, src: SENDER_MAC, tags: [], etherType: EtherType.Arp }, arp);
    const badChecksum = frame({ src: '198.51.100.7', dst: '10.0.0.1' });
    badChecksum[14 + 10] ^= 0x40;
    assert.deepEqual(
      fates(nf, [
        frame({ src: '198.51.100.7', dst: '8.8.8.8' }),
        frame({ src: '2001:db8::1', dst: '2001:db9::1' }),
        frame({ src: '198.51.100.7', dst: '172.20.0.1' }),
        frame({ src: '198.51.100.7', dst: '192.168.1.77' }),
        frame({ src: '198.51.100.7', dst: '10.0.0.1', ttl: 1 }),
        frame({ src: '198.51.100.7', dst: '10.0.0.1', ttl: 0 }),
        frame({ src: '2001:db8::1', dst: '2001:db8::2', ttl: 1 }),
        arp,
        badChecksum,
        frame({ src: '198.51.100.7', dst: '10.0.0.1' }).subarray(0, 30),
      ]),
      [
        'drop:no_route',
        'drop:no_route',
        'drop:blackhole',
        'drop:no_neighbor',
        'drop:ttl_expired',
        'drop:ttl_expired',
        'drop:ttl_expired',
        'drop:not_ip',
        'drop:malformed',
        'drop:malformed',
      ],
    );
    assert.deepEqual(nf.counters(), { forwarded: 0, no_route: 2, ttl_expired: 3, icmp_sent: 0 });
    assert.equal(nf.logs.length, 1);
  });

  it('drops martians: loopback, link-local, multicast, broadcast, unspecified, either side', () => {
    const nf = new NfHarness(router, CONFIG);
    const pairs: [string, string][] = [
      ['198.51.100.7', '127.0.0.1'],
      ['127.0.0.1', '10.0.0.1'],
      ['198.51.100.7', '224.0.0.5'],
      ['198.51.100.7', '255.255.255.255'],
      ['0.0.0.0', '10.0.0.1'],
      ['169.254.1.1', '10.0.0.1'],
      ['198.51.100.7', '240.0.0.1'],
      ['2001:db8::1', 'ff02::1'],
      ['fe80::5', '2001:db8::1'],
      ['2001:db8::1', '::1'],
      ['::', '2001:db8::1'],
    ];
    assert.deepEqual(
      fates(
        nf,
        pairs.map(([src, dst]) => frame({ src, dst })),
      ),
      pairs.map(() => 'drop:martian'),
    );
    // Near misses are routed.
    assert.deepEqual(
      fates(nf, [
        frame({ src: '198.51.100.7', dst: '169.253.1.1' }),
        frame({ src: '2001:db8::1', dst: '2001:db8::' }),
      ]),
      [MAC_C, MAC_V6],
    );
  });

  it('turns an expired IPv4 packet into ICMP time exceeded to its source, routed back', () => {
    const nf = new NfHarness(router, { ...CONFIG, address: '192.168.1.254' });
    const input = frame({ src: '10.1.7.7', dst: '8.8.8.8', ttl: 1, protocol: 'tcp', payload: 30 });
    const [result] = nf.run([input]);
    assert.equal(result.output, 'out');
    const parser = parse(result.bytes); // IPv4 and ICMP checksums verified
    assert.equal(formatMac(result.bytes, 0), MAC_B, 'to the next hop towards 10.1.7.7');
    assert.equal(formatMac(result.bytes, 6), ROUTER_MAC);
    assert.equal(parser.l4, Layer.Icmpv4);
    assert.deepEqual(
      [
        formatIpv4(parser.ipv4.src()),
        formatIpv4(parser.ipv4.dst()),
        parser.ipv4.ttl(),
        parser.ipv4.protocol(),
      ],
      ['192.168.1.254', '10.1.7.7', 64, IpProtocol.Icmp],
    );
    assert.deepEqual([parser.icmpv4.type(), parser.icmpv4.code(), parser.icmpv4.restOfHeader()], [11, 0, 0]);
    // The whole original datagram is quoted (it is under 576 bytes), unchanged: TTL 1 and all.
    assert.deepEqual(result.bytes.subarray(14 + 28), input.subarray(14));
    assert.equal(result.bytes.length, input.length + 28);
    assert.deepEqual(nf.counters(), { forwarded: 0, no_route: 0, ttl_expired: 1, icmp_sent: 1 });

    // A large datagram is quoted only up to 576 bytes of ICMP datagram.
    const [big] = nf.run([frame({ src: '10.1.7.7', dst: '8.8.8.8', ttl: 1, payload: 1400 })]);
    assert.equal(parse(big.bytes).ipv4.totalLength(), 576);
    assert.equal(big.bytes.length, 14 + 576);
  });

  it('turns an expired IPv6 packet into ICMPv6 time exceeded (checksum over the pseudo-header)', () => {
    const nf = new NfHarness(router, { ...CONFIG, address6: '2001:db8:ffff::1' });
    const input = frame({ src: '2001:db8:1::7', dst: '2001:db8:9::1', ttl: 1, payload: 100 });
    const [result] = nf.run([input]);
    const parser = parse(result.bytes); // the ICMPv6 checksum is verified
    assert.equal(formatMac(result.bytes, 0), MAC_D);
    assert.equal(parser.l4, Layer.Icmpv6);
    assert.deepEqual(
      [
        formatIpv6(result.bytes, 14 + 8),
        formatIpv6(result.bytes, 14 + 24),
        parser.ipv6.hopLimit(),
        parser.icmpv6.type(),
        parser.icmpv6.code(),
      ],
      ['2001:db8:ffff::1', '2001:db8:1::7', 64, 3, 0],
    );
    assert.deepEqual(result.bytes.subarray(14 + 48), input.subarray(14));
    const [big] = nf.run([frame({ src: '2001:db8:1::7', dst: '2001:db8:9::1', ttl: 1, payload: 1400 })]);
    assert.equal(big.bytes.length, 14 + 1280);
    parse(big.bytes);
  });

  it('sends no ICMP about an ICMP error, towards no route, or beyond icmpPerSecond', () => {
    const nf = new NfHarness(router, {
      ...CONFIG,
      routes: CONFIG.routes.filter((r) => r.prefix !== '0.0.0.0/0'),
      address: '192.168.1.254',
      icmpPerSecond: 2,
    });
    assert.deepEqual(
      fates(nf, [
        frame({ src: '10.0.0.5', dst: '10.1.0.1', ttl: 1, protocol: 'icmp', icmpType: 3 }), // an error
        frame({ src: '198.51.100.7', dst: '10.1.0.1', ttl: 1 }), // no route back
        frame({ src: '10.0.0.5', dst: '10.1.0.1', ttl: 1, protocol: 'icmp' }), // echo: allowed
        frame({ src: '10.0.0.5', dst: '10.1.0.1', ttl: 1 }),
        frame({ src: '10.0.0.5', dst: '10.1.0.1', ttl: 1 }), // third in this second
      ]),
      ['drop:ttl_expired', 'drop:ttl_expired', MAC_A, MAC_A, 'drop:ttl_expired'],
    );
    assert.deepEqual(fates(nf, [frame({ src: '10.0.0.5', dst: '10.1.0.1', ttl: 1 })], 1e9), [MAC_A]);
    assert.deepEqual(nf.counters(), { forwarded: 0, no_route: 0, ttl_expired: 6, icmp_sent: 3 });
  });

  it('keeps the IPv4 header checksum right for any header (RFC 1624 incremental update)', () => {
    const nf = new NfHarness(router, CONFIG);
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 255 }),
        fc.nat(0xffff),
        fc.nat(63),
        fc.nat(0xffffffff),
        (ttl, identification, dscp, src) => {
          const srcText = formatIpv4(((src & 0x3fffffff) | 0x40000000) >>> 0); // 64.0.0.0–127.255.255.255 minus 127/8
          if (srcText.startsWith('127.')) return;
          const input = frame({ src: srcText, dst: '10.3.3.3', ttl, identification, dscp });
          const [result] = nf.run([input]);
          assert.deepEqual(result.bytes, forwarded(input, MAC_A));
          assert.equal(parse(result.bytes).ipv4.ttl(), ttl - 1);
        },
      ),
      { seed: 5, numRuns: 2000 },
    );
  });

  it('matches a reference longest-prefix match over 100,000 IPv4 and 20,000 IPv6 routes', () => {
    let seed = 12345;
    const random = () => {
      // mulberry32: every bit well mixed (an LCG's low bits cycle quickly)
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (t ^ (t >>> 14)) >>> 0;
    };
    const neighbors = [
      { address: '192.0.2.1', mac: MAC_A },
      { address: '192.0.2.2', mac: MAC_B },
      { address: 'fe80::1', mac: MAC_C },
      { address: 'fe80::2', mac: MAC_D },
    ];
    const routes: { prefix: string; nextHop: string }[] = [];
    const v4 = new Map<string, number>(); // "length/masked" → route index
    const v6 = new Map<string, number>();
    while (v4.size < 100_000) {
      const length = 8 + (random() % 25);
      const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
      const address = (random() & mask) >>> 0;
      const key = `${length}/${address}`;
      if (v4.has(key)) continue;
      v4.set(key, routes.length);
      routes.push({ prefix: `${formatIpv4(address)}/${length}`, nextHop: neighbors[random() % 2].address });
    }
    const v6Bytes = (length: number) => {
      const bytes = Uint8Array.from({ length: 16 }, () => random() & 0xff);
      bytes[0] = 0x20; // 2000::/8: never a martian
      for (let bit = length; bit < 128; bit++) bytes[bit >>> 3] &= ~(0x80 >>> (bit & 7));
      return bytes;
    };
    while (v6.size < 20_000) {
      const length = 8 + (random() % 57); // /8–/64
      const bytes = v6Bytes(length);
      const key = `${length}/${formatIpv6(bytes)}`;
      if (v6.has(key)) continue;
      v6.set(key, routes.length);
      routes.push({
        prefix: `${formatIpv6(bytes)}/${length}`,
        nextHop: neighbors[2 + (random() % 2)].address,
      });
    }
    const started = Date.now();
    const nf = new NfHarness(router, { mac: ROUTER_MAC, routes, neighbors });
    const compileMs = Date.now() - started;
    const instance = nf.instance as RouterInstance;
    const reference4 = (address: number): number => {
      for (let length = 32; length >= 0; length--) {
        const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
        const r = v4.get(`${length}/${(address & mask) >>> 0}`);
        if (r !== undefined) return r;
      }
      return -1;
    };
    const reference6 = (bytes: Uint8Array): number => {
      for (let length = 128; length >= 0; length--) {
        const masked = bytes.slice();
        for (let bit = length; bit < 128; bit++) masked[bit >>> 3] &= ~(0x80 >>> (bit & 7));
        const r = v6.get(`${length}/${formatIpv6(masked)}`);
        if (r !== undefined) return r;
      }
      return -1;
    };
    let matched = 0;
    for (let i = 0; i < 20_000; i++) {
      // Half the lookups land inside a random route (so long prefixes are exercised), half anywhere.
      let address = random() >>> 0;
      if (i % 2 === 0) {
        const [, text] = /^([^/]+)\//.exec(routes[random() % 100_000].prefix) ?? [];
        address = (ipv4(text) | (random() & 0xff)) >>> 0;
      }
      const expected = reference4(address);
      if (expected >= 0) matched++;
      assert.equal(instance.lookup(formatIpv4(address)), expected, formatIpv4(address));
    }
    for (let i = 0; i < 3_000; i++) {
      const bytes =
        i % 2 === 0 ? ipv6(routes[100_000 + (random() % 20_000)].prefix.split('/')[0]) : v6Bytes(128);
      if (i % 2 === 0) bytes[15] = random() & 0xff;
      assert.equal(instance.lookup(formatIpv6(bytes)), reference6(bytes), formatIpv6(bytes));
    }
    assert.ok(matched > 10_000, `too few lookups hit a route (${matched})`);
    // Through the packet path as well.
    const dsts = Array.from({ length: 256 }, (_, i) => `10.${i}.${(i * 7) & 255}.1`);
    const results = nf.run(dsts.map((dst) => frame({ src: '198.51.100.7', dst })));
    results.forEach((result, i) => {
      const r = reference4(ipv4(dsts[i]));
      if (r < 0) assert.equal(result.drop, 'no_route');
      else assert.equal(formatMac(result.bytes, 0), routes[r].nextHop === '192.0.2.1' ? MAC_A : MAC_B);
    });
    assert.ok(compileMs < 20_000, `compiling 120,000 routes took ${compileMs} ms`);
    assert.ok(instance.plan.nodesV4 < 400_000, `${instance.plan.nodesV4} IPv4 trie nodes`);
  });

  it('exposes the compiled table: neighbors on connected prefixes become host routes', () => {
    const nf = new NfHarness(router, CONFIG);
    const instance = nf.instance as RouterInstance;
    const host = instance.plan.routes.find((r) => r.prefix === '192.168.1.9/32');
    assert.deepEqual(host, { prefix: '192.168.1.9/32', action: 3, source: 'neighbors[3]' });
    assert.equal(instance.plan.routes[instance.lookup('192.168.1.9')].source, 'neighbors[3]');
    assert.equal(instance.plan.routes[instance.lookup('192.168.1.10')].source, 'routes[4]');
    assert.equal(instance.lookup('2001:db8:1:ffff::'), 7);
    assert.equal(instance.lookup('not an address'), -1);
  });

  it('snapshot → restore carries per-route hits onto the same table only', () => {
    const a = new NfHarness(router, CONFIG);
    a.run([frame({ src: '198.51.100.7', dst: '10.2.3.4' }), frame({ src: '198.51.100.7', dst: '8.8.8.8' })]);
    const b = new NfHarness(router, CONFIG);
    b.instance.restore?.(structuredClone(a.instance.snapshot?.()));
    assert.deepEqual(b.instance.snapshot?.(), a.instance.snapshot?.());
    assert.equal((b.instance.snapshot?.() as RouterSnapshot).hits[3], 1);
    const c = new NfHarness(router, { ...CONFIG, routes: CONFIG.routes.slice(1) });
    c.instance.restore?.(a.instance.snapshot?.());
    assert.equal(
      (c.instance as RouterInstance).hits.reduce((x, y) => x + y),
      0,
    );
    assert.match(c.logs[0], /ignored a snapshot/);
  });

  it('rejects a bad configuration naming the field', () => {
    const bad = (patch: object, pattern: RegExp) =>
      assert.throws(() => new NfHarness(router, { ...CONFIG, ...patch }), pattern);
    bad({ mac: '02:00:00:00:00' }, /^Error: mac: not a MAC address/);
    bad({ mac: undefined }, /mac: is required/);
    bad({ address: '2001:db8::1' }, /address: not an IPv4 address/);
    bad({ address6: '10.0.0.1' }, /address6: not an IPv6 address/);
    bad({ routes: [{ prefix: '10.0.0.0/33' }] }, /routes\[0\]\.prefix: prefix length must be 0–32/);
    bad({ routes: [{ prefix: '10.0.0.1/8' }] }, /routes\[0\]\.prefix: "10.0.0.1\/8" has bits set beyond/);
    bad(
      { routes: [{ prefix: '10.0.0.0/8' }, { prefix: '10.0.0.0/8' }] },
      /routes\[1\]\.prefix: 10.0.0.0\/8 is listed twice \(routes\[0\]\)/,
    );
    bad({ routes: [{ prefix: 'ten/8' }] }, /routes\[0\]\.prefix: not an IPv4 or IPv6 CIDR/);
    bad(
      { routes: [{ prefix: '10.0.0.0/8', nextHop: '10.9.9.9' }] },
      /routes\[0\]\.nextHop: 10.9.9.9 is not a listed neighbor/,
    );
    bad(
      { routes: [{ prefix: '10.0.0.0/8', nextHop: 'fe80::1' }] },
      /routes\[0\]\.nextHop: fe80::1 is not of the prefix's address family/,
    );
    bad(
      { routes: [{ prefix: '10.0.0.0/8', nextHop: 'gateway' }] },
      /routes\[0\]\.nextHop: must be an address, connected or blackhole/,
    );
    bad({ routes: [{ nextHop: 'connected' }] }, /routes\[0\]\.prefix: is required/);
    bad({ neighbors: [{ address: '10.0.0.1', mac: 'zz' }] }, /neighbors\[0\]\.mac: not a MAC address/);
    bad(
      {
        neighbors: [
          { address: 'fe80::1', mac: MAC_A },
          { address: 'FE80:0::1', mac: MAC_B },
        ],
      },
      /neighbors\[1\]\.address: fe80::1 is listed twice \(neighbors\[0\]\)/,
    );
    bad({ icmpPerSecond: -1 }, /icmpPerSecond: must be ≥ 0/);
  });

  it('never throws on random bytes or damaged frames', () => {
    const nf = new NfHarness(router, { ...CONFIG, address: '192.168.1.254', address6: '2001:db8:ffff::1' });
    const seeds = [
      frame({ src: '10.1.0.5', dst: '10.0.0.1', ttl: 1, protocol: 'tcp' }),
      frame({ src: '2001:db8:1::7', dst: '2001:db8::1', ttl: 1 }),
      frame({ src: '198.51.100.7', dst: '10.1.2.3', vlan: 5 }),
    ];
    const outcomes = new Set(['out', ...Object.keys(router.drops)]);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(120),
        fc.nat(2),
        fc.nat(255),
        (random, cut, which, flip) => {
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          const inputs = [random, seeds[which].subarray(0, cut), flipped];
          nf.run(inputs).forEach((result, i) => {
            assert.ok(outcomes.has(result.output ?? result.drop ?? ''));
            if (!result.output) return;
            // A router checks IP headers, not L4 checksums: what leaves has valid Ethernet and IP
            // headers, and is fully valid whenever what came in was.
            const strict = new PacketParser({ maxTunnelDepth: 0 });
            const reason = strict.attach(result.bytes, 0, result.bytes.length);
            if (strict.attach(inputs[i], 0, inputs[i].length) === DropReason.None)
              assert.equal(reason, DropReason.None);
            else if (reason !== DropReason.None)
              assert.ok(
                [Layer.Tcp, Layer.Udp, Layer.Icmpv4, Layer.Icmpv6].includes(strict.failedLayer as never),
                `refused at layer ${strict.failedLayer}`,
              );
          });
        },
      ),
      { seed: 1, numRuns: 1000 },
    );
  });
});
