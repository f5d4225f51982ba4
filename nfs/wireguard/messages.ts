/**
 * The four WireGuard messages (whitepaper §5.4), offsets named once. Integers are little-endian;
 * every message starts with a type byte and three reserved zero bytes.
 *
 *   initiation (148)  type=1 | rsv 3 | sender 4 | ephemeral 32 | static 32+16 | timestamp 12+16 | mac1 16 | mac2 16
 *   response   (92)   type=2 | rsv 3 | sender 4 | receiver 4 | ephemeral 32 | empty 0+16 | mac1 16 | mac2 16
 *   cookie     (64)   type=3 | rsv 3 | receiver 4 | nonce 24 | cookie 16+16
 *   data       (32+)  type=4 | rsv 3 | receiver 4 | counter 8 | packet 16n + 16
 */
export const MessageType = { Initiation: 1, Response: 2, CookieReply: 3, Data: 4 } as const;

export const Initiation = {
  Type: 0,
  Sender: 4,
  Ephemeral: 8,
  Static: 40,
  Timestamp: 88,
  Mac1: 116,
  Mac2: 132,
  Length: 148,
} as const;

export const Response = {
  Type: 0,
  Sender: 4,
  Receiver: 8,
  Ephemeral: 12,
  Empty: 44,
  Mac1: 60,
  Mac2: 76,
  Length: 92,
} as const;

export const CookieReply = {
  Type: 0,
  Receiver: 4,
  Nonce: 8,
  Cookie: 32,
  Length: 64,
} as const;

export const Data = {
  Type: 0,
  Receiver: 4,
  Counter: 8,
  Payload: 16,
  /** A keepalive: header and tag around an empty packet. */
  MinLength: 32,
} as const;

/** Reads a little-endian uint32. */
export function readLe32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

export function writeLe32(b: Uint8Array, at: number, value: number): void {
  b[at] = value & 0xff;
  b[at + 1] = (value >>> 8) & 0xff;
  b[at + 2] = (value >>> 16) & 0xff;
  b[at + 3] = value >>> 24;
}

/** Writes the type byte and zeroes the three reserved bytes. */
export function writeType(b: Uint8Array, at: number, type: number): void {
  b[at] = type;
  b[at + 1] = b[at + 2] = b[at + 3] = 0;
}
