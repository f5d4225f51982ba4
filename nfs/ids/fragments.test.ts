import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { idsHarness } from './test-harness.js';
import type { IdsInstance } from './index.js';
import { FragmentResult, FragmentTable } from '../../src/packet/fragment-table.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { ACK, Conversation, ipFragment, ipFragments, RST, udpPacket } from './test-frames.js';

const HOST_A = '10.0.0.1';
const HOST_B = '10.0.0.2';
const SIGNATURE = 'EVIL-SIGNATURE-SPLIT-ACROSS-FRAGMENTS';

/** Small tables: creating an instance is cheap. */

const harness = idsHarness;

const UDP_RULE = `drop udp any any -> any 9999 (msg:"split"; content:"${SIGNATURE}"; sid:7;)`;
const TCP_RULE = `drop tcp any any -> any 80 (msg:"split tcp"; content:"${SIGNATURE}"; sid:8;)`;

/** A UDP datagram whose signature starts at payload offset 30: 8 + 30 = byte 38 of the IP payload. */
function udpWithSignature(src = HOST_A, dst = HOST_B, padding = 30): Uint8Array {
  return udpPacket(src, dst, 4000, 9999, `${'a'.repeat(padding)}${SIGNATURE}${'z'.repeat(40)}`);
}

function sids(nf: { ids: IdsInstance }): number[] {
  return nf.ids.alerts().map((a) => a.signature_id);
}

/** All orders of `items` (small arrays only). */
function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, k) =>
    permutations([...items.slice(0, k), ...items.slice(k + 1)]).map((rest) => [item, ...rest]),
  );
}

describe('ids: IPv4 fragments', () => {
  it('an unfragmented copy alerts; the same datagram in fragments is no longer passed uninspected', () => {
    const whole = udpWithSignature();
    const nf = harness([UDP_RULE]);
    nf.run([whole]);
    assert.deepEqual(sids(nf), [7]);
    const split = harness([UDP_RULE]);
    // Cut inside the signature (bytes 38 … 75 of the IP payload).
    const out = split.run(ipFragments(whole, [48]));
    assert.deepEqual(sids(split), [7]);
    assert.ok(
      out.every((r) => r.output === 'out'),
      'alert mode forwards the fragments as they are',
    );
    assert.deepEqual(out[0].bytes, ipFragments(whole, [48])[0]);
    const counters = split.counters();
    assert.equal(counters.fragments, 2);
    assert.equal(counters.fragments_reassembled, 1);
    assert.equal(counters.fragments_active, 0);
    assert.equal(counters.packets, 1, 'the datagram is inspected once, as one packet');
    const alert = split.ids.alerts()[0];
    assert.equal(alert.src_port, 4000);
    assert.equal(alert.dest_port, 9999);
    assert.equal(alert.proto, 'UDP');
  });

  it('across 2 and 3 fragments, in every order and with duplicates: exactly one alert', () => {
    const whole = udpWithSignature();
    for (const cuts of [[48], [40, 56], [8, 64]]) {
      const frags = ipFragments(whole, cuts);
      const orders = permutations(frags.map((_, k) => k));
      for (const order of orders) {
        const nf = harness([UDP_RULE]);
        nf.run(order.map((k) => frags[k]));
        assert.deepEqual(sids(nf), [7], `cuts ${cuts.join(',')} order ${order.join(',')}`);
      }
      // Each fragment but the last of the order sent twice, before the datagram completes.
      for (const order of orders) {
        const sent = order.flatMap((k, n) => (n + 1 < order.length ? [frags[k], frags[k]] : [frags[k]]));
        const nf = harness([UDP_RULE]);
        nf.run(sent);
        assert.deepEqual(sids(nf), [7], `duplicated, cuts ${cuts.join(',')} order ${order.join(',')}`);
        assert.equal(nf.counters().fragment_overlaps, order.length - 1);
        assert.equal(nf.counters().fragment_overlap_conflict, 0);
      }
    }
  });

  it('a fragment without the signature half alerts nothing; two datagrams with different ids do not mix', () => {
    const whole = udpWithSignature();
    const [first] = ipFragments(whole, [48], 1);
    const [, second] = ipFragments(whole, [48], 2);
    const nf = harness([UDP_RULE]);
    nf.run([first, second]);
    assert.deepEqual(sids(nf), []);
    assert.equal(nf.counters().fragments_active, 2);
    // Another source with the same id is another datagram too.
    const [, otherSource] = ipFragments(udpWithSignature('10.0.0.9'), [48], 1);
    nf.run([otherSource]);
    assert.deepEqual(sids(nf), []);
    assert.equal(nf.counters().fragments_active, 3);
  });

  it('prevent mode drops the fragment that completes the datagram, whichever it is', () => {
    const whole = udpWithSignature();
    const frags = ipFragments(whole, [40, 56]);
    for (const order of permutations([0, 1, 2])) {
      const nf = harness([UDP_RULE], { mode: 'prevent' });
      const out = nf.run(order.map((k) => frags[k]));
      assert.deepEqual(
        out.map((r) => r.drop ?? r.output),
        ['out', 'out', 'signature'],
        `order ${order.join(',')}`,
      );
      assert.equal(nf.ids.alerts()[0].action, 'blocked');
      assert.equal(nf.counters().dropped, 1);
    }
  });

  it('TCP: a signature split across IP fragments and TCP segments alerts once; prevent resets the flow', () => {
    const cut = 20;
    for (const mode of ['alert', 'prevent'] as const) {
      const nf = harness([TCP_RULE], { mode });
      const c = new Conversation(HOST_A, HOST_B);
      const part1 = `GET /${SIGNATURE.slice(0, cut)}`;
      const part2 = `${SIGNATURE.slice(cut)} HTTP/1.1\r\n\r\n`;
      // Each segment in 2 IP fragments (20 TCP header bytes + 8 payload bytes, then the rest), the
      // second segment's fragments out of order.
      const seg1 = ipFragments(c.data(0, 0, part1), [24], 1);
      const seg2 = ipFragments(c.data(0, part1.length, part2), [32], 2);
      const out = nf.run([...c.handshake(), ...seg1, seg2[1], seg2[0], c.data(0, 100, 'more')]);
      assert.deepEqual(sids(nf), [8], mode);
      assert.equal(nf.counters().fragments_reassembled, 2);
      assert.equal(nf.counters().overlap_conflicts, 0);
      if (mode === 'alert') {
        assert.ok(out.every((r) => r.output === 'out'));
        continue;
      }
      // The completing fragment (seg2[0]) became a RST to its sender; the flow is blocked.
      const reset = out[6];
      assert.equal(reset.output, 'out');
      assert.equal(reset.bytes.length, 54);
      assert.equal(reset.bytes[14 + 20 + 13] & RST, RST);
      assert.deepEqual([...reset.bytes.subarray(26, 30)], [10, 0, 0, 2], 'from the server side');
      assert.equal(out[7].drop, 'blocked_flow');
      assert.equal(nf.counters().resets, 1);
    }
  });

  it('TCP fragments of a segment split across TCP segments too (reassembly feeds the stream table)', () => {
    const nf = harness([TCP_RULE]);
    const c = new Conversation(HOST_A, HOST_B);
    const a = SIGNATURE.slice(0, 10);
    const b = SIGNATURE.slice(10);
    // Segment 2 arrives (fragmented) before segment 1: the stream holds it, then delivers both.
    nf.run([...c.handshake(), ...ipFragments(c.data(0, a.length, b), [24]), c.data(0, 0, a)]);
    assert.deepEqual(sids(nf), [8]);
    assert.equal(nf.counters().segments_held, 1);
  });

  it('overlapping fragments with different bytes are counted; first wins; prevent drops the conflicting one', () => {
    const whole = udpWithSignature();
    const [f0, f1, f2] = ipFragments(whole, [40, 56]);
    const benign = 'b'.repeat(16);
    const conflicting = ipFragment(whole, 40, 16, { data: benign });
    for (const mode of ['alert', 'prevent'] as const) {
      // The evil copy first: it wins, the alert is raised; the benign copy is counted.
      const nf = harness([UDP_RULE], { mode });
      const out = nf.run([f0, f1, conflicting, f2]);
      assert.deepEqual(sids(nf), [7], mode);
      assert.equal(nf.counters().fragment_overlap_conflict, 1);
      assert.equal(nf.counters().fragment_overlaps, 1);
      assert.equal(out[2].drop ?? out[2].output, mode === 'prevent' ? 'fragment_overlap_conflict' : 'out');
      // The benign copy first: no alert (what was inspected is what the receiver may get), but
      // the later evil copy is counted — and in prevent mode never reaches the receiver.
      const nf2 = harness([UDP_RULE], { mode });
      const out2 = nf2.run([f0, conflicting, f1, f2]);
      assert.deepEqual(sids(nf2), [], mode);
      assert.equal(nf2.counters().fragment_overlap_conflict, 1);
      assert.equal(out2[2].drop ?? out2[2].output, mode === 'prevent' ? 'fragment_overlap_conflict' : 'out');
    }
  });

  it('tiny fragments (RFC 1858) are counted and reassembled; prevent mode drops them', () => {
    const c = new Conversation(HOST_A, HOST_B);
    const segment = c.data(0, 0, `xx${SIGNATURE}`);
    for (const mode of ['alert', 'prevent'] as const) {
      const nf = harness([TCP_RULE], { mode });
      // The first fragment holds 16 of the 20 TCP header bytes.
      const out = nf.run([...c.handshake(), ...ipFragments(segment, [16])]);
      assert.equal(nf.counters().fragment_tiny, 1, mode);
      assert.equal(nf.counters().malformed, 0);
      assert.deepEqual(sids(nf), [8], 'the datagram is inspected all the same');
      assert.equal(out[3].drop ?? out[3].output, mode === 'prevent' ? 'fragment_tiny' : 'out');
    }
    // A TCP fragment at offset 8 (the flags rewrite of RFC 1858 §3.2) is tiny too.
    const nf = harness([TCP_RULE], { mode: 'prevent' });
    const out = nf.run([ipFragment(segment, 8, 16, { more: true })]);
    assert.equal(out[0].drop, 'fragment_tiny');
  });

  it('oversize (past 65535) and inconsistent fragments: counted, dropped in prevent mode, never thrown on', () => {
    const whole = udpWithSignature();
    const nf = harness([UDP_RULE], { mode: 'prevent' });
    const out = nf.run([
      ipFragment(whole, 65528, 16, { more: false, id: 1, data: 'x'.repeat(16) }), // ends at 65544
      ipFragment(whole, 8, 12, { more: true, id: 2 }), // not a multiple of 8 before the last
      ipFragment(whole, 48, 16, { more: false, id: 3 }), // the end is 64 …
      ipFragment(whole, 64, 16, { more: true, id: 3 }), // … data past it: the datagram is discarded
    ]);
    assert.deepEqual(
      out.map((r) => r.drop ?? r.output),
      ['fragment_oversize', 'fragment_bad', 'out', 'fragment_bad'],
    );
    const counters = nf.counters();
    assert.equal(counters.fragment_oversize, 1);
    assert.equal(counters.fragment_bad, 2);
    assert.equal(counters.fragments_active, 0);
  });

  it('many half datagrams: the table and the byte budget stay bounded and count evictions', () => {
    const whole = udpPacket(HOST_A, HOST_B, 4000, 9999, 'p'.repeat(3000));
    const nf = harness([UDP_RULE], { maxFragmentedDatagrams: 32, fragmentBytes: 65536 });
    const halves: Uint8Array[] = [];
    for (let id = 0; id < 2000; id++) halves.push(ipFragment(whole, 0, 1480, { id }));
    for (let k = 0; k < halves.length; k += 200) nf.run(halves.slice(k, k + 200));
    const counters = nf.counters();
    assert.equal(counters.fragments, 2000);
    // 64 chunks of 1 KiB and 2 per half: at most 32 datagrams either way.
    assert.ok(counters.fragments_active <= 32);
    assert.equal(counters.fragments_evicted, 2000 - counters.fragments_active);
    // A new fragmented datagram is still inspected.
    nf.run(ipFragments(udpWithSignature(), [48], 0xbeef));
    assert.deepEqual(sids(nf), [7]);
    // The byte budget alone: 1 datagram over 64 KiB of chunks is given up, not crashed on.
    const big = harness([UDP_RULE], { maxFragmentedDatagrams: 1024, fragmentBytes: 65536 });
    for (let id = 0; id < 100; id++) big.run([ipFragment(whole, 0, 1480, { id })]);
    assert.ok(big.counters().fragments_active <= 32);
    assert.equal(big.counters().fragments_evicted, 100 - big.counters().fragments_active);
  });

  it('a timeout frees the entry (injected clock); a fragment after it starts a new datagram', () => {
    const whole = udpWithSignature();
    const [f0, f1] = ipFragments(whole, [48]);
    const nf = harness([UDP_RULE], { fragmentTimeoutSeconds: 60 });
    nf.run([f0], 0);
    nf.tick(59e9);
    assert.equal(nf.counters().fragments_active, 1);
    nf.tick(60e9);
    assert.equal(nf.counters().fragments_active, 0);
    assert.equal(nf.counters().fragments_expired, 1);
    nf.run([f1], 61e9);
    assert.deepEqual(sids(nf), [], 'the first half is gone');
    assert.equal(nf.counters().fragments_active, 1);
    // Within the timeout, fragments far apart in time still reassemble.
    const slow = harness([UDP_RULE], { fragmentTimeoutSeconds: 60 });
    slow.run([f1], 0);
    slow.tick(30e9);
    slow.run([f0], 45e9);
    assert.deepEqual(sids(slow), [7]);
  });

  it('a datagram of a bad checksum reassembles into a malformed packet: counted, dropped in prevent mode', () => {
    const whole = udpWithSignature();
    whole[whole.length - 1] ^= 0xff; // the UDP checksum no longer matches
    const nf = harness([UDP_RULE], { mode: 'prevent' });
    const out = nf.run(ipFragments(whole, [48]));
    assert.deepEqual(
      out.map((r) => r.drop ?? r.output),
      ['out', 'malformed'],
    );
    assert.deepEqual(sids(nf), []);
  });
});

describe('ids: IPv6 fragments', () => {
  it('a signature split across IPv6 fragments alerts once, in any order; prevent drops the last one in', () => {
    const whole = udpWithSignature('2001:db8::1', '2001:db8::2');
    const frags = ipFragments(whole, [40, 56], 0x12345678);
    for (const order of permutations([0, 1, 2])) {
      const nf = harness([UDP_RULE], { mode: 'prevent' });
      const out = nf.run(order.map((k) => frags[k]));
      assert.deepEqual(sids(nf), [7], `order ${order.join(',')}`);
      assert.deepEqual(
        out.map((r) => r.drop ?? r.output),
        ['out', 'out', 'signature'],
      );
      assert.equal(nf.ids.alerts()[0].src_ip, '2001:db8::1');
    }
  });

  it('TCP over IPv6 fragments goes through the stream table', () => {
    const nf = harness([TCP_RULE]);
    const c = new Conversation('2001:db8::1', '2001:db8::2');
    const a = SIGNATURE.slice(0, 10);
    nf.run([
      ...c.handshake(),
      ...ipFragments(c.data(0, 0, `x${a}`), [24]),
      ...ipFragments(c.data(0, a.length + 1, SIGNATURE.slice(10), ACK), [24]).reverse(),
    ]);
    assert.deepEqual(sids(nf), [8]);
    assert.equal(nf.counters().fragments_reassembled, 2);
  });
});

describe('ids: fragment table', () => {
  it('refuses inconsistent fragments and frees every chunk it took', () => {
    const table = new FragmentTable({
      maxDatagrams: 4,
      bytes: 8192,
      datagramBytes: 65535,
      rejectConflicts: false,
    });
    const key = new FlowKey();
    key.setV4(1, 2, 17, 0, 9);
    const data = new Uint8Array(4096).fill(7);
    const add = (offset: number, length: number, more: boolean): number =>
      table.add(key, 0, offset, more, data, 0, length, 0, 0, 0, -1, 0);
    assert.equal(add(1024, 1024, true), FragmentResult.Held);
    assert.equal(add(0, 0, true), FragmentResult.Bad);
    assert.equal(add(2048, 100, false), FragmentResult.Held);
    assert.equal(add(3000, 16, true), FragmentResult.Bad, 'past the end: the datagram is discarded');
    assert.equal(table.size, 0);
    assert.equal(table.chunksUsed, 0);
    assert.equal(add(0, 2048, true), FragmentResult.Held);
    assert.equal(add(2048, 6, false), FragmentResult.Complete);
    assert.equal(table.outLength, 2054);
    assert.equal(table.chunksUsed, 0);
  });
});

describe('ids: fragment table properties', () => {
  it('any cut, order and duplication of a datagram completes it once, byte for byte, and frees every chunk', () => {
    const table = new FragmentTable({
      maxDatagrams: 8,
      bytes: 1 << 17,
      datagramBytes: 65535,
      rejectConflicts: true,
    });
    const key = new FlowKey();
    const header = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 5000 }),
        fc.array(fc.nat(700), { maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
        fc.nat(0xffff),
        (payload, rawCuts, picks, id) => {
          key.setV4(0x0a000001, 0x0a000002, 17, 0, id);
          const cuts = [
            ...new Set(rawCuts.map((c) => c * 8).filter((c) => c > 0 && c < payload.length)),
          ].sort((a, b) => a - b);
          const edges = [0, ...cuts, payload.length];
          const pieces = edges.slice(0, -1).map((start, k) => [start, edges[k + 1]]);
          // Send pieces in the order `picks` chooses (repeats allowed), then whatever is left.
          const order = [...picks.map((p) => p % pieces.length), ...pieces.map((_, k) => k)];
          const frame = new Uint8Array(header.length + payload.length);
          frame.set(header);
          frame.set(payload, header.length);
          let completes = 0;
          const sent = new Set<number>();
          for (const k of order) {
            if (sent.size === pieces.length) break;
            sent.add(k);
            const [start, end] = pieces[k];
            const result = table.add(
              key,
              0,
              start,
              end < payload.length,
              frame,
              header.length + start,
              end - start,
              0,
              header.length,
              0,
              -1,
              0,
            );
            assert.notEqual(result, FragmentResult.Conflict);
            assert.notEqual(result, FragmentResult.Bad);
            if (result === FragmentResult.Complete) {
              completes++;
              assert.equal(sent.size, pieces.length, 'complete only when every piece arrived');
              assert.deepEqual(table.out.subarray(0, table.outLength), frame);
            }
          }
          assert.equal(completes, 1);
          assert.equal(table.size, 0);
          assert.equal(table.chunksUsed, 0);
        },
      ),
      { numRuns: 300, seed: 8 },
    );
  });
});

describe('ids: fragment soups', () => {
  it('random fragments (valid-looking and garbage) never throw, in either mode, and stay bounded', () => {
    const base = [
      udpWithSignature(),
      udpWithSignature('2001:db8::1', '2001:db8::2'),
      new Conversation(HOST_A, HOST_B).data(0, 0, `${SIGNATURE}${'q'.repeat(200)}`),
    ];
    const piece = fc.record({
      frame: fc.integer({ min: 0, max: base.length - 1 }),
      offset: fc.integer({ min: 0, max: 8191 }).map((u) => (u % 40) * 8),
      length: fc.integer({ min: 1, max: 300 }),
      more: fc.boolean(),
      id: fc.integer({ min: 0, max: 3 }),
      garbage: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { freq: 4 }),
      flip: fc.option(fc.nat(400), { freq: 3 }),
    });
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.boolean(), (pieces, prevent) => {
        const nf = harness([UDP_RULE, TCP_RULE], {
          mode: prevent ? 'prevent' : 'alert',
          maxFragmentedDatagrams: 4,
          fragmentBytes: 65536,
        });
        const frames = pieces.map((p) => {
          const f = ipFragment(base[p.frame], p.offset, p.length, {
            id: p.id,
            more: p.more,
            data: p.garbage ?? undefined,
          });
          if (p.flip !== null && p.flip < f.length) f[p.flip] ^= 0x5a;
          return f;
        });
        const out = nf.run(frames, 1e9);
        nf.tick(1e12);
        assert.equal(out.length, frames.length);
        const counters = nf.counters();
        assert.ok(counters.fragments_active === 0, 'all expired');
        assert.ok(sids(nf).length <= frames.length);
      }),
      { numRuns: 300, seed: 8 },
    );
  });
});
