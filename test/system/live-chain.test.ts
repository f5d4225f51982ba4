/**
 * Real clients through a whole nfvisor chain (issue 5, "Real clients"). The live testbed
 * (src/testbed/live-testbed.ts): a client and three backend servers in namespaces, bridged into
 * one kernel VXLAN tunnel to this process, where the host runs firewall → NAT → load balancer →
 * router on one chain that carries both directions. Judged by real `ping`, `curl` and `iperf3`:
 *
 * - ping to the VIP and to a backend is answered; curl to the VIP gets a backend's page;
 * - a port the firewall denies never reaches a server, and each denied SYN is counted;
 * - servers see the NAT's address, never the client's;
 * - 30 connections to the VIP reach all three backends, and the requests of one connection
 *   (keep-alive) one backend;
 * - a 10 s iperf3 TCP transfer completes without error, while the chain's guests are killed in
 *   the middle of it and restarted from their snapshots (direct); shorter transfers in the other
 *   vNIC modes.
 *
 * Every run of the host must account for each packet (received = sent + dropped + lost) and give
 * back every pool slot. Needs root, iproute2, iputils-ping, curl and iperf3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { VnicMode } from '../../src/host/guest-protocol.js';
import { builtinModule, Host, type HostPlan, type HostSummary, type NfPlan } from '../../src/host/host.js';
import { SUPER_PACKET_SLOT_SIZE } from '../../src/io/tcp-offload.js';
import {
  attachTap,
  LIVE,
  liveNfConfigs,
  liveTestbedUp,
  type LiveTestbed,
} from '../../src/testbed/live-testbed.js';
import { requireRoot, requireTools, sweepStale, Testbed } from '../../src/testbed/netns.js';

process.env.NFVISOR_QUIET = '1';
const FAMILY = 'nfl';
const U = `198.19.${100 + (process.pid % 150)}`;

/**
 * The host plan: one live port (the VXLAN endpoint, or a TAP device), one chain through the four
 * NFs, every guest in `vnic` mode.
 */
function livePlan(tb: LiveTestbed, vnic: VnicMode, tapDevice?: string, natReplicas = 1): HostPlan {
  const c = liveNfConfigs();
  const nf = (name: string, config: unknown): NfPlan => ({
    module: builtinModule(name),
    config,
    vnic,
    placement: 'isolated',
    replicas: name === 'nat' ? natReplicas : 1,
    heapMb: 64,
    failure: 'fail-closed',
  });
  return {
    // A TAP port with offloads brings TCP super-packets of up to 64 KiB: every slot holds one.
    pool:
      tapDevice === undefined
        ? { slots: 4096, slotSize: 2048 }
        : { slots: 1024, slotSize: SUPER_PACKET_SLOT_SIZE },
    ringSize: 1024,
    batch: 64,
    ports: {
      vx:
        tapDevice === undefined
          ? {
              kind: 'vxlan',
              options: { bind: { address: tb.bind }, remote: { address: tb.remote }, vni: tb.vni },
            }
          : { kind: 'tap', options: { device: tapDevice, offload: true } },
    },
    nfs: {
      fw: nf('firewall', c.firewall),
      nat: nf('nat', c.nat),
      lb: nf('load-balancer', c.loadBalancer),
      rt: nf('router', c.router),
    },
    chains: [{ name: 'live', from: 'vx', to: 'vx', through: ['fw', 'nat', 'lb', 'rt'] }],
  };
}

interface Iperf3Result {
  error?: string;
  intervals: { sum: { bytes: number; end: number } }[];
  end: { sum_sent?: { bytes: number; retransmits?: number }; sum_received?: { bytes: number } };
}

describe('live: ping, curl and iperf3 through firewall → NAT → load balancer over VXLAN', () => {
  const bed = new Testbed(`${FAMILY}${process.pid}`);
  let tb: LiveTestbed;

  before(async () => {
    requireRoot('live-chain.test');
    await requireTools(['ip', 'ping', 'curl', 'iperf3']);
    await sweepStale(FAMILY);
    tb = await liveTestbedUp(bed, { underlay: U });
  });

  after(async () => {
    await bed.teardown();
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
  });

  /** Runs `body` against a running host in `vnic` mode; stops it and checks conservation after. */
  async function withHost(
    vnic: VnicMode,
    body: (host: Host) => Promise<void>,
    tapDevice?: string,
    natReplicas = 1,
  ): Promise<HostSummary> {
    const host = await Host.create(livePlan(tb, vnic, tapDevice, natReplicas));
    const running = host.run();
    try {
      await host.opened; // sockets bound (or the TAP device made), guests up
      if (tapDevice !== undefined) await attachTap(bed, tb, tapDevice);
      await body(host);
    } finally {
      host.stop();
    }
    const summary = await running;
    assert.equal(
      summary.received,
      summary.sent + summary.dropped + summary.lost,
      'every packet accounted for',
    );
    assert.equal(summary.poolFree, summary.poolSlots, 'every pool slot back');
    return summary;
  }

  const client = (command: string, args: string[], timeoutMs = 20_000): Promise<string> =>
    bed.exec(tb.client, command, args, timeoutMs).then((r) => r.stdout);

  /** `curl` of `urls` over one connection (keep-alive); resolves to the response bodies. */
  async function curl(urls: string[], maxSeconds = 5): Promise<string[]> {
    const out = await client(
      'curl',
      ['-sS', '--max-time', String(maxSeconds), ...urls],
      (maxSeconds + 5) * 1000,
    );
    return out.trim().split('\n');
  }

  async function pings(target: string, count: number): Promise<number> {
    const out = await client('ping', [
      '-c',
      String(count),
      '-i',
      '0.2',
      '-W',
      '1',
      '-w',
      String(count + 3),
      target,
    ]).catch((e: unknown) => String((e as Error).message));
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  }

  /** 30 connections, each with three requests; asserts the spread and per-connection stickiness. */
  async function spread(connections: number): Promise<Map<string, number>> {
    const perBackend = new Map<string, number>();
    const url = `http://${LIVE.vip}:${LIVE.httpPort}/`;
    for (let done = 0; done < connections; done += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, connections - done) }, () => curl([url, url, url], 10)),
      );
      for (const bodies of batch) {
        assert.equal(bodies.length, 3, `three answers on one connection: ${bodies.join(' | ')}`);
        assert.equal(
          new Set(bodies).size,
          1,
          `one connection, one backend, one source port: ${bodies.join(' | ')}`,
        );
        const [name, seen] = bodies[0].split(' ');
        assert.equal(seen, LIVE.natAddress, `the server saw the NAT's address: ${bodies[0]}`);
        perBackend.set(name, (perBackend.get(name) ?? 0) + 1);
      }
    }
    return perBackend;
  }

  async function iperf3(seconds: number, during?: () => Promise<void>): Promise<Iperf3Result> {
    const run = client(
      'iperf3',
      [
        '-c',
        LIVE.vip,
        '-p',
        String(LIVE.iperfPort),
        '-t',
        String(seconds),
        '-J',
        '--connect-timeout',
        '3000',
      ],
      (seconds + 20) * 1000,
    ).catch((e: unknown) => String((e as { stdout?: string }).stdout ?? (e as Error).message));
    if (during) await during();
    const text = await run;
    let result: Iperf3Result;
    try {
      result = JSON.parse(text) as Iperf3Result;
    } catch {
      throw new Error(`iperf3 printed no JSON: ${text.slice(0, 2000)}`);
    }
    assert.equal(result.error, undefined, `iperf3 reported no error (${result.error})`);
    assert.ok((result.end.sum_received?.bytes ?? 0) > 0, 'the server received bytes');
    assert.ok(result.intervals.length >= seconds, `${result.intervals.length} intervals of ${seconds}`);
    return result;
  }

  // First: later cases leave stray packets of their connections (an iperf3 across a guest kill)
  // that a new NAT rightly drops as no_mapping.
  it('direct, the NAT as three replicas: every connection comes back through the replica that mapped it', async () => {
    const summary = await withHost(
      'direct',
      async () => {
        // Steered by symmetric flow hash, a reply reached the mapping replica by chance (one in three).
        const perBackend = await spread(30);
        assert.equal(perBackend.size, 3, `all three backends served: ${[...perBackend].join(', ')}`);
        assert.equal(await pings(LIVE.vip, 3), 3, 'ping to the VIP is answered');
      },
      undefined,
      3,
    );
    const nat = summary.nfs.find((nf) => nf.name === 'nat');
    assert.equal(nat?.replicas, 3);
    assert.ok((nat?.counters.new_mappings ?? 0) >= 30, `mappings made: ${nat?.counters.new_mappings}`);
    assert.equal(nat?.drops.no_mapping ?? 0, 0, 'no reply met a replica without its mapping');
  });

  it('direct: ping, curl, the firewall, the NAT, the spread, and iperf3 across a guest kill', async () => {
    const summary = await withHost('direct', async (host) => {
      assert.equal(await pings(LIVE.vip, 3), 3, 'ping to the VIP is answered');
      assert.equal(await pings(LIVE.backends[1], 3), 3, 'ping to a backend is answered');

      const [body] = await curl([`http://${LIVE.vip}/`]);
      assert.match(body, new RegExp(`^b1[123] ${LIVE.natAddress.replaceAll('.', '\\.')} \\d+$`), body);

      // The denied port: curl gives up, no server ever hears of it, the firewall counts it.
      const denied = await curl([`http://${LIVE.vip}:${LIVE.blockedPort}/`], 2).then(
        (b) => b.join(' '),
        () => 'failed',
      );
      assert.equal(denied, 'failed', `nothing answers on the denied port (${denied})`);
      const fw = host.status().nfs.find((n) => n.name === 'fw');
      assert.ok((fw?.drops.denied ?? 0) >= 1, `the firewall counted the denied SYNs (${fw?.drops.denied})`);

      const perBackend = await spread(30);
      assert.equal(perBackend.size, 3, `all three backends served: ${[...perBackend].join(', ')}`);

      // 10 s of TCP; at 4 s the chain's guests are killed (a direct run restarts together) and
      // come back from their snapshots. TCP retransmits what was lost in them; nothing resets.
      const restartsBefore = host.status().nfs.find((n) => n.name === 'nat')?.restarts ?? 0;
      const result = await iperf3(10, async () => {
        await new Promise((resolve) => setTimeout(resolve, 4_000));
        assert.ok(host.restartInstance('nat'), 'the NAT restarts');
      });
      const nat = host.status().nfs.find((n) => n.name === 'nat');
      assert.equal(nat?.restarts, restartsBefore + 1, 'the NAT was restarted once');
      const late = result.intervals.slice(6).reduce((sum, i) => sum + i.sum.bytes, 0);
      assert.ok(late > 0, 'bytes flowed again after the restart');
      const bits = (result.end.sum_received?.bytes ?? 0) * 8;
      console.error(`direct iperf3 10 s with a NAT kill: ${(bits / 10 / 1e9).toFixed(2)} Gbit/s`);
    });
    for (const server of tb.servers) {
      const log = server.output().stdout;
      assert.ok(!log.includes(`request ${LIVE.blockedPort}`), `no request on the denied port reached ${log}`);
      assert.ok(!log.includes(LIVE.clientAddress), 'no server saw the client address');
    }
    const rt = summary.nfs.find((n) => n.name === 'rt');
    assert.ok(
      (rt?.counters.forwarded ?? 0) > 1000,
      `the router forwarded the traffic (${rt?.counters.forwarded})`,
    );
  });

  it('tap: the same chain attached by a TAP device (offloads on) — ping, the spread, a 3 s iperf3 in super-packets', async () => {
    const device = bed.name('tp');
    const summary = await withHost(
      'direct',
      async () => {
        assert.equal(await pings(LIVE.vip, 2), 2, 'ping to the VIP is answered');
        const perBackend = await spread(30);
        assert.equal(perBackend.size, 3, `all three backends served: ${[...perBackend].join(', ')}`);
        const result = await iperf3(3);
        const bits = (result.end.sum_received?.bytes ?? 0) * 8;
        console.error(`tap iperf3 3 s: ${(bits / 3 / 1e9).toFixed(2)} Gbit/s`);
      },
      device,
    );
    assert.ok(
      (summary.ports.vx?.sent ?? 0) > 1000,
      `frames left through the TAP port (${summary.ports.vx?.sent})`,
    );
    // iperf3's stream crossed firewall → NAT → load balancer → router as TCP super-packets, and
    // left whole (the NAT and LB rewrote them; the port wrote their partial checksums again).
    const tap = summary.ports.vx?.counters ?? {};
    assert.ok((tap.rx_super ?? 0) > 100 && (tap.tx_super ?? 0) > 100, JSON.stringify(tap));
    assert.equal(tap.rx_bad_offload, 0);
    const links = (await bed.ip(tb.switch, ['-o', 'link', 'show'])).stdout;
    assert.ok(!links.includes(device), 'the TAP device is gone with the port');
  });

  for (const vnic of ['emulated', 'paravirt'] as const) {
    it(`${vnic}: ping, curl to the VIP, the spread and a 3 s iperf3`, async () => {
      await withHost(vnic, async () => {
        assert.equal(await pings(LIVE.vip, 2), 2, 'ping to the VIP is answered');
        const perBackend = await spread(30);
        assert.equal(perBackend.size, 3, `all three backends served: ${[...perBackend].join(', ')}`);
        const result = await iperf3(3);
        const bits = (result.end.sum_received?.bytes ?? 0) * 8;
        console.error(`${vnic} iperf3 3 s: ${(bits / 3 / 1e9).toFixed(2)} Gbit/s`);
      });
    });
  }
});
