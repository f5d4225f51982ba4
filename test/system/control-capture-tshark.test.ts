/**
 * A hop capture from the control API (POST /v1/chains/:name/capture) read by tshark: every frame
 * the host copied out of a running chain is a whole Ethernet/IPv4 frame to an independent decoder
 * (its header checksum verifies and its length fits), and there are exactly as many as were asked for.
 *
 * Needs: tshark (Debian `tshark`); fails, never skips, without it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildControlApp } from '../../src/control/control-server.js';
import { TokenStore } from '../../src/control/token-store.js';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';

process.env.NFVISOR_QUIET = '1';

const plan: HostPlan = {
  pool: { slots: 1024, slotSize: 2048 },
  ringSize: 256,
  batch: 32,
  watchdogMs: 60_000,
  ports: {
    gen: {
      kind: 'generator',
      options: { seed: 3, packets: 50_000_000, frameSize: 'imix', ipv6: 0, vlan: 0 },
    },
    sink: { kind: 'sink' },
  },
  nfs: {
    fw: {
      module: builtinModule('firewall'),
      config: { default: 'accept' },
      vnic: 'paravirt',
      placement: 'isolated',
      replicas: 1,
      heapMb: 64,
      failure: 'fail-closed',
    },
  },
  chains: [{ name: 'main', from: 'gen', to: 'sink', through: ['fw'] }],
};

function tshark(file: string, ...args: string[]): string {
  return execFileSync('tshark', ['-r', file, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('control API capture read by tshark', () => {
  it(
    'captures 64 frames at each hop of a chain, each a whole IPv4 frame to tshark',
    { timeout: 60_000 },
    async () => {
      const host = await Host.create(plan);
      const tokens = TokenStore.inMemory();
      const token = (await tokens.issue('operator')).token;
      const { app } = await buildControlApp(host, { tokens });
      const running = host.run();
      const dir = mkdtempSync(join(tmpdir(), 'ctl-tshark-'));
      try {
        for (const hop of [0, 1]) {
          const reply = await app.inject({
            method: 'POST',
            url: '/v1/chains/main/capture',
            headers: { authorization: `Bearer ${token}` },
            payload: { hop, packets: 64 },
          });
          assert.equal(reply.statusCode, 200, reply.body);
          const file = join(dir, `hop${hop}.pcap`);
          writeFileSync(file, reply.rawPayload);
          // Whole frames, byte for byte: tshark checks every IPv4 header checksum and sees the IP
          // length fit the frame (checksum status 1 is Good in tshark 4). (The generator's payloads are arbitrary bytes, which application
          // dissectors such as NTP's may call malformed; that is not the capture's business.)
          const fields = ['frame.len', 'eth.type', 'ip.len', 'ip.checksum.status'].flatMap((f) => ['-e', f]);
          const frames = tshark(file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', ...fields)
            .trim()
            .split('\n');
          assert.equal(frames.length, 64, `hop ${hop}`);
          for (const line of frames) {
            const [frameLength, etherType, ipLength, checksum] = line.split('\t');
            assert.equal(etherType, '0x0800', `hop ${hop}: ${line}`);
            assert.equal(checksum, '1', `hop ${hop}: the IPv4 checksum verifies (${line})`);
            assert.ok(Number(ipLength) + 14 <= Number(frameLength), `hop ${hop}: ${line}`);
          }
        }
      } finally {
        host.stop();
        await running;
        await app.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
