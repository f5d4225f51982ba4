import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../src/sdk/index.js';
import { builtinNf, builtinNfs } from './index.js';

describe('builtin NF registry', () => {
  it('lists every built-in NF under its own name', () => {
    assert.deepEqual(Object.keys(builtinNfs).sort(), [
      'firewall',
      'flow-monitor',
      'ids',
      'load-balancer',
      'nat',
      'rate-limiter',
      'router',
      'wireguard',
    ]);
    for (const [name, definition] of Object.entries(builtinNfs)) {
      assert.equal(definition.name, name);
      assert.equal(builtinNf(name), definition);
    }
  });

  it('returns undefined for unknown names, inherited keys included', () => {
    assert.equal(builtinNf('ipfix'), undefined);
    assert.equal(builtinNf('constructor'), undefined);
    assert.equal(builtinNf('__proto__'), undefined);
  });

  it('documents every config field, counter and drop', () => {
    for (const definition of Object.values(builtinNfs)) {
      for (const [name, field] of Object.entries(definition.config))
        assert.ok(field.description.length > 0, `${definition.name}.${name}`);
      for (const [name, spec] of Object.entries(definition.counters))
        assert.ok(spec.unit && spec.description, `${definition.name} counter ${name}`);
      for (const [name, text] of Object.entries(definition.drops))
        assert.ok(text, `${definition.name} drop ${name}`);
    }
  });

  it('accepts the documented minimal configurations', () => {
    const minimal: Record<string, unknown> = {
      firewall: {},
      nat: { external: '203.0.113.1' },
      'load-balancer': { vip: '192.0.2.10', port: 80, backends: ['10.1.0.1'] },
      'rate-limiter': { rate: 1000, burst: 10 },
      'flow-monitor': {},
      ids: {},
      router: { mac: '02:00:00:00:00:01', routes: [{ prefix: '0.0.0.0/0', nextHop: 'blackhole' }] },
      wireguard: {
        privateKey: 'YBzmNQ3yuhdJxZN2qD7zsdRqo8sgsd7h/Gzk5CdBk3o=',
        listenAddress: '192.0.2.1',
        outside: { mac: '02:00:00:00:00:01', nextHopMac: '02:00:00:00:00:02' },
        inside: { mac: '02:00:00:00:00:03', nextHopMac: '02:00:00:00:00:04' },
        peers: [],
      },
    };
    assert.deepEqual(Object.keys(minimal).sort(), Object.keys(builtinNfs).sort());
    for (const [name, config] of Object.entries(minimal))
      assert.deepEqual(validateConfig(builtinNfs[name].config, config).errors, [], name);
  });
});
