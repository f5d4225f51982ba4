/**
 * `npm run bench [-- part …]`: measurements on the machine it runs on, printed with that machine.
 * Speed is measured here, never asserted in tests. Parts:
 *
 *   packet   Ethernet/IPv4/L4 views + flow hash over 10⁶ 64-byte packets already in memory, and
 *            the full layered parser over the same packets; Mpps and garbage collections.
 *   capture  pcap and pcapng write and read throughput (MB/s, Mpps) through the streaming I/O.
 *   mem      descriptor rings between threads (bench/mem.ts).
 *   cores    how much packet work two threads do at once against one (bench/cores.ts): on a VM
 *            two vCPUs may share one core. Run at the head of `modes` too; alone when named.
 *   modes    the 3-NF chain in each vNIC mode, chain-length scaling; tables and a chart in
 *            bench/results/ (bench/modes.ts; BENCH_MODES_FILTER=inline|direct|…|chain|run).
 *   reconfig effective blocked time of live reconfigurations at a fixed offered rate (bench/reconfig.ts).
 *   nfs      each built-in NF alone at 64 B, 10⁴ and 10⁶ flows, inline and direct; firewall by rule
 *            count, router by route count, firewall → NAT (bench/nfs.ts; BENCH_NFS_FILTER=text).
 *   live     iperf3 TCP and 64 B UDP through nfvisor over VXLAN vs the kernel with nftables, in
 *            namespaces (root only); bench/results/live.md (bench/live.ts).
 *   wireguard  the wireguard NF in process (encrypt and decrypt, 64 B / 1420 B / IMIX) and
 *            wireguard-go between namespaces (root); bench/results/wireguard.md (bench/wireguard.ts).
 *   ids      the ids NF inline in one thread over IMIX with 100 and 10,000 signatures: Mpps,
 *            Gbit/s, rule compile time (bench/ids.ts).
 *   amplification  CPU per attacker byte of SYN floods, incomplete fragments, TCP holes and junk
 *            handshakes against benign frames of the same size (bench/amplification.ts).
 *   tap      64 B UDP packets/s received by one port: TAP (batched reads), VXLAN with recvmmsg and
 *            with node:dgram, in the same run (root, native addon; bench/tap.ts).
 *   chaos    the chaos soak (TESTING.md E5): guests killed, restarted, reloaded and rescaled under
 *            load for CHAOS_SECONDS (1800), invariants checked every round (bench/chaos.ts). Not
 *            part of a plain `npm run bench`: name it.
 *
 * Each figure is the best of a few rounds (the machine is shared and noisy); GC counts are totals
 * over all rounds of that measurement.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, freemem, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { createCaptureWriter, openCapture } from '../src/io/capture.js';
import { TrafficGenerator } from '../src/io/traffic-generator.js';
import { DropReason } from '../src/packet/drop-reason.js';
import { EthernetView } from '../src/packet/ethernet.js';
import { FlowKey } from '../src/packet/flow-key.js';
import { EtherType, IpProtocol } from '../src/packet/ip-protocol.js';
import { Ipv4Field, Ipv4View } from '../src/packet/ipv4.js';
import { PacketParser } from '../src/packet/packet-parser.js';
import { TcpView } from '../src/packet/tcp.js';
import { UdpView } from '../src/packet/udp.js';
import { benchAmplification } from './amplification.js';
import { benchIds } from './ids.js';
import { benchLive } from './live.js';
import { benchMem } from './mem.js';
import { chaosSoak } from './chaos.js';
import { benchCores } from './cores.js';
import { benchModes } from './modes.js';
import { benchReconfig } from './reconfig.js';
import { benchTap } from './tap.js';
import { benchWireguard } from './wireguard.js';
import { benchNfs } from './nfs.js';

const PACKETS = 1_000_000;
const SLOT = 64;
const ROUNDS = 5;

interface Result {
  part: string;
  name: string;
  value: number;
  unit: string;
  gcs: number;
  note?: string;
}
const results: Result[] = [];

/** Counts garbage collections while `run` executes. */
async function countGcs<T>(run: () => T): Promise<{ value: T; gcs: number }> {
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  const value = run();
  // GC entries are delivered asynchronously; let them arrive before counting.
  await new Promise((resolve) => setTimeout(resolve, 100));
  gcs += observer.takeRecords().length;
  observer.disconnect();
  return { value, gcs };
}

function report(r: Result): void {
  results.push(r);
  const value = r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(2);
  console.log(
    `  ${r.name.padEnd(52)}${value.padStart(9)} ${r.unit.padEnd(5)}  gc ${String(r.gcs).padStart(3)}${r.note ? `  ${r.note}` : ''}`,
  );
}

/** 10⁶ 64-byte IPv4 TCP/UDP frames (60 + 4 bytes of slack, as a buffer slot would hold), back to back. */
function makePackets(): Uint8Array {
  const generator = new TrafficGenerator({
    seed: 5,
    packets: PACKETS,
    frameSize: 64,
    flows: 4096,
    ipv6: 0,
    mix: { tcp: 1, udp: 1, icmp: 0 },
    tcpSessions: false,
  });
  const memory = new Uint8Array(PACKETS * SLOT);
  for (let i = 0; i < PACKETS; i++) generator.next(memory, i * SLOT);
  return memory;
}

async function benchPacket(): Promise<void> {
  console.log(`packet: ${PACKETS} frames of ${SLOT} bytes in memory, best of ${ROUNDS} rounds`);
  const memory = makePackets();
  const eth = new EthernetView();
  const ip = new Ipv4View();
  const tcp = new TcpView();
  const udp = new UdpView();
  const key = new FlowKey();

  // The minimal path an NF runs: checked views, then the 5-tuple and its hash.
  const viewsAndHash = (): number => {
    let checksum = 0;
    for (let i = 0; i < PACKETS; i++) {
      const at = i * SLOT;
      if (eth.attach(memory, at, SLOT) !== DropReason.None || eth.etherType() !== EtherType.Ipv4) continue;
      const ipAt = eth.payloadAt();
      if (ip.attach(memory, ipAt, at + SLOT - ipAt) !== DropReason.None) continue;
      const protocol = ip.protocol();
      let srcPort = 0;
      let dstPort = 0;
      if (protocol === IpProtocol.Tcp) {
        if (tcp.attach(memory, ip.payloadAt(), ip.payloadLength()) !== DropReason.None) continue;
        srcPort = tcp.srcPort();
        dstPort = tcp.dstPort();
      } else if (protocol === IpProtocol.Udp) {
        if (udp.attach(memory, ip.payloadAt(), ip.payloadLength()) !== DropReason.None) continue;
        srcPort = udp.srcPort();
        dstPort = udp.dstPort();
      }
      key.setV4At(memory, ip.at + Ipv4Field.Src, ip.at + Ipv4Field.Dst, protocol, srcPort, dstPort);
      checksum = (checksum + key.hash()) | 0;
    }
    return checksum;
  };
  await measure(
    'packet',
    'views (eth, ipv4 + header checksum, l4) + flow hash',
    viewsAndHash,
    PACKETS,
    'Mpps',
  );

  const parserNoL4Sum = new PacketParser({ verifyChecksums: false });
  await measure(
    'packet',
    'layered parser (no L4 checksum) + flow hash',
    () => parseAll(memory, parserNoL4Sum, key),
    PACKETS,
    'Mpps',
  );
  const parser = new PacketParser();
  await measure(
    'packet',
    'layered parser, L4 checksums verified + flow hash',
    () => parseAll(memory, parser, key),
    PACKETS,
    'Mpps',
  );
}

function parseAll(memory: Uint8Array, parser: PacketParser, key: FlowKey): number {
  let checksum = 0;
  for (let i = 0; i < PACKETS; i++) {
    if (parser.attach(memory, i * SLOT, SLOT) !== DropReason.None) continue;
    if (parser.flowKey(key)) checksum = (checksum + key.hash()) | 0;
  }
  return checksum;
}

/** Runs `run` ROUNDS times, reports the best rate of `count` items per second in millions (or MB/s). */
async function measure(
  part: string,
  name: string,
  run: () => number,
  count: number,
  unit: string,
  note?: string,
): Promise<number> {
  let best = Infinity;
  let sink = 0;
  const { gcs } = await countGcs(() => {
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      sink ^= run();
      best = Math.min(best, performance.now() - started);
    }
  });
  const rate = count / (best / 1000) / 1e6;
  report({ part, name, value: rate, unit, gcs, note: note ?? `(${(best / 1000).toFixed(3)} s per round)` });
  if (sink === 0.5) console.log('unreachable: keeps the result alive');
  return rate;
}

async function benchCapture(): Promise<void> {
  const count = 500_000;
  console.log(
    `capture: ${count} IMIX frames through the streaming writer and reader, best of ${ROUNDS} rounds`,
  );
  const generator = new TrafficGenerator({ seed: 6, packets: count, flows: 1024, tcpSessions: false });
  // Frames in memory first, so the writer is measured, not the generator.
  const frames = new Uint8Array(count * 1514);
  const lengths = new Uint16Array(count);
  let payloadBytes = 0;
  for (let i = 0; i < count; i++) {
    lengths[i] = generator.next(frames, i * 1514);
    payloadBytes += lengths[i];
  }
  const dir = mkdtempSync(join(tmpdir(), 'nfvisor-bench-'));
  try {
    for (const format of ['pcap', 'pcapng'] as const) {
      const path = join(dir, `bench.${format}`);
      await measure(
        'capture',
        `${format} write`,
        () => {
          const writer = createCaptureWriter(path, { format, nanosecond: true });
          for (let i = 0; i < count; i++) writer.writePacket(frames, i * 1514, lengths[i], 1_767_225_600, i);
          writer.close();
          return 0;
        },
        payloadBytes,
        'MB/s',
      );
      const fileBytes = statSync(path).size;
      await measure(
        'capture',
        `${format} read (streamed; last byte of each packet touched)`,
        () => {
          const reader = openCapture(path);
          let sum = 0;
          while (reader.next())
            sum = (sum + reader.bytes[reader.at + reader.capturedLength - 1] + reader.capturedLength) | 0;
          reader.close();
          return sum;
        },
        fileBytes,
        'MB/s',
        `(${(fileBytes / 1e6).toFixed(0)} MB file, ${count} packets)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function machine(): string {
  const cpu = cpus();
  return (
    `${cpu.length} × ${cpu[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB ` +
    `(${(freemem() / 2 ** 30).toFixed(0)} free), Node ${process.version}, ${process.platform} ${process.arch}`
  );
}

async function benchChaos(): Promise<void> {
  const seconds = Number(process.env.CHAOS_SECONDS ?? 1800);
  console.log(`chaos: a soak of ${seconds} s, rounds of 1,000,000 packets (seed 1)`);
  const report = await chaosSoak({
    seconds,
    seed: 1,
    roundPackets: 1_000_000,
    log: (line) => console.log(line),
  });
  const rss = report.rssMb;
  const slope = rss.length >= 3 ? (rss[rss.length - 1] - rss[1]) / (rss.length - 2) : 0;
  console.log(
    `  ${report.rounds} rounds, ${report.packets} packets, events ${JSON.stringify(report.events)}; ` +
      `RSS ${rss[0]?.toFixed(0)} → ${rss[rss.length - 1]?.toFixed(0)} MiB (${slope.toFixed(2)} MiB per round after the first); ` +
      `${report.violations.length === 0 ? 'every invariant held' : `${report.violations.length} VIOLATIONS`}`,
  );
  for (const v of report.violations) console.log(`  violation: ${v}`);
  results.push({ part: 'chaos', name: 'violations', value: report.violations.length, unit: 'count', gcs: 0 });
}

async function main(): Promise<void> {
  const parts = process.argv.slice(2);
  const want = (part: string): boolean => parts.length === 0 || parts.includes(part);
  console.log(`nfvisor bench on ${machine()}`);
  if (want('packet')) await benchPacket();
  if (want('capture')) await benchCapture();
  if (want('mem')) await benchMem();
  if (parts.includes('cores')) await benchCores();
  if (want('modes')) await benchModes(process.env.BENCH_MODES_FILTER);
  if (want('reconfig')) await benchReconfig();
  if (want('wireguard')) await benchWireguard();
  if (want('nfs')) await benchNfs(process.env.BENCH_NFS_FILTER);
  if (want('live')) await benchLive();
  if (want('ids')) benchIds();
  if (want('amplification')) benchAmplification();
  if (want('tap')) await benchTap();
  if (parts.includes('chaos')) await benchChaos();
  if (process.env.BENCH_JSON) console.log(JSON.stringify({ machine: machine(), results }, null, 2));
}

await main();
