/** Test helpers: literal packet bytes written as spaced hex, and a buffer pre-filled with 0xa5. */

/** `hex('45 00 00 73')` → Uint8Array. Whitespace and `|` separators are ignored. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/[\s|]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex literal: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A buffer of `length` bytes filled with 0xa5, so a setter that leaves bits behind shows up. */
export function dirty(length: number): Uint8Array {
  return new Uint8Array(length).fill(0xa5);
}

/** `bytes` copied to offset `at` of a larger dirty buffer (for round trips at a non-zero offset). */
export function placeAt(bytes: Uint8Array, at: number, trailing = 7): Uint8Array {
  const out = dirty(at + bytes.length + trailing);
  out.set(bytes, at);
  return out;
}
