import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { Icmpv4Repr } from '../../src/packet/icmpv4.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { NfHarness } from '../../src/sdk/index.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { Conntrack, TCP_STATE_NAMES, TIMEOUT_SLOTS } from './conntrack.js';
import firewall, { type FirewallInstance } from './index.js';
import { ACK, FIN, RST, SYN, tcp, udp } from './test-frames.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
const S = 1e9; // ns per second

function icmp(
  src: string,
  dst: string,
  type: number,
  code: number,
  quote: Uint8Array | null,
  id = 7,
): Uint8Array {
  const q = quote ?? new Uint8Array(0);
  const bytes = new Uint8Array(14 + 20 + 8 + q.length);
  EthernetRepr.emit({ ...ETH, etherType: EtherType.Ipv4 }, bytes);
  Ipv4Repr.emit({ src, dst, protocol: IpProtocol.Icmp, payloadLength: 8 + q.length }, bytes, 14);
  bytes.set(q, 42);
  Icmpv4Repr.emit({ type, code, identifier: quote ? 0 : id, sequence: quote ? 0 : 1, payload: q }, bytes, 34);
  return bytes;
}

/** The stateful policy: established/related in, new only to TCP 80 and UDP 53 and pings, invalid out. */
const STATEFUL = {
  default: 'drop',
  rules: [
    { action: 'drop', state: ['invalid'] },
    { action: 'accept', state: ['established', 'related'] },
    { action: 'accept', protocol: 'tcp', dstPort: '80', state: ['new'] },
    { action: 'accept', protocol: 'udp', dstPort: '53', state: ['new'] },
    { action: 'accept', protocol: 'icmp', icmpType: '8', state: ['new'] },
  ],
};

const C = '10.0.0.1';
const SV = '192.0.2.10';

function run(nf: NfHarness<unknown>, frames: Uint8Array[], now: number): string[] {
  return nf.run(frames, now).map((r) => r.output ?? `drop:${r.drop}`);
}

function stateOf(nf: NfHarness<unknown>, frame: Uint8Array, now: number): string {
  void frame;
  void now;
  const ct = (nf.instance as FirewallInstance).conntrack;
  for (let e = 0; e < ct.capacity; e++) if (ct.flags[e] !== 0) return TCP_STATE_NAMES[ct.tcpState[e]];
  return 'none';
}

describe('firewall connection tracking', () => {
  it('follows a TCP handshake and teardown through netfilter states', () => {
    // A small table: tick() sweeps at most 8192 entries per call.
    const nf = new NfHarness(firewall, { ...STATEFUL, maxConnections: 1024 });
    const fw = nf.instance as FirewallInstance;
    const seen: string[] = [];
    const step = (frame: Uint8Array, t: number, expect: string) => {
      assert.deepEqual(run(nf, [frame], t * S), [expect]);
      seen.push(stateOf(nf, frame, t));
    };
    step(tcp(C, SV, 40000, 80, SYN, 100), 0, 'out');
    step(tcp(SV, C, 80, 40000, SYN | ACK, 500, 101), 1, 'out');
    step(tcp(C, SV, 40000, 80, ACK, 101, 501), 2, 'out');
    step(tcp(C, SV, 40000, 80, ACK, 101, 501, 10), 3, 'out');
    step(tcp(C, SV, 40000, 80, FIN | ACK, 111, 501), 4, 'out');
    step(tcp(SV, C, 80, 40000, ACK, 501, 112), 5, 'out');
    step(tcp(SV, C, 80, 40000, FIN | ACK, 501, 112), 6, 'out');
    step(tcp(C, SV, 40000, 80, ACK, 112, 502), 7, 'out');
    assert.deepEqual(seen, [
      'syn_sent',
      'syn_recv',
      'established',
      'established',
      'fin_wait',
      'close_wait',
      'last_ack',
      'time_wait',
    ]);
    assert.equal(fw.conntrack.count, 1);
    // TIME_WAIT lasts 120 s: a tick at 7 + 119 s keeps it, at 7 + 120 s removes it.
    fw.tick?.(126 * S);
    assert.equal(fw.conntrack.count, 1);
    fw.tick?.(127 * S);
    assert.equal(fw.conntrack.count, 0);
    assert.equal(nf.counters().ct_expired, 1);
    assert.equal(nf.counters().ct_created, 1);
  });

  it('drops invalid segments: no SYN first, a SYN-ACK from the client, an ACK for an unknown flow', () => {
    const nf = new NfHarness(firewall, STATEFUL);
    assert.deepEqual(
      run(
        nf,
        [
          tcp(C, SV, 40001, 80, ACK), // mid-stream: no loose pick-up
          tcp(C, SV, 40002, 80, SYN),
          tcp(C, SV, 40002, 80, SYN | ACK), // SYN-ACK in the original direction
          tcp(C, SV, 40003, 80, FIN),
        ],
        0,
      ),
      ['drop:denied', 'out', 'drop:denied', 'drop:denied'],
    );
    assert.equal(nf.counters().ct_invalid, 3);
    assert.equal(nf.counters().ct_created, 1);
  });

  it('times out a SYN_SENT connection, and a RST closes one (10 s in CLOSE)', () => {
    const nf = new NfHarness(firewall, { ...STATEFUL, timeoutScale: 0.5 });
    const fw = nf.instance as FirewallInstance;
    run(nf, [tcp(C, SV, 40000, 80, SYN)], 0);
    // SYN_SENT is 120 s, scaled by 0.5 → 60 s: at 59.9 s the SYN-ACK is established, at 60 s it is not.
    const synAck = tcp(SV, C, 80, 40000, SYN | ACK, 1, 1001);
    assert.deepEqual(run(nf, [synAck], 60 * S), ['drop:denied']); // entry expired: a SYN-ACK for nothing
    run(nf, [tcp(C, SV, 40001, 80, SYN)], 0);
    assert.deepEqual(run(nf, [tcp(SV, C, 80, 40001, SYN | ACK, 1, 1001)], 59.9 * S), ['out']);
    assert.deepEqual(run(nf, [tcp(SV, C, 80, 40001, RST, 2)], 60 * S), ['out']);
    // CLOSE: 10 s × 0.5; a new SYN on the closed flow opens a new connection.
    assert.deepEqual(run(nf, [tcp(C, SV, 40001, 80, SYN)], 61 * S), ['out']);
    assert.equal(fw.conntrack.count, 1);
    assert.equal(stateOf(nf, new Uint8Array(0), 0), 'syn_sent');
  });

  it('tracks UDP (unreplied 30 s, replied 120 s) and ICMP echo; replies are established', () => {
    const nf = new NfHarness(firewall, STATEFUL);
    const q = udp(C, SV, 5000, 53);
    const a = udp(SV, C, 53, 5000);
    assert.deepEqual(run(nf, [a], 0), ['drop:denied']); // an answer with no question: new, not allowed
    assert.deepEqual(run(nf, [q], 0), ['out']);
    assert.deepEqual(run(nf, [a], 29.9 * S), ['out']);
    assert.deepEqual(run(nf, [a], (29.9 + 119.9) * S), ['out']); // replied: 120 s
    assert.deepEqual(run(nf, [a], (29.9 + 119.9 + 120) * S), ['drop:denied']);
    const unreplied = new NfHarness(firewall, STATEFUL);
    run(unreplied, [q], 0);
    assert.deepEqual(run(unreplied, [a], 30 * S), ['drop:denied']); // unreplied: 30 s
    // ICMP echo: the request opens, the reply is established; an unsolicited reply is invalid.
    const ping = new NfHarness(firewall, STATEFUL);
    assert.deepEqual(
      run(ping, [icmp(SV, C, 0, 0, null), icmp(C, SV, 8, 0, null), icmp(SV, C, 0, 0, null)], 0),
      ['drop:denied', 'out', 'out'],
    );
    assert.equal(ping.counters().ct_invalid, 1);
  });

  it('ICMP errors quoting a tracked connection are related; others invalid', () => {
    const nf = new NfHarness(firewall, STATEFUL);
    const out = udp(C, SV, 5000, 53);
    run(nf, [out], 0);
    const quote = out.subarray(14, 14 + 28); // the IPv4 header and UDP header as sent
    const other = udp(C, SV, 5001, 53).subarray(14, 14 + 28);
    assert.deepEqual(
      run(
        nf,
        [icmp('198.51.100.1', C, 3, 3, quote.slice()), icmp('198.51.100.1', C, 3, 3, other.slice())],
        S,
      ),
      ['out', 'drop:denied'],
    );
    assert.equal(nf.counters().ct_invalid, 1);
  });

  it('a full table evicts only un-replied entries, oldest first, and counts the rest (C1 shape)', () => {
    const N = 1000;
    const nf = new NfHarness(firewall, { ...STATEFUL, maxConnections: N });
    const fw = nf.instance as FirewallInstance;
    const client = (i: number) => `10.1.${i >> 8}.${i & 255}`;
    // N established connections (three-way handshakes).
    const syns: Uint8Array[] = [];
    const synAcks: Uint8Array[] = [];
    const acks: Uint8Array[] = [];
    for (let i = 0; i < N; i++) {
      syns.push(tcp(client(i), SV, 1024, 80, SYN, 1));
      synAcks.push(tcp(SV, client(i), 80, 1024, SYN | ACK, 1, 2));
      acks.push(tcp(client(i), SV, 1024, 80, ACK, 2, 2));
    }
    for (const burst of [syns, synAcks, acks]) {
      assert.ok(run(nf, burst, S).every((v) => v === 'out'));
      assert.ok(fw.conntrack.count <= N);
    }
    assert.equal(fw.conntrack.count, N);
    // N + 500 SYN-only flows: nothing is un-replied, so every one is refused.
    const flood: Uint8Array[] = [];
    for (let i = 0; i < N + 500; i++) flood.push(tcp(`10.2.${i >> 8}.${i & 255}`, SV, 2000, 80, SYN));
    const floodVerdicts = run(nf, flood, 2 * S);
    assert.equal(floodVerdicts.filter((v) => v === 'drop:conntrack_full').length, N + 500);
    assert.equal(fw.conntrack.count, N);
    // The established flows lose nothing.
    assert.ok(run(nf, acks, 3 * S).every((v) => v === 'out'));
    // Close 10 of them with RST: still entries (CLOSE) and replied, so still not evictable.
    const resets = acks.slice(0, 10).map((_, i) => tcp(client(i), SV, 1024, 80, RST, 2));
    assert.ok(run(nf, resets, 4 * S).every((v) => v === 'out'));
    // After the 10 s CLOSE timeout the sweep frees 10 slots; 10 new handshakes then fit.
    fw.tick?.(14 * S);
    assert.equal(fw.conntrack.count, N - 10);
    const fresh = Array.from({ length: 10 }, (_, i) => tcp(`10.3.0.${i}`, SV, 3000, 80, SYN));
    assert.ok(run(nf, fresh, 15 * S).every((v) => v === 'out'));
    assert.equal(fw.conntrack.count, N);
    // Those 10 are un-replied: 5 more SYNs evict the 5 oldest of them, and nothing else.
    const more = Array.from({ length: 5 }, (_, i) => tcp(`10.4.0.${i}`, SV, 3000, 80, SYN));
    assert.ok(run(nf, more, 16 * S).every((v) => v === 'out'));
    assert.equal(fw.conntrack.count, N);
    assert.equal(fw.conntrack.unrepliedCount(), 10);
    const c = nf.counters();
    assert.equal(c.conntrack_full, N + 500);
    assert.equal(c.ct_evicted, 5);
    assert.equal(c.ct_created, N + 15);
    // The evicted ones are the oldest: their SYN-ACK now finds nothing (invalid), the newer one is fine.
    assert.deepEqual(
      run(
        nf,
        [
          tcp(SV, '10.3.0.0', 80, 3000, SYN | ACK, 1, 1001),
          tcp(SV, '10.3.0.9', 80, 3000, SYN | ACK, 1, 1001),
        ],
        17 * S,
      ),
      ['drop:denied', 'out'],
    );
  });

  it('snapshot → restore gives an identical state digest, and the restored table works', () => {
    const nf = new NfHarness(firewall, { ...STATEFUL, maxConnections: 64 });
    run(nf, [tcp(C, SV, 40000, 80, SYN), tcp(SV, C, 80, 40000, SYN | ACK, 1, 1001), udp(C, SV, 5000, 53)], 0);
    run(nf, [tcp(C, SV, 40009, 80, SYN)], 0);
    const a = nf.instance as FirewallInstance;
    const b = new NfHarness(firewall, { ...STATEFUL, maxConnections: 64 });
    assert.notEqual(a.digest(), (b.instance as FirewallInstance).digest());
    b.instance.restore?.(structuredClone(a.snapshot?.()));
    assert.equal((b.instance as FirewallInstance).digest(), a.digest());
    assert.equal((b.instance as FirewallInstance).conntrack.count, 3);
    assert.deepEqual(run(b, [tcp(C, SV, 40000, 80, ACK, 1001, 2)], S), ['out']);
    // A snapshot of a different capacity is refused and logged.
    const c = new NfHarness(firewall, { ...STATEFUL, maxConnections: 32 });
    c.instance.restore?.(a.snapshot?.());
    assert.equal((c.instance as FirewallInstance).conntrack.count, 0);
    assert.match(c.logs[0], /capacity differs/);
  });
});

describe('conntrack snapshots', () => {
  const timeouts = new Float64Array(TIMEOUT_SLOTS).fill(30 * S);
  /** Random inserts, replies, removals and sweeps on `ct`, the same for the same seed. */
  function churn(ct: Conntrack, seed: number, steps: number): void {
    let x = seed >>> 0 || 1;
    const rand = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const key = new FlowKey();
    for (let i = 0; i < steps; i++) {
      const op = rand(10);
      if (op < 6) {
        key.setV4(0x0a000000 + rand(64), 0xc0a80001, IpProtocol.Udp, 1000 + rand(8), 53);
        ct.insert(key, key.symmetricHash(), (1 + rand(100)) * S, 0);
      } else if (op < 8) {
        const e = rand(ct.capacity);
        if (ct.flags[e] !== 0) ct.remove(e);
      } else if (op < 9) {
        const e = rand(ct.capacity);
        if (ct.flags[e] !== 0 && !ct.replied(e)) ct.markReplied(e);
      } else ct.sweep(rand(100) * S);
    }
  }

  it('restore a state with the same digest that goes on to the same digests (random churn)', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const a = new Conntrack(97, timeouts);
      churn(a, seed, 400);
      const b = new Conntrack(97, timeouts);
      assert.ok(b.restore(structuredClone(a.snapshot())));
      assert.equal(b.digest(), a.digest(), `seed ${seed}: restored`);
      assert.equal(b.count, a.count);
      churn(a, seed + 100, 200);
      churn(b, seed + 100, 200);
      assert.equal(b.digest(), a.digest(), `seed ${seed}: after more churn`);
    }
  });

  it('are the size of the connections held, not of the capacity', () => {
    const ct = new Conntrack(4_194_304, timeouts);
    churn(ct, 9, 40);
    const state = ct.snapshot();
    const bytes = Object.values(state).reduce(
      (sum: number, v) => sum + (ArrayBuffer.isView(v) ? v.byteLength : 0),
      0,
    );
    // ~24 connections of ~130 bytes of rows each, and a free list of a few runs.
    assert.ok(bytes < 8192, `${bytes} bytes for ${ct.count} connections`);
    const restored = new Conntrack(4_194_304, timeouts);
    assert.ok(restored.restore(state));
    assert.equal(restored.digest(), ct.digest());
  });

  it('of the earlier whole-array form still restore; malformed ones change nothing', () => {
    const a = new Conntrack(64, timeouts);
    churn(a, 11, 300);
    const arrays = a as unknown as Record<string, ArrayLike<number> & { slice(): unknown }>;
    a.snapshot(); // fills the meta words
    const whole: Record<string, unknown> = { capacity: 64 };
    for (const name of ['keys', 'hashOf', 'next', 'head', 'tcpState', 'flags', 'expires', 'tdEnd'])
      whole[name] = arrays[name].slice();
    for (const name of ['tdMaxEnd', 'tdMaxWin', 'tdScale', 'tdFlags', 'uPrev', 'uNext', 'meta'])
      whole[name] = arrays[name].slice();
    const b = new Conntrack(64, timeouts);
    assert.ok(b.restore(whole));
    assert.equal(b.digest(), a.digest());

    const c = new Conntrack(64, timeouts);
    churn(c, 12, 50);
    const before = c.digest();
    const good = a.snapshot();
    const broken = [
      { ...good, used: new Int32Array([70]) },
      { ...good, freeRuns: new Int32Array([0, 65]) },
      { ...good, keys: new Uint32Array(3) },
      { ...good, used: (good.used as Int32Array).slice().reverse() },
    ];
    for (const state of broken) assert.equal(c.restore(state), false);
    assert.equal(c.digest(), before, 'a refused snapshot changed nothing');
  });
});
