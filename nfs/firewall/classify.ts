/**
 * The rule index: classification is not a linear scan. Each rule is filed under one dimension,
 * the most selective it has:
 *
 *   1. its destination port, when it names a narrow range (≤ 16 ports) — per protocol (TCP, UDP);
 *   2. else the /16 of its IPv4 destination, when its prefix is /16 or longer;
 *   3. else the /16 of its IPv4 source, likewise;
 *   4. else the generic list.
 *
 * A packet looks in at most four lists — the generic one, its (protocol, destination port) bucket,
 * its destination /16 and its source /16 — each sorted by rule number. Each list is scanned only up
 * to the best (lowest) matching rule found so far, so the result is exactly the first match of the
 * linear scan. Lists are slices of one Int32Array; buckets map to list numbers.
 */
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import type { FirewallProgram } from './index.js';

/** Widest destination-port range filed by port. */
const NARROW_PORTS = 16;

export interface RuleIndex {
  /** Rule numbers, list after list. */
  readonly rules: Int32Array;
  /** List l is rules[start[l] .. start[l + 1]). List 0 is the generic one, list 1 the empty one. */
  readonly start: Int32Array;
  /** Destination port → list, for TCP and UDP. */
  readonly tcpPort: Int32Array;
  readonly udpPort: Int32Array;
  /** Top 16 bits of the IPv4 destination / source → list. */
  readonly dst16: Int32Array;
  readonly src16: Int32Array;
}

const EMPTY = 1;

export function buildIndex(p: FirewallProgram): RuleIndex {
  const generic: number[] = [];
  const tcp = new Map<number, number[]>();
  const udp = new Map<number, number[]>();
  const dst16 = new Map<number, number[]>();
  const src16 = new Map<number, number[]>();
  const add = (m: Map<number, number[]>, k: number, r: number) => {
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  };
  for (let r = 0; r < p.count; r++) {
    const proto = p.protoV4[r];
    if (p.ports[r] === 1 && p.dstHi[r] - p.dstLo[r] < NARROW_PORTS) {
      for (let port = p.dstLo[r]; port <= p.dstHi[r]; port++) {
        if (proto === -1 || proto === IpProtocol.Tcp) add(tcp, port, r);
        if (proto === -1 || proto === IpProtocol.Udp) add(udp, port, r);
      }
    } else if (p.family[r] === 4 && p.v4DstMask[r] >>> 16 === 0xffff) add(dst16, p.v4Dst[r] >>> 16, r);
    else if (p.family[r] === 4 && p.v4SrcMask[r] >>> 16 === 0xffff) add(src16, p.v4Src[r] >>> 16, r);
    else generic.push(r);
  }
  const lists: number[][] = [generic, []];
  const table = (m: Map<number, number[]>) => {
    const out = new Int32Array(65536).fill(EMPTY);
    for (const [k, list] of m) {
      out[k] = lists.length;
      lists.push(list);
    }
    return out;
  };
  const index = {
    tcpPort: table(tcp),
    udpPort: table(udp),
    dst16: table(dst16),
    src16: table(src16),
  };
  const start = new Int32Array(lists.length + 1);
  for (let l = 0; l < lists.length; l++) start[l + 1] = start[l] + lists[l].length;
  const rules = new Int32Array(start[lists.length]);
  lists.forEach((list, l) => rules.set(list, start[l]));
  return { rules, start, ...index };
}
