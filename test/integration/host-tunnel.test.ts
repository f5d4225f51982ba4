/**
 * A live chain: VXLAN datagrams sent to the host's tunnel port on loopback come back out of the
 * same port, through a firewall guest, encapsulated with the same VNI towards the remote endpoint;
 * what the firewall denies does not come back. The host runs until it is stopped.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';
import { fileURLToPath } from 'node:url';
import { MAX_GENERATED_FRAME, TrafficGenerator } from '../../src/io/traffic-generator.js';
import { VxlanRepr, VxlanView } from '../../src/packet/vxlan.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { PacketParser } from '../../src/packet/packet-parser.js';

process.env.NFVISOR_QUIET = '1';
const VNI = 4242;
const FRAMES = 300;

async function udp(): Promise<Socket> {
  // The peer runs on the host's own event loop, and the host sends a burst with one sendmmsg: a
  // default-sized receive buffer (~190 datagrams of this size) would drop the tail of it.
  const socket = createSocket({ type: 'udp4', recvBufferSize: 1 << 21 });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return socket;
}

describe('host with a live VXLAN port', () => {
  it('forwards frames from the tunnel through a guest and back into the tunnel', async () => {
    const peer = await udp(); // plays the remote VTEP: sends and receives VXLAN
    const probe = await udp(); // finds a free port for the host's endpoint
    const hostPort = probe.address().port;
    probe.close();
    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        vx: {
          kind: 'vxlan',
          options: {
            bind: { address: '127.0.0.1', port: hostPort },
            remote: { address: '127.0.0.1', port: peer.address().port },
            vni: VNI,
          },
        },
      },
      nfs: {
        fw: {
          module: builtinModule('firewall'),
          config: { default: 'accept', rules: [{ action: 'drop', protocol: 'icmp' }] },
          vnic: 'direct',
          placement: 'isolated',
          replicas: 1,
          heapMb: 64,
          failure: 'fail-closed',
        },
      },
      chains: [{ name: 'wire', from: 'vx', to: 'vx', through: ['fw'] }],
    };
    const host = await Host.create(plan);
    const received: Uint8Array[] = [];
    peer.on('message', (message: Buffer) => received.push(new Uint8Array(message)));
    const running = host.run();
    try {
      // Once the host has opened its socket, send FRAMES encapsulated frames, ICMP among them.
      await host.opened;
      const generator = new TrafficGenerator({
        seed: 5,
        packets: FRAMES,
        ipv6: 0,
        mix: { tcp: 2, udp: 2, icmp: 1 },
        frameSize: 200,
      });
      const frame = new Uint8Array(8 + MAX_GENERATED_FRAME);
      VxlanRepr.emit({ vni: VNI }, frame, 0);
      let icmp = 0;
      for (let n = generator.next(frame, 8); n > 0; n = generator.next(frame, 8)) {
        if (generator.info.protocol === 1) icmp++;
        // dgram sends asynchronously from the buffer it is given: each datagram needs its own copy.
        peer.send(Buffer.from(frame.subarray(0, 8 + n)), hostPort, '127.0.0.1');
        if (generator.info.index % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const expected = FRAMES - icmp;
      const deadline = Date.now() + 5000;
      while (received.length < expected && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      host.stop();
      const summary = await running;
      assert.equal(
        received.length,
        expected,
        `every non-ICMP frame came back (${received.length}/${expected}); host: ${JSON.stringify({
          received: summary.received,
          sent: summary.sent,
          dropped: summary.dropped,
          lost: summary.lost,
          hostDrops: summary.hostDrops,
          fw: summary.nfs[0],
        })}`,
      );
      assert.equal(summary.received, FRAMES);
      assert.equal(summary.nfs[0].drops.denied, icmp);
      const view = new VxlanView();
      const parser = new PacketParser();
      for (const datagram of received) {
        assert.equal(view.attach(datagram, 0, datagram.length), DropReason.None);
        assert.equal(view.vni(), VNI);
        assert.equal(
          parser.attach(datagram, 8, datagram.length - 8),
          DropReason.None,
          'the inner frame is intact',
        );
        assert.notEqual(parser.protocol, 1);
      }
      assert.equal(summary.poolFree, summary.poolSlots);
    } finally {
      host.stop();
      await running.catch(() => undefined);
      peer.close();
    }
  });
});

describe('host stopped while a live apply drains an old chain', () => {
  it('closes the port the old chain wrote to (its address binds again)', async () => {
    const peer = await udp(); // the remote VTEP of every port here
    const sender = await udp();
    const free = async (): Promise<number> => {
      const probe = await udp();
      const port = probe.address().port;
      probe.close();
      return port;
    };
    const [inPort, oldOut, newOut] = [await free(), await free(), await free()];
    const vxlan = (port: number): HostPlan['ports'][string] => ({
      kind: 'vxlan',
      options: {
        bind: { address: '127.0.0.1', port },
        remote: { address: '127.0.0.1', port: peer.address().port },
        vni: VNI,
      },
    });
    // The old chain's guest stalls 1.5 s on its first burst: it still holds packets when the host stops.
    const misbehaving = fileURLToPath(new URL('./nfs/misbehaving.js', import.meta.url));
    const guest = (failure: string): HostPlan['nfs'][string] => ({
      module: misbehaving,
      config: { failure, after: 1 },
      vnic: 'direct',
      placement: 'isolated',
      replicas: 1,
      heapMb: 64,
      failure: 'fail-closed',
    });
    const plan = (out: string, nf: string): HostPlan => ({
      pool: { slots: 256, slotSize: 2048 },
      ringSize: 64,
      batch: 16,
      ports: { in: vxlan(inPort), [out]: vxlan(out === 'old' ? oldOut : newOut) },
      nfs: { [nf]: guest(nf === 'stalls' ? 'stall' : 'none') },
      chains: [{ name: 'c', from: 'in', to: out, through: [nf] }],
    });
    const host = await Host.create(plan('old', 'stalls'));
    const running = host.run();
    try {
      const frame = new Uint8Array(8 + MAX_GENERATED_FRAME);
      const generator = new TrafficGenerator({ seed: 9, packets: 1000, frameSize: 60, flows: 2 });
      // Frames until the host has read some (its port opens once the run has started the guests);
      // the guest stalls on its first burst and holds them.
      const deadline = Date.now() + 10_000;
      while (host.status().received === 0) {
        assert.ok(Date.now() < deadline, 'the host never read a frame');
        VxlanRepr.emit({ vni: VNI }, frame, 0);
        const length = generator.next(frame, 8);
        sender.send(frame.subarray(0, 8 + length), inPort, '127.0.0.1');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const applying = host.apply(plan('new', 'passes'), { drainTimeoutMs: 5000 });
      await new Promise((resolve) => setTimeout(resolve, 300)); // swapped; the old chain drains
      assert.ok(
        host.status().lost + host.status().sent < host.status().received,
        'the old guest holds packets',
      );
      host.stop();
      await applying.catch(() => undefined);
      await running;
      const again = createSocket('udp4');
      again.bind(oldOut, '127.0.0.1');
      const [bound] = await Promise.race([
        once(again, 'listening').then(() => ['listening']),
        once(again, 'error'),
      ]);
      again.close();
      assert.equal(
        bound,
        'listening',
        `the old chain's port still holds 127.0.0.1:${oldOut}: ${String(bound)}`,
      );
    } finally {
      host.stop();
      await running.catch(() => undefined);
      peer.close();
      sender.close();
    }
  });
});
