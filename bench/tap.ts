/**
 * `npm run bench -- tap` (root, native addon): 64-byte UDP packets per second received by one
 * nfvisor port, in the same run:
 *
 * - TAP: a TAP device made by `TapPort`, moved into a namespace with an address and a static
 *   neighbour; bench/tap-sender.js in that namespace sends 18-byte UDP payloads (64-byte frames on
 *   the wire, counting the FCS) out of it with sendmmsg. Read with the addon's batched reads.
 * - VXLAN, batched: a `VxlanPort` on 127.0.0.1 reading with recvmmsg; the same sender sends VXLAN
 *   datagrams whose inner frame is that 64-byte frame.
 * - VXLAN, dgram: the same with `nativeIo: false` (node:dgram, one recvmsg per datagram).
 *
 * The receiver drains the port with `next()` into one buffer as fast as it can, sleeping on
 * `onReadable` when the port is empty: the cost of receiving, not of a chain. Counted over the
 * middle of a bounded send (SECONDS); `sent` is what the sender's kernel accepted, the gap is what
 * the receiving socket or device queue dropped. The sender shares the machine's two cores with the
 * receiver (and, here, with other jobs): figures are noisy and the sender is often the limit.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonUnavailableReason, loadNativeAddon } from '../src/io/native-addon.js';
import { TapPort } from '../src/io/tap-port.js';
import type { TunnelPort } from '../src/io/tunnel-port.js';
import { VxlanPort } from '../src/io/vxlan-port.js';
import { EthernetRepr } from '../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../src/packet/ipv4.js';
import { UdpRepr } from '../src/packet/udp.js';
import { VXLAN_HEADER_LENGTH, VxlanRepr } from '../src/packet/vxlan.js';
import { isRoot, requireTools, Testbed } from '../src/testbed/netns.js';

const SECONDS = 4;
/** Counting starts this long after the sender starts (its process start-up and ramp). */
const WARMUP_MS = 1000;
const UDP_PAYLOAD_64B = 18;
const VNI = 77;
const SENDER = join(dirname(fileURLToPath(import.meta.url)), 'tap-sender.js');

interface Row {
  path: string;
  receivedPps: number;
  sentPps: number;
  /** Receiving process CPU time per frame received: what one core could do unshared is 1/this. */
  cpuUsPerPacket: number;
  note: string;
}

/** Anything `next()` can be drained from. */
type Source = Pick<TapPort | TunnelPort, 'next' | 'onReadable'>;

/** Frames read between two looks at the clock. */
const DRAIN_BURST = 256;

/**
 * Drains `port` until `toMs`; counts the frames `next()` returned from `fromMs` on, and the CPU
 * time (user + system) this process spent meanwhile.
 */
async function drain(
  port: Source,
  fromMs: number,
  toMs: number,
): Promise<{ counted: number; cpuUs: number }> {
  const buffer = new Uint8Array(9216);
  let counted = 0;
  let cpuFrom: NodeJS.CpuUsage | null = null;
  let wake: (() => void) | null = null;
  port.onReadable = () => wake?.();
  for (;;) {
    const now = performance.now();
    if (now >= toMs) break;
    if (now >= fromMs) cpuFrom ??= process.cpuUsage();
    // At most DRAIN_BURST frames between clock reads: a port that never runs dry (TAP at full
    // rate) once kept this loop reading for the whole run, so frames read before `fromMs` were
    // counted and the CPU clock started after them (~0 µs per frame was reported).
    let got = 0;
    for (let n = port.next(buffer, 0, buffer.length); n > 0; n = port.next(buffer, 0, buffer.length))
      if (++got === DRAIN_BURST) break;
    if (now >= fromMs) counted += got;
    // Frames came: yield one event-loop turn (the dgram path receives in it) and go on. Empty:
    // sleep until the port says it is readable (or 5 ms, to see the clock).
    if (got > 0) {
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve();
      };
    });
  }
  port.onReadable = null;
  const cpu = process.cpuUsage(cpuFrom ?? undefined);
  return { counted, cpuUs: cpu.user + cpu.system };
}

function runSender(
  bed: Testbed,
  ns: string | undefined,
  address: string,
  port: number,
  payload: Uint8Array,
): Promise<{ sent: number; seconds: number }> {
  const argv = [
    process.execPath,
    SENDER,
    address,
    String(port),
    String(SECONDS),
    Buffer.from(payload).toString('hex'),
  ];
  const child =
    ns === undefined ? spawn(argv[0], argv.slice(1)) : spawn('ip', ['netns', 'exec', ns, ...argv]);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 20) * 1000);
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      clearTimeout(killer);
      if (code !== 0) reject(new Error(`tap-sender exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as { sent: number; seconds: number });
    });
  });
}

/** Starts the sender, drains `port` over the middle of its run; returns pps received and sent. */
async function measure(
  bed: Testbed,
  port: Source,
  ns: string | undefined,
  address: string,
  udpPort: number,
  payload: Uint8Array,
): Promise<{ receivedPps: number; sentPps: number; cpuUsPerPacket: number }> {
  const start = performance.now();
  const sender = runSender(bed, ns, address, udpPort, payload);
  const from = start + WARMUP_MS;
  const to = start + SECONDS * 1000 - 500;
  const { counted, cpuUs } = await drain(port, from, to);
  const { sent, seconds } = await sender;
  return {
    receivedPps: counted / ((to - from) / 1000),
    sentPps: sent / seconds,
    cpuUsPerPacket: counted > 0 ? cpuUs / counted : 0,
  };
}

/** The 64-byte frame (60 without FCS): Ethernet, IPv4 10.0.0.1 → 10.0.0.2, UDP 1000 → 2000, 18 bytes. */
function innerFrame(): Uint8Array {
  const frame = new Uint8Array(14 + 20 + 8 + UDP_PAYLOAD_64B).fill(0x5a);
  EthernetRepr.emit(
    { dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', tags: [], etherType: EtherType.Ipv4 },
    frame,
    0,
  );
  Ipv4Repr.emit(
    { src: '10.0.0.1', dst: '10.0.0.2', protocol: IpProtocol.Udp, payloadLength: 8 + UDP_PAYLOAD_64B },
    frame,
    14,
  );
  UdpRepr.emit({ srcPort: 1000, dstPort: 2000, payloadLength: UDP_PAYLOAD_64B }, frame, 34);
  return frame;
}

export async function benchTap(): Promise<void> {
  if (!isRoot()) {
    console.log('tap: skipped (needs root for TAP devices and namespaces)');
    return;
  }
  if (loadNativeAddon() === null) {
    console.log(`tap: skipped (native addon ${addonUnavailableReason()})`);
    return;
  }
  await requireTools(['ip']);
  const rows: Row[] = [];
  const bed = new Testbed(`nfk${process.pid % 100000}`);
  const tap = new TapPort({ name: 'bench-tap', device: bed.name('t0'), batch: 64 });
  try {
    // TAP: the device in a namespace, a static neighbour so the sender's packets leave without ARP.
    const ns = await bed.addNamespace('t');
    await tap.open();
    const dev = tap.deviceName();
    await bed.ip(undefined, ['link', 'set', dev, 'netns', ns]);
    await bed.ip(ns, ['addr', 'add', '10.79.0.1/24', 'dev', dev]);
    await bed.ip(ns, ['link', 'set', dev, 'up']);
    await bed.ip(ns, ['neigh', 'add', '10.79.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', dev]);
    const t = await measure(bed, tap, ns, '10.79.0.2', 9, new Uint8Array(UDP_PAYLOAD_64B).fill(0x5a));
    rows.push({ path: 'TAP (batched reads)', ...t, note: 'sender in a namespace, out of the TAP' });
    tap.close();

    // VXLAN over loopback, batched and dgram.
    const datagram = new Uint8Array(VXLAN_HEADER_LENGTH + 60);
    VxlanRepr.emit({ vni: VNI }, datagram, 0);
    datagram.set(innerFrame(), VXLAN_HEADER_LENGTH);
    for (const nativeIo of [true, false]) {
      const port = new VxlanPort({
        bind: { address: '127.0.0.1', port: 0 },
        vni: VNI,
        nativeIo,
        slots: 1024,
      });
      await port.open();
      try {
        const v = await measure(bed, port, undefined, '127.0.0.1', port.address().port, datagram);
        rows.push({
          path: `VXLAN (${port.io()})`,
          ...v,
          note: `loopback; ${port.counters.rx_queue_full} ring-full drops`,
        });
      } finally {
        port.close();
      }
    }
  } finally {
    tap.close();
    await bed.teardown();
  }
  console.log(
    '\ntap: 64-byte UDP frames received by one port (kpps; best effort sender on the same 2 cores)',
  );
  console.log(
    '| path | received kpps | sent kpps | receiver CPU µs/packet | kpps per core (CPU time) | note |',
  );
  console.log('|---|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const perCore = r.cpuUsPerPacket > 0 ? (1000 / r.cpuUsPerPacket).toFixed(0) : '-';
    const kpps = (pps: number): string => (pps / 1000).toFixed(0);
    console.log(
      `| ${r.path} | ${kpps(r.receivedPps)} | ${kpps(r.sentPps)} | ${r.cpuUsPerPacket.toFixed(2)} | ${perCore} | ${r.note} |`,
    );
  }
}
