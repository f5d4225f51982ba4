/**
 * TAP ports in a live reconfiguration (`host.apply`): a running host between two namespaces, each
 * side a TAP device the host made and the test moved into its namespace, and then, with `ping`
 * checking the path after each step:
 *
 * 1. a changed TAP port (another batch size, the same device) keeps its device — same ifindex,
 *    still in its namespace with its address — because the new port object takes over the open
 *    device at the swap instead of opening it again (the kernel would say "busy"), and its counters
 *    go on from where the old port's were;
 * 2. an apply that adds two ports, one asking for the device a running port holds (tr's, left in
 *    the root namespace), fails naming that port ("device busy"), closes the other new port again
 *    (its device disappears) and leaves the running ports carrying traffic;
 * 3. one apply moves side a to a new TAP device and removes the old port: the new device appears
 *    before the swap, the old one disappears after it, and ping works through the new one.
 *
 *   ns a  A 10.77.0.1/24 ═ fd ── ta → [fwab] → tb ── fd ═ B 10.77.0.2/24  ns b
 *                                 tb → [fwba] → ta
 *   root namespace: R (down) ═ fd ── tr → [fwab] → tb
 *
 * Needs root, iproute2, iputils-ping, `/dev/net/tun` and the native addon (npm ci). The namespaces
 * go in `after()`, also when a test fails; the devices go with the host's fds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NfvError } from '../../src/errors.js';
import { Host, type HostPlan, type HostSummary } from '../../src/host/host.js';
import { addonUnavailableReason, loadNativeAddon } from '../../src/io/native-addon.js';
import { requireRoot, requireTools, run, Testbed } from './netns.js';
import { inlineFirewall, waitForDevice } from './tap-helpers.js';

process.env.NFVISOR_QUIET = '1';
const PINGS = 3;

async function exists(ns: string | undefined, dev: string): Promise<boolean> {
  const args = ns === undefined ? ['link', 'show', 'dev', dev] : ['-n', ns, 'link', 'show', 'dev', dev];
  return run('ip', args, 5_000).then(
    () => true,
    () => false,
  );
}

async function ifindex(ns: string, dev: string): Promise<number> {
  const { stdout } = await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(stdout) as { ifindex: number }[])[0].ifindex;
}

describe('TAP ports added, changed and removed by a live apply', () => {
  const bed = new Testbed(`nfl${process.pid % 100000}`);
  let a = '';
  let b = '';
  let host: Host | null = null;
  let running: Promise<HostSummary> | null = null;
  const devA = bed.name('ta');
  const devB = bed.name('tb');
  const devC = bed.name('tc');
  const devD = bed.name('td');
  const devR = bed.name('tr');

  const plan = (aPort: { device: string; batch?: number }, extra: Partial<HostPlan> = {}): HostPlan => ({
    pool: { slots: 1024, slotSize: 2048 },
    ringSize: 256,
    batch: 32,
    ports: {
      ta: { kind: 'tap', options: aPort },
      tb: { kind: 'tap', options: { device: devB } },
      tr: { kind: 'tap', options: { device: devR } },
    },
    nfs: { fwab: inlineFirewall(), fwba: inlineFirewall() },
    chains: [
      { name: 'a-to-b', from: 'ta', to: 'tb', through: ['fwab'] },
      { name: 'b-to-a', from: 'tb', to: 'ta', through: ['fwba'] },
      { name: 'r-to-b', from: 'tr', to: 'tb', through: ['fwab'] },
    ],
    ...extra,
  });

  async function ping(): Promise<string> {
    const out = await bed.exec(
      a,
      'ping',
      ['-c', String(PINGS), '-i', '0.2', '-W', '5', '-w', '20', '10.77.0.2'],
      30_000,
    );
    return out.stdout;
  }

  async function placeA(dev: string): Promise<void> {
    await run('ip', ['link', 'set', dev, 'netns', a]);
    await bed.addAddress(dev, '10.77.0.1/24', a);
    await bed.ip(a, ['link', 'set', dev, 'up']);
  }

  before(async () => {
    requireRoot('tap-live-apply.test');
    await requireTools(['ip', 'ping']);
    assert.ok(loadNativeAddon(), `the native addon must be built for TAP ports: ${addonUnavailableReason()}`);
    a = await bed.addNamespace('a');
    b = await bed.addNamespace('b');
    host = await Host.create(plan({ device: devA }));
    running = host.run();
    await host.opened;
    assert.deepEqual(host.failedPorts, []);
    for (const dev of [devA, devB, devR]) await waitForDevice(dev, 30_000);
    await placeA(devA);
    await run('ip', ['link', 'set', devB, 'netns', b]);
    await bed.addAddress(devB, '10.77.0.2/24', b);
    await bed.ip(b, ['link', 'set', devB, 'up']);
    assert.match(await ping(), new RegExp(`${PINGS} received`), 'the path works before any apply');
  });

  after(async () => {
    host?.stop();
    await running?.catch(() => undefined);
    await bed.teardown();
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
  });

  it('changes a TAP port (batch 64 → 16) without giving up its device or restarting its counters', async () => {
    const before = await ifindex(a, devA);
    const sentBefore = host!.status().ports.ta?.sent ?? 0;
    assert.ok(sentBefore >= PINGS, `the replies went out of ta (${sentBefore})`);
    const result = await host!.apply(plan({ device: devA, batch: 16 }));
    assert.equal(result.applied, true);
    assert.deepEqual(
      result.diff.ports.changed.map((c) => c.name),
      ['ta'],
    );
    assert.equal(await ifindex(a, devA), before, 'the same device, still in namespace a');
    const sentAfter = host!.status().ports.ta?.sent ?? 0;
    assert.ok(sentAfter >= sentBefore, `ta counts on from ${sentBefore} (now ${sentAfter}), not from 0`);
    const out = await ping();
    assert.match(out, new RegExp(`${PINGS} received`), out);
  });

  it('fails an apply whose new port finds its device busy, naming it, and closes the other new port', async () => {
    const next = plan(
      { device: devA, batch: 16 },
      {
        ports: {
          ta: { kind: 'tap', options: { device: devA, batch: 16 } },
          tb: { kind: 'tap', options: { device: devB } },
          tr: { kind: 'tap', options: { device: devR } },
          td: { kind: 'tap', options: { device: devD } },
          busy: { kind: 'tap', options: { device: devR } },
        },
        chains: [
          { name: 'a-to-b', from: 'ta', to: 'tb', through: ['fwab'] },
          { name: 'b-to-a', from: 'tb', to: 'ta', through: ['fwba'] },
          { name: 'r-to-b', from: 'tr', to: 'tb', through: ['fwab'] },
          { name: 'd-to-b', from: 'td', to: 'tb', through: ['fwab'] },
          { name: 'busy-to-b', from: 'busy', to: 'tb', through: ['fwba'] },
        ],
      },
    );
    await assert.rejects(host!.apply(next), (error: unknown) => {
      assert.ok(error instanceof NfvError, String(error));
      assert.equal(error.code, 'NFV_ERR_RECONFIGURE_FAILED');
      assert.match(error.message, /ports\.busy: tap port busy: cannot open device .*: device busy/);
      assert.equal(error.detail.port, 'busy');
      return true;
    });
    assert.equal(await exists(undefined, devD), false, 'the port opened for the failed apply was closed');
    assert.equal(host!.status().running, true);
    assert.deepEqual(
      host!.status().chains.map((c) => c.name),
      ['a-to-b', 'b-to-a', 'r-to-b'],
    );
    assert.equal(await exists(undefined, devR), true, "the running port's device is untouched");
    const out = await ping();
    assert.match(out, new RegExp(`${PINGS} received`), out);
  });

  it('moves side a to a new TAP device and removes the old port in one apply', async () => {
    const next: HostPlan = {
      ...plan({ device: devA }),
      ports: {
        tc: { kind: 'tap', options: { device: devC } },
        tb: { kind: 'tap', options: { device: devB } },
        tr: { kind: 'tap', options: { device: devR } },
      },
      chains: [
        { name: 'a-to-b', from: 'tc', to: 'tb', through: ['fwab'] },
        { name: 'b-to-a', from: 'tb', to: 'tc', through: ['fwba'] },
        { name: 'r-to-b', from: 'tr', to: 'tb', through: ['fwab'] },
      ],
    };
    const result = await host!.apply(next);
    assert.equal(result.applied, true);
    assert.deepEqual(result.diff.ports.added, ['tc']);
    assert.deepEqual(result.diff.ports.removed, ['ta']);
    assert.equal(await exists(a, devA), false, 'the removed port closed its device');
    assert.equal(await exists(undefined, devC), true, 'the new port made its device');
    await placeA(devC);
    // The new device has its own MAC address: b must ask again instead of answering the old one.
    await bed.ip(b, ['neigh', 'flush', 'dev', devB]);
    const out = await ping();
    assert.match(out, new RegExp(`${PINGS} received`), out);
  });

  it('stops cleanly: every packet accounted for, every slot free', async () => {
    host!.stop();
    const summary = await running!;
    running = null;
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.poolFree, summary.poolSlots);
    assert.ok(summary.ports.tc.sent >= PINGS, JSON.stringify(summary.ports));
    assert.equal(await exists(a, devC), false, 'the device went with the host');
    assert.equal(await exists(undefined, devR), false, 'the device went with the host');
  });
});
