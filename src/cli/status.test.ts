import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startControlServer, type ControlServer } from '../control/control-server.js';
import { FakeHost, fakeStatus } from '../control/fake-host.js';
import { TokenStore } from '../control/token-store.js';
import { statusCommand } from './status.js';

const dir = mkdtempSync(join(tmpdir(), 'nfvisor-status-'));
const tokens = TokenStore.inMemory();
let viewer = '';
let server: ControlServer;
let socket: ControlServer;

before(async () => {
  viewer = (await tokens.issue('viewer')).token;
  const options = { tokens, counterSpecs: new Map() };
  server = await startControlServer(new FakeHost(), { ...options, listen: '127.0.0.1:0' });
  socket = await startControlServer(new FakeHost(), { ...options, listen: `unix:${join(dir, 'ctl.sock')}` });
});

after(async () => {
  await server.close();
  await socket.close();
  rmSync(dir, { recursive: true, force: true });
});

function codeOf(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

describe('nfvisor status', () => {
  it('prints the live status as tables', async () => {
    const text = await statusCommand({ control: server.address, token: viewer, json: false });
    assert.match(text, /^host running for 12\.5 s: 1000 packets received/);
    assert.match(text, /^fw +firewall +direct +isolated +1 +1000 +2 +up +denied 75 *$/m);
    assert.match(text, /^bad .* QUARANTINED/m);
    assert.match(text, /^main +fw → mon +out *$/m);
    assert.match(text, /p50 16 µs, p99 64 µs, max 181 µs/);
    assert.match(text, /host drops: nf_down 5/);
  });

  it('prints the whole status with --json, over a Unix socket too', async () => {
    for (const control of [server.address, socket.address]) {
      const text = await statusCommand({ control, token: viewer, json: true });
      assert.deepEqual(JSON.parse(text), fakeStatus());
    }
  });

  it('reports the server’s code for a refused token, and UNREACHABLE when nothing answers', async () => {
    await assert.rejects(
      statusCommand({ control: server.address, token: 'not-a-token-at-all', json: false }),
      (e: unknown) => codeOf(e) === 'NFV_ERR_CONTROL_UNAUTHORIZED',
    );
    await assert.rejects(
      statusCommand({ control: server.address, json: false }),
      (e: unknown) => codeOf(e) === 'NFV_ERR_CONTROL_UNAUTHORIZED',
    );
    await assert.rejects(
      statusCommand({ control: `unix:${join(dir, 'nobody.sock')}`, token: viewer, json: false }),
      (e: unknown) => codeOf(e) === 'NFV_ERR_CONTROL_UNREACHABLE',
    );
    await assert.rejects(
      statusCommand({ control: 'ftp://127.0.0.1:1', token: viewer, json: false }),
      (e: unknown) => codeOf(e) === 'NFV_ERR_BAD_ARGUMENT',
    );
  });
});
