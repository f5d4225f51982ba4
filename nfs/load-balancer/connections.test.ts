import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4, ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import { ConnTable } from './conn-table.js';
import loadBalancer, { type LoadBalancerInstance } from './index.js';

const S = 1e9;
const VIP = '192.0.2.10';
const VIP2 = '192.0.2.20';
const POOL = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5'];
const CONFIG = {
  services: [
    { vip: VIP, port: 80, protocol: 'tcp', backends: POOL.map((address) => ({ address })) },
    {
      vip: VIP2,
      port: 53,
      protocol: 'udp',
      backends: [{ address: '10.2.0.1' }, { address: '10.2.0.2', weight: 3 }],
    },
  ],
};

function frame(
  src: string,
  dst: string,
  proto: 'tcp' | 'udp',
  srcPort: number,
  dstPort: number,
  flags = 0x10,
): Uint8Array {
  const protocol = proto === 'tcp' ? IpProtocol.Tcp : IpProtocol.Udp;
  const payload = Uint8Array.of(1, 2, 3);
  const l4Length = (proto === 'tcp' ? 20 : 8) + payload.length;
  const bytes = new Uint8Array(14 + 20 + l4Length);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    bytes,
  );
  Ipv4Repr.emit({ src, dst, protocol, payloadLength: l4Length }, bytes, 14);
  const pseudo = pseudoHeaderSumV4(ipv4(src), ipv4(dst), protocol, l4Length);
  bytes.set(payload, 14 + 20 + l4Length - payload.length);
  if (proto === 'tcp')
    TcpRepr.emit(
      {
        srcPort,
        dstPort,
        seq: 1,
        ack: 1,
        flags,
        window: 1000,
        urgentPointer: 0,
        options: new Uint8Array(0),
        payloadLength: 3,
      },
      bytes,
      34,
      pseudo,
    );
  else UdpRepr.emit({ srcPort, dstPort, payloadLength: 3 }, bytes, 34, pseudo);
  return bytes;
}

/** The destination (for requests) or source (for replies) after the LB, checksums verified. */
function parse(bytes: Uint8Array): { src: string; dst: string } {
  const parser = new PacketParser();
  assert.equal(parser.attach(bytes, 0, bytes.length), DropReason.None, 'the rewritten frame must parse');
  assert.ok(parser.l4 === Layer.Tcp || parser.l4 === Layer.Udp);
  return { src: formatIpv4(parser.ipv4.src()), dst: formatIpv4(parser.ipv4.dst()) };
}

const client = (i: number): string => `198.51.${100 + (i >> 16)}.${(i >> 8) & 255 || 1}`;
const SYN = 0x02;
const ACK = 0x10;
const FIN_ACK = 0x11;

/** Opens `count` connections to VIP:80 and returns the backend each went to. */
function open(nf: NfHarness<unknown>, count: number, now = 0): string[] {
  const frames = Array.from({ length: count }, (_, i) =>
    frame(client(i), VIP, 'tcp', 1024 + (i & 0xff) * 200 + (i >> 8), 80, SYN),
  );
  return nf.run(frames, now).map((r) => parse(r.bytes).dst);
}
function again(nf: NfHarness<unknown>, count: number, now = 0): string[] {
  const frames = Array.from({ length: count }, (_, i) =>
    frame(client(i), VIP, 'tcp', 1024 + (i & 0xff) * 200 + (i >> 8), 80, ACK),
  );
  return nf.run(frames, now).map((r) => parse(r.bytes).dst);
}

describe('load-balancer connections', () => {
  it('keeps established connections on their backend when one of N is removed, and moves about 1/N of new ones', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const lb = nf.instance as LoadBalancerInstance;
    const before = open(nf, 5000);
    assert.equal(lb.connections(), 5000);
    // Maglev over 10⁵ synthetic flow hashes: which new flows would move.
    const hashes = Array.from({ length: 100_000 }, (_, i) => Math.imul(i + 1, 0x9e3779b1) ^ (i >>> 3));
    const choice = hashes.map((h) => lb.lookup(0, h));
    lb.setBackends(
      0,
      POOL.filter((a) => a !== '10.1.0.3').map((address) => ({ address })),
    );
    const movedShare = hashes.filter((h, i) => lb.lookup(0, h) !== choice[i]).length / hashes.length;
    assert.ok(Math.abs(movedShare - 1 / 5) < 0.02, `moved ${movedShare}`);
    assert.ok(
      hashes.every((h, i) => choice[i] === '10.1.0.3' || lb.lookup(0, h) === choice[i]) || movedShare < 0.22,
    );
    // Every established connection stays, including those on the removed backend.
    assert.deepEqual(again(nf, 5000), before);
    const stats = lb.backendStats(0);
    const removed = stats.find((s) => s.address === '10.1.0.3');
    assert.equal(removed?.state, 'removed');
    assert.equal(removed?.connections, before.filter((b) => b === '10.1.0.3').length);
    assert.equal(removed?.slots, 0);
    // Adding one back (and a sixth) moves about 1/(N+1) of new flows.
    const choice2 = hashes.map((h) => lb.lookup(0, h));
    lb.setBackends(
      0,
      [...POOL.filter((a) => a !== '10.1.0.3'), '10.1.0.6'].map((address) => ({ address })),
    );
    const addedShare = hashes.filter((h, i) => lb.lookup(0, h) !== choice2[i]).length / hashes.length;
    assert.ok(Math.abs(addedShare - 1 / 5) < 0.02, `added ${addedShare}`);
    assert.deepEqual(again(nf, 5000), before);
  });

  it('drains: a draining backend takes no new connections but keeps its established ones', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const lb = nf.instance as LoadBalancerInstance;
    const before = open(nf, 2000);
    lb.setBackends(
      0,
      POOL.map((address) => ({ address, state: address === '10.1.0.1' ? 'draining' : 'active' })),
    );
    assert.deepEqual(again(nf, 2000), before);
    const fresh = nf
      .run(Array.from({ length: 2000 }, (_, i) => frame('203.0.113.7', VIP, 'tcp', 10000 + i, 80, SYN)))
      .map((r) => parse(r.bytes).dst);
    assert.ok(!fresh.includes('10.1.0.1'));
    assert.equal(lb.backendStats(0)[0].state, 'draining');
    assert.equal(lb.backendStats(0)[0].connections, before.filter((b) => b === '10.1.0.1').length);
    // All draining: new connections are a counted drop; established ones still flow.
    lb.setBackends(
      0,
      POOL.map((address) => ({ address, state: 'draining' })),
    );
    const [drop] = nf.run([frame('203.0.113.8', VIP, 'tcp', 999, 80, SYN)]);
    assert.equal(drop.drop, 'no_backend');
    assert.deepEqual(again(nf, 10), before.slice(0, 10));
  });

  it('rewrites replies back to the VIP through the connection table, for each service', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const [req] = nf.run([frame('198.51.100.9', VIP2, 'udp', 5353, 53)]);
    const backend = parse(req.bytes).dst;
    assert.ok(backend.startsWith('10.2.0.'));
    const [reply] = nf.run([frame(backend, '198.51.100.9', 'udp', 53, 5353)]);
    assert.deepEqual(parse(reply.bytes), { src: VIP2, dst: '198.51.100.9' });
    // TCP to the UDP-only service, or UDP to the TCP one: untouched.
    const other = [frame('198.51.100.9', VIP2, 'tcp', 5353, 53), frame('198.51.100.9', VIP, 'udp', 5353, 80)];
    nf.run(other).forEach((r, i) => assert.deepEqual(r.bytes, other[i]));
    // Weighted: 10.2.0.2 (weight 3) gets about three quarters of new flows.
    const spread = nf
      .run(Array.from({ length: 4000 }, (_, i) => frame(client(i), VIP2, 'udp', 2000 + i, 53)))
      .map((r) => parse(r.bytes).dst);
    const heavy = spread.filter((b) => b === '10.2.0.2').length / spread.length;
    assert.ok(Math.abs(heavy - 0.75) < 0.04, `weight 3 of 4 got ${heavy}`);
  });

  it('expires idle connections, sooner after FIN or RST, and re-balances a reused port', () => {
    const nf = new NfHarness(loadBalancer, {
      ...CONFIG,
      maxConnections: 16,
      tcpTimeoutSeconds: 100,
      tcpClosingTimeoutSeconds: 5,
    });
    const lb = nf.instance as LoadBalancerInstance;
    nf.run(
      [frame('198.51.100.1', VIP, 'tcp', 1111, 80, SYN), frame('198.51.100.2', VIP, 'tcp', 2222, 80, SYN)],
      0,
    );
    nf.run([frame('198.51.100.1', VIP, 'tcp', 1111, 80, FIN_ACK)], 1 * S);
    lb.tick?.(4 * S);
    assert.equal(lb.connections(), 2);
    lb.tick?.(7 * S);
    assert.equal(lb.connections(), 1);
    lb.tick?.(99 * S);
    assert.equal(lb.connections(), 1);
    lb.tick?.(101 * S);
    assert.equal(lb.connections(), 0);
    assert.equal(nf.counters().connections_expired, 2);
    // A packet of an expired connection starts a new one (counted as new).
    nf.run([frame('198.51.100.3', VIP, 'tcp', 3333, 80, SYN)], 200 * S);
    nf.run([frame('198.51.100.3', VIP, 'tcp', 3333, 80, ACK)], 400 * S);
    assert.equal(nf.counters().connections_new, 4);
    assert.equal(nf.counters().connections_expired, 3);
  });

  it('sends new connections on untracked when the table is full, and counts them', () => {
    const nf = new NfHarness(loadBalancer, { ...CONFIG, maxConnections: 16 });
    const lb = nf.instance as LoadBalancerInstance;
    const results = nf.run(
      Array.from({ length: 40 }, (_, i) => frame('198.51.100.1', VIP, 'tcp', 3000 + i, 80, SYN)),
    );
    assert.ok(results.every((r) => r.output === 'out' && POOL.includes(parse(r.bytes).dst)));
    assert.equal(lb.connections(), 16);
    assert.equal(nf.counters().untracked, 24);
  });

  it('snapshot → restore gives the same state digest, and carries a changed pool over', () => {
    const a = new NfHarness(loadBalancer, CONFIG);
    const la = a.instance as LoadBalancerInstance;
    open(a, 3000, 5 * S);
    la.setBackends(
      0,
      [...POOL.slice(1), '10.1.0.9'].map((address, i) => ({ address, weight: 1 + (i % 2) })),
    );
    open(a, 100, 6 * S);
    const b = new NfHarness(loadBalancer, CONFIG);
    const lb = b.instance as LoadBalancerInstance;
    lb.restore?.(structuredClone(a.instance.snapshot?.()));
    assert.equal(lb.stateDigest(), la.stateDigest());
    assert.deepEqual(lb.plan, la.plan);
    assert.deepEqual(again(b, 3000), again(a, 3000));
    // The same flows on both after restore, new ones too.
    const fresh = Array.from({ length: 500 }, (_, i) => frame('203.0.113.9', VIP, 'tcp', 20000 + i, 80, SYN));
    assert.deepEqual(
      b.run(fresh).map((r) => parse(r.bytes).dst),
      a.run(fresh).map((r) => parse(r.bytes).dst),
    );
    // Garbage is ignored.
    const c = new NfHarness(loadBalancer, CONFIG);
    const before = (c.instance as LoadBalancerInstance).stateDigest();
    for (const junk of [null, 1, 'x', { version: 2 }, { version: 2, services: 'x' }])
      c.instance.restore?.(junk);
    assert.equal((c.instance as LoadBalancerInstance).stateDigest(), before);
  });

  it('rejects a bad pool at run time and changes nothing', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const lb = nf.instance as LoadBalancerInstance;
    const digest = lb.stateDigest();
    assert.throws(
      () => lb.setBackends(0, [{ address: '10.1.0.1' }, { address: '10.1.0.1' }]),
      /listed twice/,
    );
    assert.throws(() => lb.setBackends(0, [{ address: 'nope' }]), /not a usable/);
    assert.throws(() => lb.setBackends(0, [{ address: VIP }]), /cannot be the VIP/);
    assert.throws(() => lb.setBackends(0, [{ address: '10.1.0.1', weight: 0 }]), /weight/);
    assert.throws(() => lb.setBackends(5, []), /service 5/);
    assert.equal(lb.stateDigest(), digest);
    assert.throws(() => new NfHarness(loadBalancer, {}), /at least one service/);
    assert.throws(
      () => new NfHarness(loadBalancer, { ...CONFIG, vip: VIP, port: 80, backends: ['10.1.0.1'] }),
      /not both/,
    );
    assert.throws(
      () =>
        new NfHarness(loadBalancer, {
          services: [CONFIG.services[0], { ...CONFIG.services[0], protocol: 'any' }],
        }),
      /already services\[0\]/,
    );
  });

  it('never throws on random or damaged frames, with connections in the table', () => {
    const nf = new NfHarness(loadBalancer, CONFIG);
    const seeds = [
      frame('198.51.100.1', VIP, 'tcp', 1234, 80, SYN),
      frame('10.2.0.1', '198.51.100.1', 'udp', 53, 999),
    ];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        fc.nat(100),
        fc.nat(1),
        fc.nat(255),
        (random, cut, which, flip) => {
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          for (const r of nf.run([random, seeds[which].subarray(0, cut), flipped], cut * S))
            assert.ok(
              r.output === 'out' || r.drop === 'malformed' || r.drop === 'fragment',
              JSON.stringify(r.drop),
            );
        },
      ),
      { seed: 2, numRuns: 500 },
    );
  });
});

describe('ConnTable', () => {
  it('finds both keys of an entry and deletes without breaking probe runs', () => {
    const t = new ConnTable(1000);
    const rnd = fc.sample(fc.tuple(fc.integer(), fc.integer(), fc.integer()), { seed: 3, numRuns: 1000 });
    const entries = rnd.map(([c, b, p], i) => t.insert(c, 7, b, p, 6, 0, i & 0xffff, 0, 1));
    assert.ok(entries.every((e) => e >= 0));
    assert.equal(t.insert(1, 2, 3, 4, 6, 0, 0, 0, 1), -1);
    for (let i = 0; i < rnd.length; i += 2) t.remove(entries[i]);
    rnd.forEach(([c, b, p], i) => {
      const present = i % 2 === 1;
      assert.equal(t.findForward(c, 7, p, 6), present ? entries[i] : -1);
      assert.equal(t.findReply(b, c, p, 6), present ? entries[i] : -1);
      assert.equal(t.findForward(c, 7, p, 17), -1);
    });
    assert.equal(t.size, 500);
  });
});
