/**
 * The `nfvisor` subcommands that steer a running host — apply (and its dry run), scale, drain,
 * stop, restart, stats, capture and top — run in process against a real host serving its control
 * API on an ephemeral loopback port, as `nfvisor run --control` serves it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyCommand, deploymentPlanner } from '../../src/cli/apply.js';
import { captureCommand } from '../../src/cli/capture.js';
import { buildProgram, COMMAND_MODULES } from '../../src/cli/program.js';
import { lifecycleCommand } from '../../src/cli/restart.js';
import { scaleCommand } from '../../src/cli/scale.js';
import { statsCommand } from '../../src/cli/stats.js';
import { topCommand } from '../../src/cli/top.js';
import { startControlServer } from '../../src/control/control-server.js';
import { TokenStore } from '../../src/control/token-store.js';
import { Host } from '../../src/host/host.js';
import { until } from '../support/until.js';

process.env.NFVISOR_QUIET = '1';

function deployment(replicas: number, rules: string): string {
  return `
pool: { slots: 2048, slotSize: 2048 }
ringSize: 256
ports:
  gen: { type: generator, seed: 9, packets: 50000000, frameSize: 64, flows: 64 }
  out: { type: sink }
nfs:
  fw: { image: builtin/firewall, vnic: paravirt, replicas: ${replicas}, config: { default: accept, rules: ${rules} } }
chains:
  - { name: main, from: gen, through: [fw], to: out }
`;
}

describe('nfvisor apply, scale, drain, stop, restart, stats, capture, top', () => {
  it('registers every command', async () => {
    const names = (await buildProgram()).commands.map((c) => c.name());
    for (const name of ['apply', 'scale', 'restart', 'drain', 'stop', 'stats', 'capture', 'top'])
      assert.ok(names.includes(name), name);
    // The lazy table names exactly the commands there are, and each entry loads the file that
    // registers it: a command missing from the table would be reachable only through help.
    assert.deepEqual(Object.keys(COMMAND_MODULES).sort(), [...names].sort());
    for (const name of names) {
      const alone = (await buildProgram(name)).commands.map((c) => c.name());
      assert.ok(alone.includes(name), `buildProgram('${name}') registers ${name}`);
    }
  });

  it('steers a running host', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctl-cli-'));
    const deploy = deploymentPlanner(dir);
    const host = await Host.create({
      ...(await deploy(deployment(1, '[]'), 'first.yaml')),
      watchdogMs: 60_000,
    });
    const tokens = TokenStore.inMemory();
    const token = (await tokens.issue('operator')).token;
    const server = await startControlServer(host, { tokens, listen: '127.0.0.1:0', deploy });
    const flags = { control: server.address, token, json: false };
    const running = host.run();
    try {
      await until('packets through', () => host.status().sent > 1000);

      const next = join(dir, 'next.yaml');
      writeFileSync(next, deployment(1, '[{ action: drop, protocol: udp }]'));
      const dry = await applyCommand(next, { ...flags, dryRun: true });
      assert.match(dry, /^~ nf fw \(config\)$/m);
      assert.match(dry, /^~ chain main \(nf fw changed\)$/m);
      assert.match(dry, /dry run: nothing was changed/);
      const applied = await applyCommand(next, { ...flags, dryRun: false });
      assert.match(
        applied,
        /^applied: new guests ready in \d+ ms, old copies drained in \d+ ms, nothing lost$/m,
      );
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, deployment(1, '[{ action: explode }]'));
      await assert.rejects(applyCommand(bad, { ...flags, dryRun: true }), (e: unknown) => {
        const error = e as { code?: string; message?: string };
        return error.code === 'NFV_ERR_DEPLOY_INVALID' && /bad\.yaml:\d+/.test(error.message ?? '');
      });

      const scaled = JSON.parse(await scaleCommand('fw', 2, { ...flags, json: true })) as {
        applied: boolean;
      };
      assert.equal(scaled.applied, true);
      assert.equal(host.status().nfs.find((n) => n.name === 'fw')?.replicas, 2);

      assert.match(await lifecycleCommand('drain', 'fw', flags), /^fw: drained;/);
      assert.match(await lifecycleCommand('restart', 'fw', flags), /^fw: restarting/);
      const sent = host.status().sent;
      await until('forwarding after the restart', () => host.status().sent > sent + 1000);
      assert.match(await lifecycleCommand('stop', 'fw', { ...flags, reason: 'test' }), /^fw: stopped;/);
      await lifecycleCommand('restart', 'fw', flags);
      // A stopped instance comes back as a new copy: its counters start again.
      await until('fw dropping UDP again', () => (host.status().nfs[0]?.drops.denied ?? 0) > 0);

      const stats = await statsCommand('fw', flags);
      assert.match(stats, /^fw \(firewall, paravirt, 2 replicas\): \d+ packets/);
      assert.match(stats, /^drop +denied +\d+/m);
      const all = JSON.parse(await statsCommand(undefined, { ...flags, json: true })) as { nfs: unknown[] };
      assert.equal(all.nfs.length, 1);

      await until('forwarding again', () => host.status().sent > sent + 2000);
      const pcap = join(dir, 'hop.pcap');
      const captured = await captureCommand('main', {
        ...flags,
        hop: '1',
        packets: '20',
        timeout: '10000',
        write: pcap,
      });
      assert.equal(captured, `20 packets from chain main hop 1 written to ${pcap}`);
      assert.equal(readFileSync(pcap).readUInt32LE(0), 0xa1b23c4d, 'a nanosecond pcap file');

      const plain: string[] = [];
      await topCommand(
        { ...flags, interval: '100', count: '2' },
        { isTTY: false, write: (t) => plain.push(t) },
      );
      assert.equal(plain.length, 2);
      assert.match(plain[0], /^\d{4}-\d\d-\d\dT.*\nnfvisor running \d+ s │ in [\d.]+[kM]? pps/);
      assert.match(plain[0], /^fw +[\d.]+[kM]? +/m);
      assert.ok(!plain.join('').includes('\x1b['), 'no escape codes off a terminal');
      const tty: string[] = [];
      await topCommand({ ...flags, interval: '100', count: '2' }, { isTTY: true, write: (t) => tty.push(t) });
      assert.equal(
        tty.filter((t) => t.startsWith('\x1b[H\x1b[2J')).length,
        2,
        'redrawn in place on a terminal',
      );
      const lines: string[] = [];
      await topCommand(
        { ...flags, json: true, interval: '100', count: '2' },
        { write: (t) => lines.push(t) },
      );
      for (const line of lines) assert.ok((JSON.parse(line) as { nfs: unknown[] }).nfs.length === 1);
    } finally {
      host.stop();
      await running;
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
