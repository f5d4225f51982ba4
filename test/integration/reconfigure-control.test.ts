/**
 * The reconfiguration routes of the control API on a real host (guests are worker isolates): a
 * deployment file applied through POST /v1/deployments (parsed and planned as `nfvisor run` does),
 * drain, stop and restart of one NF while the other chain keeps forwarding, a snapshot, and a
 * capture of a hop read back with the project's pcap reader. (test/system checks a capture with
 * tshark.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { deploymentPlanner } from '../../src/cli/apply.js';
import { buildControlApp } from '../../src/control/control-server.js';
import type { HostStatus } from '../../src/control/schemas.js';
import { TokenStore } from '../../src/control/token-store.js';
import { Host } from '../../src/host/host.js';
import { openCapture } from '../../src/io/capture.js';
import { EthernetView } from '../../src/packet/ethernet.js';
import { until } from '../support/until.js';

process.env.NFVISOR_QUIET = '1';

function deployment(fw2Rules: string): string {
  return `
pool: { slots: 2048, slotSize: 2048 }
ringSize: 256
ports:
  gen: { type: generator, seed: 4, packets: 50000000, frameSize: 64, flows: 64 }
  out: { type: sink }
  gen2: { type: generator, seed: 5, packets: 50000000, frameSize: 64, flows: 64 }
  out2: { type: sink }
nfs:
  fw: { image: builtin/firewall, vnic: direct, config: { default: accept } }
  fw2: { image: builtin/firewall, vnic: paravirt, config: { default: accept, rules: ${fw2Rules} } }
  other: { image: builtin/firewall, vnic: direct, config: { default: accept } }
chains:
  - { name: main, from: gen, through: [fw, fw2], to: out }
  - { name: side, from: gen2, through: [other], to: out2 }
`;
}

describe('control API: reconfiguration on a real host', () => {
  it(
    'applies a file, drains, stops and restarts an NF, snapshots and captures',
    { timeout: 90_000 },
    async () => {
      const deploy = deploymentPlanner(tmpdir());
      const plan = await deploy(deployment('[]'), 'first.yaml');
      const host = await Host.create({ ...plan, watchdogMs: 60_000, restartBackoffMs: 20 });
      const tokens = TokenStore.inMemory();
      const operator = (await tokens.issue('operator')).token;
      const { app } = await buildControlApp(host, { tokens, deploy });
      const call = (method: 'GET' | 'POST', url: string, payload?: object): Promise<LightMyRequestResponse> =>
        app.inject({
          method,
          url,
          headers: { authorization: `Bearer ${operator}` },
          ...(payload ? { payload } : {}),
        });
      const sent = (port: string): number => host.status().ports[port]?.sent ?? 0;
      const nf = (name: string): HostStatus['nfs'][number] | undefined =>
        host.status().nfs.find((n) => n.name === name);
      const sideFlows = async (what: string): Promise<void> => {
        const before = sent('out2');
        await until(`chain side flowing ${what}`, () => sent('out2') > before + 500);
      };
      const running = host.run();
      const dir = mkdtempSync(join(tmpdir(), 'ctl-reconfigure-'));
      try {
        await until('both chains flowing', () => sent('out') > 1000 && sent('out2') > 1000);

        // A deployment file through the API: a dry run, then the real thing.
        const next = deployment('[{ action: drop, protocol: udp }]');
        const dry = await call('POST', '/v1/deployments?dryRun=true', {
          deployment: next,
          file: 'next.yaml',
        });
        assert.equal(dry.statusCode, 200, dry.body);
        assert.deepEqual(dry.json<{ diff: { chains: { changed: unknown } } }>().diff.chains.changed, [
          { name: 'main', fields: ['nf fw2 changed'] },
        ]);
        const applied = await call('POST', '/v1/deployments', { deployment: next, file: 'next.yaml' });
        assert.equal(applied.statusCode, 200, applied.body);
        await until('fw2 dropping UDP', () => (nf('fw2')?.drops.denied ?? 0) > 0);
        const invalid = await call('POST', '/v1/deployments', {
          deployment: next.replace('default: accept', 'default: maybe'),
        });
        assert.equal(invalid.statusCode, 400, invalid.body);
        assert.equal(invalid.json<{ code: string }>().code, 'NFV_ERR_DEPLOY_INVALID');

        // Capture hop 1 (fw → fw2, carried by the host because fw2 is paravirt): 50 Ethernet frames.
        const capture = await call('POST', '/v1/chains/main/capture', { hop: 1, packets: 50 });
        assert.equal(capture.statusCode, 200, capture.body);
        const file = join(dir, 'hop1.pcap');
        writeFileSync(file, capture.rawPayload);
        const reader = openCapture(file);
        const eth = new EthernetView();
        let frames = 0;
        while (reader.next()) {
          frames++;
          assert.equal(
            eth.attach(reader.bytes, reader.at, reader.capturedLength),
            0,
            'a whole Ethernet frame',
          );
        }
        reader.close();
        assert.equal(frames, 50);

        // Drain fw2: chain main's new copy runs without it (fail-closed: nf_down), side keeps going.
        const drained = await call('POST', '/v1/nfs/fw2/drain', {});
        assert.equal(drained.statusCode, 200, drained.body);
        assert.equal(drained.json<{ lostInDrain: number }>().lostInDrain, 0);
        const downBefore = host.status().hostDrops.nf_down ?? 0;
        await until(
          'traffic meeting the drained fw2',
          () => (host.status().hostDrops.nf_down ?? 0) > downBefore + 100,
        );
        await sideFlows('while fw2 is drained');
        assert.equal((await call('POST', '/v1/nfs/fw2/restart', {})).statusCode, 202);
        const outBefore = sent('out');
        await until('chain main forwarding after the restart', () => sent('out') > outBefore + 1000);

        // Stop fw (no waiting), then bring it back.
        assert.equal((await call('POST', '/v1/nfs/fw/stop', { reason: 'test' })).statusCode, 200);
        assert.equal((await call('POST', '/v1/nfs/fw/restart', {})).statusCode, 202);
        const outAgain = sent('out');
        await until('chain main forwarding after fw came back', () => sent('out') > outAgain + 1000);

        const snapshot = await call('GET', '/v1/nfs/fw2/snapshot');
        assert.equal(snapshot.statusCode, 200, snapshot.body);
        assert.equal(snapshot.json<{ replicas: unknown[] }>().replicas.length, 1);
        await sideFlows('at the end');
      } finally {
        host.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      const summary = await running;
      await app.close();
      assert.equal(summary.received, summary.sent + summary.dropped + summary.lost, 'conservation');
      assert.equal(summary.poolFree, summary.poolSlots);
      const other = summary.nfs.find((n) => n.name === 'other');
      assert.equal(other?.restarts, 0, 'chain side was never restarted');
      assert.equal(summary.ports.out2.sent, other?.packets, 'every packet of chain side reached its sink');
    },
  );
});
