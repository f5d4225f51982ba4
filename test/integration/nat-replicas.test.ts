/**
 * A NAT run as several replicas: each packet is handed to the replica the host's steering picks
 * (src/host/replica-steering.ts, what `deliver` calls), and every connection must come back
 * through the replica that mapped it — replies, ICMP echo, ICMP errors both ways — with
 * endpoint-independent mapping kept and no external port held by two replicas. Under the old
 * symmetric-hash steering a reply met the replica owning it only by chance (a live NAT with two
 * replicas dropped 43 of 171 packets as no_mapping; 11 of 20 curls got through).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIpv4 } from '../../src/packet/address.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { Icmpv4Type } from '../../src/packet/icmpv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { translationOf, TranslationSteerer } from '../../src/host/replica-steering.js';
import { NfHarness, portOwner, type NfDefinition } from '../../src/sdk/index.js';
import nat from '../../nfs/nat/index.js';
import { frame, icmpError } from '../../nfs/nat/test-frames.js';

const EXT = '203.0.113.1';
const CONFIG = {
  external: EXT,
  inside: '10.0.0.0/8',
  filtering: 'endpoint-independent',
  portRange: '30000-49999',
};

interface Seen {
  replica: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
}

/** The replicas, each with its own harness, and the host's steering in front of them. */
function natReplicas(replicas: number): { send(bytes: Uint8Array): Seen | DropReason | string } {
  const definition = nat as unknown as NfDefinition<Record<string, unknown>>;
  const harnesses = Array.from(
    { length: replicas },
    (_, r) => new NfHarness(nat, CONFIG, { replica: r, replicas }),
  );
  const translation = translationOf('nat', definition, CONFIG);
  assert.ok(translation !== null);
  const steerer = new TranslationSteerer();
  const parser = new PacketParser({ maxTunnelDepth: 0 });
  return {
    send(bytes) {
      const replica = steerer.replicaOf(translation, bytes, 0, bytes.length, replicas);
      const [result] = harnesses[replica].run([bytes], 0);
      if (!result.output) return result.drop ?? 'dropped';
      assert.equal(parser.attach(result.bytes, 0, result.bytes.length), DropReason.None);
      const ports =
        parser.l4 === Layer.Tcp
          ? [parser.tcp.srcPort(), parser.tcp.dstPort()]
          : parser.l4 === Layer.Udp
            ? [parser.udp.srcPort(), parser.udp.dstPort()]
            : [parser.icmpv4.identifier(), parser.icmpv4.identifier()];
      return {
        replica,
        src: formatIpv4(parser.ipv4.src()),
        srcPort: ports[0],
        dst: formatIpv4(parser.ipv4.dst()),
        dstPort: ports[1],
      };
    },
  };
}

function seen(result: Seen | DropReason | string): Seen {
  if (typeof result !== 'object') assert.fail(`translated, not dropped (${result})`);
  return result;
}

describe('a NAT with replicas, steered by translation', () => {
  for (const replicas of [2, 3]) {
    it(`brings every reply back to the replica that mapped it (${replicas} replicas)`, () => {
      const nf = natReplicas(replicas);
      const external = new Map<string, string>(); // protocol/external port → inside endpoint
      const used = new Set<number>();
      for (let client = 0; client < 120; client++) {
        const inside = `10.0.${client >> 6}.${(client % 64) + 2}`;
        // Many clients use the same source port: port preservation must not hand it out twice.
        const insidePort = 40000 + (client % 7);
        const protocol = client % 3 === 0 ? 'udp' : 'tcp';
        const servers = ['198.51.100.7', '198.51.100.8', '192.0.2.99'];
        let mapped = -1;
        for (const server of servers) {
          const out = seen(
            nf.send(frame({ src: inside, dst: server, protocol, srcPort: insidePort, dstPort: 443 })),
          );
          assert.equal(out.src, EXT);
          // Endpoint-independent mapping: one external port whatever the destination.
          if (mapped < 0) mapped = out.srcPort;
          assert.equal(out.srcPort, mapped, `${inside}:${insidePort} keeps its external port`);
          assert.equal(portOwner(mapped, 30000, replicas), out.replica, 'a replica hands out its own ports');
          const reply = seen(
            nf.send(frame({ src: server, dst: EXT, protocol, srcPort: 443, dstPort: mapped })),
          );
          assert.equal(reply.replica, out.replica, 'the reply meets the replica that mapped it');
          assert.deepEqual([reply.dst, reply.dstPort], [inside, insidePort]);
          // An ICMP error about the outbound packet comes back to the same mapping.
          const outbound = frame({ src: EXT, dst: server, protocol, srcPort: mapped, dstPort: 443 });
          const error = seen(nf.send(icmpError(server, EXT, Icmpv4Type.DestinationUnreachable, 3, outbound)));
          assert.equal(error.replica, out.replica);
          assert.equal(error.dst, inside);
        }
        const key = `${protocol}/${mapped}`;
        assert.equal(external.get(key), undefined, `${key} is held by one inside endpoint only`);
        external.set(key, `${inside}:${insidePort}`);
        used.add(
          seen(nf.send(frame({ src: inside, dst: servers[0], protocol, srcPort: insidePort, dstPort: 443 })))
            .replica,
        );
      }
      assert.equal(used.size, replicas, 'every replica maps some of the clients');
    });
  }

  it('steers ICMP echo by identifier, and an inside ICMP error by the endpoint it quotes', () => {
    const nf = natReplicas(3);
    for (let id = 1; id <= 30; id++) {
      const inside = `10.1.0.${id}`;
      const request = seen(
        nf.send(frame({ src: inside, dst: '198.51.100.7', protocol: 'icmp', srcPort: id })),
      );
      const reply = seen(
        nf.send(
          frame({
            src: '198.51.100.7',
            dst: EXT,
            protocol: 'icmp',
            srcPort: request.srcPort,
            icmpType: Icmpv4Type.EchoReply,
          }),
        ),
      );
      assert.equal(reply.replica, request.replica);
      assert.deepEqual([reply.dst, reply.dstPort], [inside, id]);
    }
    // An inside host answers a remote's UDP packet (sent to a mapping) with port unreachable: the
    // error quotes the translated-back packet, whose destination is the inside endpoint.
    const out = seen(
      nf.send(frame({ src: '10.2.0.9', dst: '198.51.100.7', protocol: 'udp', srcPort: 5353, dstPort: 53 })),
    );
    const arrived = frame({
      src: '198.51.100.7',
      dst: '10.2.0.9',
      protocol: 'udp',
      srcPort: 53,
      dstPort: 5353,
    });
    const error = seen(
      nf.send(icmpError('10.2.0.9', '198.51.100.7', Icmpv4Type.DestinationUnreachable, 3, arrived)),
    );
    assert.equal(error.replica, out.replica);
    assert.equal(error.src, EXT);
  });

  it('refuses a port range smaller than the replicas sharing it', () => {
    assert.throws(
      () => new NfHarness(nat, { ...CONFIG, portRange: '30000-30001' }, { replica: 2, replicas: 3 }),
      /portRange: 2 ports cannot be shared by 3 replicas/,
    );
  });
});
