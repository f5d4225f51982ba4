import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatIpv4, formatIpv6, formatMac, ipv4, ipv6, mac, parseIpv4, parseIpv6, parseMac } from './address.js';
import { isNfvError } from '../errors.js';

test('address: IPv4 strict grammar', () => {
  assert.equal(parseIpv4('192.0.2.1'), 0xc0000201);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  // Forms that Number()/parseInt()/inet_aton accept but nobody means.
  for (const bad of ['0x10.0.0.1', '1e2.0.0.1', ' 1.2.3.4', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.0.0.1', '1.2.3.-4', '1..3.4', '']) {
    assert.equal(parseIpv4(bad), -1, bad);
  }
  assert.throws(() => ipv4('10.0.0'), (e) => isNfvError(e, 'NFV_ERR_BAD_ADDRESS'));
});

test('address: IPv6 parse and RFC 5952 canonical text', () => {
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero word is not compressed (RFC 5952 §4.2.2)
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins (§4.2.3)
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // on a tie, the first run (§4.2.3)
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['fe80::a:b:c:d', 'fe80::a:b:c:d'],
  ];
  for (const [input, canonical] of cases) assert.equal(formatIpv6(ipv6(input)), canonical, input);
  for (const bad of ['1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1:2:3:4:5:6:7', '12345::', 'g::', '::1.2.3', '1:2:3:4:5:6:7::8:9', '']) {
    assert.equal(parseIpv6(bad, new Uint8Array(16)), false, bad);
  }
});

test('address: IPv6 format → parse is the identity on random addresses', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      assert.deepEqual(ipv6(formatIpv6(bytes)), bytes);
    }),
    { numRuns: 10_000 },
  );
});

test('address: MAC parse and format', () => {
  assert.equal(formatMac(mac('02:00:5E:10:00:01')), '02:00:5e:10:00:01');
  for (const bad of ['02:00:5e:10:00', '02-00-5e-10-00-01', '2:0:5e:10:0:1', '02:00:5e:10:00:0g']) {
    assert.equal(parseMac(bad, new Uint8Array(6)), false, bad);
  }
  assert.equal(formatIpv4(ipv4('10.20.30.40')), '10.20.30.40');
});
