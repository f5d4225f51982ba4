import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipv4, pseudoHeaderSumV4 } from '../packet/index.js';
import { EthernetRepr } from '../packet/ethernet.js';
import { EtherType, IpProtocol } from '../packet/ip-protocol.js';
import { Ipv4Repr } from '../packet/ipv4.js';
import { PacketParser } from '../packet/packet-parser.js';
import { UdpRepr } from '../packet/udp.js';
import { Classifier, type MatchPlan } from './classifier.js';

/** A UDP frame 10.0.0.1:1234 → 10.0.0.2:`dstPort`. */
function udpFrame(dstPort: number): Uint8Array {
  const bytes = new Uint8Array(60);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    bytes,
    0,
  );
  Ipv4Repr.emit({ src: '10.0.0.1', dst: '10.0.0.2', protocol: IpProtocol.Udp, payloadLength: 26 }, bytes, 14);
  const pseudo = pseudoHeaderSumV4(ipv4('10.0.0.1'), ipv4('10.0.0.2'), IpProtocol.Udp, 26);
  UdpRepr.emit({ srcPort: 1234, dstPort, payloadLength: 18 }, bytes, 34, pseudo);
  return bytes;
}

/** The matches tried in order, fields read for every one: what classify() must answer. */
function reference(matches: MatchPlan[], parser: PacketParser, inPort: number, parsed: boolean): number {
  for (const m of matches) {
    if (m.inPort !== undefined && m.inPort !== inPort) continue;
    if (m.protocol === undefined && m.dstPort === undefined) return m.chain;
    if (!parsed) continue;
    if (m.protocol !== undefined && m.protocol !== parser.protocol) continue;
    if (m.dstPort && !(parser.udp.dstPort() >= m.dstPort[0] && parser.udp.dstPort() <= m.dstPort[1]))
      continue;
    return m.chain;
  }
  return -1;
}

describe('Classifier', () => {
  it('answers like trying every match in order, with and without fields to test, for any input port', () => {
    const match = fc.record(
      {
        inPort: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
        protocol: fc.option(fc.constantFrom(IpProtocol.Udp, IpProtocol.Tcp), { nil: undefined }),
        dstPort: fc.option(fc.constantFrom<[number, number]>([53, 53], [1, 1000], [2000, 3000]), {
          nil: undefined,
        }),
      },
      { requiredKeys: [] },
    );
    const parser = new PacketParser();
    fc.assert(
      fc.property(
        fc.array(match, { maxLength: 6 }),
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom(53, 2500, 9999),
        fc.boolean(),
        (specs, inPort, dstPort, parsed) => {
          // Keys absent rather than undefined, as a plan spreads them.
          const matches: MatchPlan[] = specs.map((s, chain) => {
            const m: MatchPlan = { chain };
            if (s.inPort !== undefined) m.inPort = s.inPort;
            if (s.protocol !== undefined) m.protocol = s.protocol;
            if (s.dstPort !== undefined) m.dstPort = s.dstPort;
            return m;
          });
          const frame = udpFrame(dstPort);
          assert.equal(parser.attach(frame, 0, frame.length), 0);
          const classifier = new Classifier(matches);
          assert.equal(
            classifier.classify(parser, inPort, parsed),
            reference(matches, parser, inPort, parsed),
          );
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('steers by input port alone, and refuses a port no chain takes', () => {
    const classifier = new Classifier([
      { chain: 0, inPort: 1 },
      { chain: 1, inPort: 0, protocol: IpProtocol.Udp },
      { chain: 2, inPort: 0 },
    ]);
    const parser = new PacketParser();
    const frame = udpFrame(53);
    parser.attach(frame, 0, frame.length);
    assert.equal(classifier.classify(parser, 1, true), 0);
    assert.equal(classifier.classify(parser, 0, true), 1);
    assert.equal(classifier.classify(parser, 0, false), 2);
    assert.equal(classifier.classify(parser, 2, true), -1);
    assert.equal(classifier.classify(parser, 99, true), -1);
  });
});
