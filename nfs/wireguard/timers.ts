/**
 * The protocol's timing and message limits (WireGuard whitepaper §6.1, "Preliminaries"). Times are
 * in nanoseconds, the unit of the `now` an NF is given. 64-bit message limits are also given as
 * the two 32-bit halves the replay window and the send counter work with.
 */
const SECOND = 1e9;

/** After this many messages under one key pair the initiator starts a new handshake (2^60). */
export const REKEY_AFTER_MESSAGES_HI = 2 ** 28;
/** No message is sent or accepted with a counter at or beyond 2^64 − 2^13 − 1. */
export const REJECT_AFTER_MESSAGES_HI = 0xffffffff;
export const REJECT_AFTER_MESSAGES_LO = 0xffffdfff;
/** The initiator of a session starts a new handshake when sending on a key pair this old. */
export const REKEY_AFTER_TIME = 120 * SECOND;
/** A key pair this old is used for nothing any more. */
export const REJECT_AFTER_TIME = 180 * SECOND;
/** How long a handshake is retried before the peer's staged packets are given up. */
export const REKEY_ATTEMPT_TIME = 90 * SECOND;
/** An initiation gets this long for its response before another is sent. */
export const REKEY_TIMEOUT = 5 * SECOND;
/** A peer that received data and sent nothing for this long owes a keepalive. */
export const KEEPALIVE_TIMEOUT = 10 * SECOND;
/** The cookie secret changes, and a received cookie expires, after this long. */
export const COOKIE_SECRET_LIFETIME = 120 * SECOND;
/** Initiations accepted from one peer at most this often (50 per second), as wireguard-go does. */
export const INITIATION_MIN_INTERVAL = SECOND / 50;
