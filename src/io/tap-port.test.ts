// TapPort without a device: argument checks and the errors of a port that cannot open. Opening real
// TAP/TUN devices needs CAP_NET_ADMIN: test/system/tap-netns.test.ts.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { isNfvError } from '../errors.js';
import { resetNativeAddonForTests } from './native-addon.js';
import { TapPort } from './tap-port.js';

describe('TapPort', () => {
  const saved = process.env.NFVISOR_NO_ADDON;
  afterEach(() => {
    if (saved === undefined) delete process.env.NFVISOR_NO_ADDON;
    else process.env.NFVISOR_NO_ADDON = saved;
    resetNativeAddonForTests();
  });

  it('refuses bad options with the port and field named', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ device: 'a-name-longer-than-15' }, 'device'],
      [{ device: 'tap 0' }, 'device'],
      [{ device: 'tap0', mode: 'tunnel' }, 'mode'],
      [{ device: 'tap0', batch: 0 }, 'batch'],
      [{ device: 'tap0', batch: 257 }, 'batch'],
      [{ device: 'tap0', slotSize: 14 }, 'slotSize'],
      [{ device: 'tap0', queueLength: 0 }, 'queueLength'],
      [{ device: 'tap0', queueLength: 1.5 }, 'queueLength'],
    ];
    for (const [options, field] of cases) {
      assert.throws(
        () => new TapPort({ name: 'guest0', ...(options as { device: string }) }),
        (e: unknown) =>
          isNfvError(e, 'NFV_ERR_BAD_ARGUMENT') &&
          (e as { detail?: { field?: string; port?: string } }).detail?.field === field &&
          e.message.includes('port guest0'),
        JSON.stringify(options),
      );
    }
  });

  it('without the addon, open() rejects naming the port and why; the port then reads -1 and counts writes', async () => {
    process.env.NFVISOR_NO_ADDON = '1';
    resetNativeAddonForTests();
    const port = new TapPort({ name: 'guest0', device: 'nfvt0' });
    await assert.rejects(port.open(), (e: unknown) => {
      assert.ok(isNfvError(e, 'NFV_ERR_IO'));
      assert.match(
        e.message,
        /^tap port guest0: needs nfvisor's native addon, which is disabled by NFVISOR_NO_ADDON=1/,
      );
      return true;
    });
    assert.equal(port.next(new Uint8Array(64), 0, 64), -1);
    port.write(new Uint8Array(60), 0, 60, 0, 0);
    assert.equal(port.counters.tx_errors, 1);
    port.close();
  });

  it('a name held by a device that is not TAP rejects with NFV_ERR_IO naming port and device, never throws', async (t) => {
    resetNativeAddonForTests();
    const port = new TapPort({ name: 'uplink', device: 'lo', mode: 'tun' });
    let error: unknown;
    try {
      await port.open();
    } catch (e) {
      error = e;
    }
    if (error === undefined) {
      port.close();
      assert.fail('opening lo as a TUN device succeeded');
    }
    assert.ok(isNfvError(error, 'NFV_ERR_IO'));
    const detail = (error as unknown as { detail: { errno?: string; reason?: string } }).detail;
    if (error.message.includes('native addon')) {
      t.diagnostic('addon not built: only the message is checked');
      return;
    }
    // Root: the kernel refuses lo (EINVAL/EBUSY); without CAP_NET_ADMIN: EPERM. Either way, named.
    assert.match(error.message, /^tun port uplink: cannot open device lo: /);
    assert.ok(['EINVAL', 'EBUSY', 'EPERM', 'EACCES', 'ENOENT'].includes(detail.errno ?? ''), detail.errno);
    assert.equal(port.next(new Uint8Array(64), 0, 64), -1);
  });
});
