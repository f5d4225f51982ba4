/**
 * mac1, mac2 and cookie replies (whitepaper §5.4.4, §5.4.7, §6.6).
 *
 * Every handshake message carries mac1 = MAC(HASH(LABEL_MAC1 ‖ receiver's public key), msg before
 * mac1): a message whose mac1 fails is dropped before any DH is spent on it. Under load, a responder
 * also wants mac2 = MAC(cookie, msg before mac2), where the cookie is MAC(Rm, source address ‖ port)
 * with a secret Rm that changes every two minutes; a message without a valid mac2 is answered, not
 * with a handshake, but with a cookie reply that seals the cookie under XChaCha20-Poly1305 with the
 * message's mac1 as associated data, so only the real sender (who knows that mac1) can use it.
 *
 * @example
 * writeMac1(msg, 0, Initiation.Mac1, peer.mac1Key);
 * checkMac1(msg, 0, Initiation.Mac1, local.mac1Key); // true on the peer's side
 */
import { randomFillSync } from 'node:crypto';
import { equalBytes, mac, MAC_LENGTH, macInto, xaeadOpen, xaeadSeal } from './crypto.js';
import { CookieReply, MessageType, readLe32, writeLe32, writeType } from './messages.js';
import { COOKIE_SECRET_LIFETIME } from './timers.js';

const NONCE_LENGTH = 24;

/** Writes mac1 at `msg[at + mac1At]` over `msg[at, at + mac1At)`. */
export function writeMac1(msg: Uint8Array, at: number, mac1At: number, mac1Key: Uint8Array): void {
  msg.set(mac(mac1Key, msg.subarray(at, at + mac1At)), at + mac1At);
}

/** checkMac1's digest (one thread; used and compared before the next call). */
const expectedMac = new Uint8Array(MAC_LENGTH);

export function checkMac1(msg: Uint8Array, at: number, mac1At: number, mac1Key: Uint8Array): boolean {
  // Every handshake message is checked here first, junk included: nothing allocated.
  macInto(mac1Key, msg, at, mac1At, expectedMac, 0);
  return equalBytes(expectedMac, 0, msg, at + mac1At, MAC_LENGTH);
}

/** The responder's side: checks mac2 and writes cookie replies. */
export class CookieChecker {
  private readonly secret = new Uint8Array(32);
  private secretBorn = -Infinity;

  constructor(private readonly cookieKey: Uint8Array) {}

  /** The cookie for `source` (address bytes ‖ port bytes) under the current secret. */
  private cookie(source: Uint8Array, now: number): Uint8Array {
    if (now - this.secretBorn >= COOKIE_SECRET_LIFETIME) {
      randomFillSync(this.secret);
      this.secretBorn = now;
    }
    return mac(this.secret, source);
  }

  /** True when `msg`'s mac2 (at `mac2At`) is the cookie of `source` (only meaningful under load). */
  checkMac2(msg: Uint8Array, at: number, mac2At: number, source: Uint8Array, now: number): boolean {
    if (now - this.secretBorn >= COOKIE_SECRET_LIFETIME) return false;
    const expected = mac(this.cookie(source, now), msg.subarray(at, at + mac2At));
    return equalBytes(expected, 0, msg, at + mac2At, MAC_LENGTH);
  }

  /**
   * Writes a cookie reply for a message from `source` with sender index `receiverIndex` and mac1
   * `mac1` (copied out of the message before it is overwritten) into `out[at, at+64)`.
   */
  writeReply(
    out: Uint8Array,
    at: number,
    receiverIndex: number,
    mac1: Uint8Array,
    source: Uint8Array,
    now: number,
  ): void {
    const cookie = this.cookie(source, now);
    const nonce = new Uint8Array(NONCE_LENGTH);
    randomFillSync(nonce);
    const sealed = xaeadSeal(this.cookieKey, nonce, cookie, mac1);
    writeType(out, at, MessageType.CookieReply);
    writeLe32(out, at + CookieReply.Receiver, receiverIndex);
    out.set(nonce, at + CookieReply.Nonce);
    out.set(sealed, at + CookieReply.Cookie);
  }
}

/** The initiator's side, one per peer: the last cookie the peer sent, for mac2 on what we send next. */
export class CookieJar {
  private cookie: Uint8Array | null = null;
  private receivedAt = 0;
  /** mac1 of the last handshake message sent to the peer: the AD of its cookie reply. */
  readonly lastMac1 = new Uint8Array(MAC_LENGTH);
  hasSent = false;

  constructor(private readonly cookieKey: Uint8Array) {}

  /** Remembers the mac1 just written at `msg[at + mac1At]`. */
  sent(msg: Uint8Array, at: number, mac1At: number): void {
    this.lastMac1.set(msg.subarray(at + mac1At, at + mac1At + MAC_LENGTH));
    this.hasSent = true;
  }

  /** Opens a cookie reply; false (and nothing kept) when it does not authenticate. */
  consumeReply(msg: Uint8Array, at: number, now: number): boolean {
    if (!this.hasSent) return false;
    const cookie = xaeadOpen(
      this.cookieKey,
      msg.subarray(at + CookieReply.Nonce, at + CookieReply.Cookie),
      msg.subarray(at + CookieReply.Cookie, at + CookieReply.Length),
      this.lastMac1,
    );
    if (cookie === null) return false;
    this.cookie = cookie;
    this.receivedAt = now;
    return true;
  }

  /** Writes mac2: MAC(cookie, msg before mac2) with a fresh cookie, else zeros. */
  writeMac2(msg: Uint8Array, at: number, mac2At: number, now: number): void {
    if (this.cookie !== null && now - this.receivedAt < COOKIE_SECRET_LIFETIME) {
      msg.set(mac(this.cookie, msg.subarray(at, at + mac2At)), at + mac2At);
    } else msg.fill(0, at + mac2At, at + mac2At + MAC_LENGTH);
  }
}

/** The receiver index of a cookie reply. */
export function cookieReceiver(msg: Uint8Array, at: number): number {
  return readLe32(msg, at + CookieReply.Receiver);
}
