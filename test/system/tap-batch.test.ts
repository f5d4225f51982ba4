/**
 * A TAP port reads and writes in batches: through one io_uring_enter per batch where the kernel
 * has io_uring, through a read()/write() per frame where it has not (NFVISOR_NO_URING=1). Both
 * must move every frame, in order. tap-batch-driver.ts runs the exchange in a child process per
 * path (the addon picks its path once per thread): 2,000 datagrams the kernel queued on the device
 * before the port reads any — full batches, then a short one — and 2,000 frames the port writes,
 * received by a socket in the namespace.
 *
 * Needs root, iproute2, python3 and the native addon (npm ci).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { requireRoot, requireTools, Testbed } from './netns.js';

const DRIVER = fileURLToPath(new URL('./tap-batch-driver.js', import.meta.url));
const FRAMES = 2000;

interface Exchange {
  read: number[];
  sent: number[];
  counters: Record<string, number>;
}

function exchange(ns: string, device: string, env: NodeJS.ProcessEnv): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DRIVER, ns, device, String(FRAMES)],
      { env, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Exchange);
      },
    );
  });
}

const inOrder = Array.from({ length: FRAMES }, (_, i) => i);

describe('TAP batches: io_uring and read()/write() move every frame, in order', () => {
  const bed = new Testbed(`nfq${process.pid % 100000}`);
  let ns = '';

  before(async () => {
    requireRoot('tap-batch.test');
    await requireTools(['ip', 'python3']);
    assert.ok(loadNativeAddon(), `the native addon must be built for TAP ports: ${addonUnavailableReason()}`);
    ns = await bed.addNamespace('a');
  });

  after(async () => {
    await bed.teardown();
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
  });

  for (const [path, extra] of [
    ['io_uring', {}],
    ['read()/write()', { NFVISOR_NO_URING: '1' }],
  ] as const) {
    it(`${path}: ${FRAMES} frames read and ${FRAMES} written, none lost, none out of order`, async () => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
      const result = await exchange(ns, bed.name(path === 'io_uring' ? 'qu' : 'qr'), env);
      assert.deepEqual(
        result.read,
        inOrder,
        `read ${result.read.length}: ${JSON.stringify(result.counters)}`,
      );
      assert.deepEqual(result.sent, inOrder, `the namespace received ${result.sent.length}`);
      assert.equal(result.counters.tx_errors, 0);
      assert.equal(result.counters.rx_errors, 0);
    });
  }
});
