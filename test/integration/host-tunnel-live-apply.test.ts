/**
 * A live apply that changes a VXLAN port on the address it is bound to (127.0.0.1 only): the new
 * port takes the running one's socket over at the swap instead of binding it again, so the host
 * keeps forwarding. First the remote changes while frames stream in — every frame comes out at the
 * old or the new remote, none twice, none lost — then the VNI changes: frames with the new VNI are
 * carried, with the new VNI, to the new remote, and frames with the old one are not; then the port
 * is renamed. The port's counters go on across every takeover, and the host's accounting balances.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { VxlanRepr, VxlanView } from '../../src/packet/vxlan.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { until } from '../support/until.js';

process.env.NFVISOR_QUIET = '1';
const VXLAN_HEADER = 8;
const SEQ_AT = VXLAN_HEADER + 34; // the inner UDP source port carries the frame's number

async function udp(): Promise<Socket> {
  // The host sends a burst with one sendmmsg: a default-sized receive buffer could drop its tail.
  const socket = createSocket({ type: 'udp4', recvBufferSize: 1 << 21 });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return socket;
}

/** A VXLAN datagram with `vni` around an Ethernet/IPv4/UDP frame whose UDP source port is `seq`. */
function datagram(vni: number, seq: number): Buffer {
  const bytes = Buffer.alloc(VXLAN_HEADER + 14 + 20 + 8 + 18, 0x5a);
  VxlanRepr.emit({ vni }, bytes, 0);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    bytes,
    VXLAN_HEADER,
  );
  Ipv4Repr.emit(
    { src: '10.0.0.1', dst: '10.0.0.2', protocol: IpProtocol.Udp, payloadLength: 26 },
    bytes,
    VXLAN_HEADER + 14,
  );
  UdpRepr.emit({ srcPort: seq, dstPort: 7, payloadLength: 18 }, bytes, VXLAN_HEADER + 34);
  return bytes;
}

/** Datagrams one peer received: VNI and frame number of each. */
class Remote {
  readonly got: { vni: number; seq: number }[] = [];
  private readonly view = new VxlanView();
  constructor(readonly socket: Socket) {
    socket.on('message', (message: Buffer) => {
      assert.equal(this.view.attach(message, 0, message.length), DropReason.None);
      this.got.push({ vni: this.view.vni(), seq: message.readUInt16BE(SEQ_AT) });
    });
  }
  port(): number {
    return this.socket.address().port;
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('live apply of a VXLAN port that keeps its bind address', () => {
  // Both ways a port reads its socket: the native addon's recvmmsg (when built) and node:dgram.
  for (const nativeIo of [true, false])
    it(`takes the socket over (nativeIo ${nativeIo}): the new remote, VNI and name apply without a frame lost, counters go on`, async (t) => {
      const sender = await udp(); // plays the VTEP that sends into the host
      const one = new Remote(await udp());
      const two = new Remote(await udp());
      const probe = await udp(); // finds a free port for the host's endpoint
      const hostPort = probe.address().port;
      probe.close();
      const plan = (remote: Remote, vni: number, name = 'vx'): HostPlan => ({
        pool: { slots: 1024, slotSize: 2048 },
        ringSize: 256,
        batch: 32,
        ports: {
          [name]: {
            kind: 'vxlan',
            options: {
              bind: { address: '127.0.0.1', port: hostPort },
              remote: { address: '127.0.0.1', port: remote.port() },
              vni,
              nativeIo,
            },
          },
        },
        nfs: {
          fw: {
            module: builtinModule('firewall'),
            config: { default: 'accept' },
            vnic: 'direct',
            placement: 'isolated', // a worker: packets are in its rings at the swap, and drain after it
            replicas: 1,
            heapMb: 64,
            failure: 'fail-closed',
          },
        },
        chains: [{ name: 'wire', from: name, to: name, through: ['fw'] }],
      });
      let seq = 1000;
      const send = async (vni: number, count: number): Promise<void> => {
        for (let i = 0; i < count; i++) {
          sender.send(datagram(vni, seq++), hostPort, '127.0.0.1');
          if (i % 25 === 24) await pause(5);
        }
      };
      const host = await Host.create(plan(one, 100));
      const running = host.run();
      try {
        await host.opened;
        assert.deepEqual(host.failedPorts, []);
        await send(100, 150);
        // The remote changes while frames keep coming: 25 every 5 ms until the apply returns.
        let applying = true;
        const apply = host.apply(plan(two, 100)).finally(() => (applying = false));
        while (applying) await send(100, 25);
        const first = await apply;
        assert.equal(first.applied, true);
        assert.deepEqual(first.diff.refused, []);
        assert.deepEqual(first.diff.ports.changed, [{ name: 'vx', fields: ['port'] }]);
        assert.equal(first.lostInDrain, 0);
        await send(100, 50);
        const total = seq - 1000;
        await until(`${total} frames out`, () => one.got.length + two.got.length >= total, 10_000);
        const seqs = [...one.got, ...two.got].map((d) => d.seq).sort((a, b) => a - b);
        assert.deepEqual(
          seqs,
          Array.from({ length: total }, (_, i) => 1000 + i),
          'every frame came out once, at one remote or the other',
        );
        t.diagnostic(`${total} frames: ${one.got.length} to the old remote, ${two.got.length} to the new`);
        assert.ok(one.got.length >= 150, `the old remote until the swap (${one.got.length})`);
        assert.ok(two.got.length >= 50, `the new remote after it (${two.got.length})`);
        assert.ok(
          two.got.some((d) => d.seq === seq - 1),
          'the last frames went to the new remote',
        );
        assert.ok(one.got.every((d) => d.vni === 100) && two.got.every((d) => d.vni === 100));
        assert.equal(host.status().ports.vx?.sent, total, 'the port counts on across the takeover');

        // Now the VNI: 200 is carried, 100 no longer is.
        const second = await host.apply(plan(two, 200));
        assert.equal(second.applied, true);
        assert.deepEqual(second.diff.refused, []);
        const before = two.got.length;
        await send(200, 100);
        await send(100, 20);
        await until('100 frames with VNI 200', () => two.got.length >= before + 100, 10_000);
        await pause(50);
        const after = two.got.slice(before);
        assert.equal(after.length, 100, 'frames with the old VNI are not carried');
        assert.ok(after.every((d) => d.vni === 200));
        assert.equal(one.got.length + two.got.length, total + 100);

        // Renamed: the port that leaves the plan hands its socket to the one that comes in.
        const third = await host.apply(plan(two, 200, 'uplink'));
        assert.deepEqual([third.diff.ports.added, third.diff.ports.removed], [['uplink'], ['vx']]);
        await send(200, 50);
        await until('50 frames more', () => two.got.length >= before + 150, 10_000);
        const all = total + 150;

        host.stop();
        const summary = await running;
        assert.equal(summary.received, all, 'the frames with the old VNI never entered');
        assert.equal(summary.sent, all);
        assert.equal(summary.dropped, 0);
        assert.equal(summary.lost, 0);
        assert.equal(summary.ports.uplink.sent, all, 'sent counted on over three takeovers');
        assert.equal(summary.poolFree, summary.poolSlots);
      } finally {
        host.stop();
        await running.catch(() => undefined);
        for (const socket of [sender, one.socket, two.socket]) socket.close();
      }
    });
});
