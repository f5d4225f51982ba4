/**
 * The handshake and its primitives, each side judged by the other: both ends of a handshake must
 * derive crossed transport keys (initiator's send = responder's receive), any tampering or a wrong
 * preshared key must end it, and the primitives must match their definitions computed another way
 * (HMAC-BLAKE2s via @noble/hashes, TAI64N by hand). The wire-level judge is wireguard-go itself in
 * test/system/wireguard-interop.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { checkMac1, CookieChecker, CookieJar, writeMac1 } from './cookie.js';
import {
  compareTimestamps,
  decodeKey,
  dh,
  encodeKey,
  generateKeyPair,
  hash,
  hmac,
  kdf,
  privateKeyFromRaw,
  publicKeyOf,
  writeTai64n,
} from './crypto.js';
import { CookieReply, Initiation, Response } from './messages.js';
import {
  localIdentity,
  readInitiation,
  readResponse,
  remoteIdentity,
  writeInitiation,
  writeResponse,
  type LocalIdentity,
} from './noise.js';
import { TransportCipher, transportKey } from './transport.js';

function identity(): { raw: Uint8Array; local: LocalIdentity } {
  const raw = new Uint8Array(32);
  crypto.getRandomValues(raw);
  return { raw, local: localIdentity(raw) };
}

void describe('WireGuard primitives', () => {
  void it('HMAC and KDF are HMAC-BLAKE2s and HKDF as the whitepaper defines them', () => {
    const key = new Uint8Array(32).fill(7);
    const input = new TextEncoder().encode('input');
    assert.deepEqual(new Uint8Array(hmac(key, input)), nobleHmac(blake2s, key, input));
    const t0 = nobleHmac(blake2s, key, input);
    const t1 = nobleHmac(blake2s, t0, Uint8Array.of(1));
    const t2 = nobleHmac(blake2s, t0, Uint8Array.from([...t1, 2]));
    const t3 = nobleHmac(blake2s, t0, Uint8Array.from([...t2, 3]));
    assert.deepEqual(
      kdf(key, input, 3).map((t) => new Uint8Array(t)),
      [t1, t2, t3],
    );
    assert.deepEqual(new Uint8Array(hash(input)), blake2s(input));
  });

  void it('X25519 agrees both ways, and refuses a low-order public key', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    assert.deepEqual(dh(a.privateKey, b.publicKey), dh(b.privateKey, a.publicKey));
    assert.equal(dh(a.privateKey, new Uint8Array(32)), null, 'the zero point');
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.equal(dh(a.privateKey, one), null, 'the point of order 1... (u = 1)');
  });

  void it('a raw private key round-trips to its public key (the wg genkey | wg pubkey pair)', () => {
    // From `wg genkey` / `wg pubkey` on this machine.
    const priv = decodeKey('4N3ltZuZNX5fF6Yl66E1R/EMU6XCb+VhjSgNchhNyVk=');
    assert.ok(priv);
    assert.equal(
      encodeKey(publicKeyOf(privateKeyFromRaw(priv))),
      '+2ePgJfM5b8Kk9hTMCgfCKZmqaO2VamYrwMDd2pcrSo=',
    );
    assert.equal(decodeKey('short'), null);
    assert.equal(decodeKey('4N3ltZuZNX5fF6Yl66E1R/EMU6XCb+VhjSgNchhNyVl='), null, 'non-canonical last char');
  });

  void it('TAI64N is 2^62 + 10 + seconds, nanoseconds whitened to 2^24 ns, and orders as bytes', () => {
    const t = new Uint8Array(12);
    writeTai64n(t, 0, 1_700_000_000_123_456_768); // exact as a double
    const view = new DataView(t.buffer);
    const seconds = (BigInt(view.getUint32(0)) << 32n) | BigInt(view.getUint32(4));
    assert.equal(seconds, (1n << 62n) + 10n + 1_700_000_000n);
    assert.equal(view.getUint32(8), 123_456_768 & ~0xffffff);
    const later = new Uint8Array(12);
    writeTai64n(later, 0, 1_700_000_001_000_000_000);
    assert.ok(compareTimestamps(later, t) > 0);
    assert.equal(compareTimestamps(t, t), 0);
  });
});

void describe('Noise_IKpsk2 handshake', () => {
  const alice = identity();
  const bob = identity();
  const psk = new Uint8Array(32).fill(0x42);
  const bobSeenByAlice = remoteIdentity(alice.local, bob.local.publicKey, psk);
  const aliceSeenByBob = remoteIdentity(bob.local, alice.local.publicKey, psk);
  const lookup = (pub: Uint8Array) =>
    Buffer.compare(pub, alice.local.publicKey) === 0 ? aliceSeenByBob : undefined;

  function handshake(): { i: ReturnType<typeof readResponse>; r: ReturnType<typeof writeResponse> } {
    const init = new Uint8Array(Initiation.Length);
    const state = writeInitiation(alice.local, bobSeenByAlice, 0x11223344, Date.now() * 1e6, init, 0);
    assert.ok(state);
    const seen = readInitiation(bob.local, init, 0, lookup);
    assert.ok(seen, 'bob reads alice');
    assert.equal(seen.peerIndex, 0x11223344);
    const reply = new Uint8Array(Response.Length);
    const r = writeResponse(seen, 0x55667788, reply, 0);
    const i = readResponse(alice.local, bobSeenByAlice, state, reply, 0);
    return { i, r };
  }

  void it('both sides derive crossed transport keys, and data sealed by one opens at the other', () => {
    const { i, r } = handshake();
    assert.ok(i && r);
    assert.deepEqual(i.send, r.receive);
    assert.deepEqual(i.receive, r.send);
    assert.notDeepEqual(i.send, i.receive);
    const t = new TransportCipher();
    const plain = new TextEncoder().encode('hello through the tunnel');
    const sealed = new Uint8Array(64);
    const n = t.seal(transportKey(i.send), 0, 3, plain, 0, plain.length, sealed, 0);
    assert.equal(n, 32 + 16);
    const out = new Uint8Array(64);
    assert.equal(t.open(transportKey(r.receive), 0, 3, sealed, 0, n, out, 0), 32);
    assert.deepEqual(out.subarray(0, plain.length), plain);
    assert.equal(t.open(transportKey(r.receive), 0, 4, sealed, 0, n, out, 0), -1, 'another counter');
    sealed[5] ^= 1;
    assert.equal(t.open(transportKey(r.receive), 0, 3, sealed, 0, n, out, 0), -1, 'a flipped byte');
  });

  void it('every session has new keys (fresh ephemerals)', () => {
    const a = handshake();
    const b = handshake();
    assert.notDeepEqual(a.i?.send, b.i?.send);
  });

  void it('a flipped byte anywhere in an initiation ends it', () => {
    const init = new Uint8Array(Initiation.Length);
    writeInitiation(alice.local, bobSeenByAlice, 1, Date.now() * 1e6, init, 0);
    for (const at of [Initiation.Ephemeral + 3, Initiation.Static + 5, Initiation.Timestamp + 1]) {
      const bad = init.slice();
      bad[at] ^= 0x80;
      assert.equal(readInitiation(bob.local, bad, 0, lookup), null, `byte ${at}`);
    }
  });

  void it('an initiation for someone else, or from an unknown key, is not read', () => {
    const carol = identity();
    const init = new Uint8Array(Initiation.Length);
    writeInitiation(alice.local, bobSeenByAlice, 1, Date.now() * 1e6, init, 0);
    assert.equal(readInitiation(carol.local, init, 0, lookup), null);
    assert.equal(
      readInitiation(bob.local, init, 0, () => undefined),
      null,
    );
  });

  void it('a preshared key that differs ends the handshake at the response', () => {
    const wrong = remoteIdentity(bob.local, alice.local.publicKey, new Uint8Array(32));
    const init = new Uint8Array(Initiation.Length);
    const state = writeInitiation(alice.local, bobSeenByAlice, 1, Date.now() * 1e6, init, 0);
    const seen = readInitiation(bob.local, init, 0, () => wrong);
    assert.ok(state && seen, 'the psk is not used before the response');
    const reply = new Uint8Array(Response.Length);
    assert.ok(writeResponse(seen, 2, reply, 0));
    assert.equal(readResponse(alice.local, bobSeenByAlice, state, reply, 0), null);
  });

  void it('a peer with a low-order public key gets no initiation', () => {
    const zero = remoteIdentity(alice.local, new Uint8Array(32));
    assert.equal(zero.staticShared, null);
    assert.equal(writeInitiation(alice.local, zero, 1, 0, new Uint8Array(Initiation.Length), 0), null);
  });
});

void describe('mac1 and cookies', () => {
  const alice = identity();
  const bob = identity();
  const bobSeenByAlice = remoteIdentity(alice.local, bob.local.publicKey);

  void it('mac1 written for bob checks at bob and nowhere else', () => {
    const msg = new Uint8Array(Initiation.Length);
    writeInitiation(alice.local, bobSeenByAlice, 9, 0, msg, 0);
    writeMac1(msg, 0, Initiation.Mac1, bobSeenByAlice.mac1Key);
    assert.ok(checkMac1(msg, 0, Initiation.Mac1, bob.local.mac1Key));
    assert.ok(!checkMac1(msg, 0, Initiation.Mac1, alice.local.mac1Key));
    msg[Initiation.Sender] ^= 1;
    assert.ok(!checkMac1(msg, 0, Initiation.Mac1, bob.local.mac1Key));
  });

  void it('a cookie reply opens only with the mac1 it answers, and its mac2 then checks', () => {
    const now = 1e12;
    const msg = new Uint8Array(Initiation.Length);
    writeInitiation(alice.local, bobSeenByAlice, 9, now, msg, 0);
    writeMac1(msg, 0, Initiation.Mac1, bobSeenByAlice.mac1Key);
    const jar = new CookieJar(bobSeenByAlice.cookieKey);
    jar.sent(msg, 0, Initiation.Mac1);
    jar.writeMac2(msg, 0, Initiation.Mac2, now);
    const source = Uint8Array.of(192, 0, 2, 7, 0xca, 0x6c);
    const checker = new CookieChecker(bob.local.cookieKey);
    assert.ok(!checker.checkMac2(msg, 0, Initiation.Mac2, source, now), 'no cookie yet');
    const reply = new Uint8Array(CookieReply.Length);
    checker.writeReply(reply, 0, 9, msg.slice(Initiation.Mac1, Initiation.Mac2), source, now);
    const stranger = new CookieJar(bobSeenByAlice.cookieKey);
    assert.ok(!stranger.consumeReply(reply, 0, now), 'a jar that sent nothing opens nothing');
    assert.ok(jar.consumeReply(reply, 0, now));
    jar.writeMac2(msg, 0, Initiation.Mac2, now + 1e9);
    assert.ok(checker.checkMac2(msg, 0, Initiation.Mac2, source, now + 1e9));
    const elsewhere = Uint8Array.of(192, 0, 2, 8, 0xca, 0x6c);
    assert.ok(!checker.checkMac2(msg, 0, Initiation.Mac2, elsewhere, now + 1e9), 'the cookie is per source');
    reply[40] ^= 1;
    assert.ok(!jar.consumeReply(reply, 0, now), 'a forged reply does not open');
  });
});
