import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNfvError } from '../errors.js';
import { DEFAULT_GENERATOR_OPTIONS } from '../io/traffic-generator.js';
import { ipv6 } from '../packet/address.js';
import {
  DeploymentError,
  formatIssue,
  loadDeployment,
  parseDeployment,
  type Deployment,
  type DeploymentIssue,
  type ParseOptions,
} from './index.js';

const BASE = { baseDir: '/deploy' };

/** Parses text that must fail; returns its problems as `line:column path`, in file order. */
function problems(text: string, options: ParseOptions = BASE, file = 'deploy.yaml'): string[] {
  if (process.env.DUMP) {
    const lines = text.split('\n');
    for (const i of issues(text, options, file))
      console.log(
        `${i.line}:${i.column} ${i.path} | ${i.message}\n  ${lines[i.line - 1]}\n  ${' '.repeat(i.column - 1)}^`,
      );
    console.log('----');
  }
  return issues(text, options, file).map((i) => `${i.line}:${i.column} ${i.path}`);
}

function issues(
  text: string,
  options: ParseOptions = BASE,
  file = 'deploy.yaml',
): readonly DeploymentIssue[] {
  try {
    parseDeployment(text, file, options);
  } catch (e) {
    assert.ok(isNfvError(e, 'NFV_ERR_DEPLOY_INVALID'), `unexpected ${String(e)}`);
    assert.ok(e instanceof DeploymentError);
    return e.errors;
  }
  assert.fail('the deployment was accepted');
}

const VALID = `# a deployment
pool: { slots: 4096 }
batch: 64
ports:
  in: { type: pcap, path: traffic.pcap }
  gen: { type: generator, packets: 500, seed: 7, frameSize: 128, mix: { icmp: 0 } }
  out: { type: pcap, path: /captures/out.pcapng }
  bin: { type: sink }
nfs:
  fw:
    image: builtin/firewall
    vnic: paravirt
    placement: inline
    replicas: 3
    heapMb: 128
    failure: fail-open
    config: { default: drop, rules: [{ action: accept, dstPort: 443 }] }
  nat: { image: ./images/nat.nfimg }
chains:
  - name: web
    from: in
    match: { src: 10.0.0.0/8, dst: 192.0.2.7, protocol: tcp, srcPort: 1024-65535, dstPort: 443, inPort: in }
    through: [fw, nat]
    to: out
  - { from: in, match: { dst: "2001:db8::/32", protocol: 58 }, to: bin }
  - { from: in, to: bin }
  - { from: gen, through: [nat], to: out }
`;

const EXPECTED: Deployment = {
  file: 'deploy.yaml',
  pool: { slots: 4096, slotSize: 2048 },
  ringSize: 4096,
  batch: 64,
  queueTargetMs: 2,
  ports: {
    in: { type: 'pcap', name: 'in', path: '/deploy/traffic.pcap', format: 'pcap', role: 'read' },
    gen: {
      type: 'generator',
      name: 'gen',
      options: {
        ...DEFAULT_GENERATOR_OPTIONS,
        packets: 500,
        seed: 7,
        frameSize: 128,
        mix: { tcp: 6, udp: 3, icmp: 0 },
      },
    },
    out: { type: 'pcap', name: 'out', path: '/captures/out.pcapng', format: 'pcapng', role: 'write' },
    bin: { type: 'sink', name: 'bin' },
  },
  nfs: {
    fw: {
      name: 'fw',
      image: 'builtin/firewall',
      source: { kind: 'builtin', name: 'firewall' },
      vnic: 'paravirt',
      placement: 'inline',
      replicas: 3,
      heapMb: 128,
      failure: 'fail-open',
      config: { default: 'drop', rules: [{ action: 'accept', dstPort: 443 }] },
    },
    nat: {
      name: 'nat',
      image: './images/nat.nfimg',
      source: { kind: 'path', path: '/deploy/images/nat.nfimg' },
      vnic: 'direct',
      placement: 'isolated',
      replicas: 1,
      heapMb: 64,
      failure: 'fail-closed',
      config: {},
    },
  },
  chains: [
    {
      name: 'web',
      from: 'in',
      match: {
        src: { version: 4, address: 0x0a000000, mask: 0xff000000, prefixLength: 8, text: '10.0.0.0/8' },
        dst: { version: 4, address: 0xc0000207, mask: 0xffffffff, prefixLength: 32, text: '192.0.2.7/32' },
        protocol: 6,
        srcPort: { lo: 1024, hi: 65535 },
        dstPort: { lo: 443, hi: 443 },
        inPort: 'in',
      },
      through: ['fw', 'nat'],
      to: 'out',
    },
    {
      name: 'chain-1',
      from: 'in',
      match: {
        dst: { version: 6, bytes: ipv6('2001:db8::'), prefixLength: 32, text: '2001:db8::/32' },
        protocol: 58,
      },
      through: [],
      to: 'bin',
    },
    { name: 'chain-2', from: 'in', match: {}, through: [], to: 'bin' },
    { name: 'chain-3', from: 'gen', match: {}, through: ['nat'], to: 'out' },
  ],
  images: { store: undefined, trustPolicy: undefined, allowUnsigned: false },
  exporters: [],
};

test('deploy: a valid file becomes the normalized deployment, defaults filled in', () => {
  assert.deepEqual(parseDeployment(VALID, 'deploy.yaml', BASE), EXPECTED);
});

test('deploy: the same deployment written as JSON gives the same result', () => {
  const json = JSON.stringify(
    {
      pool: { slots: 4096 },
      batch: 64,
      ports: {
        in: { type: 'pcap', path: 'traffic.pcap' },
        gen: { type: 'generator', packets: 500, seed: 7, frameSize: 128, mix: { icmp: 0 } },
        out: { type: 'pcap', path: '/captures/out.pcapng' },
        bin: { type: 'sink' },
      },
      nfs: {
        fw: {
          image: 'builtin/firewall',
          vnic: 'paravirt',
          placement: 'inline',
          replicas: 3,
          heapMb: 128,
          failure: 'fail-open',
          config: { default: 'drop', rules: [{ action: 'accept', dstPort: 443 }] },
        },
        nat: { image: './images/nat.nfimg' },
      },
      chains: [
        {
          name: 'web',
          from: 'in',
          match: {
            src: '10.0.0.0/8',
            dst: '192.0.2.7',
            protocol: 'tcp',
            srcPort: '1024-65535',
            dstPort: 443,
            inPort: 'in',
          },
          through: ['fw', 'nat'],
          to: 'out',
        },
        { from: 'in', match: { dst: '2001:db8::/32', protocol: 58 }, to: 'bin' },
        { from: 'in', to: 'bin' },
        { from: 'gen', through: ['nat'], to: 'out' },
      ],
    },
    null,
    2,
  );
  assert.deepEqual(parseDeployment(json, 'deploy.json', BASE), { ...EXPECTED, file: 'deploy.json' });
});

test('deploy: JSON input gets line and column numbers', () => {
  const json = [
    '{',
    '  "ports": { "in": { "type": "pcap", "path": "a.pcap" }, "out": { "type": "sink" } },',
    '  "nfs": { "fw": { "image": "builtin/firewall", "vnic": "fast" } },',
    '  "chains": [ { "from": "in", "through": ["fw"], "to": "out", "colour": 1 } ]',
    '}',
  ].join('\n');
  assert.deepEqual(problems(json, BASE, 'deploy.json'), ['3:57 nfs.fw.vnic', '4:63 chains[0].colour']);
  assert.deepEqual(problems('{"ports": {}, "chains": [}', BASE, 'deploy.json').length > 0, true);
});

const MINIMAL = (extra: string) => `ports:
  in: { type: pcap, path: a.pcap }
  out: { type: sink }
${extra}`;

test('deploy: the error message format names file, line, column and field', () => {
  const text = MINIMAL(`nfs:
  fw: { image: builtin/firewall, vnic: fast }
chains:
  - { from: in, through: [fw], to: out }
`);
  const [issue] = issues(text);
  assert.equal(
    formatIssue(issue),
    'deploy.yaml:5:40: nfs.fw.vnic: must be one of direct, paravirt, emulated (got "fast")',
  );
  try {
    parseDeployment(text, 'deploy.yaml');
  } catch (e) {
    assert.ok(e instanceof DeploymentError);
    assert.deepEqual(
      { ...e.detail, errors: undefined },
      {
        file: 'deploy.yaml',
        line: 5,
        column: 40,
        field: 'nfs.fw.vnic',
        errors: undefined,
      },
    );
    assert.ok(e.message.includes(formatIssue(issue)));
    const crossed = structuredClone(e.toJSON());
    assert.ok(isNfvError(crossed, 'NFV_ERR_DEPLOY_INVALID'));
    assert.deepEqual(crossed.detail.errors, [issue]);
  }
});

test('deploy: unknown keys are rejected at every level, pointing at the key', () => {
  const text = `colour: red
pool: { slots: 64, size: 1 }
ports:
  in: { type: pcap, path: a.pcap, loop: true }
  g: { type: generator, mix: { tcp: 1, sctp: 1 } }
  out: { type: sink, x: 1 }
nfs:
  fw: { image: builtin/firewall, cpu: 2 }
chains:
  - { from: in, to: out, via: [] }
  - { from: g, to: out, match: { vlan: 7 } }
`;
  assert.deepEqual(problems(text), [
    '1:1 colour',
    '2:20 pool.size',
    '4:35 ports.in.loop',
    '5:40 ports.g.mix.sctp',
    '6:22 ports.out.x',
    '8:34 nfs.fw.cpu',
    '10:26 chains[0].via',
    '11:34 chains[1].match.vlan',
  ]);
});

test('deploy: wrong types and missing fields', () => {
  const text = `ringSize: "1024"
ports:
  in: { type: pcap }
  out: sink
  g: { type: generator, tcpSessions: yes, frameSize: big }
nfs:
  fw: { image: 7, config: [a] }
  nat: { replicas: 2 }
chains:
  - { from: in, to: 3, through: fw }
  - "in → out"
`;
  assert.deepEqual(problems(text), [
    '1:11 ringSize',
    '3:3 ports.in.path',
    '4:8 ports.out',
    '5:38 ports.g.tcpSessions',
    '5:54 ports.g.frameSize',
    '7:16 nfs.fw.image',
    '7:27 nfs.fw.config',
    '8:3 nfs.nat.image',
    '10:21 chains[0].to',
    '10:33 chains[0].through',
    '11:5 chains[1]',
  ]);
  assert.deepEqual(problems('ports: {}\n'), ['1:1 chains']);
  assert.deepEqual(problems('- a\n- b\n'), ['1:1 ']);
});

test('deploy: out-of-range numbers', () => {
  const text = `pool: { slots: 8, slotSize: 1000000 }
ringSize: 1000
batch: 257
queueTargetMs: -1
ports:
  in: { type: generator, seed: -1, flows: 0, ipv6: 1.5, frameSize: 59, ratePps: 0 }
  out: { type: sink }
nfs:
  a: { image: builtin/a, replicas: 65, heapMb: 4 }
  b: { image: builtin/b, replicas: 1.5, heapMb: 4097 }
chains:
  - { from: in, through: [a, b], to: out, match: { protocol: 256, dstPort: 65536, srcPort: 1-70000 } }
`;
  assert.deepEqual(problems(text), [
    '1:16 pool.slots',
    '1:29 pool.slotSize',
    '2:11 ringSize',
    '3:8 batch',
    '4:16 queueTargetMs',
    '6:32 ports.in.seed',
    '6:43 ports.in.flows',
    '6:52 ports.in.ipv6',
    '6:68 ports.in.frameSize',
    '6:81 ports.in.ratePps',
    '9:36 nfs.a.replicas',
    '9:48 nfs.a.heapMb',
    '10:36 nfs.b.replicas',
    '10:49 nfs.b.heapMb',
    '12:62 chains[0].match.protocol',
    '12:76 chains[0].match.dstPort',
    '12:92 chains[0].match.srcPort',
  ]);
  // Cross-field limits: the batch must fit the ring, generated frames must fit a slot.
  assert.deepEqual(
    problems(`ringSize: 16
batch: 32
pool: { slotSize: 1024 }
ports:
  g: { type: generator, vlan: 0.5, qinq: 0.75 }
  h: { type: generator }
  i: { type: generator, frameSize: 1500 }
  out: { type: sink }
chains:
  - { from: g, to: out }
  - { from: h, to: out }
  - { from: i, to: out }
`),
    ['2:8 batch', '5:42 ports.g.qinq', '6:6 ports.h', '7:36 ports.i.frameSize'],
  );
});

test('deploy: duplicate names and duplicate YAML keys', () => {
  const text = `ports:
  in: { type: pcap, path: a.pcap }
  out: { type: sink }
  out: { type: sink }
nfs:
  fw: { image: builtin/firewall, vnic: direct, vnic: paravirt }
  2fast: { image: builtin/nat }
chains:
  - { name: a, from: in, to: out, match: { dstPort: 1 } }
  - { name: a, from: in, to: out, match: { protocol: udp } }
  - { name: "a b", from: in, to: out, match: { protocol: tcp } }
`;
  assert.deepEqual(problems(text), [
    '4:3 ',
    '6:48 ',
    '7:3 nfs["2fast"]',
    '10:13 chains[1].name',
    '11:13 chains[2].name',
  ]);
  // An unnamed chain gets chain-<index>; a name written later that collides is reported there.
  assert.deepEqual(
    problems(
      MINIMAL(
        `chains:\n  - { from: in, to: out, match: { dstPort: 1 } }\n  - { name: chain-0, from: in, to: out }\n`,
      ),
    ),
    ['6:13 chains[1].name'],
  );
});

test('deploy: references to unknown ports and NFs, and ports used the wrong way', () => {
  const text = `ports:
  in: { type: pcap, path: a.pcap }
  cap: { type: pcap, path: b.pcap }
  gen: { type: generator }
  bin: { type: sink }
nfs:
  fw: { image: builtin/firewall }
chains:
  - { from: inn, through: [fw, nat], to: bin }
  - { from: bin, to: gen }
  - { from: in, to: cap }
  - { from: cap, to: in, match: { inPort: bogus } }
  - { from: gen, through: [fw, fw], to: bin, match: { inPort: in } }
`;
  assert.deepEqual(problems(text), [
    '9:13 chains[0].from',
    '9:32 chains[0].through[1]',
    '10:13 chains[1].from',
    '10:22 chains[1].to',
    '12:13 chains[3].from',
    '12:22 chains[3].to',
    '12:43 chains[3].match.inPort',
    '13:32 chains[4].through[1]',
    '13:63 chains[4].match.inPort',
  ]);
});

test('deploy: match fields are parsed strictly', () => {
  const text = MINIMAL(`chains:
  - from: in
    to: out
    match:
      src: 10.0.0.1/8
      dst: 10.0.0.0/33
      protocol: TCP
      srcPort: 2000-1000
      dstPort: "0x50"
  - from: in
    to: out
    match: { src: 2001:db8::/32, dst: 192.0.2.0/24, protocol: icmp, dstPort: 80 }
  - { from: in, to: out, match: { src: 1.2.3, dst: "2001:db8::1/129", srcPort: "01" } }
`);
  assert.deepEqual(problems(text), [
    '8:12 chains[0].match.src',
    '9:12 chains[0].match.dst',
    '10:17 chains[0].match.protocol',
    '11:16 chains[0].match.srcPort',
    '12:16 chains[0].match.dstPort',
    '15:39 chains[1].match.dst',
    '15:78 chains[1].match.dstPort',
    '16:40 chains[2].match.src',
    '16:52 chains[2].match.dst',
    '16:80 chains[2].match.srcPort',
  ]);
});

test('deploy: a chain after a catch-all chain on the same port is reported as unreachable', () => {
  const text = MINIMAL(`chains:
  - { from: in, to: out, match: { inPort: in } }
  - { from: in, to: out, match: { protocol: tcp } }
`);
  assert.deepEqual(problems(text), ['6:13 chains[1].from']);
});

test('deploy: YAML syntax errors and alias problems are located', () => {
  assert.deepEqual(problems('ports: [a, b\nchains: 1\n'), ['2:1 ']);
  assert.deepEqual(problems('ports: { in: *nowhere }\nchains: []\n').length, 1);
  assert.deepEqual(problems('ports: &p { in: [*p] }\nchains: []\n'), ['1:18 ']);
  assert.deepEqual(problems('ports: {}\n---\nchains: []\n'), ['2:1 ']);
  assert.deepEqual(problems('ports: !!set {}\nchains: [1]\n').length > 0, true);
  assert.deepEqual(problems('? [a]\n: 1\n'), ['1:3 ']);
  // An alias to a well-formed anchor is fine: shared config is what anchors are for.
  const shared = MINIMAL(`nfs:
  a: { image: builtin/firewall, config: &rules { default: drop } }
  b: { image: builtin/firewall, config: *rules }
chains:
  - { from: in, through: [a, b], to: out }
`);
  assert.deepEqual(parseDeployment(shared, 'd.yaml').nfs.b.config, { default: 'drop' });
});

test('deploy: every problem is reported together, in file order', () => {
  const text = `ports:
  in: { type: pcap, path: a.pcap }
  out: { type: pcap, path: b.pcap }
nfs:
  fw: { image: builtin/firewall, vnic: fast }
  nat: { image: builtin/nat, heapMb: 1 }
chains:
  - { from: in, through: [fw, lb], to: nowhere }
`;
  const all = issues(text);
  assert.deepEqual(
    all.map((i) => [i.file, i.line, i.column, i.path]),
    [
      ['deploy.yaml', 5, 40, 'nfs.fw.vnic'],
      ['deploy.yaml', 6, 38, 'nfs.nat.heapMb'],
      ['deploy.yaml', 8, 31, 'chains[0].through[1]'],
      ['deploy.yaml', 8, 40, 'chains[0].to'],
    ],
  );
});

test('deploy: problems from the NF config hook are located inside nfs.<name>.config', () => {
  const text = MINIMAL(`nfs:
  fw:
    image: builtin/firewall
    config:
      default: drop
      rules:
        - { action: accept, dstPort: 443 }
        - { action: maybe }
  nat: { image: builtin/nat, config: { pool: x } }
chains:
  - { from: in, through: [fw, nat], to: out }
`);
  const seen: string[] = [];
  const options: ParseOptions = {
    ...BASE,
    validateNfConfig(image, config) {
      seen.push(image);
      if (image === 'builtin/firewall')
        return [
          { path: 'rules[1].action', message: 'must be accept or drop' },
          { path: '/rules/0/dstPort', message: 'not allowed here' },
          { path: 'rules[1].dstPort', message: 'is required' },
          { path: '', message: 'too few rules' },
        ];
      assert.deepEqual(config, { pool: 'x' });
      throw new Error('boom');
    },
  };
  assert.deepEqual(problems(text, options), [
    '8:7 nfs.fw.config',
    '10:38 nfs.fw.config.rules[0].dstPort',
    '11:11 nfs.fw.config.rules[1].dstPort',
    '11:21 nfs.fw.config.rules[1].action',
    '12:38 nfs.nat.config',
  ]);
  assert.deepEqual(seen, ['builtin/firewall', 'builtin/nat']);
});

test('deploy: loadDeployment reads the file and names it; a missing file is NFV_ERR_IO', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nfv-deploy-'));
  const file = join(dir, 'deploy.yaml');
  writeFileSync(file, MINIMAL('chains: [{ from: in, to: out }]\n'));
  const d = loadDeployment(file);
  assert.equal(d.file, file);
  assert.equal(d.ports.in.type === 'pcap' && d.ports.in.path, join(dir, 'a.pcap'));
  writeFileSync(file, MINIMAL('chains: [{ from: in, to: outt }]\n'));
  assert.throws(
    () => loadDeployment(file),
    (e: unknown) => e instanceof DeploymentError && e.errors[0].file === file && e.errors[0].line === 4,
  );
  assert.throws(
    () => loadDeployment(join(dir, 'missing.yaml')),
    (e: unknown) =>
      isNfvError(e, 'NFV_ERR_IO') && e instanceof Error && e.message.includes(join(dir, 'missing.yaml')),
  );
});

test('deploy: the memory section gets its defaults, and thresholds out of range or order are located', () => {
  const minimal = `ports:\n  in: { type: generator }\n  out: { type: sink }\nchains:\n  - { from: in, to: out }\n`;
  assert.equal(parseDeployment(minimal, 'deploy.yaml', BASE).memory, undefined, 'no monitor unless asked');
  assert.deepEqual(parseDeployment(`memory: { limitMb: 2048 }\n${minimal}`, 'deploy.yaml', BASE).memory, {
    limitMb: 2048,
    rejectNewAt: 0.95,
    shedAt: 0.98,
  });
  assert.deepEqual(problems(`memory: { limitMb: 8, rejectNewAt: 0, shedAt: 1.5, spare: 1 }\n${minimal}`), [
    '1:20 memory.limitMb',
    '1:36 memory.rejectNewAt',
    '1:47 memory.shedAt',
    '1:52 memory.spare',
  ]);
  assert.deepEqual(problems(`memory: { limitMb: 64, rejectNewAt: 0.9, shedAt: 0.8 }\n${minimal}`), [
    '1:37 memory.rejectNewAt',
  ]);
});

test('deploy: queueTargetMs defaults to 2 ms and takes fractions and 0 (no limit)', () => {
  const chains = 'ports: { in: { type: generator }, out: { type: sink } }\nchains: [{ from: in, to: out }]\n';
  assert.equal(parseDeployment(chains, 'q.yaml', BASE).queueTargetMs, 2);
  assert.equal(parseDeployment(`queueTargetMs: 2.5\n${chains}`, 'q.yaml', BASE).queueTargetMs, 2.5);
  assert.equal(parseDeployment(`queueTargetMs: 0\n${chains}`, 'q.yaml', BASE).queueTargetMs, 0);
  assert.deepEqual(problems(`queueTargetMs: 1001\n${chains}`), ['1:16 queueTargetMs']);
});
