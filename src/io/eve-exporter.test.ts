import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EveExporter, eveTimestamp, type EveSourceAlert } from './eve-exporter.js';

function alert(sequence: number, proto = 'TCP'): EveSourceAlert {
  return {
    sequence,
    timestamp: 1_764_089_913_123_456_000, // ns: exact in a double down to the microsecond
    src_ip: '10.0.0.1',
    src_port: 40000 + sequence,
    dest_ip: '10.0.0.2',
    dest_port: 80,
    proto,
    action: 'allowed',
    signature_id: 1000 + sequence,
    rev: 2,
    signature: 'test "quoted" \\ sig',
    category: 'misc-activity',
  };
}

describe('EveExporter', () => {
  it('writes each alert once as an EVE JSON line, and counts alerts lost from the ring and restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfvisor-eve-'));
    try {
      const file = join(dir, 'alerts.json');
      let snapshot: unknown = { alerts: [alert(1), alert(2, 'ICMP')], alertsTotal: 2 };
      const exporter = new EveExporter({ source: () => [snapshot, null, 'junk'], file });
      exporter.start(60_000);
      assert.equal(exporter.exportNow(), 2);
      assert.equal(exporter.exportNow(), 0);
      // Alerts 3 and 4 fell out of the ring before this pass.
      snapshot = { alerts: [alert(5), alert(6)], alertsTotal: 6 };
      assert.equal(exporter.exportNow(), 2);
      // The replica restarted without its state: its sequence starts over.
      snapshot = { alerts: [alert(1)], alertsTotal: 1 };
      assert.equal(exporter.exportNow(), 1);
      await exporter.stop();
      const lines = readFileSync(file, 'utf8').split('\n');
      assert.equal(lines.pop(), '');
      const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.equal(events.length, 5);
      assert.deepEqual(events[0], {
        timestamp: '2025-11-25T16:58:33.123456+0000',
        event_type: 'alert',
        src_ip: '10.0.0.1',
        src_port: 40001,
        dest_ip: '10.0.0.2',
        dest_port: 80,
        proto: 'TCP',
        alert: {
          action: 'allowed',
          gid: 1,
          signature_id: 1001,
          rev: 2,
          signature: 'test "quoted" \\ sig',
          category: 'misc-activity',
        },
      });
      assert.equal('src_port' in events[1], false, 'no ports for ICMP');
      assert.deepEqual(
        events.map((e) => (e.alert as { signature_id: number }).signature_id),
        [1001, 1002, 1005, 1006, 1001],
      );
      assert.equal(exporter.stats().missed, 2);
      assert.equal(exporter.stats().alerts, 5);
      // The file is appended to, not truncated, by a new exporter.
      const again = new EveExporter({ source: () => [{ alerts: [alert(1)], alertsTotal: 1 }], file });
      again.start(60_000);
      await again.stop();
      assert.equal(readFileSync(file, 'utf8').split('\n').length, 7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('formats timestamps as Suricata does (UTC, microseconds)', () => {
    assert.equal(eveTimestamp(0), '1970-01-01T00:00:00.000000+0000');
    assert.equal(eveTimestamp(1_500_000_001_000), '1970-01-01T00:25:00.000001+0000');
  });

  it('counts a file it cannot write instead of throwing', () => {
    const exporter = new EveExporter({ source: () => [], file: '/nonexistent-dir/x/alerts.json' });
    assert.throws(() => exporter.start(), { code: 'NFV_ERR_IO' });
    assert.equal(exporter.exportNow(), 0);
    assert.equal(exporter.stats().errors, 1);
  });
});
