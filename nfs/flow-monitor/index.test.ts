import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { TcpFlag, TcpRepr } from '../../src/packet/tcp.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import flowMonitor, { type FlowMonitorInstance, type FlowMonitorSnapshot } from './index.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
const SEC = 1e9;

interface FrameSpec {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp';
  srcPort: number;
  dstPort: number;
  flags?: number;
  payload?: number;
}

/** Ethernet / IPv4 or IPv6 / TCP or UDP with a payload, checksums filled. */
function frame(spec: FrameSpec): Uint8Array {
  const v6 = spec.src.includes(':');
  const protocol = spec.protocol === 'tcp' ? IpProtocol.Tcp : IpProtocol.Udp;
  const payload = spec.payload ?? 0;
  const l4Length = (protocol === IpProtocol.Tcp ? 20 : 8) + payload;
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
  const { srcPort, dstPort } = spec;
  if (protocol === IpProtocol.Tcp) {
    const tcp = { srcPort, dstPort, seq: 1, ack: 0, flags: spec.flags ?? TcpFlag.Ack, window: 1000 };
    TcpRepr.emit(
      { ...tcp, urgentPointer: 0, options: new Uint8Array(0), payloadLength: payload },
      bytes,
      at,
      pseudo,
    );
  } else UdpRepr.emit({ srcPort, dstPort, payloadLength: payload }, bytes, at, pseudo);
  return bytes;
}

const CLIENT = '10.0.0.1';
const SERVER = '192.0.2.80';
const c2s = (flags: number, payload = 0) =>
  frame({ src: CLIENT, dst: SERVER, protocol: 'tcp', srcPort: 40000, dstPort: 80, flags, payload });
const s2c = (flags: number, payload = 0) =>
  frame({ src: SERVER, dst: CLIENT, protocol: 'tcp', srcPort: 80, dstPort: 40000, flags, payload });
const udp = (i: number, src = CLIENT, dst = SERVER) =>
  frame({ src, dst, protocol: 'udp', srcPort: 5000 + i, dstPort: 53, payload: 10 });

function monitor(nf: NfHarness<unknown>): FlowMonitorInstance {
  return nf.instance as FlowMonitorInstance;
}

describe('flow-monitor', () => {
  it('keeps one record per connection, both directions, and never changes a packet', () => {
    const nf = new NfHarness(flowMonitor, {});
    const frames = [
      c2s(TcpFlag.Syn),
      s2c(TcpFlag.Syn | TcpFlag.Ack),
      c2s(TcpFlag.Ack),
      c2s(TcpFlag.Ack | TcpFlag.Psh, 100),
    ];
    const results = [...nf.run(frames.slice(0, 2), 1 * SEC), ...nf.run(frames.slice(2), 3 * SEC)];
    results.forEach((r, i) => {
      assert.equal(r.output, 'out');
      assert.deepEqual(r.bytes, frames[i]);
    });
    assert.deepEqual(monitor(nf).flows(), [
      {
        flow: `6 ${CLIENT}:40000 -> ${SERVER}:80`,
        ipVersion: 4,
        protocol: 6,
        src: CLIENT,
        dst: SERVER,
        srcPort: 40000,
        dstPort: 80,
        packets: 3,
        bytes: 40 + 40 + 140,
        tcpFlags: TcpFlag.Syn | TcpFlag.Ack | TcpFlag.Psh,
        reversePackets: 1,
        reverseBytes: 40,
        reverseTcpFlags: TcpFlag.Syn | TcpFlag.Ack,
        firstSeen: 1 * SEC,
        lastSeen: 3 * SEC,
      },
    ]);
    assert.deepEqual(nf.counters(), {
      packets: 4,
      bytes: 260,
      flows_active: 1,
      flows_created: 1,
      flows_exported: 0,
      table_full: 0,
      unrecorded: 0,
    });
  });

  it('records IPv6 flows, the initiator first', () => {
    const nf = new NfHarness(flowMonitor, {});
    nf.run([udp(1, '2001:db8::2', '2001:db8::1'), udp(1, '2001:db8::2', '2001:db8::1')], 5);
    nf.run(
      [frame({ src: '2001:db8::1', dst: '2001:db8::2', protocol: 'udp', srcPort: 53, dstPort: 5001 })],
      6,
    );
    const [record] = monitor(nf).flows();
    assert.equal(record.flow, '17 [2001:db8::2]:5001 -> [2001:db8::1]:53');
    assert.deepEqual(
      [record.ipVersion, record.packets, record.bytes, record.reversePackets, record.reverseBytes],
      [6, 2, 2 * 58, 1, 48],
    );
  });

  it('idle timeout: tick exports the flow into the ring and forgets it', () => {
    const nf = new NfHarness(flowMonitor, { idleTimeoutSeconds: 15 });
    nf.run([c2s(TcpFlag.Syn)], 0);
    nf.run([udp(1)], 10 * SEC);
    nf.instance.tick?.(15 * SEC - 1);
    assert.equal(monitor(nf).activeFlows(), 2);
    nf.instance.tick?.(15 * SEC);
    assert.equal(monitor(nf).activeFlows(), 1);
    const [ended] = monitor(nf).exported();
    assert.equal(ended.flow, `6 ${CLIENT}:40000 -> ${SERVER}:80`);
    assert.deepEqual([ended.endReason, ended.sequence, ended.packets], ['idle', 1, 1]);
    assert.deepEqual(
      monitor(nf)
        .flows()
        .map((f) => f.flow),
      [`17 ${CLIENT}:5001 -> ${SERVER}:53`],
      'the surviving flow is still found after the table is rebuilt',
    );
    nf.run([udp(1)], 20 * SEC);
    assert.equal(monitor(nf).flows()[0].packets, 2);
    assert.deepEqual(
      [nf.counters().flows_exported, nf.counters().flows_active, nf.counters().flows_created],
      [1, 1, 2],
    );
  });

  it('lazily ends an idle flow when its next packet comes before the tick; the sender starts the new record', () => {
    const nf = new NfHarness(flowMonitor, { idleTimeoutSeconds: 15 });
    nf.run([c2s(TcpFlag.Syn), c2s(TcpFlag.Syn)], 0);
    nf.run([s2c(TcpFlag.Rst)], 16 * SEC);
    const [ended] = monitor(nf).exported();
    assert.deepEqual([ended.packets, ended.reversePackets, ended.endReason], [2, 0, 'idle']);
    const [fresh] = monitor(nf).flows();
    assert.equal(fresh.flow, `6 ${SERVER}:80 -> ${CLIENT}:40000`);
    assert.deepEqual(
      [fresh.packets, fresh.reversePackets, fresh.tcpFlags, fresh.firstSeen],
      [1, 0, TcpFlag.Rst, 16 * SEC],
    );
  });

  it('active timeout: a long flow is exported every activeTimeout, then counted afresh', () => {
    const nf = new NfHarness(flowMonitor, { activeTimeoutSeconds: 10, idleTimeoutSeconds: 5 });
    for (let t = 0; t < 25; t++) {
      nf.run([udp(1)], t * SEC);
      nf.instance.tick?.(t * SEC + 0.5 * SEC);
    }
    const ended = monitor(nf).exported();
    assert.deepEqual(
      ended.map((r) => [r.endReason, r.packets, r.firstSeen / SEC, r.lastSeen / SEC]),
      [
        ['active', 10, 0, 9],
        ['active', 10, 10, 19],
      ],
    );
    assert.equal(monitor(nf).flows()[0].packets, 5);
    assert.equal(nf.counters().packets, 25);
  });

  it('keeps only the last exportRecords records, numbered', () => {
    const nf = new NfHarness(flowMonitor, { exportRecords: 3 });
    nf.run(
      Array.from({ length: 5 }, (_, i) => udp(i)),
      0,
    );
    nf.instance.tick?.(100 * SEC);
    assert.deepEqual(
      monitor(nf)
        .exported()
        .map((r) => r.sequence),
      [3, 4, 5],
    );
    assert.deepEqual(
      monitor(nf)
        .exported(4)
        .map((r) => r.sequence),
      [5],
    );
    assert.equal(nf.counters().flows_exported, 5);
  });

  it('a full table: new flows are sent on and counted, known ones still recorded', () => {
    const nf = new NfHarness(flowMonitor, { maxFlows: 2 });
    const results = nf.run([udp(1), udp(2), udp(3), udp(1), udp(3)], 0);
    assert.ok(results.every((r) => r.output === 'out'));
    assert.deepEqual(
      [nf.counters().table_full, nf.counters().packets, nf.counters().flows_active],
      [2, 3, 2],
    );
    assert.equal(nf.logs.length, 1);
    nf.instance.tick?.(60 * SEC);
    nf.run([udp(3)], 60 * SEC);
    assert.equal(monitor(nf).flows()[0].srcPort, 5003, 'room again after expiry');
  });

  it('passes frames it cannot record', () => {
    const nf = new NfHarness(flowMonitor, {});
    const arp = new Uint8Array(60);
    EthernetRepr.emit({ ...ETH, etherType: EtherType.Arp }, arp);
    const damaged = udp(1);
    damaged[14 + 10] ^= 1;
    const results = nf.run([arp, damaged, udp(1).subarray(0, 20)], 0);
    assert.ok(results.every((r) => r.output === 'out'));
    assert.equal(nf.counters().unrecorded, 3);
  });

  it('counts every recorded packet exactly once, active or exported', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(5), fc.boolean(), fc.nat(8), fc.boolean()), { maxLength: 80 }),
        (steps) => {
          const nf = new NfHarness(flowMonitor, {
            idleTimeoutSeconds: 3,
            activeTimeoutSeconds: 7,
            exportRecords: 1000,
          });
          let now = 0;
          for (const [flow, reverse, gap, tick] of steps) {
            now += gap * SEC;
            nf.run([reverse ? udp(flow, SERVER, CLIENT) : udp(flow)], now);
            if (tick) nf.instance.tick?.(now);
          }
          const records = [...monitor(nf).flows(), ...monitor(nf).exported()];
          const total = records.reduce((sum, r) => sum + r.packets + r.reversePackets, 0);
          assert.equal(total, steps.length);
          assert.equal(nf.counters().packets, steps.length);
          assert.equal(
            nf.counters().flows_created,
            nf.counters().flows_active + nf.counters().flows_exported,
          );
        },
      ),
      { seed: 3, numRuns: 200 },
    );
  });

  it('snapshot → restore gives an identical state, which goes on counting', () => {
    const config = { idleTimeoutSeconds: 15, exportRecords: 4 };
    const a = new NfHarness(flowMonitor, config);
    a.run([c2s(TcpFlag.Syn), s2c(TcpFlag.Syn | TcpFlag.Ack), udp(7, '2001:db8::1', '2001:db8::2')], 0);
    a.run([udp(1)], 10 * SEC);
    a.instance.tick?.(20 * SEC); // the TCP and IPv6 flows end
    a.run([udp(1), udp(2)], 21 * SEC);
    const state = structuredClone(a.instance.snapshot?.()) as FlowMonitorSnapshot;
    assert.deepEqual([state.active.firstSeen.length, state.exported.length, state.exportedTotal], [2, 2, 2]);
    const b = new NfHarness(flowMonitor, config);
    b.instance.restore?.(state);
    assert.deepEqual(b.instance.snapshot?.(), a.instance.snapshot?.());
    // A version 1 snapshot (active flows as records) restores to the same state.
    const v1 = new NfHarness(flowMonitor, config);
    v1.instance.restore?.({ ...state, version: 1, active: undefined, flows: monitor(a).flows() });
    assert.deepEqual(v1.instance.snapshot?.(), a.instance.snapshot?.());
    // Rows whose arrays disagree in length are refused whole.
    const bad = new NfHarness(flowMonitor, config);
    bad.instance.restore?.({ ...state, active: { ...state.active, lastSeen: new Float64Array(5) } });
    assert.equal(monitor(bad).activeFlows(), 0);
    for (const nf of [a, b]) {
      nf.run([udp(2)], 22 * SEC);
      nf.instance.tick?.(60 * SEC);
    }
    assert.deepEqual(b.instance.snapshot?.(), a.instance.snapshot?.());
    // Flows ending in one tick are exported in table order; 1–2 ended at 20 s, 3–4 at 60 s.
    const ended = monitor(b)
      .exported()
      .map((r) => [r.sequence ?? 0, r.srcPort, r.packets]);
    assert.deepEqual(
      ended.map((r) => r[0]),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      ended
        .slice(0, 2)
        .map((r) => r.slice(1))
        .sort((x, y) => x[0] - y[0]),
      [
        [5007, 1],
        [40000, 1],
      ],
    );
    assert.deepEqual(
      ended
        .slice(2)
        .map((r) => r.slice(1))
        .sort((x, y) => x[0] - y[0]),
      [
        [5001, 2],
        [5002, 2],
      ],
    );
    // A smaller ring keeps the newest records.
    const c = new NfHarness(flowMonitor, { exportRecords: 1 });
    c.instance.restore?.(structuredClone(a.instance.snapshot?.()));
    assert.deepEqual(
      monitor(c)
        .exported()
        .map((r) => r.sequence),
      [4],
    );
    const d = new NfHarness(flowMonitor, config);
    d.instance.restore?.({ version: 2 });
    assert.match(d.logs[0], /ignored a snapshot/);
  });

  it('rejects a bad configuration naming the field', () => {
    assert.throws(
      () => new NfHarness(flowMonitor, { idleTimeoutSeconds: 0 }),
      /idleTimeoutSeconds: must be ≥ 1/,
    );
    assert.throws(() => new NfHarness(flowMonitor, { maxFlows: 1.5 }), /maxFlows: must be an integer/);
    assert.throws(
      () => new NfHarness(flowMonitor, { exportRecords: 'many' }),
      /exportRecords: must be a number/,
    );
    assert.throws(() => new NfHarness(flowMonitor, { ipfix: true }), /ipfix: unknown field/);
  });

  it('never throws on random bytes or damaged frames, and sends every frame on unchanged', () => {
    const nf = new NfHarness(flowMonitor, { maxFlows: 8, exportRecords: 4, idleTimeoutSeconds: 1 });
    const seeds = [c2s(TcpFlag.Syn), udp(1, '2001:db8::1', '2001:db8::2')];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(100),
        fc.nat(1),
        fc.nat(255),
        fc.nat(5),
        (random, cut, which, flip, seconds) => {
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          const frames = [random, seeds[which].subarray(0, cut), flipped];
          nf.run(frames, seconds * SEC).forEach((result, i) => {
            assert.equal(result.output, 'out');
            assert.deepEqual(result.bytes, frames[i]);
          });
          nf.instance.tick?.(seconds * SEC);
        },
      ),
      { seed: 1, numRuns: 500 },
    );
    assert.ok(monitor(nf).activeFlows() <= 8);
  });
});
