/**
 * TAP ports with TSO and checksum offloads (src/io/tap-port.ts, src/io/tcp-offload.ts), between
 * real network stacks. Namespace a's TCP sends super-packets of up to 64 KiB into its offloading
 * TAP devices; they cross a firewall guest whole and leave
 *
 * - "whole": through an offloading TAP device into b, whose kernel takes them as they are;
 * - "cut": through a plain TAP device into b, so the host cuts them into MSS-sized segments itself
 *   (software GSO). tshark, capturing on that device in b, judges every segment: IP and TCP
 *   checksums verified, no segment's payload longer than the MSS.
 *
 *   ns a                                    root namespace: nfvisor host                      ns b
 *   oa 10.79.1.1/24 ═ fd ── oa → [fw1] → ob ── fd ═ ob 10.79.1.2/24   (offload both ends)
 *                               ob → [fw2] → oa
 *   ca 10.79.2.1/24 ═ fd ── ca → [fw3] → cb ── fd ═ cb 10.79.2.2/24   (offload → plain: cut)
 *                               cb → [fw4] → ca
 *
 * curl in b fetches a 4 MB file from an HTTP server in a over each pair, byte for byte; the whole
 * exchange runs with inline firewalls and again with paravirt and with emulated guests.
 * Needs root, iproute2, python3, curl, tshark and the native addon built (npm ci).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Host, type HostPlan, type HostSummary, type NfPlan } from '../../src/host/host.js';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { SUPER_PACKET_SLOT_SIZE } from '../../src/io/tcp-offload.js';
import { requireRoot, requireTools, run, Testbed } from './netns.js';
import { inlineFirewall, waitForDevices } from './tap-helpers.js';

process.env.NFVISOR_QUIET = '1';
const FILE_BYTES = 4_000_000;
/** MTU 1500 − 20 (IPv4) − 20 (TCP) − 12 (timestamps): the segments' payload at most. */
const MSS = 1448;

// Inline firewalls on the host's thread, then isolated guests whose vNICs copy every packet: a
// 64 KiB super-packet is one packet to every vNIC mode.
for (const [vnic, tag] of [
  ['direct', 'd'],
  ['paravirt', 'p'],
  ['emulated', 'e'],
] as const)
  describe(`TAP offloads (${vnic === 'direct' ? 'inline' : `${vnic} guests`}): TCP super-packets through a chain, whole and cut by the host`, () => {
    const bed = new Testbed(`nfo${tag}${process.pid % 10000}`);
    const firewall = (): NfPlan => ({
      ...inlineFirewall(),
      vnic,
      placement: vnic === 'direct' ? 'inline' : 'isolated',
    });
    const dir = mkdtempSync(join(tmpdir(), 'nfv-offload-'));
    const body = randomBytes(FILE_BYTES);
    const bodyDigest = createHash('sha256').update(body).digest('hex');
    let a = '';
    let b = '';
    let host: Host | null = null;
    let running: Promise<HostSummary> | null = null;
    const [oa, ob, ca, cb] = ['oa', 'ob', 'ca', 'cb'].map((n) => bed.name(n));

    before(async () => {
      requireRoot('tap-offload.test');
      await requireTools(['ip', 'python3', 'curl', 'tshark']);
      assert.ok(
        loadNativeAddon(),
        `the native addon must be built for TAP ports: ${addonUnavailableReason()}`,
      );
      a = await bed.addNamespace('a');
      b = await bed.addNamespace('b');
      const plan: HostPlan = {
        pool: { slots: 1024, slotSize: SUPER_PACKET_SLOT_SIZE },
        ringSize: 256,
        batch: 32,
        ports: {
          oa: { kind: 'tap', options: { device: oa, offload: true } },
          ob: { kind: 'tap', options: { device: ob, offload: true } },
          ca: { kind: 'tap', options: { device: ca, offload: true } },
          cb: { kind: 'tap', options: { device: cb } },
        },
        nfs: { fw1: firewall(), fw2: firewall(), fw3: firewall(), fw4: firewall() },
        chains: [
          { name: 'whole-a-b', from: 'oa', to: 'ob', through: ['fw1'] },
          { name: 'whole-b-a', from: 'ob', to: 'oa', through: ['fw2'] },
          { name: 'cut-a-b', from: 'ca', to: 'cb', through: ['fw3'] },
          { name: 'cut-b-a', from: 'cb', to: 'ca', through: ['fw4'] },
        ],
      };
      host = await Host.create(plan);
      running = host.run();
      await waitForDevices(running, [oa, ob, ca, cb]);
      for (const [ns, dev, address] of [
        [a, oa, '10.79.1.1/24'],
        [b, ob, '10.79.1.2/24'],
        [a, ca, '10.79.2.1/24'],
        [b, cb, '10.79.2.2/24'],
      ]) {
        await run('ip', ['link', 'set', dev, 'netns', ns]);
        await bed.addAddress(dev, address, ns);
        await bed.ip(ns, ['link', 'set', dev, 'up']);
      }
      writeFileSync(join(dir, 'blob.bin'), body);
    });

    after(async () => {
      host?.stop();
      await running?.catch(() => undefined);
      await bed.teardown();
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
    });

    /** curl in b fetches the file from a's HTTP server at `address`; asserts it arrived unchanged. */
    async function fetchFrom(address: string): Promise<void> {
      const server = bed.start(a, 'python3', [
        '-u',
        '-m',
        'http.server',
        '8080',
        '--bind',
        address,
        '--directory',
        dir,
      ]);
      await server.waitFor(/Serving HTTP/, 20_000);
      const out = join(dir, `got-${address}.bin`);
      try {
        const curl = await bed.exec(
          b,
          'curl',
          [
            '-sS',
            '--max-time',
            '90',
            '-o',
            out,
            '-w',
            '%{http_code} %{size_download}',
            `http://${address}:8080/blob.bin`,
          ],
          100_000,
        );
        assert.equal(curl.stdout, `200 ${FILE_BYTES}`);
        const digest = (await run('sha256sum', [out])).stdout.split(' ')[0];
        assert.equal(digest, bodyDigest, 'the file arrived unchanged');
      } finally {
        await server.stop();
      }
    }

    function counters(port: string): Record<string, number> {
      const counted = host!.status().ports[port]?.counters;
      assert.ok(counted, `port ${port} reports its counters`);
      return counted;
    }

    it('whole: a 4 MB download crosses as super-packets, taken and handed over whole', async () => {
      await fetchFrom('10.79.1.1');
      const from = counters('oa');
      const to = counters('ob');
      // 4 MB in ≤ 64 KiB super-packets is ≥ 62 of them; a stack that sent none would leave these at 0.
      assert.ok(from.rx_super >= 10, `super-packets received from a: ${JSON.stringify(from)}`);
      assert.ok(to.tx_super >= 10, `super-packets handed to b whole: ${JSON.stringify(to)}`);
      assert.equal(from.rx_bad_offload, 0);
    });

    it('cut: the host segments them for a plain TAP device, and tshark finds every segment valid', async () => {
      const capture = join(dir, 'cut.pcapng');
      const tshark = bed.start(b, 'tshark', [
        '-n',
        '-i',
        cb,
        '-f',
        'tcp',
        '-B',
        '64', // MiB of capture buffer: the download arrives faster than tshark writes it out
        '-w',
        capture,
        '-a',
        'duration:120',
      ]);
      await tshark.waitFor(/Capturing on/, 15_000);
      await fetchFrom('10.79.2.1');
      await new Promise((resolve) => setTimeout(resolve, 500)); // what is in the buffer reaches the file
      await tshark.stop();
      assert.ok(
        counters('ca').rx_super >= 10,
        `super-packets received from a: ${JSON.stringify(counters('ca'))}`,
      );
      const rows = execFileSync(
        'tshark',
        [
          '-n',
          '-r',
          capture,
          '-o',
          'tcp.check_checksum:TRUE',
          '-o',
          'ip.check_checksum:TRUE',
          '-Y',
          'ip.src == 10.79.2.1 && tcp.len > 0',
          '-T',
          'fields',
          '-e',
          'tcp.len',
          '-e',
          'ip.checksum.status',
          '-e',
          'tcp.checksum.status',
        ],
        { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 },
      )
        .trim()
        .split('\n')
        .map((line) => line.split('\t'));
      const payload = rows.reduce((sum, row) => sum + Number(row[0]), 0);
      // The capture starts before the request: every data segment of the response is in it.
      assert.ok(payload >= FILE_BYTES, `tshark saw ${payload} payload bytes in ${rows.length} segments`);
      const longest = Math.max(...rows.map((row) => Number(row[0])));
      assert.ok(longest <= MSS, `no segment longer than the MSS (longest ${longest})`);
      // tshark's checksum status: 1 good (0 bad, 2 unverified).
      const bad = rows.filter((row) => row[1] !== '1' || row[2] !== '1');
      assert.deepEqual(
        bad.slice(0, 5),
        [],
        `${bad.length} of ${rows.length} segments fail tshark's checksum checks`,
      );
    });

    it('stops cleanly: every packet accounted for, every slot free', async () => {
      host!.stop();
      const summary = await running!;
      running = null;
      assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
      assert.equal(summary.poolFree, summary.poolSlots);
      assert.equal(summary.hostDrops.super_packet_uncut ?? 0, 0);
    });
  });
