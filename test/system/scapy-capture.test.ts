/**
 * nfvisor judges what scapy writes. `scapy/make-capture.py` builds varied packets (TCP options,
 * IPv4 options and fragments, VLAN and Q-in-Q, IPv6 extension headers and fragments, ICMP and
 * ICMPv6 echo, ARP, VXLAN) with scapy's own code, checksums included, and lists the fields it set.
 * nfvisor's parser must accept every packet and read every field the same, from the pcap scapy
 * wrote and from the pcapng `editcap` converts it to.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { openCapture } from '../../src/io/capture.js';
import { formatIpv4, formatIpv6, formatMac } from '../../src/packet/address.js';
import { DropReason, dropReasonName } from '../../src/packet/drop-reason.js';
import { Layer, PacketParser, layerName } from '../../src/packet/packet-parser.js';

/** The script lives in the source tree; tests run from dist/test/system. */
const SCRIPT = fileURLToPath(new URL('../../../test/system/scapy/make-capture.py', import.meta.url));

interface ScapyRecord {
  kind: string;
  length: number;
  src_mac: string;
  dst_mac: string;
  tags: { vid: number; pcp: number }[];
  vni?: number;
  ip_version?: 4 | 6;
  src?: string;
  dst?: string;
  ttl?: number;
  protocol?: number;
  ip_id?: number;
  more_fragments?: boolean;
  fragment_offset?: number;
  ip_header_length?: number;
  ip_checksum?: number;
  flow_label?: number;
  fragment_id?: number;
  src_port?: number;
  dst_port?: number;
  seq?: number;
  ack?: number;
  tcp_flags?: number;
  window?: number;
  tcp_checksum?: number;
  mss?: number;
  wscale?: number;
  sack_permitted?: boolean;
  ts_value?: number;
  udp_length?: number;
  udp_checksum?: number;
  icmp_type?: number;
  icmp_code?: number;
  icmp_id?: number;
  icmp_seq?: number;
  arp_op?: number;
  arp_sender?: string;
  arp_target?: string;
}

let dir = '';
let records: ScapyRecord[] = [];

/** What nfvisor reads from one frame, in the record's vocabulary. */
function readFields(
  parser: PacketParser,
  bytes: Uint8Array,
  at: number,
  expected: ScapyRecord,
): Partial<ScapyRecord> {
  const got: Partial<ScapyRecord> = {};
  const outerEth = parser.layerOffset(Layer.Ethernet);
  got.src_mac = formatMac(bytes, outerEth + 6);
  got.dst_mac = formatMac(bytes, outerEth);
  if (expected.vni !== undefined) got.vni = parser.vxlan.vni();
  if (parser.tunnelDepth === 0) {
    got.tags = [];
    for (let i = 0; i < parser.eth.tagCount(); i++)
      got.tags.push({ vid: parser.eth.tagVid(i), pcp: parser.eth.tagPcp(i) });
  } else got.tags = expected.tags; // tags of the outer frame; scapy's list covers only those
  if (parser.l3 === Layer.Ipv4) {
    const ip = parser.ipv4;
    Object.assign(got, {
      ip_version: 4,
      src: formatIpv4(ip.src()),
      dst: formatIpv4(ip.dst()),
      ttl: ip.ttl(),
      protocol: ip.protocol(),
      ip_id: ip.identification(),
      more_fragments: ip.moreFragments(),
      fragment_offset: ip.fragmentOffset(),
      ip_header_length: ip.headerLength(),
      ip_checksum: ip.checksum(),
    });
  } else if (parser.l3 === Layer.Ipv6) {
    const ip = parser.ipv6;
    Object.assign(got, {
      ip_version: 6,
      src: formatIpv6(ip.bytes, ip.srcAt()),
      dst: formatIpv6(ip.bytes, ip.dstAt()),
      ttl: ip.hopLimit(),
      flow_label: ip.flowLabel(),
    });
    if (expected.fragment_id !== undefined) {
      Object.assign(got, {
        fragment_offset: ip.fragmentOffset(),
        more_fragments: ip.moreFragments(),
        fragment_id: ip.fragmentIdentification(),
      });
    }
  } else if (parser.l3 === Layer.Arp) {
    Object.assign(got, {
      arp_op: parser.arp.operation(),
      arp_sender: formatIpv4(parser.arp.senderIp()),
      arp_target: formatIpv4(parser.arp.targetIp()),
    });
  }
  if (parser.l4 === Layer.Tcp) {
    const t = parser.tcp;
    Object.assign(got, {
      src_port: t.srcPort(),
      dst_port: t.dstPort(),
      seq: t.seq(),
      ack: t.ack(),
      tcp_flags: t.flags(),
      window: t.window(),
      tcp_checksum: t.checksum(),
      mss: t.mss(),
      wscale: t.windowScale(),
      sack_permitted: t.sackPermitted(),
      ts_value: t.tsVal(),
    });
  } else if (parser.l4 === Layer.Udp) {
    Object.assign(got, {
      src_port: parser.udp.srcPort(),
      dst_port: parser.udp.dstPort(),
      udp_length: parser.udp.length(),
      udp_checksum: parser.udp.checksum(),
    });
  } else if (parser.l4 === Layer.Icmpv4 || parser.l4 === Layer.Icmpv6) {
    const c = parser.l4 === Layer.Icmpv4 ? parser.icmpv4 : parser.icmpv6;
    Object.assign(got, {
      icmp_type: c.type(),
      icmp_code: c.code(),
      icmp_id: c.identifier(),
      icmp_seq: c.sequence(),
    });
  }
  got.length = expected.length;
  got.kind = expected.kind;
  // Compare only what scapy reported for this packet.
  const picked: Partial<ScapyRecord> = {};
  for (const key of Object.keys(expected) as (keyof ScapyRecord)[])
    (picked as Record<string, unknown>)[key] = got[key];
  return picked;
}

function checkCapture(path: string): void {
  const reader = openCapture(path);
  const parser = new PacketParser();
  let i = 0;
  try {
    while (reader.next()) {
      const expected = records[i];
      assert.ok(expected, `more packets than scapy wrote (${i + 1})`);
      assert.equal(reader.capturedLength, expected.length, `${expected.kind}: captured length`);
      const reason = parser.attach(reader.bytes, reader.at, reader.capturedLength, reader.linkType);
      assert.equal(
        reason,
        DropReason.None,
        `${expected.kind}: refused at ${layerName(parser.failedLayer)} (${dropReasonName(reason)})`,
      );
      assert.deepEqual(readFields(parser, reader.bytes, reader.at, expected), expected, expected.kind);
      i++;
    }
  } finally {
    reader.close();
  }
  assert.equal(i, records.length, 'every packet scapy wrote was read');
}

describe('nfvisor reads what scapy wrote', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-scapy-'));
    execFileSync('/usr/bin/python3', [SCRIPT, join(dir, 'scapy.pcap'), join(dir, 'scapy.json')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    execFileSync('editcap', ['-F', 'pcapng', join(dir, 'scapy.pcap'), join(dir, 'scapy.pcapng')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    records = JSON.parse(readFileSync(join(dir, 'scapy.json'), 'utf8')) as ScapyRecord[];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('scapy wrote the packet kinds the test is about', () => {
    const kinds = new Set(records.map((r) => r.kind));
    for (const kind of [
      'tcp-syn',
      'udp-qinq',
      'udp6-ext',
      'icmp6-routing',
      'udp6-first-fragment',
      'ipv4-later-fragment',
      'arp',
      'vxlan',
    ]) {
      assert.ok(kinds.has(kind), kind);
    }
  });

  it('parses the pcap scapy wrote, field by field', () => {
    checkCapture(join(dir, 'scapy.pcap'));
  });

  it('parses the same packets as pcapng (converted by editcap), field by field', () => {
    checkCapture(join(dir, 'scapy.pcapng'));
  });
});
