/**
 * Interoperability of the wireguard NF with the reference: wireguard-go (driven by `wg`) in a
 * namespace is the peer, nfvisor's host runs the gateway NF on a VXLAN port, and real `ping`
 * (IPv4 and IPv6) and `iperf3` cross the tunnel between the peer and a host behind the gateway.
 *
 *   ns peer  wg (10.200.0.2, fd00:200::2)      ns sw (a bridge)                root namespace
 *            p 192.0.2.2 ──────────────────┐
 *                                          ├── br ── vx ── u1 (U.2) ══ veth ══ u0 (U.1) ◀── nfvisor
 *   ns in    i 10.77.0.2, fd00:77::2 ──────┘                                  VXLAN port ⇄ [wg]
 *
 * The gateway is one-armed: both its sides are MACs on the bridge that only nfvisor answers
 * (static neighbour entries, no ARP). The peer reaches 192.0.2.1:51820 at the outside MAC; the
 * inside host routes the tunnel subnets via the inside MAC. Steps, in order, each judged by the
 * tools' own exit status and counts:
 *
 * 1. ping v4 and v6 from the peer's tunnel address to the inside host, and back;
 * 2. a packet from the peer with a source outside its allowed IPs is not delivered, and counted;
 *    junk sent to the gateway's port gets no answer at all;
 * 3. nfvisor's byte counters equal `wg show transfer` (exactly: each side counts message bytes);
 * 4. bounded iperf3 transfers through the tunnel: TCP, TCP with 5 and 50 parallel streams, UDP;
 *    large MTU: with the links at 9000 bytes and the tunnel at 8920, unfragmented (DF) pings of
 *    whole 8920-byte packets cross both ways, v4 and v6, and a bounded iperf3 TCP run uses jumbo
 *    segments; one byte more is refused by the peer's kernel ("message too long"), and a 9000-byte
 *    inside packet, which would not fit the gateway's slot encrypted, is answered with ICMP
 *    fragmentation needed giving the tunnel's MTU, which the inside host's ping reports (never sent
 *    truncated); a peer whose path is narrower than its tunnel has its datagrams
 *    fragmented, which the gateway reassembles and delivers (the inside host answers each); the
 *    MTUs are restored afterwards;
 * 5. the peer moves to a new address and port; traffic follows it both ways, and the NF's endpoint
 *    for the peer is the new address:port;
 * 6. a live apply gives the gateway's peer `persistentKeepalive: 1`: the new guest has no session,
 *    and its timers bring the tunnel up by themselves — an initiation wireguard-go answers (its
 *    latest handshake moves), then keepalives that `wg show transfer` counts — with no packet sent
 *    by anyone; then traffic flows on the session the gateway made;
 * 7. key rotation, live: the peer takes a new private key and a live apply gives the gateway its
 *    new public key; the tunnel works again with the new key, and not for the old one;
 * 8. NAT traversal (netns.sh's "behind NAT" part): a router namespace takes over the peer's uplink
 *    and masquerades it with nftables (UDP mappings live 2 s idle); the gateway, with no endpoint
 *    of its own, learns the NAT's address:port (equal to conntrack's mapping) from the peer's
 *    handshake; the peer's persistent keepalive keeps the mapping past its lifetime; when the NAT's
 *    address changes, the mapping changes and the gateway follows the new one.
 *
 * Needs root, iproute2, iputils-ping, iperf3, wireguard-go and wireguard-tools (`wg`), python3,
 * nftables (`nft`) and a kernel with conntrack and NAT (nft masquerade).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan, type HostSummary } from '../../src/host/host.js';
import { requireRoot, requireTools, run, sweepStale, Testbed } from '../../src/testbed/netns.js';
import type { WireguardSnapshot } from '../../nfs/wireguard/index.js';

process.env.NFVISOR_QUIET = '1';
const FAMILY = 'wgi';
const VNI = 51;
const U = `198.19.${(process.pid % 100) + 1}`;
const GW_OUT_MAC = '02:77:67:00:00:01';
const GW_IN_MAC = '02:77:67:00:00:02';
const PEER_MAC = '02:77:67:00:00:0a';
const INSIDE_MAC = '02:77:67:00:00:0b';
const PINGS = 5;

describe('wireguard NF interoperates with wireguard-go', () => {
  const bed = new Testbed(`${FAMILY}${process.pid}`);
  /** A permanent neighbour entry: `address` (v4 or v6) is at `mac` on `dev` in `ns`. */
  const pinNeighbour = (ns: string, address: string, mac: string, dev: string) =>
    bed.ip(ns, [
      ...(address.includes(':') ? ['-6'] : []),
      'neigh',
      'replace',
      address,
      'lladdr',
      mac,
      'dev',
      dev,
      'nud',
      'permanent',
    ]);
  const keyDir = mkdtempSync(join(tmpdir(), 'nfv-wg-'));
  let peerNs = '';
  let insideNs = '';
  let wgDev = '';
  let peerDev = '';
  let peerPublic = '';
  let gatewayPrivate = '';
  let gatewayPublic = '';
  let swNs = '';
  let underlay = { host: '', peer: '' };
  let vxDev = '';
  let insideDev = '';
  let host: Host | null = null;
  let plan: HostPlan | null = null;
  let running: Promise<HostSummary> | null = null;

  const inPeer = (cmd: string, args: string[], timeoutMs?: number) => bed.exec(peerNs, cmd, args, timeoutMs);
  /** Runs ping and returns how many replies came back (ping's exit status is not the verdict; the count is). */
  async function ping(ns: string, args: string[]): Promise<number> {
    return (await pingOutput(ns, args)).received;
  }
  /** …and what it printed: its stdout, or on failure the error with its stderr ("message too long"). */
  async function pingOutput(ns: string, args: string[]): Promise<{ received: number; text: string }> {
    const result = await bed
      .exec(ns, 'ping', args, 30_000)
      .catch((e: unknown) => ({ stdout: (e as Error).message, stderr: '' }));
    return {
      received: Number(/(\d+) (?:packets )?received/.exec(result.stdout)?.[1] ?? 0),
      text: result.stdout,
    };
  }
  const wgStatus = (): WireguardSnapshot => {
    const [snapshot] = host?.snapshotsOf('wg') ?? [];
    return snapshot as WireguardSnapshot;
  };
  /** The NF's status from its snapshots, once `ready` holds (snapshots lag on a loaded machine), or after 10 s. */
  async function snapshotWhen(ready: (s: WireguardSnapshot) => boolean): Promise<WireguardSnapshot> {
    const deadline = Date.now() + 10_000;
    let status = wgStatus();
    while (!(status !== undefined && ready(status)) && Date.now() < deadline) {
      await settle(100);
      status = wgStatus();
    }
    return status;
  }
  const nfCounters = (): Record<string, number> =>
    host?.status().nfs.find((n) => n.name === 'wg')?.counters ?? {};
  const nfDrops = (): Record<string, number> => host?.status().nfs.find((n) => n.name === 'wg')?.drops ?? {};
  const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  before(async () => {
    requireRoot('wireguard-interop.test');
    await requireTools(['ip', 'ping', 'iperf3', 'wireguard-go', 'wg', 'python3', 'nft']);
    await sweepStale(FAMILY);

    gatewayPrivate = (await run('wg', ['genkey'])).stdout.trim();
    gatewayPublic = (await run('sh', ['-c', `echo ${gatewayPrivate} | wg pubkey`])).stdout.trim();
    const peerPrivate = (await run('wg', ['genkey'])).stdout.trim();
    peerPublic = (await run('sh', ['-c', `echo ${peerPrivate} | wg pubkey`])).stdout.trim();
    writeFileSync(join(keyDir, 'peer.key'), `${peerPrivate}\n`, { mode: 0o600 });

    // The switch: underlay veth to the root namespace, a VXLAN device and a bridge.
    peerNs = await bed.addNamespace('peer');
    insideNs = await bed.addNamespace('in');
    const sw = (swNs = await bed.addNamespace('sw'));
    const u = (underlay = await bed.addVethPair('u0', 'u1', sw));
    await bed.ip(undefined, ['link', 'set', u.host, 'mtu', '1600']);
    await bed.ip(sw, ['link', 'set', u.peer, 'mtu', '1600']);
    await bed.addAddress(u.host, `${U}.1/30`);
    await bed.addAddress(u.peer, `${U}.2/30`, sw);
    await bed.disableTxChecksum(sw, u.peer);
    const vx = await bed.addVxlan(sw, {
      suffix: 'vx',
      vni: VNI,
      remote: `${U}.1`,
      local: `${U}.2`,
      dev: u.peer,
    });
    vxDev = vx;
    const br = bed.name('br');
    await bed.ip(sw, ['link', 'add', br, 'type', 'bridge']);
    await bed.ip(sw, ['link', 'set', vx, 'mtu', '1500', 'master', br]);
    await bed.ip(sw, ['link', 'set', br, 'up']);
    const attach = async (ns: string, suffix: string, mac: string): Promise<string> => {
      const [inner, port] = await bed.addVethBetween(`${suffix}i`, ns, `${suffix}s`, sw);
      await bed.ip(ns, ['link', 'set', inner, 'address', mac, 'mtu', '1500']);
      await bed.ip(sw, ['link', 'set', port, 'mtu', '1500', 'master', br]);
      return inner;
    };
    const enableV6 =
      'echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 0 > /proc/sys/net/ipv6/conf/default/disable_ipv6';

    // The peer: outer address on its veth, wireguard-go's device with the tunnel addresses.
    peerDev = await attach(peerNs, 'p', PEER_MAC);
    await bed.exec(peerNs, 'sh', ['-c', enableV6]);
    await bed.addAddress(peerDev, '192.0.2.2/24', peerNs);
    await pinNeighbour(peerNs, '192.0.2.1', GW_OUT_MAC, peerDev);
    wgDev = bed.name('wg');
    const wireguardGo = bed.start(peerNs, 'env', ['WG_PROCESS_FOREGROUND=1', 'wireguard-go', wgDev]);
    for (let i = 0; i < 50; i++) {
      if (
        await bed.ip(peerNs, ['link', 'show', wgDev]).then(
          () => true,
          () => false,
        )
      )
        break;
      if (i === 49) throw new Error(`wireguard-go made no ${wgDev}: ${wireguardGo.output().stderr}`);
      await settle(100);
    }
    await run('ip', [
      'netns',
      'exec',
      peerNs,
      'wg',
      'set',
      wgDev,
      'private-key',
      join(keyDir, 'peer.key'),
      'listen-port',
      '51820',
      'peer',
      gatewayPublic,
      'endpoint',
      '192.0.2.1:51820',
      'allowed-ips',
      '10.77.0.0/24,fd00:77::/64',
    ]);
    await bed.ip(peerNs, ['link', 'set', wgDev, 'mtu', '1420', 'up']);
    await bed.ip(peerNs, ['addr', 'add', '10.200.0.2/24', 'dev', wgDev]);
    await bed.ip(peerNs, ['addr', 'add', '10.201.0.2/32', 'dev', wgDev]); // not in the gateway's allowed IPs
    await bed.ip(peerNs, ['-6', 'addr', 'add', 'fd00:200::2/64', 'dev', wgDev, 'nodad']);
    await bed.ip(peerNs, ['route', 'add', '10.77.0.0/24', 'dev', wgDev]);
    await bed.ip(peerNs, ['-6', 'route', 'add', 'fd00:77::/64', 'dev', wgDev]);

    // The inside host: routes the tunnel subnets via the gateway's inside MAC.
    insideDev = await attach(insideNs, 'i', INSIDE_MAC);
    await bed.exec(insideNs, 'sh', ['-c', enableV6]);
    await bed.addAddress(insideDev, '10.77.0.2/24', insideNs);
    await bed.ip(insideNs, ['-6', 'addr', 'add', 'fd00:77::2/64', 'dev', insideDev, 'nodad']);
    await pinNeighbour(insideNs, '10.77.0.1', GW_IN_MAC, insideDev);
    await pinNeighbour(insideNs, 'fd00:77::1', GW_IN_MAC, insideDev);
    await bed.ip(insideNs, ['route', 'add', '10.200.0.0/16', 'via', '10.77.0.1']);
    await bed.ip(insideNs, ['-6', 'route', 'add', 'fd00:200::/64', 'via', 'fd00:77::1']);

    plan = {
      // Slots of 9024 bytes (a multiple of 64) hold the largest frame of the large-MTU step, an
      // 8920-byte packet encrypted (14 + 20 + 8 + 16 + 8928 padded + 16 = 9002 bytes), but not a
      // 9000-byte inside packet once encrypted (9082): that one is refused as too big.
      pool: { slots: 4096, slotSize: 9024 },
      ringSize: 1024,
      batch: 64,
      ports: {
        vx: {
          kind: 'vxlan',
          options: { bind: { address: `${U}.1` }, remote: { address: `${U}.2` }, vni: VNI },
        },
      },
      nfs: {
        wg: {
          module: builtinModule('wireguard'),
          config: {
            privateKey: gatewayPrivate,
            listenAddress: '192.0.2.1',
            listenPort: 51820,
            outside: { mac: GW_OUT_MAC, nextHopMac: PEER_MAC },
            inside: { mac: GW_IN_MAC, nextHopMac: INSIDE_MAC },
            peers: [
              {
                publicKey: peerPublic,
                endpoint: '192.0.2.2:51820',
                allowedIPs: ['10.200.0.0/24', 'fd00:200::/64'],
              },
            ],
          },
          vnic: 'direct',
          placement: 'isolated',
          replicas: 1,
          heapMb: 64,
          failure: 'fail-closed',
        },
      },
      chains: [{ name: 'wire', from: 'vx', to: 'vx', through: ['wg'] }],
    };
    host = await Host.create(plan);
    running = host.run();
    await settle(300); // the VXLAN socket is bound by now
  });

  after(async () => {
    host?.stop();
    const summary = await running?.catch(() => null);
    await bed.teardown();
    rmSync(keyDir, { recursive: true, force: true });
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
    if (summary) {
      assert.equal(
        summary.received + summary.originated,
        summary.sent + summary.dropped + summary.lost,
        'every packet accounted for, those the gateway made itself too',
      );
      assert.equal(summary.poolFree, summary.poolSlots);
    }
  });

  it('ping v4 from the peer to the inside host and back, the handshake made by wireguard-go', async () => {
    // The first echo request waits for the handshake in wireguard-go; allow a warm-up round.
    let warm = 0;
    for (let i = 0; i < 3 && warm === 0; i++) warm = await ping(peerNs, ['-c', '1', '-W', '3', '10.77.0.2']);
    assert.equal(warm, 1, `the tunnel came up: ${JSON.stringify(nfDrops())}`);
    assert.equal(await ping(peerNs, ['-c', String(PINGS), '-i', '0.2', '-W', '2', '10.77.0.2']), PINGS);
    assert.equal(
      await ping(insideNs, ['-c', String(PINGS), '-i', '0.2', '-W', '2', '10.200.0.2']),
      PINGS,
      'the inside host reaches the peer through the gateway',
    );
    const c = nfCounters();
    assert.ok(c.initiations_received >= 1 && c.responses_sent >= 1, JSON.stringify(c));
    assert.ok(
      c.packets_decrypted >= 2 * PINGS + 1 && c.packets_encrypted >= 2 * PINGS + 1,
      JSON.stringify(c),
    );
  });

  it('ping v6 both ways', async () => {
    assert.equal(
      await ping(peerNs, ['-6', '-c', String(PINGS), '-i', '0.2', '-W', '2', 'fd00:77::2']),
      PINGS,
    );
    assert.equal(
      await ping(insideNs, ['-6', '-c', String(PINGS), '-i', '0.2', '-W', '2', 'fd00:200::2']),
      PINGS,
    );
  });

  it('does not deliver a packet whose source is outside the peer’s allowed IPs, and counts it', async () => {
    const before = nfDrops().source_not_allowed ?? 0;
    assert.equal(await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '1', '-I', '10.201.0.2', '10.77.0.2']), 0);
    assert.equal((nfDrops().source_not_allowed ?? 0) - before, 3, 'each spoofed packet was dropped');
    // wireguard-go starts a new handshake 15 s after data it sent got no answer (the spoofed pings);
    // an answered ping cancels that, as any authenticated packet received does, so no handshake of
    // its own crosses the byte counts compared below.
    assert.equal(await ping(peerNs, ['-c', '1', '-W', '2', '10.77.0.2']), 1);
  });

  it('answers nothing to unauthenticated messages: a junk initiation, a junk data message', async () => {
    const before = nfDrops();
    // From a UDP socket in the peer namespace: one 148-byte "initiation" of random bytes and one
    // 48-byte data message for a made-up receiver; then wait a second for any answer.
    const probe = [
      'import os, socket',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      's.bind(("0.0.0.0", 40404))',
      's.settimeout(1.0)',
      's.sendto(bytes([1, 0, 0, 0]) + os.urandom(144), ("192.0.2.1", 51820))',
      's.sendto(bytes([4, 0, 0, 0]) + os.urandom(44), ("192.0.2.1", 51820))',
      'try:',
      '    data, addr = s.recvfrom(2048)',
      '    print("answered", len(data))',
      'except socket.timeout:',
      '    print("silence")',
    ].join('\n');
    const out = await inPeer('python3', ['-c', probe], 10_000);
    assert.equal(out.stdout.trim(), 'silence');
    const after = nfDrops();
    assert.equal((after.bad_mac1 ?? 0) - (before.bad_mac1 ?? 0), 1, JSON.stringify(after));
    assert.equal((after.unknown_receiver ?? 0) - (before.unknown_receiver ?? 0), 1, JSON.stringify(after));
  });

  it('counts the same bytes as `wg show transfer`', async () => {
    await settle(1200); // the last replies are in, and a snapshot was taken since
    // Should wireguard-go still start a handshake of its own (the answered ping above cancels the
    // one the spoofed pings set up), `wg show` may count its 148 bytes before the gateway has them:
    // the two sides are read again until they agree, for at most 5 s.
    let line: string;
    let c: Record<string, number>;
    for (const deadline = Date.now() + 5000; ; await settle(200)) {
      line = (await inPeer('wg', ['show', wgDev, 'transfer'])).stdout.trim();
      c = nfCounters();
      const [, rx, tx] = line.split('\t');
      if ((Number(rx) === c.tx_bytes && Number(tx) === c.rx_bytes) || Date.now() > deadline) break;
    }
    const [key, peerRx, peerTx] = line.split('\t');
    assert.equal(key, gatewayPublic);
    assert.equal(Number(peerRx), c.tx_bytes, `what the gateway sent is what the peer received (${line})`);
    const wg = host?.status().nfs.find((n) => n.name === 'wg');
    assert.equal(
      Number(peerTx),
      c.rx_bytes,
      `what the peer sent is what the gateway authenticated (${line}; the gateway's drops ` +
        `${JSON.stringify(nfDrops())}, restarts ${wg?.restarts}, host drops ${JSON.stringify(host?.status().hostDrops)})`,
    );
    const [status] = (await snapshotWhen((s) => s.peers[0].txBytes === c.tx_bytes)).peers;
    assert.equal(status.publicKey, peerPublic);
    assert.equal(status.txBytes, c.tx_bytes);
  });

  it('carries a bounded iperf3 TCP transfer through the tunnel', async () => {
    const server = bed.start(insideNs, 'iperf3', ['-s', '-1', '-B', '10.77.0.2', '-p', '5201']);
    await settle(500); // iperf3 buffers its "Server listening" line when not on a terminal
    const client = await inPeer(
      'iperf3',
      ['-c', '10.77.0.2', '-p', '5201', '-t', '3', '-J', '--connect-timeout', '5000'],
      30_000,
    );
    const report = JSON.parse(client.stdout) as {
      end: { sum_received: { bytes: number; bits_per_second: number }; sum_sent: { retransmits?: number } };
    };
    assert.ok(
      report.end.sum_received.bytes > 1_000_000,
      `iperf3 moved ${report.end.sum_received.bytes} bytes`,
    );
    console.log(
      `# iperf3 through the wireguard NF: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s, ` +
        `${report.end.sum_sent.retransmits ?? '?'} retransmits`,
    );
    await server.exited;
  });

  /** A bounded iperf3 client run from the peer to the inside host; returns its JSON report. */
  async function iperf(args: string[]): Promise<{
    end: {
      sum_received?: { bytes: number };
      sum?: { bytes: number; lost_percent: number; packets: number };
    };
  }> {
    const server = bed.start(insideNs, 'iperf3', ['-s', '-1', '-B', '10.77.0.2', '-p', '5202']);
    await settle(500);
    try {
      const client = await inPeer(
        'iperf3',
        ['-c', '10.77.0.2', '-p', '5202', '-t', '2', '-J', '--connect-timeout', '5000', ...args],
        60_000,
      );
      return JSON.parse(client.stdout) as Awaited<ReturnType<typeof iperf>>;
    } finally {
      await server.exited;
    }
  }

  it('carries 5 and 50 parallel TCP streams, and a UDP stream, through the tunnel', async () => {
    for (const streams of [5, 50]) {
      const report = await iperf(['-P', String(streams)]);
      assert.ok(
        (report.end.sum_received?.bytes ?? 0) > 100_000,
        `${streams} streams moved ${report.end.sum_received?.bytes} bytes`,
      );
    }
    // UDP at a modest rate: datagrams of 1200 bytes, bounded by rate and time.
    const udp = await iperf(['-u', '-b', '20M', '-l', '1200']);
    const sum = udp.end.sum;
    assert.ok(sum && sum.packets > 1000, `UDP: ${JSON.stringify(sum)}`);
    assert.ok(sum.lost_percent < 20, `UDP loss ${sum.lost_percent} %`);
    console.log(
      `# iperf3 UDP through the wireguard NF: ${sum.packets} datagrams, ${sum.lost_percent.toFixed(2)} % lost`,
    );
  });

  it('carries packets at a large MTU end to end, and refuses bigger ones without corrupting them', async () => {
    // Jumbo links: 9000 bytes on the bridge's side (the peer's uplink, the inside LAN, the VXLAN
    // device), 9100 on the underlay (VXLAN adds 50), 8920 in the tunnel (9000 − 80, as wg-quick
    // picks). Restored afterwards, inner links first (a VXLAN device may not outgrow its underlay).
    const TUNNEL_MTU = 8920;
    /** ping arguments: `count` echoes of `size` bytes with Don't Fragment set (never fragmented locally). */
    const df = (size: number, count: number, to: string) =>
      `-M do -s ${size} -c ${count} -i 0.2 -W 2 ${to}`.split(' ');
    const links: [ns: string | undefined, dev: string, jumbo: number, normal: number][] = [
      [undefined, underlay.host, 9100, 1600],
      [swNs, underlay.peer, 9100, 1600],
      [swNs, vxDev, 9000, 1500],
      [swNs, bed.name('ps'), 9000, 1500],
      [swNs, bed.name('is'), 9000, 1500],
      [peerNs, peerDev, 9000, 1500],
      [insideNs, insideDev, 9000, 1500],
      [peerNs, wgDev, TUNNEL_MTU, 1420],
    ];
    try {
      for (const [ns, dev, jumbo] of links) await bed.ip(ns, ['link', 'set', dev, 'mtu', String(jumbo)]);
      const big = TUNNEL_MTU - 28; // ICMP payload of a whole 8920-byte IPv4 packet
      const big6 = TUNNEL_MTU - 48;
      const before = nfCounters();
      for (const [ns, to, size] of [
        [peerNs, '10.77.0.2', big],
        [insideNs, '10.200.0.2', big],
        [peerNs, 'fd00:77::2', big6],
        [insideNs, 'fd00:200::2', big6],
      ] as const) {
        const family = to.includes(':') ? ['-6'] : [];
        const { received, text } = await pingOutput(ns, [...family, ...df(size, 3, to)]);
        assert.equal(
          received,
          3,
          `${size}-byte echoes to ${to}, not fragmented: ${text} ${JSON.stringify(nfDrops())}`,
        );
      }
      const after = nfCounters();
      // 4 × 3 requests, each answered: 12 packets each way through the NF, every one whole.
      assert.ok(after.packets_decrypted - before.packets_decrypted >= 12, JSON.stringify(after));
      assert.ok(after.packets_encrypted - before.packets_encrypted >= 12, JSON.stringify(after));
      // Each of those messages carried a whole 8920-byte packet: 16 + 8920 (+ padding) + 16 bytes.
      assert.ok(
        after.rx_bytes - before.rx_bytes >= 12 * (TUNNEL_MTU + 32),
        `jumbo messages arrived (${before.rx_bytes} → ${after.rx_bytes} bytes)`,
      );
      assert.ok(
        after.tx_bytes - before.tx_bytes >= 12 * (TUNNEL_MTU + 32),
        `jumbo messages left (${before.tx_bytes} → ${after.tx_bytes} bytes)`,
      );

      // One byte more than the tunnel carries: the peer's kernel refuses it at wireguard-go's MTU,
      // as Linux refuses any DF packet bigger than its route's MTU; nothing reaches the gateway.
      const refused = await pingOutput(peerNs, df(big + 1, 2, '10.77.0.2'));
      assert.equal(refused.received, 0);
      assert.match(refused.text, new RegExp(`message too long, mtu=${TUNNEL_MTU}`));
      assert.equal(nfCounters().packets_decrypted, after.packets_decrypted, 'nothing crossed the tunnel');
      // A whole 9000-byte packet from the inside LAN fits the gateway's slot as it arrives but not
      // once encrypted: the gateway answers ICMP fragmentation needed with the largest inner packet
      // it carries in a 9024-byte slot ((9024 − 42 − 16 − 16) / 16 × 16 = 8944), as a router would;
      // the inside host's kernel takes the answer (its checksums and quote must be right) and ping
      // reports that MTU. Nothing is sent truncated.
      const answered = nfCounters().too_big_answered ?? 0;
      const narrow = await pingOutput(insideNs, df(9000 - 28, 3, '10.200.0.2'));
      assert.equal(narrow.received, 0, 'no reply');
      assert.match(narrow.text, /mtu ?= ?8944/, narrow.text);
      assert.ok((nfCounters().too_big_answered ?? 0) > answered, 'the gateway counted its answer');
      assert.equal(nfCounters().packets_encrypted, after.packets_encrypted, 'none was encrypted');

      // A bounded TCP transfer at that MTU: segments of the tunnel's size (MSS 8880 less options).
      const report = (await iperf([])) as Awaited<ReturnType<typeof iperf>> & {
        start?: { tcp_mss_default?: number };
      };
      assert.ok(
        (report.end.sum_received?.bytes ?? 0) > 1_000_000,
        `iperf3 at MTU ${TUNNEL_MTU} moved ${report.end.sum_received?.bytes} bytes`,
      );
      assert.ok(
        (report.start?.tcp_mss_default ?? 0) > 8000,
        `the connection's MSS is a jumbo one: ${report.start?.tcp_mss_default}`,
      );

      // The peer's uplink back at 1500 under its 8920-byte tunnel: its kernel fragments the UDP
      // datagrams (3000-byte pings: 3080 bytes of UDP, 3 fragments each). The gateway reassembles
      // them, as a kernel does before the socket, and delivers the echo requests; the inside host
      // answers each whole one, and the gateway encrypts the answers — which, 3 kB each, then do not
      // fit the peer's 1500-byte link (this path is narrow one way only, on purpose).
      await bed.ip(peerNs, ['link', 'set', peerDev, 'mtu', '1500']);
      const dropsBefore = nfDrops();
      const countersBefore = nfCounters();
      assert.equal(await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '1', '-s', '3000', '10.77.0.2']), 0);
      const dropsAfter = nfDrops();
      const countersAfter = nfCounters();
      const grew = (name: string): number => (countersAfter[name] ?? 0) - (countersBefore[name] ?? 0);
      const detail = JSON.stringify({ dropsAfter, countersAfter });
      assert.equal(grew('fragments_reassembled'), 3, detail);
      assert.equal(
        (dropsAfter.fragment ?? 0) - (dropsBefore.fragment ?? 0),
        6,
        `two fragments held per message: ${detail}`,
      );
      assert.ok(grew('packets_decrypted') >= 3, `the requests were decrypted: ${detail}`);
      assert.ok(grew('packets_encrypted') >= 3, `the inside host answered each whole request: ${detail}`);
      assert.equal(dropsAfter.decrypt_failed ?? 0, dropsBefore.decrypt_failed ?? 0);
    } finally {
      for (const [ns, dev, , normal] of [...links].reverse())
        await bed.ip(ns, ['link', 'set', dev, 'mtu', String(normal)]).catch(() => undefined);
    }
  });

  it('follows the peer to a new address and port (roaming)', async () => {
    await bed.ip(peerNs, ['addr', 'del', '192.0.2.2/24', 'dev', peerDev]);
    await bed.ip(peerNs, ['addr', 'add', '192.0.2.3/24', 'dev', peerDev]);
    // Removing the device's last IPv4 address flushed its neighbour table, the static entry too.
    await pinNeighbour(peerNs, '192.0.2.1', GW_OUT_MAC, peerDev);
    await inPeer('wg', ['set', wgDev, 'listen-port', '51821']);
    const moved = await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']);
    const why = async () =>
      `${JSON.stringify(nfDrops())} ${JSON.stringify(nfCounters())} ${(await inPeer('wg', ['show', wgDev])).stdout}`;
    assert.equal(moved, 3, `from the new address: ${await why()}`);
    assert.equal(await ping(insideNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.200.0.2']), 3, 'back to it');
    const status = await snapshotWhen((s) => s.peers[0].endpoint === '192.0.2.3:51821');
    assert.equal(status.peers[0].endpoint, '192.0.2.3:51821');
    assert.ok((nfCounters().endpoint_changes ?? 0) >= 1);
  });

  it('brings the tunnel up and keeps it alive by itself (persistentKeepalive, live apply)', async () => {
    assert.ok(host && plan);
    const wgShow = async (what: string) =>
      (await inPeer('wg', ['show', wgDev, what])).stdout.trim().split('\t');
    const [, handshakeBefore] = await wgShow('latest-handshakes');
    const [, rxBefore] = await wgShow('transfer');
    await settle(1100); // wg's handshake times are in whole seconds
    const nf = plan.nfs.wg;
    const config = nf.config as { peers: Record<string, unknown>[] };
    const applied = await host.apply({
      ...plan,
      nfs: {
        wg: {
          ...nf,
          config: {
            ...config,
            // The peer roamed in the test before: the new guest starts from the configuration.
            peers: [{ ...config.peers[0], endpoint: '192.0.2.3:51821', persistentKeepalive: 1 }],
          },
        },
      },
    });
    assert.ok(applied.applied, JSON.stringify(applied.diff));
    // Nobody sends anything for 3.5 s: whatever crosses the tunnel, the gateway's timers made.
    await settle(3500);
    const [, handshakeAfter] = await wgShow('latest-handshakes');
    const [, rxAfter] = await wgShow('transfer');
    const c = nfCounters();
    assert.ok(
      Number(handshakeAfter) > Number(handshakeBefore),
      `wireguard-go completed a handshake the gateway started (${handshakeBefore} → ${handshakeAfter}; ${JSON.stringify(c)})`,
    );
    assert.ok(c.timer_handshakes >= 1 && c.initiations_sent >= 1, JSON.stringify(c));
    assert.ok(c.keepalives_sent >= 3, `a keepalive a second: ${JSON.stringify(c)}`);
    // An initiation (148 bytes) and keepalives (32 bytes each) reached wireguard-go and were counted there.
    assert.ok(
      Number(rxAfter) - Number(rxBefore) >= 148 + 3 * 32,
      `wg show transfer: ${rxBefore} → ${rxAfter}`,
    );
    assert.equal(
      await ping(insideNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.200.0.2']),
      3,
      'traffic flows on the session the gateway made',
    );
  });

  it('rotates the peer’s key live: the new key works, the old one no longer does', async () => {
    assert.ok(host && plan);
    const newPrivate = (await run('wg', ['genkey'])).stdout.trim();
    const newPublic = (await run('sh', ['-c', `echo ${newPrivate} | wg pubkey`])).stdout.trim();
    const current = host.reconfigurable().plan.nfs.wg;
    const config = current.config as { peers: Record<string, unknown>[] };
    const applied = await host.apply({
      ...host.reconfigurable().plan,
      nfs: {
        wg: { ...current, config: { ...config, peers: [{ ...config.peers[0], publicKey: newPublic }] } },
      },
    });
    assert.ok(applied.applied, JSON.stringify(applied.diff));
    // The gateway now knows only the new key: the peer, still on the old one, cannot get through.
    const before = nfCounters();
    assert.equal(
      await ping(peerNs, ['-c', '2', '-i', '0.3', '-W', '1', '10.77.0.2']),
      0,
      'the old key is refused',
    );
    writeFileSync(join(keyDir, 'peer.key'), `${newPrivate}\n`, { mode: 0o600 });
    await inPeer('wg', ['set', wgDev, 'private-key', join(keyDir, 'peer.key')]);
    let replies = 0;
    for (let i = 0; i < 4 && replies === 0; i++)
      replies = await ping(peerNs, ['-c', '1', '-W', '3', '10.77.0.2']);
    assert.equal(
      replies,
      1,
      `the new key works: ${JSON.stringify(nfDrops())} ${JSON.stringify(nfCounters())}`,
    );
    assert.equal(await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']), 3);
    const after = nfCounters();
    assert.ok(after.handshakes_completed > (before.handshakes_completed ?? 0), JSON.stringify(after));
    assert.equal(
      (await snapshotWhen((s) => s.peers[0].publicKey === newPublic)).peers[0].publicKey,
      newPublic,
    );
  });

  it('reaches the peer behind a NAT, and follows it when the NAT’s mapping changes', async () => {
    assert.ok(host && plan);
    // The gateway as for a road warrior: no endpoint, no keepalive of its own; it learns where the
    // peer is from the peer's handshake (a live apply: the new guest starts with no session).
    const current = host.reconfigurable().plan.nfs.wg;
    const config = current.config as { peers: Record<string, unknown>[] };
    const applied = await host.apply({
      ...host.reconfigurable().plan,
      nfs: {
        wg: {
          ...current,
          config: { ...config, peers: [{ ...config.peers[0], endpoint: '', persistentKeepalive: 0 }] },
        },
      },
    });
    assert.ok(applied.applied, JSON.stringify(applied.diff));

    // A NAT router takes over the peer's uplink (its veth, with the MAC the gateway sends to) as
    // 192.0.2.4; the peer sits behind it on 172.31.0.2. nftables masquerades its UDP to ports
    // 40000–40999, and UDP mappings expire after 2 s idle (30 s and 120 s by default).
    const natNs = await bed.addNamespace('nat');
    const natOut = peerDev;
    await bed.ip(peerNs, ['link', 'set', natOut, 'netns', natNs]);
    await bed.ip(natNs, ['link', 'set', natOut, 'up']);
    const outerAddress = async (address: string) => {
      await bed.ip(natNs, ['addr', 'add', `${address}/24`, 'dev', natOut]);
      await pinNeighbour(natNs, '192.0.2.1', GW_OUT_MAC, natOut);
    };
    await outerAddress('192.0.2.4');
    const [lanPeer, lanNat] = await bed.addVethBetween('pn', peerNs, 'np', natNs);
    await bed.addAddress(lanPeer, '172.31.0.2/24', peerNs);
    await bed.addAddress(lanNat, '172.31.0.1/24', natNs);
    await bed.ip(peerNs, ['route', 'add', 'default', 'via', '172.31.0.1']);
    await bed.exec(natNs, 'nft', [
      `table ip ${bed.name('nat')} { chain post { type nat hook postrouting priority srcnat; policy accept; ` +
        `ip saddr 172.31.0.0/24 oifname "${natOut}" meta l4proto udp masquerade to :40000-40999; }; }`,
    ]);
    await bed.exec(natNs, 'sh', [
      '-c',
      'echo 1 > /proc/sys/net/ipv4/ip_forward && cd /proc/sys/net/netfilter && ' +
        'echo 2 > nf_conntrack_udp_timeout && echo 2 > nf_conntrack_udp_timeout_stream',
    ]);
    const listenPort = (await inPeer('wg', ['show', wgDev, 'listen-port'])).stdout.trim();
    /** The NAT's mapping for the peer's tunnel socket: the external address:port conntrack gave it,
     *  and the seconds it has left (-1: no mapping). */
    const mapping = async (): Promise<{ external: string; ttl: number }> => {
      const table = (await bed.exec(natNs, 'cat', ['/proc/net/nf_conntrack'])).stdout;
      const line = table
        .split('\n')
        .find((l) => l.includes(`src=172.31.0.2 dst=192.0.2.1 sport=${listenPort} dport=51820`));
      const reply = / src=192\.0\.2\.1 dst=([\d.]+) sport=51820 dport=(\d+)/.exec(line ?? '');
      return {
        external: reply ? `${reply[1]}:${reply[2]}` : `none in:\n${table}`,
        ttl: Number(/^ipv4\s+\d+\s+udp\s+17\s+(\d+)\s/.exec(line ?? '')?.[1] ?? -1),
      };
    };

    // The peer (wireguard-go) forgets its old session and keeps the NAT open: persistent keepalive 1 s.
    await inPeer('wg', ['set', wgDev, 'peer', gatewayPublic, 'remove']);
    await inPeer('wg', [
      ...['set', wgDev, 'peer', gatewayPublic, 'endpoint', '192.0.2.1:51820'],
      ...['allowed-ips', '10.77.0.0/24,fd00:77::/64', 'persistent-keepalive', '1'],
    ]);
    const why = async () =>
      `${JSON.stringify(nfDrops())} ${JSON.stringify(nfCounters())} ${(await inPeer('wg', ['show', wgDev])).stdout}`;
    let warm = 0;
    for (let i = 0; i < 3 && warm === 0; i++) warm = await ping(peerNs, ['-c', '1', '-W', '3', '10.77.0.2']);
    assert.equal(warm, 1, `the tunnel came up through the NAT: ${await why()}`);
    assert.equal(await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']), 3);
    assert.equal(await ping(insideNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.200.0.2']), 3, 'and back');
    const { external: first, ttl } = await mapping();
    assert.match(first, /^192\.0\.2\.4:40\d\d\d$/, 'the NAT rewrote the source to its own address:port');
    let status = await snapshotWhen((s) => s.peers[0].endpoint === first);
    assert.equal(status.peers[0].endpoint, first, 'the gateway sees the NAT’s address:port');

    // Idle twice as long as the mapping lives: only the peer's keepalives cross the NAT, and they
    // keep the mapping; the inside host still reaches the peer on it.
    assert.ok(ttl >= 0 && ttl <= 2, `unrefreshed, the mapping would be gone in ${ttl} s`);
    await settle(4000);
    assert.equal((await mapping()).external, first, 'the mapping lived on');
    assert.equal(await ping(insideNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.200.0.2']), 3, 'after idling');

    // The NAT's address changes: its masquerade mappings go with the old address, and the peer's
    // next packet (a keepalive within a second) leaves from 192.0.2.5; the gateway follows it.
    const changes = nfCounters().endpoint_changes ?? 0;
    await bed.ip(natNs, ['addr', 'del', '192.0.2.4/24', 'dev', natOut]);
    await outerAddress('192.0.2.5');
    status = await snapshotWhen((s) => s.peers[0].endpoint.startsWith('192.0.2.5:'));
    const second = (await mapping()).external;
    assert.match(second, /^192\.0\.2\.5:40\d\d\d$/);
    assert.equal(status.peers[0].endpoint, second, `the gateway follows the new mapping: ${await why()}`);
    assert.ok((nfCounters().endpoint_changes ?? 0) > changes, JSON.stringify(nfCounters()));
    assert.equal(
      await ping(insideNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.200.0.2']),
      3,
      'to the new mapping',
    );
    assert.equal(await ping(peerNs, ['-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2']), 3, 'and from it');
  });
});
