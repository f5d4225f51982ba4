import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipv4, ipv6 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { Icmpv4Repr } from '../../src/packet/icmpv4.js';
import { Icmpv6Repr } from '../../src/packet/icmpv6.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { PacketParser } from '../../src/packet/packet-parser.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import firewall, { compileRules, type FirewallInstance } from './index.js';

interface FrameSpec {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'icmp' | number;
  srcPort?: number;
  dstPort?: number;
  flags?: number;
  icmpType?: number;
  icmpCode?: number;
}

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };

/** Ethernet / IPv4 or IPv6 (by the address text) / TCP, UDP or ICMP echo, checksums filled. */
function frame(spec: FrameSpec): Uint8Array {
  const v6 = spec.src.includes(':');
  const protocol =
    spec.protocol === 'tcp'
      ? IpProtocol.Tcp
      : spec.protocol === 'udp'
        ? IpProtocol.Udp
        : spec.protocol === 'icmp'
          ? IpProtocol.Icmp
          : spec.protocol;
  const l4Length = protocol === IpProtocol.Tcp ? 20 : 8;
  const ipLength = v6 ? 40 : 20;
  const bytes = new Uint8Array(14 + ipLength + l4Length);
  EthernetRepr.emit({ ...ETH, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 }, bytes);
  if (v6)
    Ipv6Repr.emit({ src: spec.src, dst: spec.dst, nextHeader: protocol, payloadLength: l4Length }, bytes, 14);
  else Ipv4Repr.emit({ src: spec.src, dst: spec.dst, protocol, payloadLength: l4Length }, bytes, 14);
  const at = 14 + ipLength;
  const pseudo = v6
    ? pseudoHeaderSumV6(bytes, 14 + 8, 14 + 24, protocol, l4Length)
    : pseudoHeaderSumV4(ipv4(spec.src), ipv4(spec.dst), protocol, l4Length);
  const srcPort = spec.srcPort ?? 40000;
  const dstPort = spec.dstPort ?? 80;
  if (protocol === IpProtocol.Tcp) {
    const tcp = {
      srcPort,
      dstPort,
      seq: 1,
      ack: 0,
      flags: spec.flags ?? 0x02,
      window: 1000,
      urgentPointer: 0,
    };
    TcpRepr.emit({ ...tcp, options: new Uint8Array(0), payloadLength: 0 }, bytes, at, pseudo);
  } else if (protocol === IpProtocol.Udp)
    UdpRepr.emit({ srcPort, dstPort, payloadLength: 0 }, bytes, at, pseudo);
  else if (protocol === IpProtocol.Icmp)
    Icmpv4Repr.emit(
      { type: spec.icmpType ?? 8, code: spec.icmpCode ?? 0, identifier: 7, sequence: 1 },
      bytes,
      at,
    );
  return bytes;
}

const ARP = (() => {
  const bytes = new Uint8Array(42);
  EthernetRepr.emit({ ...ETH, dst: 'ff:ff:ff:ff:ff:ff', etherType: EtherType.Arp }, bytes);
  bytes.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  return bytes;
})();

const rule = (r: Record<string, string>) => r;
const CT_ZERO = {
  ct_created: 0,
  ct_evicted: 0,
  ct_expired: 0,
  conntrack_full: 0,
  ct_invalid: 0,
  ct_out_of_window: 0,
  rejected: 0,
  fragments_followed: 0,
  fragment_unknown: 0,
};

function verdicts(nf: NfHarness<unknown>, frames: Uint8Array[]): string[] {
  return nf.run(frames).map((r) => r.output ?? `drop:${r.drop}`);
}

describe('firewall', () => {
  it('decides as without its per-connection verdict cache: states, directions, input ports, reused entries', () => {
    // The verdict depends on the state (1), the source and input port (2), and nothing else (3).
    const rules = [
      { action: 'drop', state: ['established'], protocol: 'udp', srcPort: '40001' },
      { action: 'drop', src: '10.0.0.2', inPort: 2 },
      { action: 'accept', protocol: 'udp' },
    ];
    // A rule that tests TCP flags turns the cache off; from an address no frame uses, it never matches.
    const uncachedRules = [
      ...rules,
      rule({ action: 'accept', src: '203.0.113.255', protocol: 'tcp', tcpFlags: 'SYN' }),
    ];
    // The case the state in the cache key is for: twice forward (new), the reply, forward again (established).
    const nf = new NfHarness(firewall, { default: 'drop', rules });
    const forward = frame({ src: '10.0.0.1', dst: '10.0.0.3', protocol: 'udp', srcPort: 40001, dstPort: 53 });
    const back = frame({ src: '10.0.0.3', dst: '10.0.0.1', protocol: 'udp', srcPort: 53, dstPort: 40001 });
    assert.deepEqual(verdicts(nf, [forward, forward, back, forward]), ['out', 'out', 'out', 'drop:denied']);
    // Three flows over two connection slots: packets either way, from three input ports, mostly
    // back to back, sometimes after a timeout (an entry expires and another flow reuses it).
    const flows = [
      { src: '10.0.0.1', dst: '10.0.0.3', srcPort: 40001, dstPort: 53 },
      { src: '10.0.0.2', dst: '10.0.0.3', srcPort: 40001, dstPort: 53 },
      { src: '10.0.0.1', dst: '10.0.0.2', srcPort: 53, dstPort: 40001 },
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            flow: fc.integer({ min: 0, max: 2 }),
            reverse: fc.boolean(),
            inPort: fc.integer({ min: 0, max: 2 }),
            laterMs: fc.oneof(
              fc.constant(0),
              fc.constant(0),
              fc.constant(0),
              fc.integer({ min: 0, max: 2000 }),
            ),
          }),
          { minLength: 1, maxLength: 80 },
        ),
        (packets) => {
          const config = { default: 'drop', rules, maxConnections: 2, timeoutScale: 0.01 };
          const cached = new NfHarness(firewall, config);
          const reference = new NfHarness(firewall, { ...config, rules: uncachedRules });
          let now = 0;
          for (const p of packets) {
            now += p.laterMs * 1e6;
            const f = flows[p.flow];
            const spec = p.reverse
              ? { src: f.dst, dst: f.src, srcPort: f.dstPort, dstPort: f.srcPort }
              : { src: f.src, dst: f.dst, srcPort: f.srcPort, dstPort: f.dstPort };
            const bytes = frame({ ...spec, protocol: 'udp' });
            const a = cached.run([bytes], now, p.inPort)[0];
            const b = reference.run([bytes], now, p.inPort)[0];
            assert.equal(a.output ?? a.drop, b.output ?? b.drop);
          }
        },
      ),
      { numRuns: 2000, seed: 7 },
    );
  });

  it('first match wins; the default decides when nothing matches', () => {
    const nf = new NfHarness(firewall, {
      default: 'drop',
      rules: [
        rule({ action: 'drop', src: '10.0.0.66' }),
        rule({ action: 'accept', src: '10.0.0.0/8', protocol: 'tcp', dstPort: '22' }),
        rule({ action: 'accept', dst: '192.0.2.0/24' }),
      ],
    });
    const results = verdicts(nf, [
      frame({ src: '10.0.0.66', dst: '192.0.2.1', protocol: 'tcp', dstPort: 22 }), // rule 0 first
      frame({ src: '10.1.2.3', dst: '198.51.100.1', protocol: 'tcp', dstPort: 22 }), // rule 1
      frame({ src: '10.1.2.3', dst: '198.51.100.1', protocol: 'udp', dstPort: 22 }), // default
      frame({ src: '172.16.0.1', dst: '192.0.2.200', protocol: 'icmp' }), // rule 2
      frame({ src: '172.16.0.1', dst: '192.0.3.1', protocol: 'tcp' }), // default
    ]);
    assert.deepEqual(results, ['drop:denied', 'out', 'drop:denied', 'out', 'drop:denied']);
    // The conntrack counters were added with connection tracking: the TCP SYN and the echo request open connections.
    assert.deepEqual(nf.counters(), {
      accepted: 2,
      denied: 3,
      malformed: 0,
      non_ip: 0,
      rule_hits: 3,
      ...CT_ZERO,
      ct_created: 2,
    });
    const instance = nf.instance as FirewallInstance;
    assert.deepEqual(Array.from(instance.hits), [1, 1, 1]);
    assert.deepEqual((instance.snapshot?.() as { hits: Float64Array }).hits, Float64Array.of(1, 1, 1));
  });

  it('default accept, and drop rules', () => {
    const nf = new NfHarness(firewall, {
      default: 'accept',
      rules: [rule({ action: 'drop', protocol: 'udp', dstPort: '53' })],
    });
    assert.deepEqual(
      verdicts(nf, [
        frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp', dstPort: 53 }),
        frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'tcp', dstPort: 53 }),
      ]),
      ['drop:denied', 'out'],
    );
  });

  it('matches port ranges inclusively, on source and destination', () => {
    const nf = new NfHarness(firewall, {
      rules: [rule({ action: 'accept', srcPort: '1024-65535', dstPort: '8000-8080' })],
    });
    const at = (srcPort: number, dstPort: number, protocol: 'tcp' | 'udp' = 'tcp') =>
      frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol, srcPort, dstPort });
    assert.deepEqual(
      verdicts(nf, [
        at(1024, 8000),
        at(65535, 8080),
        at(1023, 8000),
        at(5000, 7999),
        at(5000, 8081),
        at(5000, 8040, 'udp'),
      ]),
      ['out', 'out', 'drop:denied', 'drop:denied', 'drop:denied', 'out'],
    );
    // A rule with ports never matches a packet without ports (ICMP).
    assert.deepEqual(verdicts(nf, [frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'icmp' })]), [
      'drop:denied',
    ]);
  });

  it('matches protocol numbers', () => {
    const nf = new NfHarness(firewall, { rules: [rule({ action: 'accept', protocol: '47' })] });
    assert.deepEqual(
      verdicts(nf, [
        frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 47 }),
        frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp' }),
      ]),
      ['out', 'drop:denied'],
    );
  });

  it('filters IPv6 by prefix; v4 rules never match v6 packets and vice versa', () => {
    const nf = new NfHarness(firewall, {
      rules: [
        rule({ action: 'accept', src: '2001:db8:0:100::/56', protocol: 'tcp', dstPort: '443' }),
        rule({ action: 'accept', dst: '2001:db8::5' }),
        rule({ action: 'accept', src: '0.0.0.0/0', protocol: 'udp' }),
      ],
    });
    assert.deepEqual(
      verdicts(nf, [
        frame({ src: '2001:db8:0:1ff::1', dst: '2001:db8::1', protocol: 'tcp', dstPort: 443 }), // rule 0
        frame({ src: '2001:db8:0:200::1', dst: '2001:db8::1', protocol: 'tcp', dstPort: 443 }), // outside /56
        frame({ src: '2001:db8:0:1ff::1', dst: '2001:db8::1', protocol: 'tcp', dstPort: 80 }), // port
        frame({ src: '2001:db8:9::1', dst: '2001:db8::5', protocol: 'udp' }), // rule 1 (/128)
        frame({ src: '2001:db8:9::1', dst: '2001:db8::6', protocol: 'udp' }), // rule 2 is v4 only
        frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp' }), // rule 2
      ]),
      ['out', 'drop:denied', 'drop:denied', 'out', 'drop:denied', 'out'],
    );
    assert.deepEqual(Array.from((nf.instance as FirewallInstance).hits), [1, 1, 1]);
  });

  it("'icmp' means ICMPv6 over IPv6", () => {
    const nf = new NfHarness(firewall, { rules: [rule({ action: 'accept', protocol: 'icmp' })] });
    const echo6 = new Uint8Array(14 + 40 + 8);
    EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv6 }, echo6);
    Ipv6Repr.emit({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 58, payloadLength: 8 }, echo6, 14);
    echo6.set([128, 0, 0, 0, 0, 1, 0, 1], 54);
    // ICMPv6 checksum: one's complement of the pseudo-header and message sum.
    let sum = pseudoHeaderSumV6(echo6, 22, 38, 58, 8) + 0x8000 + 1 + 1;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    echo6[56] = (~sum >>> 8) & 0xff;
    echo6[57] = ~sum & 0xff;
    assert.equal(new PacketParser().attach(echo6, 0, echo6.length), DropReason.None);
    assert.deepEqual(verdicts(nf, [echo6, frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'icmp' })]), [
      'out',
      'out',
    ]);
  });

  it('passes non-IP frames, drops malformed ones, and logs the first malformed frame once', () => {
    const nf = new NfHarness(firewall, { default: 'drop' });
    const good = frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'tcp' });
    const badHeader = good.slice();
    badHeader[14 + 8] ^= 0xff; // the IPv4 TTL: the header checksum no longer verifies
    const badTcpChecksum = good.slice();
    badTcpChecksum[good.length - 1] ^= 0xff; // a TCP byte: the end host's business, not the firewall's
    assert.deepEqual(verdicts(nf, [ARP, good.subarray(0, 30), badHeader, badTcpChecksum, good]), [
      'out',
      'drop:malformed',
      'drop:malformed',
      'drop:denied',
      'drop:denied',
    ]);
    assert.deepEqual(nf.counters(), {
      accepted: 0,
      denied: 2,
      malformed: 2,
      non_ip: 1,
      rule_hits: 0,
      ...CT_ZERO,
    });
    assert.equal(nf.logs.length, 1);
    assert.match(nf.logs[0], /malformed/);
  });

  it('matches TCP flags (list and mask/value forms)', () => {
    const nf = new NfHarness(firewall, {
      default: 'accept',
      rules: [
        rule({ action: 'drop', protocol: 'tcp', tcpFlags: 'SYN,!ACK', dstPort: '22' }),
        rule({ action: 'drop', protocol: 'tcp', tcpFlags: 'FIN,SYN,RST,ACK/FIN,SYN' }),
      ],
    });
    const tcp = (flags: number, dstPort = 22) =>
      frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'tcp', dstPort, flags });
    assert.deepEqual(
      verdicts(nf, [
        tcp(0x02),
        tcp(0x12),
        tcp(0x10),
        tcp(0x02 | 0x08),
        tcp(0x03, 80),
        tcp(0x13, 80),
        tcp(0x02, 80),
      ]),
      ['drop:denied', 'out', 'out', 'drop:denied', 'drop:denied', 'out', 'out'],
    );
    assert.deepEqual(Array.from((nf.instance as FirewallInstance).hits), [2, 1]);
    const program = (nf.instance as FirewallInstance).program;
    assert.equal(program.tcpMask[0], 0x12);
    assert.equal(program.tcpValue[0], 0x02);
    assert.match(program.text[0], /flags SYN,!ACK/);
  });

  it('matches ICMP type and code, over IPv4 and IPv6', () => {
    const nf = new NfHarness(firewall, {
      rules: [
        rule({ action: 'accept', protocol: 'icmp', icmpType: '8' }),
        { action: 'accept', protocol: 'icmp', icmpType: 3, icmpCode: 4 },
      ],
    });
    const icmp = (type: number, code: number) =>
      frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'icmp', icmpType: type, icmpCode: code });
    assert.deepEqual(verdicts(nf, [icmp(8, 0), icmp(0, 0), icmp(3, 4), icmp(3, 3), icmp(8, 1)]), [
      'out',
      'drop:denied',
      'out',
      'drop:denied',
      'out',
    ]);
    const v6 = new NfHarness(firewall, {
      rules: [rule({ action: 'accept', protocol: 'icmp', icmpType: '128' })],
    });
    const echo6 = new Uint8Array(14 + 40 + 8);
    EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv6 }, echo6);
    Ipv6Repr.emit({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 58, payloadLength: 8 }, echo6, 14);
    Icmpv6Repr.emit(
      { type: 128, code: 0, identifier: 1, sequence: 1 },
      echo6,
      54,
      pseudoHeaderSumV6(echo6, 22, 38, 58, 8),
    );
    assert.deepEqual(verdicts(v6, [echo6]), ['out']);
  });

  it('matches the input port', () => {
    const nf = new NfHarness(firewall, { rules: [{ action: 'accept', inPort: 2 }] });
    const f = frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp' });
    assert.deepEqual(
      nf.run([f], 0, 2).map((r) => r.output ?? r.drop),
      ['out'],
    );
    assert.deepEqual(
      nf.run([f], 0, 1).map((r) => r.output ?? r.drop),
      ['denied'],
    );
  });

  it('rejects bad values with the field path', () => {
    const bad: [Record<string, string | number>, RegExp][] = [
      [{ action: 'accept', src: '10.0.0.0/33' }, /rules\[1\]\.src: prefix length/],
      [{ action: 'accept', src: '10.0.0.256' }, /rules\[1\]\.src: not an IPv4 or IPv6 CIDR/],
      [{ action: 'accept', dst: '10.0.0.1/8' }, /rules\[1\]\.dst: .*bits set beyond/],
      [{ action: 'accept', dst: '2001:db8::/129' }, /rules\[1\]\.dst: prefix length/],
      [{ action: 'accept', src: '10.0.0.0/8', dst: '2001:db8::/32' }, /rules\[1\]\.dst: IPv6 destination/],
      [{ action: 'accept', dstPort: '90-80' }, /rules\[1\]\.dstPort: range starts after it ends/],
      [{ action: 'accept', srcPort: '0x10' }, /rules\[1\]\.srcPort: must be a port/],
      [{ action: 'accept', srcPort: '70000' }, /rules\[1\]\.srcPort: ports are 0–65535/],
      [{ action: 'accept', protocol: 'icmp', dstPort: '80' }, /rules\[1\]\.protocol: ports apply only/],
      [{ action: 'accept', protocol: '256' }, /rules\[1\]\.protocol: must be/],
      [{ action: 'accept', tcpFlags: 'SYN' }, /rules\[1\]\.tcpFlags: TCP flags need protocol tcp/],
      [{ action: 'accept', protocol: 'tcp', tcpFlags: 'SYN,FOO' }, /rules\[1\]\.tcpFlags: flags are/],
      [{ action: 'accept', protocol: 'tcp', tcpFlags: 'SYN/ACK' }, /rules\[1\]\.tcpFlags: the value names/],
      [{ action: 'accept', protocol: 'udp', icmpType: '3' }, /rules\[1\]\.icmpType: ICMP type and code need/],
      [{ action: 'accept', protocol: 'icmp', icmpType: '300' }, /rules\[1\]\.icmpType: an ICMP type must be/],
      [{ action: 'accept', protocol: 'icmp', icmpCode: '3' }, /rules\[1\]\.icmpCode: an ICMP code needs/],
    ];
    for (const [second, message] of bad) {
      assert.throws(() => new NfHarness(firewall, { rules: [{ action: 'drop' }, second] }), message);
    }
    assert.throws(() => new NfHarness(firewall, { rules: [{ action: 'maybe' }] }), /rules\[0\]\.action/);
    assert.throws(
      () => new NfHarness(firewall, { rules: Array.from({ length: 10001 }, () => ({ action: 'drop' })) }),
      /rules: must have at most 10000/,
    );
  });

  it('exposes the compiled program', () => {
    const program = compileRules([
      { action: 'accept', src: '10.0.0.0/8', dst: 'any', protocol: 'tcp', srcPort: 'any', dstPort: '22' },
      { action: 'drop', src: '2001:db8::/32', dst: 'any', protocol: 'any', srcPort: 'any', dstPort: 'any' },
    ]);
    assert.equal(program.count, 2);
    assert.equal(program.v4Src[0], ipv4('10.0.0.0') | 0);
    assert.equal(program.v4SrcMask[0], 0xff000000 | 0);
    assert.equal(program.dstLo[0], 22);
    assert.equal(program.dstHi[0], 22);
    assert.equal(program.family[1], 6);
    assert.equal(program.v6Src[4], new DataView(ipv6('2001:db8::').buffer).getInt32(0));
    assert.equal(program.v6SrcMask[4], -1);
    assert.equal(program.v6SrcMask[5], 0);
    assert.match(program.text[0], /^0: accept tcp 10\.0\.0\.0\/8:any -> any:22$/);
  });

  it('restores hit counts from a snapshot of the same rule set', () => {
    const config = { rules: [rule({ action: 'accept' })] };
    const a = new NfHarness(firewall, config);
    a.run([frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp' })]);
    const b = new NfHarness(firewall, config);
    b.instance.restore?.(a.instance.snapshot?.());
    assert.deepEqual(Array.from((b.instance as FirewallInstance).hits), [1]);
  });

  it('never throws on random bytes or truncated frames', () => {
    const nf = new NfHarness(firewall, {
      default: 'accept',
      rules: [
        rule({ action: 'drop', src: '2001:db8::/32', protocol: 'tcp', dstPort: '1-100' }),
        rule({ action: 'drop', src: '10.0.0.0/8', protocol: 'udp', srcPort: '53' }),
      ],
    });
    const seeds = [
      frame({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 'udp', srcPort: 53 }),
      frame({ src: '2001:db8::1', dst: '2001:db8::2', protocol: 'tcp', dstPort: 22 }),
    ];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(100),
        fc.nat(1),
        fc.nat(255),
        (random, cut, which, flip) => {
          const truncated = seeds[which].subarray(0, Math.min(cut, seeds[which].length));
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          for (const result of nf.run([random, truncated, flipped])) {
            assert.ok(result.output === 'out' || result.drop === 'denied' || result.drop === 'malformed');
          }
        },
      ),
      { seed: 1, numRuns: 500 },
    );
  });
});
