import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isNfvError } from '../errors.js';
import { ipv4 } from '../packet/address.js';
import { FlowKey } from '../packet/flow-key.js';
import { flowRecords } from '../packet/flow-records.js';
import { decodeIpfix, FlowEndReason } from './ipfix.js';
import { IpfixExporter, type IpfixSourceRecord } from './ipfix-exporter.js';

function record(sequence: number, reversePackets = 0): IpfixSourceRecord {
  return {
    ipVersion: 4,
    protocol: 17,
    src: '10.0.0.1',
    dst: '10.0.0.2',
    srcPort: 1000 + sequence,
    dstPort: 53,
    packets: 2,
    bytes: 120,
    tcpFlags: 0,
    reversePackets,
    reverseBytes: reversePackets * 100,
    reverseTcpFlags: 0,
    firstSeen: 1e18,
    lastSeen: 1e18 + 5e8,
    endReason: 'idle',
    sequence,
  };
}

describe('IpfixExporter', () => {
  it('exports each record once, both directions, and counts records lost from the ring and restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfvisor-ipfix-exp-'));
    try {
      const file = join(dir, 'flows.ipfix');
      let snapshot: unknown = { exported: [record(1, 3), record(2)], exportedTotal: 2 };
      const exporter = new IpfixExporter({ source: () => [snapshot, null, 'junk'], file, now: () => 5000 });
      exporter.start(60_000);
      assert.equal(exporter.exportNow(), 3);
      assert.equal(exporter.exportNow(), 0);
      snapshot = { exported: [record(5), record(6)], exportedTotal: 6 }; // 3 and 4 fell out of the ring
      assert.equal(exporter.exportNow(), 2);
      assert.equal(exporter.stats().missed, 2);
      snapshot = { exported: [record(1)], exportedTotal: 1 }; // restarted without state
      assert.equal(exporter.exportNow(), 1);
      await exporter.stop();
      const s = exporter.stats();
      assert.deepEqual(
        { records: s.records, flows: s.flows, messages: s.messages, errors: s.errors },
        { records: 6, flows: 5, messages: 3, errors: 0 },
      );
      const messages = decodeIpfix(readFileSync(file));
      assert.deepEqual(
        messages.map((m) => [m.header.sequence, m.header.exportTime, m.flows.length]),
        [
          [0, 5, 3],
          [3, 5, 2],
          [5, 5, 1],
        ],
      );
      const [fwd, rev] = messages[0].flows;
      assert.deepEqual(
        [fwd.src, fwd.srcPort, fwd.packets, fwd.startMs, fwd.endMs],
        ['10.0.0.1', 1001, 2, 1e12, 1e12 + 500],
      );
      assert.deepEqual([rev.src, rev.dstPort, rev.packets, rev.octets], ['10.0.0.2', 1001, 3, 300]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends the flows still active as a forced end on stop, from rows (version 2) or records (version 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfvisor-ipfix-exp-'));
    try {
      const key = new FlowKey();
      key.setV4(ipv4('10.0.0.9'), ipv4('10.0.0.2'), 6, 40000, 443);
      const rows = {
        keys: key.words.slice(),
        packets: Float64Array.of(4, 3),
        bytes: Float64Array.of(400, 3000),
        tcpFlags: Uint8Array.of(0x12, 0x12),
        firstSeen: Float64Array.of(2e18),
        lastSeen: Float64Array.of(2e18 + 1e9),
      };
      for (const snapshot of [
        { exported: [], exportedTotal: 0, active: rows },
        { exported: [], exportedTotal: 0, flows: flowRecords(rows) },
      ]) {
        const file = join(dir, 'active.ipfix');
        rmSync(file, { force: true });
        const exporter = new IpfixExporter({ source: () => [snapshot], file, now: () => 7000 });
        exporter.start(60_000);
        assert.equal(exporter.exportNow(), 0, 'active flows wait for the end of the run');
        await exporter.stop();
        assert.deepEqual([exporter.stats().records, exporter.stats().flows], [2, 1]);
        const [fwd, rev] = decodeIpfix(readFileSync(file)).flatMap((m) => m.flows);
        assert.deepEqual(
          [fwd.src, fwd.srcPort, fwd.dstPort, fwd.packets, fwd.octets, fwd.endReason],
          ['10.0.0.9', 40000, 443, 4, 400, FlowEndReason.forcedEnd],
        );
        assert.deepEqual([rev.src, rev.dstPort, rev.packets, rev.octets], ['10.0.0.2', 40000, 3, 3000]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('skips what a replica restored from an older snapshot numbers again, and starts over for a new lineage', async () => {
    let snapshot: unknown = { exported: [record(1), record(2), record(3)], exportedTotal: 3, lineage: 7 };
    const exporter = new IpfixExporter({ source: () => [snapshot], udp: { address: '127.0.0.1', port: 9 } });
    exporter.start(60_000);
    try {
      assert.equal(exporter.exportNow(), 3);
      // Restored from the snapshot taken after record 2: record 3 will end again under the same number.
      snapshot = { exported: [record(1), record(2)], exportedTotal: 2, lineage: 7 };
      assert.equal(exporter.exportNow(), 0, 'nothing is sent twice');
      snapshot = { exported: [record(1), record(2), record(3), record(4)], exportedTotal: 4, lineage: 7 };
      assert.equal(exporter.exportNow(), 1, 'only the new record 4');
      snapshot = { exported: [record(1)], exportedTotal: 1, lineage: 8 }; // a new instance without state
      assert.equal(exporter.exportNow(), 1);
      assert.equal(exporter.stats().flows, 5);
    } finally {
      await exporter.stop();
    }
  });

  it('never throws from a pass: a failing source or an unwritable target is counted', async () => {
    const exporter = new IpfixExporter({
      source: () => {
        throw new Error('boom');
      },
      udp: { address: '127.0.0.1', port: 9 },
    });
    exporter.start(60_000);
    assert.equal(exporter.exportNow(), 0);
    assert.equal(exporter.stats().errors, 1);
    assert.equal(exporter.stats().lastError, 'boom');
    await exporter.stop();
  });

  it('refuses a configuration without targets, a bad port, or an uncreatable file', () => {
    const bad = (code: 'NFV_ERR_BAD_ARGUMENT' | 'NFV_ERR_IO') => (e: unknown) => isNfvError(e, code);
    assert.throws(() => new IpfixExporter({ source: () => [] }), bad('NFV_ERR_BAD_ARGUMENT'));
    assert.throws(
      () => new IpfixExporter({ source: () => [], udp: { address: '127.0.0.1', port: 0 } }),
      bad('NFV_ERR_BAD_ARGUMENT'),
    );
    const e = new IpfixExporter({ source: () => [], file: '/nonexistent-dir/x/flows.ipfix' });
    assert.throws(() => e.start(), bad('NFV_ERR_IO'));
  });
});
