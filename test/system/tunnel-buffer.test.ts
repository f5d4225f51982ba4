/**
 * A tunnel port's socket receive buffer is the size its options ask for. With the native addon and
 * root (CAP_NET_ADMIN) it is granted past net.core.rmem_max (SO_RCVBUFFORCE, as wireguard-go does);
 * before, a deployment's `receiveBufferSize` was silently cut to rmem_max. `ss` (iproute2), which
 * nobody here wrote, reads the buffer the kernel gave the socket.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { VxlanPort } from '../../src/io/vxlan-port.js';
import { requireRoot, requireTools, run } from './netns.js';

describe('tunnel port receive buffer', () => {
  it('is granted as asked past net.core.rmem_max (root, native addon), as ss reports it', async () => {
    requireRoot('tunnel-buffer.test');
    await requireTools(['ss']);
    assert.ok(loadNativeAddon(), `the native addon must be built: ${addonUnavailableReason()}`);
    const rmemMax = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
    const asked = 4 * rmemMax; // past the cap, whatever this machine's is
    const port = new VxlanPort({ bind: { address: '127.0.0.1', port: 0 }, vni: 7, receiveBufferSize: asked });
    await port.open();
    try {
      const { stdout } = await run('ss', ['-u', '-a', '-n', '-m', 'sport', '=', `:${port.address().port}`]);
      const rb = Number(/skmem:\([^)]*\brb(\d+)/.exec(stdout)?.[1]);
      // The kernel doubles what it is given (bookkeeping overhead); capped, it would be 2 × rmem_max.
      assert.ok(rb >= asked, `ss reports rb ${rb} for ${asked} asked (rmem_max ${rmemMax}):\n${stdout}`);
    } finally {
      port.close();
    }
  });
});
