import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrafficGenerator } from '../../src/io/traffic-generator.js';
import { pseudoHeaderSumV4 } from '../../src/packet/checksum.js';
import { PacketParser } from '../../src/packet/packet-parser.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { checkNfConfig, createNfContext } from '../../src/sdk/index.js';
import { idsHarness } from './test-harness.js';
import ids, { type IdsConfig, type IdsInstance, type IdsSnapshot } from './index.js';
import { ACK, Conversation, PSH, RST, SYN, tcpSegment, udpPacket } from './test-frames.js';

const HOST_A = '10.0.0.1';
const HOST_B = '10.0.0.2';

const harness = idsHarness;

function sids(nf: { ids: IdsInstance }): number[] {
  return nf.ids.alerts().map((a) => a.signature_id);
}

/** Runs `content` options against one client → server stream sent as `segments`; returns whether sid 1 fired. */
function fires(options: string, segments: string[]): boolean {
  const nf = harness([`alert tcp any any -> any any (msg:"t"; ${options} sid:1;)`]);
  const c = new Conversation(HOST_A, HOST_B);
  let at = 0;
  const frames = c.handshake();
  for (const s of segments) {
    frames.push(c.data(0, at, s));
    at += s.length;
  }
  nf.run(frames);
  return sids(nf).includes(1);
}

describe('ids: signatures on single packets', () => {
  it('alerts with the EVE fields on a TCP and a UDP match, and counts hits per signature', () => {
    const nf = harness(
      [
        'alert tcp $HOME_NET any -> any $HTTP_PORTS (msg:"GET evil"; content:"GET /evil"; sid:1000001; rev:3; classtype:web-application-attack;)',
        'alert udp any any -> any 53 (msg:"dns foo"; content:"|03|foo|03|com"; sid:1000002;)',
      ],
      { vars: ['HOME_NET=[10.0.0.0/8]', 'HTTP_PORTS=[80,8080]'] },
    );
    const c = new Conversation(HOST_A, HOST_B, 40000, 8080);
    const out = nf.run([
      ...c.handshake(),
      c.data(0, 0, 'GET /evil HTTP/1.1\r\n\r\n'),
      udpPacket(
        HOST_A,
        '10.0.0.53',
        5353,
        53,
        '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03foo\x03com\x00',
      ),
    ]);
    assert.ok(
      out.every((r) => r.output === 'out'),
      'alert mode passes everything',
    );
    const alerts = nf.ids.alerts();
    assert.equal(alerts.length, 2);
    assert.deepEqual(alerts[0], {
      sequence: 1,
      timestamp: 0,
      src_ip: HOST_A,
      src_port: 40000,
      dest_ip: HOST_B,
      dest_port: 8080,
      proto: 'TCP',
      action: 'allowed',
      signature_id: 1000001,
      rev: 3,
      signature: 'GET evil',
      category: 'web-application-attack',
    });
    assert.equal(alerts[1].proto, 'UDP');
    assert.equal(alerts[1].signature_id, 1000002);
    assert.deepEqual(
      nf.ids.hits().map((h) => h.hits),
      [1, 1],
    );
    assert.equal(nf.counters().alerts, 2);
  });

  it('honours addresses, ports, negation and direction (<> either way)', () => {
    const nf = harness([
      'alert udp ![10.0.0.0/8] any -> any 53 (msg:"outside"; content:"x"; sid:1;)',
      'alert udp 10.0.0.1 any -> any !53 (msg:"not dns"; content:"x"; sid:2;)',
      'alert udp 10.0.0.9 1000:2000 <> 10.0.0.1 any (msg:"both ways"; content:"x"; sid:3;)',
      'alert ip any any -> 2001:db8::/32 any (msg:"v6 dst"; content:"x"; sid:4;)',
    ]);
    nf.run([
      udpPacket('192.168.1.1', HOST_A, 1, 53, 'x'), // 1
      udpPacket(HOST_A, HOST_B, 1, 53, 'x'), // none
      udpPacket(HOST_A, HOST_B, 1, 54, 'x'), // 2
      udpPacket(HOST_A, '10.0.0.9', 5, 1500, 'x'), // 2 and 3 (reverse direction)
      udpPacket('2001:db9::1', '2001:db8::1', 5, 6, 'x'), // 4
    ]);
    assert.deepEqual(sids(nf), [1, 2, 2, 3, 4]);
  });

  it('content modifiers: nocase, offset, depth, distance, within — each matches and misses', () => {
    const cases: [string, string, boolean][] = [
      ['content:"abc"; nocase;', 'xxABCxx', true],
      ['content:"abc";', 'xxABCxx', false],
      ['content:"abc"; offset:2;', 'xxabc', true],
      ['content:"abc"; offset:3;', 'xxabc', false],
      ['content:"abc"; depth:5;', 'xxabc', true],
      ['content:"abc"; depth:4;', 'xxabc', false],
      ['content:"abc"; offset:1; depth:4;', 'xxabc', true],
      ['content:"abc"; content:"def"; distance:2;', 'abc12def', true],
      ['content:"abc"; content:"def"; distance:3;', 'abc12def', false],
      ['content:"abc"; content:"def"; within:5;', 'abc12def', true],
      ['content:"abc"; content:"def"; within:4;', 'abc12def', false],
      // within counts from the previous end plus distance (Suricata's detect-engine-content-inspection.c).
      ['content:"abc"; content:"def"; distance:1; within:4;', 'abc12def', true],
      ['content:"abc"; content:"def"; distance:1; within:3;', 'abc12def', false],
      // A later occurrence of the first content satisfies within when the first does not.
      ['content:"abc"; content:"def"; within:3;', 'abc-----abcdef', true],
      ['content:"|41 42|C";', 'xABCx', true],
      ['content:"a\\;b";', 'xa;bx', true],
    ];
    for (const [options, payload, expected] of cases)
      assert.equal(fires(options, [payload]), expected, `${options} on "${payload}"`);
  });

  it('pcre: matches after the contents, R is relative; unsafe patterns are refused at parse time', () => {
    assert.equal(fires('content:"user="; pcre:"/user=[a-z]{3,8}&/";', ['?user=admin&x']), true);
    assert.equal(fires('content:"user="; pcre:"/user=[a-z]{3,8}&/";', ['?user=ad&x']), false);
    assert.equal(
      fires('content:"id="; pcre:"/^\\d+;/R";', ['id=42;']),
      false,
      'R starts after id=, ^ needs m-less start',
    );
    assert.equal(fires('content:"id="; pcre:"/\\d+;/R";', ['x1;id=42;']), true);
    assert.equal(fires('content:"id="; pcre:"/\\d+;/R";', ['x1;id=a;']), false);
    for (const bad of ['/(a+)+b/', '/(a|aa)*b/', '/((a))*b/', '/(a)\\1/', '/(?=a)b/', '/a{2000}/'])
      assert.throws(
        () => harness([`alert tcp any any -> any any (content:"a"; pcre:"${bad}"; sid:7;)`]),
        /rules\[0\]: sid 7: option "pcre"/,
        bad,
      );
    assert.throws(
      () => harness(['alert tcp any any -> any any (pcre:"/a/"; sid:8;)']),
      /needs at least one content/,
    );
  });

  it('names the rule and the option in every parse error', () => {
    const rules = [
      'alert tcp any any -> any 80 (msg:"ok"; content:"a"; sid:1;)',
      'alert tcp any any -> any 80 (msg:"bad depth"; content:"abcdef"; depth:3; sid:2;)',
      'alert tcp any any -> any 80 (msg:"no sid"; content:"a";)',
      'alert tcp any any -> any 80 (content:"a"; bogus:1; sid:4;)',
      'alert tcp any any -> 10.0.0.256 80 (content:"a"; sid:5;)',
      'alert tcp any any -> any 80 (within:4; content:"a"; sid:6;)',
      'alert udp any any -> any 53 (flow:established; sid:7;)',
      'alert tcp $NOPE any -> any 80 (sid:9;)',
      'frobnicate tcp any any -> any 80 (sid:10;)',
      'alert tcp any any -> any 80 (content:"a"; sid:1;)',
    ];
    // Checked before anything starts (a deployment error at the rule's own line), each with its path.
    const { errors } = checkNfConfig(ids, { rules });
    assert.deepEqual(
      errors.map((e) => e.path),
      [
        'rules[1]',
        'rules[2]',
        'rules[3]',
        'rules[4]',
        'rules[5]',
        'rules[6]',
        'rules[7]',
        'rules[8]',
        'rules[9]',
      ],
    );
    const messages = errors.map((e) => e.message);
    assert.match(messages[0], /^sid 2: option "depth": 3 is shorter than the content/);
    assert.match(messages[1], /^option "sid": every rule needs one/);
    assert.match(messages[2], /^sid 4: option "bogus": not supported/);
    assert.match(messages[3], /^sid 5: destination address "10.0.0.256"/);
    assert.match(messages[4], /^sid 6: option "within": modifies a content, and none comes before it/);
    assert.match(messages[5], /^sid 7: option "flow": only tcp rules/);
    assert.match(messages[6], /^sid 9: source address "\$NOPE": undefined variable/);
    assert.match(messages[7], /^sid 10: action "frobnicate"/);
    assert.match(messages[8], /^sid 1: option "sid": 1 is also rules\[0\]'s/);
    assert.deepEqual(checkNfConfig(ids, { rules: rules.slice(0, 1), vars: ['1BAD'] }).errors, [
      { path: 'vars[0]', message: 'must be NAME=value (got "1BAD")' },
    ]);
    assert.deepEqual(checkNfConfig(ids, { rules: rules.slice(0, 1) }).errors, []);
    // and create() refuses the same rules when nothing checked them first.
    assert.throws(() =>
      ids.create(
        { ...checkNfConfig(ids, { rules: [] }).value, rules } as IdsConfig,
        createNfContext(ids, 'ids', 0, 1, () => {}),
      ),
    );
  });

  it('a pass rule lets the packet through without alerts; header-only rules match by header', () => {
    const nf = harness([
      'pass udp 10.0.0.7 any -> any any (msg:"trusted"; sid:1;)',
      'alert udp any any -> any any (msg:"x"; content:"x"; sid:2;)',
      'alert icmp any any -> any any (msg:"any icmp"; sid:3;)',
    ]);
    nf.run([udpPacket('10.0.0.7', HOST_B, 1, 2, 'x'), udpPacket(HOST_A, HOST_B, 1, 2, 'x')]);
    assert.deepEqual(sids(nf), [2]);
    assert.equal(nf.counters().passed, 1);
  });
});

describe('ids: TCP streams', () => {
  const rule =
    'alert tcp any any -> any 80 (msg:"split"; content:"MALICIOUS-PAYLOAD"; flow:established,to_server; sid:1;)';

  it('finds a signature split across two and three segments, and not before its last byte', () => {
    assert.equal(fires('content:"MALICIOUS-PAYLOAD";', ['xxMALIC', 'IOUS-PAYLOADxx']), true);
    assert.equal(fires('content:"MALICIOUS-PAYLOAD";', ['xxMAL', 'ICIOUS-PA', 'YLOADxx']), true);
    assert.equal(fires('content:"MALICIOUS-PAYLOAD";', ['xxMAL', 'ICIOUS-PA']), false);
    // distance/within across a boundary use the kept tail of the stream.
    assert.equal(fires('content:"USER"; content:"root"; distance:1; within:6;', ['USER', ' root']), true);
    assert.equal(
      fires('content:"USER"; content:"root"; distance:1; within:6;', ['USER', '      root']),
      false,
    );
    // offset/depth count from the stream's first byte, not the segment's.
    assert.equal(fires('content:"HEAD"; depth:8;', ['abc', 'HEAD']), true);
    assert.equal(fires('content:"HEAD"; depth:8;', ['abcdefgh', 'HEAD']), false);
  });

  it('reassembles out-of-order segments and alerts once, on the segment that completes the signature', () => {
    const nf = harness([rule]);
    const c = new Conversation(HOST_A, HOST_B);
    const out = nf.run([
      ...c.handshake(),
      c.data(0, 11, '-PAYLOAD!!'),
      c.data(0, 6, 'CIOUS'),
      c.data(0, 0, '..MALI'),
    ]);
    assert.equal(nf.ids.alerts().length, 1);
    assert.ok(out.every((r) => r.output === 'out'));
    assert.equal(nf.counters().segments_held, 2);
    // Retransmitting the whole thing finds nothing new.
    nf.run([c.data(0, 0, '..MALICIOUS-PAYLOAD!!')]);
    assert.equal(nf.ids.alerts().length, 1);
    assert.equal(nf.counters().retransmissions, 1);
  });

  it('resolves overlaps first-wins: a later overlapping copy cannot hide or forge a signature', () => {
    // The attacker sends the signature first, then an overlapping benign copy: the first copy wins.
    const hidden = harness([rule]);
    const c = new Conversation(HOST_A, HOST_B);
    hidden.run([...c.handshake(), c.data(0, 5, 'IOUS-PAYLOAD'), c.data(0, 0, 'MALICxxxxxxxxxxx')]);
    assert.equal(hidden.ids.alerts().length, 1);
    assert.equal(hidden.counters().overlap_conflicts, 1);
    // A benign first copy, then an overlapping "signature": the stream the receiver keeps is benign.
    const forged = harness([rule]);
    forged.run([...c.handshake(), c.data(0, 0, 'MALICIOUS-xxxxxxx'), c.data(0, 10, 'PAYLOAD')]);
    assert.equal(forged.ids.alerts().length, 0);
    assert.equal(forged.counters().overlap_conflicts, 1);
  });

  it('flow: to_server and to_client follow the handshake, established needs it', () => {
    const nf = harness([
      'alert tcp any any -> any any (msg:"srv"; content:"HELLO"; flow:to_server; sid:1;)',
      'alert tcp any any -> any any (msg:"cli"; content:"HELLO"; flow:to_client; sid:2;)',
      'alert tcp any any -> any any (msg:"est"; content:"EARLY"; flow:established; sid:3;)',
    ]);
    const c = new Conversation(HOST_A, HOST_B);
    const [syn, synAck, ack] = c.handshake();
    nf.run([syn, c.data(0, 0, 'EARLY'), synAck, ack, c.data(0, 5, 'HELLO'), c.data(1, 0, 'HELLO')]);
    assert.deepEqual(sids(nf), [1, 2]);
  });

  it('a flood of half-open streams fills the table and the hold budget with counted, bounded effects', () => {
    const nf = harness([rule], { maxStreams: 64, reassemblyBytes: 16 * 2048, streamHoldBytes: 4096 });
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 5000; i++) {
      const src = `10.1.${(i >> 8) & 255}.${i & 255}`;
      frames.push(
        tcpSegment({ src, dst: HOST_B, srcPort: 1024 + (i % 50000), dstPort: 80, flags: SYN, seq: i }),
      );
      // Out-of-order data on half the half-open streams: held until the budget runs out.
      if (i % 2 === 0)
        frames.push(
          tcpSegment({
            src,
            dst: HOST_B,
            srcPort: 1024 + (i % 50000),
            dstPort: 80,
            flags: ACK,
            seq: i + 100,
            payload: 'z'.repeat(300),
          }),
        );
    }
    // A real connection in the middle of the flood still gets inspected.
    const c = new Conversation(HOST_A, HOST_B);
    frames.push(...c.handshake(), c.data(0, 0, 'MALICIOUS-PAYLOAD'));
    const out = nf.run(frames);
    assert.equal(out.length, frames.length);
    const n = nf.counters();
    assert.ok(n.streams_active <= 64, `${n.streams_active} streams`);
    assert.equal(n.streams_created, 5001);
    assert.equal(n.streams_evicted, 5001 - n.streams_active);
    assert.ok(n.hold_overflow > 0, 'the global hold budget was reached');
    assert.ok(n.segments_held > 0);
    assert.equal(nf.ids.alerts().length, 1);
  });
});

describe('ids: prevent mode', () => {
  it('turns the matching segment into a valid RST to its sender and drops the rest of the flow', () => {
    const nf = harness(['drop tcp any any -> any 80 (msg:"block"; content:"DROP-ME"; sid:5;)'], {
      mode: 'prevent',
    });
    const c = new Conversation(HOST_A, HOST_B);
    const out = nf.run([
      ...c.handshake(),
      c.data(0, 0, 'hello '),
      c.data(0, 6, 'DROP-ME now'),
      c.data(0, 17, 'more'),
      c.data(1, 0, 'reply'),
    ]);
    assert.deepEqual(
      out.map((r) => r.output ?? r.drop),
      ['out', 'out', 'out', 'out', 'out', 'blocked_flow', 'blocked_flow'],
    );
    const rst = out[4].bytes;
    const parser = new PacketParser();
    assert.equal(parser.attach(rst, 0, rst.length), DropReason.None, 'checksums verify');
    assert.equal(parser.ipv4.src(), parser.ipv4.dst() === 0x0a000001 ? 0x0a000002 : -1);
    assert.equal(parser.tcp.srcPort(), 80);
    assert.equal(parser.tcp.dstPort(), 40000);
    assert.equal(parser.tcp.flags(), RST);
    assert.equal(parser.tcp.seq(), 5001, "SEQ = the segment's ACK");
    assert.ok(parser.tcp.verifyChecksum(pseudoHeaderSumV4(parser.ipv4.src(), parser.ipv4.dst(), 6, 20)));
    assert.equal(nf.ids.alerts()[0].action, 'blocked');
    const n = nf.counters();
    assert.equal(n.dropped, 1);
    assert.equal(n.resets, 1);
    assert.equal(n.blocked_flow, 2);
  });

  it('works the same over IPv6: a split signature is found and the RST goes back over IPv6', () => {
    const nf = harness(
      ['reject tcp any any -> 2001:db8::/32 80 (msg:"v6"; content:"EVIL-V6-DATA"; sid:6;)'],
      {
        mode: 'prevent',
      },
    );
    const c = new Conversation('2001:db8::1', '2001:db8::2');
    const out = nf.run([...c.handshake(), c.data(0, 7, 'V6-DATA'), c.data(0, 0, '..EVIL-')]);
    assert.deepEqual(
      out.map((r) => r.output ?? r.drop),
      ['out', 'out', 'out', 'out', 'out'],
    );
    const rst = out[4].bytes;
    const parser = new PacketParser();
    assert.equal(parser.attach(rst, 0, rst.length), DropReason.None, 'checksums verify');
    assert.equal(parser.tcp.flags(), RST);
    assert.equal(parser.tcp.dstPort(), 40000);
    assert.equal(nf.ids.alerts()[0].src_ip, '2001:db8::1');
    assert.equal(nf.counters().resets, 1);
  });

  it('drops a matching UDP packet; alert rules only alert; malformed frames are dropped and counted', () => {
    const nf = harness(
      [
        'reject udp any any -> any any (msg:"u"; content:"bad"; sid:1;)',
        'alert tcp any any -> any any (msg:"a"; content:"note"; sid:2;)',
      ],
      { mode: 'prevent' },
    );
    const c = new Conversation(HOST_A, HOST_B);
    const good = c.data(0, 0, 'note');
    const truncated = good.slice(0, 40);
    const badChecksum = c.data(0, 4, 'xx');
    badChecksum[badChecksum.length - 1] ^= 0xff;
    const out = nf.run([udpPacket(HOST_A, HOST_B, 1, 2, 'a bad one'), good, truncated, badChecksum]);
    assert.deepEqual(
      out.map((r) => r.output ?? r.drop),
      ['signature', 'out', 'malformed', 'malformed'],
    );
    assert.deepEqual(
      nf.ids.alerts().map((a) => [a.signature_id, a.action]),
      [
        [1, 'blocked'],
        [2, 'allowed'],
      ],
    );
    assert.equal(nf.counters().malformed, 2);
    assert.equal(nf.logs.length, 1, 'the first malformed frame is logged, later ones only counted');
  });

  it('alert mode passes malformed frames and matches (counted)', () => {
    const nf = harness(['drop udp any any -> any any (msg:"u"; content:"bad"; sid:1;)']);
    const out = nf.run([
      udpPacket(HOST_A, HOST_B, 1, 2, 'bad'),
      udpPacket(HOST_A, HOST_B, 1, 2, 'bad').slice(0, 30),
    ]);
    assert.deepEqual(
      out.map((r) => r.output),
      ['out', 'out'],
    );
    assert.equal(nf.ids.alerts()[0].action, 'allowed');
  });
});

describe('ids: benign traffic, snapshots', () => {
  it('raises no alert on generated IMIX traffic against 1,000 signatures', () => {
    const rules = Array.from(
      { length: 1000 },
      (_, i) =>
        `alert tcp any any -> any any (msg:"sig ${i}"; content:"attack-${i}-${(i * 2654435761) >>> 0}"; nocase; sid:${i + 1};)`,
    );
    const nf = harness(rules);
    const gen = new TrafficGenerator({ seed: 7, flows: 200, frameSize: 'imix', ipv6: 0.3 });
    const frames: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    for (let k = 0; k < 5000; k++) {
      const n = gen.next(buf, 0);
      if (n <= 0) break;
      frames.push(buf.slice(0, n));
    }
    const out = nf.run(frames);
    assert.ok(out.every((r) => r.output === 'out'));
    const n = nf.counters();
    assert.equal(n.alerts, 0);
    assert.equal(n.malformed, 0);
    assert.ok(n.inspected_bytes > 500_000, `${n.inspected_bytes} bytes inspected`);
    assert.ok(n.streams_created > 0);
  });

  it('snapshot → restore carries alerts (with their sequence numbers) and per-signature hits', () => {
    const rules = [
      'alert udp any any -> any any (msg:"u"; content:"hit"; sid:42; rev:2; classtype:misc-activity;)',
    ];
    const a = harness(rules, { alertRing: 4 });
    a.run(Array.from({ length: 6 }, (_, i) => udpPacket(HOST_A, HOST_B, 1000 + i, 2, 'hit')));
    const snap = structuredClone(a.ids.snapshot?.()) as IdsSnapshot;
    assert.equal(snap.alertsTotal, 6);
    assert.deepEqual(
      snap.alerts.map((x) => x.sequence),
      [3, 4, 5, 6],
    );
    assert.deepEqual(snap.hits, { '42': 6 });
    const b = harness(rules, { alertRing: 4 });
    b.ids.restore?.(snap);
    assert.deepEqual(b.ids.alerts(), a.ids.alerts());
    assert.equal(b.ids.hits()[0].hits, 6);
    b.run([udpPacket(HOST_A, HOST_B, 7, 2, 'hit')]);
    assert.deepEqual(
      b.ids.alerts(5).map((x) => x.sequence),
      [6, 7],
    );
    // A snapshot of another shape is ignored, logged, and nothing breaks.
    const c = harness(rules);
    c.ids.restore?.({ version: 9 });
    c.ids.restore?.(null);
    assert.equal(c.logs.length, 2);
  });

  it('expires idle streams in tick', () => {
    const nf = harness(['alert tcp any any -> any any (content:"x"; sid:1;)'], { streamTimeoutSeconds: 10 });
    const c = new Conversation(HOST_A, HOST_B);
    nf.run(c.handshake(), 0);
    assert.equal(nf.ids.activeStreams(), 1);
    nf.ids.tick?.(11e9);
    assert.equal(nf.ids.activeStreams(), 0);
    assert.equal(nf.counters().streams_expired, 1);
    void PSH;
  });
});
