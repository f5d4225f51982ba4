import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { Ipv6Repr } from '../../src/packet/ipv6.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import rateLimiter, { type RateLimiterInstance, type RateLimiterSnapshot } from './index.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };
const MS = 1e6;
const SEC = 1e9;

interface FrameSpec {
  src?: string;
  dst?: string;
  srcPort?: number;
  dstPort?: number;
  /** Bytes of UDP payload. */
  payload?: number;
  /** A non-first IPv4 fragment (offset 8) carrying `payload` bytes. */
  laterFragment?: boolean;
}

/** Ethernet / IPv4 or IPv6 / UDP with a payload, checksums filled; 14 + 20|40 + 8 + payload bytes. */
function frame(spec: FrameSpec = {}): Uint8Array {
  const src = spec.src ?? '192.0.2.1';
  const dst = spec.dst ?? (src.includes(':') ? '2001:db8:ffff::1' : '198.51.100.1');
  const v6 = src.includes(':');
  const payload = spec.payload ?? 10;
  const ipLength = v6 ? 40 : 20;
  const l4Length = spec.laterFragment ? payload : 8 + payload;
  const bytes = new Uint8Array(14 + ipLength + l4Length);
  EthernetRepr.emit({ ...ETH, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 }, bytes);
  if (v6) Ipv6Repr.emit({ src, dst, nextHeader: IpProtocol.Udp, payloadLength: l4Length }, bytes, 14);
  else
    Ipv4Repr.emit(
      {
        src,
        dst,
        protocol: IpProtocol.Udp,
        payloadLength: l4Length,
        dontFragment: false,
        fragmentOffset: spec.laterFragment ? 8 : 0,
      },
      bytes,
      14,
    );
  if (spec.laterFragment) return bytes;
  const at = 14 + ipLength;
  const pseudo = v6
    ? pseudoHeaderSumV6(bytes, 14 + 8, 14 + 24, IpProtocol.Udp, l4Length)
    : pseudoHeaderSumV4(ipv4(src), ipv4(dst), IpProtocol.Udp, l4Length);
  UdpRepr.emit(
    { srcPort: spec.srcPort ?? 40000, dstPort: spec.dstPort ?? 53, payloadLength: payload },
    bytes,
    at,
    pseudo,
  );
  return bytes;
}

/** An Ethernet frame of an EtherType nobody parses (no IP layer). */
function nonIp(): Uint8Array {
  const bytes = new Uint8Array(60);
  EthernetRepr.emit({ ...ETH, etherType: 0x88b5 }, bytes);
  return bytes;
}

function passes(nf: NfHarness<unknown>, frames: Uint8Array[], now: number): number {
  return nf.run(frames, now).filter((r) => r.output === 'out').length;
}

function times<T>(n: number, make: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => make(i));
}

describe('rate-limiter', () => {
  it('pps: a burst at t=0, then exactly one packet per 1/rate', () => {
    const nf = new NfHarness(rateLimiter, { key: 'global', rate: 1000, burst: 10 });
    const results = nf.run(
      times(12, () => frame()),
      0,
    );
    assert.deepEqual(
      results.map((r) => r.output ?? r.drop),
      [...times(10, () => 'out'), 'exceeded', 'exceeded'],
    );
    assert.equal(
      passes(
        nf,
        times(3, () => frame()),
        0.999 * MS,
      ),
      0,
      'less than 1/rate later: nothing',
    );
    assert.equal(
      passes(
        nf,
        times(3, () => frame()),
        1 * MS,
      ),
      1,
      'at 1/rate: one',
    );
    assert.equal(
      passes(
        nf,
        times(3, () => frame()),
        1.5 * MS,
      ),
      0,
    );
    assert.equal(
      passes(
        nf,
        times(3, () => frame()),
        2 * MS,
      ),
      1,
    );
    assert.equal(
      passes(
        nf,
        times(3, () => frame()),
        5 * MS,
      ),
      3,
      'three refills in 3 ms',
    );
    assert.equal(
      passes(
        nf,
        times(20, () => frame()),
        1 * SEC,
      ),
      10,
      'an idle second refills only to burst',
    );
    assert.deepEqual(nf.counters(), { passed: 25, exceeded: 22, unpoliced: 0, keys: 1, table_full: 0 });
    // B admitted, B+1 refused, 1/rate later admitted — each packet in its own burst.
    const one = new NfHarness(rateLimiter, { key: 'global', rate: 4, burst: 3 });
    const fates = [0, 0, 0, 0, 0.25 * SEC - 1, 0.25 * SEC, 0.25 * SEC].map(
      (t) => one.run([frame()], t)[0].output ?? 'x',
    );
    assert.deepEqual(fates, ['out', 'out', 'out', 'x', 'x', 'out', 'x']);
  });

  it('bps: frames cost their length in bits, the burst is in bytes', () => {
    // 100-byte frames (14 + 20 + 8 + 58), 8000 bit/s = 1000 byte/s, burst 1000 bytes = 10 frames.
    const nf = new NfHarness(rateLimiter, { key: 'global', rate: 8000, unit: 'bps', burst: 1000 });
    const f = frame({ payload: 58 });
    assert.equal(f.length, 100);
    assert.equal(
      passes(
        nf,
        times(11, () => f),
        0,
      ),
      10,
    );
    assert.equal(passes(nf, [f], 99 * MS), 0);
    assert.equal(passes(nf, [f, f], 100 * MS), 1);
    // A frame larger than the bucket never passes; smaller ones still do.
    const small = new NfHarness(rateLimiter, { key: 'global', rate: 8000, unit: 'bps', burst: 99 });
    assert.deepEqual(
      small.run([f, frame({ payload: 0 })], 0).map((r) => r.output ?? r.drop),
      ['exceeded', 'out'],
    );
  });

  it('source: one bucket per address, or per prefix, for IPv4 and IPv6', () => {
    const nf = new NfHarness(rateLimiter, { key: 'source', rate: 1, burst: 2 });
    const sources = ['192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8:0:1::1'];
    assert.deepEqual(
      sources.map((src) =>
        passes(
          nf,
          times(5, () => frame({ src })),
          0,
        ),
      ),
      [2, 2, 2, 2],
    );
    assert.equal(nf.counters().keys, 4);
    // /24 and /48: addresses in one prefix share a bucket.
    const wide = new NfHarness(rateLimiter, {
      key: 'source',
      rate: 1,
      burst: 2,
      sourcePrefixV4: 24,
      sourcePrefixV6: 48,
    });
    assert.deepEqual(
      sources.map((src) =>
        passes(
          wide,
          times(5, () => frame({ src })),
          0,
        ),
      ),
      [2, 0, 2, 0],
    );
    assert.deepEqual(wide.counters(), { passed: 4, exceeded: 16, unpoliced: 0, keys: 2, table_full: 0 });
  });

  it('flow: one bucket per 5-tuple; every fragment of a datagram in one bucket', () => {
    const nf = new NfHarness(rateLimiter, { key: 'flow', rate: 1, burst: 1 });
    assert.deepEqual(
      nf
        .run(
          [
            frame({ srcPort: 1 }),
            frame({ srcPort: 2 }),
            frame({ srcPort: 1 }),
            frame({ srcPort: 1, dstPort: 54 }),
            frame({ src: '192.0.2.9', srcPort: 1 }),
          ],
          0,
        )
        .map((r) => r.output ?? r.drop),
      ['out', 'out', 'exceeded', 'out', 'out'],
    );
    const fragments = new NfHarness(rateLimiter, { key: 'flow', rate: 1, burst: 2 });
    assert.equal(
      passes(
        fragments,
        times(4, () => frame({ laterFragment: true })),
        0,
      ),
      2,
    );
  });

  it('frames without IP: unpoliced under source/flow keys, policed under global', () => {
    const keyed = new NfHarness(rateLimiter, { key: 'source', rate: 1, burst: 1 });
    assert.equal(passes(keyed, times(5, nonIp), 0), 5);
    assert.equal(keyed.counters().unpoliced, 5);
    const global = new NfHarness(rateLimiter, { key: 'global', rate: 1, burst: 1 });
    assert.equal(passes(global, times(5, nonIp), 0), 1);
  });

  it('action pass: packets over the rate are sent on and counted', () => {
    const nf = new NfHarness(rateLimiter, { key: 'global', rate: 1, burst: 2, action: 'pass' });
    assert.equal(
      passes(
        nf,
        times(5, () => frame()),
        0,
      ),
      5,
    );
    assert.deepEqual(nf.counters(), { passed: 2, exceeded: 3, unpoliced: 0, keys: 1, table_full: 0 });
  });

  for (const family of ['IPv4', 'IPv6']) {
    it(`a full key table refuses new ${family} keys, exactly; tick forgets refilled buckets`, () => {
      const max = 100;
      const nf = new NfHarness(rateLimiter, { key: 'source', rate: 10, burst: 1, maxKeys: max });
      const source = (i: number) =>
        family === 'IPv4' ? `10.0.${i >> 8}.${i & 255}` : `2001:db8:${i.toString(16)}::1`;
      const results = nf.run(
        times(max + 5, (i) => frame({ src: source(i) })),
        0,
      );
      assert.deepEqual(
        results.map((r) => r.output ?? r.drop),
        [...times(max, () => 'out'), ...times(5, () => 'table_full')],
      );
      // Known keys keep being policed normally while the table is full.
      assert.equal(nf.run([frame({ src: source(0) })], 0)[0].drop, 'exceeded');
      assert.deepEqual(nf.counters(), { passed: max, exceeded: 1, unpoliced: 0, keys: max, table_full: 5 });
      // 99 ms: no bucket is full yet (0.99 of a packet); tick keeps them all.
      nf.instance.tick?.(99 * MS);
      assert.equal((nf.instance as RateLimiterInstance).activeKeys(), max);
      nf.instance.tick?.(100 * MS);
      assert.equal((nf.instance as RateLimiterInstance).activeKeys(), 0);
      assert.equal(passes(nf, [frame({ src: source(max + 1) })], 100 * MS), 1);
    });
  }

  it('tick changes no verdict (forgetting a full bucket is exact)', () => {
    const config = { key: 'source', rate: 50, burst: 3, maxKeys: 1000 };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(7), fc.nat(20), fc.boolean()), { minLength: 1, maxLength: 60 }),
        (steps) => {
          const ticking = new NfHarness(rateLimiter, config);
          const plain = new NfHarness(rateLimiter, config);
          let now = 0;
          for (const [source, gapMs, tick] of steps) {
            now += gapMs * MS;
            const frames = times(3, () => frame({ src: `192.0.2.${source}` }));
            if (tick) ticking.instance.tick?.(now);
            assert.deepEqual(
              ticking.run(frames, now).map((r) => r.output ?? r.drop),
              plain.run(frames, now).map((r) => r.output ?? r.drop),
            );
          }
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it('snapshot → restore keeps each bucket’s credit; another keying is ignored', () => {
    const config = { key: 'source', rate: 1000, burst: 10 };
    const a = new NfHarness(rateLimiter, config);
    a.run(
      times(7, () => frame({ src: '192.0.2.1' })),
      0,
    ); // 3 left
    a.run(
      times(2, () => frame({ src: '2001:db8::1' })),
      0,
    ); // 8 left
    const state = structuredClone(a.instance.snapshot?.()) as RateLimiterSnapshot;
    assert.equal(state.keys.length, 2 * 10);
    const b = new NfHarness(rateLimiter, config);
    b.instance.restore?.(state);
    assert.deepEqual(b.instance.snapshot?.(), a.instance.snapshot?.(), 'identical state after restore');
    assert.equal(
      passes(
        b,
        times(10, () => frame({ src: '192.0.2.1' })),
        0,
      ),
      3,
    );
    assert.equal(
      passes(
        b,
        times(10, () => frame({ src: '2001:db8::1' })),
        0,
      ),
      8,
    );
    assert.equal(
      passes(
        b,
        times(10, () => frame({ src: '2001:db8::1' })),
        2 * MS,
      ),
      2,
    );

    const other = new NfHarness(rateLimiter, { ...config, key: 'flow' });
    other.instance.restore?.(state);
    assert.equal((other.instance as RateLimiterInstance).activeKeys(), 0);
    assert.match(other.logs[0], /ignored a snapshot/);

    const g = new NfHarness(rateLimiter, { key: 'global', rate: 1000, burst: 10 });
    g.run(
      times(4, () => frame()),
      0,
    );
    const h = new NfHarness(rateLimiter, { key: 'global', rate: 1000, burst: 10 });
    h.instance.restore?.(structuredClone(g.instance.snapshot?.()));
    assert.equal(
      passes(
        h,
        times(10, () => frame()),
        0,
      ),
      6,
    );
  });

  it('drops malformed frames and logs the first', () => {
    const nf = new NfHarness(rateLimiter, { key: 'global', rate: 1, burst: 100 });
    const damaged = frame();
    damaged[14 + 10] ^= 0xff; // IPv4 header checksum
    assert.deepEqual(
      nf.run([frame().subarray(0, 30), damaged], 0).map((r) => r.drop),
      ['malformed', 'malformed'],
    );
    assert.equal(nf.logs.length, 1);
  });

  it('rejects a bad configuration naming the field', () => {
    assert.throws(() => new NfHarness(rateLimiter, { burst: 1 }), /rate: is required/);
    assert.throws(() => new NfHarness(rateLimiter, { rate: 0, burst: 1 }), /rate: must be ≥ 0.001/);
    assert.throws(() => new NfHarness(rateLimiter, { rate: 1, burst: 1.5 }), /burst: must be an integer/);
    assert.throws(
      () => new NfHarness(rateLimiter, { rate: 1, burst: 1, unit: 'Mbps' }),
      /unit: must be one of pps, bps/,
    );
    assert.throws(
      () => new NfHarness(rateLimiter, { rate: 1, burst: 1, key: 'destination' }),
      /key: must be one of global, source, flow/,
    );
    assert.throws(
      () => new NfHarness(rateLimiter, { rate: 1, burst: 1, sourcePrefixV4: 33 }),
      /sourcePrefixV4: must be ≤ 32/,
    );
    assert.throws(
      () => new NfHarness(rateLimiter, { rate: 1, burst: 1, maxKeys: 0 }),
      /maxKeys: must be ≥ 1/,
    );
  });

  it('never throws on random bytes or damaged frames', () => {
    const nfs = (['global', 'source', 'flow'] as const).map(
      (key) => new NfHarness(rateLimiter, { key, rate: 100, burst: 5, maxKeys: 16 }),
    );
    const seeds = [frame(), frame({ src: '2001:db8::7' }), frame({ laterFragment: true })];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(100),
        fc.nat(2),
        fc.nat(255),
        fc.nat(1000),
        (random, cut, which, flip, ms) => {
          const flipped = seeds[which].slice();
          flipped[cut % flipped.length] ^= flip;
          for (const nf of nfs) {
            for (const result of nf.run([random, seeds[which].subarray(0, cut), flipped], ms * MS))
              assert.ok(
                result.output === 'out' ||
                  ['malformed', 'exceeded', 'table_full'].includes(result.drop ?? ''),
              );
            nf.instance.tick?.(ms * MS);
          }
        },
      ),
      { seed: 1, numRuns: 500 },
    );
  });
});
