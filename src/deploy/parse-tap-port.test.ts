// Deployment files with `tap` ports: the spec they become, and errors located at file:line:column.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isNfvError } from '../errors.js';
import { DeploymentError, parseDeployment } from './index.js';

const deployment = (ports: string): string => `ports:
${ports}
  out: { type: sink }
nfs:
  fw: { image: builtin/firewall, config: { default: accept } }
chains:
  - { name: c, from: vm, through: [fw], to: out }
`;

function problems(text: string): string[] {
  try {
    parseDeployment(text, 'deploy.yaml', { baseDir: '/deploy' });
  } catch (e) {
    assert.ok(isNfvError(e, 'NFV_ERR_DEPLOY_INVALID'), String(e));
    assert.ok(e instanceof DeploymentError);
    return e.errors.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
  }
  return assert.fail('the deployment was accepted');
}

test('deploy: a tap port becomes { type: tap, device, mode, queueLength? } with mode tap by default', () => {
  const d = parseDeployment(
    deployment(
      '  vm: { type: tap, device: nfv-vm0 }\n  ip: { type: tap, device: nfv-tun0, mode: tun, queueLength: 8192 }',
    ),
    'deploy.yaml',
    { baseDir: '/deploy' },
  );
  assert.deepEqual(d.ports.vm, { type: 'tap', name: 'vm', device: 'nfv-vm0', mode: 'tap' });
  assert.deepEqual(d.ports.ip, {
    type: 'tap',
    name: 'ip',
    device: 'nfv-tun0',
    mode: 'tun',
    queueLength: 8192,
  });
});

test('deploy: bad tap ports are refused at the field, with file line and column', () => {
  const found = problems(
    deployment(
      [
        '  vm: { type: tap, device: a-name-longer-than-15 }',
        '  b: { type: tap, device: nfv0, mode: tunnel }',
        '  c: { type: tap, device: "bad/name" }',
        '  d: { type: tap }',
        '  e: { type: tap, device: nfv1, vni: 4 }',
        '  f: { type: tap, device: nfv2, queueLength: 0 }',
      ].join('\n'),
    ),
  );
  const at = (line: number, path: string): string | undefined =>
    found.find((p) => p.startsWith(`${line}:`) && p.includes(` ${path}:`));
  assert.ok(at(2, 'ports.vm.device'), found.join('\n'));
  assert.match(at(3, 'ports.b.mode') ?? '', /'tap' or 'tun'/);
  assert.match(at(4, 'ports.c.device') ?? '', /without spaces, '\/' or ':'/);
  assert.ok(at(5, 'ports.d.device'), found.join('\n'));
  assert.match(at(6, 'ports.e.vni') ?? '', /unknown field/);
  assert.ok(at(7, 'ports.f.queueLength'), found.join('\n'));
});

test('deploy: two ports on one device are refused at the second (it would be busy at start)', () => {
  const found = problems(
    deployment('  vm: { type: tap, device: nfv-vm0 }\n  again: { type: tap, device: nfv-vm0 }'),
  );
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0], /^3:\d+ ports\.again\.device: device "nfv-vm0" is already port "vm"'s/);
});

test('deploy: offload needs pool slots that hold a 64 KiB super-packet, and says so at the field', () => {
  const found = problems(deployment('  vm: { type: tap, device: nfv-vm0, offload: true }'));
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0], /^2:\d+ ports\.vm\.offload: .*pool\.slotSize must be at least 65600 \(got 2048\)/);
  const d = parseDeployment(
    `pool: { slots: 256, slotSize: 65600 }\n${deployment('  vm: { type: tap, device: nfv-vm0, offload: true }')}`,
    'deploy.yaml',
    { baseDir: '/deploy' },
  );
  assert.deepEqual(d.ports.vm, { type: 'tap', name: 'vm', device: 'nfv-vm0', mode: 'tap', offload: true });
});
