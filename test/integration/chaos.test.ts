/**
 * The chaos soak's CI variant (bench/chaos.ts; `npm run bench chaos` soaks for 30 minutes): one
 * round of generated traffic through firewall → NAT (two replicas) → load balancer while guests are
 * killed and restarted and the chain is reloaded and rescaled at seeded random moments. Every
 * invariant must hold: conservation, every slot back, no packet written twice, NAT ports owned.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaosSoak } from '../../bench/chaos.js';

process.env.NFVISOR_QUIET = '1';

describe('chaos soak (short)', () => {
  it('keeps every invariant through kills, restarts, reloads and rescaling', async () => {
    const report = await chaosSoak({ seconds: 0, seed: 7, roundPackets: 300_000 });
    assert.deepEqual(report.violations, []);
    assert.equal(report.rounds, 1);
    // The round was chaotic enough to mean something.
    assert.ok(report.events.kill >= 3, `guests killed: ${report.events.kill}`);
    assert.ok(
      report.events.restart + report.events.reload + report.events.scale >= 3,
      JSON.stringify(report.events),
    );
    assert.ok(report.events.natCheck >= 1, 'the NAT replicas were checked');
  });
});
