import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv6 } from '../packet/address.js';
import { parseCidr, parsePortRange, parseProtocol } from './match-fields.js';

test('deploy/match: prefixes, v4 and v6, bare addresses as host prefixes', () => {
  assert.deepEqual(parseCidr('0.0.0.0/0'), {
    ok: true,
    value: { version: 4, address: 0, mask: 0, prefixLength: 0, text: '0.0.0.0/0' },
  });
  assert.deepEqual(parseCidr('192.0.2.128/25'), {
    ok: true,
    value: { version: 4, address: 0xc0000280, mask: 0xffffff80, prefixLength: 25, text: '192.0.2.128/25' },
  });
  assert.deepEqual(parseCidr('2001:DB8:0::/48'), {
    ok: true,
    value: { version: 6, bytes: ipv6('2001:db8::'), prefixLength: 48, text: '2001:db8::/48' },
  });
  assert.deepEqual(parseCidr('::1'), {
    ok: true,
    value: { version: 6, bytes: ipv6('::1'), prefixLength: 128, text: '::1/128' },
  });
  assert.equal(parseCidr('2001:db8::/31').ok, true);
  const hostBits = parseCidr('2001:db9::/31'); // the last bit of 0x0db9 is bit 32
  assert.ok(!hostBits.ok && hostBits.message.includes('2001:db8::/31'));
});

test('deploy/match: malformed prefixes are rejected', () => {
  for (const text of [
    '',
    '/8',
    '10.0.0.0/',
    '10.0.0.0/08',
    '10.0.0.0/33',
    '10.0.0.0/8/8',
    '10.0.0.1/8',
    '010.0.0.0/8',
    '10.0.0.0 /8',
    '1e2.0.0.0/8',
    '2001:db8::1/64',
    '2001:db8::/129',
    '2001:db8:::/32',
    'fe80::/10%eth0',
  ])
    assert.equal(parseCidr(text).ok, false, text);
});

test('deploy/match: protocols by name or number', () => {
  assert.deepEqual(parseProtocol('tcp'), { ok: true, value: 6 });
  assert.deepEqual(parseProtocol('icmpv6'), { ok: true, value: 58 });
  assert.deepEqual(parseProtocol(0), { ok: true, value: 0 });
  assert.deepEqual(parseProtocol(255), { ok: true, value: 255 });
  for (const bad of ['TCP', 'toString', '__proto__', '6', 256, -1, 1.5])
    assert.equal(parseProtocol(bad).ok, false, String(bad));
});

test('deploy/match: ports and ranges', () => {
  assert.deepEqual(parsePortRange(443), { ok: true, value: { lo: 443, hi: 443 } });
  assert.deepEqual(parsePortRange('443'), { ok: true, value: { lo: 443, hi: 443 } });
  assert.deepEqual(parsePortRange('0-65535'), { ok: true, value: { lo: 0, hi: 65535 } });
  assert.deepEqual(parsePortRange('80-80'), { ok: true, value: { lo: 80, hi: 80 } });
  for (const bad of [
    65536,
    -1,
    1.5,
    '',
    '80-',
    '-80',
    '80-79',
    '080',
    '0x50',
    '1e2',
    ' 80',
    '80 - 90',
    '1-65536',
    '99999',
  ])
    assert.equal(parsePortRange(bad).ok, false, String(bad));
});
