/**
 * Golden pcap cases (test/pcap/<case>/case.json): each case's input runs through its chain of
 * built-in NFs on the host in every vNIC mode — inline, direct, paravirt, emulated — and tshark,
 * with IP/TCP/UDP checksum validation on, judges the output against the case's display filters:
 * exact match counts, every checksum good, nothing malformed, and (for a load balancer) each
 * connection on one backend with the connections spread over all of them.
 *
 * A case: `input` ({ recipe } from test/pcap/recipes.ts, or { pcap } beside case.json), `chain`
 * ([{ image, config }], the NFs in order), `frames` (output frames expected), `checks`
 * ([{ why, filter, count }]), optional `sticky` ({ key: fields, value: field, values, minShare }).
 *
 * Needs: tshark (Debian `tshark`); fails, never skips, without it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Placement, VnicMode } from '../../src/host/guest-protocol.js';
import { builtinModule, Host, type HostPlan } from '../../src/host/host.js';
import { createCaptureWriter } from '../../src/io/capture.js';
import { RECIPES } from '../pcap/recipes.js';

process.env.NFVISOR_QUIET = '1';

interface GoldenCase {
  description: string;
  input: { recipe?: string; pcap?: string };
  chain: { image: string; config: unknown }[];
  frames: number;
  checks: { why: string; filter: string; count: number }[];
  sticky?: { key: string[]; value: string; values: number; minShare: number };
}

const CASES = new URL('../../../test/pcap/', import.meta.url);
const MODES: [string, VnicMode, Placement][] = [
  ['inline', 'direct', 'inline'],
  ['direct', 'direct', 'isolated'],
  ['paravirt', 'paravirt', 'isolated'],
  ['emulated', 'emulated', 'isolated'],
];
const CHECKSUMS = [
  '-o',
  'ip.check_checksum:TRUE',
  '-o',
  'tcp.check_checksum:TRUE',
  '-o',
  'udp.check_checksum:TRUE',
];
/** tshark's PROTO_CHECKSUM_E_BAD is 0; any bad checksum at any layer (quoted headers too) or malformed frame. */
const BROKEN =
  'ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 || icmp.checksum.status == 0 || _ws.malformed || _ws.expert.severity == error';

let dir = '';

/** Lines tshark prints for `filter` over `file` (one per matching frame), with checksum checks on. */
function tshark(file: string, filter: string, fields: string[] = ['frame.number']): string[] {
  const out = execFileSync(
    'tshark',
    [
      '-n',
      '-r',
      file,
      ...CHECKSUMS,
      '-Y',
      filter,
      '-T',
      'fields',
      '-E',
      'separator=/t',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 },
  );
  return out.split('\n').filter((line) => line !== '');
}

function writeInput(c: GoldenCase, name: string): string {
  if (c.input.pcap) return join(new URL(name, CASES).pathname, c.input.pcap);
  const recipe = RECIPES[c.input.recipe ?? ''];
  assert.ok(recipe, `${name}: unknown recipe ${c.input.recipe}`);
  const path = join(dir, `${name}-in.pcap`);
  const writer = createCaptureWriter(path, { format: 'pcap' });
  recipe().forEach((f, n) =>
    writer.writePacket(f, 0, f.length, 1_700_000_000 + Math.floor(n / 1000), (n % 1000) * 1000),
  );
  writer.close();
  return path;
}

function plan(c: GoldenCase, input: string, output: string, vnic: VnicMode, placement: Placement): HostPlan {
  const nfs: HostPlan['nfs'] = {};
  c.chain.forEach(({ image, config }, i) => {
    nfs[`nf${i}-${image}`] = {
      module: builtinModule(image),
      config,
      vnic,
      placement,
      replicas: 1,
      heapMb: 64,
      failure: 'fail-closed',
    };
  });
  return {
    pool: { slots: 1024, slotSize: 2048 },
    ringSize: 256,
    batch: 32,
    ports: { in: { kind: 'pcap-in', path: input }, out: { kind: 'pcap-out', path: output } },
    nfs,
    chains: [{ name: 'golden', from: 'in', to: 'out', through: Object.keys(nfs) }],
  };
}

const names = readdirSync(CASES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(new URL(`${d.name}/case.json`, CASES)))
  .map((d) => d.name)
  .sort();

describe('golden pcap cases', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-golden-'));
    execFileSync('tshark', ['--version'], { timeout: 10_000 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('has cases', () => assert.ok(names.length >= 3, `cases: ${names.join(', ')}`));

  it('the checksum judge sees a damaged checksum (tshark does check them)', () => {
    const c = JSON.parse(readFileSync(new URL('fw-nat/case.json', CASES), 'utf8')) as GoldenCase;
    const input = writeInput(c, 'judge');
    assert.equal(tshark(input, BROKEN).length, 0, 'the crafted input is clean');
    const bytes = readFileSync(input);
    // The last frame's last byte: payload or a checksum-covered header of some layer.
    bytes[bytes.length - 1] ^= 0x40;
    const damaged = join(dir, 'damaged.pcap');
    writeFileSync(damaged, bytes);
    assert.equal(tshark(damaged, BROKEN).length, 1);
  });

  for (const name of names) {
    const c = JSON.parse(readFileSync(new URL(`${name}/case.json`, CASES), 'utf8')) as GoldenCase;
    for (const [mode, vnic, placement] of MODES) {
      it(`${name} (${mode}): ${c.description}`, async () => {
        const input = writeInput(c, name);
        const output = join(dir, `${name}-${mode}.pcap`);
        const summary = await (await Host.create(plan(c, input, output, vnic, placement))).run();
        assert.equal(
          summary.sent,
          c.frames,
          `frames out: ${JSON.stringify(summary.nfs.map((n) => n.drops))}`,
        );
        assert.deepEqual(tshark(output, BROKEN), [], 'every checksum good, nothing malformed');
        assert.equal(tshark(output, 'frame').length, c.frames, 'tshark reads every frame');
        for (const check of c.checks)
          assert.equal(tshark(output, check.filter).length, check.count, `${check.why}: ${check.filter}`);
        if (c.sticky) {
          const { key, value, values, minShare } = c.sticky;
          const byKey = new Map<string, Set<string>>();
          for (const line of tshark(output, value, [...key, value])) {
            const cells = line.split('\t');
            const k = cells.slice(0, key.length).join(' ');
            byKey.set(k, (byKey.get(k) ?? new Set()).add(cells[key.length]));
          }
          const perValue = new Map<string, number>();
          for (const [k, seen] of byKey) {
            assert.equal(seen.size, 1, `${k} was sent to ${[...seen].join(' and ')}`);
            const v = [...seen][0];
            perValue.set(v, (perValue.get(v) ?? 0) + 1);
          }
          assert.equal(perValue.size, values, `spread over ${[...perValue.keys()].join(', ')}`);
          for (const [v, n] of perValue)
            assert.ok(n >= minShare * byKey.size, `${v} has ${n} of ${byKey.size} flows`);
        }
      });
    }
  }
});
