/**
 * IPFIX (RFC 7011) messages for flow records: an encoder into one reusable buffer, and a decoder
 * for tests and tools.
 *
 *   message  = header (16) · set* ; every length below is in bytes, big-endian
 *   header   : version 10 (2) · message length (2) · export time, epoch s (4)
 *              · sequence number (4) · observation domain id (4)
 *   set      : set id (2) · set length (2, header included) · records
 *              set id 2 = template set, ≥ 256 = data set of that template
 *   template : template id (2) · field count (2) · { IE id (2) · field length (2) } × count
 *
 * Invariant: the sequence number of a message is the number of data records this encoder put in
 * the messages before it (mod 2^32, RFC 7011 §3.1), so a collector can count what it lost.
 *
 * Two templates, one per address family (256 IPv4, 257 IPv6), with the same fields in the same
 * order (IANA information elements; lengths are the IANA ones, no reduced-size encoding):
 *
 *   flowStartMilliseconds(152) 8 · flowEndMilliseconds(153) 8 · packetDeltaCount(2) 8
 *   · octetDeltaCount(1) 8 · sourceIPv4Address(8) 4 / sourceIPv6Address(27) 16
 *   · destinationIPv4Address(12) 4 / destinationIPv6Address(28) 16 · sourceTransportPort(7) 2
 *   · destinationTransportPort(11) 2 · protocolIdentifier(4) 1 · tcpControlBits(6) 2
 *   · flowEndReason(136) 1
 *
 * Counts are *delta* counts: a flow record is exported once, when it ends, and a flow cut by the
 * active timeout starts a new record with counts from zero, so each record's counts are those
 * since the previous report of the flow (RFC 7012 packetDeltaCount). Records are uni-directional:
 * a bidirectional flow is exported as one record per direction that saw packets (RFC 5103 biflows
 * are not used: collectors read uni-directional records everywhere).
 */
import { NfvError } from '../errors.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../packet/address.js';

export const IPFIX_VERSION = 10;
/** The IANA port for IPFIX over UDP, TCP and SCTP (RFC 7011 §10.3). */
export const IPFIX_PORT = 4739;
export const IPFIX_HEADER_LENGTH = 16;
export const IPFIX_SET_HEADER_LENGTH = 4;
export const IPFIX_TEMPLATE_SET_ID = 2;
/** A default message bound for UDP that fits a 1500-byte path MTU with IPv6 and UDP headers. */
export const IPFIX_DEFAULT_MESSAGE_LENGTH = 1400;
/** The smallest bound the encoder accepts: header, both templates and one IPv6 record. */
export const IPFIX_MIN_MESSAGE_LENGTH = 256;

/** IANA IPFIX information element ids used here (https://www.iana.org/assignments/ipfix). */
export const IpfixIe = {
  octetDeltaCount: 1,
  packetDeltaCount: 2,
  protocolIdentifier: 4,
  tcpControlBits: 6,
  sourceTransportPort: 7,
  sourceIPv4Address: 8,
  destinationTransportPort: 11,
  destinationIPv4Address: 12,
  sourceIPv6Address: 27,
  destinationIPv6Address: 28,
  flowEndReason: 136,
  flowStartMilliseconds: 152,
  flowEndMilliseconds: 153,
} as const;

/** IPFIX flowEndReason values (RFC 7012 §5.11.3); unknown values pass through as numbers. */
export const FlowEndReason = {
  idleTimeout: 1,
  activeTimeout: 2,
  endOfFlow: 3,
  forcedEnd: 4,
  lackOfResources: 5,
} as const;

export const IpfixTemplateId = { ipv4: 256, ipv6: 257 } as const;

/** Offsets of the message header fields. */
export const IpfixHeaderField = {
  Version: 0,
  Length: 2,
  ExportTime: 4,
  Sequence: 8,
  ObservationDomain: 12,
  End: 16,
} as const;

/** One uni-directional flow record as the encoder takes it and the decoder returns it. */
export interface IpfixFlow {
  ipVersion: 4 | 6;
  /** Dotted quad or RFC 5952 text. */
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  protocol: number;
  packets: number;
  /** IP bytes (header and payload). */
  octets: number;
  /** Union of the TCP flags seen (0 for other protocols). */
  tcpFlags: number;
  /** Milliseconds since the epoch. */
  startMs: number;
  endMs: number;
  /** A FlowEndReason value. */
  endReason: number;
}

/** [IE id, field length] of each template field, in record order. */
function templateFields(ipVersion: 4 | 6): readonly (readonly [number, number])[] {
  const a = ipVersion === 4 ? 4 : 16;
  return [
    [IpfixIe.flowStartMilliseconds, 8],
    [IpfixIe.flowEndMilliseconds, 8],
    [IpfixIe.packetDeltaCount, 8],
    [IpfixIe.octetDeltaCount, 8],
    [ipVersion === 4 ? IpfixIe.sourceIPv4Address : IpfixIe.sourceIPv6Address, a],
    [ipVersion === 4 ? IpfixIe.destinationIPv4Address : IpfixIe.destinationIPv6Address, a],
    [IpfixIe.sourceTransportPort, 2],
    [IpfixIe.destinationTransportPort, 2],
    [IpfixIe.protocolIdentifier, 1],
    [IpfixIe.tcpControlBits, 2],
    [IpfixIe.flowEndReason, 1],
  ];
}

const FIELDS_V4 = templateFields(4);
const FIELDS_V6 = templateFields(6);
/** Data record lengths: 8·4 + 2·address + 2 + 2 + 1 + 2 + 1. */
export const IPFIX_RECORD_LENGTH = { ipv4: 48, ipv6: 72 } as const;
/** The template set carrying both templates. */
export const IPFIX_TEMPLATE_SET_LENGTH =
  IPFIX_SET_HEADER_LENGTH + 2 * 4 + 4 * (FIELDS_V4.length + FIELDS_V6.length);

export interface IpfixEncoderOptions {
  observationDomainId?: number;
  /** Upper bound of a message in bytes (default 1400, for UDP under a 1500-byte MTU). */
  maxMessageLength?: number;
}

/**
 * Builds IPFIX messages one at a time into a reusable buffer:
 *
 * @example
 * const enc = new IpfixEncoder({ observationDomainId: 1 });
 * enc.begin(exportTimeSeconds, true);               // true: put the templates first
 * while (i < flows.length && enc.add(flows[i])) i++; // false: the message is full
 * socket.send(enc.finish());                         // a view of the buffer until the next begin
 */
export class IpfixEncoder {
  readonly observationDomainId: number;
  readonly maxMessageLength: number;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly address = new Uint8Array(16);
  private sequenceNumber = 0;
  private at = 0;
  private open = false;
  /** Offset of the open data set's header, and its template id (0: none open). */
  private setAt = 0;
  private setTemplate = 0;
  private records = 0;

  constructor(options: IpfixEncoderOptions = {}) {
    this.observationDomainId = options.observationDomainId ?? 0;
    this.maxMessageLength = options.maxMessageLength ?? IPFIX_DEFAULT_MESSAGE_LENGTH;
    if (
      !Number.isInteger(this.maxMessageLength) ||
      this.maxMessageLength < IPFIX_MIN_MESSAGE_LENGTH ||
      this.maxMessageLength > 0xffff
    ) {
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `maxMessageLength must be an integer from ${IPFIX_MIN_MESSAGE_LENGTH} to 65535`,
        { field: 'maxMessageLength' },
      );
    }
    const od = this.observationDomainId;
    if (!Number.isInteger(od) || od < 0 || od > 0xffffffff) {
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'observationDomainId must be a 32-bit unsigned integer', {
        field: 'observationDomainId',
      });
    }
    this.bytes = new Uint8Array(this.maxMessageLength);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** Data records in the messages finished so far (mod 2^32): the next message's sequence number. */
  sequence(): number {
    return this.sequenceNumber;
  }

  /** Data records in the open message. */
  recordCount(): number {
    return this.records;
  }

  /** Starts a message, with the template set first when `withTemplates`. */
  begin(exportTimeSeconds: number, withTemplates: boolean): void {
    const v = this.view;
    v.setUint16(IpfixHeaderField.Version, IPFIX_VERSION);
    v.setUint32(IpfixHeaderField.ExportTime, Math.floor(exportTimeSeconds) >>> 0);
    v.setUint32(IpfixHeaderField.Sequence, this.sequenceNumber);
    v.setUint32(IpfixHeaderField.ObservationDomain, this.observationDomainId);
    this.at = IPFIX_HEADER_LENGTH;
    this.open = true;
    this.setTemplate = 0;
    this.records = 0;
    if (withTemplates) this.writeTemplates();
  }

  private writeTemplates(): void {
    const v = this.view;
    const start = this.at;
    v.setUint16(start, IPFIX_TEMPLATE_SET_ID);
    v.setUint16(start + 2, IPFIX_TEMPLATE_SET_LENGTH);
    let at = start + IPFIX_SET_HEADER_LENGTH;
    for (const [id, fields] of [
      [IpfixTemplateId.ipv4, FIELDS_V4],
      [IpfixTemplateId.ipv6, FIELDS_V6],
    ] as const) {
      v.setUint16(at, id);
      v.setUint16(at + 2, fields.length);
      at += 4;
      for (const [ie, length] of fields) {
        v.setUint16(at, ie);
        v.setUint16(at + 2, length);
        at += 4;
      }
    }
    this.at = at;
  }

  /**
   * Appends one data record; false (and nothing written) when it does not fit in the message or
   * its addresses do not parse. Counts are clamped to [0, 2^53).
   */
  add(flow: IpfixFlow): boolean {
    if (!this.open) return false;
    const v4 = flow.ipVersion === 4;
    const template = v4 ? IpfixTemplateId.ipv4 : IpfixTemplateId.ipv6;
    const recordLength = v4 ? IPFIX_RECORD_LENGTH.ipv4 : IPFIX_RECORD_LENGTH.ipv6;
    const newSet = this.setTemplate !== template;
    const need = recordLength + (newSet ? IPFIX_SET_HEADER_LENGTH : 0);
    if (this.at + need > this.maxMessageLength) return false;
    const addressLength = v4 ? 4 : 16;
    // Check the addresses before writing anything.
    let srcV4 = 0;
    let dstV4 = 0;
    if (v4) {
      srcV4 = parseIpv4(flow.src);
      dstV4 = parseIpv4(flow.dst);
      if (srcV4 < 0 || dstV4 < 0) return false;
    } else if (!parseIpv6(flow.src, this.address, 0) || !parseIpv6(flow.dst, this.address, 0)) {
      return false;
    }
    if (newSet) {
      this.closeSet();
      this.setAt = this.at;
      this.setTemplate = template;
      this.view.setUint16(this.at, template);
      this.at += IPFIX_SET_HEADER_LENGTH;
    }
    const v = this.view;
    let at = this.at;
    v.setBigUint64(at, uint64(flow.startMs));
    v.setBigUint64(at + 8, uint64(flow.endMs));
    v.setBigUint64(at + 16, uint64(flow.packets));
    v.setBigUint64(at + 24, uint64(flow.octets));
    at += 32;
    if (v4) {
      v.setUint32(at, srcV4);
      v.setUint32(at + 4, dstV4);
    } else {
      parseIpv6(flow.src, this.bytes, at);
      parseIpv6(flow.dst, this.bytes, at + 16);
    }
    at += 2 * addressLength;
    v.setUint16(at, flow.srcPort & 0xffff);
    v.setUint16(at + 2, flow.dstPort & 0xffff);
    v.setUint8(at + 4, flow.protocol & 0xff);
    v.setUint16(at + 5, flow.tcpFlags & 0xffff);
    v.setUint8(at + 7, flow.endReason & 0xff);
    this.at = at + 8;
    this.records++;
    return true;
  }

  private closeSet(): void {
    if (this.setTemplate !== 0) this.view.setUint16(this.setAt + 2, this.at - this.setAt);
    this.setTemplate = 0;
  }

  /**
   * Closes the message and returns it: a view of the encoder's buffer, valid until the next
   * `begin`. The sequence number moves on by the records in it.
   */
  finish(): Uint8Array {
    if (!this.open) return this.bytes.subarray(0, 0);
    this.closeSet();
    this.view.setUint16(IpfixHeaderField.Length, this.at);
    this.sequenceNumber = (this.sequenceNumber + this.records) >>> 0;
    this.open = false;
    return this.bytes.subarray(0, this.at);
  }
}

function uint64(n: number): bigint {
  if (!(n > 0)) return 0n;
  return BigInt(Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER));
}

/** A decoded message header. */
export interface IpfixHeader {
  version: number;
  length: number;
  exportTime: number;
  sequence: number;
  observationDomainId: number;
}

export interface IpfixMessage {
  header: IpfixHeader;
  /** Template ids defined in this message. */
  templateIds: number[];
  /** Data set ids, in order (one per data set). */
  dataSetIds: number[];
  flows: IpfixFlow[];
}

/**
 * Decodes the IPFIX messages in `bytes` (one UDP datagram, or a whole RFC 5655 file), learning
 * templates into `templates` (template id → [IE id, length][]) as it goes. Understands the fields
 * of `IpfixEncoder`'s templates; other fields are skipped. Allocates: for tests and tools. Throws
 * NfvError NFV_ERR_IPFIX_MALFORMED with the byte offset of the fault.
 */
export function decodeIpfix(
  bytes: Uint8Array,
  templates: Map<number, (readonly [number, number])[]> = new Map(),
): IpfixMessage[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (offset: number, message: string): NfvError =>
    new NfvError('NFV_ERR_IPFIX_MALFORMED', message, { offset });
  const messages: IpfixMessage[] = [];
  let m = 0;
  while (m < bytes.length) {
    if (m + IPFIX_HEADER_LENGTH > bytes.length) throw bad(m, 'message header cut short');
    const header: IpfixHeader = {
      version: v.getUint16(m + IpfixHeaderField.Version),
      length: v.getUint16(m + IpfixHeaderField.Length),
      exportTime: v.getUint32(m + IpfixHeaderField.ExportTime),
      sequence: v.getUint32(m + IpfixHeaderField.Sequence),
      observationDomainId: v.getUint32(m + IpfixHeaderField.ObservationDomain),
    };
    if (header.version !== IPFIX_VERSION) throw bad(m, `version ${header.version}, not 10`);
    const end = m + header.length;
    if (header.length < IPFIX_HEADER_LENGTH || end > bytes.length)
      throw bad(m, 'message length out of bounds');
    const message: IpfixMessage = { header, templateIds: [], dataSetIds: [], flows: [] };
    let s = m + IPFIX_HEADER_LENGTH;
    while (s < end) {
      if (s + IPFIX_SET_HEADER_LENGTH > end) throw bad(s, 'set header cut short');
      const id = v.getUint16(s);
      const length = v.getUint16(s + 2);
      const setEnd = s + length;
      if (length < IPFIX_SET_HEADER_LENGTH || setEnd > end) throw bad(s, 'set length out of bounds');
      let r = s + IPFIX_SET_HEADER_LENGTH;
      if (id === IPFIX_TEMPLATE_SET_ID) {
        while (r + 4 <= setEnd) {
          const tid = v.getUint16(r);
          const count = v.getUint16(r + 2);
          r += 4;
          if (r + 4 * count > setEnd) throw bad(r, 'template record cut short');
          const fields: [number, number][] = [];
          for (let i = 0; i < count; i++, r += 4) {
            if (v.getUint16(r) & 0x8000) throw bad(r, 'enterprise fields are not supported');
            fields.push([v.getUint16(r), v.getUint16(r + 2)]);
          }
          templates.set(tid, fields);
          message.templateIds.push(tid);
        }
      } else if (id >= 256) {
        const fields = templates.get(id);
        if (fields === undefined) throw bad(s, `data set of unknown template ${id}`);
        message.dataSetIds.push(id);
        const recordLength = fields.reduce((n, [, l]) => n + l, 0);
        while (recordLength > 0 && r + recordLength <= setEnd) {
          message.flows.push(readRecord(bytes, v, r, fields));
          r += recordLength;
        }
      } else {
        throw bad(s, `reserved set id ${id}`);
      }
      s = setEnd;
    }
    messages.push(message);
    m = end;
  }
  return messages;
}

function readRecord(
  bytes: Uint8Array,
  v: DataView,
  at: number,
  fields: readonly (readonly [number, number])[],
): IpfixFlow {
  const flow: IpfixFlow = {
    ipVersion: 4,
    src: '',
    dst: '',
    srcPort: 0,
    dstPort: 0,
    protocol: 0,
    packets: 0,
    octets: 0,
    tcpFlags: 0,
    startMs: 0,
    endMs: 0,
    endReason: 0,
  };
  for (const [ie, length] of fields) {
    const unsigned = (): number => {
      let n = 0;
      for (let i = 0; i < length; i++) n = n * 256 + bytes[at + i];
      return n;
    };
    switch (ie) {
      case IpfixIe.sourceIPv4Address:
        flow.src = formatIpv4(v.getUint32(at));
        break;
      case IpfixIe.destinationIPv4Address:
        flow.dst = formatIpv4(v.getUint32(at));
        break;
      case IpfixIe.sourceIPv6Address:
        flow.ipVersion = 6;
        flow.src = formatIpv6(bytes, at);
        break;
      case IpfixIe.destinationIPv6Address:
        flow.ipVersion = 6;
        flow.dst = formatIpv6(bytes, at);
        break;
      case IpfixIe.sourceTransportPort:
        flow.srcPort = unsigned();
        break;
      case IpfixIe.destinationTransportPort:
        flow.dstPort = unsigned();
        break;
      case IpfixIe.protocolIdentifier:
        flow.protocol = unsigned();
        break;
      case IpfixIe.packetDeltaCount:
        flow.packets = unsigned();
        break;
      case IpfixIe.octetDeltaCount:
        flow.octets = unsigned();
        break;
      case IpfixIe.tcpControlBits:
        flow.tcpFlags = unsigned();
        break;
      case IpfixIe.flowStartMilliseconds:
        flow.startMs = unsigned();
        break;
      case IpfixIe.flowEndMilliseconds:
        flow.endMs = unsigned();
        break;
      case IpfixIe.flowEndReason:
        flow.endReason = unsigned();
        break;
      default:
        break;
    }
    at += length;
  }
  return flow;
}
