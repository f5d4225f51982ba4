import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4 } from '../../src/packet/address.js';
import { internetChecksum } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { NfHarness } from '../../src/sdk/index.js';
import nat, { type NatInstance } from './index.js';
import { frame, icmpError } from './test-frames.js';

const SEC = 1e9;
const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };

/** Parses with checksums verified (so a wrong patch fails here) and reads the 5-tuple. */
function tuple(bytes: Uint8Array): string {
  const parser = new PacketParser({ maxTunnelDepth: 0 });
  assert.equal(parser.attach(bytes, 0, bytes.length), DropReason.None, 'the rewritten frame must parse');
  const src = formatIpv4(parser.ipv4.src());
  const dst = formatIpv4(parser.ipv4.dst());
  if (parser.l4 === Layer.Tcp) return `tcp ${src}:${parser.tcp.srcPort()} > ${dst}:${parser.tcp.dstPort()}`;
  if (parser.l4 === Layer.Udp) return `udp ${src}:${parser.udp.srcPort()} > ${dst}:${parser.udp.dstPort()}`;
  if (parser.l4 === Layer.Icmpv4) return `icmp ${src} > ${dst} id ${parser.icmpv4.identifier()}`;
  return `${parser.protocol} ${src} > ${dst}`;
}

const EXT = '203.0.113.1';
const SERVER = '198.51.100.7';

function outcome(nf: NfHarness<unknown>, frames: Uint8Array[], now = 0): string[] {
  return nf.run(frames, now).map((r) => (r.output ? tuple(r.bytes) : `drop:${r.drop}`));
}

describe('nat', () => {
  it('translates an outbound TCP flow and its replies, checksums patched', () => {
    const nf = new NfHarness(nat, { external: EXT, inside: '10.0.0.0/8' });
    assert.deepEqual(
      outcome(nf, [
        frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 443, dstPort: 40000 }),
        frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
      ]),
      [
        `tcp ${EXT}:40000 > ${SERVER}:443`, // the inside port is kept when it is free and in range
        `tcp ${SERVER}:443 > 10.0.0.5:40000`,
        `tcp ${EXT}:40000 > ${SERVER}:443`,
      ],
    );
    assert.deepEqual(nf.counters(), {
      translated_out: 2,
      translated_in: 1,
      new_mappings: 1,
      expired: 0,
      passed_through: 0,
      hairpinned: 0,
      icmp_errors: 0,
    });
    assert.equal((nf.instance as NatInstance).activeFlows(), 1);
  });

  it('gives clashing inside ports different external ports and routes replies to the right host', () => {
    const nf = new NfHarness(nat, { external: EXT });
    const out = outcome(nf, [
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53 }),
      frame({ src: '10.0.0.6', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53 }),
      frame({ src: '10.0.0.7', dst: SERVER, protocol: 'udp', srcPort: 80, dstPort: 53 }), // below the range
    ]);
    assert.equal(out[0], `udp ${EXT}:5000 > ${SERVER}:53`);
    const second = Number(/:(\d+) >/.exec(out[1])?.[1]);
    const third = Number(/:(\d+) >/.exec(out[2])?.[1]);
    assert.notEqual(second, 5000);
    assert.ok(second >= 1024 && third >= 1024 && second !== third);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: second }),
        frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: 5000 }),
        frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: third }),
      ]),
      [
        `udp ${SERVER}:53 > 10.0.0.6:5000`,
        `udp ${SERVER}:53 > 10.0.0.5:5000`,
        `udp ${SERVER}:53 > 10.0.0.7:80`,
      ],
    );
  });

  it('refuses inbound packets without a mapping, or from another remote address (address-dependent filtering)', () => {
    const nf = new NfHarness(nat, { external: EXT });
    nf.run([frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 })]);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 443, dstPort: 40001 }), // no mapping
        frame({ src: '198.51.100.8', dst: EXT, protocol: 'tcp', srcPort: 443, dstPort: 40000 }), // other host
        frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 443, dstPort: 40000 }), // other protocol
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 444, dstPort: 40000 }), // other port: allowed
      ]),
      ['drop:no_mapping', 'drop:filtered', 'drop:no_mapping', `tcp ${SERVER}:444 > 10.0.0.5:40000`],
    );
  });

  it('leaves a UDP checksum of 0 at 0, both ways', () => {
    const nf = new NfHarness(nat, { external: EXT });
    const [outbound] = nf.run([
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53, noChecksum: true }),
    ]);
    assert.equal(tuple(outbound.bytes), `udp ${EXT}:5000 > ${SERVER}:53`);
    assert.equal((outbound.bytes[40] << 8) | outbound.bytes[41], 0);
    const [inbound] = nf.run([
      frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: 5000, noChecksum: true }),
    ]);
    assert.equal(tuple(inbound.bytes), `udp ${SERVER}:53 > 10.0.0.5:5000`);
    assert.equal((inbound.bytes[40] << 8) | inbound.bytes[41], 0);
  });

  it('translates ICMP echo by identifier', () => {
    const nf = new NfHarness(nat, { external: EXT });
    const out = outcome(nf, [
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'icmp', srcPort: 7 }),
      frame({ src: '10.0.0.6', dst: SERVER, protocol: 'icmp', srcPort: 7 }),
    ]);
    const id0 = Number(/id (\d+)/.exec(out[0])?.[1]);
    const id1 = Number(/id (\d+)/.exec(out[1])?.[1]);
    assert.match(out[0], new RegExp(`^icmp ${EXT} > ${SERVER} id`));
    assert.ok(id0 >= 1024 && id1 >= 1024 && id0 !== id1);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: SERVER, dst: EXT, protocol: 'icmp', srcPort: id1, icmpType: 0 }),
        frame({ src: SERVER, dst: EXT, protocol: 'icmp', srcPort: id0, icmpType: 0 }),
      ]),
      [`icmp ${SERVER} > 10.0.0.6 id 7`, `icmp ${SERVER} > 10.0.0.5 id 7`],
    );
  });

  it('passes non-IPv4 and traffic from outside `inside`; refuses what it cannot translate', () => {
    const nf = new NfHarness(nat, { external: EXT, inside: '10.0.0.0/24' });
    const arp = new Uint8Array(42);
    EthernetRepr.emit({ ...ETH, etherType: EtherType.Arp }, arp);
    arp.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
    const results = nf.run([
      frame({ src: '2001:db8::1', dst: '2001:db8::2', protocol: 'udp' }),
      arp,
      frame({ src: '10.0.1.5', dst: SERVER, protocol: 'udp' }), // not inside
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 47 }), // GRE
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'icmp', icmpType: 3 }), // an ICMP error
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp' }).subarray(0, 40), // truncated
    ]);
    assert.deepEqual(
      results.map((r) => r.output ?? `drop:${r.drop}`),
      ['out', 'out', 'out', 'drop:unsupported', 'drop:unsupported', 'drop:malformed'],
    );
    assert.equal(tuple(results[2].bytes), `udp 10.0.1.5:40000 > ${SERVER}:80`, 'unchanged');
    assert.equal(nf.counters().passed_through, 3);
    assert.equal(nf.logs.length, 1);
  });

  it('allocates only from portRange and reports exhaustion', () => {
    const nf = new NfHarness(nat, { external: EXT, portRange: '2000-2001' });
    const flow = (n: number) => frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 30000 + n });
    assert.deepEqual(outcome(nf, [flow(0), flow(1), flow(2), flow(0)]), [
      `tcp ${EXT}:2000 > ${SERVER}:80`,
      `tcp ${EXT}:2001 > ${SERVER}:80`,
      'drop:ports_exhausted',
      `tcp ${EXT}:2000 > ${SERVER}:80`,
    ]);
    // Ports are per protocol: UDP still has both.
    assert.equal(
      outcome(nf, [frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 1 })])[0],
      `udp ${EXT}:2000 > ${SERVER}:80`,
    );
    assert.equal(nf.logs.length, 1);
  });

  it('stops at maxFlows', () => {
    const nf = new NfHarness(nat, { external: EXT, maxFlows: 2 });
    const flow = (n: number) => frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 30000 + n });
    assert.deepEqual(
      nf.run([flow(0), flow(1), flow(2)]).map((r) => r.output ?? r.drop),
      ['out', 'out', 'table_full'],
    );
  });

  it('expires idle flows in tick() and frees their ports', () => {
    const nf = new NfHarness(nat, { external: EXT, timeoutSeconds: 10, portRange: '2000-2000' });
    const instance = nf.instance as NatInstance;
    const a = frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 1 });
    const b = frame({ src: '10.0.0.6', dst: SERVER, protocol: 'udp', srcPort: 1 });
    const reply = frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 80, dstPort: 2000 });
    assert.deepEqual(outcome(nf, [a], 0), [`udp ${EXT}:2000 > ${SERVER}:80`]);
    assert.deepEqual(outcome(nf, [reply], 9 * SEC), [`udp ${SERVER}:80 > 10.0.0.5:1`]); // refreshes
    instance.tick?.(15 * SEC);
    assert.equal(instance.activeFlows(), 1, 'seen 6 s ago: still live');
    assert.deepEqual(
      outcome(nf, [reply], 19.5 * SEC),
      ['drop:no_mapping'],
      'idle too long, even before tick',
    );
    instance.tick?.(20 * SEC);
    assert.equal(instance.activeFlows(), 0);
    assert.equal(nf.counters().expired, 1);
    assert.deepEqual(outcome(nf, [b, reply], 21 * SEC), [
      `udp ${EXT}:2000 > ${SERVER}:80`,
      `udp ${SERVER}:80 > 10.0.0.6:1`,
    ]);
  });

  it('keeps its flows across a restart through snapshot() and restore()', () => {
    const config = { external: EXT };
    const before = new NfHarness(nat, config);
    const out = outcome(before, [
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
      frame({ src: '10.0.0.6', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
      frame({ src: '10.0.0.7', dst: SERVER, protocol: 'icmp', srcPort: 9 }),
    ]);
    const port1 = Number(/:(\d+) >/.exec(out[1])?.[1]);
    const icmpId = Number(/id (\d+)/.exec(out[2])?.[1]);
    const state = structuredClone(before.instance.snapshot?.());
    const after = new NfHarness(nat, config);
    after.instance.restore?.(state);
    assert.equal((after.instance as NatInstance).activeFlows(), 3);
    assert.deepEqual(
      outcome(after, [
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 443, dstPort: port1 }),
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 443, dstPort: 40000 }),
        frame({ src: SERVER, dst: EXT, protocol: 'icmp', srcPort: icmpId, icmpType: 0 }),
        frame({ src: '10.0.0.6', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
        frame({ src: '10.0.0.8', dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 443 }),
      ]).slice(0, 4),
      [
        `tcp ${SERVER}:443 > 10.0.0.6:40000`,
        `tcp ${SERVER}:443 > 10.0.0.5:40000`,
        `icmp ${SERVER} > 10.0.0.7 id 9`,
        `tcp ${EXT}:${port1} > ${SERVER}:443`,
      ],
    );
    assert.equal(after.counters().new_mappings, 1, 'only 10.0.0.8 is new');
    // A snapshot taken with another external address is ignored.
    const other = new NfHarness(nat, { external: '203.0.113.2' });
    other.instance.restore?.(state);
    assert.equal((other.instance as NatInstance).activeFlows(), 0);
    assert.match(other.logs[0], /ignored a snapshot/);
  });

  it('rewrites the address of outbound non-first fragments; refuses inbound ones', () => {
    const nf = new NfHarness(nat, { external: EXT });
    const fragment = (src: string, dst: string) => {
      const bytes = new Uint8Array(14 + 20 + 16);
      EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
      Ipv4Repr.emit(
        { src, dst, protocol: IpProtocol.Udp, payloadLength: 16, dontFragment: false, fragmentOffset: 8 },
        bytes,
        14,
      );
      return bytes;
    };
    assert.deepEqual(outcome(nf, [fragment('10.0.0.5', SERVER), fragment(SERVER, EXT)]), [
      `17 ${EXT} > ${SERVER}`,
      'drop:fragment',
    ]);
  });

  it('rejects a bad configuration', () => {
    assert.throws(() => new NfHarness(nat, {}), /external: is required/);
    assert.throws(() => new NfHarness(nat, { external: '203.0.113' }), /external: not an IPv4 address/);
    assert.throws(() => new NfHarness(nat, { external: EXT, portRange: '3000-2000' }), /portRange: .*after/);
    assert.throws(() => new NfHarness(nat, { external: EXT, portRange: '0-10' }), /portRange: must be/);
    assert.throws(() => new NfHarness(nat, { external: EXT, inside: '10.0.0.0/33' }), /inside: must be/);
    assert.throws(() => new NfHarness(nat, { external: EXT, inside: '10.0.0.1/8' }), /inside: .*bits set/);
    assert.throws(() => new NfHarness(nat, { external: EXT, maxFlows: 0 }), /maxFlows: must be ≥ 1/);
  });

  it('never throws on random bytes or damaged frames', () => {
    const nf = new NfHarness(nat, {
      external: EXT,
      inside: '10.0.0.0/8',
      portRange: '2000-2100',
      maxFlows: 64,
      forward: [{ protocol: 'udp', port: 53, to: '10.0.0.9:53' }],
    });
    const sent = frame({ src: EXT, dst: SERVER, protocol: 'udp', srcPort: 2000, dstPort: 80, payload: 12 });
    const seeds = [
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp' }),
      frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 80, dstPort: 2000 }),
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'icmp' }),
      // ICMP errors both ways (quoted headers are parsed by the NAT itself) and a hairpinned packet.
      icmpError('192.0.2.1', EXT, 11, 0, sent, 1000),
      icmpError(
        '10.0.0.9',
        SERVER,
        3,
        3,
        frame({ src: SERVER, dst: '10.0.0.9', protocol: 'udp', dstPort: 53 }),
      ),
      frame({ src: '10.0.0.6', dst: EXT, protocol: 'udp', srcPort: 7, dstPort: 53 }),
    ];
    const names = new Set(Object.keys(nat.drops));
    const icmpParser = new PacketParser({ maxTunnelDepth: 0 });
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(100),
        fc.nat(5),
        fc.nat(255),
        fc.nat(1000),
        (random, cut, which, flip, t) => {
          const seed = seeds[which];
          const flipped = seed.slice();
          flipped[cut % flipped.length] ^= flip;
          // The same damage with the ICMP checksum made good again, so hostile quoted headers get
          // past the parser and reach the NAT's own reading of them.
          const resealed = flipped.slice();
          if (resealed[23] === IpProtocol.Icmp && resealed.length > 42) {
            resealed[36] = resealed[37] = 0;
            const sum = internetChecksum(resealed, 34, resealed.length - 34);
            resealed[36] = sum >> 8;
            resealed[37] = sum & 0xff;
          }
          const results = nf.run([random, seed.subarray(0, cut), flipped, resealed], t * SEC);
          for (const result of results) assert.ok(result.output === 'out' || names.has(result.drop ?? ''));
          // An ICMP message the NAT sends on (translated or not) still has good IP and ICMP checksums.
          const last = results[3];
          if (last.output && resealed[23] === IpProtocol.Icmp)
            assert.equal(icmpParser.attach(last.bytes, 0, last.bytes.length), DropReason.None);
          nf.instance.tick?.(t * SEC);
        },
      ),
      { seed: 1, numRuns: 1000 },
    );
  });
});
