/**
 * The ids NF in a running host, judged by tshark: `nfvisor run` on a deployment that reads a
 * capture, passes it through ids (prevent mode) and writes a capture, with an EVE exporter.
 *
 * The input capture (written with the project's pcap writer) holds: a signature split over three
 * TCP segments sent out of order (alert rule), a conversation whose second segment matches a drop
 * rule (followed by more data both ways), a benign conversation, and a truncated frame.
 *
 * tshark (with TCP and IP checksum validation on) must find in the output exactly one RST, from the
 * server to the client, whose sequence number is the blocked segment's acknowledgment number, with
 * good checksums; none of the blocked flow's later packets; every benign packet. Every line of the
 * EVE file must parse as JSON with the EVE alert fields, one per expected alert.
 *
 * Needs: tshark (Debian `tshark`), and python3-scapy for the fragment case; fails, never skips, without them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runDeploymentFile } from '../../src/cli/run.js';
import { createCaptureWriter } from '../../src/io/capture.js';
import { Conversation } from '../../nfs/ids/test-frames.js';

process.env.NFVISOR_QUIET = '1';

let dir = '';

function tshark(args: string[]): string {
  return execFileSync(
    'tshark',
    ['-n', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', ...args],
    { encoding: 'utf8', timeout: 30_000 },
  );
}

const RULES = [
  'alert tcp any any -> any 80 (msg:"split signature"; content:"MALICIOUS-PAYLOAD"; nocase; flow:established,to_server; sid:1000001; rev:2; classtype:trojan-activity;)',
  'drop tcp any any -> any 8080 (msg:"blocked"; content:"DROP-ME"; sid:1000002; classtype:attempted-admin;)',
];

/** dir/ids.yaml: in.pcap → the IDS in prevent mode with `rules` → out.pcap, alerts to alerts.json. */
function writeDeployment(dir: string, rules: readonly string[]): void {
  writeFileSync(
    join(dir, 'ids.yaml'),
    [
      'ports:',
      '  in: { type: pcap, path: in.pcap }',
      '  out: { type: pcap, path: out.pcap }',
      'nfs:',
      '  ids:',
      '    image: builtin/ids',
      '    config:',
      '      mode: prevent',
      '      rules:',
      ...rules.map((r) => `        - '${r}'`),
      'chains:',
      '  - { name: main, from: in, through: [ids], to: out }',
      'exporters:',
      '  - { type: eve, nf: ids, file: alerts.json }',
      '',
    ].join('\n'),
  );
}

describe('ids in nfvisor run, judged by tshark', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-ids-'));
    const split = new Conversation('10.1.0.1', '10.1.0.2', 40001, 80);
    const blocked = new Conversation('10.1.0.3', '10.1.0.4', 40002, 8080);
    const benign = new Conversation('10.1.0.5', '10.1.0.6', 40003, 80);
    const truncated = benign.data(0, 0, 'hello world').slice(0, 40);
    const frames = [
      ...split.handshake(),
      split.data(0, 11, '-PAYLOAD!!'),
      split.data(0, 6, 'cious'),
      split.data(0, 0, '..MALI'),
      ...blocked.handshake(),
      blocked.data(0, 0, 'hello '),
      blocked.data(0, 6, 'DROP-ME now'),
      blocked.data(0, 17, 'more'),
      blocked.data(1, 0, 'reply'),
      ...benign.handshake(),
      benign.data(0, 0, 'GET / HTTP/1.1\r\n\r\n'),
      benign.data(1, 0, 'HTTP/1.1 200 OK\r\n\r\n'),
      truncated,
    ];
    const writer = createCaptureWriter(join(dir, 'in.pcap'), { format: 'pcap' });
    frames.forEach((f, i) => writer.writePacket(f, 0, f.length, 1_764_000_000 + i, 0));
    writer.close();
    writeDeployment(dir, RULES);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('resets the blocked flow with a RST tshark validates, drops its rest, and logs EVE alerts', async () => {
    const version = execFileSync('tshark', ['--version'], { encoding: 'utf8', timeout: 10_000 }).split(
      '\n',
    )[0];
    assert.match(version, /TShark/);
    await runDeploymentFile(join(dir, 'ids.yaml'), { progress: false });

    const fields = tshark([
      '-r',
      join(dir, 'out.pcap'),
      '-T',
      'fields',
      '-E',
      'separator=,',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'tcp.srcport',
      '-e',
      'tcp.dstport',
      '-e',
      'tcp.seq_raw',
      '-e',
      'tcp.flags.reset',
      '-e',
      'tcp.checksum.status',
      '-e',
      'ip.checksum.status',
    ])
      .trim()
      .split('\n')
      .map((line) => line.split(','));
    // 6 of the split flow; 5 of the blocked one (handshake, hello, the RST); 5 benign; the truncated frame dropped.
    assert.equal(fields.length, 6 + 5 + 5, fields.map((f) => f.join(' ')).join('\n'));
    const resets = fields.filter((f) => f[5] === '1' || f[5] === 'True');
    assert.equal(resets.length, 1, 'one RST');
    const [src, dst, sport, dport, seq, , tcpStatus, ipStatus] = resets[0];
    assert.deepEqual([src, dst, sport, dport], ['10.1.0.4', '10.1.0.3', '8080', '40002']);
    assert.equal(seq, String(5001), "SEQ = the blocked segment's ACK (the server's ISN + 1)");
    // tshark's checksum status (epan/proto.h PROTO_CHECKSUM_E_GOOD = 1).
    assert.equal(tcpStatus, '1', 'tcp checksum good');
    assert.equal(ipStatus, '1', 'ip checksum good');
    const blockedLater = fields.filter(
      (f) => (f[2] === '40002' || f[3] === '40002') && f[5] !== '1' && f[5] !== 'True',
    );
    assert.equal(blockedLater.length, 4, 'the blocked flow: handshake and the segment before the match');
    // Nothing tshark flags as malformed or as a bad checksum.
    const experts = tshark(['-r', join(dir, 'out.pcap'), '-q', '-z', 'expert,error']);
    assert.doesNotMatch(experts, /Malformed|Bad checksum/i, experts);

    const lines = readFileSync(join(dir, 'alerts.json'), 'utf8').trim().split('\n');
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const e of events) {
      assert.equal(e.event_type, 'alert');
      assert.match(e.timestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$/);
      for (const key of ['src_ip', 'src_port', 'dest_ip', 'dest_port', 'proto']) assert.ok(key in e, key);
      const alert = e.alert as Record<string, unknown>;
      for (const key of ['action', 'signature_id', 'rev', 'signature', 'category'])
        assert.ok(key in alert, key);
    }
    assert.deepEqual(
      events.map((e) => {
        const a = e.alert as Record<string, unknown>;
        return [
          e.src_ip,
          e.src_port,
          e.dest_ip,
          e.dest_port,
          e.proto,
          a.action,
          a.signature_id,
          a.rev,
          a.category,
        ];
      }),
      [
        ['10.1.0.1', 40001, '10.1.0.2', 80, 'TCP', 'allowed', 1000001, 2, 'trojan-activity'],
        ['10.1.0.3', 40002, '10.1.0.4', 8080, 'TCP', 'blocked', 1000002, 1, 'attempted-admin'],
      ],
    );
  });
});

/**
 * IP fragments made by scapy's fragment() (not by the project's code): three UDP datagrams of 3000
 * bytes in 1480-byte fragments, each with a 12–13-byte content cut by the first fragment boundary —
 * one matches a drop rule (in order), one is benign, one matches an alert rule (fragments in reverse
 * order). In prevent mode, the dropped datagram's last fragment must be missing from the output, so
 * tshark (reassembling, as a receiver does) completes the two other datagrams only; the EVE file
 * holds one alert per signature, with the UDP ports of the reassembled datagram.
 */
const FRAGMENT_SCRIPT = `
import sys
from scapy.all import Ether, IP, UDP, Raw, fragment, wrpcap
def datagram(src, sport, content, ident):
    payload = b"a" * 1465 + content
    payload += b"z" * (3000 - len(payload))
    packet = IP(src=src, dst="10.2.0.2", id=ident) / UDP(sport=sport, dport=9999) / Raw(payload)
    return [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / f for f in fragment(packet, fragsize=1480)]
frames = datagram("10.2.0.1", 5001, b"FRAG-DROP-ME", 1) + datagram("10.2.0.3", 5003, b"benign-bytes", 3)
frames += list(reversed(datagram("10.2.0.5", 5005, b"FRAG-ALERT-ME", 5)))
for k, f in enumerate(frames):
    f.time = 1764000000 + k
wrpcap(sys.argv[1], frames)
`;

describe('ids in nfvisor run: IP fragments made by scapy, judged by tshark', () => {
  let fdir = '';
  before(() => {
    fdir = mkdtempSync(join(tmpdir(), 'nfvisor-ids-frag-'));
    execFileSync('/usr/bin/python3', ['-c', FRAGMENT_SCRIPT, join(fdir, 'in.pcap')], { timeout: 60_000 });
    const rules = [
      'drop udp any any -> any 9999 (msg:"fragmented drop"; content:"FRAG-DROP-ME"; sid:1000003;)',
      'alert udp any any -> any 9999 (msg:"fragmented alert"; content:"FRAG-ALERT-ME"; sid:1000004;)',
    ];
    writeDeployment(fdir, rules);
  });
  after(() => rmSync(fdir, { recursive: true, force: true }));

  it('drops the fragment that completes a matching datagram and alerts on the reassembled ones', async () => {
    const fields = (path: string, extra: string[]): string[][] =>
      tshark(['-r', path, '-T', 'fields', '-E', 'separator=,', ...extra])
        .trim()
        .split('\n')
        .map((line) => line.split(','));
    const input = fields(join(fdir, 'in.pcap'), ['-e', 'ip.src', '-e', 'ip.frag_offset']);
    assert.equal(input.length, 9, 'scapy made 3 fragments per datagram');
    await runDeploymentFile(join(fdir, 'ids.yaml'), { progress: false });

    // ip.frag_offset counts 8-byte units.
    const out = fields(join(fdir, 'out.pcap'), ['-e', 'ip.src', '-e', 'ip.frag_offset', '-e', 'udp.srcport']);
    assert.deepEqual(
      out.map((f) => `${f[0]} ${f[1]}`),
      [
        '10.2.0.1 0',
        '10.2.0.1 185',
        '10.2.0.3 0',
        '10.2.0.3 185',
        '10.2.0.3 370',
        '10.2.0.5 370',
        '10.2.0.5 185',
        '10.2.0.5 0',
      ],
      'every fragment but the one completing the dropped datagram',
    );
    // tshark reassembles the two complete datagrams (their UDP ports show on the completing frame).
    assert.deepEqual(
      out.map((f) => f[2]).filter((port) => port !== ''),
      ['5003', '5005'],
    );
    const experts = tshark(['-r', join(fdir, 'out.pcap'), '-q', '-z', 'expert,error']);
    assert.doesNotMatch(experts, /Malformed|Bad checksum/i, experts);

    const events = readFileSync(join(fdir, 'alerts.json'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => {
        const a = e.alert as Record<string, unknown>;
        return [e.src_ip, e.src_port, e.dest_ip, e.dest_port, e.proto, a.action, a.signature_id];
      }),
      [
        ['10.2.0.1', 5001, '10.2.0.2', 9999, 'UDP', 'blocked', 1000003],
        ['10.2.0.5', 5005, '10.2.0.2', 9999, 'UDP', 'allowed', 1000004],
      ],
    );
  });
});
