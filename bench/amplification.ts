/**
 * `amplification` bench part (TESTING.md D4, CPU side): the CPU an attacker's bytes cost each NF,
 * against benign frames of the same size through the same NF — the attacks and their twins of
 * src/io/attack-frames.ts, inline in one thread. The memory side is a test
 * (test/integration/amplification.test.ts). Reported: ns of CPU per frame and per byte, and the
 * attack ÷ baseline ratio, best of ROUNDS.
 */
import { attackCases, sendAttack, type AttackFrames } from '../src/io/attack-frames.js';
import { MAX_BATCH, NfHarness, PacketBatch, type NfDefinition } from '../src/sdk/index.js';
import firewall from '../nfs/firewall/index.js';
import ids from '../nfs/ids/index.js';
import wireguard from '../nfs/wireguard/index.js';

const ROUNDS = 3;
const SLOT = 2048;
const DEFINITIONS: Record<string, NfDefinition<never>> = { firewall, ids, wireguard };

/**
 * CPU ns per frame and per byte of `frames` [0, count) through a fresh instance (best of ROUNDS),
 * without the cost of writing the frames (measured alone with `definition` null).
 */
function cost(
  definition: NfDefinition<never> | null,
  config: unknown,
  frames: AttackFrames,
  count: number,
): { perFrame: number; perByte: number } {
  const writing = definition === null ? { perFrame: 0, perByte: 0 } : cost(null, null, frames, count);
  let best = { perFrame: Infinity, perByte: Infinity };
  for (let round = 0; round < ROUNDS; round++) {
    const nf = definition === null ? null : new NfHarness(definition, config, { slotSize: SLOT });
    const processBatch = nf === null ? () => undefined : nf.instance.process.bind(nf.instance);
    const batch = new PacketBatch(new Uint8Array(MAX_BATCH * SLOT), SLOT);
    const drops = new Float64Array(definition === null ? 0 : Object.keys(definition.drops).length);
    sendAttack(processBatch, batch, frames, 0, 2048, drops); // warm up
    const start = process.cpuUsage();
    const bytes = sendAttack(processBatch, batch, frames, 2048, 2048 + count, drops);
    const used = process.cpuUsage(start);
    const ns = (used.user + used.system) * 1000;
    if (ns / count < best.perFrame) best = { perFrame: ns / count, perByte: ns / bytes };
  }
  return { perFrame: best.perFrame - writing.perFrame, perByte: best.perByte - writing.perByte };
}

export function benchAmplification(): void {
  console.log(
    `amplification: CPU per attacker frame and byte, inline (writing the frames not counted), against benign frames of the same size (best of ${ROUNDS})`,
  );
  for (const c of attackCases()) {
    const definition = DEFINITIONS[c.nf];
    const attack = cost(definition, c.config, c.attack, c.frames);
    const baseline = cost(definition, c.config, c.baseline, c.frames);
    console.log(
      `  ${`${c.attack.name} → ${c.nf}`.padEnd(40)} ${attack.perFrame.toFixed(0).padStart(6)} ns/frame ${attack.perByte.toFixed(2).padStart(6)} ns/byte` +
        `   ${c.baseline.name}: ${baseline.perFrame.toFixed(0).padStart(6)} ns/frame   attack ÷ baseline ${(attack.perByte / baseline.perByte).toFixed(2)}×`,
    );
  }
}
