import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeededRandom } from '../io/seeded-random.js';
import { read16, read32, write16, write32 } from './bytes.js';
import {
  applyChecksumDelta,
  delta32,
  foldSum,
  internetChecksum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV4At,
  pseudoHeaderSumV6,
  rewriteIpv4Address,
  rewriteIpv6Address,
  rewriteL4Word,
  sum16,
  updateChecksum16,
  updateChecksum32,
} from './checksum.js';
import { ipv6 } from './address.js';
import { IpProtocol } from './ip-protocol.js';
import { Ipv4View } from './ipv4.js';
import { hex } from '../../test/support/hex.js';

// Real packets (checksums valid), shared with the UDP and TCP tests.
// DNS query 10.0.0.1:53000 → 8.8.8.8:53.
const udp4 = hex(`45 00 00 39 1c 46 40 00 40 11 04 5e 0a 00 00 01 08 08 08 08
  cf 08 00 35 00 25 9b 1a ab cd 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01`);
// SYN 192.168.1.10:51234 → 93.184.216.34:80 with MSS, SACK-permitted, timestamps, NOP, window scale.
const tcp4 = hex(`45 00 00 3c 8a 3f 40 00 40 06 b8 ef c0 a8 01 0a 5d b8 d8 22
  c8 22 00 50 3a de 68 b1 00 00 00 00 a0 02 fa f0 07 3e 00 00
  02 04 05 b4 04 02 08 0a 00 01 e2 40 00 00 00 00 01 03 03 07`);
// UDP [2001:db8::1]:40000 → [2001:db8::2]:5353, "hello, ipv6!".
const udp6 = hex(`60 00 00 00 00 14 11 40
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  9c 40 14 e9 00 14 e8 28 68 65 6c 6c 6f 2c 20 69 70 76 36 21`);
const UDP_CSUM = 6;
const TCP_CSUM = 16;

test('checksum: RFC 1071 §3 worked example sums to ddf2', () => {
  const bytes = hex('00 01 f2 03 f4 f5 f6 f7');
  assert.equal(sum16(bytes, 0, 8), 0x2ddf0);
  assert.equal(foldSum(sum16(bytes, 0, 8)), 0xddf2);
  assert.equal(internetChecksum(bytes, 0, 8), 0x220d);
  // Byte-order independence (RFC 1071 §2B): the swapped data sums to the swapped result.
  assert.equal(foldSum(sum16(hex('01 00 03 f2 f5 f4 f7 f6'), 0, 8)), 0xf2dd);
  // With the checksum appended, the whole verifies as 0.
  assert.equal(internetChecksum(hex('00 01 f2 03 f4 f5 f6 f7 22 0d'), 0, 10), 0);
});

test('checksum: an odd trailing byte is padded with zero, at any offset', () => {
  assert.equal(sum16(hex('ab'), 0, 1), 0xab00);
  assert.equal(
    foldSum(sum16(hex('00 01 f2 03 f4 f5 f6'), 0, 7)),
    foldSum(sum16(hex('00 01 f2 03 f4 f5 f6 00'), 0, 8)),
  );
  const b = hex('ff 00 01 f2 03 f4 f5 f6 ee');
  assert.equal(internetChecksum(b, 1, 7), internetChecksum(hex('00 01 f2 03 f4 f5 f6 00'), 0, 8));
  assert.equal(internetChecksum(b, 1, 0), 0xffff, 'nothing sums to 0, checksum 0xffff');
  assert.equal(foldSum(0x1fffe), 0xffff);
  assert.equal(foldSum(0xffff * 0x10001), 0xffff, 'an unfolded sum above 2^32 folds too');
});

test('checksum: RFC 1624 §4 example — equation 3 gives 0x0000 where equation 2 gave -0 (0xFFFF)', () => {
  // The rest of the header sums to 0xCD7A; a field m = 0x5555 changes to m' = 0x3285.
  const header = hex('cd 7a 55 55 00 00');
  write16(header, 4, internetChecksum(header, 0, 6));
  assert.equal(read16(header, 4), 0xdd2f);
  const updated = updateChecksum16(0xdd2f, 0x5555, 0x3285);
  assert.equal(updated, 0x0000);
  // RFC 1141's HC' = HC + m + ~m' (one's complement) yields 0xFFFF here: the -0 RFC 1624 warns about.
  assert.equal(foldSum(0xdd2f + 0x5555 + (~0x3285 & 0xffff)), 0xffff);
  // The full recompute agrees with equation 3.
  write16(header, 2, 0x3285);
  write16(header, 4, 0);
  assert.equal(internetChecksum(header, 0, 6), updated);
  assert.equal(applyChecksumDelta(0xdd2f, (~0x5555 & 0xffff) + 0x3285), 0x0000);
  assert.equal(updateChecksum32(0xdd2f, 0x00005555, 0x00003285), 0x0000);
  assert.equal(delta32(0x12345678, 0x12345678) % 0xffff, 0, 'an unchanged value is a zero delta');
});

test('checksum: the one RFC 1624 corner — data that becomes all zero updates to 0x0000, not 0xFFFF', () => {
  // A full sum over all-zero data is +0, checksum 0xFFFF; equation 3 reaches -0 and gives 0x0000.
  // Real headers never get there: IPv4 has its version nibble, TCP/UDP a nonzero protocol in the
  // pseudo-header. Starting from all-zero data is fine.
  const b = hex('00 00 12 34');
  const before = internetChecksum(b, 0, 4);
  assert.equal(updateChecksum16(before, 0x1234, 0), 0x0000);
  assert.equal(internetChecksum(hex('00 00 00 00'), 0, 4), 0xffff);
  assert.equal(updateChecksum16(0xffff, 0x0000, 0x1234), internetChecksum(b, 0, 4));
});

test('checksum: pseudo-headers of real IPv4 and IPv6 packets', () => {
  assert.equal(pseudoHeaderSumV4(0x0a000001, 0x08080808, IpProtocol.Udp, 0x25), 0x1a47);
  assert.equal(internetChecksum(udp4, 20, 0x25, pseudoHeaderSumV4(0x0a000001, 0x08080808, 17, 0x25)), 0);
  const tcpPseudo = pseudoHeaderSumV4(0xc0a8010a, 0x5db8d822, IpProtocol.Tcp, 40);
  assert.equal(foldSum(tcpPseudo), foldSum(sum16(hex('c0 a8 01 0a 5d b8 d8 22 00 06 00 28'), 0, 12)));
  assert.equal(internetChecksum(tcp4, 20, 40, tcpPseudo), 0);
  const v6 = pseudoHeaderSumV6(udp6, 8, 24, IpProtocol.Udp, 20);
  assert.equal(foldSum(v6), 0x5b9a);
  assert.equal(internetChecksum(udp6, 40, 20, v6), 0);
  // The 32-bit upper-layer length: a jumbogram length above 65535 is summed as two words.
  assert.equal(pseudoHeaderSumV6(new Uint8Array(32), 0, 16, 6, 0x12345) - 6, 0x0001 + 0x2345);
});

test('checksum: rewriteIpv4Address patches the IPv4 and UDP/TCP checksums together', () => {
  for (const [name, original, csum, udp] of [
    ['udp', udp4, UDP_CSUM, true],
    ['tcp', tcp4, TCP_CSUM, false],
  ] as const) {
    for (const field of [12, 16]) {
      const b = original.slice();
      const site = { at: 20 + csum, udp };
      rewriteIpv4Address(b, 0, field, 0xc0000263, site);
      assert.equal(read32(b, field), 0xc0000263, name);
      const ip = new Ipv4View();
      assert.equal(ip.attach(b), 0, `${name}: IPv4 header still verifies`);
      assert.equal(
        internetChecksum(
          b,
          20,
          ip.payloadLength(),
          pseudoHeaderSumV4(ip.src(), ip.dst(), ip.protocol(), ip.payloadLength()),
        ),
        0,
        `${name}: L4 checksum still verifies`,
      );
    }
  }
  // A UDP checksum of 0 ("none") stays 0; the IPv4 header is still patched.
  const b = udp4.slice();
  write16(b, 20 + UDP_CSUM, 0);
  write16(b, 10, 0);
  write16(b, 10, internetChecksum(b, 0, 20));
  rewriteIpv4Address(b, 0, 12, 0x01020304, { at: 20 + UDP_CSUM, udp: true });
  assert.equal(read16(b, 20 + UDP_CSUM), 0);
  assert.equal(internetChecksum(b, 0, 20), 0);
  // No L4 site (a later fragment): only the IPv4 header changes.
  const f = udp4.slice();
  rewriteIpv4Address(f, 0, 16, 0x01020304, { at: -1, udp: true });
  assert.equal(internetChecksum(f, 0, 20), 0);
  assert.deepEqual(f.subarray(20), udp4.subarray(20));
});

test('checksum: rewriteL4Word patches a port; a UDP result of 0 is written as 0xFFFF', () => {
  const b = tcp4.slice();
  rewriteL4Word(b, 20, 40000, { at: 20 + TCP_CSUM, udp: false });
  assert.equal(read16(b, 20), 40000);
  assert.equal(internetChecksum(b, 20, 40, pseudoHeaderSumV4(0xc0a8010a, 0x5db8d822, 6, 40)), 0);
  // Choose the new source port that makes the UDP checksum compute to 0.
  const u = udp4.slice();
  const pseudo = pseudoHeaderSumV4(0x0a000001, 0x08080808, 17, 0x25);
  write16(u, 20, 0);
  write16(u, 20 + UDP_CSUM, 0);
  const port = internetChecksum(u, 20, 0x25, pseudo); // the sum of the rest, complemented
  u.set(udp4.subarray(20, 28), 20);
  rewriteL4Word(u, 20, port, { at: 20 + UDP_CSUM, udp: true });
  assert.equal(read16(u, 20 + UDP_CSUM), 0xffff);
  assert.equal(internetChecksum(u, 20, 0x25, pseudo), 0, '0xFFFF verifies');
});

test('checksum: rewriteIpv6Address patches the UDP checksum', () => {
  const b = udp6.slice();
  const addr = ipv6('2001:db8:ffff::abcd');
  const site = { at: 40 + UDP_CSUM, udp: true };
  rewriteIpv6Address(b, 8, addr, 0, site);
  assert.deepEqual(b.subarray(8, 24), addr);
  assert.equal(internetChecksum(b, 40, 20, pseudoHeaderSumV6(b, 8, 24, 17, 20)), 0);
  const padded = new Uint8Array(21);
  padded.set(ipv6('fe80::1'), 5);
  rewriteIpv6Address(b, 24, padded, 5, site);
  assert.deepEqual(b.subarray(24, 40), ipv6('fe80::1'));
  assert.equal(internetChecksum(b, 40, 20, pseudoHeaderSumV6(b, 8, 24, 17, 20)), 0);
});

/** True when every byte of `bytes[at, at+length)` outside the checksum word is zero. */
function allZeroBut(bytes: Uint8Array, at: number, length: number, csumAt: number): boolean {
  for (let i = at; i < at + length; i++) if (bytes[i] !== 0 && i !== csumAt && i !== csumAt + 1) return false;
  return true;
}

/** The checksum a sender computes for `bytes[at, at+length)` whose checksum word is at `csumAt`. */
function fullChecksum(bytes: Uint8Array, at: number, length: number, csumAt: number, initial = 0): number {
  write16(bytes, csumAt, 0);
  return internetChecksum(bytes, at, length, initial);
}

test('checksum: incremental updates equal a full recompute (fast-check, with edge sums)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4, maxLength: 64 }).map((b) => b.slice(0, b.length & ~1)),
      fc.nat(),
      fc.nat(),
      fc.nat(0xffff),
      fc.constantFrom('random', 'from-zero', 'to-zero', 'from-ffff'),
      (b, c, w, value, edge) => {
        const words = b.length / 2;
        const csumAt = 2 * (c % words);
        let wordAt = 2 * (w % words);
        if (wordAt === csumAt) wordAt = (wordAt + 2) % b.length;
        let next = value;
        if (edge === 'from-zero') {
          // Choose the word so that the data sums to 0xFFFF: checksum 0x0000 before the change.
          write16(b, wordAt, 0);
          write16(b, wordAt, fullChecksum(b, 0, b.length, csumAt));
        } else if (edge === 'to-zero') {
          // Choose the new value so that the checksum is 0x0000 after the change.
          const old = read16(b, wordAt);
          write16(b, wordAt, 0);
          next = fullChecksum(b, 0, b.length, csumAt);
          write16(b, wordAt, old);
        } else if (edge === 'from-ffff') {
          // All data zero: checksum 0xFFFF before the change.
          b.fill(0);
          next = value | 1;
        }
        const before = fullChecksum(b, 0, b.length, csumAt);
        if (edge === 'from-zero') assert.equal(before, 0);
        if (edge === 'from-ffff') assert.equal(before, 0xffff);
        const incremental = updateChecksum16(before, read16(b, wordAt), next);
        write16(b, wordAt, next);
        const full = fullChecksum(b, 0, b.length, csumAt);
        if (allZeroBut(b, 0, b.length, csumAt)) assert.deepEqual([incremental, full], [0, 0xffff]);
        else assert.equal(incremental, full);
        if (edge === 'to-zero') assert.equal(full, 0);
      },
    ),
    { numRuns: 20_000 },
  );
});

test('checksum: 10^6 random rewrites (16-bit words, 32-bit addresses, real headers) equal a full recompute', () => {
  const rng = new SeededRandom(1624);
  const buf = new Uint8Array(80);
  const pkt = new Uint8Array(4 + 20 + 48);
  const ip = new Ipv4View();
  let zeros = 0;
  let ffffs = 0;
  let edgeSums = 0;
  for (let round = 0; round < 1_000_000; round++) {
    const kind = round & 3;
    if (kind < 2) {
      // A random buffer with its checksum word somewhere; change one 16-bit word or one 32-bit value.
      const length = 8 + 2 * rng.below(33);
      for (let i = 0; i < length; i += 4) write32(buf, i, rng.u32());
      const csumAt = 2 * rng.below(length / 2);
      const span = kind === 0 ? 2 : 4;
      let fieldAt = 2 * rng.below((length - span) / 2 + 1);
      if (fieldAt <= csumAt && csumAt < fieldAt + span)
        fieldAt = csumAt + 2 + span <= length ? csumAt + 2 : csumAt - span;
      const edge = rng.below(8);
      if (edge === 1) {
        // Data summing to 0xFFFF (checksum 0x0000) before the change, by choosing a third word.
        let fillAt = 0;
        while (fillAt === csumAt || (fieldAt <= fillAt && fillAt < fieldAt + span)) fillAt += 2;
        write16(buf, fillAt, 0);
        write16(buf, fillAt, fullChecksum(buf, 0, length, csumAt));
      } else if (edge === 3) {
        // All data zero: checksum 0xFFFF before the change.
        buf.fill(0, 0, length);
      }
      const before = fullChecksum(buf, 0, length, csumAt);
      const old = kind === 0 ? read16(buf, fieldAt) : read32(buf, fieldAt);
      let next = kind === 0 ? rng.below(0x10000) : rng.u32();
      if (edge === 2) {
        // The new value that makes the checksum 0x0000 after the change: its low word completes the sum.
        const high = kind === 0 ? 0 : rng.below(0x10000);
        if (kind === 0) write16(buf, fieldAt, 0);
        else write32(buf, fieldAt, high * 0x10000);
        next = high * 0x10000 + fullChecksum(buf, 0, length, csumAt);
      } else if (edge === 3) next |= 1;
      if (before === 0 || before === 0xffff) edgeSums++;
      const incremental =
        kind === 0 ? updateChecksum16(before, old, next) : updateChecksum32(before, old, next);
      if (kind === 0) write16(buf, fieldAt, next);
      else write32(buf, fieldAt, next);
      const full = fullChecksum(buf, 0, length, csumAt);
      if (allZeroBut(buf, 0, length, csumAt)) continue; // the RFC 1624 corner pinned above
      if (incremental !== full) {
        assert.fail(`round ${round} kind ${kind} edge ${edge}: incremental ${incremental} ≠ full ${full}`);
      }
      if (full === 0) zeros++;
      if (full === 0xffff) ffffs++;
    } else {
      // A real IPv4 + UDP/TCP packet at a random offset; rewrite a port or an address with the helpers.
      const ipAt = rng.below(4);
      const udp = rng.below(2) === 0;
      const l4Length = udp ? 8 + rng.below(41) : 20 + 4 * rng.below(8);
      const l4At = ipAt + 20;
      for (let i = 0; i < pkt.length; i += 4) write32(pkt, i, rng.u32());
      ip.attachUnchecked(pkt, ipAt, 20 + l4Length);
      ip.setVersionAndHeaderLength(20);
      ip.setTotalLength(20 + l4Length);
      ip.setProtocol(udp ? IpProtocol.Udp : IpProtocol.Tcp);
      ip.fillChecksum();
      const csumAt = l4At + (udp ? UDP_CSUM : TCP_CSUM);
      if (udp) write16(pkt, l4At + 4, l4Length);
      const pseudo = (): number => pseudoHeaderSumV4(ip.src(), ip.dst(), ip.protocol(), l4Length);
      const l4Full = (): number => {
        const c = fullChecksum(pkt, l4At, l4Length, csumAt, pseudo());
        return udp && c === 0 ? 0xffff : c;
      };
      const edge = rng.below(4);
      if (edge === 0 && l4Length >= 10 + (udp ? 0 : 12)) {
        // Make the L4 checksum compute to 0 (UDP sends 0xFFFF, TCP 0x0000).
        const at = l4At + (udp ? 8 : 20);
        write16(pkt, at, 0);
        write16(pkt, at, fullChecksum(pkt, l4At, l4Length, csumAt, pseudo()));
      }
      write16(pkt, csumAt, l4Full());
      const site = { at: csumAt, udp };
      const wordAt = kind === 2 ? l4At + 2 * rng.below(2) : ipAt + 12 + 4 * rng.below(2);
      let value = kind === 2 ? rng.below(0x10000) : rng.u32();
      if (edge === 1) {
        // Choose the new port, or the low half of the new address, that makes the L4 checksum
        // compute to 0 after the rewrite (UDP then sends 0xFFFF, TCP 0x0000).
        const saved = read32(pkt, wordAt);
        const savedCsum = read16(pkt, csumAt);
        if (kind === 2) write16(pkt, wordAt, 0);
        else write32(pkt, wordAt, value & 0xffff0000);
        const low = fullChecksum(pkt, l4At, l4Length, csumAt, pseudo());
        value = kind === 2 ? low : ((value & 0xffff0000) | low) >>> 0;
        write32(pkt, wordAt, saved);
        write16(pkt, csumAt, savedCsum);
      }
      if (kind === 2) rewriteL4Word(pkt, wordAt, value, site);
      else rewriteIpv4Address(pkt, ipAt, wordAt, value, site);
      const got = read16(pkt, csumAt);
      const want = l4Full();
      if (got !== want || internetChecksum(pkt, ipAt, 20) !== 0) {
        assert.fail(
          `round ${round}: ${udp ? 'udp' : 'tcp'} checksum ${got} ≠ ${want}, or IPv4 header broken`,
        );
      }
      if (got === 0) zeros++;
      if (got === 0xffff) ffffs++;
    }
  }
  assert.ok(zeros > 1000, `${zeros} results of 0x0000`);
  assert.ok(ffffs > 1000, `${ffffs} results of 0xFFFF`);
  assert.ok(edgeSums > 50_000, `${edgeSums} updates starting from 0x0000 or 0xFFFF`);
});

test('pseudoHeaderSumV4At reads the addresses from the header as pseudoHeaderSumV4 takes them', () => {
  const header = new Uint8Array(34);
  header.set([0xc6, 0x12, 0x00, 0x01, 0xff, 0xfe, 0x80, 0x07], 14 + 12); // 198.18.0.1 → 255.254.128.7
  assert.equal(pseudoHeaderSumV4At(header, 14, 17, 20), pseudoHeaderSumV4(0xc6120001, 0xfffe8007, 17, 20));
});
