/**
 * Cryptokey routing (whitepaper §2): each peer owns a set of IPv4 and IPv6 prefixes; a packet to
 * send goes to the peer owning the longest prefix that holds its destination, and a packet received
 * from a peer is accepted only when the longest prefix holding its source belongs to that peer.
 *
 * The table is compiled once: prefixes sorted longest first into typed arrays, so the first match
 * of a linear scan is the longest. That is fine for the tens of prefixes a gateway has; thousands
 * would want a trie (wireguard-go's allowedips.go) — a bench would say where the line is.
 *
 *   v4:  net[i], mask[i] (int32), peer[i]           sorted by prefix length, longest first
 *   v6:  net[4i..4i+3], mask[4i..4i+3], peer[i]     the same, in four 32-bit words
 *
 * @example
 * const t = AllowedIps.compile([['10.0.0.0/8'], ['10.1.0.0/16']]);
 * t.lookupV4(ipv4('10.1.2.3')); // 1
 */
import { parseIpv4, parseIpv6 } from '../../src/packet/address.js';

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

export class AllowedIps {
  private constructor(
    private readonly net4: Int32Array,
    private readonly mask4: Int32Array,
    private readonly peer4: Int32Array,
    private readonly net6: Int32Array,
    private readonly mask6: Int32Array,
    private readonly peer6: Int32Array,
  ) {}

  /**
   * Compiles each peer's CIDR list (index = peer). Throws naming the bad entry as
   * `peers[p].allowedIPs[i]`; the same prefix given to two peers is refused as ambiguous.
   */
  static compile(perPeer: readonly (readonly string[])[]): AllowedIps {
    const v4: { net: number; mask: number; prefix: number; peer: number }[] = [];
    const v6: { net: Int32Array; mask: Int32Array; prefix: number; peer: number }[] = [];
    const seen = new Map<string, number>();
    perPeer.forEach((list, peer) =>
      list.forEach((cidr, i) => {
        const where = `peers[${peer}].allowedIPs[${i}]`;
        const slash = cidr.indexOf('/');
        const address = slash < 0 ? cidr : cidr.slice(0, slash);
        const v6Address = address.includes(':');
        const prefixText = slash < 0 ? (v6Address ? '128' : '32') : cidr.slice(slash + 1);
        const max = v6Address ? 128 : 32;
        if (!PREFIX.test(prefixText) || Number(prefixText) > max)
          throw new Error(`${where}: the prefix length must be 0–${max} (got "${cidr}")`);
        const prefix = Number(prefixText);
        let key: string;
        if (v6Address) {
          const bytes = new Uint8Array(16);
          if (!parseIpv6(address, bytes)) throw new Error(`${where}: not an IPv6 address (got "${cidr}")`);
          const net = new Int32Array(4);
          const mask = new Int32Array(4);
          for (let w = 0; w < 4; w++) {
            const bits = Math.max(0, Math.min(32, prefix - 32 * w));
            mask[w] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
            const word =
              (bytes[4 * w] << 24) | (bytes[4 * w + 1] << 16) | (bytes[4 * w + 2] << 8) | bytes[4 * w + 3];
            if ((word & mask[w]) !== word)
              throw new Error(`${where}: "${cidr}" has bits set beyond /${prefix}`);
            net[w] = word;
          }
          v6.push({ net, mask, prefix, peer });
          key = `6 ${net.join(',')}/${prefix}`;
        } else {
          const value = parseIpv4(address);
          if (value < 0) throw new Error(`${where}: not an IPv4 address (got "${cidr}")`);
          const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) | 0;
          if ((value & mask) !== (value | 0))
            throw new Error(`${where}: "${cidr}" has bits set beyond /${prefix}`);
          v4.push({ net: value | 0, mask, prefix, peer });
          key = `4 ${value}/${prefix}`;
        }
        const other = seen.get(key);
        if (other !== undefined && other !== peer)
          throw new Error(`${where}: "${cidr}" is already allowed for peers[${other}]`);
        seen.set(key, peer);
      }),
    );
    v4.sort((a, b) => b.prefix - a.prefix);
    v6.sort((a, b) => b.prefix - a.prefix);
    const net6 = new Int32Array(v6.length * 4);
    const mask6 = new Int32Array(v6.length * 4);
    v6.forEach((e, i) => {
      net6.set(e.net, i * 4);
      mask6.set(e.mask, i * 4);
    });
    return new AllowedIps(
      Int32Array.from(v4, (e) => e.net),
      Int32Array.from(v4, (e) => e.mask),
      Int32Array.from(v4, (e) => e.peer),
      net6,
      mask6,
      Int32Array.from(v6, (e) => e.peer),
    );
  }

  /** The peer owning the longest prefix that holds `address` (int32 or uint32), or −1. */
  lookupV4(address: number): number {
    const a = address | 0;
    const { net4, mask4 } = this;
    for (let i = 0; i < net4.length; i++) if ((a & mask4[i]) === net4[i]) return this.peer4[i];
    return -1;
  }

  /** The peer owning the longest prefix that holds the IPv6 address at `bytes[at, at+16)`, or −1. */
  lookupV6(bytes: Uint8Array, at: number): number {
    const w0 = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
    const w1 = (bytes[at + 4] << 24) | (bytes[at + 5] << 16) | (bytes[at + 6] << 8) | bytes[at + 7];
    const w2 = (bytes[at + 8] << 24) | (bytes[at + 9] << 16) | (bytes[at + 10] << 8) | bytes[at + 11];
    const w3 = (bytes[at + 12] << 24) | (bytes[at + 13] << 16) | (bytes[at + 14] << 8) | bytes[at + 15];
    const { net6, mask6 } = this;
    for (let i = 0, o = 0; o < net6.length; i++, o += 4) {
      if (
        (w0 & mask6[o]) === net6[o] &&
        (w1 & mask6[o + 1]) === net6[o + 1] &&
        (w2 & mask6[o + 2]) === net6[o + 2] &&
        (w3 & mask6[o + 3]) === net6[o + 3]
      )
        return this.peer6[i];
    }
    return -1;
  }
}
