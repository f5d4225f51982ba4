import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4, ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { Icmpv4Repr } from '../../src/packet/icmpv4.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import loadBalancer, { type LoadBalancerInstance } from './index.js';

interface FrameSpec {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  srcPort?: number;
  dstPort?: number;
  noChecksum?: boolean;
}

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };

/** Ethernet / IPv4 / TCP, UDP or ICMP echo with a 5-byte payload, checksums filled. */
function frame(spec: FrameSpec): Uint8Array {
  const protocol =
    spec.protocol === 'tcp' ? IpProtocol.Tcp : spec.protocol === 'udp' ? IpProtocol.Udp : IpProtocol.Icmp;
  const payload = Uint8Array.of(1, 2, 3, 4, 5);
  const l4Length = (protocol === IpProtocol.Tcp ? 20 : 8) + payload.length;
  const bytes = new Uint8Array(14 + 20 + l4Length);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src: spec.src, dst: spec.dst, protocol, payloadLength: l4Length }, bytes, 14);
  const pseudo = pseudoHeaderSumV4(ipv4(spec.src), ipv4(spec.dst), protocol, l4Length);
  const srcPort = spec.srcPort ?? 40000;
  const dstPort = spec.dstPort ?? 80;
  if (protocol === IpProtocol.Tcp) {
    bytes.set(payload, 54);
    const tcp = { srcPort, dstPort, seq: 1, ack: 0, flags: 0x02, window: 1000, urgentPointer: 0 };
    TcpRepr.emit({ ...tcp, options: new Uint8Array(0), payloadLength: payload.length }, bytes, 34, pseudo);
  } else if (protocol === IpProtocol.Udp) {
    bytes.set(payload, 42);
    UdpRepr.emit(
      { srcPort, dstPort, payloadLength: payload.length },
      bytes,
      34,
      spec.noChecksum ? null : pseudo,
    );
  } else Icmpv4Repr.emit({ type: 8, code: 0, identifier: 1, sequence: 1, payload }, bytes, 34);
  return bytes;
}

/** Parses with checksums verified and reads the 5-tuple. */
function tuple(bytes: Uint8Array): string {
  const parser = new PacketParser();
  assert.equal(parser.attach(bytes, 0, bytes.length), DropReason.None, 'the rewritten frame must parse');
  const src = formatIpv4(parser.ipv4.src());
  const dst = formatIpv4(parser.ipv4.dst());
  if (parser.l4 === Layer.Tcp) return `tcp ${src}:${parser.tcp.srcPort()} > ${dst}:${parser.tcp.dstPort()}`;
  if (parser.l4 === Layer.Udp) return `udp ${src}:${parser.udp.srcPort()} > ${dst}:${parser.udp.dstPort()}`;
  return `${parser.protocol} ${src} > ${dst}`;
}

const VIP = '192.0.2.10';
const BACKENDS = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4'];
const CONFIG = { vip: VIP, port: 80, backends: BACKENDS };

const reference = new NfHarness(loadBalancer, CONFIG).instance as LoadBalancerInstance;

/** The backend the LB must pick for a new connection client:clientPort → VIP:80 (its Maglev table). */
function expectedBackend(client: string, clientPort: number, protocol: number = IpProtocol.Tcp): string {
  const key = new FlowKey();
  key.setV4(ipv4(client), ipv4(VIP), protocol, clientPort, 80);
  return reference.lookup(0, key.symmetricHash());
}

/** Packets sent to each backend, in pool order. */
function backendPackets(nf: NfHarness<unknown>): number[] {
  return (nf.instance as LoadBalancerInstance).backendStats(0).map((b) => b.packets);
}

describe('load-balancer', () => {
  it('sends vip:port to the backend the flow hash picks, and replies back from the VIP', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const backend = expectedBackend('198.51.100.1', 40000);
    const [request] = nf.run([
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp', srcPort: 40000, dstPort: 80 }),
    ]);
    assert.equal(tuple(request.bytes), `tcp 198.51.100.1:40000 > ${backend}:80`);
    const [reply] = nf.run([
      frame({ src: backend, dst: '198.51.100.1', protocol: 'tcp', srcPort: 80, dstPort: 40000 }),
    ]);
    assert.equal(tuple(reply.bytes), `tcp ${VIP}:80 > 198.51.100.1:40000`);
    assert.deepEqual(nf.counters(), {
      to_backend: 1,
      from_backend: 1,
      passed: 0,
      connections_new: 1,
      connections_expired: 0,
      untracked: 0,
    });
    const counts = backendPackets(nf);
    assert.equal(counts[BACKENDS.indexOf(backend)], 1);
    assert.equal(
      counts.reduce((a, b) => a + b),
      1,
    );
  });

  it('keeps every packet of a connection on one backend, and spreads connections', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const chosen = new Map<number, string>();
    const frames: Uint8Array[] = [];
    for (let round = 0; round < 3; round++)
      for (let p = 0; p < 400; p++)
        frames.push(
          frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp', srcPort: 20000 + p, dstPort: 80 }),
        );
    nf.run(frames).forEach((result, i) => {
      const p = i % 400;
      const backend = /> ([\d.]+):80$/.exec(tuple(result.bytes))?.[1] ?? '';
      assert.equal(chosen.get(p) ?? backend, backend, `connection ${p} moved`);
      chosen.set(p, backend);
      assert.equal(backend, expectedBackend('198.51.100.1', 20000 + p));
    });
    const counts = backendPackets(nf);
    for (const count of counts) assert.ok(count > 3 * 60, `uneven spread: ${Array.from(counts).join(', ')}`);
  });

  it('is replica-agnostic and direction-agnostic: the choice is a pure function of the connection', () => {
    const replicas = [0, 1, 2].map(
      (replica) => new NfHarness(loadBalancer, CONFIG, { replica, replicas: 3 }),
    );
    const frames = Array.from({ length: 50 }, (_, i) =>
      frame({ src: `198.51.100.${i + 1}`, dst: VIP, protocol: 'udp', srcPort: 5000 + i, dstPort: 80 }),
    );
    const [a, b, c] = replicas.map((nf) => nf.run(frames).map((r) => tuple(r.bytes)));
    assert.deepEqual(a, b);
    assert.deepEqual(a, c);
    // The symmetric hash of a connection seen from either end picks the same backend.
    const key = new FlowKey();
    for (let i = 0; i < 50; i++) {
      key.setV4(ipv4(`198.51.100.${i + 1}`), ipv4(VIP), IpProtocol.Udp, 5000 + i, 80);
      const forward = reference.lookup(0, key.symmetricHash());
      key.reverse();
      assert.equal(reference.lookup(0, key.symmetricHash()), forward);
    }
  });

  it('leaves a UDP checksum of 0 at 0', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const [result] = nf.run([
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'udp', srcPort: 5, noChecksum: true }),
    ]);
    assert.equal(
      tuple(result.bytes),
      `udp 198.51.100.1:5 > ${expectedBackend('198.51.100.1', 5, IpProtocol.Udp)}:80`,
    );
    assert.equal((result.bytes[40] << 8) | result.bytes[41], 0);
  });

  it('passes other traffic untouched', () => {
    const nf = new NfHarness(loadBalancer, { ...CONFIG, protocol: 'tcp' });
    const frames = [
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp', dstPort: 443 }), // other port
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'udp', dstPort: 80 }), // not balanced: tcp only
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'icmp' }),
      frame({ src: BACKENDS[0], dst: '198.51.100.1', protocol: 'tcp', srcPort: 22 }), // other service
      frame({ src: '10.9.9.9', dst: '198.51.100.1', protocol: 'tcp', srcPort: 80 }), // not a backend
    ];
    const results = nf.run(frames);
    results.forEach((r, i) => {
      assert.equal(r.output, 'out');
      assert.deepEqual(r.bytes, frames[i]);
    });
    assert.deepEqual(nf.counters(), {
      to_backend: 0,
      from_backend: 0,
      passed: 5,
      connections_new: 0,
      connections_expired: 0,
      untracked: 0,
    });
  });

  it('drops fragments to the VIP and malformed frames', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const fragment = new Uint8Array(14 + 20 + 16);
    EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, fragment);
    Ipv4Repr.emit(
      {
        src: '198.51.100.1',
        dst: VIP,
        protocol: IpProtocol.Udp,
        payloadLength: 16,
        dontFragment: false,
        fragmentOffset: 8,
      },
      fragment,
      14,
    );
    const truncated = frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp' }).subarray(0, 50);
    assert.deepEqual(
      nf.run([fragment, truncated]).map((r) => r.drop),
      ['fragment', 'malformed'],
    );
    assert.equal(nf.logs.length, 1);
  });

  it('keeps per-backend counts across a restart, for the backends still in the pool', () => {
    const a = new NfHarness(loadBalancer, CONFIG);
    a.run([frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp' })]);
    const b = new NfHarness(loadBalancer, CONFIG);
    b.instance.restore?.(structuredClone(a.instance.snapshot?.()));
    assert.deepEqual(backendPackets(b), backendPackets(a));
    // Another configuration: the connection comes back on its backend, listed as removed if it left.
    const backend = expectedBackend('198.51.100.1', 40000);
    const c = new NfHarness(loadBalancer, { ...CONFIG, backends: BACKENDS.filter((x) => x !== backend) });
    c.instance.restore?.(a.instance.snapshot?.());
    const stats = (c.instance as LoadBalancerInstance).backendStats(0);
    assert.deepEqual(
      stats.filter((s) => s.state === 'removed').map((s) => [s.address, s.connections]),
      [[backend, 1]],
    );
  });

  it('rejects a bad configuration', () => {
    assert.throws(() => new NfHarness(loadBalancer, { ...CONFIG, vip: '192.0.2' }), /vip: not a usable/);
    assert.throws(() => new NfHarness(loadBalancer, { ...CONFIG, backends: [] }), /backends: at least one/);
    assert.throws(
      () => new NfHarness(loadBalancer, { ...CONFIG, backends: ['10.1.0.1', '10.1.0.300'] }),
      /backends\[1\]: not a usable/,
    );
    assert.throws(
      () => new NfHarness(loadBalancer, { ...CONFIG, backends: ['10.1.0.1', '10.1.0.2', '10.1.0.1'] }),
      /backends\[2\]: 10\.1\.0\.1 is listed twice \(backends\[0\]\)/,
    );
    assert.throws(
      () => new NfHarness(loadBalancer, { ...CONFIG, backends: [VIP] }),
      /backends\[0\]: a backend cannot be the VIP/,
    );
    assert.throws(() => new NfHarness(loadBalancer, { ...CONFIG, port: 0 }), /port: must be ≥ 1/);
    assert.throws(
      () =>
        new NfHarness(loadBalancer, {
          ...CONFIG,
          backends: Array.from({ length: 257 }, (_, i) => `10.2.${i >> 8}.${i & 255}`),
        }),
      /backends: must have at most 256/,
    );
    // 256 backends is fine, and every one is found again for replies.
    const many = Array.from({ length: 256 }, (_, i) => `10.2.${i >> 8}.${(i & 255) + 0}`).map((a, i) =>
      i === 0 ? '10.3.0.1' : a,
    );
    const nf = new NfHarness(loadBalancer, { ...CONFIG, backends: many });
    const replies = many.map((backend) =>
      frame({ src: backend, dst: '198.51.100.1', protocol: 'tcp', srcPort: 80 }),
    );
    assert.ok(nf.run(replies).every((r) => tuple(r.bytes).startsWith(`tcp ${VIP}:80 >`)));
  });

  it('never throws on random bytes or damaged frames', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const seeds = [
      frame({ src: '198.51.100.1', dst: VIP, protocol: 'tcp' }),
      frame({ src: BACKENDS[2], dst: '198.51.100.1', protocol: 'udp', srcPort: 80 }),
    ];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(100),
        fc.nat(1),
        fc.nat(255),
        (random, cut, which, flip) => {
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          for (const result of nf.run([random, seeds[which].subarray(0, cut), flipped]))
            assert.ok(
              result.output === 'out' || result.drop === 'malformed' || result.drop === 'fragment',
              JSON.stringify(result),
            );
        },
      ),
      { seed: 1, numRuns: 500 },
    );
  });
});
