import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isNfvError } from '../errors.js';
import { DeploymentError } from './deployment-error.js';
import { parseDeployment } from './parse-deployment.js';

const VALID = `pool: { slots: 4096, slotSize: 2048 }
ringSize: 512
batch: 32
ports:
  in: { type: pcap, path: traffic.pcap }
  gen: { type: generator, packets: 1000, seed: 3, frameSize: imix, flows: 8, ipv6: 0.5, mix: { tcp: 1 } }
  out: { type: pcap, path: out.pcap }
  bin: { type: sink }
nfs:
  fw: &fw
    image: builtin/firewall
    vnic: direct
    placement: isolated
    replicas: 1
    heapMb: 64
    failure: fail-closed
    config: { default: drop, rules: [{ action: accept, dstPort: 443 }] }
  nat: { image: builtin/nat, replicas: 2, config: { snat: { pool: 203.0.113.0/28 } } }
chains:
  - { name: main, from: in, match: { src: 10.0.0.0/8, dst: 192.0.2.0/24, protocol: tcp, srcPort: 1024-65535, dstPort: 443, inPort: in }, through: [fw, nat], to: out }
  - { name: rest, from: in, to: bin }
  - name: gen
    from: gen
    match: { dst: "2001:db8::/32", protocol: 17 }
    through: [nat]
    to: out
`;

/** Characters that matter to YAML and to the checks, plus a few that do not. */
const PIECES = [
  ...':{}[],-#&*!|>\'"%@`?\n\t /.0123456789',
  'x',
  'é',
  '\u0000',
  '\uFEFF',
  '---',
  '...',
  '*fw',
  '&a',
  '<<: *fw',
  'type',
  'pcap',
  'sink',
  'generator',
  'builtin/',
  '::',
  '/33',
  '-1',
  '65536',
  '1e400',
  '.nan',
  '.inf',
  'null',
  'true',
  '__proto__',
  'constructor',
  'toString',
  '0x10',
  '!!binary',
  '!!set',
  '!!timestamp',
];

const mutation = fc.oneof(
  // Insert, delete or replace a span of the text.
  fc.record({
    kind: fc.constant('splice' as const),
    at: fc.nat(),
    remove: fc.nat({ max: 12 }),
    insert: fc.array(fc.constantFrom(...PIECES), { maxLength: 4 }).map((p) => p.join('')),
  }),
  // Swap two lines, or duplicate one.
  fc.record({ kind: fc.constant('lines' as const), a: fc.nat(), b: fc.nat(), duplicate: fc.boolean() }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function apply(text: string, m: Mutation): string {
  if (m.kind === 'splice') {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.insert + text.slice(at + m.remove);
  }
  const lines = text.split('\n');
  const a = m.a % lines.length;
  const b = m.b % lines.length;
  if (m.duplicate) lines.splice(b, 0, lines[a]);
  else [lines[a], lines[b]] = [lines[b], lines[a]];
  return lines.join('\n');
}

test('deploy: the property test starts from a valid text', () => {
  assert.equal(parseDeployment(VALID, 'deploy.yaml').chains.length, 3);
});

test('deploy: random mutations of a valid file either parse or fail with located NFV_ERR_DEPLOY_INVALID', () => {
  const hook = (_image: string, config: Record<string, unknown>) =>
    Object.keys(config).includes('bad') ? [{ path: 'bad[0].x', message: 'bad' }] : [];
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 6 }), (mutations) => {
      const text = mutations.reduce(apply, VALID);
      const lineCount = text.split('\n').length;
      try {
        const d = parseDeployment(text, 'deploy.yaml', { validateNfConfig: hook });
        assert.ok(d.chains.length > 0);
      } catch (e) {
        assert.ok(isNfvError(e, 'NFV_ERR_DEPLOY_INVALID'), `threw ${String(e)}`);
        assert.ok(e instanceof DeploymentError);
        assert.ok(e.errors.length > 0);
        for (const issue of e.errors) {
          assert.equal(issue.file, 'deploy.yaml');
          assert.ok(issue.line >= 1 && issue.line <= lineCount + 1, `line ${issue.line} of ${lineCount}`);
          assert.ok(issue.column >= 1, `column ${issue.column}`);
        }
      }
    }),
    { numRuns: 1000, seed: 20261125 },
  );
});
