/**
 * The NAT's RFC 4787 / RFC 5508 behaviour: endpoint-independent mapping, filtering, port
 * forwarding, hairpinning, ICMP error translation (exact output bytes), and the port allocator's
 * promises (never a port twice; exhaustion is an exact, counted drop).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIpv4 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { Icmpv4Type } from '../../src/packet/icmpv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { NfHarness } from '../../src/sdk/index.js';
import nat, { type NatInstance } from './index.js';
import { frame, icmpError } from './test-frames.js';

const EXT = '203.0.113.1';
const SERVER = '198.51.100.7';
const OTHER = '198.51.100.8';
const ROUTER = '192.0.2.1';
const SEC = 1e9;

/** Parses with every checksum verified (so a wrong patch fails here) and reads the 5-tuple. */
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

function outcome(nf: NfHarness<unknown>, frames: Uint8Array[], now = 0): string[] {
  return nf.run(frames, now).map((r) => (r.output ? tuple(r.bytes) : `drop:${r.drop}`));
}

/** One frame through the NAT: its output bytes (a copy), or the drop reason. */
function through(nf: NfHarness<unknown>, bytes: Uint8Array, now = 0): Uint8Array | string {
  const [result] = nf.run([bytes.slice()], now);
  return result.output ? result.bytes.slice() : `drop:${result.drop}`;
}

const hex = (b: Uint8Array | string): string => (typeof b === 'string' ? b : Buffer.from(b).toString('hex'));

describe('nat: endpoint-independent mapping and filtering (RFC 4787)', () => {
  it('gives an inside endpoint one external port for every destination (REQ-1)', () => {
    const nf = new NfHarness(nat, { external: EXT, portRange: '20000-20009' });
    const out = outcome(nf, [
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53 }),
      frame({ src: '10.0.0.5', dst: OTHER, protocol: 'udp', srcPort: 5000, dstPort: 3478 }),
      frame({ src: '10.0.0.6', dst: OTHER, protocol: 'udp', srcPort: 5000, dstPort: 3478 }),
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 5000, dstPort: 443 }),
      frame({ src: '10.0.0.5', dst: OTHER, protocol: 'tcp', srcPort: 5000, dstPort: 80 }),
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'icmp', srcPort: 77 }),
      frame({ src: '10.0.0.5', dst: OTHER, protocol: 'icmp', srcPort: 77 }),
    ]);
    assert.deepEqual(out, [
      `udp ${EXT}:20000 > ${SERVER}:53`,
      `udp ${EXT}:20000 > ${OTHER}:3478`,
      `udp ${EXT}:20001 > ${OTHER}:3478`,
      `tcp ${EXT}:20000 > ${SERVER}:443`,
      `tcp ${EXT}:20000 > ${OTHER}:80`,
      `icmp ${EXT} > ${SERVER} id 20000`,
      `icmp ${EXT} > ${OTHER} id 20000`,
    ]);
    assert.equal(nf.counters().new_mappings, 4);
    assert.equal((nf.instance as NatInstance).externalPort('udp', '10.0.0.6', 5000), 20001);
  });

  it('address-dependent filtering admits only remotes the endpoint has sent to, any port of theirs', () => {
    const nf = new NfHarness(nat, { external: EXT });
    nf.run([frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53 })]);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 9999, dstPort: 5000 }),
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: 5000 }),
      ]),
      [`udp ${SERVER}:9999 > 10.0.0.5:5000`, 'drop:filtered'],
    );
    // Once the endpoint has sent to OTHER, OTHER may answer — on the same mapping.
    assert.deepEqual(
      outcome(nf, [
        frame({ src: '10.0.0.5', dst: OTHER, protocol: 'udp', srcPort: 5000, dstPort: 53 }),
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 53, dstPort: 5000 }),
      ]),
      [`udp ${EXT}:5000 > ${OTHER}:53`, `udp ${OTHER}:53 > 10.0.0.5:5000`],
    );
  });

  it('endpoint-independent filtering admits any remote to a live mapping, none to a free port', () => {
    const nf = new NfHarness(nat, { external: EXT, filtering: 'endpoint-independent' });
    nf.run([frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 53 })]);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 1234, dstPort: 5000 }),
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 1234, dstPort: 5001 }),
      ]),
      [`udp ${OTHER}:1234 > 10.0.0.5:5000`, 'drop:no_mapping'],
    );
  });

  it('expires a remote of a mapping on its own: the mapping stays, the remote is filtered', () => {
    const nf = new NfHarness(nat, { external: EXT, timeoutSeconds: 10 });
    nf.run([frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000 })], 0);
    nf.run([frame({ src: '10.0.0.5', dst: OTHER, protocol: 'udp', srcPort: 5000 })], 8 * SEC);
    nf.instance.tick?.(12 * SEC);
    assert.deepEqual(
      outcome(
        nf,
        [
          frame({ src: SERVER, dst: EXT, protocol: 'udp', srcPort: 80, dstPort: 5000 }),
          frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 80, dstPort: 5000 }),
        ],
        12 * SEC,
      ),
      ['drop:filtered', `udp ${OTHER}:80 > 10.0.0.5:5000`],
    );
    assert.equal(nf.counters().expired, 0, 'the mapping itself is still live');
  });
});

describe('nat: port forwarding (destination NAT)', () => {
  const config = {
    external: EXT,
    inside: '10.0.0.0/8',
    portRange: '8080-8081',
    forward: [
      { protocol: 'tcp', port: 8080, to: '10.0.0.5:80' },
      { protocol: 'udp', port: 5353, to: '10.0.0.9:53' },
    ],
  };

  it('sends any remote to the inside server; its replies leave from the forwarded port', () => {
    const nf = new NfHarness(nat, config);
    assert.deepEqual(
      outcome(nf, [
        frame({ src: SERVER, dst: EXT, protocol: 'tcp', srcPort: 50000, dstPort: 8080 }),
        frame({ src: OTHER, dst: EXT, protocol: 'tcp', srcPort: 50001, dstPort: 8080 }),
        frame({ src: '10.0.0.5', dst: SERVER, protocol: 'tcp', srcPort: 80, dstPort: 50000 }),
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 7, dstPort: 5353 }),
        frame({ src: '10.0.0.9', dst: OTHER, protocol: 'udp', srcPort: 53, dstPort: 7 }),
        frame({ src: OTHER, dst: EXT, protocol: 'udp', srcPort: 7, dstPort: 8080 }), // tcp only
      ]),
      [
        `tcp ${SERVER}:50000 > 10.0.0.5:80`,
        `tcp ${OTHER}:50001 > 10.0.0.5:80`,
        `tcp ${EXT}:8080 > ${SERVER}:50000`,
        `udp ${OTHER}:7 > 10.0.0.9:53`,
        `udp ${EXT}:5353 > ${OTHER}:7`,
        'drop:no_mapping',
      ],
    );
  });

  it('reserves forwarded ports: dynamic mappings never take them, and forwards never expire', () => {
    const nf = new NfHarness(nat, { ...config, timeoutSeconds: 1 });
    assert.deepEqual(
      outcome(nf, [
        frame({ src: '10.0.0.6', dst: SERVER, protocol: 'tcp', srcPort: 8080 }),
        frame({ src: '10.0.0.7', dst: SERVER, protocol: 'tcp', srcPort: 8080 }),
      ]),
      [`tcp ${EXT}:8081 > ${SERVER}:80`, 'drop:ports_exhausted'],
    );
    nf.instance.tick?.(100 * SEC);
    assert.equal((nf.instance as NatInstance).activeFlows(), 2, 'the two forwards');
    assert.deepEqual(
      outcome(nf, [frame({ src: OTHER, dst: EXT, protocol: 'tcp', srcPort: 1, dstPort: 8080 })], 100 * SEC),
      [`tcp ${OTHER}:1 > 10.0.0.5:80`],
    );
  });

  it('refuses forwarding rules that clash or point outside', () => {
    const rule = (to: string, port = 80) => ({ protocol: 'tcp', port, to });
    const make = (forward: unknown[]) => new NfHarness(nat, { external: EXT, inside: '10.0.0.0/8', forward });
    assert.throws(
      () => make([rule('10.0.0.5:80'), rule('10.0.0.6:80')]),
      /forward\[1\]\.port: .*already forwarded/,
    );
    assert.throws(() => make([rule('10.0.0.5:80'), rule('10.0.0.5:80', 81)]), /forward\[1\]\.to: .*already/);
    assert.throws(() => make([rule('10.0.0.5')]), /forward\[0\]\.to: must be "address:port"/);
    assert.throws(() => make([rule('192.168.1.1:80')]), /forward\[0\]\.to: .*not an inside address/);
    assert.throws(() => make([{ protocol: 'icmp', port: 1, to: '10.0.0.5:1' }]), /forward\[0\]\.protocol/);
  });
});

describe('nat: hairpinning (RFC 4787 REQ-9)', () => {
  it('delivers inside → external address:port to the inside endpoint, from the sender’s mapping', () => {
    const nf = new NfHarness(nat, {
      external: EXT,
      inside: '10.0.0.0/8',
      forward: [{ protocol: 'tcp', port: 8080, to: '10.0.0.5:80' }],
    });
    assert.deepEqual(
      outcome(nf, [
        frame({ src: '10.0.0.6', dst: EXT, protocol: 'tcp', srcPort: 40000, dstPort: 8080 }),
        frame({ src: '10.0.0.5', dst: EXT, protocol: 'tcp', srcPort: 80, dstPort: 40000 }),
      ]),
      [`tcp ${EXT}:40000 > 10.0.0.5:80`, `tcp ${EXT}:8080 > 10.0.0.6:40000`],
    );
    assert.equal(nf.counters().hairpinned, 2);
  });

  it('filters a hairpinned packet like any inbound one', () => {
    const make = (filtering: string) => {
      const nf = new NfHarness(nat, { external: EXT, inside: '10.0.0.0/8', filtering });
      nf.run([frame({ src: '10.0.0.6', dst: SERVER, protocol: 'udp', srcPort: 5000, dstPort: 3478 })]);
      return outcome(nf, [
        frame({ src: '10.0.0.7', dst: EXT, protocol: 'udp', srcPort: 6000, dstPort: 5000 }),
      ]);
    };
    assert.deepEqual(make('address-dependent'), ['drop:filtered']);
    assert.deepEqual(make('endpoint-independent'), [`udp ${EXT}:6000 > 10.0.0.6:5000`]);
  });
});

describe('nat: ICMP errors with their quoted headers (RFC 5508)', () => {
  /**
   * An ICMP error about a packet the NAT sent out must reach the inside host exactly as if the
   * host had been talking to the remote directly: every byte, every checksum.
   */
  function inbound(offending: Uint8Array, type: number, code: number, quote: number, config = {}): void {
    const nf = new NfHarness(nat, { external: EXT, portRange: '20000-20009', ...config });
    const sent = through(nf, offending);
    assert.ok(typeof sent !== 'string', 'the offending packet leaves');
    const error = icmpError(ROUTER, EXT, type, code, sent, quote);
    const expected = icmpError(ROUTER, '10.0.0.5', type, code, offending, quote);
    assert.equal(hex(through(nf, error)), hex(expected));
    assert.equal(nf.counters().icmp_errors, 1);
  }

  const udp = frame({
    src: '10.0.0.5',
    dst: SERVER,
    protocol: 'udp',
    srcPort: 5000,
    dstPort: 53,
    payload: 30,
  });
  const tcp = frame({
    src: '10.0.0.5',
    dst: SERVER,
    protocol: 'tcp',
    srcPort: 40000,
    dstPort: 443,
    payload: 30,
  });
  const echo = frame({ src: '10.0.0.5', dst: SERVER, protocol: 'icmp', srcPort: 77, payload: 30 });

  it('time exceeded quoting UDP: 8 bytes (checksum included) and the whole datagram', () => {
    inbound(udp, Icmpv4Type.TimeExceeded, 0, 8);
    inbound(udp, Icmpv4Type.TimeExceeded, 0, 1000);
  });
  it('port unreachable quoting UDP without a checksum: it stays 0', () => {
    inbound(
      frame({ src: '10.0.0.5', dst: SERVER, protocol: 'udp', srcPort: 5000, noChecksum: true }),
      3,
      3,
      8,
    );
  });
  it('unreachable quoting TCP: 8 bytes (no checksum quoted) and the whole segment (checksum patched)', () => {
    inbound(tcp, Icmpv4Type.DestinationUnreachable, 1, 8);
    inbound(tcp, Icmpv4Type.DestinationUnreachable, 4, 1000);
    inbound(tcp, Icmpv4Type.ParameterProblem, 0, 12);
  });
  it('time exceeded quoting an echo request (traceroute by ping)', () => {
    inbound(echo, Icmpv4Type.TimeExceeded, 0, 8);
    inbound(echo, Icmpv4Type.TimeExceeded, 0, 1000, { filtering: 'endpoint-independent' });
  });

  it('translates an inside host’s error about a forwarded packet on its way out', () => {
    const nf = new NfHarness(nat, {
      external: EXT,
      inside: '10.0.0.0/8',
      forward: [{ protocol: 'udp', port: 5353, to: '10.0.0.9:53' }],
    });
    const query = frame({
      src: SERVER,
      dst: EXT,
      protocol: 'udp',
      srcPort: 7000,
      dstPort: 5353,
      payload: 20,
    });
    const delivered = through(nf, query);
    assert.ok(typeof delivered !== 'string');
    const unreachable = icmpError('10.0.0.9', SERVER, 3, 3, delivered, 1000);
    assert.equal(hex(through(nf, unreachable)), hex(icmpError(EXT, SERVER, 3, 3, query, 1000)));
  });

  it('refuses errors about no mapping, from a remote it never sent to, quoting what it cannot read', () => {
    const nf = new NfHarness(nat, { external: EXT, portRange: '20000-20009' });
    const sent = through(nf, udp);
    assert.ok(typeof sent !== 'string');
    const unknown = frame({ src: EXT, dst: SERVER, protocol: 'udp', srcPort: 20005, dstPort: 53 });
    const elsewhere = frame({ src: EXT, dst: OTHER, protocol: 'udp', srcPort: 20000, dstPort: 53 });
    const gre = frame({ src: EXT, dst: SERVER, protocol: 47, payload: 8 });
    const damaged = icmpError(ROUTER, EXT, 11, 0, sent);
    damaged[damaged.length - 1] ^= 1;
    const results = nf.run([
      icmpError(ROUTER, EXT, 11, 0, unknown),
      icmpError(ROUTER, EXT, 11, 0, elsewhere),
      icmpError(ROUTER, EXT, 11, 0, gre),
      icmpError(ROUTER, EXT, 11, 0, sent, 4), // fewer than 8 bytes of the datagram
      damaged,
      icmpError(ROUTER, EXT, Icmpv4Type.Redirect, 0, sent),
    ]);
    assert.deepEqual(
      results.map((r) => r.drop),
      ['no_mapping', 'filtered', 'unsupported', 'unsupported', 'malformed', 'no_mapping'],
    );
  });
});

describe('nat: port allocation', () => {
  it('C3: 64,512 ports for 64,768 flows — exactly 256 counted drops, no port twice, ports reused after expiry', () => {
    const nf = new NfHarness(nat, {
      external: EXT,
      portRange: '1024-65535',
      timeoutSeconds: 60,
      maxFlows: 1 << 17,
    });
    const flows = 64_512 + 256;
    const host = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const frames = Array.from({ length: flows }, (_, n) =>
      frame({ src: host(n + 1), dst: SERVER, protocol: 'udp', srcPort: 7, dstPort: 53, payload: 0 }),
    );
    const results = nf.run(frames, 0);
    const ports = new Set<number>();
    let dropped = 0;
    for (const r of results) {
      if (!r.output) {
        assert.equal(r.drop, 'ports_exhausted');
        dropped++;
        continue;
      }
      const port = (r.bytes[34] << 8) | r.bytes[35];
      assert.ok(!ports.has(port), `port ${port} used twice`);
      ports.add(port);
    }
    assert.equal(dropped, 256);
    assert.equal(ports.size, 64_512);
    assert.ok(
      results.slice(flows - 256).every((r) => r.drop === 'ports_exhausted'),
      'the overflow flows',
    );
    // Existing mappings untouched: a reply to each of the first flows reaches its host.
    const replies = results.slice(0, 1000).map((r) =>
      frame({
        src: SERVER,
        dst: EXT,
        protocol: 'udp',
        srcPort: 53,
        dstPort: (r.bytes[34] << 8) | r.bytes[35],
      }),
    );
    nf.run(replies, 30 * SEC).forEach((r, n) =>
      assert.equal(tuple(r.bytes), `udp ${SERVER}:53 > ${host(n + 1)}:7`),
    );
    // After the idle timeout the ports are free again: the 256 overflow flows now get ports.
    nf.instance.tick?.(100 * SEC);
    assert.equal((nf.instance as NatInstance).activeFlows(), 0);
    assert.equal(nf.counters().expired, 64_512);
    const retried = nf.run(frames.slice(flows - 256), 101 * SEC);
    assert.ok(retried.every((r) => r.output === 'out'));
  });

  it('never gives one external port to two live mappings (model check)', () => {
    const TIMEOUT = 10;
    const RANGE = 6;
    const command = fc.oneof(
      fc.record({
        kind: fc.constant('out' as const),
        host: fc.nat(3),
        port: fc.nat(3),
        dest: fc.nat(2),
        udp: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('wait' as const), seconds: fc.nat(12) }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 80 }), fc.boolean(), (commands, independent) => {
        const nf = new NfHarness(nat, {
          external: EXT,
          portRange: `3000-${3000 + RANGE - 1}`,
          timeoutSeconds: TIMEOUT,
          filtering: independent ? 'endpoint-independent' : 'address-dependent',
        });
        // The model: per protocol, inside endpoint → [external port, last seen (s)].
        const model = [new Map<string, [number, number]>(), new Map<string, [number, number]>()];
        let now = 0;
        for (const c of commands) {
          if (c.kind === 'wait') {
            now += c.seconds;
            nf.instance.tick?.(now * SEC);
            for (const m of model) for (const [k, [, seen]] of m) if (now - seen > TIMEOUT) m.delete(k);
            continue;
          }
          const m = model[c.udp ? 1 : 0];
          const endpoint = `10.0.0.${c.host + 1}:${1000 + c.port}`;
          const remote = `198.51.100.${c.dest + 1}`;
          const protocol = c.udp ? 'udp' : 'tcp';
          const [r] = nf.run(
            [
              frame({
                src: `10.0.0.${c.host + 1}`,
                dst: remote,
                protocol,
                srcPort: 1000 + c.port,
                dstPort: 80,
              }),
            ],
            now * SEC,
          );
          const known = m.get(endpoint);
          if (!known && m.size === RANGE) {
            assert.equal(r.drop, 'ports_exhausted');
            continue;
          }
          assert.equal(r.output, 'out');
          const port = (r.bytes[34] << 8) | r.bytes[35];
          if (known) assert.equal(port, known[0], 'endpoint-independent mapping');
          else
            for (const [other, [held]] of m)
              assert.notEqual(port, held, `port ${port} also held by ${other}`);
          m.set(endpoint, [port, now]);
          // The reply finds its way back to this endpoint and no other.
          const [reply] = nf.run(
            [frame({ src: remote, dst: EXT, protocol, srcPort: 80, dstPort: port })],
            now * SEC,
          );
          assert.equal(tuple(reply.bytes), `${protocol} ${remote}:80 > ${endpoint}`);
        }
      }),
      { seed: 4787, numRuns: 120 },
    );
  });
});
