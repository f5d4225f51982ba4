/**
 * Input ports share the pool: when bursts are long and the pool is small, the port the host read
 * first every turn took every slot freed since the last turn, and the other port's chain moved
 * nothing while the first had packets. The host now changes which port it reads first every turn.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host, type HostPlan } from '../../src/host/host.js';
import { builtinNfPlan } from '../support/nf-plan.js';
import { until } from '../support/until.js';

process.env.NFVISOR_QUIET = '1';

describe('input ports on one pool', () => {
  it('each get their share of the slots: no chain starves behind another', async () => {
    const generator = (seed: number) =>
      ({ kind: 'generator', options: { seed, packets: 50_000_000, frameSize: 64, flows: 64 } }) as const;
    const plan: HostPlan = {
      // Eight bursts of 256 fill the whole pool: the first port read could take all of it.
      pool: { slots: 2048, slotSize: 2048 },
      ringSize: 256,
      batch: 256,
      ports: { a: generator(4), outA: { kind: 'sink' }, b: generator(5), outB: { kind: 'sink' } },
      nfs: {
        fwA: builtinNfPlan('firewall', { default: 'accept' }),
        fwB: builtinNfPlan('firewall', { default: 'accept' }),
      },
      chains: [
        { name: 'a', from: 'a', to: 'outA', through: ['fwA'] },
        { name: 'b', from: 'b', to: 'outB', through: ['fwB'] },
      ],
    };
    const host = await Host.create(plan);
    const running = host.run();
    const sent = (port: string): number => host.status().ports[port]?.sent ?? 0;
    try {
      await until('100,000 packets out of either chain', () => sent('outA') + sent('outB') >= 100_000);
      const [a, b] = [sent('outA'), sent('outB')];
      assert.ok(Math.min(a, b) >= 0.25 * (a + b), `both chains forward: ${a} and ${b} packets`);
    } finally {
      host.stop();
    }
    const summary = await running;
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.poolFree, summary.poolSlots);
  });
});
