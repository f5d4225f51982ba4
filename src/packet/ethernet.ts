/**
 * Ethernet II (IEEE 802.3) with 802.1Q / 802.1ad VLAN tags: a zero-copy view over header bytes, and
 * a plain representation for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination MAC (6 bytes)                  |
 *   +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                               |                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *   |                      Source MAC (6 bytes)                     |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   TPID (0x8100 / 0x88a8)      | PCP |D|         VID           |  × tag count (0..maxTags)
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           EtherType           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * A tag sits where the EtherType would be: its TPID takes the EtherType's place, and the real
 * EtherType follows the last tag. 802.1ad (QinQ) puts an 0x88a8 service tag before an 0x8100
 * customer tag; either TPID is accepted at any depth.
 */
import { formatMac, mac } from './address.js';
import { read16, write16 } from './bytes.js';
import { DropReason } from './drop-reason.js';
import { EtherType } from './ip-protocol.js';

/** Byte offsets of the untagged Ethernet header fields; every accessor goes through this table. */
export const EthernetField = {
  Dst: 0,
  Src: 6,
  /** The EtherType of an untagged frame, or the TPID of the first tag. */
  EtherType: 12,
  Payload: 14,
} as const;

/** Byte offsets inside one 4-byte VLAN tag, which starts at `EthernetField.EtherType + 4 × i`. */
export const VlanTagField = {
  Tpid: 0,
  Tci: 2,
  Length: 4,
} as const;

export const ETHERNET_HEADER_LENGTH = EthernetField.Payload;
export const VLAN_TAG_LENGTH = VlanTagField.Length;
const MAC_LENGTH = EthernetField.Src - EthernetField.Dst;

/** Tag Control Information: PCP (3 bits), DEI (1 bit), VID (12 bits). */
const TCI_PCP_SHIFT = 13;
const TCI_DEI = 0x1000;
const TCI_VID_MASK = 0x0fff;

const EMPTY = new Uint8Array(0);

/** A byte loop rather than `set(subarray())`, which would allocate a view per packet. */
function copyMac(from: Uint8Array, fromAt: number, to: Uint8Array, toAt: number): void {
  for (let i = 0; i < MAC_LENGTH; i++) to[toAt + i] = from[fromAt + i];
}

function isTagProtocol(type: number): boolean {
  return type === EtherType.Vlan || type === EtherType.QinQ;
}

/**
 * A re-targetable cursor over an Ethernet header and its VLAN tags. Make one per NF instance and
 * `attach` it to each frame; it allocates nothing.
 *
 * @example
 * const eth = new EthernetView();
 * if (eth.attach(frame) === DropReason.None && eth.etherType() === EtherType.Ipv4) ip.attach(frame, eth.payloadAt());
 */
export class EthernetView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the capture). */
  available = 0;
  private tags = 0;

  /**
   * Attaches to untrusted bytes and walks the VLAN tags. More than `maxTags` tags is
   * `TooManyLayers`; a header (with its tags) longer than the capture is `Truncated`.
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at, maxTags = 2): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    this.tags = 0;
    if (this.available < ETHERNET_HEADER_LENGTH) return DropReason.Truncated;
    let tags = 0;
    while (isTagProtocol(read16(bytes, at + EthernetField.EtherType + tags * VLAN_TAG_LENGTH))) {
      if (tags === maxTags) return DropReason.TooManyLayers;
      tags++;
      if (ETHERNET_HEADER_LENGTH + tags * VLAN_TAG_LENGTH > this.available) return DropReason.Truncated;
    }
    this.tags = tags;
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission), with `tagCount` tags. */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at, tagCount = 0): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    this.tags = tagCount;
    return this;
  }

  /** Offset of the destination MAC in `bytes`. */
  dstAt(): number {
    return this.at + EthernetField.Dst;
  }
  /** Offset of the source MAC in `bytes`. */
  srcAt(): number {
    return this.at + EthernetField.Src;
  }
  /** VLAN tags found by `attach` (or given to `attachUnchecked`). */
  tagCount(): number {
    return this.tags;
  }
  /** TPID of tag `i` (0 = outermost): 0x8100 (802.1Q) or 0x88a8 (802.1ad). */
  tagProtocol(i: number): number {
    return read16(this.bytes, this.tagAt(i) + VlanTagField.Tpid);
  }
  /** Priority code point (0–7) of tag `i`. */
  tagPcp(i: number): number {
    return this.tci(i) >>> TCI_PCP_SHIFT;
  }
  /** Drop-eligible indicator of tag `i`. */
  tagDei(i: number): boolean {
    return (this.tci(i) & TCI_DEI) !== 0;
  }
  /** VLAN identifier (0–4095) of tag `i`. */
  tagVid(i: number): number {
    return this.tci(i) & TCI_VID_MASK;
  }
  /** The EtherType after the last tag. */
  etherType(): number {
    return read16(this.bytes, this.at + EthernetField.EtherType + this.tags * VLAN_TAG_LENGTH);
  }
  /** Header length in bytes: 14 + 4 per tag. */
  headerLength(): number {
    return ETHERNET_HEADER_LENGTH + this.tags * VLAN_TAG_LENGTH;
  }
  /** Offset of the payload (the L3 header) in `bytes`. */
  payloadAt(): number {
    return this.at + this.headerLength();
  }

  /** Copies the 6 bytes `address[from..+6]` into the destination MAC. */
  setDst(address: Uint8Array, from = 0): void {
    copyMac(address, from, this.bytes, this.at + EthernetField.Dst);
  }
  /** Copies the 6 bytes `address[from..+6]` into the source MAC. */
  setSrc(address: Uint8Array, from = 0): void {
    copyMac(address, from, this.bytes, this.at + EthernetField.Src);
  }
  setTagProtocol(i: number, tpid: number): void {
    write16(this.bytes, this.tagAt(i) + VlanTagField.Tpid, tpid);
  }
  /** Writes the TCI of tag `i`: PCP (3 bits), DEI, VID (12 bits). */
  setTag(i: number, pcp: number, dei: boolean, vid: number): void {
    const tci = ((pcp & 7) << TCI_PCP_SHIFT) | (dei ? TCI_DEI : 0) | (vid & TCI_VID_MASK);
    write16(this.bytes, this.tagAt(i) + VlanTagField.Tci, tci);
  }
  /** Writes the EtherType after the last tag. */
  setEtherType(value: number): void {
    write16(this.bytes, this.at + EthernetField.EtherType + this.tags * VLAN_TAG_LENGTH, value);
  }

  private tagAt(i: number): number {
    return this.at + EthernetField.EtherType + i * VLAN_TAG_LENGTH;
  }
  private tci(i: number): number {
    return read16(this.bytes, this.tagAt(i) + VlanTagField.Tci);
  }
}

/** One VLAN tag of a representation. */
export interface EthernetTag {
  /** 0x8100 (802.1Q) or 0x88a8 (802.1ad). */
  tpid: number;
  pcp: number;
  dei: boolean;
  vid: number;
}

/** A plain Ethernet header for building and comparing frames. MACs are `aa:bb:cc:dd:ee:ff` text. */
export interface EthernetRepr {
  dst: string;
  src: string;
  /** Outermost first. */
  tags: EthernetTag[];
  etherType: number;
}

export const EthernetRepr = {
  /** Reads a checked view into a representation. */
  parse(view: EthernetView): EthernetRepr {
    const tags: EthernetTag[] = [];
    for (let i = 0; i < view.tagCount(); i++) {
      tags.push({ tpid: view.tagProtocol(i), pcp: view.tagPcp(i), dei: view.tagDei(i), vid: view.tagVid(i) });
    }
    return {
      dst: formatMac(view.bytes, view.dstAt()),
      src: formatMac(view.bytes, view.srcAt()),
      tags,
      etherType: view.etherType(),
    };
  },

  /** Header length `emit` writes. @example EthernetRepr.headerLength({ ...repr, tags: [] }) === 14 */
  headerLength(repr: EthernetRepr): number {
    return ETHERNET_HEADER_LENGTH + repr.tags.length * VLAN_TAG_LENGTH;
  },

  /** Writes the header at `bytes[at]`; the payload is the caller's. Returns the header length. */
  emit(repr: EthernetRepr, bytes: Uint8Array, at = 0, view = new EthernetView()): number {
    const headerLength = EthernetRepr.headerLength(repr);
    view.attachUnchecked(bytes, at, headerLength, repr.tags.length);
    view.setDst(mac(repr.dst));
    view.setSrc(mac(repr.src));
    repr.tags.forEach((tag, i) => {
      view.setTagProtocol(i, tag.tpid);
      view.setTag(i, tag.pcp, tag.dei, tag.vid);
    });
    view.setEtherType(repr.etherType);
    return headerLength;
  },
};
