/**
 * Which replica of a translating NF (one that declares `NfDefinition.translation`: a NAT) must see
 * a packet. The host spreads other NFs' packets by symmetric flow hash, which keeps both directions
 * of a connection on one replica only while nobody rewrites the 5-tuple; a NAT's reply comes back
 * to an address and port the NAT chose, so it is steered by who owns that port instead:
 *
 *   to the external address     the replica owning the destination port (TCP, UDP), the echo
 *                               identifier (ICMP echo), or the source port of the packet an ICMP
 *                               error quotes (it left through the NAT from that port)
 *   anything else               the replica of the inside endpoint: source address and port, or
 *                               for an ICMP error the destination the quoted packet went to
 *
 * so an inside endpoint meets one replica whatever remote it talks to (endpoint-independent
 * mapping holds), and the replica that mapped it owns the port its replies come back to. Frames
 * it cannot read (not IPv4, truncated) go to replica 0, whose NF drops them as it would alone.
 */
import { NfvError } from '../errors.js';
import { parseIpv4 } from '../packet/address.js';
import { read16, read32 } from '../packet/bytes.js';
import { DropReason } from '../packet/drop-reason.js';
import { Icmpv4Type } from '../packet/icmpv4.js';
import { IpProtocol } from '../packet/ip-protocol.js';
import { LinkType } from '../packet/link-type.js';
import { Layer, PacketParser } from '../packet/packet-parser.js';
import { portOwner, type NfDefinition } from '../sdk/define-nf.js';

/** A translation as the host uses it: the external address as a u32. */
export interface TranslationSteering {
  address: number;
  portLo: number;
  portHi: number;
}

/**
 * The translation NF `name` declares for `config`, checked (it is the NF's code answering), or
 * null for an NF that declares none. Throws an NfvError naming the NF for a malformed answer.
 */
export function translationOf(
  name: string,
  definition: Pick<NfDefinition<Record<string, unknown>>, 'translation'>,
  config: Record<string, unknown>,
): TranslationSteering | null {
  if (typeof definition.translation !== 'function') return null;
  const bad = (why: string): never => {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `nfs.${name}: the NF's translation() ${why}`, {
      field: `nfs.${name}`,
    });
  };
  let declared: unknown;
  try {
    declared = definition.translation(config);
  } catch (error) {
    return bad(`failed: ${(error as Error).message}`);
  }
  if (typeof declared !== 'object' || declared === null) return bad('returned no object');
  const { address, portLo, portHi } = declared as Record<string, unknown>;
  const u32 = typeof address === 'string' ? parseIpv4(address) : -1;
  if (u32 < 0) bad(`returned address ${String(address)}, not an IPv4 address`);
  const isPort = (v: unknown): v is number =>
    Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
  if (!isPort(portLo) || !isPort(portHi) || portLo > portHi)
    bad(`returned ports ${String(portLo)}–${String(portHi)}, not a range within 1–65535`);
  return { address: u32 >>> 0, portLo: portLo as number, portHi: portHi as number };
}

/** Steers packets of translating NFs (one parser, reused: nothing allocated per packet). */
export class TranslationSteerer {
  // The NAT reads frames as they come (no tunnel decapsulation): so does its steering.
  private readonly parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });

  /** The replica (0 … replicas − 1) of an NF translating as `t` that must see `bytes[at, at+length)`. */
  replicaOf(t: TranslationSteering, bytes: Uint8Array, at: number, length: number, replicas: number): number {
    const p = this.parser;
    if (p.attach(bytes, at, length, LinkType.Ethernet) !== DropReason.None || p.l3 !== Layer.Ipv4) return 0;
    const toExternal = p.ipv4.dst() >>> 0 === t.address;
    let address = p.ipv4.src() >>> 0;
    let port = 0;
    if (p.l4 === Layer.Tcp) port = toExternal ? p.tcp.dstPort() : p.tcp.srcPort();
    else if (p.l4 === Layer.Udp) port = toExternal ? p.udp.dstPort() : p.udp.srcPort();
    else if (p.l4 === Layer.Icmpv4) {
      const type = p.icmpv4.type();
      if (type === Icmpv4Type.EchoRequest || type === Icmpv4Type.EchoReply) port = p.icmpv4.identifier();
      else {
        // An error quotes the packet it is about: its IPv4 header, then ≥ 8 bytes of transport.
        const q = p.icmpv4.payloadAt();
        const end = at + length;
        if (q + 20 > end) return 0;
        const quotedL4 = q + (bytes[q] & 0x0f) * 4;
        if (quotedL4 + 8 > end) return 0;
        const quotedProtocol = bytes[q + 9];
        // Ports: source at +0, destination at +2; an echo's identifier at +4.
        const echo = quotedProtocol === IpProtocol.Icmp;
        if (toExternal) port = read16(bytes, echo ? quotedL4 + 4 : quotedL4);
        else {
          address = read32(bytes, q + 16);
          port = read16(bytes, echo ? quotedL4 + 4 : quotedL4 + 2);
        }
      }
    }
    if (toExternal) return portOwner(port, t.portLo, replicas);
    return (endpointHash(address, port) >>> 0) % replicas;
  }
}

/** A mix of an endpoint's address and port (murmur3's finalizer): inside endpoints spread evenly. */
function endpointHash(address: number, port: number): number {
  let h = Math.imul(address ^ Math.imul(port, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
