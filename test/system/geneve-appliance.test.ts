/**
 * nfvisor's GENEVE port as an appliance behind a gateway load balancer (RFC 8926), judged by
 * software nobody here wrote. No kernel GENEVE device exists on this machine, so scapy plays the
 * gateway: it builds the datagrams (varied VNIs, option TLVs including a critical one, OAM, inner
 * TCP/UDP/ICMP), and tshark first confirms they are GENEVE as Wireshark reads it. Two gateway
 * sockets on loopback send them to a running host whose chain is GENEVE port → firewall (drop TCP
 * port 22) → the same port. What comes back is captured and decoded by tshark: every datagram of
 * this port's VNI that the firewall accepts returns to the socket it came from, with the VNI and
 * the options — class, type, data — it arrived with and the inner frame intact; port 22, other VNIs
 * and OAM never return; and the host's counters say the same.
 *
 * Needs: tshark, python3-scapy (`.ci/run` installs both); fails, never skips, without them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';
import { waitFor, writeDatagramPcap } from './datagram-capture.js';

process.env.NFVISOR_QUIET = '1';

interface Sent {
  hex: string;
  gateway: number;
  vni: number;
  oam: number;
  options: { class: number; type: number; data: string }[];
  proto: 'tcp' | 'udp' | 'icmp';
  dport: number;
  innerSrc: string;
}

const VNI = 77;
const SCRIPT = new URL('../../../test/system/scapy/make-geneve.py', import.meta.url).pathname;
const FIELDS = [
  'geneve.vni',
  'geneve.flags.oam',
  'geneve.option.class',
  'geneve.option.type',
  'geneve.option.unknown.data',
  'ip.src',
  'ip.dst',
  'tcp.dstport',
  'udp.dstport',
  '_ws.expert.severity',
];

let dir = '';

/** tshark's view of a capture of GENEVE datagrams on `udpPort`, one record of FIELDS per packet. */
function decode(path: string, udpPort: number): Record<string, string>[] {
  const out = execFileSync(
    'tshark',
    [
      '-r',
      path,
      '-d',
      `udp.port==${udpPort},geneve`,
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=,',
      ...FIELDS.flatMap((f) => ['-e', f]),
    ],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return out
    .trim()
    .split('\n')
    .map((line) => {
      const values = line.split('|');
      const fields = Object.fromEntries(FIELDS.map((f, i) => [f, values[i] ?? '']));
      // Chat and note are tshark's remarks (a SYN, say); a warning or an error is a finding.
      const severities = fields['_ws.expert.severity'].split(',').filter((v) => v !== '');
      assert.ok(
        severities.every((v) => Number(v) <= EXPERT_NOTE),
        `tshark has warnings or errors: ${line}`,
      );
      delete fields['_ws.expert.severity'];
      return fields;
    });
}

/** tshark's PI_NOTE: severities above it are warnings and errors. */
const EXPERT_NOTE = 0x00400000;

const hex16 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;
const hex8 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/** What tshark must show for a datagram that went out and came back unchanged in its header. */
function expectedFields(d: Sent, udpPort: number): Record<string, string> {
  const innerPort = d.proto === 'tcp' ? '' : d.proto === 'udp' ? String(d.dport) : '';
  return {
    'geneve.vni': `0x${d.vni.toString(16).padStart(6, '0')}`,
    'geneve.flags.oam': String(d.oam),
    'geneve.option.class': d.options.map((o) => hex16(o.class)).join(','),
    'geneve.option.type': d.options.map((o) => hex8(o.type)).join(','),
    'geneve.option.unknown.data': d.options.map((o) => o.data).join(','),
    'ip.src': `127.0.0.1,${d.innerSrc}`,
    'ip.dst': '127.0.0.1,198.19.0.80',
    'tcp.dstport': d.proto === 'tcp' ? String(d.dport) : '',
    'udp.dstport': innerPort ? `${udpPort},${innerPort}` : String(udpPort),
  };
}

describe('GENEVE appliance, judged by scapy and tshark', () => {
  let sent: Sent[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-geneve-'));
    execFileSync('/usr/bin/python3', [SCRIPT, join(dir, 'in.pcap'), join(dir, 'in.json')], {
      timeout: 120_000,
    });
    sent = JSON.parse(readFileSync(join(dir, 'in.json'), 'utf8')) as Sent[];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('scapy made GENEVE as tshark reads it', () => {
    const decoded = decode(join(dir, 'in.pcap'), 6081);
    assert.equal(decoded.length, sent.length);
    decoded.forEach((fields, i) => assert.deepEqual(fields, expectedFields(sent[i], 6081), `datagram ${i}`));
  });

  it('returns each accepted datagram to its gateway in its own tunnel, options and all', async () => {
    const gateways: Socket[] = [createSocket('udp4'), createSocket('udp4')];
    const received: Buffer[][] = [[], []];
    gateways.forEach((socket, g) => socket.on('message', (msg) => received[g].push(msg)));
    await Promise.all(gateways.map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', r))));
    // The appliance's port: a free one, so that nothing else on the machine is disturbed.
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
    const appliancePort = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));

    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        gw: { kind: 'geneve', options: { bind: { address: '127.0.0.1', port: appliancePort }, vni: VNI } },
      },
      nfs: {
        fw: {
          module: builtinModule('firewall'),
          config: { default: 'accept', rules: [{ action: 'drop', protocol: 'tcp', dstPort: '22' }] },
          vnic: 'direct',
          placement: 'isolated',
          replicas: 1,
          heapMb: 64,
          failure: 'fail-closed',
        },
      },
      chains: [{ name: 'appliance', from: 'gw', to: 'gw', through: ['fw'] }],
    };
    const host = await Host.create(plan);
    const running = host.run();
    await host.opened;
    const ours = sent.filter((d) => d.vni === VNI && d.oam === 0);
    const returned = ours.filter((d) => !(d.proto === 'tcp' && d.dport === 22));
    try {
      for (const d of sent) {
        // Paced a little: loopback drops nothing, but the receive queue is bounded.
        await new Promise<void>((r) =>
          gateways[d.gateway].send(Buffer.from(d.hex, 'hex'), appliancePort, '127.0.0.1', () => r()),
        );
      }
      await waitFor(
        () => received[0].length + received[1].length >= returned.length,
        10_000,
        `${returned.length} datagrams back`,
      );
      await new Promise((r) => setTimeout(r, 200)); // anything extra would arrive now
    } finally {
      host.stop();
      gateways.forEach((s) => s.close());
    }
    const summary = await running;

    for (const g of [0, 1]) {
      const expected = returned.filter((d) => d.gateway === g);
      assert.equal(received[g].length, expected.length, `gateway ${g} gets back exactly its own datagrams`);
      const path = join(dir, `back-${g}.pcap`);
      writeDatagramPcap(path, received[g], { srcPort: appliancePort, dstPort: 40000 + g });
      const decoded = decode(path, appliancePort);
      // The firewall keeps order within a burst; one sender's datagrams come back in sending order.
      decoded.forEach((fields, i) =>
        assert.deepEqual(
          fields,
          {
            ...expectedFields(expected[i], 40000 + g),
            'udp.dstport': expectedFields(expected[i], appliancePort)['udp.dstport'].replace(
              String(appliancePort),
              String(40000 + g),
            ),
          },
          `gateway ${g}, datagram ${i}`,
        ),
      );
      // Byte for byte: a transit appliance that passes a packet changes nothing in it.
      received[g].forEach((msg, i) => assert.equal(msg.toString('hex'), expected[i].hex));
    }

    assert.equal(summary.received, ours.length, 'other VNIs and OAM are not taken in');
    assert.equal(summary.sent, returned.length);
    const fw = summary.nfs.find((n) => n.name === 'fw');
    assert.equal(
      Object.values(fw?.drops ?? {}).reduce((a, b) => a + b, 0),
      ours.length - returned.length,
      'the port-22 SYNs are the firewall drops',
    );
  });
});
