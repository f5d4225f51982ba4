/**
 * IPFIX export read back by tshark's IPFIX decoder (the `cflow` dissector), field by field.
 *
 * Flow-monitor records, made here and produced by a running host (generator → flow-monitor →
 * sink, 1 s idle timeout), are exported by IpfixExporter to a UDP collector on 127.0.0.1 and to
 * an RFC 5655 file. The collector writes what it receives as a pcap (Ethernet/IPv4/UDP to port
 * 4739); tshark reads the pcap (`-d udp.port==4739,cflow`) and the IPFIX file (tshark opens the
 * IPFIX file format directly) as JSON, and every data record it shows must equal the record
 * nfvisor meant to send, in order, with no malformed packet or expert error.
 *
 * Needs: tshark (Debian `tshark`); fails, never skips, without it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';
import { IPFIX_PORT, type IpfixFlow } from '../../src/io/ipfix.js';
import { IpfixExporter, type IpfixSourceRecord } from '../../src/io/ipfix-exporter.js';
import { waitFor, writeDatagramPcap } from './datagram-capture.js';

process.env.NFVISOR_QUIET = '1';

let dir = '';

function tsharkVersion(): string {
  try {
    return execFileSync('tshark', ['--version'], { encoding: 'utf8', timeout: 10_000 }).split('\n')[0];
  } catch {
    return '';
  }
}

/** What nfvisor means to send for a flow-monitor record: forward, then reverse if it saw packets. */
function expectedFlows(records: IpfixSourceRecord[]): IpfixFlow[] {
  const out: IpfixFlow[] = [];
  for (const r of records) {
    const common = {
      ipVersion: r.ipVersion,
      protocol: r.protocol,
      startMs: Math.floor(r.firstSeen / 1e6),
      endMs: Math.floor(r.lastSeen / 1e6),
      endReason: r.endReason === 'active' ? 2 : 1,
    };
    out.push({
      ...common,
      src: r.src,
      dst: r.dst,
      srcPort: r.srcPort,
      dstPort: r.dstPort,
      packets: r.packets,
      octets: r.bytes,
      tcpFlags: r.tcpFlags,
    });
    if (r.reversePackets > 0)
      out.push({
        ...common,
        src: r.dst,
        dst: r.src,
        srcPort: r.dstPort,
        dstPort: r.srcPort,
        packets: r.reversePackets,
        octets: r.reverseBytes,
        tcpFlags: r.reverseTcpFlags,
      });
  }
  return out;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** tshark's absolute time text, "Nov 14, 2023 22:13:20.123000000 UTC", as epoch milliseconds. */
function tsharkTimeMs(text: string): number {
  const m = /^([A-Z][a-z]{2}) +(\d+), (\d{4}) (\d\d):(\d\d):(\d\d)\.(\d{9}) UTC$/.exec(text);
  assert.ok(m, `tshark time ${text}`);
  const ms = Date.UTC(+m[3], MONTHS.indexOf(m[1]), +m[2], +m[4], +m[5], +m[6]);
  return ms + Math.floor(+m[7] / 1e6);
}

interface Decoded {
  flows: IpfixFlow[];
  sequences: number[];
  perFrame: number[];
}

type Tree = Record<string, unknown>;

/** Runs tshark on `file` and returns the data records of every frame, in order. */
function tshark(file: string, extra: string[] = []): Decoded {
  const json = execFileSync('tshark', ['-n', '-r', file, ...extra, '-T', 'json'], {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 256 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const bad of ['_ws.malformed', '_ws.expert', '_ws.short'])
    assert.ok(!json.includes(bad), `tshark reports ${bad} on ${file}`);
  const frames = JSON.parse(json) as { _source: { layers: Tree } }[];
  const out: Decoded = { flows: [], sequences: [], perFrame: [] };
  for (const frame of frames) {
    const cflow = frame._source.layers.cflow as Tree | undefined;
    assert.ok(cflow, `frame without IPFIX in ${file}: ${Object.keys(frame._source.layers).join(',')}`);
    assert.equal(cflow['cflow.version'], '10');
    out.sequences.push(Number(cflow['cflow.sequence']));
    let n = 0;
    for (const [setName, set] of Object.entries(cflow)) {
      if (!setName.startsWith('Set ')) continue;
      const s = set as Tree;
      if (Number(s['cflow.flowset_id']) < 256) continue;
      for (const [flowName, f] of Object.entries(s)) {
        if (!flowName.startsWith('Flow ')) continue;
        const r = f as Tree;
        const times = r['cflow.timedelta_tree'] as Tree;
        const v6 = 'cflow.srcaddrv6' in r;
        out.flows.push({
          ipVersion: v6 ? 6 : 4,
          src: String(v6 ? r['cflow.srcaddrv6'] : r['cflow.srcaddr']),
          dst: String(v6 ? r['cflow.dstaddrv6'] : r['cflow.dstaddr']),
          srcPort: Number(r['cflow.srcport']),
          dstPort: Number(r['cflow.dstport']),
          protocol: Number(r['cflow.protocol']),
          packets: Number(r['cflow.packets']),
          octets: Number(r['cflow.octets']),
          tcpFlags: Number(r['cflow.tcpflags']),
          startMs: tsharkTimeMs(String(times['cflow.abstimestart'])),
          endMs: tsharkTimeMs(String(times['cflow.abstimeend'])),
          endReason: Number(r['cflow.flow_end_reason']),
        });
        n++;
      }
    }
    out.perFrame.push(n);
  }
  return out;
}

/** A UDP collector on 127.0.0.1 that keeps every datagram. */
async function collector(): Promise<{ port: number; datagrams: Buffer[]; close: () => Promise<void> }> {
  const socket = createSocket('udp4');
  const datagrams: Buffer[] = [];
  socket.on('message', (m) => datagrams.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    datagrams,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Exports whatever `source` yields over `passes`, and checks the UDP and file copies with tshark. */
async function exportAndCheck(
  name: string,
  source: () => readonly unknown[] | null,
  passes: (exporter: IpfixExporter) => Promise<void>,
  sent: () => IpfixSourceRecord[],
): Promise<{ flows: number }> {
  const coll = await collector();
  const file = join(dir, `${name}.ipfix`);
  const exporter = new IpfixExporter({
    source,
    udp: { address: '127.0.0.1', port: coll.port },
    file,
    observationDomainId: 42,
    templateRefreshMessages: 3,
  });
  exporter.start(60_000); // passes are driven by the test
  await passes(exporter);
  await exporter.stop();
  const records = sent();
  const stats = exporter.stats();
  assert.equal(stats.errors, 0, `exporter errors: ${stats.lastError}`);
  assert.equal(stats.missed, 0);
  assert.equal(stats.invalid, 0);
  await waitFor(() => coll.datagrams.length >= stats.messages, 5000, `${stats.messages} datagrams`);
  await coll.close();
  assert.equal(coll.datagrams.length, stats.messages);
  for (const d of coll.datagrams) assert.ok(d.length <= 1400, `message of ${d.length} bytes`);

  const expected = expectedFlows(records);
  assert.equal(stats.records, expected.length);
  assert.equal(stats.flows, records.length);
  assert.equal(readFileSync(file).length, stats.bytes);

  const pcap = join(dir, `${name}.pcap`);
  writeDatagramPcap(pcap, coll.datagrams, { srcPort: 40000, dstPort: IPFIX_PORT });
  for (const decoded of [tshark(pcap, ['-d', `udp.port==${IPFIX_PORT},cflow`]), tshark(file)]) {
    assert.equal(decoded.flows.length, expected.length, 'tshark decodes every record');
    decoded.flows.forEach((f, i) => assert.deepEqual(f, expected[i], `record ${i}`));
    let sequence = 0;
    decoded.sequences.forEach((s, i) => {
      assert.equal(s, sequence, `sequence number of message ${i}`);
      sequence += decoded.perFrame[i];
    });
  }
  return { flows: records.length };
}

describe('IPFIX export read by tshark', () => {
  before(() => {
    const version = tsharkVersion();
    assert.ok(version !== '', 'tshark is required (Debian package `tshark`): it is not on PATH');
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-ipfix-'));
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('decodes synthetic records of every kind, over several messages and two passes, field by field', async () => {
    const ring: IpfixSourceRecord[] = [];
    let total = 0;
    const t0 = 1_700_000_000_123 * 1e6 + 456_789;
    const add = (r: Omit<IpfixSourceRecord, 'sequence'>): void => {
      total++;
      ring.push({ ...r, sequence: total });
    };
    const make = (i: number): void => {
      const v6 = i % 3 === 2;
      const proto = [6, 17, 1, 6][i % 4];
      add({
        ipVersion: v6 ? 6 : 4,
        protocol: proto,
        src: v6 ? `2001:db8::${(i + 1).toString(16)}` : `10.0.${i >> 8}.${i & 255}`,
        dst: v6 ? 'fd00:1::80' : '192.0.2.80',
        srcPort: proto === 1 ? 0 : 1024 + i,
        dstPort: proto === 1 ? 0x0800 : 443,
        packets: 1 + i,
        bytes: 60 * (1 + i) + (i === 7 ? 2 ** 40 : 0),
        tcpFlags: proto === 6 ? 0x1b : 0,
        reversePackets: i % 5 === 4 ? 0 : i,
        reverseBytes: i % 5 === 4 ? 0 : 1500 * i,
        reverseTcpFlags: proto === 6 ? 0x12 | (i & 1) : 0,
        firstSeen: t0 + i * 1e9,
        lastSeen: t0 + i * 1e9 + 987_654_321,
        endReason: i % 6 === 5 ? 'active' : 'idle',
      });
    };
    const { flows } = await exportAndCheck(
      'synthetic',
      () => [{ version: 1, flows: [], exported: ring, exportedTotal: total }],
      async (exporter) => {
        for (let i = 0; i < 70; i++) make(i);
        assert.ok(exporter.exportNow() > 0);
        assert.equal(exporter.exportNow(), 0, 'nothing is sent twice');
        for (let i = 70; i < 100; i++) make(i); // sent by the last pass, in stop()
        await Promise.resolve();
      },
      () => ring,
    );
    assert.equal(flows, 100);
  });

  it('decodes the records a running host’s flow-monitor exports (generator → flow-monitor → sink)', async () => {
    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        gen: {
          kind: 'generator',
          options: {
            seed: 5,
            packets: 4000,
            frameSize: 128,
            flows: 40,
            ipv6: 0.3,
            mix: { tcp: 2, udp: 2, icmp: 1 },
          },
        },
        // A live input keeps the host running after the generator ends, so idle flows expire.
        live: { kind: 'vxlan', options: { bind: { address: '127.0.0.1', port: 0 }, vni: 77 } },
        sink: { kind: 'sink' },
      },
      nfs: {
        mon: {
          module: builtinModule('flow-monitor'),
          config: { idleTimeoutSeconds: 1, activeTimeoutSeconds: 60, exportRecords: 4096 },
          vnic: 'direct',
          placement: 'isolated',
          replicas: 1,
          heapMb: 64,
          failure: 'fail-closed',
        },
      },
      chains: [
        { name: 'gen', from: 'gen', to: 'sink', through: ['mon'] },
        { name: 'live', from: 'live', to: 'sink', through: ['mon'] },
      ],
    };
    const host = await Host.create(plan);
    const running = host.run();
    // Every record the exporter was shown, once each, in the order it saw them.
    const seen = new Map<number, IpfixSourceRecord>();
    const source = (): unknown[] | null => {
      const snapshots = host.snapshotsOf('mon');
      const s = snapshots?.[0] as { exported?: IpfixSourceRecord[] } | undefined;
      for (const r of s?.exported ?? []) if (!seen.has(r.sequence ?? 0)) seen.set(r.sequence ?? 0, r);
      return snapshots;
    };
    const total = (): number => {
      const s = host.snapshotsOf('mon')?.[0] as { exportedTotal?: number } | undefined;
      return s?.exportedTotal ?? 0;
    };
    let flows: number;
    try {
      ({ flows } = await exportAndCheck(
        'host',
        source,
        async (exporter) => {
          await waitFor(() => total() >= 40, 15_000, 'the 40 generated flows to end (idle timeout)');
          assert.ok(exporter.exportNow() >= 40);
        },
        () => [...seen.values()],
      ));
    } finally {
      host.stop();
      await running;
    }
    assert.ok(flows >= 40, `${flows} flows exported`);
  });
});
