import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadDeployment } from './parse-deployment.js';

// dist/src/deploy/ → the repository's examples/ (as src/errors.test.ts finds docs/).
const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

test('deploy: every file in examples/ loads without error', () => {
  const files = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.length >= 3, `only ${files.length} examples in ${EXAMPLES}`);
  for (const file of files) {
    const deployment = loadDeployment(join(EXAMPLES, file));
    assert.ok(deployment.chains.length > 0, file);
  }
});

test('deploy: the examples mean what examples/README.md says', () => {
  const pcap = loadDeployment(join(EXAMPLES, 'pcap-firewall-nat.yaml'));
  assert.deepEqual(
    pcap.chains.map((c) => [c.from, ...c.through, c.to]),
    [['in', 'fw', 'nat', 'out']],
  );
  assert.equal(pcap.nfs.nat.replicas, 2);
  assert.deepEqual(
    [pcap.ports.in, pcap.ports.out].map((p) => p.type === 'pcap' && p.role),
    ['read', 'write'],
  );

  const gen = loadDeployment(join(EXAMPLES, 'generator-fw-nat-lb.yaml'));
  assert.deepEqual(gen.chains[0].through, ['fw', 'nat', 'lb']);
  assert.deepEqual(
    Object.values(gen.nfs).map((n) => n.vnic),
    ['direct', 'paravirt', 'emulated'],
  );
  assert.equal(gen.ports.gen.type === 'generator' && gen.ports.gen.options.packets, 100000);

  const split = loadDeployment(join(EXAMPLES, 'split-by-match.yaml'));
  assert.deepEqual(
    split.chains.map((c) => [c.name, c.from, Object.keys(c.match).length > 0]),
    [
      ['web', 'in', true],
      ['rest', 'in', false],
    ],
  );
  assert.equal(split.ports.in.type === 'pcap' && split.ports.in.format, 'pcapng');
});
