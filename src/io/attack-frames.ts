/**
 * Attack traffic for the amplification checks (TESTING.md D4): frames an attacker sends to make an
 * NF keep state or burn CPU — a SYN flood, first fragments that never complete, TCP segments that
 * leave holes, junk WireGuard handshake initiations — and, for each NF, benign frames of the same
 * size to compare with. `fill(bytes, at, i)` writes frame number `i` in place and returns its
 * length: nothing is allocated per frame, so memory measured around a run is the NF's own.
 *
 * Every frame differs where the attack needs it to (source address and port, IP identification,
 * sequence number), from a seeded mix of `i`, and carries valid IP and L4 checksums, so that it
 * reaches the state it aims at instead of being dropped as malformed.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { ipv4 } from '../packet/address.js';
import { internetChecksum, pseudoHeaderSumV4 } from '../packet/checksum.js';
import { write16, write32 } from '../packet/bytes.js';
import { EthernetRepr } from '../packet/ethernet.js';
import { EtherType, IpProtocol } from '../packet/ip-protocol.js';
import { Ipv4Repr } from '../packet/ipv4.js';
import { MAX_BATCH, type PacketBatch } from '../sdk/index.js';

export interface AttackFrames {
  name: string;
  /** What the attacker aims at, for reports. */
  aim: string;
  /** Writes frame `i` at `bytes[at..]`; returns its length. */
  fill(bytes: Uint8Array, at: number, i: number): number;
}

const ETH = 14;
const IP = 20;
const TCP = 20;
const UDP = 8;
/** The address every attack frame is sent to, and the WireGuard gateway's listen address. */
export const ATTACK_TARGET = '192.0.2.10';
const TARGET = ipv4(ATTACK_TARGET);
const WG_PORT = 51820;

/** A well-mixed 32-bit value of `i` (MurmurHash3's finalizer): sources spread over the hash tables. */
function mix(i: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Ethernet + IPv4 headers for `protocol` with `l4Length` bytes after them, source filled later. */
function template(protocol: number, l4Length: number): Uint8Array {
  const frame = new Uint8Array(ETH + IP + l4Length);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    frame,
    0,
  );
  Ipv4Repr.emit({ src: '10.0.0.1', dst: ATTACK_TARGET, protocol, payloadLength: l4Length }, frame, ETH);
  return frame;
}

/**
 * Copies `frame` to `bytes[at..]` with source address `src`, IP identification `id` and
 * fragment word `fragment` (flags << 13 | offset / 8), and fills the IP header checksum.
 */
function placeIpv4(
  frame: Uint8Array,
  bytes: Uint8Array,
  at: number,
  src: number,
  id: number,
  fragment: number,
): void {
  bytes.set(frame, at);
  const ip = at + ETH;
  write16(bytes, ip + 4, id & 0xffff);
  write16(bytes, ip + 6, fragment);
  write32(bytes, ip + 12, src);
  write16(bytes, ip + 10, 0);
  write16(bytes, ip + 10, internetChecksum(bytes, ip, IP));
}

/** Fills the TCP or UDP checksum of the segment at `l4` (`length` bytes) from `src` to the target. */
function fillL4Checksum(bytes: Uint8Array, l4: number, length: number, protocol: number, src: number): void {
  const site = l4 + (protocol === IpProtocol.Tcp ? 16 : 6);
  write16(bytes, site, 0);
  const sum = internetChecksum(bytes, l4, length, pseudoHeaderSumV4(src, TARGET, protocol, length));
  write16(bytes, site, protocol === IpProtocol.Udp && sum === 0 ? 0xffff : sum);
}

/** A TCP segment from `src`:`port` to the target's port 80 with `flags`, `seq` and `payload` bytes. */
function tcpFrames(payload: number): {
  frame: Uint8Array;
  write(bytes: Uint8Array, at: number, src: number, port: number, flags: number, seq: number): number;
} {
  const frame = template(IpProtocol.Tcp, TCP + payload);
  frame.fill(0x41, ETH + IP + TCP);
  const l4 = ETH + IP;
  write16(frame, l4 + 2, 80);
  frame[l4 + 12] = 5 << 4;
  write16(frame, l4 + 14, 65535);
  return {
    frame,
    write(bytes, at, src, port, flags, seq) {
      placeIpv4(frame, bytes, at, src, 0, 0x4000); // DF
      write16(bytes, at + l4, port);
      write32(bytes, at + l4 + 4, seq);
      bytes[at + l4 + 13] = flags;
      fillL4Checksum(bytes, at + l4, TCP + payload, IpProtocol.Tcp, src);
      return frame.length;
    },
  };
}

/** Sources in 10.0.0.0/8 from the mix of `i`; ports 1024–65535. */
const sourceOf = (i: number): number => ((10 << 24) | (mix(i) & 0xffffff)) >>> 0 || 1;
const portOf = (i: number): number => 1024 + (mix(i + 0x51ed) % 64512);

/** SYNs from a new source address and port each (60-byte frames): conntrack entries. */
export function synFlood(): AttackFrames {
  const tcp = tcpFrames(0);
  return {
    name: 'SYN flood',
    aim: 'a connection-tracking entry per packet',
    fill: (bytes, at, i) => tcp.write(bytes, at, sourceOf(i), portOf(i), 0x02, mix(i ^ 0x1234)),
  };
}

/** ACK segments of one established-looking flow, the SYN flood's benign twin (60-byte frames). */
export function tcpBaseline(): AttackFrames {
  const tcp = tcpFrames(0);
  return {
    name: 'TCP of few flows',
    aim: 'baseline',
    fill: (bytes, at, i) => tcp.write(bytes, at, sourceOf(i & 15), portOf(i & 15), 0x10, i),
  };
}

/**
 * First fragments (MF set, offset 0) of UDP datagrams that never complete: `payload` bytes of IP
 * payload each, from a new source and IP identification per frame. Fragment-tracking state.
 */
export function firstFragments(payload: number): AttackFrames {
  const frame = template(IpProtocol.Udp, payload);
  const l4 = ETH + IP;
  write16(frame, l4 + 2, 53);
  write16(frame, l4 + 4, payload + 512); // the whole datagram would be longer than this fragment
  frame.fill(0x42, l4 + UDP);
  return {
    name: `first fragments (${payload} B)`,
    aim: 'a reassembly entry (and its bytes) per packet',
    fill(bytes, at, i) {
      placeIpv4(frame, bytes, at, sourceOf(i), mix(i), 0x2000); // MF, offset 0
      write16(bytes, at + l4, portOf(i));
      return frame.length;
    },
  };
}

/** Whole UDP datagrams of the same size as firstFragments(payload), from 16 sources. */
export function udpBaseline(payload: number): AttackFrames {
  const frame = template(IpProtocol.Udp, payload);
  const l4 = ETH + IP;
  write16(frame, l4 + 2, 53);
  write16(frame, l4 + 4, payload);
  frame.fill(0x42, l4 + UDP);
  return {
    name: `UDP datagrams (${payload} B)`,
    aim: 'baseline',
    fill(bytes, at, i) {
      const src = sourceOf(i & 15);
      placeIpv4(frame, bytes, at, src, i, 0);
      write16(bytes, at + l4, portOf(i & 15));
      fillL4Checksum(bytes, at + l4, payload, IpProtocol.Udp, src);
      return frame.length;
    },
  };
}

/**
 * TCP streams that each open with a segment and then send one far ahead of it (`payload` bytes,
 * 10,000 bytes past the first): a stream and held out-of-order bytes per two frames.
 */
export function streamHoles(payload: number): AttackFrames {
  const tcp = tcpFrames(payload);
  return {
    name: `TCP holes (${payload} B)`,
    aim: 'a stream and held segment bytes per two packets',
    fill(bytes, at, i) {
      const stream = i >>> 1;
      const seq = mix(stream ^ 0x777);
      return tcp.write(bytes, at, sourceOf(stream), portOf(stream), 0x18, (i & 1) === 0 ? seq : seq + 10_000);
    },
  };
}

/** In-order segments of 16 streams, the same size as streamHoles(payload). */
export function streamBaseline(payload: number): AttackFrames {
  const tcp = tcpFrames(payload);
  return {
    name: `TCP in order (${payload} B)`,
    aim: 'baseline',
    fill(bytes, at, i) {
      const stream = i & 15;
      const seq = (mix(stream ^ 0x777) + (i >>> 4) * payload) >>> 0;
      return tcp.write(bytes, at, sourceOf(stream), portOf(stream), 0x18, seq);
    },
  };
}

/**
 * WireGuard handshake initiations (message type 1, 148 bytes) full of noise, to the gateway's
 * port: each costs the responder a mac1 check (BLAKE2s) before it is refused.
 */
export function junkInitiations(): AttackFrames {
  const frame = template(IpProtocol.Udp, UDP + 148);
  const l4 = ETH + IP;
  write16(frame, l4 + 2, WG_PORT);
  write16(frame, l4 + 4, UDP + 148);
  frame[l4 + UDP] = 1;
  return {
    name: 'junk handshake initiations',
    aim: 'handshake work per packet',
    fill(bytes, at, i) {
      const src = sourceOf(i);
      placeIpv4(frame, bytes, at, src, i, 0);
      write16(bytes, at + l4, portOf(i));
      // Sender index, ephemeral key, encrypted static and timestamp, mac1, mac2: noise.
      for (let k = 4; k < 148; k += 4) write32(bytes, at + l4 + UDP + k, mix(i * 37 + k));
      fillL4Checksum(bytes, at + l4, UDP + 148, IpProtocol.Udp, src);
      return frame.length;
    },
  };
}

/** One attack against one NF: the image it targets, the NF's config, frames, and its benign twin. */
export interface AttackCase {
  attack: AttackFrames;
  /** The built-in NF attacked (nfs/<nf>). */
  nf: 'firewall' | 'ids' | 'wireguard';
  config: unknown;
  /** Frames an attack sends (enough to fill every table the NF keeps several times over). */
  frames: number;
  /** Benign frames of the same size through the same NF, to compare the CPU cost with. */
  baseline: AttackFrames;
}

/** A fresh X25519 key pair, base64 (a WireGuard gateway's and its peer's keys). */
function x25519Keys(): { privateKey: string; publicKey: string } {
  const jwk = generateKeyPairSync('x25519').privateKey.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.d ?? '', 'base64url');
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  const spki = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({
    format: 'der',
    type: 'spki',
  });
  return { privateKey: raw.toString('base64'), publicKey: Buffer.from(spki.subarray(12)).toString('base64') };
}

/** The attacks of TESTING.md D4 and their targets (the WireGuard gateway with fresh keys). */
export function attackCases(): AttackCase[] {
  const gateway = x25519Keys();
  const peer = x25519Keys();
  const noMatch = (protocol: string): string[] => [
    `alert ${protocol} any any -> any any (msg:"x"; content:"never-there"; sid:1;)`,
  ];
  return [
    {
      attack: synFlood(),
      nf: 'firewall',
      config: { default: 'accept', rules: [], maxConnections: 65_536 },
      frames: 400_000,
      baseline: tcpBaseline(),
    },
    {
      attack: firstFragments(1024),
      nf: 'firewall',
      config: { default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dstPort: '9' }] },
      frames: 40_000,
      baseline: udpBaseline(1024),
    },
    {
      attack: firstFragments(1024),
      nf: 'ids',
      config: { rules: noMatch('udp') },
      frames: 40_000,
      baseline: udpBaseline(1024),
    },
    {
      attack: streamHoles(1024),
      nf: 'ids',
      config: { rules: noMatch('tcp'), maxStreams: 8192 },
      frames: 40_000,
      baseline: streamBaseline(1024),
    },
    {
      attack: junkInitiations(),
      nf: 'wireguard',
      config: {
        privateKey: gateway.privateKey,
        listenAddress: ATTACK_TARGET,
        outside: { mac: '02:00:00:00:00:02', nextHopMac: '02:00:00:00:00:01' },
        inside: { mac: '02:00:00:00:00:03', nextHopMac: '02:00:00:00:00:04' },
        peers: [{ publicKey: peer.publicKey, endpoint: '', allowedIPs: ['10.9.0.0/24'] }],
      },
      frames: 40_000,
      baseline: udpBaseline(UDP + 148),
    },
  ];
}

/**
 * Runs frames [from, to) of `frames` through `processBatch` (an NF's process) in bursts of `batch.capacity`-sized slots,
 * tallying drops by reason index into `drops`; returns the bytes sent. Allocates nothing.
 */
export function sendAttack(
  processBatch: (batch: PacketBatch, now: number) => void,
  batch: PacketBatch,
  frames: AttackFrames,
  from: number,
  to: number,
  drops: Float64Array,
): number {
  let bytes = 0;
  const slot = batch.capacity;
  for (let i = from; i < to; i += MAX_BATCH) {
    const count = Math.min(MAX_BATCH, to - i);
    batch.reset(count);
    for (let k = 0; k < count; k++) {
      batch.at[k] = k * slot;
      batch.length[k] = frames.fill(batch.bytes, k * slot, i + k);
      bytes += batch.length[k];
    }
    // A microsecond per frame: nothing expires during an attack.
    processBatch(batch, 1e12 + i * 1000);
    for (let k = 0; k < count; k++) if (batch.verdict[k] < 0) drops[-1 - batch.verdict[k]]++;
  }
  return bytes;
}
