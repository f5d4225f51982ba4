/**
 * ids: intrusion detection and prevention with Snort/Suricata-style signatures (the subset in
 * rules.ts), inline in a chain.
 *
 * Rules are compiled once, in `create()`: every content into one Aho–Corasick automaton
 * (aho-corasick.ts) that walks each inspected byte once; a pattern hit makes its rules candidates,
 * and each candidate is verified exactly — header, flow, contents with their positions, pcre —
 * by rule-set.ts. Rules without content are checked by header on every packet.
 *
 * TCP is inspected as streams (stream-table.ts): each direction is reassembled in order, holding
 * out-of-order segments within a per-stream and a global budget (overlaps: first wins), and the
 * automaton state is carried from segment to segment, so a signature split across segments — sent
 * in order, out of order or overlapping — is found, without scanning any byte twice. Positions
 * (offset/depth) count from the stream's first byte; the last `windowBytes` of each direction are
 * kept so distance/within can look back across a segment boundary. UDP, ICMP and other IP packets
 * (and a TCP segment over a budget) are inspected one packet at a time.
 *
 * Modes: `alert` passes every packet and logs; `prevent` drops a packet that a `drop` or `reject`
 * rule matches, answers a TCP one with a RST to its sender (src/packet/reject.ts) and drops the rest of
 * that TCP flow. A matching `pass` rule lets the packet through without alerts. Alerts go into a
 * ring that `snapshot()` carries (with sequence numbers), which the host's EVE exporter
 * (src/io/eve-exporter.ts) turns into EVE JSON lines; per-signature hits come with it.
 *
 * IP fragments (IPv4, and IPv6 Fragment headers) are reassembled (src/packet/fragment-table.ts, as Snort's
 * frag3 and Suricata's defrag do), so a signature split across fragments is found: a bounded table
 * of datagrams keyed by (src, dst, protocol, id) — `maxFragmentedDatagrams`, `fragmentBytes` in all,
 * `fragmentDatagramBytes` each, `fragmentTimeoutSeconds` from the first fragment — evicting the
 * oldest when full (`fragments_evicted`). A completed datagram is rebuilt as one frame and inspected
 * like an unfragmented packet of its protocol: a TCP segment goes into its stream, so a signature
 * split across IP fragments and TCP segments is found too. Fragments are forwarded as they came
 * (the IDS does not re-fragment); in `prevent` mode, when the datagram matches a drop/reject rule,
 * the fragment that completed it is dropped — or turned into the RST, the flow then blocked as
 * above — and the receiver can never reassemble it. Overlaps: first copy wins; a fragment whose
 * bytes differ from bytes already received is counted (`fragment_overlap_conflict`) and in
 * `prevent` mode dropped, so the receiver only gets bytes the IDS inspected, whatever its own
 * overlap policy (src/packet/fragment-table.ts says why). Tiny fragments (RFC 1858), fragments past 65535
 * bytes and inconsistent ones are counted and in `prevent` mode dropped. Fragments of a datagram
 * that never completes (timed out, evicted, or never sent whole) pass uninspected, counted.
 *
 * Not inspected (passed, counted): non-IP frames, tunnel contents. Malformed frames (including a
 * bad TCP/UDP checksum, also of a reassembled datagram) are counted; `prevent` drops them. Streams
 * and datagrams in reassembly are not carried across a restart (inspection picks streams up
 * midstream); alerts and hits are.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey } from '../../src/packet/flow-key.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag } from '../../src/packet/tcp.js';
import { defineNf, type NfInstance, type PacketBatch } from '../../src/sdk/index.js';
import { IPV6_HEADER_LENGTH, Ipv6Field, Ipv6FragmentField } from '../../src/packet/ipv6.js';
import { RuleSet } from './rule-set.js';
import { Action, addressMatches, FlowFlag, parseRules, parseVars, portMatches, type Rule } from './rules.js';
import { SegmentResult, StreamFlag, StreamStat, StreamTable } from './stream-table.js';
import { FragmentResult, FragmentStat, FragmentTable } from '../../src/packet/fragment-table.js';
import { Rejecter } from '../../src/packet/reject.js';

export interface IdsConfig {
  mode: 'alert' | 'prevent';
  rules: string[];
  vars: string[];
  maxStreams: number;
  windowBytes: number;
  reassemblyBytes: number;
  streamHoldBytes: number;
  streamTimeoutSeconds: number;
  maxFragmentedDatagrams: number;
  fragmentBytes: number;
  fragmentDatagramBytes: number;
  fragmentTimeoutSeconds: number;
  alertRing: number;
}

/** One alert as the control plane and the EVE exporter see it (EVE field names). */
export interface IdsAlert {
  /** 1, 2, 3 … over the instance's life. */
  sequence: number;
  /** Nanoseconds, in the clock of `process(batch, now)` (the host's: since the epoch). */
  timestamp: number;
  src_ip: string;
  src_port: number;
  dest_ip: string;
  dest_port: number;
  /** 'TCP', 'UDP', 'ICMP', 'IPv6-ICMP' or the protocol number. */
  proto: string;
  action: 'allowed' | 'blocked';
  signature_id: number;
  rev: number;
  signature: string;
  category: string;
}

export interface IdsSnapshot {
  version: 1;
  alerts: IdsAlert[];
  alertsTotal: number;
  /** Hits per signature id. */
  hits: Record<string, number>;
}

export interface IdsInstance extends NfInstance {
  /** Alerts still in the ring with a sequence number above `after`, oldest first (allocates). */
  alerts(after?: number): IdsAlert[];
  /** Hits per signature, in rule order (allocates). */
  hits(): { sid: number; rev: number; msg: string; hits: number }[];
  /** Streams tracked now. */
  activeStreams(): number;
  /** The compiled configuration, for `nfvisor` to print. */
  readonly plan: {
    mode: 'alert' | 'prevent';
    rules: number;
    patterns: number;
    states: number;
    automatonBytes: number;
    headerOnly: number;
    maxStreams: number;
    streamMemoryBytes: number;
    reassemblyChunks: number;
    maxFragmentedDatagrams: number;
    fragmentChunks: number;
  };
}

/** Alerts logged per packet at most; further matches are counted (`alerts_suppressed`). */
const MAX_ALERTS_PER_PACKET = 8;
const NO_STREAM = -1;
/** What inspect() decided for a packet. */
const Verdict = { Pass: 0, BlockedFlow: 1, Block: 2 } as const;

const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'TCP', 17: 'UDP', 1: 'ICMP', 58: 'IPv6-ICMP' };

export default defineNf<IdsConfig>({
  name: 'ids',
  summary:
    'Intrusion detection/prevention: Snort/Suricata-style signatures, multi-pattern automaton, TCP reassembly, EVE alerts; drop + RST.',
  outputs: ['out'],
  drops: {
    signature: 'prevent mode: a drop or reject rule matched (a TCP segment is answered with a RST instead)',
    blocked_flow: 'prevent mode: a later packet of a TCP flow a drop or reject rule blocked',
    malformed:
      'prevent mode: the parser refused the frame (truncated, bad length or checksum), or the datagram its fragments reassemble into',
    fragment_overlap_conflict:
      'prevent mode: an IP fragment whose bytes differ from bytes of its datagram already received (the receiver only ever gets the first copy)',
    fragment_bad:
      'prevent mode: an IP fragment inconsistent with its datagram (length not a multiple of 8, past the end, a second end)',
    fragment_tiny:
      'prevent mode: a first fragment too short for its transport header, or a TCP fragment at offset 8 (RFC 1858)',
    fragment_oversize: 'prevent mode: an IP fragment ending past 65535 bytes (ping of death)',
  },
  counters: {
    packets: { unit: 'packets', description: 'IP packets inspected' },
    inspected_bytes: { unit: 'bytes', description: 'payload and stream bytes walked through the automaton' },
    alerts: { unit: 'alerts', description: 'alerts logged (put in the alert ring)' },
    alerts_suppressed: {
      unit: 'alerts',
      description: `rule matches beyond ${MAX_ALERTS_PER_PACKET} per packet, not logged`,
    },
    candidates: {
      unit: 'rules',
      description: 'rules verified because the automaton saw one of their contents',
    },
    verify_budget: {
      unit: 'rules',
      description: 'verifications cut short after trying too many content occurrences (no match)',
    },
    passed: { unit: 'packets', description: 'packets a pass rule matched (no alert, never dropped)' },
    dropped: { unit: 'packets', description: 'prevent mode: packets dropped or reset by a drop/reject rule' },
    resets: { unit: 'packets', description: 'prevent mode: TCP segments turned into a RST to their sender' },
    blocked_flow: { unit: 'packets', description: 'prevent mode: packets of blocked TCP flows dropped' },
    streams_active: { unit: 'streams', description: 'TCP streams tracked now (a gauge)' },
    streams_created: { unit: 'streams', description: 'TCP streams started' },
    streams_evicted: { unit: 'streams', description: 'streams evicted to make room (half-open ones first)' },
    streams_expired: { unit: 'streams', description: 'streams idle for streamTimeoutSeconds, forgotten' },
    segments_held: { unit: 'packets', description: 'out-of-order segments held for reassembly' },
    overlaps: { unit: 'packets', description: 'segments overlapping data already seen (first copy wins)' },
    overlap_conflicts: {
      unit: 'packets',
      description: 'overlapping segments whose bytes differ from the first copy (evasion attempts)',
    },
    retransmissions: { unit: 'packets', description: 'segments carrying only bytes already delivered' },
    stream_gaps: { unit: 'packets', description: 'segments too far ahead: the direction restarted there' },
    hold_overflow: {
      unit: 'packets',
      description: 'out-of-order segments over the stream or global hold budget, inspected on their own',
    },
    malformed: { unit: 'packets', description: 'frames the parser refused' },
    not_ip: { unit: 'packets', description: 'frames without IP, passed uninspected' },
    fragments: {
      unit: 'packets',
      description:
        'IP fragments taken into reassembly (forwarded as they are; their datagram is inspected once complete)',
    },
    fragments_reassembled: { unit: 'datagrams', description: 'fragmented datagrams completed and inspected' },
    fragments_active: { unit: 'datagrams', description: 'datagrams in reassembly now (a gauge)' },
    fragments_expired: {
      unit: 'datagrams',
      description:
        'datagrams incomplete after fragmentTimeoutSeconds, forgotten (their fragments passed uninspected)',
    },
    fragments_evicted: {
      unit: 'datagrams',
      description:
        'datagrams given up incomplete to stay within maxFragmentedDatagrams, fragmentBytes (oldest first) or fragmentDatagramBytes (their fragments passed uninspected)',
    },
    fragment_overlaps: {
      unit: 'packets',
      description: 'IP fragments overlapping bytes of their datagram already received (first copy wins)',
    },
    fragment_overlap_conflict: {
      unit: 'packets',
      description: 'overlapping IP fragments whose bytes differ from the first copy (evasion attempts)',
    },
    fragment_bad: {
      unit: 'packets',
      description:
        'IP fragments inconsistent with their datagram: not a multiple of 8 bytes before the last, empty, past the end the last one set, or a second end (the datagram is discarded, as Linux does)',
    },
    fragment_tiny: {
      unit: 'packets',
      description:
        'first fragments too short for their transport header, and TCP fragments at offset 8 (RFC 1858)',
    },
    fragment_oversize: {
      unit: 'packets',
      description:
        'IP fragments ending past 65535 bytes (ping of death), refused by the parser (also malformed)',
    },
  },
  config: {
    mode: {
      type: 'string',
      enum: ['alert', 'prevent'],
      default: 'alert',
      description: 'alert: pass everything and log; prevent: drop (and reset) what drop/reject rules match',
    },
    rules: {
      type: 'array',
      items: { type: 'string', description: 'one rule: action proto src sport -> dst dport (options)' },
      default: [],
      maxItems: 100_000,
      description:
        'signatures, one per entry: `action proto src sport -> dst dport (options)` — alert/drop/reject/pass; tcp/udp/icmp/ip; addresses with CIDRs, [lists], !negation, $VARS; ports with ranges a:b; -> or <>; options msg, sid, rev, classtype, content (|hex|) with nocase/offset/depth/distance/within, pcre (backtracking-prone shapes refused), flow:established,to_server/to_client. The full subset: nfs/ids/rules.ts',
    },
    vars: {
      type: 'array',
      items: { type: 'string', description: 'NAME=value' },
      default: [],
      maxItems: 1000,
      description:
        'address and port variables, e.g. HOME_NET=[10.0.0.0/8,192.168.0.0/16], HTTP_PORTS=[80,8080]',
    },
    maxStreams: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 20,
      default: 4096,
      description: 'TCP streams tracked at most; a full table evicts (half-open first)',
    },
    windowBytes: {
      type: 'integer',
      minimum: 64,
      maximum: 16384,
      default: 1024,
      description:
        'stream bytes kept per direction for look-back: distance/within reach this far across segments',
    },
    reassemblyBytes: {
      type: 'integer',
      minimum: 2048,
      maximum: 1 << 30,
      default: 4 << 20,
      description: 'memory for out-of-order segments over all streams (2 KiB per held piece)',
    },
    streamHoldBytes: {
      type: 'integer',
      minimum: 0,
      maximum: 1 << 24,
      default: 64 << 10,
      description: 'out-of-order payload bytes held per stream direction at most',
    },
    streamTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 86400,
      default: 120,
      description: 'a stream without packets for this long is forgotten',
    },
    maxFragmentedDatagrams: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 16,
      default: 1024,
      description:
        'IP datagrams in reassembly at most (about 1.6 KiB each, besides their bytes); a full table evicts the oldest',
    },
    fragmentBytes: {
      type: 'integer',
      minimum: 65536,
      maximum: 1 << 30,
      default: 4 << 20,
      description:
        'bytes of fragment payload held over all datagrams in reassembly (1 KiB chunks; Linux holds 4 MiB); when spent, the oldest datagrams are evicted',
    },
    fragmentDatagramBytes: {
      type: 'integer',
      minimum: 1500,
      maximum: 65535,
      default: 65535,
      description:
        'payload bytes one datagram may reassemble to; a fragment reaching past it gives its datagram up (passed uninspected)',
    },
    fragmentTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: 60,
      description:
        "seconds from a datagram's first fragment until an incomplete datagram is forgotten; keep it at least the receivers' (Linux 30, Windows 60), or fragments spaced out past it evade inspection",
    },
    alertRing: {
      type: 'integer',
      minimum: 1,
      maximum: 1 << 20,
      default: 1024,
      description: 'alerts kept for the exporter (a ring; it must hold what arrives between snapshots)',
    },
  },
  check(config) {
    // The rule texts are parsed here too, so a broken rule is a deployment error at its own line.
    try {
      parseRules(config.rules, parseVars(config.vars));
      return [];
    } catch (error) {
      return (error as Error).message.split('\n').map((line) => {
        const at = /^((?:rules|vars)\[\d+\])(?: \((sid \d+)\))?: (.*)$/.exec(line);
        return at
          ? { path: at[1], message: at[2] ? `${at[2]}: ${at[3]}` : at[3] }
          : { path: 'rules', message: line };
      });
    }
  },
  create(config, ctx): IdsInstance {
    const set = new RuleSet(parseRules(config.rules, parseVars(config.vars)));
    const rules = set.rules;
    const ac = set.automaton;
    const prevent = config.mode === 'prevent';
    const streams = new StreamTable({
      maxStreams: config.maxStreams,
      tailBytes: config.windowBytes,
      reassemblyBytes: config.reassemblyBytes,
      streamHoldBytes: config.streamHoldBytes,
    });
    const idleNs = config.streamTimeoutSeconds * 1e9;
    const frags = new FragmentTable({
      maxDatagrams: config.maxFragmentedDatagrams,
      bytes: config.fragmentBytes,
      datagramBytes: config.fragmentDatagramBytes,
      rejectConflicts: prevent,
    });
    const fragmentTimeoutNs = config.fragmentTimeoutSeconds * 1e9;
    const fragKey = new FlowKey();

    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: true });
    const key = new FlowKey();
    const reversed = new FlowKey();
    const scratchKey = new FlowKey();
    const resetter = new Rejecter();
    /** The verification window: the stream's tail, then the new bytes. */
    const window = new Uint8Array(config.windowBytes + 65536);

    // Candidate rules of the current scan (deduplicated with a stamp per scan).
    const candidates = new Uint32Array(rules.length);
    const candidateStamp = new Uint32Array(rules.length);
    let candidateCount = 0;
    let scanStamp = 0;
    // Rules matched by the current packet (deduplicated with a stamp per packet).
    const matched = new Int32Array(MAX_ALERTS_PER_PACKET);
    const matchedStamp = new Uint32Array(rules.length);
    let matchedCount = 0;
    let packetStamp = 0;
    let passMatched = false;
    let blockMatched = false;

    // The current packet, for header checks.
    let pktV6 = false;
    let pktSrc4 = 0;
    let pktDst4 = 0;
    let pktSrcAt = 0;
    let pktDstAt = 0;
    let pktBytes: Uint8Array = window;
    let pktProto = 0;
    let pktSport = 0;
    let pktDport = 0;
    let curStream = NO_STREAM;
    let curDir = 0;

    // Alert ring.
    const ring = config.alertRing;
    const alertRule = new Int32Array(ring);
    const alertTime = new Float64Array(ring);
    const alertKey = new Uint32Array(ring * FLOW_KEY_WORDS);
    const alertBlocked = new Uint8Array(ring);
    const alertSeq = new Float64Array(ring);
    let alertsTotal = 0;

    const c = ctx.counters;
    const C = {
      packets: ctx.counter('packets'),
      inspected: ctx.counter('inspected_bytes'),
      alerts: ctx.counter('alerts'),
      suppressed: ctx.counter('alerts_suppressed'),
      candidates: ctx.counter('candidates'),
      budget: ctx.counter('verify_budget'),
      passed: ctx.counter('passed'),
      dropped: ctx.counter('dropped'),
      resets: ctx.counter('resets'),
      blockedFlow: ctx.counter('blocked_flow'),
      active: ctx.counter('streams_active'),
      malformed: ctx.counter('malformed'),
      notIp: ctx.counter('not_ip'),
      fragments: ctx.counter('fragments'),
      fragmentsActive: ctx.counter('fragments_active'),
      fragmentTiny: ctx.counter('fragment_tiny'),
      fragmentOversize: ctx.counter('fragment_oversize'),
    };
    /** Fragment table statistic → counter. */
    const fragmentCounters: [number, number][] = [
      [FragmentStat.Reassembled, ctx.counter('fragments_reassembled')],
      [FragmentStat.Expired, ctx.counter('fragments_expired')],
      [FragmentStat.Evicted, ctx.counter('fragments_evicted')],
      [FragmentStat.Overlaps, ctx.counter('fragment_overlaps')],
      [FragmentStat.OverlapConflicts, ctx.counter('fragment_overlap_conflict')],
      [FragmentStat.Bad, ctx.counter('fragment_bad')],
    ];
    /** Stream table statistic → counter. */
    const streamCounters: [number, number][] = [
      [StreamStat.Created, ctx.counter('streams_created')],
      [StreamStat.Evicted, ctx.counter('streams_evicted')],
      [StreamStat.Expired, ctx.counter('streams_expired')],
      [StreamStat.Held, ctx.counter('segments_held')],
      [StreamStat.Overlaps, ctx.counter('overlaps')],
      [StreamStat.OverlapConflicts, ctx.counter('overlap_conflicts')],
      [StreamStat.Gaps, ctx.counter('stream_gaps')],
      [StreamStat.HoldOverflow, ctx.counter('hold_overflow')],
      [StreamStat.Retransmitted, ctx.counter('retransmissions')],
    ];
    const dSignature = ctx.dropReason('signature');
    const dBlocked = ctx.dropReason('blocked_flow');
    const dMalformed = ctx.dropReason('malformed');
    const dConflict = ctx.dropReason('fragment_overlap_conflict');
    const dFragmentBad = ctx.dropReason('fragment_bad');
    const dTiny = ctx.dropReason('fragment_tiny');
    const dOversize = ctx.dropReason('fragment_oversize');
    let inspected = 0;
    let nCandidates = 0;
    let suppressed = 0;

    /** Marks the rules of pattern p as candidates of this scan (made once: no closure per packet). */
    const onPattern = (p: number): void => {
      const end = set.patternRuleStart[p + 1];
      for (let k = set.patternRuleStart[p]; k < end; k++) {
        const r = set.patternRules[k];
        if (candidateStamp[r] === scanStamp) continue;
        candidateStamp[r] = scanStamp;
        candidates[candidateCount++] = r;
      }
    };

    function headerMatches(rule: Rule): boolean {
      if (rule.protocol !== 0) {
        if (rule.protocol === IpProtocol.Icmp) {
          if (pktProto !== IpProtocol.Icmp && pktProto !== IpProtocol.Icmpv6) return false;
        } else if (rule.protocol !== pktProto) return false;
      }
      if (rule.flow !== 0) {
        if (curStream === NO_STREAM) return false;
        if (
          (rule.flow & FlowFlag.Established) !== 0 &&
          (streams.flags[curStream] & StreamFlag.Established) === 0
        )
          return false;
        if ((rule.flow & FlowFlag.ToServer) !== 0 && curDir !== 0) return false;
        if ((rule.flow & FlowFlag.ToClient) !== 0 && curDir !== 1) return false;
      }
      if (
        addressMatches(rule.src, pktV6, pktSrc4, pktBytes, pktSrcAt) &&
        addressMatches(rule.dst, pktV6, pktDst4, pktBytes, pktDstAt) &&
        portMatches(rule.srcPorts, pktSport) &&
        portMatches(rule.dstPorts, pktDport)
      )
        return true;
      return (
        rule.bidirectional &&
        addressMatches(rule.src, pktV6, pktDst4, pktBytes, pktDstAt) &&
        addressMatches(rule.dst, pktV6, pktSrc4, pktBytes, pktSrcAt) &&
        portMatches(rule.srcPorts, pktDport) &&
        portMatches(rule.dstPorts, pktSport)
      );
    }

    /** Records that rule r matched the current packet (once per packet). */
    function ruleMatched(r: number): void {
      if (matchedStamp[r] === packetStamp) return;
      matchedStamp[r] = packetStamp;
      const action = rules[r].action;
      if (action === Action.Pass) passMatched = true;
      else if (action !== Action.Alert) blockMatched = true;
      if (matchedCount < MAX_ALERTS_PER_PACKET) matched[matchedCount++] = r;
      else suppressed++;
    }

    /**
     * Walks `length` new bytes at `bytes[at]` through the automaton from `state`, then verifies the
     * candidates over the window [tail of `tailLen` bytes from direction index `dirIndex`] + new
     * bytes, the new bytes starting at stream position `pos`. Returns the automaton state.
     */
    function scan(
      bytes: Uint8Array,
      at: number,
      length: number,
      state: number,
      pos: number,
      dirIndex: number,
      tailLen: number,
    ): number {
      scanStamp++;
      candidateCount = 0;
      let s = state;
      const end = at + length;
      const { dense, denseRow, emits } = ac;
      for (let k = at; k < end; k++) {
        // ac.step's dense fast path, inlined: shallow states are a table look-up.
        const row = denseRow[s];
        s = row >= 0 ? dense[(row << 8) | bytes[k]] : ac.step(s, bytes[k]);
        if (emits[s] === 1) ac.forEachOutput(s, onPattern);
      }
      inspected += length;
      if (candidateCount === 0) return s;
      nCandidates += candidateCount;
      let n = 0;
      if (dirIndex >= 0) {
        const T = streams.tailBytes;
        const tails = streams.tails;
        const tailBase = dirIndex * T;
        let w = (pos - tailLen) % T;
        for (let q = 0; q < tailLen; q++) {
          window[n++] = tails[tailBase + w];
          if (++w === T) w = 0;
        }
      }
      for (let k = at; k < end && n < window.length; k++) window[n++] = bytes[k];
      set.setWindow(window, n, pos - tailLen, pos);
      for (let k = 0; k < candidateCount; k++) {
        const r = candidates[k];
        if (matchedStamp[r] !== packetStamp && headerMatches(rules[r]) && set.verify(r)) ruleMatched(r);
      }
      return s;
    }

    /** Stream delivery: new in-order bytes of direction (curStream, curDir). Made once. */
    const deliver = (bytes: Uint8Array, at: number, length: number): void => {
      const i = 2 * curStream + curDir;
      streams.acState[i] = scan(
        bytes,
        at,
        length,
        streams.acState[i],
        streams.delivered[i],
        i,
        streams.tailLen[i],
      );
    };

    function recordAlert(r: number, now: number, blocked: boolean): void {
      const a = alertsTotal % ring;
      alertsTotal++;
      alertRule[a] = r;
      alertTime[a] = now;
      key.writeTo(alertKey, a * FLOW_KEY_WORDS);
      alertBlocked[a] = blocked ? 1 : 0;
      alertSeq[a] = alertsTotal;
      set.hits[r]++;
    }

    function alertAt(a: number): IdsAlert {
      const rule = rules[alertRule[a]];
      scratchKey.readFrom(alertKey, a * FLOW_KEY_WORDS);
      const v6 = scratchKey.version() === 6;
      const address = (src: boolean): string => {
        if (!v6) return formatIpv4(src ? scratchKey.srcV4() : scratchKey.dstV4());
        const out = new Uint8Array(16);
        if (src) scratchKey.srcAddressTo(out);
        else scratchKey.dstAddressTo(out);
        return formatIpv6(out);
      };
      const proto = scratchKey.protocol();
      const ports = proto === IpProtocol.Tcp || proto === IpProtocol.Udp;
      return {
        sequence: alertSeq[a],
        timestamp: alertTime[a],
        src_ip: address(true),
        src_port: ports ? scratchKey.srcPort() : 0,
        dest_ip: address(false),
        dest_port: ports ? scratchKey.dstPort() : 0,
        proto: PROTO_NAMES[proto] ?? String(proto),
        action: alertBlocked[a] === 1 ? 'blocked' : 'allowed',
        signature_id: rule.sid,
        rev: rule.rev,
        signature: rule.msg,
        category: rule.classtype,
      };
    }

    function alertList(after: number): IdsAlert[] {
      const out: IdsAlert[] = [];
      const held = Math.min(alertsTotal, ring);
      for (let n = alertsTotal - held; n < alertsTotal; n++) {
        const a = n % ring;
        if (alertSeq[a] > after) out.push(alertAt(a));
      }
      return out;
    }

    /** Finds or starts the TCP stream of the current packet; sets curStream and curDir. */
    function trackTcp(flags: number, now: number): void {
      const hash = key.symmetricHash();
      reversed.copyFrom(key);
      reversed.reverse();
      let s = streams.find(key, reversed, hash);
      if (s >= 0) {
        curDir = streams.direction;
        streams.touch(s, now);
      } else {
        if ((flags & TcpFlag.Rst) !== 0) {
          curStream = NO_STREAM;
          return;
        }
        const synAck = (flags & (TcpFlag.Syn | TcpFlag.Ack)) === (TcpFlag.Syn | TcpFlag.Ack);
        // The client is the SYN's sender; a SYN-ACK's receiver; midstream, the first sender.
        s = streams.create(synAck ? reversed : key, hash, now);
        curDir = synAck ? 1 : 0;
        if ((flags & TcpFlag.Syn) === 0) streams.flags[s] |= StreamFlag.Midstream | StreamFlag.Established;
      }
      curStream = s;
      const tcp = parser.tcp;
      if ((flags & TcpFlag.Syn) !== 0) {
        // The SYN's sequence number is the direction's ISN; data starts after it.
        const i = 2 * s + curDir;
        if (streams.seqKnown[i] === 0 || streams.delivered[i] === 0) {
          streams.nextSeq[i] = (tcp.seq() + 1) >>> 0;
          streams.seqKnown[i] = 1;
        }
        streams.flags[s] |= (flags & TcpFlag.Ack) !== 0 ? StreamFlag.SynAck : StreamFlag.Syn;
      } else if (
        (flags & TcpFlag.Ack) !== 0 &&
        curDir === 0 &&
        (streams.flags[s] & StreamFlag.SynAck) !== 0
      ) {
        streams.flags[s] |= StreamFlag.Established;
      }
    }

    // Per-batch tallies (closure variables: inspect() and onFragment() add to them).
    let nPackets = 0;
    let nMalformed = 0;
    let nFragments = 0;
    let nTiny = 0;
    let nOversize = 0;
    let nPassed = 0;
    let nDropped = 0;
    let nResets = 0;
    let nBlockedFlow = 0;
    let nAlerts = 0;

    /**
     * Inspects the IP packet `parser` is attached to (in `bytes`; `key` holds its 5-tuple): header
     * rules, then its payload — through its TCP stream, or on its own. Records the alerts and, in
     * prevent mode, marks a TCP flow a drop/reject rule matched as blocked. Returns a Verdict.
     */
    function inspect(bytes: Uint8Array, now: number): number {
      nPackets++;
      packetStamp++;
      matchedCount = 0;
      passMatched = false;
      blockMatched = false;
      pktProto = parser.protocol;
      pktV6 = parser.l3 === Layer.Ipv6;
      pktBytes = bytes;
      if (pktV6) {
        pktSrcAt = parser.ipv6.srcAt();
        pktDstAt = parser.ipv6.dstAt();
      } else {
        pktSrc4 = parser.ipv4.src();
        pktDst4 = parser.ipv4.dst();
      }
      pktSport = 0;
      pktDport = 0;
      curStream = NO_STREAM;
      curDir = 0;
      const payloadAt = parser.payloadAt;
      const payloadLength = parser.payloadLength;
      let tcpFlags = 0;
      if (parser.l4 === Layer.Tcp) {
        pktSport = parser.tcp.srcPort();
        pktDport = parser.tcp.dstPort();
        tcpFlags = parser.tcp.flags();
        trackTcp(tcpFlags, now);
        if (curStream !== NO_STREAM && (streams.flags[curStream] & StreamFlag.Blocked) !== 0)
          return Verdict.BlockedFlow;
      } else if (parser.l4 === Layer.Udp) {
        pktSport = parser.udp.srcPort();
        pktDport = parser.udp.dstPort();
      }
      for (let k = 0; k < set.headerOnly.length; k++) {
        const r = set.headerOnly[k];
        if (headerMatches(rules[r]) && set.verify(r)) ruleMatched(r);
      }
      if (payloadLength > 0) {
        if (curStream !== NO_STREAM) {
          // A SYN's data (TCP Fast Open) starts after the SYN's own sequence number.
          const seq = (parser.tcp.seq() + ((tcpFlags & TcpFlag.Syn) !== 0 ? 1 : 0)) >>> 0;
          const result = streams.segment(
            2 * curStream + curDir,
            seq,
            bytes,
            payloadAt,
            payloadLength,
            deliver,
          );
          if (result === SegmentResult.Overflow) scan(bytes, payloadAt, payloadLength, 0, 0, -1, 0);
        } else scan(bytes, payloadAt, payloadLength, 0, 0, -1, 0);
      }
      if (curStream !== NO_STREAM && (tcpFlags & TcpFlag.Rst) !== 0 && !blockMatched)
        streams.remove(curStream);
      if (matchedCount === 0) return Verdict.Pass;
      if (passMatched) {
        nPassed++;
        return Verdict.Pass;
      }
      const block = prevent && blockMatched;
      for (let k = 0; k < matchedCount; k++)
        recordAlert(matched[k], now, block && rules[matched[k]].action !== Action.Alert);
      nAlerts += matchedCount;
      if (!block) return Verdict.Pass;
      if (curStream !== NO_STREAM) streams.flags[curStream] |= StreamFlag.Blocked;
      return Verdict.Block;
    }

    /** True when the parser refused a fragment because it would end past 65535 (ping of death). */
    function oversizeFragment(reason: number): boolean {
      if (reason !== DropReason.BadLength) return false;
      if (parser.failedLayer === Layer.Ipv4) {
        const ip = parser.ipv4;
        const total = ip.totalLength();
        const header = ip.headerLength();
        return total >= header && ip.fragmentOffset() + total - header > 0xffff;
      }
      if (parser.failedLayer === Layer.Ipv6)
        return (
          parser.ipv6.isFragment() && parser.ipv6.fragmentOffset() + parser.ipv6.payloadLength() > 0xffff
        );
      return false;
    }

    /** Set by fragmentHeaderAt: the offset of the Next Header byte that names the Fragment header. */
    let fixPos = 0;
    /** Offset of the IPv6 Fragment header of the packet at `ipAt` (the view checked the chain), or -1. */
    function fragmentHeaderAt(bytes: Uint8Array, ipAt: number, end: number): number {
      let next = bytes[ipAt + Ipv6Field.NextHeader];
      fixPos = ipAt + Ipv6Field.NextHeader;
      let p = ipAt + IPV6_HEADER_LENGTH;
      for (let n = 0; n <= parser.options.maxExtensionHeaders && p + 8 <= end; n++) {
        if (next === IpProtocol.Ipv6Fragment) return p;
        const length = next === IpProtocol.Ah ? (bytes[p + 1] + 2) * 4 : (bytes[p + 1] + 1) * 8;
        fixPos = p;
        next = bytes[p];
        p += length;
      }
      return -1;
    }

    /**
     * An IP fragment (parser attached to it; `tiny` when its transport header was cut short): into
     * reassembly; when it completes its datagram, the datagram is inspected, and in prevent mode this
     * fragment carries the verdict (dropped, or turned into the RST). Otherwise it passes as it is,
     * except, in prevent mode, a conflicting, inconsistent or tiny one.
     */
    function onFragment(batch: PacketBatch, i: number, now: number, tiny: boolean): void {
      nFragments++;
      const bytes = batch.bytes;
      const frameAt = batch.at[i];
      let result: number;
      if (parser.l3 === Layer.Ipv4) {
        const ip = parser.ipv4;
        const offset = ip.fragmentOffset();
        const protocol = ip.protocol();
        // RFC 1858 §4: a TCP fragment at offset 8 can only serve to rewrite the TCP header's flags.
        if (offset === 8 && protocol === IpProtocol.Tcp) tiny = true;
        fragKey.setV4(ip.src(), ip.dst(), protocol, 0, ip.identification());
        const dataAt = ip.payloadAt();
        result = frags.add(
          fragKey,
          now,
          offset,
          ip.moreFragments(),
          bytes,
          dataAt,
          ip.payloadLength(),
          frameAt,
          dataAt - frameAt,
          ip.at - frameAt,
          -1,
          0,
        );
      } else {
        const ip = parser.ipv6;
        const end = ip.payloadAt() + ip.payloadLength();
        const fh = fragmentHeaderAt(bytes, ip.at, end);
        if (fh < 0) {
          frags.stats[FragmentStat.Bad]++;
          result = FragmentResult.Bad;
        } else {
          const offset = ip.fragmentOffset();
          if (offset === 8 && ip.upperProtocol() === IpProtocol.Tcp) tiny = true;
          const id = ip.fragmentIdentification();
          fragKey.setV6(bytes, ip.srcAt(), ip.dstAt(), 0, id >>> 16, id & 0xffff);
          result = frags.add(
            fragKey,
            now,
            offset,
            ip.moreFragments(),
            bytes,
            fh + Ipv6FragmentField.Length,
            end - fh - Ipv6FragmentField.Length,
            frameAt,
            fh - frameAt,
            ip.at - frameAt,
            fixPos - frameAt,
            bytes[fh + Ipv6FragmentField.NextHeader],
          );
        }
      }
      if (tiny) nTiny++;
      if (result === FragmentResult.Complete) {
        if (inspectReassembled(batch, i, now)) return;
      } else if (prevent && result === FragmentResult.Conflict) {
        batch.drop(i, dConflict);
        return;
      } else if (prevent && result === FragmentResult.Bad) {
        batch.drop(i, dFragmentBad);
        return;
      }
      if (prevent && tiny) batch.drop(i, dTiny);
    }

    /**
     * Inspects the datagram the fragment `i` completed (rebuilt in frags.out) like an unfragmented
     * packet; returns true when the verdict disposed of fragment i (dropped or turned into a RST).
     */
    function inspectReassembled(batch: PacketBatch, i: number, now: number): boolean {
      const out = frags.out;
      const ok = frags.seal();
      const reason = ok ? parser.attach(out, 0, frags.outLength) : DropReason.BadLength;
      if (
        reason !== DropReason.None ||
        (parser.l3 !== Layer.Ipv4 && parser.l3 !== Layer.Ipv6) ||
        parser.fragment ||
        !parser.flowKey(key)
      ) {
        // What the receiver would reassemble is malformed (a bad checksum, a bad UDP length …).
        nMalformed++;
        ctx.malformed(parser.failedLayer, reason);
        if (!prevent) return false;
        batch.drop(i, dMalformed);
        return true;
      }
      const verdict = inspect(out, now);
      if (verdict === Verdict.Pass) return false;
      if (verdict === Verdict.BlockedFlow) {
        nBlockedFlow++;
        batch.drop(i, dBlocked);
        return true;
      }
      nDropped++;
      if (curStream !== NO_STREAM) {
        // The RST is built from the whole segment, then put in the fragment's place.
        const length = resetter.buildReset(parser, 0);
        if (length > 0 && length <= batch.capacity) {
          const at = batch.at[i];
          for (let k = 0; k < length; k++) batch.bytes[at + k] = out[k];
          if (batch.setLength(i, length)) {
            nResets++;
            return true;
          }
        }
      }
      batch.drop(i, dSignature);
      return true;
    }

    function addFragmentStats(): void {
      for (const [stat, counter] of fragmentCounters) c[counter] += frags.stats[stat];
      frags.stats.fill(0);
      c[C.fragmentsActive] = frags.size;
    }

    const instance: IdsInstance = {
      plan: {
        mode: config.mode,
        ...set.plan(),
        maxStreams: streams.maxStreams,
        streamMemoryBytes: streams.tails.byteLength,
        reassemblyChunks: streams.chunks,
        maxFragmentedDatagrams: frags.maxDatagrams,
        fragmentChunks: frags.chunks,
      },
      alerts: (after = 0) => alertList(after),
      hits: () =>
        rules.map((rule, r) => ({ sid: rule.sid, rev: rule.rev, msg: rule.msg, hits: set.hits[r] })),
      activeStreams: () => streams.size,

      process(batch, now) {
        nPackets = 0;
        nMalformed = 0;
        nFragments = 0;
        nTiny = 0;
        nOversize = 0;
        nPassed = 0;
        nDropped = 0;
        nResets = 0;
        nBlockedFlow = 0;
        nAlerts = 0;
        let notIp = 0;
        inspected = 0;
        nCandidates = 0;
        suppressed = 0;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(batch.bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            // A first fragment too short for its transport header (RFC 1858's tiny fragment) still
            // goes to reassembly; every other refusal is a malformed frame.
            if (parser.fragment && parser.failedLayer >= Layer.Tcp && parser.failedLayer <= Layer.Icmpv6) {
              onFragment(batch, i, now, true);
              continue;
            }
            nMalformed++;
            ctx.malformed(parser.failedLayer, reason);
            if (oversizeFragment(reason)) {
              nOversize++;
              if (prevent) batch.drop(i, dOversize);
            } else if (prevent) batch.drop(i, dMalformed);
            continue;
          }
          if ((parser.l3 !== Layer.Ipv4 && parser.l3 !== Layer.Ipv6) || !parser.flowKey(key)) {
            notIp++;
            continue;
          }
          if (parser.fragment) {
            onFragment(batch, i, now, false);
            continue;
          }
          const verdict = inspect(batch.bytes, now);
          if (verdict === Verdict.Pass) continue;
          if (verdict === Verdict.BlockedFlow) {
            nBlockedFlow++;
            batch.drop(i, dBlocked);
            continue;
          }
          nDropped++;
          if (curStream !== NO_STREAM) {
            const length = resetter.buildReset(parser, batch.at[i]);
            if (length > 0 && batch.setLength(i, length)) {
              nResets++;
              continue;
            }
          }
          batch.drop(i, dSignature);
        }
        c[C.packets] += nPackets;
        c[C.inspected] += inspected;
        c[C.alerts] += nAlerts;
        c[C.suppressed] += suppressed;
        c[C.candidates] += nCandidates;
        c[C.budget] += set.budgetExhausted;
        set.budgetExhausted = 0;
        c[C.passed] += nPassed;
        c[C.dropped] += nDropped;
        c[C.resets] += nResets;
        c[C.blockedFlow] += nBlockedFlow;
        c[C.malformed] += nMalformed;
        c[C.notIp] += notIp;
        if (nFragments !== 0 || nOversize !== 0) {
          c[C.fragments] += nFragments;
          c[C.fragmentTiny] += nTiny;
          c[C.fragmentOversize] += nOversize;
          addFragmentStats();
        }
        for (const [stat, counter] of streamCounters) c[counter] += streams.stats[stat];
        streams.stats.fill(0);
        c[C.active] = streams.size;
      },

      tick(now) {
        streams.expire(now, idleNs);
        frags.expire(now, fragmentTimeoutNs);
        addFragmentStats();
        for (const [stat, counter] of streamCounters) c[counter] += streams.stats[stat];
        streams.stats.fill(0);
        c[C.active] = streams.size;
      },

      snapshot(): IdsSnapshot {
        const hits: Record<string, number> = {};
        rules.forEach((rule, r) => {
          if (set.hits[r] > 0) hits[String(rule.sid)] = set.hits[r];
        });
        return { version: 1, alerts: alertList(0), alertsTotal, hits };
      },

      restore(state) {
        const s = state as Partial<IdsSnapshot> | null;
        if (s?.version !== 1 || !Array.isArray(s.alerts) || typeof s.alertsTotal !== 'number') {
          ctx.log('ids: ignored a snapshot of another version');
          return;
        }
        const bySid = new Map(rules.map((rule, r) => [rule.sid, r]));
        if (s.hits && typeof s.hits === 'object')
          for (const [sid, hits] of Object.entries(s.hits)) {
            const r = bySid.get(Number(sid));
            if (r !== undefined && typeof hits === 'number' && hits >= 0) set.hits[r] = hits;
          }
        // Alerts come back under their own sequence numbers; those of rules no longer loaded are dropped.
        const kept = s.alerts
          .filter((a) => typeof a === 'object' && Number.isInteger(a.sequence) && bySid.has(a.signature_id))
          .sort((a, b) => a.sequence - b.sequence)
          .slice(-ring);
        let lost = 0;
        for (const alert of kept) {
          if (!keyFromAlert(alert)) {
            lost++;
            continue;
          }
          const a = (alert.sequence - 1) % ring;
          alertRule[a] = bySid.get(alert.signature_id) ?? 0;
          alertTime[a] = typeof alert.timestamp === 'number' ? alert.timestamp : 0;
          scratchKey.writeTo(alertKey, a * FLOW_KEY_WORDS);
          alertBlocked[a] = alert.action === 'blocked' ? 1 : 0;
          alertSeq[a] = alert.sequence;
        }
        alertsTotal = Math.max(s.alertsTotal, kept.at(-1)?.sequence ?? 0);
        if (lost > 0) ctx.log(`ids: ${lost} alerts of the snapshot were not well-formed`);
      },
    };

    /** Fills `scratchKey` from an alert's addresses; false when they do not parse. */
    function keyFromAlert(alert: IdsAlert): boolean {
      const proto = Object.entries(PROTO_NAMES).find(([, name]) => name === alert.proto)?.[0] ?? alert.proto;
      const protocol = Number(proto);
      if (!Number.isInteger(protocol) || protocol < 0 || protocol > 255) return false;
      const sp = alert.src_port;
      const dp = alert.dest_port;
      if (![sp, dp].every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffff)) return false;
      const src = parseAddress(alert.src_ip);
      const dst = parseAddress(alert.dest_ip);
      if (src === null || dst === null || src.length !== dst.length) return false;
      if (src.length === 4) {
        scratchKey.setV4(toU32(src), toU32(dst), protocol, sp, dp);
        return true;
      }
      const both = new Uint8Array(32);
      both.set(src, 0);
      both.set(dst, 16);
      scratchKey.setV6(both, 0, 16, protocol, sp, dp);
      return true;
    }

    return instance;
  },
});

function toU32(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** An address string → its 4 or 16 bytes, or null. */
function parseAddress(text: unknown): Uint8Array | null {
  if (typeof text !== 'string') return null;
  if (text.includes(':')) {
    const out = new Uint8Array(16);
    return parseIpv6(text, out) ? out : null;
  }
  const v = parseIpv4(text);
  if (v < 0) return null;
  return Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
}
