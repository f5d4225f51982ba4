/**
 * `npm run bench -- live` (root): real traffic through nfvisor against the Linux kernel doing the
 * same job, measured in the same run.
 *
 * - nfvisor: the live testbed (src/testbed/live-testbed.ts) — iperf3 in the client namespace, the
 *   chain firewall → NAT → load balancer → router in this process over one VXLAN tunnel or one
 *   TAP device, the iperf3 server in a backend namespace — with the guests isolated in `direct`
 *   mode and inline.
 * - kernel: a router namespace between a client and a server namespace (veths), forwarding with
 *   nftables: a filter rule (drop TCP 8080), DNAT of the VIP to the server and masquerade — the
 *   same translation the chain does, without the tunnel.
 *
 * Measured: iperf3 TCP (Gbit/s, one stream) at MTU 1500 and 9000, and UDP with 18-byte payloads,
 * 64-byte frames on the wire (packets/s received by the server, offered as fast as one iperf3
 * sends — on a loaded 2-core machine the sender itself is the limit, see the sent column). The
 * ratio is nfvisor ÷ kernel.
 * Writes bench/results/live.md. Every run is bounded (iperf3 -t, command timeouts) and the
 * namespaces are removed at the end, also when a step fails.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { Placement, VnicMode } from '../src/host/guest-protocol.js';
import { builtinModule, Host, type HostPlan, type NfPlan } from '../src/host/host.js';
import { addonUnavailableReason, loadNativeAddon } from '../src/io/native-addon.js';
import {
  attachTap,
  LIVE,
  liveNfConfigs,
  liveTestbedUp,
  type LiveTestbed,
} from '../src/testbed/live-testbed.js';
import { isRoot, requireTools, sweepStale, Testbed } from '../src/testbed/netns.js';

const SECONDS = 5;
const FAMILY = 'nfb';
/** UDP payload for 64-byte frames on the wire: 64 − 4 (FCS) − 14 − 20 − 8. */
const UDP_PAYLOAD_64B = 18;
/** The kernel path's addresses (its own namespaces, like the live testbed's overlay). */
const K = { client: '10.78.0.2', routerIn: '10.78.0.1', routerOut: '10.78.1.1', server: '10.78.1.11' };

interface Row {
  path: string;
  tcpGbps: number;
  tcpRetransmits: number;
  udpSentPps: number;
  udpReceivedPps: number;
  note: string;
}

interface Iperf3Json {
  error?: string;
  end: {
    sum_sent?: { bytes: number; seconds: number; packets?: number; retransmits?: number };
    sum_received?: { bytes: number; seconds: number; packets?: number; lost_packets?: number };
  };
}

async function iperf3(bed: Testbed, ns: string, target: string, udp: boolean): Promise<Iperf3Json> {
  const args = [
    '-c',
    target,
    '-p',
    String(LIVE.iperfPort),
    '-t',
    String(SECONDS),
    '-J',
    '--connect-timeout',
    '10000',
  ];
  if (udp) args.push('-u', '-b', '0', '-l', String(UDP_PAYLOAD_64B));
  const out = await bed
    .exec(ns, 'iperf3', args, (SECONDS + 25) * 1000)
    .then((r) => r.stdout)
    .catch((e: unknown) => String((e as { stdout?: string }).stdout ?? (e as Error).message));
  try {
    return JSON.parse(out) as Iperf3Json;
  } catch {
    return { error: out.slice(0, 300), end: {} };
  }
}

async function measure(
  bed: Testbed,
  ns: string,
  target: string,
  path: string,
  withUdp: boolean,
): Promise<Row> {
  const tcp = await iperf3(bed, ns, target, false);
  const udp: Iperf3Json = withUdp ? await iperf3(bed, ns, target, true) : { end: {} };
  const received = udp.end.sum_received;
  const sent = udp.end.sum_sent;
  const row: Row = {
    path,
    tcpGbps: tcp.error
      ? 0
      : ((tcp.end.sum_received?.bytes ?? 0) * 8) / (tcp.end.sum_received?.seconds ?? 1) / 1e9,
    tcpRetransmits: tcp.end.sum_sent?.retransmits ?? 0,
    udpSentPps: udp.error || !sent ? 0 : (sent.packets ?? 0) / sent.seconds,
    udpReceivedPps:
      udp.error || !received
        ? 0
        : ((received.packets ?? 0) - (received.lost_packets ?? 0)) / received.seconds,
    note: [tcp.error && `TCP: ${tcp.error}`, udp.error && `UDP: ${udp.error}`].filter(Boolean).join('; '),
  };
  console.log(
    `  ${path.padEnd(44)} TCP ${row.tcpGbps.toFixed(2)} Gbit/s (${row.tcpRetransmits} retr)` +
      (withUdp
        ? `  UDP 64 B ${(row.udpReceivedPps / 1e3).toFixed(0)} kpps received of ${(row.udpSentPps / 1e3).toFixed(0)} kpps sent`
        : '') +
      (row.note ? `  ${row.note}` : ''),
  );
  return row;
}

function livePlan(
  tb: LiveTestbed,
  vnic: VnicMode,
  placement: Placement,
  mtu: number,
  tapDevice: string | null,
): HostPlan {
  const c = liveNfConfigs();
  const nf = (name: string, config: unknown): NfPlan => ({
    module: builtinModule(name),
    config,
    vnic,
    placement,
    replicas: 1,
    heapMb: 128,
    failure: 'fail-closed',
  });
  return {
    pool: { slots: 8192, slotSize: mtu > 1500 ? 9216 : 2048 },
    ringSize: 1024,
    batch: 64,
    ports: {
      vx:
        tapDevice !== null
          ? { kind: 'tap', options: { device: tapDevice } }
          : {
              kind: 'vxlan',
              options: {
                bind: { address: tb.bind },
                remote: { address: tb.remote },
                vni: tb.vni,
                slots: 4096,
                receiveBufferSize: 16 << 20,
              },
            },
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

async function nfvisorRows(bed: Testbed, mtu: number): Promise<Row[]> {
  const underlay = `198.19.${100 + ((process.pid + (mtu > 1500 ? 1 : 0)) % 150)}`;
  const tb = await liveTestbedUp(bed, { underlay, mtu });
  const rows: Row[] = [];
  for (const [vnic, placement, attachment] of [
    ['direct', 'isolated', 'VXLAN'],
    ['direct', 'inline', 'VXLAN'],
    ['direct', 'isolated', 'TAP'],
    ['direct', 'inline', 'TAP'],
  ] as const) {
    if (attachment === 'TAP' && loadNativeAddon() === null) continue; // no TAP without the addon
    const tap = attachment === 'TAP' ? bed.name('tp') : null;
    const host = await Host.create(livePlan(tb, vnic, placement, mtu, tap));
    const running = host.run();
    let row: Row;
    try {
      await host.opened;
      if (tap !== null) await attachTap(bed, tb, tap, mtu);
      await new Promise((resolve) => setTimeout(resolve, 500));
      row = await measure(
        bed,
        tb.client,
        LIVE.vip,
        `nfvisor ${attachment}, ${vnic} ${placement}, MTU ${mtu}`,
        mtu <= 1500,
      );
    } finally {
      host.stop();
    }
    const s = await running;
    const drops = [
      ...Object.entries(s.hostDrops),
      ...s.nfs.flatMap((n) =>
        Object.entries(n.drops).map(([k, v]): [string, number] => [`${n.name}.${k}`, v]),
      ),
    ]
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    row.note = [
      row.note,
      `host: ${s.received} in, ${s.sent} out, latency p50 ${(s.latencyUs.p50 / 1000).toFixed(2)} ms` +
        (drops ? `, drops: ${drops}` : ''),
    ]
      .filter(Boolean)
      .join('; ');
    rows.push(row);
  }
  return rows;
}

/** client ══ router (nftables filter + DNAT + masquerade) ══ server, all veths. */
async function kernelRow(bed: Testbed, mtu: number): Promise<Row> {
  const client = await bed.addNamespace('kc');
  const router = await bed.addNamespace('kr');
  const server = await bed.addNamespace('ks');
  const [c0, r0] = await bed.addVethBetween('kc0', client, 'kr0', router);
  const [r1, s0] = await bed.addVethBetween('kr1', router, 'ks0', server);
  for (const [ns, dev] of [
    [client, c0],
    [router, r0],
    [router, r1],
    [server, s0],
  ])
    await bed.ip(ns, ['link', 'set', dev, 'mtu', String(mtu)]);
  await bed.addAddress(c0, `${K.client}/24`, client);
  await bed.addAddress(r0, `${K.routerIn}/24`, router);
  await bed.addAddress(r1, `${K.routerOut}/24`, router);
  await bed.addAddress(s0, `${K.server}/24`, server);
  await bed.ip(client, ['route', 'add', 'default', 'via', K.routerIn]);
  // The server has no route back to the client's subnet: only masquerade makes replies possible.
  await bed.exec(router, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
  const rules = `
table inet live_filter {
  chain forward { type filter hook forward priority 0; policy accept; tcp dport ${LIVE.blockedPort} drop; }
}
table ip live_nat {
  chain prerouting { type nat hook prerouting priority -100; ip daddr ${LIVE.vip} dnat to ${K.server}; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${r1}" masquerade; }
}`;
  await bed.exec(router, 'sh', ['-c', `nft -f - <<'EOF'\n${rules}\nEOF`]);
  const iperfServer = bed.start(server, 'iperf3', ['-s', '--forceflush', '-p', String(LIVE.iperfPort)]);
  await iperfServer.waitFor(/Server listening/, 10_000);
  return measure(bed, client, LIVE.vip, `kernel veth router, nftables, MTU ${mtu}`, mtu <= 1500);
}

function table(rows: Row[], kernel: Row): string {
  const ratio = (a: number, b: number): string => (a && b ? `${(a / b).toFixed(2)}×` : '–');
  const kpps = (pps: number): string => (pps ? (pps / 1e3).toFixed(0) : '–');
  const lines = [
    '| path | TCP Gbit/s | ratio | TCP retransmits | UDP 64 B sent kpps | UDP 64 B received kpps | ratio | notes |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of [...rows, kernel]) {
    lines.push(
      `| ${r.path} | ${r.tcpGbps.toFixed(2)} | ${ratio(r.tcpGbps, kernel.tcpGbps)} | ${r.tcpRetransmits} | ` +
        `${kpps(r.udpSentPps)} | ${kpps(r.udpReceivedPps)} | ${ratio(r.udpReceivedPps, kernel.udpReceivedPps)} | ${r.note} |`,
    );
  }
  return lines.join('\n') + '\n';
}

export async function benchLive(): Promise<void> {
  console.log(
    `live: iperf3 through nfvisor (VXLAN) and through the kernel (nftables), ${SECONDS} s per figure`,
  );
  if (!isRoot()) {
    console.log('  skipped: needs root (network namespaces)');
    return;
  }
  await requireTools(['ip', 'iperf3', 'nft', 'python3']);
  await sweepStale(FAMILY);
  const tables: string[] = [];
  for (const mtu of [1500, 9000]) {
    const bed = new Testbed(`${FAMILY}${process.pid}`);
    try {
      const rows = await nfvisorRows(bed, mtu);
      tables.push(table(rows, await kernelRow(bed, mtu)));
    } finally {
      await bed.teardown();
    }
  }
  const md = [
    '# Live traffic through nfvisor vs the Linux kernel',
    '',
    `${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, ` +
      `load average ${loadavg()[0].toFixed(1)} at the end (the machine is shared with other work: figures are noisy). ` +
      `iperf3, ${SECONDS} s per figure, one stream; UDP with ${UDP_PAYLOAD_64B}-byte payloads (64-byte frames), ` +
      'offered as fast as one iperf3 sends; ratio = nfvisor ÷ kernel. nfvisor ports: ' +
      (loadNativeAddon() !== null
        ? 'VXLAN with recvmmsg/sendmmsg, TAP in batches (native addon).'
        : `node:dgram, no TAP (native addon not loaded: ${addonUnavailableReason()}).`),
    '',
    ...tables,
    'nfvisor path: client → bridge → kernel VXLAN → UDP → nfvisor (fw → NAT → LB → router) → UDP → kernel VXLAN → ' +
      'bridge → server, and back the same way (TAP: bridge → TAP device → nfvisor → TAP device → bridge). Kernel path: client → veth → router namespace (nftables filter, DNAT, ' +
      'masquerade) → veth → server, no tunnel.',
    '',
  ].join('\n');
  writeFileSync(new URL('../../bench/results/live.md', import.meta.url), md);
  console.log('  wrote bench/results/live.md');
}
