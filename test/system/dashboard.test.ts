/**
 * The web dashboard in a real browser against a real host: Debian's chromium, driven headless by
 * playwright-core, opens /dashboard on a host running generator → firewall (a worker guest) → sink,
 * sees the firewall's packets/s above zero and moving, clicks Restart and sees the restart count
 * reach 1 and the traffic come back, and saves a screenshot (the test's temp dir, and
 * bench/results/dashboard.png for the README). Needs /usr/bin/chromium (`.ci/run` installs it) and
 * the compiled built-in NFs (dist/nfs).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startControlServer, type ControlServer } from '../../src/control/control-server.js';
import { TokenStore } from '../../src/control/token-store.js';
import { builtinModule, Host, type HostPlan, type HostSummary } from '../../src/host/host.js';

process.env.NFVISOR_QUIET = '1';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
/** The repository root, from dist/test/system (or any build directory laid out the same way). */
const REPO_RESULTS = new URL('../../../bench/results/', import.meta.url);

const plan: HostPlan = {
  pool: { slots: 1024, slotSize: 2048 },
  ringSize: 256,
  batch: 32,
  restartBackoffMs: 20,
  // Only the restarts the test asks for: a guest starved of CPU on a busy machine is not one.
  watchdogMs: 60_000,
  ports: {
    gen: {
      kind: 'generator',
      options: { seed: 11, packets: 500_000_000, frameSize: 64, ratePps: 50_000 },
    },
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

/** The number a `data-value` element of the firewall's card shows. */
async function shown(page: Page, field: string): Promise<number> {
  const value = await page.locator(`[data-nf="fw"] [data-field="${field}"]`).getAttribute('data-value');
  return Number(value ?? NaN);
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('web dashboard in headless chromium', () => {
  it(
    'shows live rates, restarts the firewall from its button, and saves a screenshot',
    { timeout: 120_000 },
    async () => {
      assert.ok(
        existsSync(CHROMIUM),
        `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)`,
      );
      const dir = mkdtempSync(join(tmpdir(), 'nfvisor-dashboard-'));
      const tokens = TokenStore.inMemory();
      const viewer = (await tokens.issue('viewer', 'dashboard test')).token;
      const operator = (await tokens.issue('operator', 'dashboard test')).token;

      const host = await Host.create(plan);
      let running: Promise<HostSummary> | null = null;
      let server: ControlServer | null = null;
      let browser: Browser | null = null;
      try {
        running = host.run();
        server = await startControlServer(host, { tokens, listen: '127.0.0.1:0' });
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          args: CHROMIUM_ARGS,
          headless: true,
          timeout: 30_000,
        });
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = await context.newPage();
        page.setDefaultTimeout(20_000);
        const pageErrors: string[] = [];
        page.on('pageerror', (e) => pageErrors.push(e.message));

        // No token: the page asks for one, and says so when it is refused.
        await page.goto(`${server.address}/dashboard`);
        await page.locator('#login').waitFor({ state: 'visible' });
        await page.fill('#token', 'not-a-real-token-at-all');
        await page.click('#login-form button');
        await until(
          'the page says the token is refused',
          async () => /not valid/.test((await page.locator('#login-error').textContent()) ?? ''),
          10_000,
        );

        // A viewer token sees everything but cannot restart.
        await page.goto(`${server.address}/dashboard#token=${viewer}`);
        await until(
          'the token leaves the address bar',
          () => Promise.resolve(new URL(page.url()).hash === ''),
          5000,
        );
        await page.locator('[data-nf="fw"] [data-field="pps"]').waitFor();
        await until('the firewall shows packets/s', async () => (await shown(page, 'pps')) > 0, 20_000);
        const first = await shown(page, 'pps');
        await until('the firewall rate moves', async () => (await shown(page, 'pps')) !== first, 20_000);
        const edge = await page.locator('[data-edge="main:0"]').getAttribute('data-value');
        assert.ok(Number(edge) > 0, `the edge gen → fw shows packets/s (${edge})`);
        assert.ok((await page.locator('[data-node="fw"]').count()) > 0, 'the graph has the firewall');
        await until(
          'the firewall node shows the UDP packets its rule denied',
          async () => Number(await page.locator('[data-node="fw"] .drops').getAttribute('data-value')) > 0,
          10_000,
        );
        await page.click('[data-nf="fw"] [data-action="restart"]');
        await until(
          'a viewer is told restarting needs the operator role',
          async () =>
            /operator/.test((await page.locator('[data-nf="fw"] [data-field="note"]').textContent()) ?? ''),
          10_000,
        );
        assert.equal(await shown(page, 'restarts'), 0);

        // The operator restarts the firewall and sees it come back.
        await page.evaluate(() => sessionStorage.clear());
        await page.goto(`${server.address}/dashboard?token=${operator}`);
        assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar');
        await until('the firewall shows packets/s again', async () => (await shown(page, 'pps')) > 0, 20_000);
        assert.equal(await shown(page, 'restarts'), 0);
        await page.click('[data-nf="fw"] [data-action="restart"]');
        await until('the restart count shows 1', async () => (await shown(page, 'restarts')) === 1, 20_000);
        assert.equal(host.status().nfs.find((nf) => nf.name === 'fw')?.restarts, 1);
        await until(
          'packets/s above zero after the restart',
          async () =>
            (await shown(page, 'pps')) > 0 &&
            /restarted/.test((await page.locator('[data-nf="fw"] [data-field="note"]').textContent()) ?? ''),
          20_000,
        );
        // Scale to two replicas from the card: the host runs two, and the rebuilt card says so.
        await page.fill('[data-nf="fw"] [data-field="replicas-input"]', '2');
        await page.click('[data-nf="fw"] [data-action="scale"]');
        await until(
          'the card showing 2 replicas',
          async () => /2 replicas/.test((await page.locator('[data-nf="fw"] .meta').textContent()) ?? ''),
          20_000,
        );
        assert.equal(host.status().nfs.find((nf) => nf.name === 'fw')?.replicas, 2);
        await until('packets/s above zero after scaling', async () => (await shown(page, 'pps')) > 0, 20_000);
        // A few more seconds of chart after the restart, for the picture.
        await page.waitForTimeout(5000);
        const screenshot = join(dir, 'dashboard.png');
        await page.screenshot({ path: screenshot, fullPage: true });
        assert.ok(existsSync(screenshot));
        mkdirSync(REPO_RESULTS, { recursive: true });
        copyFileSync(screenshot, new URL('dashboard.png', REPO_RESULTS));
        // Drain: the firewall leaves service (its chain fails closed), the note says how to bring it back.
        await page.click('[data-nf="fw"] [data-action="drain"]');
        await until(
          'the drain reported',
          async () =>
            /drained; Restart brings it back/.test(
              (await page.locator('[data-nf="fw"] [data-field="note"]').textContent()) ?? '',
            ),
          20_000,
        );
        const downBefore = host.status().hostDrops.nf_down ?? 0;
        await until(
          'traffic meeting the drained firewall',
          () => Promise.resolve((host.status().hostDrops.nf_down ?? 0) > downBefore),
          20_000,
        );
        assert.deepEqual(pageErrors, [], 'no script errors in the page');
      } finally {
        await browser?.close().catch(() => undefined);
        await server?.close().catch(() => undefined);
        host.stop();
        if (running !== null) await running;
      }
    },
  );
});
