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
 * Not inspected (passed, counted): IP fragments (no reassembly of fragments), non-IP frames,
 * tunnel contents. Malformed frames (including a bad TCP/UDP checksum) are counted; `prevent` drops
 * them. Streams are not carried across a restart (inspection picks them up midstream); alerts and
 * hits are.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey } from '../../src/packet/flow-key.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag } from '../../src/packet/tcp.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';
import { RuleSet } from './rule-set.js';
import { Action, addressMatches, FlowFlag, parseRules, parseVars, portMatches, type Rule } from './rules.js';
import { SegmentResult, StreamFlag, StreamStat, StreamTable } from './stream-table.js';
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
  };
}

/** Alerts logged per packet at most; further matches are counted (`alerts_suppressed`). */
const MAX_ALERTS_PER_PACKET = 8;
const NO_STREAM = -1;

const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'TCP', 17: 'UDP', 1: 'ICMP', 58: 'IPv6-ICMP' };

export default defineNf<IdsConfig>({
  name: 'ids',
  summary:
    'Intrusion detection/prevention: Snort/Suricata-style signatures, multi-pattern automaton, TCP reassembly, EVE alerts; drop + RST.',
  outputs: ['out'],
  drops: {
    signature: 'prevent mode: a drop or reject rule matched (a TCP segment is answered with a RST instead)',
    blocked_flow: 'prevent mode: a later packet of a TCP flow a drop or reject rule blocked',
    malformed: 'prevent mode: the parser refused the frame (truncated, bad length or checksum)',
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
    fragments: { unit: 'packets', description: 'IP fragments, passed uninspected' },
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
    };
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

    const instance: IdsInstance = {
      plan: {
        mode: config.mode,
        ...set.plan(),
        maxStreams: streams.maxStreams,
        streamMemoryBytes: streams.tails.byteLength,
        reassemblyChunks: streams.chunks,
      },
      alerts: (after = 0) => alertList(after),
      hits: () =>
        rules.map((rule, r) => ({ sid: rule.sid, rev: rule.rev, msg: rule.msg, hits: set.hits[r] })),
      activeStreams: () => streams.size,

      process(batch, now) {
        let packets = 0;
        let malformed = 0;
        let notIp = 0;
        let fragments = 0;
        let passed = 0;
        let dropped = 0;
        let resets = 0;
        let blockedFlow = 0;
        let alerts = 0;
        inspected = 0;
        nCandidates = 0;
        suppressed = 0;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(batch.bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            malformed++;
            ctx.malformed(parser.failedLayer, reason);
            if (prevent) batch.drop(i, dMalformed);
            continue;
          }
          if ((parser.l3 !== Layer.Ipv4 && parser.l3 !== Layer.Ipv6) || !parser.flowKey(key)) {
            notIp++;
            continue;
          }
          if (parser.fragment) {
            fragments++;
            continue;
          }
          packets++;
          packetStamp++;
          matchedCount = 0;
          passMatched = false;
          blockMatched = false;
          pktProto = parser.protocol;
          pktV6 = parser.l3 === Layer.Ipv6;
          pktBytes = batch.bytes;
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
            if (curStream !== NO_STREAM && (streams.flags[curStream] & StreamFlag.Blocked) !== 0) {
              blockedFlow++;
              batch.drop(i, dBlocked);
              continue;
            }
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
                batch.bytes,
                payloadAt,
                payloadLength,
                deliver,
              );
              if (result === SegmentResult.Overflow) scan(batch.bytes, payloadAt, payloadLength, 0, 0, -1, 0);
            } else scan(batch.bytes, payloadAt, payloadLength, 0, 0, -1, 0);
          }
          if (curStream !== NO_STREAM && (tcpFlags & TcpFlag.Rst) !== 0 && !blockMatched)
            streams.remove(curStream);
          if (matchedCount === 0) continue;
          if (passMatched) {
            passed++;
            continue;
          }
          const block = prevent && blockMatched;
          for (let k = 0; k < matchedCount; k++)
            recordAlert(matched[k], now, block && rules[matched[k]].action !== Action.Alert);
          alerts += matchedCount;
          if (!block) continue;
          dropped++;
          if (curStream !== NO_STREAM) {
            streams.flags[curStream] |= StreamFlag.Blocked;
            const length = resetter.buildReset(parser, batch.at[i]);
            if (length > 0 && batch.setLength(i, length)) {
              resets++;
              continue;
            }
          }
          batch.drop(i, dSignature);
        }
        c[C.packets] += packets;
        c[C.inspected] += inspected;
        c[C.alerts] += alerts;
        c[C.suppressed] += suppressed;
        c[C.candidates] += nCandidates;
        c[C.budget] += set.budgetExhausted;
        set.budgetExhausted = 0;
        c[C.passed] += passed;
        c[C.dropped] += dropped;
        c[C.resets] += resets;
        c[C.blockedFlow] += blockedFlow;
        c[C.malformed] += malformed;
        c[C.notIp] += notIp;
        c[C.fragments] += fragments;
        for (const [stat, counter] of streamCounters) c[counter] += streams.stats[stat];
        streams.stats.fill(0);
        c[C.active] = streams.size;
      },

      tick(now) {
        streams.expire(now, idleNs);
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
