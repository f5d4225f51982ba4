import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipv4 } from '../../src/packet/address.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { NfHarness } from '../../src/sdk/index.js';
import firewall from './index.js';

const SRC = '10.0.0.1';
const DST = '192.0.2.10';

/** An IPv4 UDP fragment: the first (with the UDP header, port `dstPort`) or a later one (offset 24). */
function fragment(id: number, first: boolean, dstPort = 53): Uint8Array {
  const bytes = new Uint8Array(14 + 20 + 24);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    bytes,
  );
  Ipv4Repr.emit(
    {
      src: SRC,
      dst: DST,
      protocol: IpProtocol.Udp,
      payloadLength: 24,
      identification: id,
      dontFragment: false,
      moreFragments: first,
      fragmentOffset: first ? 0 : 24,
    },
    bytes,
    14,
  );
  if (first)
    UdpRepr.emit(
      { srcPort: 5000, dstPort, payloadLength: 40 },
      bytes,
      34,
      pseudoHeaderSumV4(ipv4(SRC), ipv4(DST), 17, 48),
    );
  return bytes;
}

function run(nf: NfHarness<unknown>, frames: Uint8Array[], now = 0): string[] {
  return nf.run(frames, now).map((r) => r.output ?? `drop:${r.drop}`);
}

describe('firewall fragments', () => {
  it('a later fragment follows its first fragment; unknown ones are dropped when rules use ports', () => {
    const nf = new NfHarness(firewall, {
      default: 'drop',
      rules: [{ action: 'accept', protocol: 'udp', dstPort: '53' }],
    });
    assert.deepEqual(
      run(nf, [
        fragment(1, true, 53),
        fragment(1, false),
        fragment(2, true, 22),
        fragment(2, false), // its first fragment was dropped: so is it
        fragment(3, false), // never seen a first fragment (or out of order)
      ]),
      ['out', 'out', 'drop:denied', 'drop:fragment_unknown', 'drop:fragment_unknown'],
    );
    const c = nf.counters();
    assert.deepEqual([c.accepted, c.denied, c.fragments_followed, c.fragment_unknown], [2, 1, 1, 2]);
    // After the 30 s fragment timeout the record is gone.
    assert.deepEqual(run(nf, [fragment(1, false)], 29.9e9), ['out']);
    assert.deepEqual(run(nf, [fragment(1, false)], 30e9), ['drop:fragment_unknown']);
  });

  it('with address/protocol-only rules later fragments are classified as they are', () => {
    const nf = new NfHarness(firewall, {
      default: 'drop',
      rules: [{ action: 'accept', dst: '192.0.2.0/24' }],
    });
    assert.deepEqual(run(nf, [fragment(9, false)]), ['out']);
    assert.equal(nf.counters().fragment_unknown, 0);
  });
});
