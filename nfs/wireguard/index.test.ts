/**
 * Two wireguard gateways, A and B, wired back to back through NfHarness: what one sends outside is
 * what the other receives. Each test drives a scenario with an injected clock and checks the
 * packets that come out, the drop reasons and the counters.
 *
 *   inside A (10.1.0.0/24) ─ [A 192.0.2.1:51820] ══ outside ══ [B 192.0.2.2:51820] ─ inside B (10.2.0.0/24)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ipv4, mac } from '../../src/packet/address.js';
import { read16, read32, write16, write32 } from '../../src/packet/bytes.js';
import { internetChecksum } from '../../src/packet/checksum.js';
import { NfHarness } from '../../src/sdk/index.js';
import wireguard, { type WireguardConfig, type WireguardInstance } from './index.js';
import { writeMac1 } from './cookie.js';
import { Initiation, Response } from './messages.js';
import { localIdentity, remoteIdentity, writeInitiation } from './noise.js';

const SECOND = 1e9;
/** Epoch nanoseconds are doubles with 256 ns steps: tests move the clock in milliseconds. */
const MS = 1e6;
const T0 = 1_800_000_000 * SECOND;

function rawPrivate(): string {
  const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' });
  return Buffer.from(jwk.d!, 'base64url').toString('base64');
}
function publicOf(privateB64: string): string {
  const key = createPrivateKey({
    key: Buffer.concat([
      Buffer.from('302e020100300506032b656e04220420', 'hex'),
      Buffer.from(privateB64, 'base64'),
    ]),
    format: 'der',
    type: 'pkcs8',
  });
  return Buffer.from(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12)).toString(
    'base64',
  );
}

const MAC = {
  aOut: '02:00:00:00:0a:01',
  aIn: '02:00:00:00:0a:02',
  aInsideHost: '02:00:00:00:0a:03',
  bOut: '02:00:00:00:0b:01',
  bIn: '02:00:00:00:0b:02',
  bInsideHost: '02:00:00:00:0b:03',
};

const keyA = rawPrivate();
const keyB = rawPrivate();

function config(
  side: 'a' | 'b',
  extra: Partial<WireguardConfig> = {},
  peer: Partial<WireguardConfig['peers'][0]> = {},
): unknown {
  const a = side === 'a';
  return {
    privateKey: a ? keyA : keyB,
    listenAddress: a ? '192.0.2.1' : '192.0.2.2',
    outside: { mac: a ? MAC.aOut : MAC.bOut, nextHopMac: a ? MAC.bOut : MAC.aOut },
    inside: { mac: a ? MAC.aIn : MAC.bIn, nextHopMac: a ? MAC.aInsideHost : MAC.bInsideHost },
    peers: [
      {
        publicKey: publicOf(a ? keyB : keyA),
        endpoint: a ? '192.0.2.2:51820' : '',
        allowedIPs: a ? ['10.2.0.0/24', 'fd00:2::/64'] : ['10.1.0.0/24', 'fd00:1::/64'],
        ...peer,
      },
    ],
    ...extra,
  };
}

/** An Ethernet + IPv4 + UDP frame with a payload of `size` bytes. */
function udpFrame(dstMac: string, src: string, dst: string, size = 64, fill = 0x5a): Uint8Array {
  const f = new Uint8Array(14 + 28 + size).fill(fill, 42);
  f.set(mac(dstMac), 0);
  f.set(mac('02:00:00:00:99:99'), 6);
  write16(f, 12, 0x0800);
  f[14] = 0x45;
  write16(f, 16, 28 + size);
  f[22] = 64;
  f[23] = 17;
  write32(f, 26, ipv4(src));
  write32(f, 30, ipv4(dst));
  write16(f, 24, internetChecksum(f, 14, 20));
  write16(f, 34, 1234);
  write16(f, 36, 5678);
  write16(f, 38, 8 + size);
  return f;
}

/** Splits an Ethernet + IPv4 frame into two fragments, the first carrying `cut` bytes (a multiple of 8) of its payload. */
function fragments(frame: Uint8Array, cut: number): [Uint8Array, Uint8Array] {
  const payload = frame.subarray(34);
  const piece = (bytes: Uint8Array, offset: number, more: boolean): Uint8Array => {
    const f = new Uint8Array(34 + bytes.length);
    f.set(frame.subarray(0, 34));
    f.set(bytes, 34);
    write16(f, 16, 20 + bytes.length);
    write16(f, 20, (more ? 0x2000 : 0) | (offset / 8));
    write16(f, 24, 0);
    write16(f, 24, internetChecksum(f, 14, 20));
    return f;
  };
  return [piece(payload.subarray(0, cut), 0, true), piece(payload.subarray(cut), cut, false)];
}

function harness(
  side: 'a' | 'b',
  extra?: Partial<WireguardConfig>,
  peer?: Partial<WireguardConfig['peers'][0]>,
) {
  const h = new NfHarness(wireguard, config(side, extra, peer), { slotSize: 2048 });
  return { h, nf: h.instance as WireguardInstance };
}

/** Runs one frame; returns the single result. */
function one(h: NfHarness<WireguardConfig>, frame: Uint8Array, now: number) {
  const [r] = h.run([frame], now);
  return r;
}

/** A and B with a session (A initiated), and the first packet A staged already delivered at B. */
function established(extraB?: Partial<WireguardConfig>) {
  const A = harness('a');
  const B = harness('b', extraB);
  const first = udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7', 100);
  const init = one(A.h, first, T0);
  assert.equal(init.output, 'outside');
  assert.equal(init.bytes.length, 42 + Initiation.Length);
  const resp = one(B.h, init.bytes, T0 + MS);
  assert.equal(resp.output, 'outside', `B answers the initiation (${resp.drop})`);
  assert.equal(resp.bytes.length, 42 + Response.Length);
  const firstData = one(A.h, resp.bytes, T0 + 2 * MS);
  assert.equal(firstData.output, 'outside', `A sends its staged packet in the response (${firstData.drop})`);
  const delivered = one(B.h, firstData.bytes, T0 + 3 * MS);
  assert.equal(delivered.output, 'inside', `B delivers it (${delivered.drop})`);
  return { A, B, first, firstData: firstData.bytes, delivered: delivered.bytes };
}

void describe('wireguard NF: two gateways back to back', () => {
  void it('handshakes on the first inside packet and delivers it, byte for byte, with a new Ethernet header', () => {
    const { A, B, first, delivered } = established();
    assert.deepEqual(delivered.subarray(14), first.subarray(14), 'the IP packet is unchanged');
    assert.deepEqual(delivered.subarray(0, 6), mac(MAC.bInsideHost));
    assert.deepEqual(delivered.subarray(6, 12), mac(MAC.bIn));
    const a = A.h.counters();
    const b = B.h.counters();
    assert.equal(a.initiations_sent, 1);
    assert.equal(b.initiations_received, 1);
    assert.equal(b.responses_sent, 1);
    assert.equal(a.responses_received, 1);
    assert.equal(a.staged_sent, 1);
    assert.equal(b.packets_decrypted, 1);
    assert.equal(a.handshakes_completed + b.handshakes_completed, 2);
    assert.equal(a.tx_bytes, b.rx_bytes, "A's sent bytes are B's authenticated received bytes");
    assert.equal(b.tx_bytes, a.rx_bytes);
  });

  void it('carries data both ways, IPv4 and IPv6, and the outer frame is well formed', () => {
    const { A, B } = established();
    const back = one(B.h, udpFrame(MAC.bIn, '10.2.0.7', '10.1.0.5', 1200), T0 + 4000);
    assert.equal(back.output, 'outside', `B encrypts to A (${back.drop})`);
    assert.equal(internetChecksum(back.bytes, 14, 20), 0, 'outer IPv4 header checksum');
    assert.equal(read16(back.bytes, 36), 51820, 'to A’s port');
    const atA = one(A.h, back.bytes, T0 + 5000);
    assert.equal(atA.output, 'inside');
    assert.equal(atA.bytes.length, 14 + 28 + 1200);

    const v6 = new Uint8Array(14 + 40 + 8).fill(0);
    v6.set(mac(MAC.aIn), 0);
    write16(v6, 12, 0x86dd);
    v6[14] = 0x60;
    write16(v6, 18, 8);
    v6[20] = 17;
    v6[21] = 64;
    v6.set([0xfd, 0, 0, 1], 22);
    v6[37] = 5;
    v6.set([0xfd, 0, 0, 2], 38);
    v6[53] = 7;
    write16(v6, 58, 8);
    const sealed = one(A.h, v6, T0 + 6000);
    assert.equal(sealed.output, 'outside', `v6 goes into the tunnel (${sealed.drop})`);
    const opened = one(B.h, sealed.bytes, T0 + 7000);
    assert.equal(opened.output, 'inside');
    assert.deepEqual(opened.bytes.subarray(14), v6.subarray(14));
    assert.equal(read16(opened.bytes, 12), 0x86dd);
  });

  void it('drops each forged or replayed case with its own reason, and answers none of them', () => {
    const { A, B, firstData } = established();
    const data = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7', 300), T0 + 10_000).bytes;
    assert.equal(one(B.h, data, T0 + 11_000).output, 'inside');

    assert.equal(one(B.h, data, T0 + 12_000).drop, 'replayed', 'the same data packet again');
    assert.equal(one(B.h, firstData, T0 + 12_000).drop, 'replayed', 'an older one again');

    const flipped = data.slice();
    flipped[42 + 16 + 40] ^= 0x01;
    assert.equal(one(B.h, flipped, T0 + 12_000).drop, 'decrypt_failed');

    const wrongIndex = data.slice();
    wrongIndex[42 + 4] ^= 0xff;
    assert.equal(one(B.h, wrongIndex, T0 + 12_000).drop, 'unknown_receiver');

    for (const keep of [31, 3, 0]) {
      const short = data.slice(0, 42 + keep);
      write16(short, 16, 28 + keep);
      write16(short, 24, 0);
      write16(short, 24, internetChecksum(short, 14, 20));
      write16(short, 38, 8 + keep);
      assert.equal(one(B.h, short, T0 + 12_000).drop, 'truncated', `a ${keep}-byte message`);
    }

    // A fresh initiation from A (its session is stale), tampered in mac1, then replayed whole.
    const init = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 200 * SECOND).bytes;
    assert.equal(init[42], 1, 'A rekeys with an initiation');
    const badMac = init.slice();
    badMac[42 + Initiation.Mac1] ^= 1;
    assert.equal(one(B.h, badMac, T0 + 200 * SECOND).drop, 'bad_mac1');
    assert.equal(one(B.h, init, T0 + 200 * SECOND).output, 'outside', 'the genuine one is answered');
    assert.equal(one(B.h, init, T0 + 201 * SECOND).drop, 'old_timestamp', 'the same initiation replayed');

    const b = B.h.counters();
    assert.equal(b.responses_sent, 2, 'only the two genuine initiations were answered');
    assert.equal(b.cookie_replies_sent, 0);
  });

  void it('reassembles the outer fragments of a message, in any order, and delivers what they carry', () => {
    // A peer whose tunnel MTU exceeds its path's has its kernel fragment the UDP datagrams.
    const { A, B } = established();
    const inner = udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7', 1200);
    const data = one(A.h, inner, T0 + 10_000).bytes;
    const [head, tail] = fragments(data, 600);
    // Held (not decrypt_failed, a forgery, for the first; nor not_for_us for the last), then delivered.
    assert.equal(one(B.h, head, T0 + 11_000).drop, 'fragment', 'the first fragment is held');
    const whole = one(B.h, tail, T0 + 11_000);
    assert.equal(whole.output, 'inside', `the last completes the message (${whole.drop})`);
    assert.deepEqual(whole.bytes.subarray(14), inner.subarray(14), 'the inner packet, byte for byte');
    // The last fragment first: the same.
    const data2 = one(A.h, inner, T0 + 12_000).bytes;
    const [head2, tail2] = fragments(data2, 592);
    assert.equal(one(B.h, tail2, T0 + 13_000).drop, 'fragment');
    const whole2 = one(B.h, head2, T0 + 13_000);
    assert.equal(whole2.output, 'inside', `completed by its first fragment (${whole2.drop})`);
    assert.deepEqual(whole2.bytes.subarray(14), inner.subarray(14));
    // A replayed fragment pair is a replayed message: reassembled again, then refused by the window.
    assert.equal(one(B.h, head, T0 + 14_000).drop, 'fragment');
    assert.equal(one(B.h, tail, T0 + 14_000).drop, 'replayed');
    assert.equal(one(B.h, data, T0 + 15_000).drop, 'replayed', 'the whole datagram too');
    const b = B.h.counters();
    assert.equal(b.fragments_reassembled, 3);
    assert.equal(b.packets_decrypted, 3, 'the first packet and the two messages');
  });

  void it('refuses inconsistent outer fragments and gives up a message that never completes', () => {
    const { A, B } = established();
    const data = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7', 1200), T0 + 10_000).bytes;
    const [head] = fragments(data, 600);
    // A fragment with more to follow must carry a multiple of 8 bytes (RFC 791).
    const [odd] = fragments(data, 600);
    write16(odd, 16, read16(odd, 16) - 3);
    write16(odd, 24, 0);
    write16(odd, 24, internetChecksum(odd, 14, 20));
    assert.equal(one(B.h, odd.subarray(0, odd.length - 3), T0 + 11_000).drop, 'fragment_refused');
    assert.equal(one(B.h, head, T0 + 11_000).drop, 'fragment');
    B.nf.tick?.(T0 + 11_000 + 31 * SECOND);
    assert.equal(B.h.counters().fragments_expired, 1, 'not complete within 30 s');
    assert.equal(B.h.counters().fragments_reassembled, 0);
  });

  void it('encrypts inside fragments like any IP packet', () => {
    const { A, B } = established();
    // Fragments from the inside are IP packets like any other: they go into the tunnel.
    const [first, last] = fragments(udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7', 1200), 600);
    for (const piece of [first, last]) {
      const sealed = one(A.h, piece, T0 + 13_000);
      assert.equal(sealed.output, 'outside', `an inside fragment is encrypted (${sealed.drop})`);
      const opened = one(B.h, sealed.bytes, T0 + 14_000);
      assert.equal(opened.output, 'inside', `and delivered (${opened.drop})`);
      assert.deepEqual(opened.bytes.subarray(14), piece.subarray(14));
    }
  });

  void it('answers an inside packet too big once encrypted with ICMP fragmentation needed and the tunnel’s MTU', () => {
    const { h } = harness('a');
    // Slots of 2048: the largest inner packet that fits encrypted is (2048 − 42 − 16 − 16) / 16 × 16.
    const mtu = 1968;
    const big = udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.9', mtu + 32 - 28);
    big[20] = 0x40; // DF
    write16(big, 24, 0);
    write16(big, 24, internetChecksum(big, 14, 20));
    const answer = one(h, big, T0);
    assert.equal(answer.output, 'inside', `answered (${answer.drop})`);
    const r = answer.bytes;
    assert.deepEqual([...r.subarray(0, 6)], [...mac('02:00:00:00:99:99')], 'back to the sender’s MAC');
    assert.deepEqual([...r.subarray(6, 12)], [...mac(MAC.aIn)], 'from the gateway’s inside MAC');
    assert.equal(r[23], 1, 'ICMP');
    assert.equal(internetChecksum(r, 14, 20), 0, 'IPv4 header checksum');
    assert.equal(read32(r, 26) >>> 0, ipv4('10.2.0.9'), 'from the address the packet was for');
    assert.equal(read32(r, 30) >>> 0, ipv4('10.1.0.5'), 'to its sender');
    assert.deepEqual([r[34], r[35]], [3, 4], 'destination unreachable, fragmentation needed');
    assert.equal(read16(r, 40), mtu, 'next-hop MTU (RFC 1191)');
    assert.equal(internetChecksum(r, 34, r.length - 34), 0, 'ICMP checksum');
    assert.deepEqual(
      [...r.subarray(42, 42 + 20)],
      [...big.subarray(14, 34)],
      'the original IP header quoted',
    );
    // Without DF a router would fragment it; the gateway cannot, so it drops and counts it.
    const noDf = udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.9', mtu + 32 - 28);
    assert.equal(one(h, noDf, T0 + MS).drop, 'too_big');
    // One byte less than the MTU is carried (a handshake first: the packet is staged for it).
    assert.equal(one(h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.9', mtu - 28), T0 + 2 * MS).output, 'outside');
    assert.equal(h.counters().too_big_answered, 1);
  });

  void it('refuses a decrypted packet whose source is outside the peer’s allowed IPs', () => {
    const { A, B } = established();
    const spoofed = one(A.h, udpFrame(MAC.aIn, '10.9.9.9', '10.2.0.7'), T0 + 10_000);
    assert.equal(spoofed.output, 'outside', 'A routes by destination');
    assert.equal(one(B.h, spoofed.bytes, T0 + 11_000).drop, 'source_not_allowed');
    assert.equal(one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.3.0.1'), T0).drop, 'no_route');
  });

  void it('rekeys at REKEY_AFTER_TIME and refuses data on a session past REJECT_AFTER_TIME (injected clock)', () => {
    const { A, B } = established();
    // A's session was made when B's response arrived, at T0 + 2 ms.
    const at119 = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 2 * MS + 120 * SECOND - MS);
    assert.equal(at119.bytes[42], 4, 'data before 120 s');
    const at120 = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 2 * MS + 120 * SECOND);
    assert.equal(at120.bytes[42], 1, 'an initiation at 120 s');
    assert.equal(A.h.counters().rekeys, 1);
    const at121 = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 121 * SECOND);
    assert.equal(at121.bytes[42], 4, 'while the rekey is out, data still flows on the old session');
    assert.equal(one(B.h, at121.bytes, T0 + 179 * SECOND).output, 'inside');
    const late = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 122 * SECOND).bytes;
    assert.equal(one(B.h, late, T0 + 181 * SECOND).drop, 'key_expired', 'the session is older than 180 s');
    const stale = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 181 * SECOND);
    assert.equal(stale.bytes[42], 1, 'A sends nothing on a session past 180 s: it initiates');
  });

  void it('an initiation retry waits REKEY_TIMEOUT; packets meanwhile are staged and bounded', () => {
    const A = harness('a', { stagedPackets: 2 });
    const send = (t: number) => one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), t);
    assert.equal(send(T0).bytes[42], 1);
    assert.equal(send(T0 + SECOND).drop, 'staged');
    assert.equal(send(T0 + 2 * SECOND).drop, 'staging_full');
    assert.equal(send(T0 + 5 * SECOND).bytes[42], 1, 'retry after REKEY_TIMEOUT');
    A.nf.tick?.(T0 + 91 * SECOND);
    const c = A.h.counters();
    assert.equal(c.initiations_sent, 2);
    assert.equal(c.staged_discarded, 2, 'given up after REKEY_ATTEMPT_TIME');
    assert.equal(c.staging_overflow, 2);
  });

  void it('under load, asks for a cookie first, then answers the initiation that carries it', () => {
    const A = harness('a');
    const B = harness('b', { handshakesUnderLoad: 0 });
    const init = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0).bytes;
    const cookie = one(B.h, init, T0);
    assert.equal(cookie.output, 'outside');
    assert.equal(cookie.bytes[42], 3, 'a cookie reply');
    const forged = cookie.bytes.slice();
    forged[42 + 40] ^= 1;
    assert.equal(one(A.h, forged, T0).drop, 'bad_cookie');
    assert.equal(one(A.h, cookie.bytes, T0).drop, 'cookie_absorbed');
    const again = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 5 * SECOND).bytes;
    const resp = one(B.h, again, T0 + 5 * SECOND);
    assert.equal(resp.bytes[42], 2, `now a response (${resp.drop})`);
    assert.equal(B.h.counters().cookie_replies_sent, 1);
  });

  void it('under a handshake flood, sends cookie replies only once the configured rate is passed', () => {
    const B = harness('b', { handshakesUnderLoad: 5 });
    const alice = localIdentity(Buffer.from(keyA, 'base64'));
    const bobSeenByAlice = remoteIdentity(alice, Buffer.from(publicOf(keyB), 'base64'));
    const kinds: number[] = [];
    for (let k = 0; k < 10; k++) {
      const frame = udpFrame(MAC.bOut, '192.0.2.1', '192.0.2.2', Initiation.Length);
      write16(frame, 34, 51820);
      write16(frame, 36, 51820);
      writeInitiation(alice, bobSeenByAlice, 1, T0 + k * 100 * MS, frame, 42);
      writeMac1(frame, 42, Initiation.Mac1, bobSeenByAlice.mac1Key);
      const r = one(B.h, frame, T0 + k * 50 * MS);
      assert.equal(r.output, 'outside', `message ${k} is answered (${r.drop})`);
      kinds.push(r.bytes[42]);
    }
    assert.deepEqual(kinds, [2, 2, 2, 2, 2, 3, 3, 3, 3, 3], 'five responses, then cookie replies');
    assert.equal(B.h.counters().handshakes_under_load, 5);
  });

  void it('drops every prefix of every message type, each in one named reason, and never throws', () => {
    const { A, firstData } = established();
    const init = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 200 * SECOND).bytes;
    const cookie = one(harness('b', { handshakesUnderLoad: 0 }).h, init, T0 + 200 * SECOND).bytes;
    assert.equal(cookie[42], 3);
    const fresh = harness('b');
    const response = one(fresh.h, init, T0 + 200 * SECOND).bytes;
    assert.equal(response[42], 2);
    const freshA = harness('a');
    for (const message of [init, response, cookie, firstData]) {
      // Responses and cookie replies go to A, initiations and data to B.
      const to = message[42] === 2 || message[42] === 3 ? freshA : fresh;
      for (let keep = 0; keep < message.length; keep++) {
        const cut = message.slice(0, keep);
        const [r] = to.h.run([cut], T0 + 300 * SECOND);
        assert.ok(r.drop !== undefined, `a ${keep}-byte prefix of type ${message[42]} is not sent on`);
        assert.ok(['malformed', 'truncated'].includes(r.drop), `${keep}: ${r.drop}`);
        if (keep >= 42) {
          // The same prefix with its IP and UDP lengths saying so: WireGuard's own length checks.
          write16(cut, 16, keep - 14);
          write16(cut, 24, 0);
          write16(cut, 24, internetChecksum(cut, 14, 20));
          write16(cut, 38, keep - 34);
          const [w] = to.h.run([cut], T0 + 300 * SECOND);
          assert.ok(
            ['truncated', 'unknown_receiver', 'unknown_type'].includes(w.drop ?? ''),
            `${keep}-byte type ${message[42]}: ${w.drop ?? w.output}`,
          );
        }
      }
    }
  });

  void it('random bytes after valid outer headers are always dropped, never answered', () => {
    const B = harness('b');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (payload) => {
        const frame = udpFrame(MAC.bOut, '192.0.2.9', '192.0.2.2', payload.length);
        write16(frame, 36, 51820);
        frame.set(payload, 42);
        const [r] = B.h.run([frame], T0);
        return r.drop !== undefined;
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  void it('follows the peer to a new address and port (roaming)', () => {
    const { A, B } = established();
    const data = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 10_000).bytes;
    write32(data, 26, ipv4('198.51.100.9'));
    write16(data, 24, 0);
    write16(data, 24, internetChecksum(data, 14, 20));
    write16(data, 34, 40000);
    assert.equal(one(B.h, data, T0 + 11_000).output, 'inside');
    assert.equal(B.nf.peers()[0].endpoint, '198.51.100.9:40000');
    const reply = one(B.h, udpFrame(MAC.bIn, '10.2.0.7', '10.1.0.5'), T0 + 12_000).bytes;
    assert.equal(read16(reply, 14 + 16) >>> 0, (ipv4('198.51.100.9') >>> 16) & 0xffff);
    assert.equal(read16(reply, 36), 40000);
    assert.equal(B.h.counters().endpoint_changes, 1);
  });

  void it('accepts the seven low-order public keys of WireGuard’s netns.sh as peers, and never sends to them', () => {
    const lowOrder = [
      'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      '4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=',
      'X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=',
      '7P///////////////////////////////////////38=',
      '7f///////////////////////////////////////38=',
      '7v///////////////////////////////////////38=',
    ];
    for (const publicKey of lowOrder) {
      const A = harness('a', {}, { publicKey });
      const r = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0);
      assert.equal(r.drop, 'bad_peer_key', publicKey);
      assert.match(A.h.logs.join('\n'), /low order/);
      assert.equal(A.h.counters().initiations_sent, 0);
    }
  });

  void it('accepts at most one initiation per peer every 20 ms (≤ 50/s), each newer than the last', () => {
    const B = harness('b');
    const alice = localIdentity(Buffer.from(keyA, 'base64'));
    const bobSeenByAlice = remoteIdentity(alice, Buffer.from(publicOf(keyB), 'base64'));
    /** A genuine initiation from A stamped at `stamp`, in a frame from 192.0.2.1:51820. */
    const initiation = (stamp: number): Uint8Array => {
      const frame = udpFrame(MAC.bOut, '192.0.2.1', '192.0.2.2', Initiation.Length);
      write16(frame, 34, 51820);
      write16(frame, 36, 51820);
      writeInitiation(alice, bobSeenByAlice, 1, stamp, frame, 42);
      writeMac1(frame, 42, Initiation.Mac1, bobSeenByAlice.mac1Key);
      return frame;
    };
    let answered = 0;
    let flood = 0;
    // 100 initiations over one second of the virtual clock, each with a newer timestamp.
    for (let k = 0; k < 100; k++) {
      const r = one(B.h, initiation(T0 + k * 100 * MS), T0 + k * 10 * MS);
      if (r.output === 'outside') answered++;
      else if (r.drop === 'handshake_flood') flood++;
      else assert.fail(`unexpected ${r.drop}`);
    }
    assert.ok(answered <= 50, `at most 50 answered in a second (${answered})`);
    assert.equal(answered + flood, 100);
    assert.equal(B.h.counters().responses_sent, answered);
  });

  void it('keeps the private key out of snapshots, logs, counters and the plan', () => {
    const { A, B } = established();
    const secrets = [
      keyA,
      keyB,
      Buffer.from(keyA, 'base64').toString('hex'),
      Buffer.from(keyB, 'base64').toString('hex'),
    ];
    for (const { h, nf } of [A, B]) {
      const shown = JSON.stringify([nf.snapshot?.(), h.logs, h.counters(), nf.plan, nf.peers()]);
      for (const secret of secrets) assert.ok(!shown.includes(secret), 'no private key in anything shown');
    }
    const restored = harness('b');
    restored.nf.restore?.(B.nf.snapshot?.());
    assert.deepEqual(restored.nf.peers(), B.nf.peers(), 'what a snapshot carries comes back');
  });

  void it('restores the endpoint it learned by roaming, unless the configuration now gives another', () => {
    const { A, B } = established();
    // A's packets now come from 192.0.2.9:4000 (as after a NAT rebinding): B follows them.
    const data = one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + SECOND).bytes;
    write32(data, 26, ipv4('192.0.2.9'));
    write16(data, 24, 0);
    write16(data, 24, internetChecksum(data, 14, 20));
    write16(data, 34, 4000);
    write16(data, 40, 0); // UDP checksum: none
    assert.equal(one(B.h, data, T0 + SECOND).output, 'inside');
    const saved = B.nf.snapshot?.();
    const same = harness('b');
    same.nf.restore?.(saved);
    assert.equal(same.nf.peers()[0].endpoint, '192.0.2.9:4000', 'the learned endpoint survives a restart');
    const moved = harness('b', {}, { endpoint: '198.51.100.7:51820' });
    moved.nf.restore?.(saved);
    assert.equal(moved.nf.peers()[0].endpoint, '198.51.100.7:51820', 'an endpoint the operator changed wins');
  });

  void it('refuses frames that are not for it, and malformed ones, with reasons', () => {
    const B = harness('b');
    assert.equal(one(B.h, udpFrame('02:00:00:00:77:77', '10.2.0.7', '10.1.0.5'), T0).drop, 'not_for_us');
    const arp = new Uint8Array(42);
    arp.fill(0xff, 0, 6);
    write16(arp, 12, 0x0806);
    assert.equal(one(B.h, arp, T0).drop, 'malformed');
    assert.equal(one(B.h, new Uint8Array(10), T0).drop, 'malformed');
  });

  void it('names the field of a bad configuration and never echoes the private key', () => {
    assert.throws(() => harness('a', { privateKey: 'not-a-key' }), /privateKey/);
    assert.throws(
      () => new NfHarness(wireguard, config('a', {}, { allowedIPs: ['10.2.0.1/24'] })),
      /peers\[0\]\.allowedIPs\[0\]/,
    );
    assert.throws(
      () => new NfHarness(wireguard, config('a', {}, { endpoint: 'x:1' })),
      /peers\[0\]\.endpoint/,
    );
    try {
      new NfHarness(wireguard, config('a', { privateKey: keyA.slice(0, 43) + '!' }));
    } catch (error) {
      assert.ok(!String(error).includes(keyA.slice(0, 40)));
    }
  });
});

void describe('wireguard NF: what the timers send (ctx.emit, injected clock)', () => {
  const type = (frame: Uint8Array): number => frame[42];

  void it('retries an unanswered initiation every REKEY_TIMEOUT, and gives up after REKEY_ATTEMPT_TIME', () => {
    const A = harness('a');
    const B = harness('b');
    assert.equal(type(one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0).bytes), 1, 'lost on its way');
    A.h.tick(T0 + 5 * SECOND - MS);
    assert.deepEqual(A.h.takeEmitted(), [], 'not before REKEY_TIMEOUT');
    A.h.tick(T0 + 5 * SECOND);
    const [retry, ...more] = A.h.takeEmitted();
    assert.equal(more.length, 0);
    assert.equal(retry.output, 'outside');
    assert.equal(type(retry.bytes), 1, 'a new initiation');
    assert.equal(A.h.counters().handshake_retries, 1);
    // The retry is a genuine initiation: B answers it, and A's staged packet goes out in the reply.
    const response = one(B.h, retry.bytes, T0 + 5 * SECOND + MS);
    assert.equal(response.output, 'outside');
    const staged = one(A.h, response.bytes, T0 + 5 * SECOND + 2 * MS);
    assert.equal(one(B.h, staged.bytes, T0 + 5 * SECOND + 3 * MS).output, 'inside');

    const C = harness('a');
    one(C.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0);
    for (let t = 5; t < 90; t += 5) C.h.tick(T0 + t * SECOND);
    assert.equal(C.h.takeEmitted().length, 17, 'one retry per REKEY_TIMEOUT for 90 s');
    C.h.tick(T0 + 90 * SECOND);
    C.h.tick(T0 + 95 * SECOND);
    assert.deepEqual(C.h.takeEmitted(), [], 'after REKEY_ATTEMPT_TIME, nothing more');
    assert.equal(C.h.counters().staged_discarded, 1);
  });

  void it('owes a keepalive KEEPALIVE_TIMEOUT after receiving data it did not answer, and only one', () => {
    const { A, B } = established(); // B received A's first packet at T0 + 3 ms
    B.h.tick(T0 + 3 * MS + 10 * SECOND - MS);
    assert.deepEqual(B.h.takeEmitted(), []);
    B.h.tick(T0 + 3 * MS + 10 * SECOND);
    const [keepalive, ...more] = B.h.takeEmitted();
    assert.equal(more.length, 0);
    assert.equal(type(keepalive.bytes), 4, 'a data message…');
    assert.equal(keepalive.bytes.length, 42 + 32, '…with nothing in it');
    assert.equal(one(A.h, keepalive.bytes, T0 + 11 * SECOND).drop, 'keepalive', 'A authenticates it');
    B.h.tick(T0 + 30 * SECOND);
    assert.deepEqual(B.h.takeEmitted(), [], 'the debt is paid');
    assert.equal(B.h.counters().keepalives_sent, 1);
    assert.equal(
      B.h.counters().tx_bytes,
      A.h.counters().rx_bytes,
      'byte counts agree with the emitted keepalive',
    );
  });

  void it('starts a new handshake when data it sent got nothing back for 15 s', () => {
    const { A } = established(); // A's first data (the staged packet) left at T0 + 2 ms; B never answers
    const first = T0 + 2 * MS;
    assert.equal(type(one(A.h, udpFrame(MAC.aIn, '10.1.0.5', '10.2.0.7'), T0 + 5 * SECOND).bytes), 4);
    A.h.tick(first + 15 * SECOND - MS);
    assert.deepEqual(A.h.takeEmitted(), [], 'the timer runs from the first unanswered packet, not the last');
    A.h.tick(first + 15 * SECOND);
    assert.deepEqual(
      A.h.takeEmitted().map((e) => type(e.bytes)),
      [1],
    );
    assert.equal(A.h.counters().timer_handshakes, 1);
  });

  void it('with persistentKeepalive, brings the tunnel up by itself and keeps it alive', () => {
    const A = harness('a', {}, { persistentKeepalive: 25 });
    const B = harness('b');
    A.h.tick(T0);
    const [init] = A.h.takeEmitted();
    assert.equal(type(init.bytes), 1, 'no session yet: an initiation');
    const response = one(B.h, init.bytes, T0 + MS);
    const confirm = one(A.h, response.bytes, T0 + 2 * MS);
    assert.equal(one(B.h, confirm.bytes, T0 + 3 * MS).drop, 'keepalive', 'the session is confirmed');
    A.h.tick(T0 + 2 * MS + 25 * SECOND - MS);
    assert.deepEqual(A.h.takeEmitted(), []);
    A.h.tick(T0 + 2 * MS + 25 * SECOND);
    const [keepalive] = A.h.takeEmitted();
    assert.equal(one(B.h, keepalive.bytes, T0 + 26 * SECOND).drop, 'keepalive');
    // Traffic either way restarts the interval.
    const back = one(B.h, udpFrame(MAC.bIn, '10.2.0.7', '10.1.0.5'), T0 + 40 * SECOND);
    assert.equal(one(A.h, back.bytes, T0 + 40 * SECOND).output, 'inside');
    A.h.tick(T0 + 50 * SECOND - MS);
    assert.deepEqual(A.h.takeEmitted(), [], 'a packet just now: no keepalive due');
    A.h.tick(T0 + 50 * SECOND);
    assert.equal(A.h.takeEmitted().length, 1, 'but B’s data is owed a keepalive after 10 s');
    A.h.tick(T0 + 75 * SECOND - MS);
    assert.deepEqual(A.h.takeEmitted(), []);
    A.h.tick(T0 + 75 * SECOND);
    assert.equal(A.h.takeEmitted().length, 1, 'and the persistent one 25 s after that');
    assert.equal(A.h.counters().timer_handshakes, 1);
    assert.equal(A.h.counters().keepalives_sent, 4);
  });

  void it('starts a new handshake when data arrives on a session it initiated that is 165 s old', () => {
    const { A, B } = established(); // A's session: T0 + 2 ms
    const early = one(B.h, udpFrame(MAC.bIn, '10.2.0.7', '10.1.0.5'), T0 + 164 * SECOND);
    assert.equal(one(A.h, early.bytes, T0 + 164 * SECOND).output, 'inside');
    A.h.tick(T0 + 164 * SECOND + MS);
    assert.deepEqual(A.h.takeEmitted(), [], 'at 164 s the keys are fresh enough');
    const late = one(B.h, udpFrame(MAC.bIn, '10.2.0.7', '10.1.0.5'), T0 + 166 * SECOND);
    assert.equal(one(A.h, late.bytes, T0 + 166 * SECOND).output, 'inside');
    A.h.tick(T0 + 166 * SECOND + MS);
    const emitted = A.h.takeEmitted();
    assert.equal(emitted.length, 1);
    assert.equal(type(emitted[0].bytes), 1, 'an initiation');
    assert.equal(A.h.counters().rekeys, 1);
    assert.equal(one(B.h, emitted[0].bytes, T0 + 166 * SECOND + 2 * MS).output, 'outside', 'B answers it');
  });

  void it('sends what the host has room for, and the rest at the next tick, counting nothing it did not send', () => {
    const peerKeys = Array.from({ length: 20 }, () => publicOf(rawPrivate()));
    const h = new NfHarness(wireguard, {
      ...(config('a') as object),
      peers: peerKeys.map((publicKey, n) => ({
        publicKey,
        endpoint: `192.0.2.${10 + n}:51820`,
        allowedIPs: [`10.3.${n}.0/24`],
        persistentKeepalive: 25,
      })),
    });
    h.tick(T0);
    assert.equal(h.takeEmitted().length, 16, 'the host’s budget per tick');
    assert.equal(h.counters().emits_refused, 1, 'the 17th was refused and undone');
    assert.equal(h.counters().initiations_sent, 16);
    h.tick(T0 + 100 * MS);
    const rest = h.takeEmitted();
    assert.equal(rest.length, 4, 'the others at the next tick');
    assert.equal(new Set(rest.map((e) => e.bytes.subarray(30, 34).join('.'))).size, 4, 'to four other peers');
    assert.equal(h.counters().initiations_sent, 20);
    assert.equal(h.counters().tx_bytes, 20 * Initiation.Length, 'tx_bytes counts only what was sent');
  });
});
