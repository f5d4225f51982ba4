/**
 * While a host with worker guests runs, its thread and the guests it starts are SCHED_BATCH (a
 * wake-up does not preempt a stage mid-burst: native/nfvisor_io.c), and the default policy comes
 * back when it ends. The kernel says which policy each thread has: /proc/self/task/<tid>/stat.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { Host, type HostPlan } from '../../src/host/host.js';
import { loadNativeAddon } from '../../src/io/native-addon.js';
import { endlessMemoryPort } from '../support/memory-port.js';
import { builtinNfPlan } from '../support/nf-plan.js';

process.env.NFVISOR_QUIET = '1';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** Each thread's scheduling policy (field 41 of its stat line), by thread id. */
function policies(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): field 3 is the first.
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]));
    } catch {
      // A thread that ended while we looked.
    }
  }
  return out;
}

/** Runs one firewall guest behind an endless source and reads every thread's policy mid-run. */
async function policiesWhileRunning(): Promise<{ during: Map<number, number>; after: Map<number, number> }> {
  const plan: HostPlan = {
    pool: { slots: 2048, slotSize: 2048 },
    ringSize: 512,
    batch: 32,
    ports: { in: endlessMemoryPort(256, { seed: 3 }), out: { kind: 'sink' } },
    nfs: { fw: builtinNfPlan('firewall', { default: 'accept' }) },
    chains: [{ name: 'main', from: 'in', to: 'out', through: ['fw'] }],
  };
  const host = await Host.create(plan);
  const running = host.run();
  await host.opened;
  await new Promise((resolve) => setTimeout(resolve, 200));
  const during = policies();
  host.stop();
  const summary = await running;
  assert.ok(summary.sent > 0, 'the guest forwarded packets');
  return { during, after: policies() };
}

describe('host thread scheduling', () => {
  const addon = loadNativeAddon();
  const skip = addon?.setBatchScheduling === undefined ? 'the native addon is not built' : false;
  afterEach(() => delete process.env.NFVISOR_SCHED_DEFAULT);

  it(
    'runs the host thread and its guests under SCHED_BATCH, and restores the default after',
    { skip },
    async () => {
      const before = policies();
      assert.equal(before.get(process.pid), SCHED_OTHER, 'the test starts under the default policy');
      const { during, after } = await policiesWhileRunning();
      assert.equal(during.get(process.pid), SCHED_BATCH, 'the host thread, while it runs');
      // Threads that existed before the run keep theirs; the guest's threads were started under it.
      const started = [...during].filter(([tid]) => !before.has(tid));
      assert.ok(started.length > 0, 'the run started threads (its guest)');
      for (const [tid, policy] of started)
        assert.equal(policy, SCHED_BATCH, `thread ${tid} started by the run`);
      assert.equal(after.get(process.pid), SCHED_OTHER, 'the host thread, after the run');
    },
  );

  it('leaves the policy alone with NFVISOR_SCHED_DEFAULT=1', { skip }, async () => {
    process.env.NFVISOR_SCHED_DEFAULT = '1';
    const { during } = await policiesWhileRunning();
    assert.equal(during.get(process.pid), SCHED_OTHER);
  });
});
