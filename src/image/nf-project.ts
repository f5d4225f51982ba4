/**
 * A third-party NF's project folder: `scaffoldNf` writes a new one (`nfvisor nf new`), and
 * `runNfTests` runs its tests (`nfvisor nf test`). An NF outside nfvisor imports `nfvisor/sdk` and
 * `nfvisor/packet/<file>`; its tests are bundled by esbuild with those names mapped to this
 * nfvisor's modules (as `buildImage` does), then run by `node --test`.
 *
 * @example
 * await scaffoldNf('dns-blocklist', 'nf-dns-blocklist');
 * const code = await runNfTests('nf-dns-blocklist'); // node --test's exit code
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NfvError } from '../errors.js';
import { sdkAlias } from './build-image.js';

const NAME = /^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$/;

/** Writes a new NF project (package.json, index.ts, index.test.ts, tsconfig.json) into `dir`. */
export async function scaffoldNf(name: string, dir: string): Promise<string[]> {
  if (!NAME.test(name))
    throw new NfvError(
      'NFV_ERR_BAD_ARGUMENT',
      `NF name ${JSON.stringify(name)} must be lower-case kebab-case`,
    );
  const root = resolve(dir);
  if (existsSync(root) && (await readdir(root)).length > 0)
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `${root} exists and is not empty`, { file: root });
  await mkdir(root, { recursive: true });
  const files: Record<string, string> = {
    'package.json': `${JSON.stringify(
      {
        name: `nf-${name}`,
        version: '0.1.0',
        private: true,
        type: 'module',
        nfvisor: { capabilities: [], heapMb: 64 },
      },
      null,
      2,
    )}\n`,
    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        include: ['*.ts'],
      },
      null,
      2,
    )}\n`,
    'index.ts': `/**
 * ${name}: what it does, in one paragraph. Packets arrive in batches; give each a verdict
 * (default: the first output), count per batch, and never throw on bad input — drop it with a
 * declared reason instead.
 */
import { defineNf } from 'nfvisor/sdk';

export interface Config {
  minLength: number;
}

export default defineNf<Config>({
  name: '${name}',
  summary: 'Drops frames shorter than a minimum length.',
  outputs: ['out'],
  drops: { too_short: 'the frame is shorter than minLength' },
  counters: { checked: { unit: 'packets', description: 'frames looked at' } },
  config: {
    minLength: { type: 'integer', description: 'shortest frame passed, in bytes', default: 60, minimum: 0 },
  },
  create(config, ctx) {
    const checked = ctx.counter('checked');
    const TOO_SHORT = ctx.dropReason('too_short');
    return {
      process(batch) {
        for (let i = 0; i < batch.count; i++) if (batch.length[i] < config.minLength) batch.drop(i, TOO_SHORT);
        ctx.counters[checked] += batch.count;
      },
    };
  },
});
`,
    'index.test.ts': `import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NfHarness } from 'nfvisor/sdk';
import nf from './index.js';

test('${name}: short frames are dropped, long ones pass', () => {
  const harness = new NfHarness(nf, { minLength: 60 });
  const results = harness.run([new Uint8Array(59), new Uint8Array(60)]);
  assert.deepEqual(
    results.map((r) => r.output ?? r.drop),
    ['too_short', 'out'],
  );
  assert.deepEqual(harness.counters(), { checked: 2 });
});
`,
  };
  for (const [file, text] of Object.entries(files)) await writeFile(join(root, file), text);
  return Object.keys(files).map((f) => join(root, f));
}

/** Bundles each `*.test.ts`/`*.test.js` of `dir` and runs them with `node --test`; returns its exit code. */
export async function runNfTests(
  dir: string,
  options: { stdio?: 'inherit' | 'pipe' } = {},
): Promise<{ code: number; output: string }> {
  const root = resolve(dir);
  const tests = (await readdir(root)).filter((f) => /\.test\.(ts|mts|js|mjs)$/.test(f)).sort();
  if (tests.length === 0)
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `no *.test.ts in ${root}`, { file: root });
  const out = await mkdtemp(join(tmpdir(), 'nfvisor-nf-test-'));
  try {
    const { build } = await import('esbuild');
    try {
      await build({
        entryPoints: tests.map((t) => join(root, t)),
        absWorkingDir: root,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outdir: out,
        outExtension: { '.js': '.mjs' },
        logLevel: 'silent',
        plugins: [sdkAlias],
      });
    } catch (e) {
      const errors = (e as { errors?: { text: string }[] }).errors ?? [];
      throw new NfvError(
        'NFV_ERR_IMAGE_BUILD',
        `bundling the tests failed: ${errors.map((x) => x.text).join('; ')}`,
        {
          file: root,
        },
      );
    }
    const files = (await readdir(out)).filter((f) => f.endsWith('.mjs')).map((f) => join(out, f));
    return await new Promise((resolveRun, reject) => {
      // A child of a test run would otherwise think it is part of the parent's run.
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const child = spawn(process.execPath, ['--test', ...files], {
        env,
        stdio: options.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolveRun({ code: code ?? 1, output }));
    });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
