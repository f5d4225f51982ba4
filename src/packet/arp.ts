/**
 * ARP (RFC 826) for Ethernet and IPv4, the only combination nfvisor resolves: a zero-copy view over
 * the 28-byte packet, and a plain representation for building.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Hardware Type (1)         |    Protocol Type (0x0800)     |
 *   |  HLEN (6)     |   PLEN (4)    |          Operation            |
 *   |                 Sender Hardware Address (6 bytes)             |
 *   |                               |   Sender Protocol Address     |
 *   |   (4 bytes)                   |                               |
 *   |                 Target Hardware Address (6 bytes)             |
 *   |                   Target Protocol Address                     |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
import { formatIpv4, formatMac, ipv4, mac } from './address.js';
import { read16, read32, write16, write32 } from './bytes.js';
import { DropReason } from './drop-reason.js';
import { EtherType } from './ip-protocol.js';

/** Byte offsets of the ARP fields; every accessor goes through this table. */
export const ArpField = {
  HardwareType: 0,
  ProtocolType: 2,
  HardwareLength: 4,
  ProtocolLength: 5,
  Operation: 6,
  SenderMac: 8,
  SenderIp: 14,
  TargetMac: 18,
  TargetIp: 24,
  End: 28,
} as const;

/** Length of an Ethernet/IPv4 ARP packet (Ethernet pads the frame to 60 bytes after it). */
export const ARP_LENGTH = ArpField.End;

/** ARP operation codes (IANA "ARP Parameters"); others (RARP, InARP) pass as plain numbers. */
export const ArpOperation = {
  Request: 1,
  Reply: 2,
} as const;
export type ArpOperation = number;

const HARDWARE_ETHERNET = 1;
const MAC_LENGTH = ArpField.SenderIp - ArpField.SenderMac;
const IPV4_LENGTH = ArpField.TargetMac - ArpField.SenderIp;

const EMPTY = new Uint8Array(0);

/** A byte loop rather than `set(subarray())`, which would allocate a view per packet. */
function copyMac(from: Uint8Array, fromAt: number, to: Uint8Array, toAt: number): void {
  for (let i = 0; i < MAC_LENGTH; i++) to[toAt + i] = from[fromAt + i];
}

/**
 * A re-targetable cursor over an Ethernet/IPv4 ARP packet. Make one per NF instance and `attach` it
 * to each packet; it allocates nothing.
 *
 * @example
 * const arp = new ArpView();
 * if (arp.attach(frame, eth.payloadAt()) === DropReason.None && arp.operation() === ArpOperation.Request)
 *   answer(arp.targetIp());
 */
export class ArpView {
  bytes: Uint8Array = EMPTY;
  /** Offset of the packet's first byte in `bytes`. */
  at = 0;
  /** Bytes available from `at` (the capture), usually more than 28 (Ethernet padding). */
  available = 0;

  /**
   * Attaches to untrusted bytes and checks them: 28 bytes present, and hardware type Ethernet,
   * protocol IPv4 with address lengths 6 and 4 (anything else is `BadField`).
   */
  attach(bytes: Uint8Array, at = 0, length = bytes.length - at): DropReason {
    this.bytes = bytes;
    this.at = at;
    this.available = Math.max(0, Math.min(length, bytes.length - at));
    if (this.available < ARP_LENGTH) return DropReason.Truncated;
    if (
      this.hardwareType() !== HARDWARE_ETHERNET ||
      this.protocolType() !== EtherType.Ipv4 ||
      this.bytes[at + ArpField.HardwareLength] !== MAC_LENGTH ||
      this.bytes[at + ArpField.ProtocolLength] !== IPV4_LENGTH
    ) {
      return DropReason.BadField;
    }
    return DropReason.None;
  }

  /** Attaches without checks, for buffers this code sized itself (emission). */
  attachUnchecked(bytes: Uint8Array, at = 0, length = bytes.length - at): this {
    this.bytes = bytes;
    this.at = at;
    this.available = length;
    return this;
  }

  hardwareType(): number {
    return read16(this.bytes, this.at + ArpField.HardwareType);
  }
  protocolType(): number {
    return read16(this.bytes, this.at + ArpField.ProtocolType);
  }
  operation(): number {
    return read16(this.bytes, this.at + ArpField.Operation);
  }
  /** Offset of the sender's 6-byte MAC in `bytes`. */
  senderMacAt(): number {
    return this.at + ArpField.SenderMac;
  }
  /** Sender IPv4 address as an unsigned 32-bit number. */
  senderIp(): number {
    return read32(this.bytes, this.at + ArpField.SenderIp);
  }
  /** Offset of the target's 6-byte MAC in `bytes` (zero in a request). */
  targetMacAt(): number {
    return this.at + ArpField.TargetMac;
  }
  targetIp(): number {
    return read32(this.bytes, this.at + ArpField.TargetIp);
  }
  /** Length of the ARP packet in bytes (always 28 for Ethernet/IPv4). */
  headerLength(): number {
    return ARP_LENGTH;
  }

  /** Writes the fixed hardware/protocol type and length fields of Ethernet/IPv4 ARP. */
  setEthernetIpv4(): void {
    write16(this.bytes, this.at + ArpField.HardwareType, HARDWARE_ETHERNET);
    write16(this.bytes, this.at + ArpField.ProtocolType, EtherType.Ipv4);
    this.bytes[this.at + ArpField.HardwareLength] = MAC_LENGTH;
    this.bytes[this.at + ArpField.ProtocolLength] = IPV4_LENGTH;
  }
  setOperation(value: number): void {
    write16(this.bytes, this.at + ArpField.Operation, value);
  }
  /** Copies the 6 bytes `address[from..+6]` into the sender MAC. */
  setSenderMac(address: Uint8Array, from = 0): void {
    copyMac(address, from, this.bytes, this.at + ArpField.SenderMac);
  }
  setSenderIp(value: number): void {
    write32(this.bytes, this.at + ArpField.SenderIp, value);
  }
  /** Copies the 6 bytes `address[from..+6]` into the target MAC. */
  setTargetMac(address: Uint8Array, from = 0): void {
    copyMac(address, from, this.bytes, this.at + ArpField.TargetMac);
  }
  setTargetIp(value: number): void {
    write32(this.bytes, this.at + ArpField.TargetIp, value);
  }
}

/** A plain Ethernet/IPv4 ARP packet for building and comparing. MACs and addresses are text. */
export interface ArpRepr {
  operation: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export const ArpRepr = {
  /** Reads a checked view into a representation. */
  parse(view: ArpView): ArpRepr {
    return {
      operation: view.operation(),
      senderMac: formatMac(view.bytes, view.senderMacAt()),
      senderIp: formatIpv4(view.senderIp()),
      targetMac: formatMac(view.bytes, view.targetMacAt()),
      targetIp: formatIpv4(view.targetIp()),
    };
  },

  /** Length `emit` writes: always 28. */
  headerLength(_repr?: ArpRepr): number {
    return ARP_LENGTH;
  },

  /** Writes the packet at `bytes[at]` (no Ethernet padding). Returns its length. */
  emit(repr: ArpRepr, bytes: Uint8Array, at = 0, view = new ArpView()): number {
    view.attachUnchecked(bytes, at, ARP_LENGTH);
    view.setEthernetIpv4();
    view.setOperation(repr.operation);
    view.setSenderMac(mac(repr.senderMac));
    view.setSenderIp(ipv4(repr.senderIp));
    view.setTargetMac(mac(repr.targetMac));
    view.setTargetIp(ipv4(repr.targetIp));
    return ARP_LENGTH;
  },
};
