/**
 * TCP window tracking (netfilter's tcp_in_window()): segments whose sequence or acknowledgment
 * number lies outside what the two ends have advertised are state invalid and counted
 * `ct_out_of_window`; in-window traffic of any shape passes; window scaling counts only when both
 * SYNs offer it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { TcpRepr } from '../../src/packet/tcp.js';
import { NfHarness } from '../../src/sdk/index.js';
import firewall, { type FirewallInstance } from './index.js';
import { TCP_STATE_NAMES } from './conntrack.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
const SYN = 0x02;
const ACK = 0x10;
const RST = 0x04;
const C = '10.0.0.1';
const SV = '192.0.2.10';

/** The stateful policy of netfilter setups: invalid dropped, established passes, new only to port 80. */
const STATEFUL = {
  default: 'drop',
  rules: [
    { action: 'drop', state: ['invalid'] },
    { action: 'accept', state: ['established', 'related'] },
    { action: 'accept', protocol: 'tcp', dstPort: '80', state: ['new'] },
  ],
};

interface Segment {
  fromClient: boolean;
  flags: number;
  seq: number;
  ack: number;
  window?: number;
  payload?: number;
  /** Window-scale option (shift count) on this segment. */
  wscale?: number;
}

function segment(s: Segment): Uint8Array {
  const [src, dst, srcPort, dstPort] = s.fromClient ? [C, SV, 40000, 80] : [SV, C, 80, 40000];
  const options = s.wscale === undefined ? new Uint8Array(0) : Uint8Array.of(1, 3, 3, s.wscale);
  const payload = s.payload ?? 0;
  const l4 = 20 + options.length + payload;
  const bytes = new Uint8Array(14 + 20 + l4);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src, dst, protocol: IpProtocol.Tcp, payloadLength: l4 }, bytes, 14);
  TcpRepr.emit(
    {
      srcPort,
      dstPort,
      seq: s.seq >>> 0,
      ack: s.ack >>> 0,
      flags: s.flags,
      window: s.window ?? 1000,
      urgentPointer: 0,
      options,
      payloadLength: payload,
    },
    bytes,
    34,
    pseudoHeaderSumV4(ipv4(src), ipv4(dst), IpProtocol.Tcp, l4),
  );
  return bytes;
}

function verdicts(nf: NfHarness<unknown>, segments: Segment[], now = 0): string[] {
  return nf.run(segments.map(segment), now).map((r) => r.output ?? `drop:${r.drop}`);
}

/** Client ISN 100, server ISN 5000, both windows 1000 unless given. */
function handshake(nf: NfHarness<unknown>, clientScale?: number, serverScale?: number): void {
  assert.deepEqual(
    verdicts(nf, [
      { fromClient: true, flags: SYN, seq: 100, ack: 0, wscale: clientScale },
      { fromClient: false, flags: SYN | ACK, seq: 5000, ack: 101, wscale: serverScale },
      { fromClient: true, flags: ACK, seq: 101, ack: 5001 },
    ]),
    ['out', 'out', 'out'],
  );
}

describe('firewall TCP window tracking', () => {
  it('refuses segments beyond the window, acks of unsent data and acks far behind; counts them', () => {
    const nf = new NfHarness(firewall, STATEFUL);
    handshake(nf);
    assert.deepEqual(
      verdicts(nf, [
        { fromClient: true, flags: ACK, seq: 101, ack: 5001, payload: 500 }, // in window
        { fromClient: true, flags: ACK, seq: 101 + 5000, ack: 5001, payload: 10 }, // past the server's window
        { fromClient: true, flags: ACK, seq: 601, ack: 5001 + 300, payload: 10 }, // acks data never sent
        { fromClient: false, flags: ACK, seq: 5001, ack: 601 - 70000 }, // ack far behind
        { fromClient: false, flags: ACK, seq: 5001, ack: 601, payload: 400 }, // in window
        { fromClient: true, flags: ACK, seq: 101, ack: 5401, payload: 100 }, // a retransmission: fine
        { fromClient: true, flags: RST, seq: 101 + 100000, ack: 0 }, // a blind reset out of window
      ]),
      ['out', 'drop:denied', 'drop:denied', 'drop:denied', 'out', 'out', 'drop:denied'],
    );
    const c = nf.counters();
    assert.equal(c.ct_out_of_window, 4);
    assert.equal(c.ct_invalid, 4);
    const ct = (nf.instance as FirewallInstance).conntrack;
    assert.equal(
      TCP_STATE_NAMES[ct.tcpState.find((s) => s !== 0) ?? 0],
      'established',
      'the blind RST closed nothing',
    );
    // A reset inside the window closes the connection.
    assert.deepEqual(verdicts(nf, [{ fromClient: true, flags: RST, seq: 601, ack: 0 }]), ['out']);
    assert.equal(TCP_STATE_NAMES[ct.tcpState.find((s) => s !== 0) ?? 0], 'close');
  });

  it('a SYN-ACK must acknowledge the SYN', () => {
    const nf = new NfHarness(firewall, STATEFUL);
    assert.deepEqual(
      verdicts(nf, [
        { fromClient: true, flags: SYN, seq: 100, ack: 0 },
        { fromClient: false, flags: SYN | ACK, seq: 5000, ack: 9999 },
        { fromClient: false, flags: SYN | ACK, seq: 5000, ack: 101 },
      ]),
      ['out', 'drop:denied', 'out'],
    );
  });

  it('scales windows only when both SYNs offer it (RFC 7323)', () => {
    // Server window 1000 << 7 = 128,000: data 100,000 ahead is in window with scaling on.
    const ahead: Segment = { fromClient: true, flags: ACK, seq: 101 + 100_000, ack: 5001, payload: 10 };
    const scaled = new NfHarness(firewall, STATEFUL);
    handshake(scaled, 7, 7);
    // The server's first ACK after the handshake carries its scaled window.
    assert.deepEqual(verdicts(scaled, [{ fromClient: false, flags: ACK, seq: 5001, ack: 101 }, ahead]), [
      'out',
      'out',
    ]);
    const oneSided = new NfHarness(firewall, STATEFUL);
    handshake(oneSided, 7, undefined);
    assert.deepEqual(verdicts(oneSided, [{ fromClient: false, flags: ACK, seq: 5001, ack: 101 }, ahead]), [
      'out',
      'drop:denied',
    ]);
  });

  it('passes every in-window conversation: random sizes, windows and acks (property)', () => {
    const step = fc.record({
      fromClient: fc.boolean(),
      payload: fc.nat(1400),
      window: fc.integer({ min: 1500, max: 65535 }),
      ackAll: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), fc.nat(), fc.nat(), (steps, clientIsn, serverIsn) => {
        const nf = new NfHarness(firewall, STATEFUL);
        // next[0] client's next seq, next[1] server's; acked[d]: what d has acknowledged of the other.
        const next = [(clientIsn + 1) | 0, (serverIsn + 1) | 0];
        const acked = [next[1], next[0]];
        assert.deepEqual(
          verdicts(nf, [
            { fromClient: true, flags: SYN, seq: clientIsn, ack: 0, window: 65535 },
            { fromClient: false, flags: SYN | ACK, seq: serverIsn, ack: next[0], window: 65535 },
            { fromClient: true, flags: ACK, seq: next[0], ack: next[1], window: 65535 },
          ]),
          ['out', 'out', 'out'],
        );
        const windowOf = [65535, 65535];
        for (const s of steps) {
          const d = s.fromClient ? 0 : 1;
          const o = 1 - d;
          // Never send past what the peer's last window allows.
          const room = (acked[o] + windowOf[o] - next[d]) | 0;
          const payload = Math.max(0, Math.min(s.payload, room));
          const ack = s.ackAll ? next[o] : acked[d];
          const [v] = verdicts(nf, [
            { fromClient: s.fromClient, flags: ACK, seq: next[d], ack, window: s.window, payload },
          ]);
          assert.equal(v, 'out', JSON.stringify({ s, next, acked }));
          next[d] = (next[d] + payload) | 0;
          acked[d] = ack;
          windowOf[d] = s.window;
        }
        assert.equal(nf.counters().ct_out_of_window, 0);
      }),
      { seed: 793, numRuns: 200 },
    );
  });
});
