/**
 * Run by tap-batch.test.ts in a child process (once as is, once with NFVISOR_NO_URING=1, since the
 * addon decides per thread, once, whether it has an io_uring): a TAP port whose device sits in the
 * namespace named by argv[2] (the device's name argv[3]) receives argv[4] datagrams the kernel
 * queued there and sends as many frames back. Prints one JSON line: the sequence numbers read and
 * received, in order, and the port's counters.
 */
import { TapPort } from '../../src/io/tap-port.js';
import { EthernetRepr } from '../../src/packet/ethernet.js';
import { EtherType, IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Repr } from '../../src/packet/ipv4.js';
import { UdpRepr } from '../../src/packet/udp.js';
import { run } from './netns.js';

const ns = process.argv[2];
const device = process.argv[3];
const FRAMES = Number(process.argv[4]);

/** An Ethernet/IPv4/UDP frame 10.80.0.2:7 → 10.80.0.1:9998 to `mac` carrying `seq` (no UDP checksum). */
function frame(seq: number, mac: string): Uint8Array {
  const f = new Uint8Array(14 + 20 + 8 + 4);
  EthernetRepr.emit({ dst: mac, src: '02:00:00:00:00:02', tags: [], etherType: EtherType.Ipv4 }, f, 0);
  Ipv4Repr.emit(
    { src: '10.80.0.2', dst: '10.80.0.1', protocol: IpProtocol.Udp, payloadLength: 8 + 4 },
    f,
    14,
  );
  UdpRepr.emit({ srcPort: 7, dstPort: 9998, payloadLength: 4 }, f, 34);
  new DataView(f.buffer).setUint32(42, seq);
  return f;
}

const port = new TapPort({ name: 'batch', device, batch: 64 });
await port.open();
await run('ip', ['link', 'set', device, 'netns', ns]);
await run('ip', ['-n', ns, 'addr', 'add', '10.80.0.1/24', 'dev', device]);
await run('ip', ['-n', ns, 'link', 'set', device, 'up']);
await run('ip', ['-n', ns, 'neigh', 'replace', '10.80.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', device]);
const mac = (await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', device])).stdout.match(
  /"address":"([0-9a-f:]+)"/,
)![1];

// A receiver in the namespace for what the port sends, then FRAMES datagrams towards the port,
// all queued on the device before the port reads any (the reads then come in full batches).
const receiver = [
  'import socket, sys',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)',
  's.bind(("10.80.0.1", 9998)); s.settimeout(30.0)',
  'print("ready", flush=True)',
  'seen = []',
  'try:',
  `    while len(seen) < ${FRAMES}:`,
  '        seen.append(int.from_bytes(s.recv(64)[:4], "big")); s.settimeout(2.0)',
  'except socket.timeout:',
  '    pass',
  'print(",".join(map(str, seen)), flush=True)',
].join('\n');
const { spawn } = await import('node:child_process');
const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', receiver], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (d: Buffer) => (out += d.toString()));
const closed = new Promise((resolve) => child.once('close', resolve));
while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 20));
await run('ip', [
  'netns',
  'exec',
  ns,
  'python3',
  '-c',
  `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(${FRAMES}): s.sendto(i.to_bytes(4, "big"), ("10.80.0.2", 9))`,
]);

const read: number[] = [];
const buf = new Uint8Array(2048);
const deadline = Date.now() + 10_000;
while (read.length < FRAMES && Date.now() < deadline) {
  const n = port.next(buf, 0, buf.length);
  if (n === 0) {
    await new Promise((r) => setTimeout(r, 5));
    continue;
  }
  // IPv4/UDP to port 9 only (the kernel may also send an IPv6 router solicitation or the like).
  if (n >= 46 && buf[12] === 0x08 && buf[13] === 0 && buf[23] === 17 && buf[36] === 0 && buf[37] === 9)
    read.push(new DataView(buf.buffer).getUint32(42));
}
for (let i = 0; i < FRAMES; i++) {
  const f = frame(i, mac);
  port.write(f, 0, f.length, 0, 0);
  if (i % 500 === 499) await new Promise((r) => setTimeout(r, 20)); // let the receiver keep up
}
await closed;
const sent = out.split('\n')[1]?.split(',').filter(Boolean).map(Number) ?? [];
port.close();
console.log(JSON.stringify({ read, sent, counters: port.counters }));
