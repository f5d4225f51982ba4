/**
 * The generator and the parser check each other: every generated packet must parse (checksums
 * verified) into the 5-tuple, tags and VNI the generator meant; the same seed gives the same bytes;
 * and a generated capture read back by `analyzeCapture` is counted exactly.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { analyzeCapture } from '../../src/io/capture-stats.js';
import { writeGeneratedCapture } from '../../src/io/generate-capture.js';
import {
  Encapsulation,
  MAX_GENERATED_FRAME,
  TrafficGenerator,
  type GeneratorOptions,
} from '../../src/io/traffic-generator.js';
import { formatIpv4, formatIpv6 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpFlag } from '../../src/packet/tcp.js';

const MIX: Partial<GeneratorOptions> = {
  seed: 9,
  packets: 20_000,
  flows: 300,
  distribution: 'zipf',
  ipv6: 0.3,
  vlan: 0.15,
  qinq: 0.1,
  vxlan: 0.15,
  geneve: 0.1,
};

function digest(options: Partial<GeneratorOptions>): string {
  const generator = new TrafficGenerator(options);
  const frame = new Uint8Array(MAX_GENERATED_FRAME);
  const hash = createHash('sha256');
  for (let n = generator.next(frame, 0); n > 0; n = generator.next(frame, 0))
    hash.update(frame.subarray(0, n));
  return hash.digest('hex');
}

describe('generated traffic', () => {
  it('parses back, checksums verified, into what the generator meant', () => {
    const generator = new TrafficGenerator(MIX);
    const parser = new PacketParser();
    const frame = new Uint8Array(MAX_GENERATED_FRAME + 64);
    let tunnelled = 0;
    let tagged = 0;
    for (let n = generator.next(frame, 5); n > 0; n = generator.next(frame, 5)) {
      const info = generator.info;
      const flow = generator.flowSummary(info.flow);
      const reason = parser.attach(frame, 5, n);
      assert.equal(
        reason,
        DropReason.None,
        `packet ${info.index}: refused at layer ${parser.failedLayer}, reason ${reason}`,
      );
      assert.equal(n, info.frameLength);
      assert.ok(n >= 60, 'frames are at least the Ethernet minimum');
      const forward = info.direction === 0;
      const [src, dst] = forward ? [flow.client, flow.server] : [flow.server, flow.client];
      if (info.ipVersion === 4) {
        assert.equal(parser.l3, Layer.Ipv4);
        assert.equal(formatIpv4(parser.ipv4.src()), src);
        assert.equal(formatIpv4(parser.ipv4.dst()), dst);
      } else {
        assert.equal(parser.l3, Layer.Ipv6);
        assert.equal(formatIpv6(parser.ipv6.bytes, parser.ipv6.srcAt()), src);
        assert.equal(formatIpv6(parser.ipv6.bytes, parser.ipv6.dstAt()), dst);
      }
      assert.equal(parser.protocol, info.protocol);
      if (info.protocol === IpProtocol.Tcp) {
        assert.equal(parser.tcp.srcPort(), info.srcPort);
        assert.equal(parser.tcp.dstPort(), info.dstPort);
        assert.equal(parser.tcp.flags(), info.tcpFlags);
        if (info.tcpFlags & TcpFlag.Syn) assert.equal(parser.tcp.mss(), 1460);
      } else if (info.protocol === IpProtocol.Udp) {
        assert.equal(parser.udp.srcPort(), info.srcPort);
        assert.equal(parser.udp.dstPort(), info.dstPort);
      }
      assert.equal(parser.payloadLength, info.payloadLength);
      if (flow.encapsulation !== Encapsulation.None) {
        tunnelled++;
        assert.equal(parser.tunnel, flow.encapsulation === Encapsulation.Vxlan ? Layer.Vxlan : Layer.Geneve);
        assert.equal(
          flow.encapsulation === Encapsulation.Vxlan ? parser.vxlan.vni() : parser.geneve.vni(),
          flow.vni,
        );
      } else assert.equal(parser.tunnelDepth, 0);
      assert.equal(parser.eth.tagCount(), flow.tags.length);
      for (let t = 0; t < flow.tags.length; t++) assert.equal(parser.eth.tagVid(t), flow.tags[t]);
      if (flow.tags.length > 0) tagged++;
    }
    assert.ok(tunnelled > 1000 && tagged > 1000, `mix covers tunnels (${tunnelled}) and tags (${tagged})`);
  });

  it('runs TCP sessions: SYN, SYN-ACK, ACK first; FIN-ACK, ACK, FIN-ACK, ACK last', () => {
    const generator = new TrafficGenerator({
      seed: 4,
      packets: 5000,
      flows: 3,
      mix: { tcp: 1, udp: 0, icmp: 0 },
    });
    const frame = new Uint8Array(MAX_GENERATED_FRAME);
    const perFlow = new Map<number, number[]>();
    for (let n = generator.next(frame, 0); n > 0; n = generator.next(frame, 0)) {
      const list = perFlow.get(generator.info.flow) ?? [];
      list.push(generator.info.tcpFlags | (generator.info.direction << 8));
      perFlow.set(generator.info.flow, list);
    }
    const { Syn, Ack, Fin } = TcpFlag;
    for (const flags of perFlow.values()) {
      assert.deepEqual(flags.slice(0, 3), [Syn, Syn | Ack | 0x100, Ack]);
      // Find the first teardown and check its shape.
      const fin = flags.findIndex((f) => (f & 0xff) === (Fin | Ack));
      assert.ok(fin > 3);
      assert.deepEqual(flags.slice(fin, fin + 5), [Fin | Ack, Ack | 0x100, Fin | Ack | 0x100, Ack, Syn]);
    }
  });

  it('is reproducible: the same seed gives the same bytes, another seed does not', () => {
    const options = { ...MIX, packets: 3000 };
    assert.equal(digest(options), digest(options));
    assert.notEqual(digest(options), digest({ ...options, seed: 10 }));
  });

  it('honours a fixed frame size and IMIX 7:4:1', () => {
    const fixed = new TrafficGenerator({ seed: 1, packets: 2000, frameSize: 300, tcpSessions: false });
    const frame = new Uint8Array(MAX_GENERATED_FRAME);
    for (let n = fixed.next(frame, 0); n > 0; n = fixed.next(frame, 0)) assert.equal(n, 300);
    const imix = new TrafficGenerator({
      seed: 1,
      packets: 12_000,
      tcpSessions: false,
      mix: { tcp: 0, udp: 1, icmp: 0 },
      ipv6: 0,
    });
    const counts = new Map<number, number>();
    for (let n = imix.next(frame, 0); n > 0; n = imix.next(frame, 0)) counts.set(n, (counts.get(n) ?? 0) + 1);
    assert.deepEqual(
      [...counts.keys()].sort((a, b) => a - b),
      [60, 590, 1514],
    );
    const share = (size: number): number => (counts.get(size) ?? 0) / 12_000;
    assert.ok(
      Math.abs(share(60) - 7 / 12) < 0.03 && Math.abs(share(590) - 4 / 12) < 0.03,
      JSON.stringify([...counts]),
    );
  });

  it('writes a capture that analyzeCapture counts exactly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfvisor-gen-'));
    try {
      for (const format of ['pcap', 'pcapng'] as const) {
        const path = join(dir, `mix.${format}`);
        const made = await writeGeneratedCapture({ ...MIX, packets: 5000 }, path, {
          format,
          nanosecond: format === 'pcapng',
        });
        assert.equal(made.packets, 5000);
        const stats = analyzeCapture(path);
        assert.equal(stats.packets, 5000);
        assert.equal(stats.originalBytes, made.bytes);
        assert.equal(stats.malformed.total, 0);
        assert.equal(stats.layers.vxlan + stats.layers.geneve > 0, true);
        // 1 Mpps: 5000 packets span 4999 µs.
        assert.equal(stats.durationSeconds.toFixed(6), '0.004999');
        assert.ok(
          stats.flows.conversations >= made.flows,
          `${stats.flows.conversations} conversations, ${made.flows} flows`,
        );
        assert.ok(readFileSync(path).length > made.bytes);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
