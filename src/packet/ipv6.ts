/**
 * IPv6 (RFC 8200): a zero-copy view over the fixed header that also walks the extension-header
 * chain once, when attaching, and a plain representation of the fixed header for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version| Traffic Class |           Flow Label                  |
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   |                Source Address (16 bytes)                      |
 *   |             Destination Address (16 bytes)                    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | Extension headers: Hop-by-Hop (first only), Routing, Fragment, |
 *   | Destination Options, AH — each names the next one             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | Upper-layer header (TCP, UDP, ICMPv6, ESP, …) or No Next Header|
 *
 * Extension-header lengths (RFC 8200 §4): Hop-by-Hop, Routing and Destination Options count 8-byte
 * units after the first 8; Fragment is always 8 bytes; AH (RFC 4302) counts 4-byte units minus 2.
 * ESP is encrypted and ends the walk: it is reported as the upper protocol.
 */
import { formatIpv6, ipv6 } from './address.js';
import { read16, read32, write16, write32 } from './bytes.js';
import { DropReason } from './drop-reason.js';
import { IpProtocol } from './ip-protocol.js';

/** Byte offsets of the IPv6 fixed-header fields; every accessor goes through this table. */
export const Ipv6Field = {
  VersionTcFlow: 0,
  PayloadLength: 4,
  NextHeader: 6,
  HopLimit: 7,
  Src: 8,
  Dst: 24,
  Payload: 40,
} as const;

/** Byte offsets shared by Hop-by-Hop, Routing and Destination Options headers. */
export const Ipv6ExtensionField = {
  NextHeader: 0,
  /** Hdr Ext Len: 8-byte units after the first 8 (AH: 4-byte units minus 2). */
  Length: 1,
  /** First option TLV of Hop-by-Hop and Destination Options. */
  Options: 2,
} as const;

/** Byte offsets of the Fragment header (RFC 8200 §4.5). */
export const Ipv6FragmentField = {
  NextHeader: 0,
  Reserved: 1,
  /** Fragment offset (13 bits, 8-byte units), 2 reserved bits, M flag. */
  OffsetFlags: 2,
  Identification: 4,
  Length: 8,
} as const;

export const IPV6_HEADER_LENGTH = Ipv6Field.Payload;
/** Extension headers are at least 8 bytes; their lengths count in these units. */
const EXTENSION_UNIT = 8;
/** AH counts 4-byte words, minus 2 (RFC 4302 §2.2); its fixed part (through the sequence number) is 12 bytes. */
const AH_UNIT = 4;
const AH_FIXED_LENGTH = 12;
const FRAGMENT_OFFSET_MASK = 0xfff8;
const FRAGMENT_MORE = 0x0001;
/** A fragmented packet reassembles to at most 65535 bytes of fragmentable part. */
const MAX_REASSEMBLED = 0xffff;

/** Option types with no length byte (RFC 8200 §4.2). */
const OPTION_PAD1 = 0;

const VERSION_SHIFT = 28;
const TRAFFIC_CLASS_SHIFT = 20;
const FLOW_LABEL_MASK = 0xfffff;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over an IPv6 header and its extension-header chain. Make one per NF
 * instance and `attach` it to each packet; it allocates nothing, and after `attach` every accessor,
 * including `upperProtocol()` and `upperAt()`, is O(1).
 *
 * @example
 * const ip = new Ipv6View();
 * if (ip.attach(frame, 14) === DropReason.None && ip.upperProtocol() === IpProtocol.Udp && ip.fragmentOffset() === 0)
 *   udp.attach(frame, ip.upperAt(), ip.upperLength());
 */
export class Ipv6View {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the capture), which may exceed 40 + `payloadLength()` (Ethernet padding). */
  available = 0;
  private extensionCount = 0;
  /** Bytes of extension headers between the fixed header and the upper-layer header. */
  private extensionLength = 0;
  private upper = 0;
  private fragment = false;
  private fragmentOffsetBytes = 0;
  private fragmentMore = false;
  private fragmentId = 0;
  private finalDestination = 0;

  /**
   * Attaches to untrusted bytes and checks them: length, version, payload length, and every
   * extension header (inside the payload, well-formed option TLVs, Hop-by-Hop only first, at most
   * `maxExtensionHeaders`). Returns `DropReason.None` when every accessor is safe to use.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at, maxExtensionHeaders = 8): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    this.resetChain();
    if (this.available < IPV6_HEADER_LENGTH) return DropReason.Truncated;
    if (this.version() !== 6) return DropReason.BadVersion;
    if (this.payloadLength() > this.available - IPV6_HEADER_LENGTH) return DropReason.Truncated;
    return this.walkExtensionHeaders(maxExtensionHeaders);
  }

  /** Attaches without checks, for buffers this code sized itself (emission): no extension headers. */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    this.resetChain();
    return this;
  }

  version(): number {
    return this.bytes[this.at + Ipv6Field.VersionTcFlow] >>> 4;
  }
  trafficClass(): number {
    return (read32(this.bytes, this.at + Ipv6Field.VersionTcFlow) >>> TRAFFIC_CLASS_SHIFT) & 0xff;
  }
  flowLabel(): number {
    return read32(this.bytes, this.at + Ipv6Field.VersionTcFlow) & FLOW_LABEL_MASK;
  }
  /** Bytes after the fixed header, extension headers included. */
  payloadLength(): number {
    return read16(this.bytes, this.at + Ipv6Field.PayloadLength);
  }
  /** The fixed header's Next Header: the first extension header, or the upper layer. */
  nextHeader(): number {
    return this.bytes[this.at + Ipv6Field.NextHeader];
  }
  hopLimit(): number {
    return this.bytes[this.at + Ipv6Field.HopLimit];
  }
  /** Offset of the 16-byte source address in `bytes`. */
  srcAt(): number {
    return this.at + Ipv6Field.Src;
  }
  /** Offset of the 16-byte destination address in `bytes`. */
  dstAt(): number {
    return this.at + Ipv6Field.Dst;
  }
  /**
   * Offset of the final destination address: the destination field, or, while a Routing header
   * still has segments left, the last address it lists (type 0), its home address (type 2) or the
   * first entry of its segment list (type 4, SRH). Upper-layer checksums use this address in their
   * pseudo-header (RFC 8200 §8.1).
   */
  finalDstAt(): number {
    return this.finalDestination;
  }
  /** Offset of the payload (the first extension header, if any) in `bytes`. */
  payloadAt(): number {
    return this.at + IPV6_HEADER_LENGTH;
  }

  /**
   * The protocol after the extension-header chain (TCP, UDP, ICMPv6, ESP, No Next Header 59, …). In
   * a non-first fragment it is the Fragment header's Next Header, whose header is not in this packet.
   */
  upperProtocol(): number {
    return this.extensionCount === 0 ? this.nextHeader() : this.upper;
  }
  /** Offset in `bytes` of the upper-layer header (or of the fragment data). */
  upperAt(): number {
    return this.at + IPV6_HEADER_LENGTH + this.extensionLength;
  }
  /** Bytes from `upperAt()` to the end of the payload (by `payloadLength()`, not the capture). */
  upperLength(): number {
    return this.payloadLength() - this.extensionLength;
  }
  extensionHeaderCount(): number {
    return this.extensionCount;
  }
  /** True when a Fragment header is present (first, later, or atomic fragment). */
  isFragment(): boolean {
    return this.fragment;
  }
  /** Fragment offset in bytes (the field counts 8-byte units); 0 without a Fragment header. */
  fragmentOffset(): number {
    return this.fragmentOffsetBytes;
  }
  moreFragments(): boolean {
    return this.fragmentMore;
  }
  fragmentIdentification(): number {
    return this.fragmentId;
  }

  /** Writes version 6, the traffic class and the 20-bit flow label. */
  setVersionTrafficClassFlowLabel(trafficClass: number, flowLabel: number): void {
    const word =
      ((6 << VERSION_SHIFT) |
        ((trafficClass & 0xff) << TRAFFIC_CLASS_SHIFT) |
        (flowLabel & FLOW_LABEL_MASK)) >>>
      0;
    write32(this.bytes, this.at + Ipv6Field.VersionTcFlow, word);
  }
  setPayloadLength(value: number): void {
    write16(this.bytes, this.at + Ipv6Field.PayloadLength, value);
  }
  setNextHeader(value: number): void {
    this.bytes[this.at + Ipv6Field.NextHeader] = value;
  }
  setHopLimit(value: number): void {
    this.bytes[this.at + Ipv6Field.HopLimit] = value;
  }
  /** Copies the 16 bytes `from[fromAt..+16]` into the source address. */
  setSrc(from: Uint8Array, fromAt = 0): void {
    copyAddress(from, fromAt, this.bytes, this.at + Ipv6Field.Src);
  }
  /** Copies the 16 bytes `from[fromAt..+16]` into the destination address. */
  setDst(from: Uint8Array, fromAt = 0): void {
    copyAddress(from, fromAt, this.bytes, this.at + Ipv6Field.Dst);
  }

  private resetChain(): void {
    this.extensionCount = 0;
    this.extensionLength = 0;
    this.upper = 0;
    this.fragment = false;
    this.fragmentOffsetBytes = 0;
    this.fragmentMore = false;
    this.fragmentId = 0;
    this.finalDestination = this.at + Ipv6Field.Dst;
  }

  /**
   * Walks the extension headers inside the payload and records where the upper layer starts. The
   * walk stops at the first non-extension protocol, and after the Fragment header of a non-first
   * fragment (what follows is fragment data, not the header its Next Header names).
   */
  private walkExtensionHeaders(maxExtensionHeaders: number): DropReason {
    const bytes = this.bytes;
    const start = this.at + IPV6_HEADER_LENGTH;
    const end = start + this.payloadLength();
    let next = this.nextHeader();
    let p = start;
    let count = 0;
    let fragmentDataAt = -1;
    while (isExtensionHeader(next)) {
      // RFC 8200 §4.1: Hop-by-Hop Options may only follow the fixed header.
      if (next === IpProtocol.HopByHop && count !== 0) return DropReason.BadField;
      if (count === maxExtensionHeaders) return DropReason.TooManyLayers;
      if (p + EXTENSION_UNIT > end) return DropReason.Truncated;
      let headerLength: number;
      if (next === IpProtocol.Ipv6Fragment) {
        // A second Fragment header would make reassembly ambiguous.
        if (this.fragment) return DropReason.BadField;
        headerLength = Ipv6FragmentField.Length;
        const offsetFlags = read16(bytes, p + Ipv6FragmentField.OffsetFlags);
        this.fragment = true;
        this.fragmentOffsetBytes = offsetFlags & FRAGMENT_OFFSET_MASK;
        this.fragmentMore = (offsetFlags & FRAGMENT_MORE) !== 0;
        this.fragmentId = read32(bytes, p + Ipv6FragmentField.Identification);
        fragmentDataAt = p + headerLength;
      } else if (next === IpProtocol.Ah) {
        headerLength = (bytes[p + Ipv6ExtensionField.Length] + 2) * AH_UNIT;
        if (headerLength < AH_FIXED_LENGTH) return DropReason.BadHeaderLength;
      } else {
        headerLength = (bytes[p + Ipv6ExtensionField.Length] + 1) * EXTENSION_UNIT;
      }
      if (p + headerLength > end) return DropReason.Truncated;
      if (
        (next === IpProtocol.HopByHop || next === IpProtocol.Ipv6DestOpts) &&
        !optionsWellFormed(bytes, p + Ipv6ExtensionField.Options, p + headerLength)
      ) {
        return DropReason.BadOption;
      }
      if (next === IpProtocol.Ipv6Route) this.noteRoutingDestination(p, headerLength);
      next = bytes[p + Ipv6ExtensionField.NextHeader];
      p += headerLength;
      count++;
      if (this.fragmentOffsetBytes !== 0) break;
    }
    if (fragmentDataAt >= 0) {
      // RFC 8200 §4.5: every fragment but the last carries a multiple of 8 bytes, and the
      // reassembled packet cannot exceed 65535 bytes (the IPv6 "ping of death").
      const fragmentLength = end - fragmentDataAt;
      if (this.fragmentMore && fragmentLength % EXTENSION_UNIT !== 0) return DropReason.BadLength;
      if (this.fragmentOffsetBytes + fragmentLength > MAX_REASSEMBLED) return DropReason.BadLength;
    }
    this.extensionCount = count;
    this.extensionLength = p - start;
    this.upper = next;
    return DropReason.None;
  }

  /** Records the final destination named by the Routing header at `p` (already inside the payload). */
  private noteRoutingDestination(p: number, headerLength: number): void {
    const type = this.bytes[p + RoutingField.Type];
    if (this.bytes[p + RoutingField.SegmentsLeft] === 0) return;
    const addresses = (headerLength - RoutingField.Addresses) >>> 4;
    if (addresses === 0) return;
    if (type === RoutingType.Source)
      this.finalDestination = p + RoutingField.Addresses + (addresses - 1) * 16;
    else if (type === RoutingType.Mobility || type === RoutingType.Segment)
      this.finalDestination = p + RoutingField.Addresses;
  }
}

/** Byte offsets of a Routing header (RFC 8200 §4.4) and where types 0, 2 and 4 keep addresses. */
const RoutingField = { Type: 2, SegmentsLeft: 3, Addresses: 8 } as const;
/** Routing types whose addresses change the final destination: RFC 2460 type 0, RFC 6275 type 2, RFC 8754 SRH. */
const RoutingType = { Source: 0, Mobility: 2, Segment: 4 } as const;

function isExtensionHeader(protocol: number): boolean {
  return (
    protocol === IpProtocol.HopByHop ||
    protocol === IpProtocol.Ipv6Route ||
    protocol === IpProtocol.Ipv6Fragment ||
    protocol === IpProtocol.Ipv6DestOpts ||
    protocol === IpProtocol.Ah
  );
}

/** Walks option TLVs in `[i, end)`: Pad1, or type+length+data that stays inside the header. */
function optionsWellFormed(bytes: Uint8Array, i: number, end: number): boolean {
  while (i < end) {
    if (bytes[i] === OPTION_PAD1) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    i += 2 + bytes[i + 1];
    if (i > end) return false;
  }
  return true;
}

/** A byte loop rather than `set(subarray())`, which would allocate a view per packet. */
function copyAddress(from: Uint8Array, fromAt: number, to: Uint8Array, toAt: number): void {
  for (let i = 0; i < 16; i++) to[toAt + i] = from[fromAt + i];
}

/** A plain IPv6 fixed header for building and comparing packets. Addresses are RFC 5952 text. */
export interface Ipv6Repr {
  src: string;
  dst: string;
  /** Next Header of the fixed header; extension headers, if any, are the caller's payload bytes. */
  nextHeader: number;
  /** Length of what follows the fixed header, in bytes. */
  payloadLength: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;
}

/** What `Ipv6Repr.emit` needs; the rest defaults (hop limit 64, traffic class 0, flow label 0). */
export type Ipv6ReprInit = Pick<Ipv6Repr, 'src' | 'dst' | 'nextHeader' | 'payloadLength'> & Partial<Ipv6Repr>;

export const Ipv6Repr = {
  /** Reads a checked view's fixed header into a representation. */
  parse(view: Ipv6View): Ipv6Repr {
    return {
      src: formatIpv6(view.bytes, view.srcAt()),
      dst: formatIpv6(view.bytes, view.dstAt()),
      nextHeader: view.nextHeader(),
      payloadLength: view.payloadLength(),
      hopLimit: view.hopLimit(),
      trafficClass: view.trafficClass(),
      flowLabel: view.flowLabel(),
    };
  },

  /** Header length `emit` writes: always the 40-byte fixed header. */
  headerLength(_repr?: Ipv6ReprInit): number {
    return IPV6_HEADER_LENGTH;
  },

  /** Writes the fixed header at `bytes[at]`; the payload is the caller's. Returns the header length. */
  emit(repr: Ipv6ReprInit, bytes: Uint8Array, at = 0, view = new Ipv6View()): number {
    view.attachUnchecked(bytes, at, IPV6_HEADER_LENGTH);
    view.setVersionTrafficClassFlowLabel(repr.trafficClass ?? 0, repr.flowLabel ?? 0);
    view.setPayloadLength(repr.payloadLength);
    view.setNextHeader(repr.nextHeader);
    view.setHopLimit(repr.hopLimit ?? 64);
    view.setSrc(ipv6(repr.src));
    view.setDst(ipv6(repr.dst));
    return IPV6_HEADER_LENGTH;
  },
};
