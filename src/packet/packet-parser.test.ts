import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hex, placeAt } from '../../test/support/hex.js';
import { formatIpv4, formatIpv6, ipv4 } from './address.js';
import { pseudoHeaderSumV4 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { EthernetRepr } from './ethernet.js';
import { FlowKey } from './flow-key.js';
import { EtherType, IpProtocol } from './ip-protocol.js';
import { Ipv4Repr } from './ipv4.js';
import { LinkType } from './link-type.js';
import { Layer, PacketParser } from './packet-parser.js';
import { TcpRepr } from './tcp.js';
import { UdpRepr } from './udp.js';

// Frames built by scapy 2.5 (python3-scapy on Debian 12), checksums and lengths filled in by scapy.
const frames = {
  // Ether / IPv4 (DF) 198.18.0.1 → 198.19.0.1 / TCP SYN 40000 → 443, MSS 1460, NOP, WS 7
  tcpV4: hex(
    '020000000002020000000001080045000030000140004006ae9fc6120001c61300019c4001bb000003e80000000070022000360d0000020405b401030307',
  ),
  // Ether / 802.1Q pcp 3 vid 100 / IPv6 2001:2::1 → 2001:2:0:1::1 / UDP 5353 → 53 "hello"
  udpV6Vlan: hex(
    '0200000000020200000000018100606486dd60000000000d1140200100020000000000000000000000012001000200000001000000000000000114e90035000d66db68656c6c6f',
  ),
  // Ether / 802.1ad vid 10 / 802.1Q vid 20 / IPv4 / ICMP echo request id 0x1234 seq 7 "abcdefgh"
  icmpQinq: hex(
    '02000000000202000000000188a8000a81000014080045000024000100004001eeaec6120002c61300020800542f123400076162636465666768',
  ),
  // Ether / IPv4 192.0.2.1 → .2 / UDP 50000 → 4789 (checksum 0) / VXLAN vni 5000 / Ether / IPv4 10.0.0.1 → .2 / UDP 1111 → 2222
  vxlan: hex(
    '02000000ff0202000000ff01080045000058000100004011f690c0000201c0000202c35012b500440000080000000013880002000000000402000000000308004500002600010000401166c40a0000010a000002045708ae0012846878787878787878787878',
  ),
  // The same inner frame in GENEVE vni 77 with one option (class 0x0105, type 1, 4 bytes)
  geneve: hex(
    '02000000ff0202000000ff01080045000060000100004011f688c0000201c0000202c35117c1004c00000200655800004d0001050101aabbccdd02000000000402000000000308004500002600010000401166c40a0000010a000002045708ae0012846878787878787878787878',
  ),
  // Ether / IPv6 / hop-by-hop / destination options / fragment (offset 0, M=0) / TCP ACK 1 → 2
  ipv6Ext: hex(
    '02000000000202000000000186dd60000000002c004020010db800000000000000000000000120010db80000000000000000000000023c000104000000002c00010400000000060000000000000900010002000000000000000050102000345d0000',
  ),
  // Ether broadcast / ARP who-has 198.18.0.254 tell 198.18.0.1
  arp: hex('ffffffffffff02000000000108060001080006040001020000000001c6120001000000000000c61200fe'),
  // Ether / IPv6 / ICMPv6 echo request id 0x42 seq 1 "ping"
  icmpv6: hex(
    '02000000000202000000000186dd60000000000c3a4020010db800000000000000000000000120010db8000000000000000000000002800045300042000170696e67',
  ),
};

function parse(bytes: Uint8Array, parser = new PacketParser()): PacketParser {
  const reason = parser.attach(bytes, 0, bytes.length, LinkType.Ethernet);
  assert.equal(reason, DropReason.None, `refused at layer ${parser.failedLayer} with reason ${reason}`);
  return parser;
}

function layers(parser: PacketParser): number[] {
  return Array.from(parser.layerKind.subarray(0, parser.layerCount));
}

describe('PacketParser', () => {
  it('walks Ethernet / IPv4 / TCP and reads the 5-tuple', () => {
    const p = parse(frames.tcpV4);
    assert.deepEqual(layers(p), [Layer.Ethernet, Layer.Ipv4, Layer.Tcp]);
    assert.equal(p.l3, Layer.Ipv4);
    assert.equal(p.l4, Layer.Tcp);
    assert.equal(formatIpv4(p.ipv4.src()), '198.18.0.1');
    assert.equal(p.tcp.dstPort(), 443);
    assert.equal(p.tcp.mss(), 1460);
    const key = new FlowKey();
    assert.equal(p.flowKey(key), true);
    assert.equal(key.toString(), '6 198.18.0.1:40000 -> 198.19.0.1:443');
  });

  it('walks an 802.1Q tag to IPv6 / UDP and verifies the UDP checksum over the v6 pseudo-header', () => {
    const p = parse(frames.udpV6Vlan);
    assert.deepEqual(layers(p), [Layer.Ethernet, Layer.Ipv6, Layer.Udp]);
    assert.equal(p.eth.tagCount(), 1);
    assert.equal(p.eth.tagVid(0), 100);
    assert.equal(p.eth.tagPcp(0), 3);
    assert.equal(formatIpv6(p.ipv6.bytes, p.ipv6.dstAt()), '2001:2:0:1::1');
    assert.equal(p.payloadLength, 5);
    assert.equal(
      String.fromCharCode(...frames.udpV6Vlan.subarray(p.payloadAt, p.payloadAt + p.payloadLength)),
      'hello',
    );
  });

  it('walks Q-in-Q to ICMP and keys an echo by its identifier', () => {
    const p = parse(frames.icmpQinq);
    assert.deepEqual([p.eth.tagCount(), p.eth.tagVid(0), p.eth.tagVid(1)], [2, 10, 20]);
    assert.equal(p.l4, Layer.Icmpv4);
    const key = new FlowKey();
    p.flowKey(key);
    assert.equal(key.toString(), '1 198.18.0.2:4660 -> 198.19.0.2:4660');
  });

  it('decapsulates VXLAN and GENEVE: the views describe the inner packet, the layer list the outer', () => {
    for (const [frame, tunnel] of [
      [frames.vxlan, Layer.Vxlan],
      [frames.geneve, Layer.Geneve],
    ] as const) {
      const p = parse(frame);
      assert.deepEqual(layers(p), [
        Layer.Ethernet,
        Layer.Ipv4,
        Layer.Udp,
        tunnel,
        Layer.Ethernet,
        Layer.Ipv4,
        Layer.Udp,
      ]);
      assert.equal(p.tunnel, tunnel);
      assert.equal(p.tunnelDepth, 1);
      assert.equal(formatIpv4(p.ipv4.src()), '10.0.0.1');
      assert.equal(p.udp.dstPort(), 2222);
      assert.equal(p.payloadLength, 10);
    }
    assert.equal(parse(frames.vxlan).vxlan.vni(), 5000);
    assert.equal(parse(frames.geneve).geneve.vni(), 77);
  });

  it('treats a tunnel as plain UDP when decapsulation is off', () => {
    const p = parse(frames.vxlan, new PacketParser({ maxTunnelDepth: 0 }));
    assert.deepEqual(layers(p), [Layer.Ethernet, Layer.Ipv4, Layer.Udp]);
    assert.equal(p.udp.dstPort(), 4789);
  });

  it('walks IPv6 extension headers to TCP, and refuses more of them than allowed', () => {
    const p = parse(frames.ipv6Ext);
    assert.equal(p.l4, Layer.Tcp);
    assert.equal(p.protocol, 6);
    assert.equal(p.fragment, true, 'an atomic fragment header still marks a fragment');
    const strict = new PacketParser({ maxExtensionHeaders: 2 });
    assert.equal(strict.attach(frames.ipv6Ext, 0, frames.ipv6Ext.length), DropReason.TooManyLayers);
    assert.equal(strict.failedLayer, Layer.Ipv6);
  });

  it('refuses more VLAN tags than allowed', () => {
    const p = new PacketParser({ maxTags: 1 });
    assert.equal(p.attach(frames.icmpQinq, 0, frames.icmpQinq.length), DropReason.TooManyLayers);
    assert.equal(p.failedLayer, Layer.Ethernet);
  });

  it('reads ARP and ICMPv6', () => {
    const arp = parse(frames.arp);
    assert.equal(arp.l3, Layer.Arp);
    assert.equal(formatIpv4(arp.arp.targetIp()), '198.18.0.254');
    assert.equal(arp.flowKey(new FlowKey()), false, 'ARP has no 5-tuple');
    const v6 = parse(frames.icmpv6);
    assert.equal(v6.l4, Layer.Icmpv6);
    assert.equal(v6.icmpv6.identifier(), 0x42);
  });

  it('parses at a non-zero offset inside a larger buffer', () => {
    const buffer = placeAt(frames.geneve, 37);
    const p = new PacketParser();
    assert.equal(p.attach(buffer, 37, frames.geneve.length), DropReason.None);
    assert.equal(p.layerOffset(Layer.Geneve), 37 + 14 + 20 + 8);
    assert.equal(formatIpv4(p.ipv4.dst()), '10.0.0.2');
  });

  it('reads raw IPv4 and IPv6 link types by the version nibble', () => {
    const p = new PacketParser();
    assert.equal(p.attach(frames.tcpV4, 14, frames.tcpV4.length - 14, LinkType.RawIp), DropReason.None);
    assert.equal(p.l4, Layer.Tcp);
    assert.equal(p.attach(frames.icmpv6, 14, frames.icmpv6.length - 14, LinkType.RawIp), DropReason.None);
    assert.equal(p.l4, Layer.Icmpv6);
  });

  it('names the layer of a bad checksum (inner UDP of a VXLAN frame)', () => {
    const bad = frames.vxlan.slice();
    bad[bad.length - 1] ^= 0xff; // payload byte: only the inner UDP checksum covers it
    const p = new PacketParser();
    assert.equal(p.attach(bad, 0, bad.length), DropReason.BadChecksum);
    assert.equal(p.failedLayer, Layer.Udp);
    assert.equal(p.tunnelDepth, 1);
    assert.equal(new PacketParser({ verifyChecksums: false }).attach(bad, 0, bad.length), DropReason.None);
  });

  it('refuses every truncation of every frame with a reason, without throwing', () => {
    const p = new PacketParser();
    for (const [name, frame] of Object.entries(frames)) {
      for (let length = 0; length < frame.length; length++) {
        // The one legitimate exception: bytes past the last header that no length field claims.
        const reason = p.attach(frame, 0, length);
        assert.notEqual(reason, DropReason.None, `${name} cut to ${length} bytes was accepted`);
      }
    }
  });

  it('never throws and never reads past the end on random bytes', () => {
    const p = new PacketParser();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom(LinkType.Ethernet, LinkType.RawIp),
        (bytes, linkType) => {
          const reason = p.attach(bytes, 0, bytes.length, linkType);
          assert.ok(reason >= DropReason.None && reason <= DropReason.BadField);
          assert.ok(p.layerCount <= 16);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('never throws on random mutations of valid frames', () => {
    const p = new PacketParser();
    const all = Object.values(frames);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: all.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (which, edits) => {
          const frame = all[which].slice();
          for (const [at, value] of edits) frame[at % frame.length] = value;
          const reason = p.attach(frame, 0, frame.length);
          assert.ok(reason >= DropReason.None && reason <= DropReason.BadField);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  describe('the fast path for Ethernet / IPv4 / TCP or UDP', () => {
    /** Everything attach() leaves behind that a caller may read. */
    function state(p: PacketParser, reason: number): unknown {
      return {
        reason,
        failedLayer: p.failedLayer,
        layers: layers(p),
        at: Array.from(p.layerAt.subarray(0, p.layerCount)),
        l3: p.l3,
        l4: p.l4,
        tunnel: p.tunnel,
        tunnelDepth: p.tunnelDepth,
        protocol: p.protocol,
        fragment: p.fragment,
        payload: reason === DropReason.None ? [p.payloadAt, p.payloadLength] : null,
        eth: reason === DropReason.None ? [p.eth.at, p.eth.available, p.eth.tagCount()] : null,
        ipv4: p.l3 === Layer.Ipv4 ? [p.ipv4.at, p.ipv4.available] : null,
        udp: p.l4 === Layer.Udp ? [p.udp.at, p.udp.available] : null,
        tcp: p.l4 === Layer.Tcp ? [p.tcp.at, p.tcp.available] : null,
      };
    }

    /** A checksummed frame at `at` in a buffer with `tail` spare bytes: UDP or TCP, `payload` bytes. */
    function frame(tcp: boolean, payload: number, padding: number, at: number, ports: [number, number]) {
      const l4Length = (tcp ? 20 : 8) + payload;
      const bytes = new Uint8Array(at + 34 + l4Length + padding);
      for (let i = 0; i < payload; i++) bytes[at + 34 + l4Length - payload + i] = (i * 37 + 11) & 255;
      const protocol = tcp ? IpProtocol.Tcp : IpProtocol.Udp;
      EthernetRepr.emit(
        { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
        bytes,
        at,
      );
      Ipv4Repr.emit(
        { src: '198.18.0.1', dst: '203.0.113.9', protocol, payloadLength: l4Length },
        bytes,
        at + 14,
      );
      const pseudo = pseudoHeaderSumV4(ipv4('198.18.0.1'), ipv4('203.0.113.9'), protocol, l4Length);
      if (tcp)
        TcpRepr.emit(
          {
            srcPort: ports[0],
            dstPort: ports[1],
            seq: 1,
            ack: 2,
            flags: 0x18,
            window: 512,
            urgentPointer: 0,
            options: new Uint8Array(0),
            payloadLength: payload,
          },
          bytes,
          at + 34,
          pseudo,
        );
      else
        UdpRepr.emit(
          { srcPort: ports[0], dstPort: ports[1], payloadLength: payload },
          bytes,
          at + 34,
          pseudo,
        );
      return bytes;
    }

    for (const verifyChecksums of [true, false]) {
      it(`leaves the state the layered walk leaves, on valid and mutated frames (verifyChecksums ${verifyChecksums})`, () => {
        const fast = new PacketParser({ verifyChecksums });
        const walk = new PacketParser({ verifyChecksums });
        let accepted = 0;
        let refused = 0;
        fc.assert(
          fc.property(
            fc.boolean(),
            fc.integer({ min: 0, max: 40 }),
            fc.integer({ min: 0, max: 8 }),
            fc.integer({ min: 0, max: 5 }),
            fc.tuple(fc.constantFrom(53, 4789, 6081, 40000), fc.constantFrom(80, 4789, 6081, 53)),
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
            fc.integer({ min: -4, max: 80 }),
            (tcp, payload, padding, at, ports, edits, cut) => {
              const bytes = frame(tcp, payload, padding, at, ports);
              // Edits land in the headers (the first 60 bytes after `at`) most of the time.
              for (const [where, value] of edits)
                bytes[at + (where % Math.min(60, bytes.length - at))] = value;
              const length = cut < 0 ? bytes.length - at : Math.min(cut, bytes.length - at);
              const reason = fast.attach(bytes, at, length);
              const expected = walk.attachLayers(bytes, at, length, LinkType.Ethernet);
              assert.deepEqual(state(fast, reason), state(walk, expected));
              if (reason === DropReason.None) accepted++;
              else refused++;
            },
          ),
          { numRuns: 20_000 },
        );
        // Both outcomes were exercised, not one of them only.
        assert.ok(accepted > 1000 && refused > 1000, `accepted ${accepted}, refused ${refused}`);
      });
    }

    it('reads frames in views that start inside a larger buffer, at any offset, and never throws on a bad one', () => {
      // The fast path reads words through a DataView it keeps per array: a view that starts at a
      // byte offset of its buffer, and a second array after the first, must each be read as they are.
      const fast = new PacketParser();
      const walk = new PacketParser();
      for (const shift of [0, 1, 3, 7]) {
        const udp = frame(false, 18, 0, 0, [1234, 53]);
        const outer = new Uint8Array(shift + udp.length + 5).fill(0xee);
        outer.set(udp, shift);
        const inner = outer.subarray(shift, shift + udp.length);
        assert.equal(fast.attach(inner, 0, inner.length), DropReason.None, `shift ${shift}`);
        assert.equal(fast.udp.dstPort(), 53);
        assert.equal(fast.attach(outer, shift, udp.length), DropReason.None, `shift ${shift}`);
        assert.equal(fast.payloadAt, shift + 42);
      }
      const udp = frame(false, 18, 0, 0, [1234, 53]);
      for (const at of [-1, -14, 0.5, 1.5, NaN, Infinity, 2 ** 40]) {
        // The fast path declines these offsets; attach answers what the layered walk answers.
        assert.equal(
          fast.attach(udp, at, udp.length),
          walk.attachLayers(udp, at, udp.length, LinkType.Ethernet),
          `at ${at}`,
        );
      }
    });

    it('takes the fast path after a refused frame without keeping its state', () => {
      const p = new PacketParser();
      assert.equal(p.attach(frames.vxlan, 0, frames.vxlan.length), DropReason.None);
      assert.equal(p.tunnelDepth, 1);
      const udp = frame(false, 18, 0, 0, [1234, 53]);
      assert.equal(p.attach(frames.tcpV4, 0, 20), DropReason.Truncated);
      assert.equal(p.attach(udp, 0, udp.length), DropReason.None);
      assert.deepEqual(layers(p), [Layer.Ethernet, Layer.Ipv4, Layer.Udp]);
      assert.equal(p.tunnelDepth, 0);
      assert.equal(p.failedLayer, Layer.None);
      assert.equal(p.udp.srcPort(), 1234);
      assert.equal(p.payloadAt, 42);
      assert.equal(p.payloadLength, 18);
    });
  });
});
