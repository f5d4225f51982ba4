/**
 * A seeded, reproducible traffic generator: the same options and seed give the same bytes on any
 * machine. It models `flows` concurrent flows with their own 5-tuple, IP version, protocol, VLAN
 * tagging and tunnel encapsulation, picks the flow of each packet uniformly or by Zipf rank, and
 * writes each packet in place into a caller's buffer (no allocation per packet), with valid
 * checksums at every layer.
 *
 * Frame sizes are Ethernet frames as captured, without the 4-byte FCS: IMIX 7:4:1 is 60/590/1514
 * here (64/594/1518 on the wire). A data packet is filled with payload up to the chosen size; a
 * packet whose headers alone exceed it is sent at its minimum size, and control packets (TCP
 * handshake and teardown, pure ACKs) carry no payload. Frames below 60 bytes get Ethernet padding.
 *
 * Sessions (`tcpSessions`): each TCP flow runs SYN, SYN-ACK, ACK, data both ways, FIN-ACK, ACK,
 * FIN-ACK, ACK, then starts a new connection from the next source port. Without sessions, TCP
 * packets are PSH-ACK data of already-established connections. ICMP flows alternate echo request
 * and reply. Payloads start with an 8-byte sequence token (flow index, per-flow packet number) so
 * later tests can prove nothing was lost, duplicated or reordered.
 *
 * Addresses come from the benchmarking ranges: clients in 198.18.0.0/16 and 2001:2::/64, servers in
 * 198.19.0.0/16 and 2001:2:0:1::/64 (RFC 2544, RFC 5180); tunnel endpoints 192.0.2.1 ↔ 192.0.2.2.
 */
import { NfvError } from '../errors.js';
import { write32 } from '../packet/bytes.js';
import { formatIpv4, formatIpv6 } from '../packet/address.js';
import { internetChecksum, pseudoHeaderSumV4At, pseudoHeaderSumV6 } from '../packet/checksum.js';
import { EthernetView } from '../packet/ethernet.js';
import { GeneveRepr } from '../packet/geneve.js';
import { Icmpv4Type } from '../packet/icmpv4.js';
import { Icmpv6Type } from '../packet/icmpv6.js';
import { EtherType, IpProtocol, UdpPort } from '../packet/ip-protocol.js';
import { Ipv4View } from '../packet/ipv4.js';
import { Ipv6View } from '../packet/ipv6.js';
import { TcpFlag, TcpView } from '../packet/tcp.js';
import { UdpView } from '../packet/udp.js';
import { VxlanRepr } from '../packet/vxlan.js';
import { copyBytes, MIN_CACHED_BYTES } from './capture-buffer.js';
import { SeededRandom, ZipfSampler } from './seeded-random.js';

export interface GeneratorOptions {
  /** PRNG seed; the same seed and options give byte-identical output. */
  seed: number;
  /** Packets to generate. */
  packets: number;
  /** Frame size in bytes (60–9000, without FCS), or 'imix' for the 7:4:1 mix of 60/590/1514. */
  frameSize: number | 'imix';
  /** Number of concurrent flows. */
  flows: number;
  /** How packets are spread over flows. */
  distribution: 'uniform' | 'zipf';
  /** Zipf exponent s (P(rank k) ∝ 1/k^s). */
  zipfExponent: number;
  /** Relative weights of TCP, UDP and ICMP flows. */
  mix: { tcp: number; udp: number; icmp: number };
  /** Fraction of flows over IPv6 (0–1). */
  ipv6: number;
  /** Fraction of flows with one 802.1Q tag. */
  vlan: number;
  /** Fraction of flows with an 802.1ad outer tag and an 802.1Q inner tag. */
  qinq: number;
  /** Fraction of flows carried in VXLAN. */
  vxlan: number;
  /** Fraction of flows carried in GENEVE (with one option). */
  geneve: number;
  /** Run TCP flows as whole connections: handshake, data, teardown. */
  tcpSessions: boolean;
  /** Timestamp of the first packet, in whole seconds since the epoch. */
  startSeconds: number;
  /** Packets per second, which spaces the timestamps. */
  ratePps: number;
}

export const DEFAULT_GENERATOR_OPTIONS: GeneratorOptions = {
  seed: 1,
  packets: 10_000,
  frameSize: 'imix',
  flows: 64,
  distribution: 'uniform',
  zipfExponent: 1.0,
  mix: { tcp: 6, udp: 3, icmp: 1 },
  ipv6: 0.25,
  vlan: 0,
  qinq: 0,
  vxlan: 0,
  geneve: 0,
  tcpSessions: true,
  startSeconds: 1_767_225_600, // 2026-01-01T00:00:00Z: fixed, so captures are reproducible
  ratePps: 1_000_000,
};

/** The largest frame the generator writes; size buffers passed to `next()` at least this large. */
export const MAX_GENERATED_FRAME = 9000;
const MIN_FRAME = 60;
const IMIX_SIZES = [60, 590, 1514] as const;
const IMIX_WEIGHTS = [7, 4, 1] as const;

/** Tunnel kinds and tag modes, as stored per flow. */
export const Encapsulation = { None: 0, Vxlan: 1, Geneve: 2 } as const;
export const TagMode = { None: 0, Dot1Q: 1, QinQ: 2 } as const;

/** What the generator meant the last packet to be; one object, overwritten per packet. */
export interface GeneratedPacketInfo {
  index: number;
  flow: number;
  /** 0: client → server, 1: server → client. */
  direction: number;
  frameLength: number;
  ipVersion: 4 | 6;
  protocol: number;
  tcpFlags: number;
  /** Bytes of L4 payload (TCP/UDP data, ICMP echo data). */
  payloadLength: number;
  /** Transport ports of this packet (ICMP echo: the identifier in both). */
  srcPort: number;
  dstPort: number;
  /** Timestamp as seconds since the epoch plus nanoseconds (two numbers: no bigint per packet). */
  timestampSeconds: number;
  timestampNanos: number;
}

/** A flow's fixed identity, as text, for tests and `describe` output. */
export interface FlowSummary {
  ipVersion: 4 | 6;
  protocol: number;
  client: string;
  server: string;
  clientPort: number;
  serverPort: number;
  tags: number[];
  tagMode: number;
  encapsulation: number;
  vni: number;
}

const CLIENT_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
const SERVER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);
const VTEP_A_MAC = Uint8Array.of(0x02, 0, 0, 0, 0xff, 0x01);
const VTEP_B_MAC = Uint8Array.of(0x02, 0, 0, 0, 0xff, 0x02);
const VTEP_A = 0xc0000201; // 192.0.2.1
const VTEP_B = 0xc0000202; // 192.0.2.2
const CLIENT_V4_BASE = 0xc6120000; // 198.18.0.0/16
const SERVER_V4_BASE = 0xc6130000; // 198.19.0.0/16
const V6_PREFIX = Uint8Array.of(0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0); // 2001:2::/48, subnet 0 or 1
const GENEVE_OPTION_CLASS = 0x0105; // an experimental-use class with one 4-byte option
const SERVER_PORTS = [80, 443, 53, 8080, 5201, 22, 25, 123] as const;
const SESSION_CONTROL_STEPS = 7; // SYN, SYN-ACK, ACK … FIN-ACK, ACK, FIN-ACK, ACK
const STEP_DATA = 1 << 9;
const STEP_LAST = 1 << 10;

/** Checks options and returns the full set; errors name the field (NFV_ERR_BAD_ARGUMENT). */
export function resolveGeneratorOptions(partial: Partial<GeneratorOptions>): GeneratorOptions {
  const o: GeneratorOptions = {
    ...DEFAULT_GENERATOR_OPTIONS,
    ...partial,
    mix: { ...DEFAULT_GENERATOR_OPTIONS.mix, ...partial.mix },
  };
  const fail = (field: string, why: string): never => {
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', why, { field });
  };
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff)
    fail('seed', 'must be an integer 0…4294967295');
  if (!Number.isSafeInteger(o.packets) || o.packets < 0) fail('packets', 'must be a whole number ≥ 0');
  if (
    o.frameSize !== 'imix' &&
    (!Number.isInteger(o.frameSize) || o.frameSize < MIN_FRAME || o.frameSize > MAX_GENERATED_FRAME)
  ) {
    fail('frameSize', `must be 'imix' or an integer ${MIN_FRAME}…${MAX_GENERATED_FRAME}`);
  }
  if (!Number.isInteger(o.flows) || o.flows < 1 || o.flows > 1 << 20)
    fail('flows', 'must be an integer 1…1048576');
  if (!(o.zipfExponent > 0 && o.zipfExponent <= 10)) fail('zipfExponent', 'must be in (0, 10]');
  for (const key of ['tcp', 'udp', 'icmp'] as const)
    if (!(o.mix[key] >= 0)) fail(`mix.${key}`, 'must be a weight ≥ 0');
  if (o.mix.tcp + o.mix.udp + o.mix.icmp <= 0) fail('mix', 'needs at least one positive weight');
  for (const key of ['ipv6', 'vlan', 'qinq', 'vxlan', 'geneve'] as const) {
    if (!(o[key] >= 0 && o[key] <= 1)) fail(key, 'must be a fraction 0…1');
  }
  if (o.vlan + o.qinq > 1) fail('qinq', 'vlan + qinq must not exceed 1');
  if (o.vxlan + o.geneve > 1) fail('geneve', 'vxlan + geneve must not exceed 1');
  if (!(o.ratePps > 0 && o.ratePps <= 1e12)) fail('ratePps', 'must be > 0');
  return o;
}

/**
 * Generates packets one at a time into a caller's buffer.
 *
 * @example
 * const gen = new TrafficGenerator({ seed: 7, packets: 100, frameSize: 128 });
 * const frame = new Uint8Array(MAX_GENERATED_FRAME);
 * for (let n = gen.next(frame, 0); n > 0; n = gen.next(frame, 0)) send(frame.subarray(0, n), gen.info.timestampSeconds);
 */
export class TrafficGenerator {
  readonly options: GeneratorOptions;
  readonly info: GeneratedPacketInfo = {
    index: -1,
    flow: 0,
    direction: 0,
    frameLength: 0,
    ipVersion: 4,
    protocol: 0,
    tcpFlags: 0,
    payloadLength: 0,
    srcPort: 0,
    dstPort: 0,
    timestampSeconds: 0,
    timestampNanos: 0,
  };

  private readonly rng: SeededRandom;
  private readonly zipf: ZipfSampler | null;
  private readonly payloadPattern: Uint8Array;
  private readonly gapNs: number;
  private produced = 0;

  // Per-flow state, one typed-array entry per flow.
  private readonly flowVersion: Uint8Array;
  private readonly flowProtocol: Uint8Array;
  private readonly flowTagMode: Uint8Array;
  private readonly flowOuterVid: Uint16Array;
  private readonly flowInnerVid: Uint16Array;
  private readonly flowEncap: Uint8Array;
  private readonly flowVni: Uint32Array;
  private readonly flowClientPort: Uint16Array;
  private readonly flowServerPort: Uint16Array;
  private readonly flowClientSeq: Uint32Array;
  private readonly flowServerSeq: Uint32Array;
  private readonly flowStep: Uint32Array;
  private readonly flowSessionLength: Uint32Array;
  private readonly flowPacketNumber: Uint32Array;
  private readonly flowIcmpSeq: Uint16Array;

  private readonly eth = new EthernetView();
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly tcp = new TcpView();
  private readonly udp = new UdpView();
  private readonly outerIp = new Ipv4View();
  private readonly outerUdp = new UdpView();
  private readonly addr = new Uint8Array(32); // scratch: client and server IPv6 addresses

  constructor(options: Partial<GeneratorOptions> = {}) {
    const o = resolveGeneratorOptions(options);
    this.options = o;
    this.rng = new SeededRandom(o.seed);
    this.zipf = o.distribution === 'zipf' ? new ZipfSampler(o.flows, o.zipfExponent) : null;
    this.gapNs = 1e9 / o.ratePps;
    // Seeded bytes in its first MAX_GENERATED_FRAME; longer only so that copyBytes copies a short
    // payload from it word by word (a subarray per packet was 72 MiB of garbage per 10⁶).
    this.payloadPattern = new Uint8Array(Math.max(MAX_GENERATED_FRAME, MIN_CACHED_BYTES));
    for (let i = 0; i < MAX_GENERATED_FRAME; i++) this.payloadPattern[i] = this.rng.u32() & 0xff;

    const n = o.flows;
    this.flowVersion = new Uint8Array(n);
    this.flowProtocol = new Uint8Array(n);
    this.flowTagMode = new Uint8Array(n);
    this.flowOuterVid = new Uint16Array(n);
    this.flowInnerVid = new Uint16Array(n);
    this.flowEncap = new Uint8Array(n);
    this.flowVni = new Uint32Array(n);
    this.flowClientPort = new Uint16Array(n);
    this.flowServerPort = new Uint16Array(n);
    this.flowClientSeq = new Uint32Array(n);
    this.flowServerSeq = new Uint32Array(n);
    this.flowStep = new Uint32Array(n);
    this.flowSessionLength = new Uint32Array(n);
    this.flowPacketNumber = new Uint32Array(n);
    this.flowIcmpSeq = new Uint16Array(n);
    const weights = o.mix.tcp + o.mix.udp + o.mix.icmp;
    for (let f = 0; f < n; f++) {
      this.flowVersion[f] = this.rng.float() < o.ipv6 ? 6 : 4;
      const p = this.rng.float() * weights;
      this.flowProtocol[f] =
        p < o.mix.tcp
          ? IpProtocol.Tcp
          : p < o.mix.tcp + o.mix.udp
            ? IpProtocol.Udp
            : this.flowVersion[f] === 6
              ? IpProtocol.Icmpv6
              : IpProtocol.Icmp;
      const t = this.rng.float();
      this.flowTagMode[f] = t < o.vlan ? TagMode.Dot1Q : t < o.vlan + o.qinq ? TagMode.QinQ : TagMode.None;
      this.flowOuterVid[f] = 1 + this.rng.below(4094);
      this.flowInnerVid[f] = 1 + this.rng.below(4094);
      const e = this.rng.float();
      this.flowEncap[f] =
        e < o.vxlan
          ? Encapsulation.Vxlan
          : e < o.vxlan + o.geneve
            ? Encapsulation.Geneve
            : Encapsulation.None;
      this.flowVni[f] = 1 + this.rng.below(0xfffffe);
      this.flowClientPort[f] = 1024 + this.rng.below(64512);
      this.flowServerPort[f] = SERVER_PORTS[this.rng.below(SERVER_PORTS.length)];
      this.startSession(f);
    }
  }

  /** Packets still to generate. */
  remaining(): number {
    return this.options.packets - this.produced;
  }

  /** The fixed identity of flow `f` (the client port is that of its current connection). */
  flowSummary(f: number): FlowSummary {
    const v6 = this.flowVersion[f] === 6;
    const client = v6 ? this.v6Text(f, 0) : formatV4(CLIENT_V4_BASE + (f & 0xffff));
    const server = v6 ? this.v6Text(f, 1) : formatV4(SERVER_V4_BASE + (f & 0xffff));
    const mode = this.flowTagMode[f];
    const tags =
      mode === TagMode.None
        ? []
        : mode === TagMode.Dot1Q
          ? [this.flowOuterVid[f]]
          : [this.flowOuterVid[f], this.flowInnerVid[f]];
    return {
      ipVersion: v6 ? 6 : 4,
      protocol: this.flowProtocol[f],
      client,
      server,
      clientPort: this.flowClientPort[f],
      serverPort: this.flowServerPort[f],
      tags,
      tagMode: mode,
      encapsulation: this.flowEncap[f],
      vni: this.flowEncap[f] === Encapsulation.None ? 0 : this.flowVni[f],
    };
  }

  /**
   * Writes the next packet at `out[at]` and returns its length, or 0 when all packets are made.
   * `out` must have at least MAX_GENERATED_FRAME bytes from `at`. `info` then describes it.
   */
  next(out: Uint8Array, at: number): number {
    if (this.produced >= this.options.packets) return 0;
    const o = this.options;
    const f = this.zipf !== null ? this.zipf.sample(this.rng) : this.rng.below(o.flows);
    const target = o.frameSize === 'imix' ? this.imixSize() : o.frameSize;
    const info = this.info;
    info.index = this.produced;
    info.flow = f;
    const elapsedNs = Math.round(this.produced * this.gapNs);
    const elapsedSeconds = Math.floor(elapsedNs / 1e9);
    info.timestampSeconds = o.startSeconds + elapsedSeconds;
    info.timestampNanos = elapsedNs - elapsedSeconds * 1e9;
    this.produced++;

    // Decide this packet's direction, TCP flags and whether it carries data.
    const protocol = this.flowProtocol[f];
    let direction: number;
    let flags = 0;
    let carriesData = true;
    let sessionEnds = false;
    if (protocol === IpProtocol.Tcp) {
      const step = this.tcpStep(f);
      direction = step & 1;
      flags = (step >>> 1) & 0xff;
      carriesData = (step & STEP_DATA) !== 0;
      sessionEnds = (step & STEP_LAST) !== 0;
    } else if (protocol === IpProtocol.Udp) {
      direction = this.rng.below(2);
    } else {
      direction = this.flowPacketNumber[f] & 1; // echo request, then its reply
    }
    info.direction = direction;
    info.tcpFlags = flags;
    info.protocol = protocol;
    info.ipVersion = this.flowVersion[f] === 6 ? 6 : 4;

    // Outer headers for tunnelled flows, then the inner (or only) Ethernet header.
    const encap = this.flowEncap[f];
    let p = at;
    let outerIpAt = -1;
    if (encap !== Encapsulation.None) {
      outerIpAt = p + 14;
      p = this.writeTunnelHeaders(out, p, f, encap);
    }
    p = this.writeEthernet(out, p, f, direction);

    // IP header, then L4 header and payload; lengths are patched once the payload size is known.
    const ipAt = p;
    const v6 = this.flowVersion[f] === 6;
    const ipHeaderLength = v6 ? 40 : 20;
    const l4At = ipAt + ipHeaderLength;
    const l4HeaderLength = protocol === IpProtocol.Tcp ? (flags & TcpFlag.Syn ? 32 : 20) : 8;
    const headersEnd = l4At + l4HeaderLength;
    const payloadLength = carriesData ? Math.max(8, target - (headersEnd - at)) : 0;
    const l4Length = l4HeaderLength + payloadLength;
    this.writePayload(out, headersEnd, payloadLength, f);
    if (v6) this.writeIpv6(out, ipAt, f, direction, protocol, l4Length);
    else this.writeIpv4(out, ipAt, f, direction, protocol, l4Length);
    const pseudo = v6
      ? pseudoHeaderSumV6(out, ipAt + 8, ipAt + 24, protocol, l4Length)
      : pseudoHeaderSumV4At(out, ipAt, protocol, l4Length);
    this.writeL4(out, l4At, f, direction, protocol, flags, l4Length, payloadLength, pseudo);
    const clientPort = this.flowClientPort[f];
    const serverPort =
      protocol === IpProtocol.Tcp || protocol === IpProtocol.Udp ? this.flowServerPort[f] : clientPort;
    info.srcPort = direction === 0 ? clientPort : serverPort;
    info.dstPort = direction === 0 ? serverPort : clientPort;
    this.flowPacketNumber[f]++;
    if (sessionEnds) {
      // The next packet of this flow opens a new connection from the next ephemeral port.
      this.flowClientPort[f] = this.flowClientPort[f] === 65535 ? 1024 : this.flowClientPort[f] + 1;
      this.startSession(f);
    }

    let end = headersEnd + payloadLength;
    if (outerIpAt >= 0) this.finishTunnel(out, outerIpAt, end);
    if (end - at < MIN_FRAME) {
      out.fill(0, end, at + MIN_FRAME); // Ethernet padding, outside every IP length
      end = at + MIN_FRAME;
    }
    info.payloadLength = payloadLength;
    info.frameLength = end - at;
    return end - at;
  }

  private imixSize(): number {
    const r = this.rng.below(IMIX_WEIGHTS[0] + IMIX_WEIGHTS[1] + IMIX_WEIGHTS[2]);
    return r < IMIX_WEIGHTS[0]
      ? IMIX_SIZES[0]
      : r < IMIX_WEIGHTS[0] + IMIX_WEIGHTS[1]
        ? IMIX_SIZES[1]
        : IMIX_SIZES[2];
  }

  private startSession(f: number): void {
    this.flowStep[f] = 0;
    this.flowClientSeq[f] = this.rng.u32();
    this.flowServerSeq[f] = this.rng.u32();
    this.flowSessionLength[f] = SESSION_CONTROL_STEPS + 1 + this.rng.below(24);
  }

  /**
   * The next TCP packet of flow f, advancing its session, packed as a number so nothing is
   * allocated: bit 0 direction, bits 1–8 flags, STEP_DATA, STEP_LAST.
   */
  private tcpStep(f: number): number {
    const A = TcpFlag.Ack;
    if (!this.options.tcpSessions) return this.rng.below(2) | ((TcpFlag.Psh | A) << 1) | STEP_DATA;
    const step = this.flowStep[f]++;
    const last = this.flowSessionLength[f] - 1;
    if (step === 0) return control(0, TcpFlag.Syn);
    if (step === 1) return control(1, TcpFlag.Syn | A);
    if (step === 2) return control(0, A);
    if (step === last - 3) return control(0, TcpFlag.Fin | A);
    if (step === last - 2) return control(1, A);
    if (step === last - 1) return control(1, TcpFlag.Fin | A);
    if (step === last) return control(0, A) | STEP_LAST;
    return this.rng.below(2) | ((TcpFlag.Psh | A) << 1) | STEP_DATA;
  }

  private writeTunnelHeaders(out: Uint8Array, at: number, f: number, encap: number): number {
    let p = at;
    const eth = this.eth.attachUnchecked(out, p, 14, 0);
    eth.setDst(VTEP_B_MAC);
    eth.setSrc(VTEP_A_MAC);
    eth.setEtherType(EtherType.Ipv4);
    p = eth.payloadAt();
    const ip = this.outerIp.attachUnchecked(out, p, 20);
    ip.setVersionAndHeaderLength(20);
    ip.setDscpEcn(0, 0);
    ip.setIdentification(this.produced & 0xffff);
    ip.setFragment(true, false, 0);
    ip.setTtl(64);
    ip.setProtocol(IpProtocol.Udp);
    ip.setSrc(VTEP_A);
    ip.setDst(VTEP_B);
    p += 20;
    // RFC 7348 §5: the source port carries entropy from the inner flow for ECMP.
    const udp = this.outerUdp.attachUnchecked(out, p, 8);
    udp.setSrcPort(49152 + ((f * 2654435761) >>> 18));
    udp.setDstPort(encap === Encapsulation.Vxlan ? UdpPort.Vxlan : UdpPort.Geneve);
    udp.setChecksum(0); // zero over IPv4 is allowed and recommended for both tunnels
    p += 8;
    if (encap === Encapsulation.Vxlan) {
      p += VxlanRepr.emit({ vni: this.flowVni[f] }, out, p);
    } else {
      p += GeneveRepr.emit(
        {
          vni: this.flowVni[f],
          protocolType: EtherType.TransparentEthernet,
          oam: false,
          critical: false,
          options: [{ optionClass: GENEVE_OPTION_CLASS, type: 1, data: this.geneveOptionData(f) }],
        },
        out,
        p,
      );
    }
    return p;
  }

  private readonly geneveData = new Uint8Array(4);
  private geneveOptionData(f: number): Uint8Array {
    write32(this.geneveData, 0, f);
    return this.geneveData;
  }

  private finishTunnel(out: Uint8Array, outerIpAt: number, end: number): void {
    const ip = this.outerIp.attachUnchecked(out, outerIpAt, 20);
    ip.setTotalLength(end - outerIpAt);
    ip.fillChecksum();
    this.outerUdp.attachUnchecked(out, outerIpAt + 20, 8).setLength(end - outerIpAt - 20);
  }

  private writeEthernet(out: Uint8Array, at: number, f: number, direction: number): number {
    const mode = this.flowTagMode[f];
    const eth = this.eth.attachUnchecked(
      out,
      at,
      22,
      mode === TagMode.None ? 0 : mode === TagMode.Dot1Q ? 1 : 2,
    );
    eth.setDst(direction === 0 ? SERVER_MAC : CLIENT_MAC);
    eth.setSrc(direction === 0 ? CLIENT_MAC : SERVER_MAC);
    if (mode !== TagMode.None) {
      eth.setTagProtocol(0, mode === TagMode.QinQ ? EtherType.QinQ : EtherType.Vlan);
      eth.setTag(0, f & 7, false, this.flowOuterVid[f]);
      if (mode === TagMode.QinQ) {
        eth.setTagProtocol(1, EtherType.Vlan);
        eth.setTag(1, 0, false, this.flowInnerVid[f]);
      }
    }
    eth.setEtherType(this.flowVersion[f] === 6 ? EtherType.Ipv6 : EtherType.Ipv4);
    return eth.payloadAt();
  }

  private writeIpv4(
    out: Uint8Array,
    at: number,
    f: number,
    direction: number,
    protocol: number,
    l4Length: number,
  ): void {
    const client = CLIENT_V4_BASE + (f & 0xffff);
    const server = SERVER_V4_BASE + (f & 0xffff);
    const ip = this.ip4.attachUnchecked(out, at, 20);
    ip.setVersionAndHeaderLength(20);
    ip.setDscpEcn(0, 0);
    ip.setTotalLength(20 + l4Length);
    ip.setIdentification(this.flowPacketNumber[f] & 0xffff);
    ip.setFragment(true, false, 0);
    ip.setTtl(direction === 0 ? 64 : 63);
    ip.setProtocol(protocol);
    ip.setSrc(direction === 0 ? client : server);
    ip.setDst(direction === 0 ? server : client);
    ip.fillChecksum();
  }

  private writeIpv6(
    out: Uint8Array,
    at: number,
    f: number,
    direction: number,
    protocol: number,
    l4Length: number,
  ): void {
    this.v6Address(f, 0, this.addr, 0);
    this.v6Address(f, 1, this.addr, 16);
    const ip = this.ip6.attachUnchecked(out, at, 40);
    ip.setVersionTrafficClassFlowLabel(0, f & 0xfffff);
    ip.setPayloadLength(l4Length);
    ip.setNextHeader(protocol);
    ip.setHopLimit(direction === 0 ? 64 : 63);
    ip.setSrc(this.addr, direction === 0 ? 0 : 16);
    ip.setDst(this.addr, direction === 0 ? 16 : 0);
  }

  private writeL4(
    out: Uint8Array,
    at: number,
    f: number,
    direction: number,
    protocol: number,
    flags: number,
    l4Length: number,
    payloadLength: number,
    pseudo: number,
  ): void {
    const clientPort = this.flowClientPort[f];
    const serverPort = this.flowServerPort[f];
    if (protocol === IpProtocol.Tcp) {
      const tcp = this.tcp.attachUnchecked(out, at, l4Length);
      tcp.setSrcPort(direction === 0 ? clientPort : serverPort);
      tcp.setDstPort(direction === 0 ? serverPort : clientPort);
      const mySeq = direction === 0 ? this.flowClientSeq : this.flowServerSeq;
      const theirSeq = direction === 0 ? this.flowServerSeq : this.flowClientSeq;
      tcp.setSeq(mySeq[f]);
      tcp.setAck(flags & TcpFlag.Ack ? theirSeq[f] : 0);
      const headerLength = flags & TcpFlag.Syn ? 32 : 20;
      tcp.setHeaderLength(headerLength);
      tcp.setFlags(flags);
      tcp.setWindow(64240);
      tcp.setUrgentPointer(0);
      if (flags & TcpFlag.Syn) writeSynOptions(out, at + 20);
      // SYN and FIN each take one sequence number (RFC 9293 §3.4).
      mySeq[f] = (mySeq[f] + payloadLength + (flags & (TcpFlag.Syn | TcpFlag.Fin) ? 1 : 0)) >>> 0;
      tcp.fillChecksum(pseudo);
    } else if (protocol === IpProtocol.Udp) {
      const udp = this.udp.attachUnchecked(out, at, l4Length);
      udp.setSrcPort(direction === 0 ? clientPort : serverPort);
      udp.setDstPort(direction === 0 ? serverPort : clientPort);
      udp.setLength(l4Length);
      udp.fillChecksum(pseudo);
    } else {
      // ICMP / ICMPv6 echo: type, code, checksum, identifier (the client port), sequence.
      const v6 = protocol === IpProtocol.Icmpv6;
      const request = direction === 0;
      out[at] = v6
        ? request
          ? Icmpv6Type.EchoRequest
          : Icmpv6Type.EchoReply
        : request
          ? Icmpv4Type.EchoRequest
          : Icmpv4Type.EchoReply;
      out[at + 1] = 0;
      out[at + 2] = 0;
      out[at + 3] = 0;
      out[at + 4] = clientPort >>> 8;
      out[at + 5] = clientPort & 0xff;
      const seq = this.flowIcmpSeq[f];
      out[at + 6] = seq >>> 8;
      out[at + 7] = seq & 0xff;
      if (!request) this.flowIcmpSeq[f] = (seq + 1) & 0xffff;
      const sum = internetChecksum(out, at, l4Length, v6 ? pseudo : 0);
      out[at + 2] = sum >>> 8;
      out[at + 3] = sum & 0xff;
    }
  }

  /** Payload: an 8-byte sequence token (flow, per-flow packet number), then the seeded pattern. */
  private writePayload(out: Uint8Array, at: number, length: number, f: number): void {
    if (length === 0) return;
    copyBytes(this.payloadPattern, 0, out, at, length);
    if (length >= 8) {
      write32(out, at, f);
      write32(out, at + 4, this.flowPacketNumber[f]);
    }
  }

  private v6Address(f: number, side: number, out: Uint8Array, at: number): void {
    out.set(V6_PREFIX, at);
    out[at + 7] = side;
    out.fill(0, at + 8, at + 12);
    write32(out, at + 12, f + 1);
  }

  private v6Text(f: number, side: number): string {
    const b = new Uint8Array(16);
    this.v6Address(f, side, b, 0);
    return formatIpv6(b);
  }
}

/** A TCP control step (no data) packed as `tcpStep` returns it. */
function control(direction: number, flags: number): number {
  return direction | (flags << 1);
}

/** MSS 1460, SACK permitted, timestamps off, NOP, window scale 7: 12 bytes, as a SYN carries. */
function writeSynOptions(out: Uint8Array, at: number): void {
  out.set(SYN_OPTIONS, at);
}
const SYN_OPTIONS = Uint8Array.of(2, 4, 0x05, 0xb4, 4, 2, 1, 1, 1, 3, 3, 7);

function formatV4(value: number): string {
  return formatIpv4(value >>> 0);
}
