/**
 * The control API on a real host: a generator → firewall guest (a worker) → sink chain. A restart
 * through the API restarts the guest; /metrics after a stop through the API says exactly what
 * `host.status()` says. Needs the compiled built-in NFs (dist/nfs) next to dist/src.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinModule, Host, type HostPlan } from '../host/host.js';
import { buildControlApp, type ControlledHost } from './control-server.js';
import { parseExposition } from './fake-host.js';
import { metricFragment } from './metrics.js';
import type { HostStatus } from './schemas.js';
import { TokenStore } from './token-store.js';
import type { NfDefinition } from '../sdk/define-nf.js';

/** The firewall's declared counter units, as its module (the built-in image) declares them. */
const FIREWALL_UNITS: Record<string, string> = Object.fromEntries(
  Object.entries(
    ((await import(builtinModule('firewall'))) as { default: NfDefinition }).default.counters,
  ).map(([name, spec]) => [name, spec.unit]),
);

process.env.NFVISOR_QUIET = '1';

const plan: HostPlan = {
  pool: { slots: 1024, slotSize: 2048 },
  ringSize: 256,
  batch: 32,
  restartBackoffMs: 20,
  ports: {
    gen: { kind: 'generator', options: { seed: 7, packets: 50_000_000, frameSize: 64 } },
    sink: { kind: 'sink' },
  },
  nfs: {
    fw: {
      module: builtinModule('firewall'),
      config: { default: 'accept', rules: [{ action: 'drop', protocol: 'udp' }] },
      vnic: 'direct',
      placement: 'isolated',
      replicas: 1,
      heapMb: 64,
      failure: 'fail-closed',
    },
  },
  chains: [{ name: 'main', from: 'gen', to: 'sink', through: ['fw'] }],
};

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('control API on a real host', () => {
  it(
    'restarts the firewall guest, stops the host, and /metrics equals host.status()',
    { timeout: 60_000 },
    async () => {
      const host = await Host.create(plan);
      const controlled: ControlledHost = host; // Host satisfies the interface structurally.
      const tokens = TokenStore.inMemory();
      const viewer = (await tokens.issue('viewer')).token;
      const operator = (await tokens.issue('operator')).token;
      const admin = (await tokens.issue('admin')).token;
      const { app } = await buildControlApp(controlled, { tokens });
      const as = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

      const running = host.run();
      await until('packets through the firewall', () => host.status().sent > 1000);

      const status = await app.inject({ method: 'GET', url: '/v1/status', headers: as(viewer) });
      assert.equal(status.statusCode, 200);
      const live = status.json<HostStatus>();
      assert.equal(live.running, true);
      assert.deepEqual(live.chains, [{ name: 'main', through: ['fw'], output: 'sink' }]);

      const restart = await app.inject({
        method: 'POST',
        url: '/v1/nfs/fw/restart',
        headers: as(operator),
        payload: { reason: 'test' },
      });
      assert.equal(restart.statusCode, 202, restart.body);
      assert.equal(restart.json<{ restartsBefore: number }>().restartsBefore, 0);
      await until('the firewall restarted', async () => {
        const nf = await app.inject({ method: 'GET', url: '/v1/nfs/fw', headers: as(viewer) });
        return nf.json<{ restarts: number }>().restarts >= 1;
      });
      const sentAtRestart = host.status().sent;
      await until('packets flowing after the restart', () => host.status().sent > sentAtRestart + 1000);

      const stop = await app.inject({ method: 'POST', url: '/v1/stop', headers: as(admin) });
      assert.equal(stop.statusCode, 202);
      const summary = await running;
      assert.equal(summary.received, summary.sent + summary.dropped + summary.lost, 'conservation');
      assert.equal(summary.poolFree, summary.poolSlots);

      const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: as(viewer) });
      assert.equal(metrics.statusCode, 200);
      const s = host.status();
      const { samples, help } = parseExposition(metrics.body);
      assert.equal(samples.get('nfvisor_packets_received_total'), s.received);
      assert.equal(samples.get('nfvisor_packets_sent_total'), s.sent);
      assert.equal(samples.get('nfvisor_packets_lost_total'), s.lost);
      assert.equal(samples.get('nfvisor_port_packets_sent_total{port="sink"}'), s.ports.sink.sent);
      assert.equal(samples.get('nfvisor_running'), 0);
      assert.equal(samples.get('nfvisor_pool_free_slots'), s.poolFree);
      assert.equal(samples.get('nfvisor_pool_slots'), s.poolSlots);
      assert.equal(samples.get('nfvisor_queue_limit_packets'), s.queueLimit);
      assert.ok(s.queueLimit > 0 && s.queueLimit <= s.poolSlots, `queue limit ${s.queueLimit}`);
      assert.equal(samples.get('nfvisor_latency_p50_seconds'), s.latencyUs.p50 / 1e6);
      assert.equal(samples.get('nfvisor_latency_p99_seconds'), s.latencyUs.p99 / 1e6);
      let dropped = 0;
      for (const [reason, n] of Object.entries(s.hostDrops)) {
        assert.equal(samples.get(`nfvisor_packets_dropped_total{nf="",reason="${reason}"}`), n, reason);
        dropped += n;
      }
      const fw = s.nfs.find((nf) => nf.name === 'fw');
      assert.ok(fw);
      assert.ok(fw.restarts >= 1);
      assert.equal(samples.get('nfvisor_instance_restarts_total{nf="fw"}'), fw.restarts);
      assert.equal(samples.get('nfvisor_instance_packets_total{nf="fw"}'), fw.packets);
      assert.ok((fw.drops.denied ?? 0) > 0, 'the UDP rule dropped packets');
      for (const [reason, n] of Object.entries(fw.drops)) {
        assert.equal(samples.get(`nfvisor_packets_dropped_total{nf="fw",reason="${reason}"}`), n, reason);
        dropped += n;
      }
      assert.equal(dropped, s.dropped, 'the dropped series add up to the host total');
      for (const [name, value] of Object.entries(fw.counters)) {
        const family = `nfvisor_nf_${metricFragment(name)}_total`;
        assert.equal(samples.get(`${family}{image="firewall",nf="fw"}`), value, family);
        const unit = FIREWALL_UNITS[name];
        assert.ok(unit, `${name} is a declared firewall counter`);
        assert.ok((help.get(family) ?? '').endsWith(`(${unit})`), `${family} has its unit (${unit}) in HELP`);
      }
      await app.close();
    },
  );
});
