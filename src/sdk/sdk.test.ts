import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DropReason } from '../packet/drop-reason.js';
import { Ipv4Repr, Ipv4View } from '../packet/ipv4.js';
import { validateConfig, type ConfigSchema } from './config-schema.js';
import { defineNf } from './define-nf.js';
import { NfHarness } from './nf-harness.js';
import { verdictDropReason, verdictOutput } from './packet-batch.js';

const schema = {
  default: {
    type: 'string',
    enum: ['accept', 'drop'],
    default: 'drop',
    description: 'verdict without a match',
  },
  limit: { type: 'integer', minimum: 1, maximum: 100, default: 10, description: 'a bound' },
  rules: {
    type: 'array',
    default: [],
    description: 'rules',
    items: {
      type: 'object',
      description: 'one rule',
      properties: {
        action: { type: 'string', enum: ['accept', 'drop'], description: 'what to do' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 0, description: 'port' },
      },
    },
  },
} as const satisfies ConfigSchema;

describe('validateConfig', () => {
  it('fills defaults', () => {
    assert.deepEqual(validateConfig(schema, {}), {
      value: { default: 'drop', limit: 10, rules: [] },
      errors: [],
    });
    assert.deepEqual(validateConfig(schema, undefined).errors, []);
  });

  it('names the path of every error, nested ones included', () => {
    const { errors } = validateConfig(schema, {
      default: 'maybe',
      limit: 1.5,
      extra: true,
      rules: [{ action: 'accept' }, { port: 70000 }],
    });
    assert.deepEqual(
      errors.map((e) => e.path),
      ['extra', 'default', 'limit', 'rules[1].action', 'rules[1].port'],
    );
  });

  it('fills defaults inside list entries', () => {
    const { value } = validateConfig(schema, { rules: [{ action: 'accept' }] });
    assert.deepEqual(value.rules, [{ action: 'accept', port: 0 }]);
  });
});

const ttlGuard = defineNf({
  name: 'ttl-guard',
  summary: 'Drops IPv4 packets whose TTL is 1 or less, decrements the others.',
  outputs: ['out'],
  drops: { malformed: 'not a valid IPv4 packet', ttl_expired: 'TTL ≤ 1' },
  counters: { forwarded: { unit: 'packets', description: 'packets sent on' } },
  config: {},
  create(_config, ctx) {
    const ip = new Ipv4View();
    const malformed = ctx.dropReason('malformed');
    const expired = ctx.dropReason('ttl_expired');
    const forwarded = ctx.counter('forwarded');
    return {
      process(batch) {
        let sent = 0;
        for (let i = 0; i < batch.count; i++) {
          if (ip.attach(batch.bytes, batch.at[i], batch.length[i]) !== DropReason.None)
            batch.drop(i, malformed);
          else if (ip.ttl() <= 1) batch.drop(i, expired);
          else {
            ip.decrementTtl();
            sent++;
          }
        }
        ctx.counters[forwarded] += sent;
      },
    };
  },
});

function ipPacket(ttl: number): Uint8Array {
  const bytes = new Uint8Array(28);
  Ipv4Repr.emit({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, payloadLength: 8, ttl }, bytes);
  return bytes;
}

describe('defineNf and the harness', () => {
  it('runs an NF over a burst: verdicts, rewrites in place, counters', () => {
    const nf = new NfHarness(ttlGuard, {});
    const results = nf.run([ipPacket(64), ipPacket(1), Uint8Array.of(1, 2, 3)]);
    assert.deepEqual(
      results.map((r) => r.output ?? r.drop),
      ['out', 'ttl_expired', 'malformed'],
    );
    const out = new Ipv4View();
    assert.equal(out.attach(results[0].bytes), DropReason.None, 'checksum patched with the TTL');
    assert.equal(out.ttl(), 63);
    assert.deepEqual(nf.counters(), { forwarded: 1 });
  });

  it('splits long inputs into bursts', () => {
    const nf = new NfHarness(ttlGuard, {});
    const results = nf.run(Array.from({ length: 600 }, () => ipPacket(9)));
    assert.equal(results.length, 600);
    assert.equal(nf.counters().forwarded, 600);
  });

  it('rejects a bad configuration with the field path', () => {
    assert.throws(() => new NfHarness(ttlGuard, { surprise: 1 }), /surprise: unknown field/);
  });

  it('refuses a broken declaration when it is defined', () => {
    assert.throws(() => defineNf({ ...ttlGuard, name: 'Bad Name' }), /kebab-case/);
    assert.throws(() => defineNf({ ...ttlGuard, outputs: [] }), /at least one output/);
  });

  it('encodes verdicts: outputs ≥ 0, drops < 0', () => {
    assert.deepEqual(
      [
        verdictOutput(2),
        verdictOutput(-1),
        verdictDropReason(-1),
        verdictDropReason(-3),
        verdictDropReason(0),
      ],
      [2, -1, 0, 2, -1],
    );
  });
});
