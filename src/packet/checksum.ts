/**
 * All Internet-checksum arithmetic lives here (RFC 1071 full sum, RFC 1624 incremental update,
 * pseudo-headers), so that the corner cases are handled once:
 *
 * - A one's-complement sum is kept unfolded in a JS number while adding (a 64 KiB packet sums to
 *   < 2^31, far below 2^53) and folded once at the end.
 * - Incremental update uses RFC 1624 equation 3, HC' = ~(~HC + ~m + m'), not equation 2 of RFC
 *   1141, which can produce 0xFFFF (-0) where a full recompute gives 0x0000.
 * - UDP: a transmitted checksum of 0 means "no checksum" (IPv4 only; RFC 768). A computed 0 is sent
 *   as 0xFFFF, and a rewrite of a packet whose checksum is 0 must leave it 0 (RFC 1624 §3, and what
 *   every NAT must do).
 */
import { read16, write16, write32 } from './bytes.js';

/**
 * Adds the big-endian 16-bit words of `bytes[offset, offset+length)` to `initial`, padding an odd
 * trailing byte with zero (RFC 1071 §4.1). The result is unfolded; pass it to `foldSum`.
 *
 * @example foldSum(sum16(Uint8Array.of(0x45, 0x00), 0, 2)) === 0x4500
 */
export function sum16(bytes: Uint8Array, offset: number, length: number, initial = 0): number {
  let sum = initial;
  let i = offset;
  // Four words per iteration, then the rest word by word: a third fewer loop trips on long data.
  const end8 = offset + (length & ~7);
  for (; i < end8; i += 8) {
    sum +=
      ((bytes[i] << 8) | bytes[i + 1]) +
      ((bytes[i + 2] << 8) | bytes[i + 3]) +
      ((bytes[i + 4] << 8) | bytes[i + 5]) +
      ((bytes[i + 6] << 8) | bytes[i + 7]);
  }
  const end = offset + (length & ~1);
  for (; i < end; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (length & 1) sum += bytes[offset + length - 1] << 8;
  return sum;
}

/** Folds carries back into 16 bits (end-around carry). @example foldSum(0x1fffe) === 0xffff */
export function foldSum(sum: number): number {
  // Two folds cover any sum below 2^32 (integer shifts); larger unfolded totals take the float path.
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum & 0xffff) + (sum >>> 16);
}

/**
 * The Internet checksum of a byte range: the one's complement of the folded sum.
 * A header whose checksum field is included verifies when this returns 0.
 *
 * @example internetChecksum(header, 0, 20) === 0 // a valid IPv4 header
 */
export function internetChecksum(bytes: Uint8Array, offset: number, length: number, initial = 0): number {
  return ~foldSum(sum16(bytes, offset, length, initial)) & 0xffff;
}

/**
 * Sum of the IPv4 pseudo-header (RFC 768, RFC 793): source, destination, zero+protocol, L4 length.
 * @example internetChecksum(udp, 0, udpLen, pseudoHeaderSumV4(src, dst, 17, udpLen))
 */
export function pseudoHeaderSumV4(src: number, dst: number, protocol: number, l4Length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + l4Length;
}

/**
 * The same, with both addresses read from the IPv4 header at `ipAt` as 16-bit halves: no 32-bit
 * address passes through a call (one of 2^30 or more returned from a call V8 did not inline is a
 * heap number, an allocation). @example pseudoHeaderSumV4At(frame, 14, 17, udpLength)
 */
export function pseudoHeaderSumV4At(
  bytes: Uint8Array,
  ipAt: number,
  protocol: number,
  l4Length: number,
): number {
  let sum = protocol + l4Length;
  for (let o = ipAt + 12; o < ipAt + 20; o += 2) sum += (bytes[o] << 8) | bytes[o + 1];
  return sum;
}

/**
 * Sum of the IPv6 pseudo-header (RFC 8200 §8.1): both 16-byte addresses read from `bytes`, the
 * 32-bit upper-layer length and the next-header value.
 * @example pseudoHeaderSumV6(pkt, ip6 + 8, ip6 + 24, 58, icmpLen)
 */
export function pseudoHeaderSumV6(
  bytes: Uint8Array,
  srcAt: number,
  dstAt: number,
  nextHeader: number,
  l4Length: number,
): number {
  return (
    sum16(bytes, srcAt, 16, sum16(bytes, dstAt, 16)) + (l4Length >>> 16) + (l4Length & 0xffff) + nextHeader
  );
}

/**
 * RFC 1624 equation 3: the new checksum after one 16-bit word of the covered data changed from
 * `oldWord` to `newWord`. @example updateChecksum16(ipCsum, oldTtlProto, newTtlProto)
 */
export function updateChecksum16(checksum: number, oldWord: number, newWord: number): number {
  return applyChecksumDelta(checksum, (~oldWord & 0xffff) + (newWord & 0xffff));
}

/** RFC 1624 update for a 32-bit field (an IPv4 address): two 16-bit words at once. */
export function updateChecksum32(checksum: number, oldValue: number, newValue: number): number {
  return applyChecksumDelta(checksum, delta32(oldValue | 0, newValue | 0));
}

/**
 * Applies a precomputed RFC 1624 delta (Σ ~old words + Σ new words, unfolded) to a checksum.
 * @example applyChecksumDelta(csum, (~oldPort & 0xffff) + newPort)
 */
export function applyChecksumDelta(checksum: number, delta: number): number {
  return ~foldSum((~checksum & 0xffff) + delta) & 0xffff;
}

/** The RFC 1624 delta of a 32-bit value changing from `oldValue` to `newValue`. */
export function delta32(oldValue: number, newValue: number): number {
  return (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) + (newValue >>> 16) + (newValue & 0xffff);
}

/** Where the L4 checksum of a packet is, for the rewrite helpers. */
export interface L4ChecksumSite {
  /** Absolute byte offset of the L4 checksum field, or -1 when there is none to patch (a non-first fragment). */
  at: number;
  /**
   * True for UDP: a stored checksum of 0 means "none" and stays 0, and a result of 0 is written as
   * 0xFFFF (RFC 768). (Over IPv6 a zero UDP checksum is invalid; attach() rejects it earlier.)
   */
  udp: boolean;
}

function patchL4(bytes: Uint8Array, site: L4ChecksumSite, delta: number): void {
  if (site.at < 0) return;
  const old = read16(bytes, site.at);
  if (old === 0 && site.udp) return;
  const next = applyChecksumDelta(old, delta);
  write16(bytes, site.at, next === 0 && site.udp ? 0xffff : next);
}

/**
 * Rewrites a 32-bit IPv4 address at `addrAt` (inside the IPv4 header at `ipAt`) and patches the IPv4
 * header checksum and the L4 checksum (whose pseudo-header covers the address) together.
 *
 * @example rewriteIpv4Address(pkt, 14, 14 + 12, newSrc, { at: 14 + 20 + 6, udp: true })
 */
export function rewriteIpv4Address(
  bytes: Uint8Array,
  ipAt: number,
  addrAt: number,
  newAddr: number,
  l4: L4ChecksumSite,
): void {
  // Both addresses as int32 (delta32 reads only their 16-bit halves): an unsigned value ≥ 2^31
  // crossing a call V8 does not inline is a heap number, an allocation per packet.
  const old =
    (bytes[addrAt] << 24) | (bytes[addrAt + 1] << 16) | (bytes[addrAt + 2] << 8) | bytes[addrAt + 3];
  const delta = delta32(old, newAddr | 0);
  const ipCsumAt = ipAt + 10;
  write16(bytes, ipCsumAt, applyChecksumDelta(read16(bytes, ipCsumAt), delta));
  patchL4(bytes, l4, delta);
  write32(bytes, addrAt, newAddr);
}

/**
 * Rewrites a 16-bit word covered only by the L4 checksum (a TCP/UDP port, an ICMP query id) and
 * patches that checksum. @example rewriteL4Word(pkt, tcpAt + 0, 40000, { at: tcpAt + 16, udp: false })
 */
export function rewriteL4Word(bytes: Uint8Array, wordAt: number, newValue: number, l4: L4ChecksumSite): void {
  patchL4(bytes, l4, (~read16(bytes, wordAt) & 0xffff) + (newValue & 0xffff));
  write16(bytes, wordAt, newValue);
}

/**
 * Rewrites a 16-byte IPv6 address at `addrAt` with `newAddr[newAt..+16]` and patches the L4
 * checksum (IPv6 has no header checksum). @example rewriteIpv6Address(pkt, 14 + 8, addr, 0, site)
 */
export function rewriteIpv6Address(
  bytes: Uint8Array,
  addrAt: number,
  newAddr: Uint8Array,
  newAt: number,
  l4: L4ChecksumSite,
): void {
  let delta = 0;
  for (let i = 0; i < 16; i += 2) delta += (~read16(bytes, addrAt + i) & 0xffff) + read16(newAddr, newAt + i);
  patchL4(bytes, l4, delta);
  bytes.set(newAddr.subarray(newAt, newAt + 16), addrAt);
}
