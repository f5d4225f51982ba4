import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { withLock } from './atomic-file.js';
import { encodeImage } from './image-blob.js';
import { ImageStore } from './image-store.js';
import { compareVersions, IMAGE_ENTRY, type ImageManifest } from './manifest.js';

const run = promisify(execFile);

function manifest(version = '1.0.0'): ImageManifest {
  return {
    schemaVersion: 1,
    name: 'x',
    version,
    sdkApiVersion: 1,
    entry: IMAGE_ENTRY,
    summary: 's',
    outputs: ['out'],
    drops: [],
    counters: [],
    config: {},
    resources: { heapMb: 16 },
    capabilities: [],
  };
}

describe('image store', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'nfvisor-store-test-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('tags written by four processes at once all land (the index is changed under a lock)', async () => {
    const dir = join(root, 'concurrent');
    const store = new ImageStore(dir);
    const digest = await store.putImage(encodeImage(manifest(), Buffer.from('export default 1;')));
    const moduleUrl = new URL('./image-store.js', import.meta.url).href;
    const script = `const { ImageStore } = await import(${JSON.stringify(moduleUrl)});
const s = new ImageStore(process.argv[1]);
for (let i = 0; i < 20; i++) await s.tag('x:p' + process.argv[2] + '-' + i, process.argv[3]);`;
    await Promise.all(
      [0, 1, 2, 3].map((p) =>
        run(process.execPath, ['--input-type=module', '-e', script, dir, String(p), digest]),
      ),
    );
    const tags = await store.tags();
    assert.equal(Object.keys(tags).length, 80);
    assert.ok(Object.values(tags).every((d) => d === digest));
    const leftovers = (await readdir(dir)).filter((n) => n.startsWith('.tmp-') || n === 'index.lock');
    assert.deepEqual(leftovers, []);
  });

  it('a lock left by a dead process is broken; a blob is stored under its digest only when whole', async () => {
    const dir = join(root, 'crash');
    const store = new ImageStore(dir);
    await store.putImage(encodeImage(manifest(), Buffer.from('export default 2;')));
    // A crashed writer: a lock file naming a process that does not exist, and a stray temp file.
    await writeFile(join(dir, 'index.lock'), '999999999 0 dead\n');
    await writeFile(join(dir, 'blobs', 'sha256', '.tmp-abc-1-2'), 'half');
    const digest = await store.putImage(encodeImage(manifest('1.0.1'), Buffer.from('export default 3;')));
    await store.tag('x:ok', digest);
    assert.equal((await store.tags())['x:ok'], digest);
    const list = await store.list();
    assert.equal(list.length, 2, 'the temp file is not an image');
  });

  it('withLock serialises critical sections in one process too', async () => {
    const lock = join(root, 'serial.lock');
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        withLock(lock, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 2));
          inside--;
        }),
      ),
    );
    assert.equal(most, 1);
  });

  it('rm untags, and deletes the image when no tag is left', async () => {
    const store = new ImageStore(join(root, 'rm'));
    const digest = await store.putImage(encodeImage(manifest(), Buffer.from('export default 4;')));
    await store.tag('x:a', digest);
    await store.tag('x:b', digest);
    assert.deepEqual(await store.remove('x:a'), { untagged: ['x:a'] });
    assert.ok(store.hasBlob(digest));
    assert.deepEqual(await store.remove('x:b'), { untagged: ['x:b'], deleted: digest });
    assert.ok(!store.hasBlob(digest));
  });

  it('versions order as semver', () => {
    const sorted = ['1.0.0', '1.0.0-rc.1', '1.10.0', '1.9.3', '0.1.0', '1.0.0-alpha', '1.0.0-rc.10'].sort(
      compareVersions,
    );
    assert.deepEqual(sorted, [
      '0.1.0',
      '1.0.0-alpha',
      '1.0.0-rc.1',
      '1.0.0-rc.10',
      '1.0.0',
      '1.9.3',
      '1.10.0',
    ]);
  });
});
