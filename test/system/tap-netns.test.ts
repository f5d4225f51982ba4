/**
 * Real network stacks joined by nfvisor's TAP and TUN ports. The host creates the devices; the test
 * moves each into a namespace it made (`ip link set <dev> netns <ns>`: the host's fd keeps working)
 * and gives it an address. Two TAP devices carry Ethernet between a and b; two TUN devices carry
 * bare IP (the ports add and strip an Ethernet header for the chains). Each direction crosses a
 * firewall guest. Real `ping`, a UDP echo exchange and `curl` fetching a file over HTTP must work.
 * A fifth port asks for a device another port already holds (EBUSY): it must be reported by name
 * while the other ports carry traffic.
 *
 *   ns a                                  root namespace: nfvisor host                       ns b
 *   ta 10.77.0.1/24 ═══ fd ── ta → [fwab] → tb ── fd ═══ tb 10.77.0.2/24   (TAP, Ethernet)
 *                                  tb → [fwba] → ta
 *   ua 10.78.0.1 ─ peer ═ fd ── ua → [fwu1] → ub ── fd ═ ub 10.78.0.2 ─ peer   (TUN, IP only)
 *                                  ub → [fwu2] → ua
 *                       broken (device = ta's, busy) → [fwx] → tb: refused, named, the rest runs
 *
 * Needs root, iproute2, iputils-ping, python3 and curl, and the native addon built (npm ci).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Host, type HostPlan, type HostSummary } from '../../src/host/host.js';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { DEFAULT_TAP_QUEUE_LENGTH } from '../../src/io/tap-port.js';
import { requireRoot, requireTools, run, Testbed } from './netns.js';
import { inlineFirewall, waitForDevices } from './tap-helpers.js';

process.env.NFVISOR_QUIET = '1';
const PINGS = 5;
const DATAGRAMS = 20;
const FILE_BYTES = 200_000;

/** Replies ping counted; with -w it sends until it has -c replies or the deadline passes. */
function received(pingOutput: string): number {
  return Number(/(\d+) received/.exec(pingOutput)?.[1] ?? 0);
}

const UDP_ECHO = [
  'import socket, sys',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  's.bind((sys.argv[1], int(sys.argv[2])))',
  'print("ready", flush=True)',
  'while True:',
  '    data, peer = s.recvfrom(4096)',
  '    s.sendto(data, peer)',
].join('\n');

const UDP_CLIENT = [
  'import socket, sys',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  's.settimeout(5.0)',
  'ok = 0',
  'for i in range(int(sys.argv[3])):',
  '    payload = b"nfvisor-tap-%04d" % i',
  '    s.sendto(payload, (sys.argv[1], int(sys.argv[2])))',
  '    try:',
  '        data, _ = s.recvfrom(4096)',
  '        ok += data == payload',
  '    except socket.timeout:',
  '        pass',
  'print(ok)',
].join('\n');

describe('TAP and TUN ports: real stacks in namespaces through nfvisor chains', () => {
  const bed = new Testbed(`nft${process.pid % 100000}`);
  const dir = mkdtempSync(join(tmpdir(), 'nfv-tap-'));
  let a = '';
  let b = '';
  let host: Host | null = null;
  let running: Promise<HostSummary> | null = null;
  const ta = bed.name('ta');
  const tb = bed.name('tb');
  const ua = bed.name('ua');
  const ub = bed.name('ub');

  before(async () => {
    requireRoot('tap-netns.test');
    await requireTools(['ip', 'ping', 'python3', 'curl']);
    assert.ok(loadNativeAddon(), `the native addon must be built for TAP ports: ${addonUnavailableReason()}`);
    a = await bed.addNamespace('a');
    b = await bed.addNamespace('b');

    const plan: HostPlan = {
      pool: { slots: 2048, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        ta: { kind: 'tap', options: { device: ta } },
        tb: { kind: 'tap', options: { device: tb, queueLength: 2345 } },
        ua: { kind: 'tap', options: { device: ua, mode: 'tun' } },
        ub: { kind: 'tap', options: { device: ub, mode: 'tun' } },
        broken: { kind: 'tap', options: { device: ta } },
      },
      nfs: {
        fwab: inlineFirewall(),
        fwba: inlineFirewall(),
        fwu1: inlineFirewall(),
        fwu2: inlineFirewall(),
        fwx: inlineFirewall(),
      },
      chains: [
        { name: 'a-to-b', from: 'ta', to: 'tb', through: ['fwab'] },
        { name: 'b-to-a', from: 'tb', to: 'ta', through: ['fwba'] },
        { name: 'tun-a-to-b', from: 'ua', to: 'ub', through: ['fwu1'] },
        { name: 'tun-b-to-a', from: 'ub', to: 'ua', through: ['fwu2'] },
        { name: 'from-broken', from: 'broken', to: 'tb', through: ['fwx'] },
      ],
    };
    host = await Host.create(plan);
    running = host.run();
    // The host opens its ports once its five guests are up (seconds on a loaded 2-core box); a run
    // that fails first ends the wait.
    await waitForDevices(running, [ta, tb, ua, ub]);
    // The host holds the fds; the devices move into the namespaces and are configured there.
    await run('ip', ['link', 'set', ta, 'netns', a]);
    await run('ip', ['link', 'set', tb, 'netns', b]);
    await run('ip', ['link', 'set', ua, 'netns', a]);
    await run('ip', ['link', 'set', ub, 'netns', b]);
    await bed.addAddress(ta, '10.77.0.1/24', a);
    await bed.addAddress(tb, '10.77.0.2/24', b);
    await bed.ip(a, ['addr', 'add', '10.78.0.1', 'peer', '10.78.0.2', 'dev', ua]);
    await bed.ip(b, ['addr', 'add', '10.78.0.2', 'peer', '10.78.0.1', 'dev', ub]);
    for (const [ns, dev] of [
      [a, ta],
      [b, tb],
      [a, ua],
      [b, ub],
    ])
      await bed.ip(ns, ['link', 'set', dev, 'up']);
  });

  after(async () => {
    host?.stop();
    await running?.catch(() => undefined);
    await bed.teardown();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
  });

  it('names the port whose device is busy, and keeps the other ports running', () => {
    assert.equal(host?.failedPorts.length, 1, JSON.stringify(host?.failedPorts));
    const [failed] = host.failedPorts;
    assert.equal(failed.port, 'broken');
    assert.match(failed.message, new RegExp(`^tap port broken: cannot open device ${ta}: device busy`));
  });

  it("each device holds the frames its port asked for (txqueuelen): 2,345 set, the port's 4,096 by default", async () => {
    const qlen = async (ns: string, dev: string): Promise<number> =>
      (JSON.parse((await bed.ip(ns, ['-j', 'link', 'show', 'dev', dev])).stdout) as { txqlen: number }[])[0]
        .txqlen;
    assert.equal(await qlen(b, tb), 2345);
    assert.equal(await qlen(a, ta), DEFAULT_TAP_QUEUE_LENGTH);
    assert.equal(await qlen(a, ua), DEFAULT_TAP_QUEUE_LENGTH);
  });

  it('TAP: ping a → b gets every reply (ARP and ICMP through two firewall guests)', async () => {
    const ping = await bed.exec(
      a,
      'ping',
      ['-c', String(PINGS), '-i', '0.2', '-W', '5', '-w', '30', '10.77.0.2'],
      40_000,
    );
    assert.equal(received(ping.stdout), PINGS, ping.stdout);
  });

  it('TAP: a UDP echo exchange a ⇄ b returns every datagram', async () => {
    const server = bed.start(b, 'python3', ['-c', UDP_ECHO, '10.77.0.2', '9999']);
    await server.waitFor(/ready/, 20_000);
    const client = await bed.exec(
      a,
      'python3',
      ['-c', UDP_CLIENT, '10.77.0.2', '9999', String(DATAGRAMS)],
      120_000,
    );
    assert.equal(client.stdout.trim(), String(DATAGRAMS), 'every datagram came back intact');
    await server.stop();
  });

  it('TAP: curl in a fetches a 200 kB file from an HTTP server in b, byte for byte (TCP)', async () => {
    const body = randomBytes(FILE_BYTES);
    writeFileSync(join(dir, 'blob.bin'), body);
    const server = bed.start(b, 'python3', [
      '-u',
      '-m',
      'http.server',
      '8080',
      '--bind',
      '10.77.0.2',
      '--directory',
      dir,
    ]);
    await server.waitFor(/Serving HTTP/, 20_000);
    const out = join(dir, 'got.bin');
    const curl = await bed.exec(
      a,
      'curl',
      [
        '-sS',
        '--max-time',
        '60',
        '-o',
        out,
        '-w',
        '%{http_code} %{size_download}',
        'http://10.77.0.2:8080/blob.bin',
      ],
      70_000,
    );
    assert.equal(curl.stdout, `200 ${FILE_BYTES}`);
    const digest = (await run('sha256sum', [out])).stdout.split(' ')[0];
    assert.equal(digest, createHash('sha256').update(body).digest('hex'), 'the file arrived unchanged');
    await server.stop();
  });

  it('TUN: ping a → b over bare IP gets every reply (Ethernet header added and stripped by the ports)', async () => {
    const ping = await bed.exec(
      a,
      'ping',
      ['-c', String(PINGS), '-i', '0.2', '-W', '5', '-w', '30', '10.78.0.2'],
      40_000,
    );
    assert.equal(received(ping.stdout), PINGS, ping.stdout);
  });

  it('stops cleanly: every packet accounted for, every slot free, the devices gone with the fds', async () => {
    host!.stop();
    const summary = await running!;
    running = null;
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.poolFree, summary.poolSlots);
    // TAP: 5 requests + 5 replies, 20 + 20 datagrams and ARP each way, and the TCP transfer: ~140
    // data segments of the 200 kB file towards a (b's server sends it), fewer ACKs towards b (the
    // receiver acknowledges every other segment or less); TUN: 5 + 5.
    assert.ok(summary.ports.ta.sent >= PINGS + DATAGRAMS + 100, JSON.stringify(summary.ports));
    assert.ok(summary.ports.tb.sent >= PINGS + DATAGRAMS + 10, JSON.stringify(summary.ports));
    assert.ok(
      summary.ports.ub.sent >= PINGS && summary.ports.ua.sent >= PINGS,
      JSON.stringify(summary.ports),
    );
    assert.equal(summary.ports.broken?.received ?? 0, 0);
    for (const [ns, dev] of [
      [a, ta],
      [b, tb],
      [a, ua],
      [b, ub],
    ]) {
      const gone = await bed.ip(ns, ['link', 'show', 'dev', dev]).then(
        () => false,
        () => true,
      );
      assert.ok(gone, `${dev} disappeared when the host closed it`);
    }
  });
});
