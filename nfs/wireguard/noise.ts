/**
 * The WireGuard handshake: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as the whitepaper §5.4.2–§5.4.5
 * spells it out, one function per message and side. Each writes or reads a message's fields in
 * place (mac1 and mac2 are cookie.ts's business) and returns the handshake state to carry on, or
 * the transport keys. A null return means the message did not authenticate: the caller counts it
 * and answers nothing.
 *
 *   initiator                                 responder
 *   writeInitiation ── initiation (148) ──▶  readInitiation  (who? which timestamp?)
 *   readResponse    ◀── response (92) ─────  writeResponse   → keys (receive, send)
 *   → keys (send, receive)
 *
 * @example
 * const i = writeInitiation(alice, bobAsSeenByAlice, 7, now, msg, 0)!;
 * const seen = readInitiation(bob, msg, 0, (pub) => aliceAsSeenByBob)!;
 * const rKeys = writeResponse(seen, 9, reply, 0)!;
 * const iKeys = readResponse(alice, bobAsSeenByAlice, i, reply, 0)!; // iKeys.send equals rKeys.receive
 */
import type { KeyObject } from 'node:crypto';
import {
  aeadOpen,
  aeadSeal,
  dh,
  generateKeyPair,
  hash,
  kdf,
  KEY_LENGTH,
  privateKeyFromRaw,
  publicKeyOf,
  TAG_LENGTH,
  TIMESTAMP_LENGTH,
  writeTai64n,
} from './crypto.js';
import { Initiation, MessageType, readLe32, Response, writeLe32, writeType } from './messages.js';

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const INITIAL_CHAIN_KEY = hash(text(CONSTRUCTION));
const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, text(IDENTIFIER));
const EMPTY = new Uint8Array(0);

/** This side's static identity and what derives from it once. */
export interface LocalIdentity {
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
  /** HASH(LABEL_MAC1 ‖ own public key): checks mac1 of messages sent to us. */
  readonly mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE ‖ own public key): seals the cookie replies we send. */
  readonly cookieKey: Uint8Array;
  /** HASH(HASH(HASH(CONSTRUCTION) ‖ IDENTIFIER) ‖ own public key): the responder's first hash. */
  readonly initialHash: Uint8Array;
}

/** A peer as this side sees it. */
export interface RemoteIdentity {
  readonly publicKey: Uint8Array;
  /** 32 zero bytes when the peer has no preshared key. */
  readonly presharedKey: Uint8Array;
  /** HASH(LABEL_MAC1 ‖ peer public key): mac1 of messages we send to the peer. */
  readonly mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE ‖ peer public key): opens the cookie replies the peer sends us. */
  readonly cookieKey: Uint8Array;
  readonly initialHash: Uint8Array;
  /** DH(own static, peer static), precomputed; null for a low-order key (no handshake ever). */
  readonly staticShared: Uint8Array | null;
}

export function localIdentity(privateKey: Uint8Array): LocalIdentity {
  const key = privateKeyFromRaw(privateKey);
  const publicKey = publicKeyOf(key);
  return {
    privateKey: key,
    publicKey,
    mac1Key: hash(text(LABEL_MAC1), publicKey),
    cookieKey: hash(text(LABEL_COOKIE), publicKey),
    initialHash: hash(INITIAL_HASH, publicKey),
  };
}

export function remoteIdentity(
  local: LocalIdentity,
  publicKey: Uint8Array,
  presharedKey: Uint8Array = new Uint8Array(KEY_LENGTH),
): RemoteIdentity {
  return {
    publicKey,
    presharedKey,
    mac1Key: hash(text(LABEL_MAC1), publicKey),
    cookieKey: hash(text(LABEL_COOKIE), publicKey),
    initialHash: hash(INITIAL_HASH, publicKey),
    staticShared: dh(local.privateKey, publicKey),
  };
}

/** What the initiator keeps between its initiation and the response. */
export interface InitiatorHandshake {
  readonly chainingKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly ephemeral: KeyObject;
  readonly senderIndex: number;
}

/** What the responder learned from an initiation. */
export interface ReceivedInitiation {
  readonly peer: RemoteIdentity;
  readonly peerIndex: number;
  readonly timestamp: Uint8Array;
  readonly chainingKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly remoteEphemeral: Uint8Array;
}

export interface TransportKeys {
  readonly send: Uint8Array;
  readonly receive: Uint8Array;
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return hash(h, data);
}

/**
 * Writes an initiation from `local` to `remote` into `msg[at, at+116)` (everything before mac1).
 * Null when the peer's static key is of low order: such a peer never gets a packet.
 */
export function writeInitiation(
  local: LocalIdentity,
  remote: RemoteIdentity,
  senderIndex: number,
  nowNs: number,
  msg: Uint8Array,
  at: number,
): InitiatorHandshake | null {
  if (remote.staticShared === null) return null;
  const ephemeral = generateKeyPair();
  let c = INITIAL_CHAIN_KEY;
  let h = remote.initialHash;
  [c] = kdf(c, ephemeral.publicKey, 1);
  h = mixHash(h, ephemeral.publicKey);
  const es = dh(ephemeral.privateKey, remote.publicKey);
  if (es === null) return null;
  let k: Uint8Array;
  [c, k] = kdf(c, es, 2);
  const encryptedStatic = aeadSeal(k, local.publicKey, h);
  h = mixHash(h, encryptedStatic);
  [c, k] = kdf(c, remote.staticShared, 2);
  const timestamp = new Uint8Array(TIMESTAMP_LENGTH);
  writeTai64n(timestamp, 0, nowNs);
  const encryptedTimestamp = aeadSeal(k, timestamp, h);
  h = mixHash(h, encryptedTimestamp);

  writeType(msg, at, MessageType.Initiation);
  writeLe32(msg, at + Initiation.Sender, senderIndex);
  msg.set(ephemeral.publicKey, at + Initiation.Ephemeral);
  msg.set(encryptedStatic, at + Initiation.Static);
  msg.set(encryptedTimestamp, at + Initiation.Timestamp);
  return { chainingKey: c, hash: h, ephemeral: ephemeral.privateKey, senderIndex };
}

/**
 * Reads an initiation sent to `local` (mac1 already checked). `lookup` finds the peer by the
 * static public key the message reveals. Null when anything fails to authenticate or the peer is
 * unknown.
 */
export function readInitiation(
  local: LocalIdentity,
  msg: Uint8Array,
  at: number,
  lookup: (publicKey: Uint8Array) => RemoteIdentity | undefined,
): ReceivedInitiation | null {
  const ephemeral = msg.slice(at + Initiation.Ephemeral, at + Initiation.Static);
  let c = INITIAL_CHAIN_KEY;
  let h = local.initialHash;
  [c] = kdf(c, ephemeral, 1);
  h = mixHash(h, ephemeral);
  const es = dh(local.privateKey, ephemeral);
  if (es === null) return null;
  let k: Uint8Array;
  [c, k] = kdf(c, es, 2);
  const encryptedStatic = msg.subarray(at + Initiation.Static, at + Initiation.Timestamp);
  const peerPublic = aeadOpen(k, encryptedStatic, h);
  if (peerPublic === null) return null;
  h = mixHash(h, encryptedStatic);
  const peer = lookup(peerPublic);
  if (peer === undefined || peer.staticShared === null) return null;
  [c, k] = kdf(c, peer.staticShared, 2);
  const encryptedTimestamp = msg.subarray(at + Initiation.Timestamp, at + Initiation.Mac1);
  const timestamp = aeadOpen(k, encryptedTimestamp, h);
  if (timestamp === null) return null;
  h = mixHash(h, encryptedTimestamp);
  return {
    peer,
    peerIndex: readLe32(msg, at + Initiation.Sender),
    timestamp: new Uint8Array(timestamp),
    chainingKey: c,
    hash: h,
    remoteEphemeral: ephemeral,
  };
}

/**
 * Writes the response to `initiation` into `msg[at, at+60)` (everything before mac1) and returns
 * the responder's transport keys. Null when a DH has no result (low-order ephemeral).
 */
export function writeResponse(
  initiation: ReceivedInitiation,
  senderIndex: number,
  msg: Uint8Array,
  at: number,
): TransportKeys | null {
  const ephemeral = generateKeyPair();
  let c = initiation.chainingKey;
  let h = initiation.hash;
  [c] = kdf(c, ephemeral.publicKey, 1);
  h = mixHash(h, ephemeral.publicKey);
  const ee = dh(ephemeral.privateKey, initiation.remoteEphemeral);
  const se = dh(ephemeral.privateKey, initiation.peer.publicKey);
  if (ee === null || se === null) return null;
  [c] = kdf(c, ee, 1);
  [c] = kdf(c, se, 1);
  const [c3, tau, k] = kdf(c, initiation.peer.presharedKey, 3);
  c = c3;
  h = mixHash(h, tau);
  const encryptedNothing = aeadSeal(k, EMPTY, h);
  writeType(msg, at, MessageType.Response);
  writeLe32(msg, at + Response.Sender, senderIndex);
  writeLe32(msg, at + Response.Receiver, initiation.peerIndex);
  msg.set(ephemeral.publicKey, at + Response.Ephemeral);
  msg.set(encryptedNothing, at + Response.Empty);
  const [receive, send] = kdf(c, EMPTY, 2);
  return { send, receive };
}

/** Reads the response to `handshake` (mac1 already checked); the initiator's keys, or null. */
export function readResponse(
  local: LocalIdentity,
  remote: RemoteIdentity,
  handshake: InitiatorHandshake,
  msg: Uint8Array,
  at: number,
): TransportKeys | null {
  const ephemeral = msg.slice(at + Response.Ephemeral, at + Response.Empty);
  let c = handshake.chainingKey;
  let h = handshake.hash;
  [c] = kdf(c, ephemeral, 1);
  h = mixHash(h, ephemeral);
  const ee = dh(handshake.ephemeral, ephemeral);
  const se = dh(local.privateKey, ephemeral);
  if (ee === null || se === null) return null;
  [c] = kdf(c, ee, 1);
  [c] = kdf(c, se, 1);
  const [c3, tau, k] = kdf(c, remote.presharedKey, 3);
  c = c3;
  h = mixHash(h, tau);
  if (aeadOpen(k, msg.subarray(at + Response.Empty, at + Response.Empty + TAG_LENGTH), h) === null)
    return null;
  const [send, receive] = kdf(c, EMPTY, 2);
  return { send, receive };
}
