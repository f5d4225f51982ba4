/**
 * Amplification budget (TESTING.md D4): what an attacker's bytes make an NF keep. Each attack of
 * src/io/attack-frames.ts runs through its NF in two equal halves; the memory the process retains
 * afterwards (V8 heap and array buffers, after a full GC) divided by the attacker's bytes must stay
 * ≤ 10, and the second half must retain next to nothing more than the first — state is bounded by
 * configuration, not by what is sent. Counters show each attack reached the state it aims at.
 * CPU per attacker byte is reported by `npm run bench -- amplification`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import firewall from '../../nfs/firewall/index.js';
import ids from '../../nfs/ids/index.js';
import wireguard from '../../nfs/wireguard/index.js';
import { attackCases, sendAttack, type AttackCase } from '../../src/io/attack-frames.js';
import { MAX_BATCH, NfHarness, PacketBatch, type NfDefinition } from '../../src/sdk/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SLOT = 2048;
/** What TESTING.md D4 allows: bytes retained per attacker byte. */
const BUDGET = 10;
/** What the second half of an attack may add to what the first retained (allocator noise). */
const SECOND_HALF_SLACK = 2 * 2 ** 20;

function retained(): number {
  gc();
  gc();
  return getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers;
}

const DEFINITIONS = { firewall, ids, wireguard } as Record<AttackCase['nf'], NfDefinition<never>>;

/** Counters and drops (`drop:<reason>`) that show each attack reached its target state, or why not. */
const REACHED: ((c: Record<string, number>) => string | null)[] = [
  (c) =>
    c.ct_created >= 400_000 && c.ct_evicted > 0 ? null : `created ${c.ct_created}, evicted ${c.ct_evicted}`,
  (c) => (c.accepted >= 40_000 ? null : `accepted ${c.accepted}`),
  (c) =>
    c.fragments > 0 && c.fragments_active > 0
      ? null
      : `fragments ${c.fragments}, active ${c.fragments_active}`,
  (c) =>
    c.streams_created > 8192 && c.segments_held > 0
      ? null
      : `streams ${c.streams_created}, held ${c.segments_held}`,
  (c) => (c['drop:bad_mac1'] >= 40_000 ? null : `bad_mac1 ${c['drop:bad_mac1']}`),
];

describe('amplification budget (TESTING D4)', () => {
  const cases = attackCases();
  assert.equal(cases.length, REACHED.length);
  cases.forEach((c, index) => {
    const definition = DEFINITIONS[c.nf];
    it(`${c.attack.name} → ${c.nf}: retains ≤ ${BUDGET}× the attacker's bytes, and no more for twice the attack`, (t) => {
      const nf = new NfHarness(definition, c.config, { slotSize: SLOT });
      const processBatch = nf.instance.process.bind(nf.instance);
      const batch = new PacketBatch(new Uint8Array(MAX_BATCH * SLOT), SLOT);
      const reasons = Object.keys(definition.drops);
      const drops = new Float64Array(reasons.length);
      sendAttack(processBatch, batch, c.attack, 0, 512, drops); // warm up: code and lazily made tables
      drops.fill(0);
      const before = retained();
      const firstBytes = sendAttack(processBatch, batch, c.attack, 512, 512 + c.frames / 2, drops);
      const half = retained();
      const attackerBytes =
        firstBytes + sendAttack(processBatch, batch, c.attack, 512 + c.frames / 2, 512 + c.frames, drops);
      const after = retained();
      const ratio = (after - before) / attackerBytes;
      const tally: Record<string, number> = { ...nf.counters() };
      reasons.forEach((reason, r) => (tally[`drop:${reason}`] = drops[r]));
      const problem = REACHED[index](tally);
      t.diagnostic(
        `${(attackerBytes / 2 ** 20).toFixed(1)} MiB sent, ${((after - before) / 2 ** 10).toFixed(0)} KiB retained (${ratio.toFixed(3)}×), second half ${((after - half) / 2 ** 10).toFixed(0)} KiB`,
      );
      assert.equal(problem, null, `the attack did not reach its target state: ${problem}`);
      assert.ok(
        ratio <= BUDGET,
        `retained ${((after - before) / 2 ** 20).toFixed(1)} MiB for ${(attackerBytes / 2 ** 20).toFixed(1)} MiB sent: ${ratio.toFixed(2)}×`,
      );
      assert.ok(
        after - half <= SECOND_HALF_SLACK,
        `the second half of the attack retained ${((after - half) / 2 ** 20).toFixed(1)} MiB more (first half: ${((half - before) / 2 ** 20).toFixed(1)} MiB)`,
      );
    });
  });
});
