import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldSum, internetChecksum, pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../packet/checksum.js';
import { DropReason } from '../packet/drop-reason.js';
import { EthernetRepr } from '../packet/ethernet.js';
import { Ipv4Repr } from '../packet/ipv4.js';
import { Ipv6Repr } from '../packet/ipv6.js';
import { LinkType } from '../packet/link-type.js';
import { PacketParser } from '../packet/packet-parser.js';
import { TcpFlag, TcpRepr } from '../packet/tcp.js';
import { SeededRandom } from './seeded-random.js';
import {
  completePartialChecksum,
  MIN_SEGMENT_SIZE,
  partialChecksum,
  SuperPacketShape,
  TcpSegmenter,
  type SegmentSink,
} from './tcp-offload.js';

const TIMESTAMPS = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2); // NOP NOP TS: 12 bytes
const FIRST_SEQ = 0xfffff000; // the sequence numbers wrap inside the super-packet
const FIRST_ID = 0xfffe; // and so does the IPv4 id

/** An Ethernet/IP/TCP frame with `payload`, its TCP checksum left partial as the kernel leaves it. */
function superPacket(version: 4 | 6, payload: Uint8Array, flags: number): Uint8Array {
  const tcp = {
    srcPort: 40000,
    dstPort: 5201,
    seq: FIRST_SEQ,
    ack: 7,
    flags,
    window: 512,
    urgentPointer: 0,
    options: TIMESTAMPS,
    payloadLength: payload.length,
  };
  const l4Length = TcpRepr.headerLength(tcp) + payload.length;
  const l3Length = version === 4 ? 20 : 40;
  const frame = new Uint8Array(14 + l3Length + l4Length);
  EthernetRepr.emit(
    {
      dst: '02:00:00:00:00:02',
      src: '02:00:00:00:00:01',
      tags: [],
      etherType: version === 4 ? 0x0800 : 0x86dd,
    },
    frame,
    0,
  );
  if (version === 4)
    Ipv4Repr.emit(
      {
        src: '10.0.0.1',
        dst: '10.0.0.2',
        protocol: 6,
        payloadLength: l4Length,
        identification: FIRST_ID,
        dontFragment: true,
      },
      frame,
      14,
    );
  else Ipv6Repr.emit({ src: 'fd00::1', dst: 'fd00::2', nextHeader: 6, payloadLength: l4Length }, frame, 14);
  const l4 = 14 + l3Length;
  frame.set(payload, l4 + TcpRepr.headerLength(tcp));
  TcpRepr.emit(tcp, frame, l4, 0);
  const shape = new SuperPacketShape();
  assert.ok(shape.read(frame, 0, frame.length));
  const partial = partialChecksum(frame, 0, frame.length, shape);
  frame[l4 + 16] = partial >> 8;
  frame[l4 + 17] = partial & 0xff;
  return frame;
}

/** Keeps a copy of every segment written. */
class Collect implements SegmentSink {
  readonly frames: Uint8Array[] = [];
  write(bytes: Uint8Array, at: number, length: number): void {
    this.frames.push(bytes.slice(at, at + length));
  }
}

function segment(frame: Uint8Array, segmentSize: number): { count: number; frames: Uint8Array[] } {
  const sink = new Collect();
  // The frame sits inside a larger buffer, at an odd offset: nothing may assume it starts at 0.
  const buffer = new Uint8Array(frame.length + 21);
  buffer.set(frame, 7);
  const count = new TcpSegmenter().segment(buffer, 7, frame.length, segmentSize, sink, 0, 0);
  return { count, frames: sink.frames };
}

/** Checks each segment as a receiver would (checksums verified by the parser) and returns its payloads. */
function checkSegments(frames: Uint8Array[], segmentSize: number, version: 4 | 6, flags: number): Uint8Array {
  const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: true });
  const payloads: number[] = [];
  frames.forEach((frame, i) => {
    assert.equal(
      parser.attach(frame, 0, frame.length, LinkType.Ethernet),
      DropReason.None,
      `segment ${i} parses, checksums valid`,
    );
    const payloadAt = 14 + (version === 4 ? 20 : 40) + parser.tcp.headerLength();
    const size = frame.length - payloadAt;
    assert.ok(
      size <= segmentSize && (size === segmentSize || i === frames.length - 1),
      `segment ${i}: ${size} bytes`,
    );
    assert.equal(parser.tcp.seq(), (FIRST_SEQ + i * segmentSize) >>> 0, `segment ${i}: sequence number`);
    if (version === 4)
      assert.equal(parser.ipv4.identification(), (FIRST_ID + i) & 0xffff, `segment ${i}: IP id`);
    const last = i === frames.length - 1;
    let expected = flags;
    if (!last) expected &= ~(TcpFlag.Fin | TcpFlag.Psh);
    if (i > 0) expected &= ~TcpFlag.Cwr;
    assert.equal(parser.tcp.flags(), expected, `segment ${i}: flags`);
    payloads.push(...frame.subarray(payloadAt));
  });
  return Uint8Array.from(payloads);
}

describe('TCP super-packets (tcp-offload)', () => {
  const random = new SeededRandom(7);
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => random.below(256));

  for (const version of [4, 6] as const) {
    it(`IPv${version}: cuts 3,500 bytes at MSS 1,448 into 1,448 + 1,448 + 604, every segment valid`, () => {
      const payload = bytes(3500);
      const flags = TcpFlag.Ack | TcpFlag.Psh | TcpFlag.Fin | TcpFlag.Cwr;
      const { count, frames } = segment(superPacket(version, payload, flags), 1448);
      assert.equal(count, 3);
      assert.deepEqual(
        frames.map((f) => f.length - 14 - (version === 4 ? 20 : 40) - 32),
        [1448, 1448, 604],
      );
      assert.deepEqual(checkSegments(frames, 1448, version, flags), payload);
    });
  }

  it('random payloads and segment sizes: the segments carry the payload in order, each one valid', () => {
    for (let round = 0; round < 60; round++) {
      const version = round % 2 === 0 ? 4 : 6;
      const payload = bytes(1 + random.below(20_000));
      const segmentSize = MIN_SEGMENT_SIZE + random.below(3000);
      const { count, frames } = segment(
        superPacket(version, payload, TcpFlag.Ack | TcpFlag.Psh),
        segmentSize,
      );
      assert.equal(count, Math.ceil(payload.length / segmentSize), `round ${round}`);
      assert.deepEqual(checkSegments(frames, segmentSize, version, TcpFlag.Ack | TcpFlag.Psh), payload);
    }
  });

  it('refuses what it cannot cut, writing nothing: fragments, ICMP, UDP, a cut header, a wrong IP length, a tiny MSS', () => {
    const good = superPacket(4, bytes(4000), TcpFlag.Ack);
    const fragment = good.slice();
    fragment[14 + 6] |= 0x20; // more fragments
    const icmp = good.slice();
    icmp[14 + 9] = 1;
    const udp = good.slice();
    udp[14 + 9] = 17;
    const longer = good.slice();
    longer[14 + 3] += 1; // the IP length says one byte more than the frame holds
    const badOffset = good.slice();
    badOffset[14 + 20 + 12] = 0xf0; // a 60-byte TCP header the frame cannot hold past the IP length
    for (const [name, frame, size] of [
      ['fragment', fragment, 1448],
      ['icmp', icmp, 1448],
      ['udp', udp, 1448],
      ['ip length', longer, 1448],
      ['truncated', good.subarray(0, 14 + 20 + 10), 1448],
      ['mss', good, MIN_SEGMENT_SIZE - 1],
    ] as const) {
      const { count, frames } = segment(frame, size);
      assert.equal(count, -1, name);
      assert.equal(frames.length, 0, name);
    }
    // A data offset past the frame's end: not read beyond it.
    const short = superPacket(4, bytes(10), TcpFlag.Ack);
    short[14 + 20 + 12] = 0xf0;
    assert.equal(segment(short, 1448).count, -1);
    assert.equal(
      segment(badOffset, 1448).count >= 1,
      true,
      'a 60-byte header inside a 4,000-byte payload is a header',
    );
  });

  it('a partial checksum completed over the packet gives the full checksum (the kernel’s CHECKSUM_PARTIAL)', () => {
    for (const version of [4, 6] as const) {
      const frame = superPacket(version, bytes(777), TcpFlag.Ack);
      const l4 = 14 + (version === 4 ? 20 : 40);
      assert.ok(completePartialChecksum(frame, 0, frame.length, l4, 16));
      const l4Length = frame.length - l4;
      const pseudo =
        version === 4
          ? pseudoHeaderSumV4(0x0a000001, 0x0a000002, 6, l4Length)
          : pseudoHeaderSumV6(frame, 14 + 8, 14 + 24, 6, l4Length);
      assert.equal(internetChecksum(frame, l4, l4Length, pseudo), 0, `IPv${version}: the checksum verifies`);
    }
    const frame = superPacket(4, bytes(100), TcpFlag.Ack);
    const before = frame.slice();
    assert.equal(
      completePartialChecksum(frame, 0, frame.length, frame.length, 0),
      false,
      'start past the end',
    );
    assert.equal(
      completePartialChecksum(frame, 0, frame.length, 54, frame.length),
      false,
      'field past the end',
    );
    assert.deepEqual(frame, before, 'nothing changed');
  });

  it('the partial checksum is the folded pseudo-header sum over the whole TCP length', () => {
    const frame = superPacket(4, bytes(60_000), TcpFlag.Ack);
    const shape = new SuperPacketShape();
    assert.ok(shape.read(frame, 0, frame.length));
    assert.deepEqual([shape.version, shape.l3, shape.l4, shape.headerLength], [4, 14, 34, 66]);
    assert.equal(
      partialChecksum(frame, 0, frame.length, shape),
      foldSum(pseudoHeaderSumV4(0x0a000001, 0x0a000002, 6, frame.length - 34)),
    );
  });
});
