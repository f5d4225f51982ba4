import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pseudoHeaderSumV6 } from 'nfvisor/packet/checksum';
import { EthernetRepr } from 'nfvisor/packet/ethernet';
import { EtherType, IpProtocol } from 'nfvisor/packet/ip-protocol';
import { Ipv4Repr } from 'nfvisor/packet/ipv4';
import { Ipv6Repr } from 'nfvisor/packet/ipv6';
import { UdpRepr } from 'nfvisor/packet/udp';
import { NfHarness } from 'nfvisor/sdk';
import dnsBlocklist from './index.js';

const ETH = { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [] };

/** A DNS message: header (id 1, flags, one question per name) and the questions, type A class IN. */
export function dnsMessage(names: readonly string[], flags = 0x0100): Uint8Array {
  const parts: number[] = [0, 1, flags >> 8, flags & 0xff, 0, names.length, 0, 0, 0, 0, 0, 0];
  for (const name of names) {
    for (const label of name.split('.')) parts.push(label.length, ...Buffer.from(label, 'ascii'));
    parts.push(0, 0, 1, 0, 1);
  }
  return Uint8Array.from(parts);
}

/** Ethernet / IPv4 (or IPv6) / UDP to `dstPort` carrying `payload` (IPv4: no UDP checksum). */
export function udpFrame(payload: Uint8Array, options: { dstPort?: number; v6?: boolean } = {}): Uint8Array {
  const v6 = options.v6 ?? false;
  const ip = v6 ? 40 : 20;
  const l4Length = 8 + payload.length;
  const bytes = new Uint8Array(Math.max(60, 14 + ip + l4Length));
  EthernetRepr.emit({ ...ETH, etherType: v6 ? EtherType.Ipv6 : EtherType.Ipv4 }, bytes);
  if (v6)
    Ipv6Repr.emit(
      { src: '2001:db8::1', dst: '2001:db8::53', nextHeader: IpProtocol.Udp, payloadLength: l4Length },
      bytes,
      14,
    );
  else
    Ipv4Repr.emit(
      {
        src: '192.0.2.10',
        dst: '198.51.100.53',
        protocol: IpProtocol.Udp,
        payloadLength: l4Length,
        dontFragment: false,
        fragmentOffset: 0,
      },
      bytes,
      14,
    );
  bytes.set(payload, 14 + ip + 8);
  const pseudo = v6 ? pseudoHeaderSumV6(bytes, 14 + 8, 14 + 24, IpProtocol.Udp, l4Length) : null;
  UdpRepr.emit(
    { srcPort: 40000, dstPort: options.dstPort ?? 53, payloadLength: payload.length },
    bytes,
    14 + ip,
    pseudo,
  );
  return bytes;
}

export const query = (name: string, v6 = false): Uint8Array => udpFrame(dnsMessage([name]), { v6 });

const fates = (nf: NfHarness<unknown>, frames: Uint8Array[]): string[] =>
  nf.run(frames).map((r) => r.output ?? `drop:${r.drop}`);

describe('dns-blocklist', () => {
  const config = { domains: ['ads.example.com', 'Tracker.NET.'] };

  it('drops queries for a blocked name and its subdomains, case-insensitively; passes others', () => {
    const nf = new NfHarness(dnsBlocklist, config);
    assert.deepEqual(
      fates(nf, [
        query('ads.example.com'),
        query('x.y.ADS.example.com'),
        query('example.com'),
        query('bads.example.com'),
        query('tracker.net', true),
        query('net'),
      ]),
      ['drop:blocked', 'drop:blocked', 'out', 'out', 'drop:blocked', 'out'],
    );
    assert.deepEqual(nf.counters(), { queries: 6, blocked: 3, other: 0 });
  });

  it('with subdomains off, only exact names are blocked', () => {
    const nf = new NfHarness(dnsBlocklist, { ...config, subdomains: false });
    assert.deepEqual(fates(nf, [query('ads.example.com'), query('x.ads.example.com')]), [
      'drop:blocked',
      'out',
    ]);
  });

  it('passes responses and traffic to other ports without inspecting them', () => {
    const nf = new NfHarness(dnsBlocklist, config);
    const response = udpFrame(dnsMessage(['ads.example.com'], 0x8180));
    const otherPort = udpFrame(dnsMessage(['ads.example.com']), { dstPort: 5353 });
    assert.deepEqual(fates(nf, [response, otherPort]), ['out', 'out']);
    assert.deepEqual(nf.counters(), { queries: 0, blocked: 0, other: 2 });
  });

  it('any blocked question in a multi-question query blocks it', () => {
    const nf = new NfHarness(dnsBlocklist, config);
    assert.deepEqual(fates(nf, [udpFrame(dnsMessage(['ok.org', 'ads.example.com']))]), ['drop:blocked']);
  });

  it('fails closed on unreadable questions: short header, cut name, compression pointer, no question', () => {
    const nf = new NfHarness(dnsBlocklist, config);
    const full = dnsMessage(['ads.example.com']);
    const pointer = Uint8Array.from([...full.subarray(0, 12), 0xc0, 0x0c, 0, 1, 0, 1]);
    const noQuestion = full.slice(0, 12);
    noQuestion[5] = 0;
    assert.deepEqual(
      fates(nf, [
        udpFrame(full.subarray(0, 8)),
        udpFrame(full.subarray(0, 20)),
        udpFrame(pointer),
        udpFrame(noQuestion),
      ]),
      ['drop:malformed', 'drop:malformed', 'drop:malformed', 'drop:malformed'],
    );
  });

  it('refuses a blocklist entry that is not a domain name', () => {
    assert.throws(() => new NfHarness(dnsBlocklist, { domains: ['bad domain'] }), /domains\[0\]/);
  });
});
