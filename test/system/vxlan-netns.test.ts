/**
 * Real Linux VXLAN peers through nfvisor's VXLAN endpoints. Two namespaces, `a` and `b`, each have
 * a kernel `vxlan` device (VNI 42) whose underlay is a veth pair to the root namespace, where this
 * test's two `VxlanPort`s terminate the tunnels and a tiny relay moves every frame from one port to
 * the other (the host is not involved). Then `ping` from a (10.99.0.1) to b (10.99.0.2) must
 * succeed, tshark on a's underlay must decode VXLAN with VNI 42 and nothing malformed, and after
 * teardown no namespace or interface with the run's prefix may remain.
 *
 *   ns a                           root namespace (this process)                          ns b
 *   vx(10.99.0.1)                                                                  vx(10.99.0.2)
 *     └ a1 (U.2) ──veth── a0 (U.1) ← VxlanPort A ⇄ relay ⇄ VxlanPort B → b0 (V.1) ──veth── b1 (V.2) ┘
 *
 * U and V are /30s in 198.18.0.0/15 (RFC 2544 benchmarking space) chosen from the pid, so parallel
 * runs do not collide. Needs root, iproute2, iputils-ping and tshark (test/system/README.md).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VxlanPort } from '../../src/io/vxlan-port.js';
import { addVxlanPeers, requireRoot, requireTools, run, Testbed } from './netns.js';

const VNI = 42;
const PINGS = 5;
const SLOT = 2048;

const octet = (process.pid % 127) * 2;
const U = `198.18.${octet}`;
const V = `198.18.${octet + 1}`;

describe('VXLAN: kernel vxlan peers in namespaces through nfvisor VxlanPorts', () => {
  const bed = new Testbed();
  let a = '';
  let hostA = '';
  let portA: VxlanPort | null = null;
  let portB: VxlanPort | null = null;
  let relayed = 0;

  before(async () => {
    requireRoot('vxlan-netns.test');
    await requireTools(['ip', 'ping', 'tshark']);
    ({ a, hostA } = await addVxlanPeers(bed, {
      vni: VNI,
      underlayA: U,
      underlayB: V,
      overlayA: '10.99.0.1/24',
      overlayB: '10.99.0.2/24',
    }));

    portA = new VxlanPort({
      name: 'vxlan-a',
      bind: { address: `${U}.1` },
      remote: { address: `${U}.2` },
      vni: VNI,
    });
    portB = new VxlanPort({
      name: 'vxlan-b',
      bind: { address: `${V}.1` },
      remote: { address: `${V}.2` },
      vni: VNI,
    });
    await portA.open();
    await portB.open();
    const frame = new Uint8Array(SLOT);
    const pump = (from: VxlanPort, to: VxlanPort): void => {
      for (let n = from.next(frame, 0, SLOT); n > 0; n = from.next(frame, 0, SLOT)) {
        to.write(frame, 0, n, from.seconds, from.nanos);
        relayed++;
      }
    };
    const [pa, pb] = [portA, portB];
    pa.onReadable = () => pump(pa, pb);
    pb.onReadable = () => pump(pb, pa);
  });

  after(async () => {
    portA?.close();
    portB?.close();
    await bed.teardown();
  });

  it('ping a → b succeeds through the VXLAN ports, and tshark decodes VNI 42 with nothing malformed', async () => {
    // tshark decodes live (-l: a line per packet as it comes), so the test sees each packet arrive
    // instead of racing a capture file's start and flush; -c and -a bound it if stop() never comes.
    const fields = [
      'vxlan.vni',
      'vxlan.flags',
      'ip.src',
      'ip.dst',
      'icmp.type',
      'arp.opcode',
      '_ws.malformed',
    ];
    const tshark = bed.start(undefined, 'tshark', [
      '-l',
      '-n',
      '-i',
      hostA,
      '-f',
      'udp port 4789',
      '-c',
      '500',
      '-a',
      'duration:60',
      '-T',
      'fields',
      '-E',
      'separator=/t',
      '-E',
      'occurrence=a',
      ...fields.flatMap((f) => ['-e', f]),
    ]);
    await tshark.waitFor(/Capturing on/, 15_000);
    const rows = (): string[][] =>
      tshark
        .output()
        .stdout.split('\n')
        .slice(0, -1) // the last piece is an incomplete line (or '')
        .map((line) => line.split('\t'));
    const isReply = (row: string[]): boolean => row[4] === '0';

    // Warm-up: "Capturing on" can precede the capture's first packet; ping once at a time until
    // tshark shows a reply, so the capture is live (and ARP resolved) before the measured pings.
    let warm = false;
    for (let attempt = 0; attempt < 10 && !warm; attempt++) {
      await bed.exec(a, 'ping', ['-c', '1', '-W', '1', '10.99.0.2'], 5_000).catch(() => undefined);
      warm = await tshark
        .waitUntil(() => rows().some(isReply), 1_000)
        .then(
          () => true,
          () => false,
        );
    }
    assert.ok(warm, `no echo reply seen on ${hostA} after 10 warm-up pings: ${tshark.output().stderr}`);
    const mark = rows().length;

    const ping = await bed.exec(
      a,
      'ping',
      ['-c', String(PINGS), '-W', '1', '-i', '0.2', '10.99.0.2'],
      20_000,
    );
    assert.match(ping.stdout, new RegExp(`${PINGS} packets transmitted, ${PINGS} received`), ping.stdout);
    await tshark.waitUntil(
      () => rows().slice(mark).filter(isReply).length >= PINGS,
      5_000,
      `${PINGS} replies`,
    );
    await tshark.stop();

    const all = rows();
    for (const [vni, , , , , , malformed] of all) {
      assert.equal(vni, String(VNI), `every packet decodes as VXLAN VNI ${VNI}: ${all.join(' | ')}`);
      assert.equal(malformed ?? '', '', `no malformed packets: ${all.join(' | ')}`);
    }
    let requests = 0;
    let replies = 0;
    for (const [, , ips = '', , icmpType] of all.slice(mark)) {
      // ip.src with occurrence=a lists outer,inner; ICMP type 8 is a request from a, 0 the reply from b.
      if (icmpType === '8') {
        requests++;
        assert.equal(ips.split(',')[1], '10.99.0.1');
      }
      if (icmpType === '0') {
        replies++;
        assert.equal(ips.split(',')[1], '10.99.0.2');
      }
    }
    assert.equal(requests, PINGS, `every echo request crossed a's underlay once: ${all.join(' | ')}`);
    assert.equal(replies, PINGS, 'every echo reply came back through nfvisor');

    const ca = portA!.counters;
    const cb = portB!.counters;
    assert.ok(ca.rx >= PINGS && cb.rx >= PINGS, `both ports received (${ca.rx}, ${cb.rx})`);
    assert.equal(ca.rx + cb.rx, relayed, 'every received frame was relayed');
    assert.equal(ca.rx_malformed + cb.rx_malformed + ca.rx_wrong_vni + cb.rx_wrong_vni, 0);
    assert.equal(ca.rx_queue_full + cb.rx_queue_full + ca.tx_errors + cb.tx_errors, 0);
    assert.equal(cb.tx, ca.rx, 'what A received went out through B');
    assert.equal(ca.tx, cb.rx, 'what B received went out through A');
  });

  it('teardown leaves no namespace or interface with the run prefix', async () => {
    portA?.close();
    portB?.close();
    await bed.teardown();
    assert.deepEqual(await bed.leftovers(), []);
    const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
    assert.ok(!links.includes(bed.prefix), `no link named ${bed.prefix}…`);
    const namespaces = (await run('ip', ['netns', 'list'])).stdout;
    assert.ok(!namespaces.includes(bed.prefix), `no namespace named ${bed.prefix}…`);
  });
});
