import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NfHarness } from '../../src/sdk/index.js';
import firewall, { type FirewallInstance } from './index.js';
import { ACK, tcp, udp } from './test-frames.js';

interface Spec {
  dst: number; // 0: any, 1: /16, 2: /24
  dstOctet: number;
  src16: boolean;
  protocol: number; // 0 any, 1 tcp, 2 udp
  port: number; // 0 any, else a port 1–4 (narrow), 5 a wide range
}

const address = (octet: number) => `10.${octet & 1}.${octet}.1`;

function toRule(s: Spec, r: number): Record<string, string> {
  const rule: Record<string, string> = { action: r % 2 === 0 ? 'accept' : 'drop' };
  if (s.dst === 1) rule.dst = `10.${s.dstOctet & 1}.0.0/16`;
  if (s.dst === 2) rule.dst = `10.${s.dstOctet & 1}.${s.dstOctet}.0/24`;
  if (s.src16) rule.src = '172.16.0.0/16';
  rule.protocol = ['any', 'tcp', 'udp'][s.protocol];
  if (s.port > 0) rule.dstPort = s.port === 5 ? '1-100' : String(s.port);
  return rule;
}

function linear(specs: Spec[], dstOctet: number, proto: number, port: number, src16: boolean): number {
  return specs.findIndex(
    (s) =>
      (s.dst === 0 ||
        (s.dst === 1 && (s.dstOctet & 1) === (dstOctet & 1)) ||
        (s.dst === 2 && s.dstOctet === dstOctet)) &&
      (!s.src16 || src16) &&
      (s.protocol === 0 || s.protocol === proto) &&
      (s.port === 0 || (s.port === 5 ? port >= 1 && port <= 100 : s.port === port)),
  );
}

describe('firewall rule index', () => {
  it('decides exactly as a linear first-match scan', () => {
    const spec = fc.record({
      dst: fc.integer({ min: 0, max: 2 }),
      dstOctet: fc.integer({ min: 0, max: 3 }),
      src16: fc.boolean(),
      protocol: fc.integer({ min: 0, max: 2 }),
      port: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(fc.array(spec, { minLength: 1, maxLength: 30 }), (specs) => {
        const nf = new NfHarness(firewall, { default: 'drop', rules: specs.map(toRule) });
        const fw = nf.instance as FirewallInstance;
        for (let octet = 0; octet < 4; octet++)
          for (const proto of [1, 2])
            for (const port of [1, 2, 4, 50, 200])
              for (const src16 of [false, true]) {
                const src = src16 ? '172.16.3.3' : '192.0.2.1';
                const frame =
                  proto === 1
                    ? tcp(src, address(octet), 999, port, ACK)
                    : udp(src, address(octet), 999, port);
                const before = Array.from(fw.hits);
                nf.run([frame]);
                const hit = Array.from(fw.hits).findIndex((h, r) => h !== before[r]);
                assert.equal(hit, linear(specs, octet, proto, port, src16));
              }
      }),
      { seed: 7, numRuns: 60 },
    );
  });
});
