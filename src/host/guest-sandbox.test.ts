/**
 * The sandbox realm's border (guest-sandbox.ts, NfRealm): what an NF's code touches per packet
 * reaches it as its own realm's typed arrays over the host's memory, and state crosses by copy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtinImage, sandboxPolicy } from '../image/index.js';
import { TrafficGenerator } from '../io/traffic-generator.js';
import { NfHarness, type NfDefinition } from '../sdk/index.js';
import { PacketBatch } from '../sdk/packet-batch.js';
import { loadSandboxedNf, type SandboxedNf } from './guest-sandbox.js';

/** A stand-in for an image's script: `probe` answers questions asked from inside the realm. */
const SCRIPT = `
exports.default = {
  ownArray: (value) => value instanceof Uint32Array || value instanceof Uint8Array || value instanceof Float64Array,
  process(batch) {
    for (let i = 0; i < batch.count; i++) {
      const first = batch.bytes[batch.at[i]];
      if (first === 0xff) batch.drop(i, 2);
      else {
        batch.bytes[batch.at[i]] = first + 1;
        batch.setLength(i, batch.length[i] - 1);
        batch.send(i, batch.inputPort[i]);
      }
    }
  },
  restore(state) {
    if (!(state.keys instanceof Uint32Array) || !(state.seen instanceof Map)) throw new Error('not my types');
    this.state = state;
  },
  snapshot() {
    return { keys: Uint32Array.of(7, 8), seen: new Map([['a', new Float64Array([1.5])]]), nested: [{ n: 1 }] };
  },
};
`;

interface ProbeNf {
  ownArray(value: unknown): boolean;
  process(batch: PacketBatch): void;
  restore(state: unknown): void;
  snapshot(): unknown;
  state?: { keys: Uint32Array; seen: Map<string, Float64Array>; shared: Int32Array; buffer: ArrayBuffer };
}

describe('guest sandbox realm', () => {
  let dir = '';
  let loaded: SandboxedNf;
  let nf: ProbeNf;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-realm-'));
    const script = join(dir, 'index.cjs');
    writeFileSync(script, SCRIPT);
    loaded = loadSandboxedNf({ script, policy: sandboxPolicy([]) }, { refused: () => {}, log: () => {} });
    nf = loaded.definition as ProbeNf;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('hands the NF a batch of its own realm over the host batch memory', () => {
    const pool = new Uint8Array(new SharedArrayBuffer(4 * 64));
    const batch = new PacketBatch(pool, 64);
    const seen = loaded.realm.batch(batch);
    // The realm's own arrays (V8 inlines element access only within one realm)…
    assert.ok(nf.ownArray(seen.at) && nf.ownArray(seen.bytes));
    assert.ok(!nf.ownArray(batch.at) && !nf.ownArray(batch.bytes));
    // …over the same memory: what the host writes the NF reads, and the NF's verdicts come back.
    batch.reset(3);
    seen.count = 3;
    for (let i = 0; i < 3; i++) {
      batch.at[i] = 64 * i + 1;
      batch.length[i] = 40 + i;
      batch.inputPort[i] = i;
      pool[64 * i + 1] = i === 2 ? 0xff : 10 * i;
    }
    nf.process(seen);
    assert.deepEqual([...batch.verdict.subarray(0, 3)], [0, 1, -3]);
    assert.deepEqual([...batch.length.subarray(0, 3)], [39, 40, 42]);
    assert.deepEqual([pool[1], pool[65], pool[129]], [1, 11, 0xff]);
  });

  it('shares the counters with the host', () => {
    const counters = new Float64Array(new SharedArrayBuffer(16));
    const view = loaded.realm.counters(counters);
    assert.ok(nf.ownArray(view));
    view[1] += 5;
    assert.equal(counters[1], 5);
  });

  it('restores a built-in image’s state in another sandbox: same state, same verdicts (NAT)', async () => {
    const image = await builtinImage('nat', join(dir, 'images'));
    const load = (): SandboxedNf =>
      loadSandboxedNf(
        { script: image.script, policy: sandboxPolicy(image.manifest.capabilities) },
        { refused: () => {}, log: () => {} },
      );
    const [a, b] = [load(), load()];
    const config = { external: '203.0.113.1', inside: '198.18.0.0/16' };
    const before = new NfHarness(a.definition as NfDefinition<never>, config);
    const after = new NfHarness(b.definition as NfDefinition<never>, config);
    const generator = new TrafficGenerator({ seed: 5, packets: 3000, frameSize: 64, flows: 300, ipv6: 0 });
    const scratch = new Uint8Array(2048);
    const frames = Array.from({ length: 3000 }, () => scratch.slice(0, generator.next(scratch, 0)));
    before.run(frames.slice(0, 2000), 1e9);
    // As a snapshot travels: released as host types, cloned in a message, adopted by the new realm.
    const state = structuredClone(a.realm.release(before.instance.snapshot?.()));
    after.instance.restore?.(b.realm.adopt(state));
    const digest = (nf: SandboxedNf, h: NfHarness<never>): string =>
      JSON.stringify(nf.realm.release(h.instance.snapshot?.()), (_k, v: unknown) =>
        ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v,
      );
    assert.equal(digest(b, after), digest(a, before));
    const [x, y] = [before.run(frames.slice(2000), 2e9), after.run(frames.slice(2000), 2e9)];
    assert.ok(x.some((r) => r.output === 'out'));
    assert.deepEqual(
      y.map((r) => [r.output, r.drop, Array.from(r.bytes)]),
      x.map((r) => [r.output, r.drop, Array.from(r.bytes)]),
    );
  });

  it('copies state into the realm for restore, shared memory excepted, and out of it as host types', () => {
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const host = {
      keys: Uint32Array.of(1, 2, 3),
      seen: new Map([['x', new Float64Array([2.5])]]),
      shared,
      buffer: Uint8Array.of(9, 8).buffer,
    };
    nf.restore(loaded.realm.adopt(host));
    const state = nf.state!;
    assert.deepEqual([...state.keys], [1, 2, 3]);
    assert.equal(state.seen.get('x')?.[0], 2.5);
    assert.deepEqual([...new Uint8Array(state.buffer)], [9, 8]);
    state.keys[0] = 100; // a copy: the host's state is untouched
    assert.equal(host.keys[0], 1);
    state.shared[0] = 42; // shared memory stays shared
    assert.equal(shared[0], 42);
    // Host code only sees host types: `instanceof` and structured clone behave as for module NFs.
    assert.throws(() => nf.restore({ keys: [1], seen: new Map() }), /not my types/);
    const released = loaded.realm.release(nf.snapshot()) as { keys: unknown; seen: unknown; nested: unknown };
    assert.ok(released.keys instanceof Uint32Array && released.seen instanceof Map);
    assert.deepEqual([...released.keys], [7, 8]);
    assert.deepEqual(released.nested, [{ n: 1 }]);
  });
});
