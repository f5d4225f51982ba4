/**
 * Big-endian field access on plain byte arrays. Views use these instead of a DataView so that
 * re-targeting a view costs nothing: a view holds (bytes, offset), never a wrapper object.
 *
 * @example
 * const b = new Uint8Array(4);
 * write16(b, 1, 0xbeef); // b = 00 be ef 00
 * read16(b, 1) === 0xbeef;
 */
export function read16(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 8) | bytes[at + 1];
}

/** Reads an unsigned 32-bit big-endian value. @example read32(Uint8Array.of(255, 0, 0, 1), 0) === 0xff000001 */
export function read32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** Writes the low 16 bits of `value` big-endian. @example write16(b, 0, 0x0800) */
export function write16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value;
}

/** Writes the low 32 bits of `value` big-endian. @example write32(b, 0, 0xc0000201) */
export function write32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

/** Reads a 24-bit big-endian value (VXLAN and GENEVE VNIs). @example read24(Uint8Array.of(0, 0x12, 0x34), 0) === 0x1234 */
export function read24(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
}

/** Writes the low 24 bits of `value` big-endian. @example write24(b, 4, vni) */
export function write24(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 16;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value;
}
