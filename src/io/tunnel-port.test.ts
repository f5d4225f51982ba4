/**
 * Tunnel ports over loopback UDP (127.0.0.1 only): VXLAN and GENEVE decapsulation into the bounded
 * ring, `next()`'s 0 / -1 contract, counted drops (malformed, wrong VNI, ring full, oversize),
 * encapsulation towards a remote with a per-flow outer source port, GENEVE's reply in the tunnel a
 * flow arrived in with its options, and errors that name the port.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { DropReason } from '../packet/drop-reason.js';
import { EtherType, IpProtocol } from '../packet/ip-protocol.js';
import { EthernetRepr } from '../packet/ethernet.js';
import { GenevePort } from './geneve-port.js';
import { GeneveRepr, GeneveView } from '../packet/geneve.js';
import { Ipv4Repr } from '../packet/ipv4.js';
import { UdpRepr } from '../packet/udp.js';
import { VxlanPort } from './vxlan-port.js';
import { canonicalAddress } from './tunnel-port.js';
import { VxlanRepr, VxlanView } from '../packet/vxlan.js';
import { isNfvError } from '../errors.js';
import { addonUnavailableReason } from './native-addon.js';

/** An Ethernet/IPv4/UDP frame from 10.0.0.1:`srcPort` to 10.0.0.2:`dstPort` with `payload` bytes of `fill`. */
function udpFrame(srcPort: number, dstPort: number, payload = 18, fill = 0x5a, reverse = false): Uint8Array {
  const frame = new Uint8Array(14 + 20 + 8 + payload).fill(fill);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    frame,
    0,
  );
  const [src, dst] = reverse ? ['10.0.0.2', '10.0.0.1'] : ['10.0.0.1', '10.0.0.2'];
  Ipv4Repr.emit({ src, dst, protocol: IpProtocol.Udp, payloadLength: 8 + payload }, frame, 14);
  UdpRepr.emit({ srcPort, dstPort, payloadLength: payload }, frame, 34);
  return frame;
}

/** A UDP socket on 127.0.0.1 that records what it receives. */
class Peer {
  readonly socket: Socket = createSocket('udp4');
  readonly received: { data: Buffer; from: RemoteInfo }[] = [];

  async open(): Promise<this> {
    this.socket.on('message', (data, from) => this.received.push({ data, from }));
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return this;
  }
  port(): number {
    return this.socket.address().port;
  }
  send(data: Uint8Array, port: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(data, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())),
    );
  }
  close(): void {
    this.socket.close();
  }
}

/** Resolves once `condition()` holds; rejects after `timeoutMs` (loopback delivery is sub-millisecond). */
async function until(condition: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Concatenates a tunnel header and an inner frame into one datagram. */
function datagram(header: Uint8Array, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(header.length + frame.length);
  out.set(header, 0);
  out.set(frame, header.length);
  return out;
}

const LOCAL = '127.0.0.1';
const SLOT = 2048;

function vxlanHeader(vni: number): Uint8Array {
  const h = new Uint8Array(8);
  VxlanRepr.emit({ vni }, h);
  return h;
}

function geneveHeader(vni: number, extra: Partial<GeneveRepr> = {}): Uint8Array {
  const repr: GeneveRepr = { vni, protocolType: 0x6558, oam: false, critical: false, options: [], ...extra };
  const h = new Uint8Array(GeneveRepr.headerLength(repr));
  GeneveRepr.emit(repr, h);
  return h;
}

const GWLB_OPTIONS = [
  { optionClass: 0x0108, type: 1, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) },
  { optionClass: 0x0108, type: 2, data: new Uint8Array([9, 10, 11, 12]) },
];

describe('VxlanPort', () => {
  const open: { close(): void }[] = [];
  after(() => open.forEach((x) => x.close()));
  async function setup(
    options: Partial<ConstructorParameters<typeof VxlanPort>[0]> = {},
  ): Promise<{ port: VxlanPort; peer: Peer }> {
    const peer = await new Peer().open();
    const port = new VxlanPort({
      bind: { address: LOCAL, port: 0 },
      remote: { address: LOCAL, port: peer.port() },
      vni: 42,
      clock: () => 1_700_000_000_123.456,
      ...options,
    });
    await port.open();
    open.push(peer, port);
    return { port, peer };
  }

  it('queues the inner frame of a valid datagram; next() returns it, then 0 (nothing now)', async () => {
    const { port, peer } = await setup();
    let readable = 0;
    port.onReadable = () => readable++;
    const frame = udpFrame(1000, 2000);
    await peer.send(datagram(vxlanHeader(42), frame), port.address().port);
    await until(() => port.counters.rx === 1, 'rx');
    assert.equal(readable, 1);
    const out = new Uint8Array(SLOT).fill(0xa5);
    assert.equal(port.next(out, 100, SLOT - 100), frame.length);
    assert.deepEqual(out.subarray(100, 100 + frame.length), frame);
    assert.equal(out[99], 0xa5);
    assert.equal(out[100 + frame.length], 0xa5);
    assert.equal(port.seconds, 1_700_000_000);
    assert.ok(Math.abs(port.nanos - 123_456_000) < 1_000, `nanos ${port.nanos}`);
    assert.equal(port.next(out, 0, SLOT), 0);
    assert.equal(port.linkType, 1);
  });

  it('counts malformed and wrong-VNI datagrams, never throws, queues nothing for them', async () => {
    const { port, peer } = await setup();
    const target = port.address().port;
    const frame = udpFrame(1, 2);
    await peer.send(new Uint8Array([0x08, 0, 0]), target); // shorter than the header
    const noFlag = datagram(vxlanHeader(42), frame);
    noFlag[0] = 0; // I flag clear
    await peer.send(noFlag, target);
    await peer.send(datagram(vxlanHeader(43), frame), target);
    await peer.send(new Uint8Array(0), target);
    await until(() => port.counters.rx_malformed === 3 && port.counters.rx_wrong_vni === 1, 'drops');
    assert.equal(port.counters.rx, 0);
    assert.equal(port.queued(), 0);
    assert.equal(port.next(new Uint8Array(SLOT), 0, SLOT), 0);
  });

  it('drops at the tail when the ring is full (bounded, counted) and keeps arrival order (dgram path)', async () => {
    // The dgram path takes every datagram as it arrives; the recvmmsg path below leaves them in
    // the kernel's socket buffer until the ring has room.
    const { port, peer } = await setup({ slots: 4, nativeIo: false });
    for (let i = 0; i < 10; i++)
      await peer.send(datagram(vxlanHeader(42), udpFrame(100 + i, 7)), port.address().port);
    await until(() => port.counters.rx + port.counters.rx_queue_full === 10, 'ten datagrams');
    assert.equal(port.counters.rx, 4);
    assert.equal(port.counters.rx_queue_full, 6);
    const out = new Uint8Array(SLOT);
    for (let i = 0; i < 4; i++) {
      assert.ok(port.next(out, 0, SLOT) > 0);
      assert.equal((out[34] << 8) | out[35], 100 + i, 'frames leave in arrival order');
    }
    assert.equal(port.next(out, 0, SLOT), 0);
    // Room again: the ring wraps.
    await peer.send(datagram(vxlanHeader(42), udpFrame(200, 7)), port.address().port);
    await until(() => port.counters.rx === 5, 'rx after drain');
    assert.ok(port.next(out, 0, SLOT) > 0);
    assert.equal((out[34] << 8) | out[35], 200);
  });

  it('batched path: a full ring leaves datagrams in the socket buffer; all arrive, in order', async (t) => {
    const { port, peer } = await setup({ slots: 4 });
    if (port.io() !== 'recvmmsg') {
      t.skip(`native addon: ${addonUnavailableReason()}`);
      return;
    }
    for (let i = 0; i < 10; i++)
      await peer.send(datagram(vxlanHeader(42), udpFrame(100 + i, 7)), port.address().port);
    await until(() => port.counters.rx === 4, 'a first batch of four');
    const out = new Uint8Array(SLOT);
    const seen: number[] = [];
    for (let tries = 0; seen.length < 10 && tries < 100; tries++) {
      const n = port.next(out, 0, SLOT);
      if (n > 0) seen.push((out[34] << 8) | out[35]);
      else await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(seen, [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    assert.equal(port.counters.rx_queue_full, 0);
  });

  it('counts frames longer than a slot or than the room next() is given', async () => {
    const { port, peer } = await setup({ slotSize: 128 });
    await peer.send(datagram(vxlanHeader(42), udpFrame(1, 2, 200)), port.address().port);
    await peer.send(datagram(vxlanHeader(42), udpFrame(1, 2, 60)), port.address().port);
    await peer.send(datagram(vxlanHeader(42), udpFrame(1, 2, 10)), port.address().port);
    await until(() => port.oversize === 1 && port.counters.rx === 2, 'oversize on receipt');
    const out = new Uint8Array(SLOT);
    // The 102-byte frame does not fit 64 bytes of room: skipped and counted; the 52-byte one is returned.
    assert.equal(port.next(out, 0, 64), 52);
    assert.equal(port.oversize, 2);
  });

  it('encapsulates with the VNI towards the remote, one outer source port per flow, spread over flows', async () => {
    const { port, peer } = await setup({ sourcePorts: 8 });
    const frame = udpFrame(5555, 53, 30);
    port.write(frame, 0, frame.length, 0, 0);
    port.write(frame, 0, frame.length, 0, 0);
    for (let i = 0; i < 64; i++) {
      const f = udpFrame(10_000 + i, 80);
      const at = 3;
      const buffer = new Uint8Array(at + f.length + 5).fill(0xee);
      buffer.set(f, at);
      port.write(buffer, at, f.length, 0, 0);
    }
    await until(() => peer.received.length === 66, 'datagrams at the remote');
    assert.equal(port.counters.tx, 66);
    assert.equal(port.counters.tx_errors, 0);
    assert.equal(port.packets, 66);
    const view = new VxlanView();
    for (const { data } of peer.received) {
      assert.equal(view.attach(data), DropReason.None);
      assert.equal(view.flags(), 0x08);
      assert.equal(view.vni(), 42);
      assert.deepEqual([...data.subarray(1, 4), data[7]], [0, 0, 0, 0], 'reserved bits zero');
    }
    // Order is kept within a flow, not across flows (the batched path sends per socket).
    const first = peer.received.filter((r) => Buffer.from(r.data.subarray(8)).equals(Buffer.from(frame)));
    assert.equal(first.length, 2);
    assert.equal(first[0].from.port, first[1].from.port, 'one flow, one source port');
    const ports = new Set(peer.received.map((r) => r.from.port));
    assert.ok(ports.size >= 5, `64 flows spread over the 8 source ports (${ports.size} used)`);
    assert.ok(!ports.has(port.address().port));
  });

  it('two ports back to back carry frames both ways', async () => {
    const a = new VxlanPort({
      bind: { address: LOCAL, port: 0 },
      vni: 7,
      remote: { address: LOCAL, port: 1 },
    });
    await a.open();
    const b = new VxlanPort({
      bind: { address: LOCAL, port: 0 },
      vni: 7,
      remote: { address: LOCAL, port: a.address().port },
    });
    await b.open();
    open.push(a, b);
    const frame = udpFrame(1, 2);
    b.write(frame, 0, frame.length, 0, 0);
    await until(() => a.counters.rx === 1, 'a received');
    const out = new Uint8Array(SLOT);
    assert.equal(a.next(out, 0, SLOT), frame.length);
    assert.deepEqual(out.subarray(0, frame.length), frame);
  });

  it('close(): queued frames can still be read, then next() returns -1; write() is counted as an error', async () => {
    const { port, peer } = await setup();
    await peer.send(datagram(vxlanHeader(42), udpFrame(1, 2)), port.address().port);
    await until(() => port.counters.rx === 1, 'rx');
    port.close();
    const out = new Uint8Array(SLOT);
    assert.ok(port.next(out, 0, SLOT) > 0);
    assert.equal(port.next(out, 0, SLOT), -1);
    port.write(out, 0, 60, 0, 0);
    assert.equal(port.counters.tx_errors, 1);
    port.close();
  });

  it('a port already in use is an NFV_ERR_IO naming the port and EADDRINUSE', async () => {
    const { port } = await setup();
    const clash = new VxlanPort({
      name: 'uplink',
      bind: { address: LOCAL, port: port.address().port },
      vni: 42,
    });
    await assert.rejects(clash.open(), (error: unknown) => {
      assert.ok(isNfvError(error, 'NFV_ERR_IO'));
      assert.match(error.message, /uplink/);
      assert.match(error.message, /EADDRINUSE/);
      return true;
    });
    assert.equal(clash.next(new Uint8Array(SLOT), 0, SLOT), -1);
  });

  it('rejects bad configuration with stable codes', () => {
    const bad = (o: Partial<ConstructorParameters<typeof VxlanPort>[0]>, code: string): void =>
      assert.throws(
        () => new VxlanPort({ bind: { address: LOCAL }, vni: 1, ...o }),
        (e: unknown) => isNfvError(e) && e.code === code,
      );
    bad({ vni: 1 << 24 }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ vni: -1 }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ bind: { address: 'localhost' } }, 'NFV_ERR_BAD_ADDRESS');
    bad({ remote: { address: '::1' } }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ bind: { address: LOCAL, port: 70_000 } }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ slots: 0 }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ slotSize: 70_000 }, 'NFV_ERR_BAD_ARGUMENT');
    bad({ replyFlows: 1000 }, 'NFV_ERR_BAD_ARGUMENT');
    assert.equal(new VxlanPort({ bind: { address: LOCAL }, vni: 1 }).address().port, 4789);
  });
});

describe('GenevePort', () => {
  const open: { close(): void }[] = [];
  after(() => open.forEach((x) => x.close()));

  it('replies in the tunnel a flow came from: same sender, same VNI, same options', async () => {
    const peer = await new Peer().open();
    const port = new GenevePort({ bind: { address: LOCAL, port: 0 }, vni: 0x123456 });
    await port.open();
    open.push(peer, port);
    const header = geneveHeader(0x123456, { options: GWLB_OPTIONS });
    const frame = udpFrame(40_000, 443, 40);
    await peer.send(datagram(header, frame), port.address().port);
    await until(() => port.counters.rx === 1, 'rx');
    const out = new Uint8Array(SLOT);
    const n = port.next(out, 0, SLOT);
    assert.deepEqual(out.subarray(0, n), frame);
    // The appliance returns the packet (here unchanged) and a reply of the same flow.
    port.write(out, 0, n, 0, 0);
    const reply = udpFrame(443, 40_000, 12, 0x11, true);
    port.write(reply, 0, reply.length, 0, 0);
    // A flow never seen has no tunnel to go back in.
    const stranger = udpFrame(1, 2);
    port.write(stranger, 0, stranger.length, 0, 0);
    await until(() => peer.received.length === 2, 'replies');
    assert.equal(port.counters.tx_no_tunnel, 1);
    assert.deepEqual(peer.received[0].data, Buffer.from(datagram(header, frame)));
    assert.deepEqual(peer.received[1].data, Buffer.from(datagram(header, reply)));
    assert.equal(peer.received[0].from.port, port.address().port, 'sent from the port it arrived on');
    const view = new GeneveView();
    assert.equal(view.attach(new Uint8Array(peer.received[1].data)), DropReason.None);
    assert.deepEqual(GeneveRepr.parse(view).options, GWLB_OPTIONS);
  });

  it('towards a remote: protocol 0x6558, the VNI and the configured options', async () => {
    const peer = await new Peer().open();
    const port = new GenevePort({
      bind: { address: LOCAL, port: 0 },
      remote: { address: LOCAL, port: peer.port() },
      vni: 9,
      options: [{ optionClass: 0xffff, type: 0x80 | 3, data: new Uint8Array([1, 2, 3, 4]) }],
    });
    await port.open();
    open.push(peer, port);
    const frame = udpFrame(3, 4);
    port.write(frame, 0, frame.length, 0, 0);
    await until(() => peer.received.length === 1, 'datagram');
    const view = new GeneveView();
    assert.equal(view.attach(peer.received[0].data), DropReason.None);
    const repr = GeneveRepr.parse(view);
    assert.equal(repr.vni, 9);
    assert.equal(repr.protocolType, 0x6558);
    assert.equal(repr.critical, true, 'C set because a critical option is present');
    assert.equal(repr.options.length, 1);
    assert.deepEqual(peer.received[0].data.subarray(view.payloadAt()), Buffer.from(frame));
  });

  it('counts malformed, wrong-VNI, OAM and non-Ethernet datagrams apart', async () => {
    const peer = await new Peer().open();
    const port = new GenevePort({ bind: { address: LOCAL, port: 0 }, vni: 5 });
    await port.open();
    open.push(peer, port);
    const target = port.address().port;
    const frame = udpFrame(1, 2);
    const badVersion = datagram(geneveHeader(5), frame);
    badVersion[0] |= 0x40;
    await peer.send(badVersion, target);
    const overrun = datagram(geneveHeader(5, { options: GWLB_OPTIONS }), frame);
    overrun[0] = (overrun[0] & 0xc0) | 63; // options claim 252 bytes, more than follow the header's TLVs
    await peer.send(overrun.subarray(0, 40), target);
    const badTlv = datagram(geneveHeader(5, { options: GWLB_OPTIONS }), frame);
    badTlv[8 + 3] = 31; // first option claims 124 bytes of data
    await peer.send(badTlv, target);
    await peer.send(datagram(geneveHeader(6), frame), target);
    await peer.send(datagram(geneveHeader(5, { oam: true }), frame), target);
    await peer.send(datagram(geneveHeader(5, { protocolType: 0x0800 }), frame.subarray(14)), target);
    await peer.send(datagram(geneveHeader(5), frame), target);
    await until(() => port.counters.rx === 1, 'the one good datagram');
    assert.equal(port.counters.rx_malformed, 3);
    assert.equal(port.counters.rx_wrong_vni, 1);
    assert.equal(port.counters.rx_ignored, 2);
    assert.equal(port.queued(), 1);
  });
});

/** A UDP port on 127.0.0.1 free a moment ago (a port taking another's socket over needs a fixed one). */
async function freePort(): Promise<number> {
  const probe = await new Peer().open();
  const port = probe.port();
  probe.close();
  return port;
}

/** The source port of the inner UDP header of the frame at `bytes[at..]` (frames from `udpFrame`). */
function innerSourcePort(bytes: Uint8Array, at = 0): number {
  return (bytes[at + 34] << 8) | bytes[at + 35];
}

describe('a tunnel port taking over a running port’s socket (live reconfiguration)', () => {
  const open: { close(): void }[] = [];
  after(() => open.forEach((x) => x.close()));
  const out = new Uint8Array(SLOT);

  it('moves the socket, the queued frames and the counters; the new VNI and remote apply, the old port forwards', async () => {
    const peer = await new Peer().open(); // the sender, and the remote before the change
    const peer2 = await new Peer().open(); // the remote after it
    const bindPort = await freePort();
    const bind = { address: LOCAL, port: bindPort };
    const old = new VxlanPort({ name: 'vx', bind, remote: { address: LOCAL, port: peer.port() }, vni: 42 });
    await old.open();
    open.push(peer, peer2, old);
    for (let i = 0; i < 3; i++) await peer.send(datagram(vxlanHeader(42), udpFrame(100 + i, 7)), bindPort);
    await until(() => old.counters.rx === 3, 'three frames queued');
    assert.ok(old.next(out, 0, SLOT) > 0); // 100 handed out; 101 and 102 still queued
    const early = udpFrame(5, 6);
    old.write(early, 0, early.length, 0, 0);
    await until(() => peer.received.length === 1 && old.counters.tx === 1, 'a frame sent before');

    const io = old.io();
    const next = new VxlanPort({ name: 'vx', bind, remote: { address: LOCAL, port: peer2.port() }, vni: 43 });
    open.push(next);
    await assert.rejects(
      new VxlanPort({ bind, vni: 43 }).open(),
      (e: unknown) => isNfvError(e, 'NFV_ERR_IO') && /EADDRINUSE/.test(e.message),
      'the address is held: it cannot be bound a second time',
    );
    assert.equal(next.adoptionProblem(old), '');
    await next.prepareAdoption(old);
    next.adopt(old);
    assert.equal(next.io(), io, 'the same socket, read the same way');
    assert.equal(next.address().port, bindPort);
    assert.equal(next.queued(), 2, 'the frames the old port had not handed out moved');
    assert.ok(next.next(out, 0, SLOT) > 0);
    assert.equal(innerSourcePort(out), 101);
    assert.ok(next.next(out, 0, SLOT) > 0);
    assert.equal(innerSourcePort(out), 102);
    assert.equal(old.next(out, 0, SLOT), -1, 'the old port reads nothing any more');
    assert.equal(next.counters.rx, 3, 'the totals go on');
    assert.equal(next.counters.tx, 1);
    assert.equal(next.packets, 1);

    // In: the new VNI is accepted on the same socket, the old one counted as another network's.
    await peer.send(datagram(vxlanHeader(43), udpFrame(200, 7)), bindPort);
    await peer.send(datagram(vxlanHeader(42), udpFrame(201, 7)), bindPort);
    await until(() => next.counters.rx === 4 && next.counters.rx_wrong_vni === 1, 'new VNI in');
    assert.ok(next.next(out, 0, SLOT) > 0);
    assert.equal(innerSourcePort(out), 200);
    assert.equal(old.counters.rx, 3);

    // Out: written to the old port (an old chain draining) or the new, it goes to the new remote
    // with the new VNI.
    const drained = udpFrame(6, 7);
    old.write(drained, 0, drained.length, 0, 0);
    next.write(early, 0, early.length, 0, 0);
    await until(() => peer2.received.length === 2 && next.counters.tx === 3, 'sent after');
    const view = new VxlanView();
    for (const { data } of peer2.received) {
      assert.equal(view.attach(data), DropReason.None);
      assert.equal(view.vni(), 43);
    }
    assert.equal(peer.received.length, 1, 'nothing more to the old remote');
    assert.equal(next.packets, 3);
    assert.equal(old.packets, 1);

    // Closing the old port leaves the socket to the new one; closing that frees the address.
    old.close();
    await peer.send(datagram(vxlanHeader(43), udpFrame(300, 7)), bindPort);
    await until(() => next.counters.rx === 5, 'a frame after the old port closed');
    next.close();
    const again = new VxlanPort({ bind, vni: 1 });
    await again.open();
    again.close();
  });

  it('to the same remote, the sending sockets move too: a flow keeps its outer source port', async () => {
    const peer = await new Peer().open();
    const bind = { address: LOCAL, port: await freePort() };
    const remote = { address: LOCAL, port: peer.port() };
    const old = new VxlanPort({ bind, remote, vni: 1, sourcePorts: 4 });
    await old.open();
    open.push(peer, old);
    const flows = [udpFrame(1000, 80), udpFrame(2000, 80), udpFrame(3000, 80)];
    for (const f of flows) old.write(f, 0, f.length, 0, 0);
    await until(() => peer.received.length === 3, 'before');
    const next = new VxlanPort({ bind, remote, vni: 2, sourcePorts: 4, slots: 16 });
    open.push(next);
    await next.prepareAdoption(old);
    next.adopt(old);
    for (const f of flows) next.write(f, 0, f.length, 0, 0);
    await until(() => peer.received.length === 6, 'after');
    const sourceOf = (i: number): string =>
      `${innerSourcePort(peer.received[i].data, 8)}:${peer.received[i].from.port}`;
    const before = new Set([0, 1, 2].map(sourceOf));
    const afterApply = new Set([3, 4, 5].map(sourceOf));
    assert.deepEqual([...afterApply].sort(), [...before].sort());
    assert.equal(new VxlanView().attach(peer.received[5].data), DropReason.None);
    old.close(); // leaves the moved sockets open
    next.write(flows[0], 0, flows[0].length, 0, 0);
    await until(() => peer.received.length === 7, 'after the old port closed');
    assert.equal(next.counters.tx_errors, 0);
  });

  it('GENEVE without a remote: the flows learned for replies stay known across the takeover', async () => {
    const peer = await new Peer().open();
    const bind = { address: LOCAL, port: await freePort() };
    const old = new GenevePort({ bind, vni: 7 });
    await old.open();
    open.push(peer, old);
    const header = geneveHeader(7, { options: GWLB_OPTIONS });
    const frame = udpFrame(40_000, 443, 40);
    await peer.send(datagram(header, frame), bind.port);
    await until(() => old.counters.rx === 1, 'rx');
    // Another reply table size: the flows are placed again by their hash.
    const next = new GenevePort({ bind, vni: 7, replyFlows: 64 });
    open.push(next);
    await next.prepareAdoption(old);
    next.adopt(old);
    const n = next.next(out, 0, SLOT);
    assert.deepEqual(out.subarray(0, n), frame);
    const reply = udpFrame(443, 40_000, 12, 0x11, true);
    next.write(reply, 0, reply.length, 0, 0);
    old.write(out, 0, n, 0, 0);
    await until(() => peer.received.length === 2, 'replies in the tunnel the flow came in');
    assert.equal(next.counters.tx_no_tunnel, 0);
    assert.deepEqual(peer.received[0].data, Buffer.from(datagram(header, reply)));
    assert.deepEqual(peer.received[1].data, Buffer.from(datagram(header, frame)));
    assert.equal(peer.received[0].from.port, bind.port, 'from the socket it took over');
  });

  it('VXLAN → GENEVE on one address: the socket carries the other format from the swap on', async () => {
    const peer = await new Peer().open();
    const bind = { address: LOCAL, port: await freePort() };
    const old = new VxlanPort({ bind, vni: 3 });
    await old.open();
    open.push(peer, old);
    await peer.send(datagram(vxlanHeader(3), udpFrame(1, 2)), bind.port);
    await until(() => old.counters.rx === 1, 'rx');
    const next = new GenevePort({ bind, vni: 3 });
    open.push(next);
    await next.prepareAdoption(old);
    next.adopt(old);
    assert.ok(next.next(out, 0, SLOT) > 0, 'the queued VXLAN frame moved (already decapsulated)');
    await peer.send(datagram(geneveHeader(3), udpFrame(3, 4)), bind.port);
    await until(() => next.counters.rx === 2, 'a GENEVE datagram');
    assert.ok(next.next(out, 0, SLOT) > 0);
    assert.equal(innerSourcePort(out), 3);
  });

  it('knows one IPv6 address however it is written (::1 and 0:0::1 hold one socket)', async () => {
    const port = await freePort();
    const old = new VxlanPort({ name: 'old', bind: { address: '::1', port }, vni: 1 });
    // Without IPv6 loopback on the machine, only the spelling checks below run.
    const opened = await old.open().then(
      () => true,
      () => false,
    );
    open.push(old);
    const next = new VxlanPort({ name: 'new', bind: { address: '0:0:0::1', port }, vni: 2 });
    open.push(next);
    if (opened) assert.equal(next.adoptionProblem(old), '');
    assert.equal(canonicalAddress('0:0:0::1'), '::1');
    assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(canonicalAddress('127.0.0.1'), '127.0.0.1');
    assert.equal(canonicalAddress('not an address'), 'not an address');
  });

  it('says why it cannot take a socket over, and never half does', async () => {
    const bind = { address: LOCAL, port: await freePort() };
    const old = new VxlanPort({ name: 'old', bind, vni: 1 });
    const make = (extra: Partial<ConstructorParameters<typeof VxlanPort>[0]> = {}): VxlanPort =>
      new VxlanPort({ name: 'new', bind, vni: 2, ...extra });
    assert.equal(make().adoptionProblem(old), 'old does not hold its socket open');
    await old.open();
    open.push(old);
    assert.equal(old.adoptionProblem(old), 'a port cannot adopt itself');
    assert.match(
      make({ bind: { address: LOCAL, port: 1 } }).adoptionProblem(old),
      /^the bind address changes/,
    );
    assert.match(
      make({ receiveBufferSize: 1 << 16 }).adoptionProblem(old),
      /^the receive buffer size changes/,
    );
    if (old.io() === 'recvmmsg')
      assert.equal(
        make({ nativeIo: false }).adoptionProblem(old),
        'the socket is read with recvmmsg and new asks for dgram',
      );
    const ephemeral = new VxlanPort({ bind: { address: LOCAL, port: 0 }, vni: 1 });
    await ephemeral.open();
    open.push(ephemeral);
    assert.match(
      new VxlanPort({ bind: { address: LOCAL, port: 0 }, vni: 1 }).adoptionProblem(ephemeral),
      /ephemeral/,
    );
    const unprepared = make();
    open.push(unprepared);
    assert.throws(
      () => unprepared.adopt(old),
      (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT') && /prepareAdoption/.test(e.message),
    );
    await assert.rejects(
      make({ receiveBufferSize: 1 << 16 }).prepareAdoption(old),
      (e: unknown) => isNfvError(e, 'NFV_ERR_BAD_ARGUMENT') && /port new: cannot adopt/.test(e.message),
    );
    const taker = make();
    open.push(taker);
    await taker.prepareAdoption(old);
    taker.adopt(old);
    assert.equal(make().adoptionProblem(old), 'old does not hold its socket open', 'once only');
    assert.equal(make().adoptionProblem(taker), '', 'the new holder can hand it on in turn');
  });
});
