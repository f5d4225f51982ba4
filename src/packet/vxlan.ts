/**
 * VXLAN (RFC 7348): the 8-byte header after UDP port 4789, followed by an inner Ethernet frame.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |R|R|R|R|I|R|R|R|            Reserved                           |
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *   |                  Inner Ethernet frame ...                     |
 *
 * The I flag must be set (a valid VNI); the reserved bits are ignored on receipt and sent as zero.
 */
import { read24, write24 } from './bytes.js';
import { DropReason } from './drop-reason.js';

/** Byte offsets of the VXLAN header fields; every accessor goes through this table. */
export const VxlanField = {
  Flags: 0,
  Reserved1: 1,
  Vni: 4,
  Reserved2: 7,
  Payload: 8,
} as const;

export const VXLAN_HEADER_LENGTH = VxlanField.Payload;
/** The I flag: "the VNI is valid" (RFC 7348 §5). */
export const VXLAN_FLAG_VNI = 0x08;

const EMPTY = new Uint8Array(0);

/**
 * A re-targetable cursor over a VXLAN header. Make one per NF instance and `attach` it to each
 * packet; it allocates nothing.
 *
 * @example
 * const vxlan = new VxlanView();
 * if (vxlan.attach(frame, udp.payloadAt(), udp.payloadLength()) === DropReason.None) vni = vxlan.vni();
 */
export class VxlanView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the header's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the UDP payload, clipped to the buffer). */
  available = 0;

  /** Attaches to untrusted bytes: at least 8 bytes, and the I flag set. */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    if (this.available < VXLAN_HEADER_LENGTH) return DropReason.Truncated;
    if ((this.flags() & VXLAN_FLAG_VNI) === 0) return DropReason.BadField;
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission). */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    return this;
  }

  /** The flags byte (`VXLAN_FLAG_VNI` and reserved bits). */
  flags(): number {
    return this.bytes[this.at + VxlanField.Flags];
  }
  /** The 24-bit VXLAN Network Identifier. */
  vni(): number {
    return read24(this.bytes, this.at + VxlanField.Vni);
  }
  /** Offset of the inner Ethernet frame in `bytes`. */
  payloadAt(): number {
    return this.at + VxlanField.Payload;
  }
  /** Length of the inner frame: what follows the header in the UDP payload. */
  payloadLength(): number {
    return this.available - VXLAN_HEADER_LENGTH;
  }

  /** Sets the flags byte and clears the 24 reserved bits after it. */
  setFlags(value: number): void {
    this.bytes[this.at + VxlanField.Flags] = value;
    write24(this.bytes, this.at + VxlanField.Reserved1, 0);
  }
  /** Sets the VNI and clears the reserved byte after it. */
  setVni(value: number): void {
    write24(this.bytes, this.at + VxlanField.Vni, value);
    this.bytes[this.at + VxlanField.Reserved2] = 0;
  }
}

/** A plain VXLAN header for building and comparing packets. */
export interface VxlanRepr {
  /** 24-bit VXLAN Network Identifier. */
  vni: number;
}

export const VxlanRepr = {
  /** Reads a checked view into a representation. */
  parse(view: VxlanView): VxlanRepr {
    return { vni: view.vni() };
  },

  /** Header length `emit` writes (always 8). */
  headerLength(_repr?: VxlanRepr): number {
    return VXLAN_HEADER_LENGTH;
  },

  /**
   * Writes the header (I flag set, reserved bits zero) at `bytes[at]`; the inner frame is the
   * caller's. Returns the header length. @example p += VxlanRepr.emit({ vni: 42 }, out, p)
   */
  emit(repr: VxlanRepr, bytes: Uint8Array, at = 0, view = new VxlanView()): number {
    view.attachUnchecked(bytes, at, VXLAN_HEADER_LENGTH);
    view.setFlags(VXLAN_FLAG_VNI);
    view.setVni(repr.vni);
    return VXLAN_HEADER_LENGTH;
  },
};
