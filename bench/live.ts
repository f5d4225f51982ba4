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
 * The NFs run from their built-in images in the guest sandbox, as `nfvisor run` runs them.
 * Measured: iperf3 TCP (Gbit/s, one stream) at MTU 1500 and 9000; and at MTU 1500, 64-byte UDP
 * frames (18-byte payloads) from bench/udp-flood.c — one process in the client namespace sending
 * with sendmmsg as fast as the kernel takes them, for FLOOD_SECONDS and at most FLOOD_SECONDS ×
 * FLOOD_MAX_PPS datagrams (the best of FLOOD_ROUNDS), to the VIP (the load balancer sends them on
 * to the first backend), in
 * two ways: one datagram per message, and UDP GSO (64 datagrams per message, split by the kernel
 * before nfvisor; see the C file for why). What arrives is counted by an nftables counter in the
 * server namespace's prerouting hook, which also drops it (no socket, no ICMP back): offered kpps
 * (what the sender's kernel accepted), delivered kpps, the loss, and where nfvisor lost it (the
 * VXLAN socket's receive-queue drops, the TAP device's queue drops, the host's counters). iperf3's
 * own UDP test offered only ~100 kpps here (one sendmsg per datagram), too few to load a chain.
 * Then, for each path, its throughput as RFC 2544 (26.1) defines it: the GSO sender paced, a
 * binary search on the offered rate for the highest one lost at most 0.1 % (searchThroughput).
 * Ratios are nfvisor ÷ kernel. BENCH_LIVE_ONLY=udp skips the TCP figures and MTU 9000, =tcp the floods;
 * BENCH_LIVE_PATH=text runs only the paths whose name contains it (e.g. "VXLAN, direct inline" or
 * "kernel"), for profiling one path. Writes bench/results/live.md (not when a path filter is set). Every run is bounded (iperf3 -t, the sender's own limits, command
 * timeouts) and the namespaces are removed at the end, also when a step fails.
 */
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Placement, VnicMode } from '../src/host/guest-protocol.js';
import { Host, type HostPlan, type NfPlan } from '../src/host/host.js';
import { builtinNf } from './builtin-nf.js';
import { addonUnavailableReason, loadNativeAddon } from '../src/io/native-addon.js';
import { SUPER_PACKET_SLOT_SIZE } from '../src/io/tcp-offload.js';
import {
  attachTap,
  LIVE,
  liveNfConfigs,
  liveTestbedUp,
  type LiveTestbed,
} from '../src/testbed/live-testbed.js';
import { isRoot, requireTools, run, sweepStale, Testbed } from '../src/testbed/netns.js';

const SECONDS = 5;
const FAMILY = 'nfb';
/** UDP payload for 64-byte frames on the wire: 64 − 4 (FCS) − 14 − 20 − 8. */
const UDP_PAYLOAD_64B = 18;
/** The 64-byte UDP sender's source (bench/udp-flood.c), compiled by `compileFlood()`. */
const FLOOD_SOURCE = fileURLToPath(new URL('../../bench/udp-flood.c', import.meta.url));
const FLOOD_SECONDS = 3;
/** Floods per path and sender; the one that delivered most is reported. */
const FLOOD_ROUNDS = 2;
/** The count bound of a flood: FLOOD_SECONDS at this rate. */
const FLOOD_MAX_PPS = 2_000_000;
/** The flood's UDP port: the LB's `any` service on the iperf3 port sends it to the first backend. */
const FLOOD_PORT = LIVE.iperfPort;
/** After the sender stops, what is still queued on the way may arrive for this long. */
const FLOOD_TAIL_MS = 300;
/** Throughput search (RFC 2544, 26.1): the loss a passing trial may have, each trial's length, */
const SEARCH_MAX_LOSS = 0.001;
const SEARCH_SECONDS = 1;
/** at most this many trials, stopping once the pass/fail bracket is narrower than this fraction. */
const SEARCH_TRIALS = 7;
const SEARCH_RESOLUTION = 0.03;
/** The sender's two ways: datagrams per sendmmsg message (1: plain; 64: UDP GSO). */
const FLOOD_MODES = [
  { segments: 64, name: 'GSO ×64' },
  { segments: 1, name: 'one per message' },
] as const;
/** IPv4 + UDP header bytes before each 18-byte payload, as the server's counter sees a packet. */
const IP_UDP_HEADERS = 28;
const ONLY_UDP = process.env.BENCH_LIVE_ONLY === 'udp';
const ONLY_TCP = process.env.BENCH_LIVE_ONLY === 'tcp';
/**
 * TAP ports with TSO and checksum offloads (tap-port.ts), so TCP crosses the chain as 64 KiB
 * super-packets; BENCH_LIVE_TAP_OFFLOAD=0 turns them off.
 */
const TAP_OFFLOAD = process.env.BENCH_LIVE_TAP_OFFLOAD !== '0';
/** Only the paths whose name contains this (unset: all); a filtered run leaves live.md alone. */
const PATH_FILTER = process.env.BENCH_LIVE_PATH ?? '';
const wanted = (path: string): boolean => path.includes(PATH_FILTER);
/** The key of nfvisor's forwarded-packet count in a flood's counters. */
const NFVISOR_OUT = 'nfvisor out';
/** nfvisor's VXLAN port binds the IANA port (livePlan gives no other). */
const VXLAN_PORT = 4789;
/** The kernel path's addresses (its own namespaces, like the live testbed's overlay). */
const K = { client: '10.78.0.2', routerIn: '10.78.0.1', routerOut: '10.78.1.1', server: '10.78.1.11' };

interface Row {
  path: string;
  tcpGbps: number;
  tcpRetransmits: number;
  /** One per FLOOD_MODES entry (null: that flood failed, see note). */
  floods: (Flood | null)[];
  /** The throughput search's result (GSO sender), or null when it did not run. */
  throughput: Throughput | null;
  note: string;
}

/** One 64-byte UDP flood: what the sender offered, what the server's counter saw. */
interface Flood {
  sent: number;
  seconds: number;
  delivered: number;
  offeredPps: number;
  deliveredPps: number;
  /** 0…1 */
  loss: number;
  /** The sender's CPU time (user + system, which includes the kernel path it runs) per datagram. */
  senderCpuUs: number;
  /**
   * nfvisor's CPU time (every thread of this process, user + system: its system calls carry the
   * kernel's socket work) per packet it forwarded during the flood; 0 for the kernel path. Less
   * noisy than kpps on a shared machine: 1/this is what one core would forward.
   */
  nfvisorCpuUs: number;
  /** Where the datagrams that did not arrive were dropped, where it is known. */
  where: string;
}

/**
 * Throughput as RFC 2544 (26.1) defines it: the highest offered rate the path carries with at most
 * SEARCH_MAX_LOSS lost, found by a binary search on the paced sender's rate. Under overload the
 * sender, which shares the two cores, spends CPU on datagrams the path then drops; paced at the
 * path's own rate it does not, so this is the rate the path sustains, not what survives overload.
 */
interface Throughput {
  /** The highest rate that passed (pps), with that trial's figures. */
  passed: Flood | null;
  /** Every trial in order: offered rate (pps) and loss (0…1). */
  trials: { rate: number; loss: number }[];
  /** The sender could not offer more than the path carried: the path's limit is higher. */
  senderBound: boolean;
}

/** What the sender prints. */
interface FloodOutput {
  sent: number;
  refused: number;
  seconds: number;
  cpuUsPerDatagram: number;
}

/**
 * Compiles bench/udp-flood.c into a temporary folder; returns the binary, or null (and why) when
 * there is no compiler.
 */
async function compileFlood(): Promise<{ binary: string | null; why: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nfvisor-flood-'));
  const binary = join(dir, 'udp-flood');
  try {
    await run('gcc', ['-O2', '-Wall', '-o', binary, FLOOD_SOURCE], 60_000);
    return { binary, why: '' };
  } catch (e) {
    return { binary: null, why: `cannot compile bench/udp-flood.c: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** An nftables counter of the flood's datagrams in `ns`, at the earliest hook; it drops them too. */
async function installFloodCounter(bed: Testbed, ns: string): Promise<void> {
  const rules = `
table inet nfb_count {
  counter flood { }
  chain pre { type filter hook prerouting priority -300; policy accept; udp dport ${FLOOD_PORT} counter name "flood" drop; }
}`;
  await bed.exec(ns, 'sh', ['-c', `nft -f - <<'EOF'\n${rules}\nEOF`]);
}

/**
 * Datagrams the counter has seen. From bytes, not packets: a GSO packet that the kernel forwards
 * whole (the kernel path) is one packet of many payloads; each payload is 18 bytes and each packet
 * has one IPv4 + UDP header.
 */
async function floodCounter(bed: Testbed, ns: string): Promise<number> {
  const { stdout } = await bed.exec(ns, 'nft', ['-j', 'list', 'counter', 'inet', 'nfb_count', 'flood']);
  const parsed = JSON.parse(stdout) as { nftables: { counter?: { packets: number; bytes: number } }[] };
  const counter = parsed.nftables.find((e) => e.counter !== undefined)?.counter;
  if (counter === undefined) return 0;
  return Math.round((counter.bytes - counter.packets * IP_UDP_HEADERS) / UDP_PAYLOAD_64B);
}

/**
 * Runs the sender in `client` towards `target` (`segments` datagrams per message), counting at
 * `server`'s counter; `losses` reads the path's own counters, before and after (the difference is
 * reported).
 */
async function flood(
  bed: Testbed,
  binary: string,
  segments: number,
  client: string,
  server: string,
  target: string,
  losses: () => Promise<Record<string, number>>,
  pace: { rate: number; seconds: number } = { rate: 0, seconds: FLOOD_SECONDS },
): Promise<Flood> {
  const before = await floodCounter(bed, server);
  const lostBefore = await losses();
  const cpuBefore = process.cpuUsage();
  const { stdout } = await bed.exec(
    client,
    binary,
    [
      readlinkSync('/proc/self/ns/net'),
      target,
      String(FLOOD_PORT),
      String(pace.seconds),
      String(Math.ceil(pace.seconds * FLOOD_MAX_PPS)),
      String(segments),
      String(Math.round(pace.rate)),
    ],
    (pace.seconds + 15) * 1000,
  );
  const out = JSON.parse(stdout) as FloodOutput;
  await new Promise((resolve) => setTimeout(resolve, FLOOD_TAIL_MS));
  const delivered = (await floodCounter(bed, server)) - before;
  const cpu = process.cpuUsage(cpuBefore);
  const lostAfter = await losses();
  const forwarded = (lostAfter[NFVISOR_OUT] ?? 0) - (lostBefore[NFVISOR_OUT] ?? 0);
  const where = Object.entries(lostAfter)
    .map(([k, v]): [string, number] => [k, v - (lostBefore[k] ?? 0)])
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return {
    sent: out.sent,
    seconds: out.seconds,
    delivered,
    offeredPps: out.sent / out.seconds,
    deliveredPps: delivered / out.seconds,
    loss: out.sent > 0 ? Math.max(0, 1 - delivered / out.sent) : 0,
    senderCpuUs: out.cpuUsPerDatagram,
    nfvisorCpuUs: forwarded > 0 ? (cpu.user + cpu.system) / forwarded : 0,
    where,
  };
}

/**
 * Receive packet steering over every CPU on `dev` in `ns`: what arrives there is processed as
 * softirq work on the CPU its flow hashes to, instead of inside the sending process's own system
 * call. The testbed's servers share the machine with nfvisor: without it, the kernel's work of
 * delivering nfvisor's output (VXLAN decapsulation, the bridge, the server's veth) ran inside
 * nfvisor's sendmmsg, ~70 % of its thread's time in a `perf` profile at 64 B — work a NIC would
 * take off its hands. The kernel path gets the same on its router's input.
 */
async function steerReceive(bed: Testbed, ns: string, dev: string): Promise<void> {
  const mask = ((1 << cpus().length) - 1).toString(16);
  await bed.exec(ns, 'sh', ['-c', `echo ${mask} > /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
}

/** The receive-queue drops of the UDP sockets bound to `address:port` (/proc/net/udp, this namespace). */
function udpSocketDrops(address: string, port: number): number {
  const hex =
    address
      .split('.')
      .map((b) => Number(b).toString(16).padStart(2, '0'))
      .reverse()
      .join('')
      .toUpperCase() +
    ':' +
    port.toString(16).padStart(4, '0').toUpperCase();
  let drops = 0;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === hex) drops += Number(fields.at(-1));
  }
  return drops;
}

/** TX drops of a device (a TAP device's queue towards nfvisor overflowing). */
async function deviceTxDrops(bed: Testbed, ns: string, dev: string): Promise<number> {
  const { stdout } = await bed.ip(ns, ['-s', '-j', 'link', 'show', 'dev', dev]);
  const parsed = JSON.parse(stdout) as { stats64?: { tx?: { dropped?: number } } }[];
  return parsed[0]?.stats64?.tx?.dropped ?? 0;
}

interface Iperf3Json {
  error?: string;
  end: {
    sum_sent?: { bytes: number; seconds: number; packets?: number; retransmits?: number };
    sum_received?: { bytes: number; seconds: number; packets?: number; lost_packets?: number };
  };
}

async function iperf3(bed: Testbed, ns: string, target: string): Promise<Iperf3Json> {
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

/** One flood of `segments` datagrams per message, unpaced (the default) or paced at `pace.rate`. */
type RunFlood = (segments: number, pace?: { rate: number; seconds: number }) => Promise<Flood>;

/**
 * Binary search on the offered rate for the highest one lost at most SEARCH_MAX_LOSS: the first
 * trial at what the path delivered under overload, then halving the bracket between the highest
 * rate that passed and the lowest that failed (the overload flood's offered rate bounds it above).
 */
async function searchThroughput(
  trial: (rate: number) => Promise<Flood>,
  overload: Flood,
): Promise<Throughput> {
  const ceiling = overload.offeredPps;
  let low = 0;
  let high = ceiling;
  let rate = Math.min(overload.deliveredPps, ceiling);
  let passed: Flood | null = null;
  const trials: Throughput['trials'] = [];
  for (let k = 0; k < SEARCH_TRIALS && rate > 0; k++) {
    const f = await trial(rate);
    trials.push({ rate: f.offeredPps, loss: f.loss });
    if (f.loss <= SEARCH_MAX_LOSS) {
      low = rate;
      if (passed === null || f.deliveredPps > passed.deliveredPps) passed = f;
    } else high = rate;
    if ((high - low) / high < SEARCH_RESOLUTION) break;
    rate = (low + high) / 2;
  }
  return { passed, trials, senderBound: low >= ceiling * (1 - SEARCH_RESOLUTION) };
}

/** The search's trials as "offered kpps (loss %)", in order. */
const formatTrials = (t: Throughput): string =>
  t.trials.map((x) => `${kpps(x.rate)} (${(x.loss * 100).toFixed(2)} %)`).join(', ');

function describeThroughput(t: Throughput): string {
  const tried = formatTrials(t);
  if (t.passed === null) return `throughput: no trial passed; tried kpps (loss) ${tried}`;
  return (
    `throughput (≤ ${SEARCH_MAX_LOSS * 100} % loss): ${t.senderBound ? '≥ ' : ''}${kpps(t.passed.deliveredPps)} kpps` +
    (t.passed.nfvisorCpuUs > 0 ? `, nfvisor ${t.passed.nfvisorCpuUs.toFixed(2)} µs CPU/packet` : '') +
    `, sender ${t.passed.senderCpuUs.toFixed(2)} µs CPU/datagram; tried kpps (loss) ${tried}`
  );
}

/** iperf3 TCP (unless BENCH_LIVE_ONLY=udp), then a flood in each of FLOOD_MODES when `runFlood` is given. */
async function measure(
  bed: Testbed,
  ns: string,
  target: string,
  path: string,
  runFlood: RunFlood | null,
): Promise<Row> {
  const tcp: Iperf3Json = ONLY_UDP ? { end: {} } : await iperf3(bed, ns, target);
  const notes: string[] = tcp.error ? [`TCP: ${tcp.error}`] : [];
  const floods: (Flood | null)[] = [];
  for (const mode of runFlood === null || ONLY_TCP ? [] : FLOOD_MODES) {
    // The best of FLOOD_ROUNDS by delivered rate (the machine is shared: a round can lose its CPU).
    let best: Flood | null = null;
    for (let round = 0; round < FLOOD_ROUNDS; round++) {
      const f = await runFlood!(mode.segments).catch((e: unknown) => {
        notes.push(`UDP ${mode.name}: ${(e as Error).message.slice(0, 300)}`);
        return null;
      });
      if (f !== null && (best === null || f.deliveredPps > best.deliveredPps)) best = f;
    }
    floods.push(best);
  }
  // The search paces the GSO sender, the one that can offer more than a path carries.
  const gso = FLOOD_MODES.findIndex((m) => m.segments > 1);
  const overload = floods[gso] ?? null;
  const throughput =
    runFlood === null || overload === null || ONLY_TCP
      ? null
      : await searchThroughput(
          (rate) => runFlood(FLOOD_MODES[gso].segments, { rate, seconds: SEARCH_SECONDS }),
          overload,
        ).catch((e: unknown) => {
          notes.push(`throughput search: ${(e as Error).message.slice(0, 300)}`);
          return null;
        });
  const row: Row = {
    path,
    tcpGbps: tcp.error
      ? 0
      : ((tcp.end.sum_received?.bytes ?? 0) * 8) / (tcp.end.sum_received?.seconds ?? 1) / 1e9,
    tcpRetransmits: tcp.end.sum_sent?.retransmits ?? 0,
    floods,
    throughput,
    note: notes.join('; '),
  };
  console.log(
    `  ${path}` + (ONLY_UDP ? '' : `: TCP ${row.tcpGbps.toFixed(2)} Gbit/s (${row.tcpRetransmits} retr)`),
  );
  floods.forEach((f, i) => {
    if (f === null) return;
    console.log(
      `    UDP 64 B, ${FLOOD_MODES[i].name}: ${(f.offeredPps / 1e3).toFixed(0)} kpps offered, ` +
        `${(f.deliveredPps / 1e3).toFixed(0)} delivered, loss ${(f.loss * 100).toFixed(1)} %, ` +
        `sender ${f.senderCpuUs.toFixed(2)} µs CPU/datagram` +
        (f.nfvisorCpuUs > 0 ? `, nfvisor ${f.nfvisorCpuUs.toFixed(2)} µs CPU/packet` : '') +
        (f.where ? ` (${f.where})` : ''),
    );
  });
  if (throughput !== null) console.log(`    ${describeThroughput(throughput)}`);
  if (row.note) console.log(`    ${row.note}`);
  return row;
}

async function livePlan(
  tb: LiveTestbed,
  vnic: VnicMode,
  placement: Placement,
  mtu: number,
  tapDevice: string | null,
): Promise<HostPlan> {
  const c = liveNfConfigs();
  const nf = (name: string, config: unknown): Promise<NfPlan> => builtinNf(name, config, vnic, placement);
  const offload = tapDevice !== null && TAP_OFFLOAD;
  return {
    // Offloads bring TCP super-packets of up to 64 KiB: every slot must hold one.
    pool: offload
      ? { slots: 4096, slotSize: SUPER_PACKET_SLOT_SIZE }
      : { slots: 8192, slotSize: mtu > 1500 ? 9216 : 2048 },
    ringSize: 1024,
    batch: 64,
    ports: {
      vx:
        tapDevice !== null
          ? { kind: 'tap', options: { device: tapDevice, offload } }
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
      fw: await nf('firewall', c.firewall),
      nat: await nf('nat', c.nat),
      lb: await nf('load-balancer', c.loadBalancer),
      rt: await nf('router', c.router),
    },
    chains: [{ name: 'live', from: 'vx', to: 'vx', through: ['fw', 'nat', 'lb', 'rt'] }],
  };
}

async function nfvisorRows(bed: Testbed, mtu: number, flooder: string | null): Promise<Row[]> {
  const underlay = `198.19.${100 + ((process.pid + (mtu > 1500 ? 1 : 0)) % 150)}`;
  const tb = await liveTestbedUp(bed, { underlay, mtu });
  const withFlood = mtu <= 1500 && flooder !== null;
  if (withFlood) await installFloodCounter(bed, tb.backends[0]);
  // The switch is a plain bridge: no bridge netfilter (on by default in a new namespace when
  // br_netfilter is built in, and paid per frame). nfvisor's VXLAN output enters at u1.
  await bed.exec(tb.switch, 'sh', [
    '-c',
    'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; true',
  ]);
  await steerReceive(bed, tb.switch, bed.name('u1'));
  // The flood's server never answers (its counter drops everything), so the bridge would never
  // learn its MAC and would flood every frame to every port: a static entry, as for a VM's NIC.
  await bed.exec(tb.switch, 'bridge', [
    'fdb',
    'replace',
    LIVE.backendMacs[0],
    'dev',
    bed.name(`${tb.backendNames[0]}s`),
    'master',
    'static',
  ]);
  const rows: Row[] = [];
  for (const [vnic, placement, attachment] of [
    ['direct', 'isolated', 'VXLAN'],
    ['direct', 'inline', 'VXLAN'],
    ['direct', 'isolated', 'TAP'],
    ['direct', 'inline', 'TAP'],
  ] as const) {
    if (attachment === 'TAP' && loadNativeAddon() === null) continue; // no TAP without the addon
    const path = `nfvisor ${attachment}, ${vnic} ${placement}, MTU ${mtu}`;
    if (!wanted(path)) continue;
    const tap = attachment === 'TAP' ? bed.name('tp') : null;
    const host = await Host.create(await livePlan(tb, vnic, placement, mtu, tap));
    const running = host.run();
    let row: Row;
    try {
      await host.opened;
      if (tap !== null) {
        await attachTap(bed, tb, tap, mtu);
        await steerReceive(bed, tb.switch, tap);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Where a flood's datagrams can be lost before the chain: the VXLAN socket's receive queue,
      // the TAP device's queue towards nfvisor; after it, the host's own drops.
      const losses = async (): Promise<Record<string, number>> => {
        const s = host.status();
        return {
          ...(tap === null
            ? { 'VXLAN socket queue drops': udpSocketDrops(tb.bind, VXLAN_PORT) }
            : { 'TAP queue drops': await deviceTxDrops(bed, tb.switch, tap) }),
          'nfvisor in': s.received,
          [NFVISOR_OUT]: s.sent,
          'nfvisor dropped': s.dropped + s.lost,
        };
      };
      row = await measure(
        bed,
        tb.client,
        LIVE.vip,
        path,
        withFlood
          ? (segments, pace) =>
              flood(bed, flooder, segments, tb.client, tb.backends[0], LIVE.vip, losses, pace)
          : null,
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

const kernelPath = (mtu: number): string => `kernel veth router, nftables, MTU ${mtu}`;

/** client ══ router (nftables filter + DNAT + masquerade) ══ server, all veths. */
async function kernelRow(bed: Testbed, mtu: number, flooder: string | null): Promise<Row> {
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
  const withFlood = mtu <= 1500 && flooder !== null;
  if (withFlood) await installFloodCounter(bed, server);
  await steerReceive(bed, router, r0);
  return measure(
    bed,
    client,
    LIVE.vip,
    kernelPath(mtu),
    withFlood
      ? (segments, pace) =>
          splitAtClient(bed, client, c0, segments > 1, () =>
            flood(bed, flooder, segments, client, server, LIVE.vip, () => Promise.resolve({}), pace),
          )
      : null,
  );
}

const ratio = (a: number, b: number): string => (a && b ? `${(a / b).toFixed(2)}×` : '–');
const kpps = (pps: number): string => (pps / 1e3).toFixed(0);

/**
 * Runs `measure` with the client's veth splitting GSO packets into single frames (gso_max_segs 1)
 * when `split`, restoring its setting after: a GSO flood then crosses the kernel router one 64-byte
 * frame at a time, as it reaches nfvisor (the router would forward the large packet whole). Not
 * during the TCP figures, which need the kernel's GSO.
 */
async function splitAtClient<T>(
  bed: Testbed,
  ns: string,
  dev: string,
  split: boolean,
  measure: () => Promise<T>,
): Promise<T> {
  if (!split) return measure();
  const { stdout } = await bed.ip(ns, ['-d', '-j', 'link', 'show', 'dev', dev]);
  const before = (JSON.parse(stdout) as { gso_max_segs?: number }[])[0]?.gso_max_segs ?? 65535;
  await bed.ip(ns, ['link', 'set', dev, 'gso_max_segs', '1']);
  try {
    return await measure();
  } finally {
    await bed.ip(ns, ['link', 'set', dev, 'gso_max_segs', String(before)]);
  }
}

function tcpTable(rows: Row[], kernel: Row): string {
  const lines = ['| path | TCP Gbit/s | ratio | TCP retransmits | notes |', '|---|---|---|---|---|'];
  for (const r of [...rows, kernel])
    lines.push(
      `| ${r.path} | ${r.tcpGbps.toFixed(2)} | ${ratio(r.tcpGbps, kernel.tcpGbps)} | ${r.tcpRetransmits} | ${r.note} |`,
    );
  return lines.join('\n') + '\n';
}

function udpTable(rows: Row[], kernel: Row): string {
  const lines = [
    '| path | sender | offered kpps | delivered kpps | loss | delivered ratio | sender CPU µs/datagram | nfvisor CPU µs/packet (kpps per core) | nfvisor counters during the flood |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of [...rows, kernel]) {
    r.floods.forEach((f, i) => {
      if (f === null) return;
      const k = kernel.floods[i];
      lines.push(
        `| ${r.path} | ${FLOOD_MODES[i].name} | ${kpps(f.offeredPps)} | ${kpps(f.deliveredPps)} | ` +
          `${(f.loss * 100).toFixed(1)} % | ${ratio(f.deliveredPps, k?.deliveredPps ?? 0)} | ` +
          `${f.senderCpuUs.toFixed(2)} | ${f.nfvisorCpuUs > 0 ? `${f.nfvisorCpuUs.toFixed(2)} (${kpps(1e6 / f.nfvisorCpuUs)})` : '–'} | ${f.where} |`,
      );
    });
  }
  return lines.join('\n') + '\n';
}

function throughputTable(rows: Row[], kernel: Row): string {
  const lines = [
    `| path | throughput kpps (≤ ${SEARCH_MAX_LOSS * 100} % loss) | ratio | nfvisor CPU µs/packet | sender CPU µs/datagram | trials: offered kpps (loss) |`,
    '|---|---:|---:|---:|---:|---|',
  ];
  const k = kernel.throughput?.passed?.deliveredPps ?? 0;
  for (const r of [...rows, kernel]) {
    const t = r.throughput;
    if (t === null) continue;
    const p = t.passed;
    const tried = formatTrials(t);
    lines.push(
      `| ${r.path} | ${p === null ? 'none passed' : `${t.senderBound ? '≥ ' : ''}${kpps(p.deliveredPps)}`} | ` +
        `${ratio(p?.deliveredPps ?? 0, k)} | ${p && p.nfvisorCpuUs > 0 ? p.nfvisorCpuUs.toFixed(2) : '–'} | ` +
        `${p ? p.senderCpuUs.toFixed(2) : '–'} | ${tried} |`,
    );
  }
  return lines.join('\n') + '\n';
}

export async function benchLive(): Promise<void> {
  console.log(
    `live: iperf3 TCP and 64 B UDP floods through nfvisor (VXLAN, TAP) and through the kernel (nftables)`,
  );
  if (!isRoot()) {
    console.log('  skipped: needs root (network namespaces)');
    return;
  }
  await requireTools(['ip', 'iperf3', 'nft', 'python3']);
  await sweepStale(FAMILY);
  const loadAtStart = loadavg()[0].toFixed(1);
  const compiled = await compileFlood();
  if (compiled.binary === null) console.log(`  no UDP floods: ${compiled.why}`);
  const tables: string[] = [];
  try {
    for (const mtu of ONLY_UDP ? [1500] : [1500, 9000]) {
      const bed = new Testbed(`${FAMILY}${process.pid}`);
      try {
        const rows = await nfvisorRows(bed, mtu, compiled.binary);
        if (PATH_FILTER) {
          if (wanted(kernelPath(mtu))) await kernelRow(bed, mtu, compiled.binary);
          continue;
        }
        const kernel = await kernelRow(bed, mtu, compiled.binary);
        if (kernel.floods.length > 0)
          tables.push(
            `UDP, 64-byte frames, MTU ${mtu}, senders as fast as the kernel takes them:\n`,
            udpTable(rows, kernel),
            `Throughput (RFC 2544, 26.1), GSO sender paced: binary search on the offered rate, ${SEARCH_SECONDS}-s trials, ` +
              `at most ${SEARCH_TRIALS}; a trial passes with at most ${SEARCH_MAX_LOSS * 100} % lost; "≥": the sender could not offer more:\n`,
            throughputTable(rows, kernel),
          );
        if (!ONLY_UDP) tables.push(`TCP, MTU ${mtu}:\n`, tcpTable(rows, kernel));
      } finally {
        await bed.teardown();
      }
    }
  } finally {
    if (compiled.binary !== null) rmSync(dirname(compiled.binary), { recursive: true, force: true });
  }
  if (PATH_FILTER) return; // a partial run: live.md keeps the last full one
  const load = loadavg().map((l) => l.toFixed(1));
  const md = [
    '# Live traffic through nfvisor vs the Linux kernel',
    '',
    `${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, ` +
      `load average ${loadAtStart} at the start, ${load.join(' / ')} (1 / 5 / 15 min) at the end (the machine is shared with other work: ` +
      'figures are noisy; compare within one run). nfvisor ports: ' +
      (loadNativeAddon() !== null
        ? 'VXLAN with recvmmsg/sendmmsg, TAP in batches through io_uring (native addon)' +
          (TAP_OFFLOAD
            ? '; TAP with offload (TSO and checksum offloads: TCP crosses the chain as 64 KiB super-packets).'
            : '; TAP without offloads (BENCH_LIVE_TAP_OFFLOAD=0).')
        : `node:dgram, no TAP (native addon not loaded: ${addonUnavailableReason()}).`),
    '',
    `UDP: 18-byte payloads (64-byte frames) from bench/udp-flood.c in the client namespace, sendmmsg as fast as ` +
      `the kernel takes them for ${FLOOD_SECONDS} s (the best of ${FLOOD_ROUNDS} rounds by delivered rate), one flow to the VIP. "GSO ×64": each message carries 64 ` +
      'payloads that the kernel splits into 64 datagrams where the path first cannot carry the large packet ' +
      "(nfvisor's VXLAN socket, the TAP device; in the kernel path the client's veth, set to gso_max_segs 1), so " +
      'nfvisor and the kernel router receive single 64-byte frames while the client-side kernel work is done once ' +
      'per 64; "one per message": every datagram alone, where the sender does all the kernel work up to the ' +
      "receiving socket. The switch's bridge has no bridge netfilter, and the devices where nfvisor's output enters " +
      "the kernel (the switch's underlay veth, the TAP device) and the kernel router's input spread their receive " +
      'work over both CPUs (RPS), as a NIC would take it off the sender. Delivered: counted by nftables in the server namespace (counter ' +
      `and drop at prerouting), including what arrived within ${FLOOD_TAIL_MS} ms after the sender stopped. The ` +
      'sender shares the two cores with nfvisor (or the kernel router). Ratio = nfvisor ÷ kernel with the same sender.',
    '',
    ...tables,
    ...(ONLY_UDP ? [] : [`TCP: iperf3, ${SECONDS} s, one stream.`, '']),
    'nfvisor path: client → bridge → kernel VXLAN → UDP → nfvisor (fw → NAT → LB → router) → UDP → kernel VXLAN → ' +
      'bridge → server, and back the same way (TAP: bridge → TAP device → nfvisor → TAP device → bridge). Kernel path: client → veth → router namespace (nftables filter, DNAT, ' +
      'masquerade) → veth → server, no tunnel.',
    '',
  ].join('\n');
  writeFileSync(new URL('../../bench/results/live.md', import.meta.url), md);
  console.log('  wrote bench/results/live.md');
}
