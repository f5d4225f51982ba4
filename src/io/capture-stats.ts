/**
 * What a capture holds: the body of `nfvisor pcap info`. It streams the file once through the
 * layered parser and reports what `capinfos` does (packets, bytes, duration, rates, link types)
 * plus what it does not: counts per layer, malformed packets by layer and reason, a frame-size
 * histogram, and the conversations (both directions of a 5-tuple as one flow) with the busiest ones.
 *
 * @example
 * const stats = analyzeCapture('mix.pcapng');
 * console.log(formatCaptureStats(stats));
 */
import { DropReason, dropReasonName } from '../packet/drop-reason.js';
import { FlowKey } from '../packet/flow-key.js';
import { FlowTable } from '../packet/flow-table.js';
import { linkTypeName } from '../packet/link-type.js';
import { Layer, PacketParser, layerName } from '../packet/packet-parser.js';
import { TcpFlag } from '../packet/tcp.js';
import { openCapture } from './capture.js';

/** Frame-size buckets, as tshark's `-z plen,tree` draws them. */
export const SIZE_BUCKET_BOUNDS = [20, 40, 80, 160, 320, 640, 1280, 2560, 5120] as const;

export interface SizeBucket {
  /** Smallest size counted here. */
  from: number;
  /** Largest size counted here, or null for the open last bucket. */
  to: number | null;
  packets: number;
}

export interface ConversationSummary {
  /** "proto a:port -> b:port", the first packet's direction. */
  flow: string;
  packets: number;
  bytes: number;
  /** Packets from the first sender, and back. */
  packetsForward: number;
  packetsBackward: number;
  firstSeconds: number;
  durationSeconds: number;
}

export interface CaptureStats {
  file: string;
  format: 'pcap' | 'pcapng';
  linkTypes: Record<string, number>;
  packets: number;
  /** Bytes as stored (captured) and as they were on the wire (original length). */
  capturedBytes: number;
  originalBytes: number;
  /** Packets cut short by the capture's snaplen. */
  snappedPackets: number;
  /** First and last timestamps, ISO 8601 with nanoseconds, or null for an empty capture. */
  first: string | null;
  last: string | null;
  durationSeconds: number;
  packetsPerSecond: number;
  bitsPerSecond: number;
  sizes: { min: number; max: number; mean: number; buckets: SizeBucket[] };
  /** Packets in which each layer occurs (outer and inner of a tunnel counted once each). */
  layers: Record<string, number>;
  vlanTagged: number;
  qinqTagged: number;
  fragments: number;
  tcpSyns: number;
  /** Packets the parser refused, by `layer/reason`. */
  malformed: { total: number; byReason: Record<string, number> };
  flows: {
    /** Conversations seen (a 5-tuple and its reverse count once). */
    conversations: number;
    /** Conversations that did not fit the table (counted, not tracked). */
    overflow: number;
    top: ConversationSummary[];
  };
}

export interface AnalyzeOptions {
  /** Conversations tracked at most. */
  maxFlows: number;
  /** Busiest conversations listed. */
  top: number;
  /** Called every 64 Ki packets with the file offset reached and the packets read. */
  onProgress?: (bytesRead: number, packets: number) => void;
}

const DEFAULTS: AnalyzeOptions = { maxFlows: 1 << 18, top: 10 };
const PROGRESS_EVERY = 1 << 16;

/** Streams `path` once and returns its statistics. Throws NfvError for unreadable or corrupt files. */
export function analyzeCapture(path: string, options: Partial<AnalyzeOptions> = {}): CaptureStats {
  const o = { ...DEFAULTS, ...options };
  const reader = openCapture(path);
  const parser = new PacketParser();
  const key = new FlowKey();
  const table = new FlowTable(o.maxFlows);
  const flowPackets = new Float64Array(table.capacity);
  const flowBytes = new Float64Array(table.capacity);
  const flowBackward = new Float64Array(table.capacity);
  const flowFirst = new Float64Array(table.capacity);
  const flowLast = new Float64Array(table.capacity);
  const layerCounts = new Float64Array(16);
  const malformed = new Float64Array(16 * 16);
  const buckets = new Float64Array(SIZE_BUCKET_BOUNDS.length + 1);
  const seenInFrame = new Uint8Array(16);
  const linkTypes: Record<string, number> = {};
  let lastLinkType = -1;
  let linkTypeCount = 0;

  let packets = 0;
  let capturedBytes = 0;
  let originalBytes = 0;
  let snapped = 0;
  let minSize = Infinity;
  let maxSize = 0;
  let firstSeconds = 0;
  let firstNanos = 0;
  let lastSeconds = 0;
  let lastNanos = 0;
  let vlanTagged = 0;
  let qinqTagged = 0;
  let fragments = 0;
  let tcpSyns = 0;
  let malformedTotal = 0;
  let overflow = 0;

  try {
    while (reader.next()) {
      const length = reader.capturedLength;
      if (packets === 0) {
        firstSeconds = reader.timestampSeconds;
        firstNanos = reader.timestampNanos;
      }
      lastSeconds = reader.timestampSeconds;
      lastNanos = reader.timestampNanos;
      packets++;
      if ((packets & (PROGRESS_EVERY - 1)) === 0) o.onProgress?.(reader.recordOffset, packets);
      capturedBytes += length;
      originalBytes += reader.originalLength;
      if (length < reader.originalLength) snapped++;
      const size = reader.originalLength;
      if (size < minSize) minSize = size;
      if (size > maxSize) maxSize = size;
      buckets[sizeBucket(size)]++;
      if (reader.linkType !== lastLinkType) {
        // Link types change rarely (pcapng interfaces); flush the run into the record.
        if (lastLinkType >= 0) addTo(linkTypes, linkTypeName(lastLinkType), linkTypeCount);
        lastLinkType = reader.linkType;
        linkTypeCount = 0;
      }
      linkTypeCount++;

      const reason = parser.attach(reader.bytes, reader.at, length, reader.linkType);
      seenInFrame.fill(0);
      for (let i = 0; i < parser.layerCount; i++) seenInFrame[parser.layerKind[i]] = 1;
      if (reason !== DropReason.None) {
        malformedTotal++;
        malformed[parser.failedLayer * 16 + reason]++;
        seenInFrame[parser.failedLayer] = 0; // the refused layer is not counted as present
      }
      for (let kind = 1; kind < 16; kind++) layerCounts[kind] += seenInFrame[kind];
      if (reason !== DropReason.None) continue;

      const ethAt = parser.layerOffset(Layer.Ethernet);
      if (ethAt >= 0) {
        // The outer Ethernet header: re-read its tag count (the parser's view holds the innermost).
        const tags = outerTagCount(parser, reader.bytes, ethAt);
        if (tags === 1) vlanTagged++;
        else if (tags >= 2) qinqTagged++;
      }
      if (parser.fragment) fragments++;
      if (parser.l4 === Layer.Tcp && (parser.tcp.flags() & (TcpFlag.Syn | TcpFlag.Ack)) === TcpFlag.Syn)
        tcpSyns++;

      if (!parser.flowKey(key)) continue;
      const nanos = reader.timestampSeconds * 1e9 + reader.timestampNanos;
      const hash = key.symmetricHash();
      let slot = table.find(key, hash);
      let backward = false;
      if (slot < 0) {
        key.reverse();
        slot = table.find(key, hash);
        key.reverse();
        backward = slot >= 0;
      }
      if (slot < 0) {
        slot = table.insert(key, hash);
        if (slot < 0) {
          overflow++;
          continue;
        }
        flowFirst[slot] = nanos;
      }
      flowPackets[slot]++;
      flowBytes[slot] += reader.originalLength;
      if (backward) flowBackward[slot]++;
      flowLast[slot] = nanos;
    }
  } finally {
    reader.close();
  }
  if (lastLinkType >= 0) addTo(linkTypes, linkTypeName(lastLinkType), linkTypeCount);

  const durationSeconds = lastSeconds - firstSeconds + (lastNanos - firstNanos) / 1e9;
  const layers: Record<string, number> = {};
  for (let kind = 1; kind < 16; kind++)
    if (layerCounts[kind] > 0) layers[layerName(kind)] = layerCounts[kind];
  const byReason: Record<string, number> = {};
  for (let i = 0; i < malformed.length; i++) {
    if (malformed[i] > 0) byReason[`${layerName(i >>> 4)}/${dropReasonName(i & 15)}`] = malformed[i];
  }
  return {
    file: path,
    format: reader.format,
    linkTypes,
    packets,
    capturedBytes,
    originalBytes,
    snappedPackets: snapped,
    first: packets > 0 ? isoTimestamp(firstSeconds, firstNanos) : null,
    last: packets > 0 ? isoTimestamp(lastSeconds, lastNanos) : null,
    durationSeconds,
    packetsPerSecond: durationSeconds > 0 ? packets / durationSeconds : 0,
    bitsPerSecond: durationSeconds > 0 ? (originalBytes * 8) / durationSeconds : 0,
    sizes: {
      min: packets > 0 ? minSize : 0,
      max: maxSize,
      mean: packets > 0 ? originalBytes / packets : 0,
      buckets: Array.from(buckets, (count, i) => ({
        from: i === 0 ? 0 : SIZE_BUCKET_BOUNDS[i - 1],
        to: i < SIZE_BUCKET_BOUNDS.length ? SIZE_BUCKET_BOUNDS[i] - 1 : null,
        packets: count,
      })),
    },
    layers,
    vlanTagged,
    qinqTagged,
    fragments,
    tcpSyns,
    malformed: { total: malformedTotal, byReason },
    flows: {
      conversations: table.size + overflow,
      overflow,
      top: topConversations(table, o.top, flowPackets, flowBytes, flowBackward, flowFirst, flowLast),
    },
  };
}

function topConversations(
  table: FlowTable,
  count: number,
  packets: Float64Array,
  bytes: Float64Array,
  backward: Float64Array,
  first: Float64Array,
  last: Float64Array,
): ConversationSummary[] {
  const slots: number[] = [];
  for (let slot = 0; slot < table.size; slot++) if (table.used[slot] === 1) slots.push(slot);
  slots.sort((a, b) => bytes[b] - bytes[a] || packets[b] - packets[a] || a - b);
  const key = new FlowKey();
  return slots.slice(0, count).map((slot) => ({
    flow: table.keyAt(slot, key).toString(),
    packets: packets[slot],
    bytes: bytes[slot],
    packetsForward: packets[slot] - backward[slot],
    packetsBackward: backward[slot],
    firstSeconds: first[slot] / 1e9,
    durationSeconds: (last[slot] - first[slot]) / 1e9,
  }));
}

function sizeBucket(size: number): number {
  let i = 0;
  while (i < SIZE_BUCKET_BOUNDS.length && size >= SIZE_BUCKET_BOUNDS[i]) i++;
  return i;
}

function outerTagCount(parser: PacketParser, bytes: Uint8Array, ethAt: number): number {
  if (parser.tunnelDepth === 0) return parser.eth.tagCount();
  const eth = parser.eth;
  // Re-attach the view to the outer header; the parser is done with this frame.
  eth.attach(bytes, ethAt, bytes.length - ethAt, parser.options.maxTags);
  return eth.tagCount();
}

function addTo(record: Record<string, number>, name: string, count: number): void {
  record[name] = (record[name] ?? 0) + count;
}

/** ISO 8601 with all nine fractional digits. @example isoTimestamp(0, 5) === '1970-01-01T00:00:00.000000005Z' */
export function isoTimestamp(seconds: number, nanos: number): string {
  const whole = new Date(seconds * 1000).toISOString().slice(0, 19);
  return `${whole}.${String(nanos).padStart(9, '0')}Z`;
}

/** The human-readable report `nfvisor pcap info` prints. */
export function formatCaptureStats(s: CaptureStats): string {
  const lines: string[] = [];
  const row = (name: string, value: string | number): void => {
    lines.push(`${name.padEnd(22)}${value}`);
  };
  row('File', `${s.file} (${s.format})`);
  row(
    'Link types',
    Object.entries(s.linkTypes)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ') || '-',
  );
  row('Packets', s.packets);
  row(
    'Bytes',
    `${s.originalBytes} on the wire, ${s.capturedBytes} captured${s.snappedPackets ? `, ${s.snappedPackets} packets cut by snaplen` : ''}`,
  );
  row('First packet', s.first ?? '-');
  row('Last packet', s.last ?? '-');
  row('Duration', `${s.durationSeconds.toFixed(6)} s`);
  row('Average rate', `${formatRate(s.packetsPerSecond, 'pps')}, ${formatRate(s.bitsPerSecond, 'bit/s')}`);
  row('Frame size', `min ${s.sizes.min}, mean ${s.sizes.mean.toFixed(1)}, max ${s.sizes.max}`);
  lines.push('');
  lines.push('Layers (packets containing each)');
  for (const [name, n] of Object.entries(s.layers))
    lines.push(`  ${name.padEnd(20)}${String(n).padStart(10)}  ${percent(n, s.packets)}`);
  if (s.vlanTagged)
    lines.push(
      `  ${'802.1q tagged'.padEnd(20)}${String(s.vlanTagged).padStart(10)}  ${percent(s.vlanTagged, s.packets)}`,
    );
  if (s.qinqTagged)
    lines.push(
      `  ${'802.1ad (q-in-q)'.padEnd(20)}${String(s.qinqTagged).padStart(10)}  ${percent(s.qinqTagged, s.packets)}`,
    );
  if (s.fragments) lines.push(`  ${'ip fragments'.padEnd(20)}${String(s.fragments).padStart(10)}`);
  lines.push(
    `  ${'malformed'.padEnd(20)}${String(s.malformed.total).padStart(10)}  ${percent(s.malformed.total, s.packets)}`,
  );
  for (const [reason, n] of Object.entries(s.malformed.byReason))
    lines.push(`    ${reason.padEnd(18)}${String(n).padStart(10)}`);
  lines.push('');
  lines.push('Frame sizes');
  const widest = Math.max(1, ...s.sizes.buckets.map((b) => b.packets));
  for (const b of s.sizes.buckets) {
    if (b.packets === 0) continue;
    const label = b.to === null ? `${b.from}+` : `${b.from}-${b.to}`;
    const bar = '#'.repeat(Math.max(1, Math.round((b.packets / widest) * 40)));
    lines.push(`  ${label.padEnd(11)}${String(b.packets).padStart(10)}  ${bar}`);
  }
  lines.push('');
  lines.push(
    `Conversations          ${s.flows.conversations}${s.flows.overflow ? ` (${s.flows.overflow} beyond the table, not itemised)` : ''}; TCP SYNs ${s.tcpSyns}`,
  );
  if (s.flows.top.length > 0) {
    lines.push(
      `  ${'busiest by bytes'.padEnd(58)}${'packets'.padStart(9)}${'→ / ←'.padStart(14)}${'bytes'.padStart(12)}${'duration'.padStart(12)}`,
    );
    for (const c of s.flows.top) {
      lines.push(
        `  ${c.flow.padEnd(58)}${String(c.packets).padStart(9)}${`${c.packetsForward}/${c.packetsBackward}`.padStart(14)}` +
          `${String(c.bytes).padStart(12)}${`${c.durationSeconds.toFixed(3)} s`.padStart(12)}`,
      );
    }
  }
  return lines.join('\n');
}

function percent(n: number, total: number): string {
  return total > 0 ? `${((n / total) * 100).toFixed(1).padStart(5)} %` : '';
}

function formatRate(value: number, unit: string): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G${unit}`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M${unit}`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(2)} k${unit}`;
  return `${value.toFixed(0)} ${unit}`;
}
