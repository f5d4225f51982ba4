import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { isNfvError } from '../errors.js';
import { readTar, writeTar } from './tar.js';

const run = promisify(execFile);
const LONG = `signatures/sha256-${'a'.repeat(64)}/${'b'.repeat(64)}.sig`;

test('tar: round trip, long names through the prefix field, and the system tar agrees', async () => {
  const entries = [
    { name: 'nfvisor-image.json', data: Buffer.from('{}\n') },
    { name: LONG, data: Buffer.from('x'.repeat(1000)) },
    { name: 'empty', data: new Uint8Array(0) },
  ];
  const tar = writeTar(entries);
  assert.equal(tar.length % 512, 0);
  assert.deepEqual(
    readTar(tar).map((e) => [e.name, Buffer.from(e.data).toString()]),
    entries.map((e) => [e.name, Buffer.from(e.data).toString()]),
  );
  const dir = await mkdtemp(join(tmpdir(), 'nfvisor-tar-test-'));
  try {
    await writeFile(join(dir, 'a.tar'), tar);
    const { stdout } = await run('tar', ['-tf', join(dir, 'a.tar')]);
    assert.deepEqual(
      stdout.trim().split('\n'),
      entries.map((e) => e.name),
    );
    await run('tar', ['-xf', join(dir, 'a.tar'), '-C', dir]);
    assert.equal(await readFile(join(dir, LONG), 'utf8'), 'x'.repeat(1000));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tar: a flipped header byte, a short file or a size past the end is refused, never read past', () => {
  const tar = writeTar([{ name: 'a', data: Buffer.from('hello') }]);
  const flipped = Uint8Array.from(tar);
  flipped[0] ^= 1;
  for (const bad of [flipped, tar.subarray(0, 600), tar.subarray(0, 512)]) {
    assert.throws(
      () => readTar(bad),
      (e: unknown) => isNfvError(e, 'NFV_ERR_IMAGE_INVALID'),
    );
  }
});
