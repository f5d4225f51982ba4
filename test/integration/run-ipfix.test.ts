/**
 * `nfvisor run` with an IPFIX exporter: generated traffic through a flow-monitor guest, its flow
 * records exported to a file; every packet the host received is in exactly one exported record
 * (flows still active at the end are exported as a forced end).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runDeploymentFile } from '../../src/cli/run.js';
import { decodeIpfix, FlowEndReason } from '../../src/io/ipfix.js';

process.env.NFVISOR_QUIET = '1';

describe('nfvisor run with an IPFIX exporter', () => {
  it('exports every packet in exactly one flow record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nfvisor-run-ipfix-'));
    try {
      const file = join(dir, 'deploy.yaml');
      writeFileSync(
        file,
        [
          'ports:',
          '  gen: { type: generator, packets: 20000, flows: 40, frameSize: 200, ipv6: 0.3 }',
          '  bin: { type: sink }',
          'nfs:',
          '  mon: { image: builtin/flow-monitor, config: { idleTimeoutSeconds: 1 } }',
          'chains:',
          '  - { from: gen, through: [mon], to: bin }',
          'exporters:',
          '  - { type: ipfix, nf: mon, file: flows.ipfix, intervalMs: 200 }',
          '',
        ].join('\n'),
      );
      const summary = await runDeploymentFile(file, { progress: false });
      assert.equal(summary.received, 20_000);
      const messages = decodeIpfix(new Uint8Array(readFileSync(join(dir, 'flows.ipfix'))));
      const flows = messages.flatMap((m) => m.flows);
      assert.ok(flows.length > 40, `${flows.length} records`);
      assert.equal(
        flows.reduce((sum, f) => sum + Number(f.packets), 0),
        20_000,
      );
      assert.ok(
        flows.some((f) => f.endReason === FlowEndReason.forcedEnd),
        'active flows end as forced',
      );
      assert.ok(flows.some((f) => f.ipVersion === 6) && flows.some((f) => f.ipVersion === 4));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
