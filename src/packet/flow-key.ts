/**
 * A flow's 5-tuple (+ IP version) in reusable fixed-size storage, with fast 32-bit hashes for flow
 * tables. One `FlowKey` per NF instance is filled per packet (`setV4`/`setV6`); nothing allocates
 * except `toString`.
 *
 *   word  0–3  source address        (IPv4: ::ffff:a.b.c.d, IPv4-mapped, RFC 4291 §2.5.5.2)
 *   word  4–7  destination address
 *   word  8    source port << 16 | destination port
 *   word  9    IP version << 8 | protocol
 *
 * `hash()` is MurmurHash3 (x86, 32-bit) over the ten words. `symmetricHash()` hashes the two
 * (address, port) endpoints in a canonical order, so both directions of a connection hash alike.
 */
import { formatIpv4, formatIpv6 } from './address.js';
import { read32, write32 } from './bytes.js';

/** Word offsets inside a key; every accessor goes through this table. */
export const FlowKeyWord = {
  Src: 0,
  Dst: 4,
  Ports: 8,
  VersionProtocol: 9,
} as const;

/** Words one key occupies (in a key's own storage and in a flow table's `Uint32Array`). */
export const FLOW_KEY_WORDS = 10;
const ADDRESS_WORDS = 4;
/** Word 2 of an IPv4-mapped IPv6 address (::ffff:0:0/96). */
const V4_MAPPED_MARKER = 0x0000ffff;
const HASH_SEED = 0x9747b28c;

/**
 * MurmurHash3 (x86, 32-bit) over a key's words: the address at `first`, the address at `second`,
 * the ports word (halves swapped when `swapPorts`), then version/protocol. One flat function with
 * no calls inside, returning int32: V8 boxes numbers ≥ 2^31 that cross a call it does not inline,
 * so the unsigned conversion happens in the small, inlinable public methods.
 */
function murmur(w: Uint32Array, first: number, second: number, swapPorts: boolean): number {
  let h = HASH_SEED;
  for (let i = 0; i < FLOW_KEY_WORDS; i++) {
    let k: number;
    if (i < ADDRESS_WORDS) k = w[first + i];
    else if (i < 2 * ADDRESS_WORDS) k = w[second + i - ADDRESS_WORDS];
    else if (i === FlowKeyWord.Ports) k = swapPorts ? (w[i] << 16) | (w[i] >>> 16) : w[i];
    else k = w[i];
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // Finalizer (fmix32), after the length in bytes.
  h ^= FLOW_KEY_WORDS * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * A reusable 5-tuple key.
 *
 * @example
 * const key = new FlowKey();
 * key.setV4(0x0a000001, 0x0a000002, IpProtocol.Tcp, 1234, 80);
 * let slot = table.find(key, key.hash());
 * key.toString(); // '6 10.0.0.1:1234 -> 10.0.0.2:80'
 */
export class FlowKey {
  readonly words = new Uint32Array(FLOW_KEY_WORDS);

  /** Fills the key for an IPv4 packet; addresses are unsigned 32-bit numbers. */
  setV4(src: number, dst: number, protocol: number, srcPort: number, dstPort: number): void {
    const w = this.words;
    w[FlowKeyWord.Src] = 0;
    w[FlowKeyWord.Src + 1] = 0;
    w[FlowKeyWord.Src + 2] = V4_MAPPED_MARKER;
    w[FlowKeyWord.Src + 3] = src;
    w[FlowKeyWord.Dst] = 0;
    w[FlowKeyWord.Dst + 1] = 0;
    w[FlowKeyWord.Dst + 2] = V4_MAPPED_MARKER;
    w[FlowKeyWord.Dst + 3] = dst;
    this.setRest(4, protocol, srcPort, dstPort);
  }

  /** Fills the key for an IPv6 packet from the 16-byte addresses at `bytes[srcAt]` and `bytes[dstAt]`. */
  setV6(
    bytes: Uint8Array,
    srcAt: number,
    dstAt: number,
    protocol: number,
    srcPort: number,
    dstPort: number,
  ): void {
    const w = this.words;
    for (let i = 0; i < ADDRESS_WORDS; i++) {
      w[FlowKeyWord.Src + i] = read32(bytes, srcAt + 4 * i);
      w[FlowKeyWord.Dst + i] = read32(bytes, dstAt + 4 * i);
    }
    this.setRest(6, protocol, srcPort, dstPort);
  }

  /** 4 or 6 (0 for a key never set). */
  version(): number {
    return this.words[FlowKeyWord.VersionProtocol] >>> 8;
  }
  protocol(): number {
    return this.words[FlowKeyWord.VersionProtocol] & 0xff;
  }
  srcPort(): number {
    return this.words[FlowKeyWord.Ports] >>> 16;
  }
  dstPort(): number {
    return this.words[FlowKeyWord.Ports] & 0xffff;
  }
  /** IPv4 source address (unsigned 32-bit); meaningful when `version() === 4`. */
  srcV4(): number {
    return this.words[FlowKeyWord.Src + 3];
  }
  /** IPv4 destination address (unsigned 32-bit); meaningful when `version() === 4`. */
  dstV4(): number {
    return this.words[FlowKeyWord.Dst + 3];
  }
  /** Writes the 16-byte source address (IPv4-mapped for IPv4) to `out[at..+16]`. */
  srcAddressTo(out: Uint8Array, at = 0): void {
    for (let i = 0; i < ADDRESS_WORDS; i++) write32(out, at + 4 * i, this.words[FlowKeyWord.Src + i]);
  }
  /** Writes the 16-byte destination address (IPv4-mapped for IPv4) to `out[at..+16]`. */
  dstAddressTo(out: Uint8Array, at = 0): void {
    for (let i = 0; i < ADDRESS_WORDS; i++) write32(out, at + 4 * i, this.words[FlowKeyWord.Dst + i]);
  }

  /** MurmurHash3 of the key: unsigned 32-bit, direction-sensitive. */
  hash(): number {
    return murmur(this.words, FlowKeyWord.Src, FlowKeyWord.Dst, false) >>> 0;
  }

  /**
   * A hash equal for a key and its `reverse()`: the endpoint that sorts first (by address, then
   * port) is hashed first. @example a.symmetricHash() === reversedA.symmetricHash()
   */
  symmetricHash(): number {
    const swap = this.compareEndpoints() > 0;
    return (
      murmur(
        this.words,
        swap ? FlowKeyWord.Dst : FlowKeyWord.Src,
        swap ? FlowKeyWord.Src : FlowKeyWord.Dst,
        swap,
      ) >>> 0
    );
  }

  /** Swaps source and destination (addresses and ports) in place. */
  reverse(): void {
    const w = this.words;
    for (let i = 0; i < ADDRESS_WORDS; i++) {
      const t = w[FlowKeyWord.Src + i];
      w[FlowKeyWord.Src + i] = w[FlowKeyWord.Dst + i];
      w[FlowKeyWord.Dst + i] = t;
    }
    const ports = w[FlowKeyWord.Ports];
    w[FlowKeyWord.Ports] = (ports << 16) | (ports >>> 16);
  }

  copyFrom(other: FlowKey): void {
    this.words.set(other.words);
  }
  equals(other: FlowKey): boolean {
    return this.equalsAt(other.words, 0);
  }
  /** Stores the key at word `index` of a table (`index` is a word offset, e.g. slot × FLOW_KEY_WORDS). */
  writeTo(table: Uint32Array, index: number): void {
    table.set(this.words, index);
  }
  /** Loads the key stored at word `index` of a table. */
  readFrom(table: Uint32Array, index: number): void {
    const w = this.words;
    for (let i = 0; i < FLOW_KEY_WORDS; i++) w[i] = table[index + i];
  }
  /** True when the key stored at word `index` of a table equals this one. */
  equalsAt(table: Uint32Array, index: number): boolean {
    const w = this.words;
    for (let i = 0; i < FLOW_KEY_WORDS; i++) if (w[i] !== table[index + i]) return false;
    return true;
  }

  /** `'6 10.0.0.1:1234 -> 10.0.0.2:80'`, or `'17 [2001:db8::1]:53 -> [2001:db8::2]:5353'` (allocates). */
  toString(): string {
    return `${this.protocol()} ${this.endpoint(FlowKeyWord.Src, this.srcPort())} -> ${this.endpoint(FlowKeyWord.Dst, this.dstPort())}`;
  }

  private endpoint(word: number, port: number): string {
    if (this.version() === 4) return `${formatIpv4(this.words[word + 3])}:${port}`;
    const bytes = new Uint8Array(16);
    for (let i = 0; i < ADDRESS_WORDS; i++) write32(bytes, 4 * i, this.words[word + i]);
    return `[${formatIpv6(bytes)}]:${port}`;
  }

  private setRest(version: number, protocol: number, srcPort: number, dstPort: number): void {
    this.words[FlowKeyWord.Ports] = ((srcPort & 0xffff) << 16) | (dstPort & 0xffff);
    this.words[FlowKeyWord.VersionProtocol] = (version << 8) | (protocol & 0xff);
  }

  /** Sign of (source address, source port) − (destination address, destination port). */
  private compareEndpoints(): number {
    const w = this.words;
    for (let i = 0; i < ADDRESS_WORDS; i++) {
      const a = w[FlowKeyWord.Src + i];
      const b = w[FlowKeyWord.Dst + i];
      if (a !== b) return a < b ? -1 : 1;
    }
    return this.srcPort() - this.dstPort();
  }
}
