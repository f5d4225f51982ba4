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
 * `hash()` folds the words (a v4 key's constant prefix skipped) and finishes with MurmurHash3's fmix32. `symmetricHash()` hashes the two
 * (address, port) endpoints in a canonical order, so both directions of a connection hash alike.
 */
import { formatIpv4, formatIpv6 } from './address.js';
import { write32 } from './bytes.js';

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
const HASH_SEED = 0x1b873593;

/**
 * The key hash: a multiply-rotate fold over the key's words (FxHash's step, as rustc's hash maps
 * use) closed by MurmurHash3's fmix32 finalizer, which spreads every input bit over all 32 output
 * bits. Order: the address at `first`, the address at `second`, the ports word (halves swapped when
 * `swapPorts`), then version/protocol. An IPv4 key folds only the last word of each address — the
 * other three are the constant ::ffff: prefix — so a v4 key costs four steps, a v6 key ten.
 *
 * Every word is read as int32 (`| 0`) and the result is int32: V8 boxes a number ≥ 2^31 that
 * crosses a call it does not inline (a heap allocation per packet), so unsigned values never cross one.
 */
function hashWords(w: Uint32Array, first: number, second: number, swapPorts: boolean): number {
  const versionProtocol = w[FlowKeyWord.VersionProtocol] | 0;
  const ports = w[FlowKeyWord.Ports] | 0;
  // The IPv6 fold lives in its own function so that this one — all an IPv4 key runs — stays small
  // enough for V8 to inline into a packet loop.
  let h =
    versionProtocol >>> 8 !== 4
      ? foldAddresses(w, first, second)
      : step(step(HASH_SEED, w[first + 3] | 0), w[second + 3] | 0);
  h = step(h, swapPorts ? (ports << 16) | (ports >>> 16) : ports);
  return finish(step(h, versionProtocol));
}

/** fmix32 (MurmurHash3's finalizer): full avalanche; an int32. */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The seed folded with all four words of the address at `first`, then of the one at `second`. */
function foldAddresses(w: Uint32Array, first: number, second: number): number {
  let h = HASH_SEED;
  for (let i = 0; i < ADDRESS_WORDS; i++) h = step(h, w[first + i] | 0);
  for (let i = 0; i < ADDRESS_WORDS; i++) h = step(h, w[second + i] | 0);
  return h;
}

/** One fold step: rotate, mix in the word, multiply by the golden-ratio constant. */
function step(h: number, k: number): number {
  return Math.imul(((h << 5) | (h >>> 27)) ^ k, 0x9e3779b9);
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

  /** Fills the key for an IPv4 packet; addresses are 32-bit numbers (unsigned, or int32: the same bits). */
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

  /**
   * Fills the key for an IPv4 packet from the addresses at `bytes[srcAt]` and `bytes[dstAt]`. On
   * the packet path prefer this to `setV4(view.src(), …)`: the addresses never exist as numbers
   * ≥ 2^31, which V8 would box when a call is not inlined.
   */
  setV4At(
    bytes: Uint8Array,
    srcAt: number,
    dstAt: number,
    protocol: number,
    srcPort: number,
    dstPort: number,
  ): void {
    const w = this.words;
    w[FlowKeyWord.Src] = 0;
    w[FlowKeyWord.Src + 1] = 0;
    w[FlowKeyWord.Src + 2] = V4_MAPPED_MARKER;
    w[FlowKeyWord.Src + 3] = readInt32(bytes, srcAt);
    w[FlowKeyWord.Dst] = 0;
    w[FlowKeyWord.Dst + 1] = 0;
    w[FlowKeyWord.Dst + 2] = V4_MAPPED_MARKER;
    w[FlowKeyWord.Dst + 3] = readInt32(bytes, dstAt);
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
      w[FlowKeyWord.Src + i] = readInt32(bytes, srcAt + 4 * i);
      w[FlowKeyWord.Dst + i] = readInt32(bytes, dstAt + 4 * i);
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

  /**
   * The key's hash (see `hashWords`), direction-sensitive, as an int32 (use `>>> 0` for the unsigned value).
   * Signed on purpose: an int32 stays a small integer in V8, where an unsigned value ≥ 2^31 is a
   * heap number — an allocation per packet whenever the call is not inlined.
   */
  hash(): number {
    return hashWords(this.words, FlowKeyWord.Src, FlowKeyWord.Dst, false);
  }

  /**
   * A hash equal for a key and its `reverse()` (int32, like `hash()`): the endpoint that sorts
   * first (by address, then port) is hashed first. @example a.symmetricHash() === reversedA.symmetricHash()
   */
  symmetricHash(): number {
    const w = this.words;
    const versionProtocol = w[FlowKeyWord.VersionProtocol] | 0;
    if (
      versionProtocol >>> 8 !== 4 ||
      w[FlowKeyWord.Src] !== w[FlowKeyWord.Dst] ||
      w[FlowKeyWord.Src + 1] !== w[FlowKeyWord.Dst + 1] ||
      w[FlowKeyWord.Src + 2] !== w[FlowKeyWord.Dst + 2]
    )
      return this.symmetricHashAny();
    // An IPv4 key (its addresses differ at most in their last word): hashWords' IPv4 steps with
    // the endpoints in canonical order, on locals.
    const a = w[FlowKeyWord.Src + 3];
    const b = w[FlowKeyWord.Dst + 3];
    const ports = w[FlowKeyWord.Ports] | 0;
    const swap = a !== b ? a > b : ports >>> 16 > (ports & 0xffff);
    let h = step(step(HASH_SEED, (swap ? b : a) | 0), (swap ? a : b) | 0);
    h = step(h, swap ? (ports << 16) | (ports >>> 16) : ports);
    return finish(step(h, versionProtocol));
  }

  /** symmetricHash for any key (IPv6, or words no setter writes). */
  private symmetricHashAny(): number {
    const swap = this.compareEndpoints() > 0;
    return hashWords(
      this.words,
      swap ? FlowKeyWord.Dst : FlowKeyWord.Src,
      swap ? FlowKeyWord.Src : FlowKeyWord.Dst,
      swap,
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
    // Unrolled, the words that tell IPv4 keys apart first (addresses' last words, ports).
    return (
      w[3] === table[index + 3] &&
      w[7] === table[index + 7] &&
      w[8] === table[index + 8] &&
      w[9] === table[index + 9] &&
      w[0] === table[index] &&
      w[1] === table[index + 1] &&
      w[2] === table[index + 2] &&
      w[4] === table[index + 4] &&
      w[5] === table[index + 5] &&
      w[6] === table[index + 6]
    );
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

/** A big-endian 32-bit word as int32 (stored into a Uint32Array it reads back unsigned). */
function readInt32(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
}
