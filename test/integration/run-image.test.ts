/**
 * A third-party NF runs from its image: the example DNS blocklist is built into a store, a
 * deployment refers to it as `acme/dns-blocklist:1.0.0`, and `nfvisor run`'s code path resolves,
 * verifies and loads it into a guest. Without `images.allowUnsigned` the unsigned image is refused
 * before anything starts, with the deployment file and line of the reference.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { runDeploymentFile } from '../../src/cli/run.js';
import { writeGeneratedCapture } from '../../src/io/generate-capture.js';
import { buildImage, ImageStore } from '../../src/image/index.js';

process.env.NFVISOR_QUIET = '1';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'examples', 'nf-dns-blocklist'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository (examples/nf-dns-blocklist)');
    dir = up;
  }
  return dir;
}

describe('running an NF from an image', () => {
  let dir = '';
  let store = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nfvisor-run-image-'));
    store = join(dir, 'images');
    const images = new ImageStore(store);
    const built = await buildImage(join(repoRoot(), 'examples', 'nf-dns-blocklist'));
    await images.tag('acme/dns-blocklist:1.0.0', await images.putImage(built.bytes));
    await writeGeneratedCapture(
      { seed: 4, packets: 3000, ipv6: 0.2, mix: { tcp: 1, udp: 2, icmp: 0 } },
      join(dir, 'in.pcap'),
      {
        format: 'pcap',
      },
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function deployment(allowUnsigned: boolean): string {
    const file = join(dir, `deploy-${allowUnsigned}.yaml`);
    writeFileSync(
      file,
      [
        'images:',
        `  store: ${store}`,
        `  trustPolicy: ${join(dir, 'no-policy.json')}`,
        `  allowUnsigned: ${allowUnsigned}`,
        'ports:',
        '  in: { type: pcap, path: in.pcap }',
        '  out: { type: sink }',
        'nfs:',
        '  dns:',
        '    image: acme/dns-blocklist:1.0.0',
        '    config: {}',
        'chains:',
        '  - { from: in, through: [dns], to: out }',
        '',
      ].join('\n'),
    );
    return file;
  }

  it('resolves the image from the store and runs it in an isolated guest', async () => {
    const summary = await runDeploymentFile(deployment(true), { progress: false });
    assert.equal(summary.received, 3000);
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.nfs[0].image, 'dns-blocklist');
    assert.equal(summary.nfs[0].packets, 3000);
    assert.equal(summary.poolFree, summary.poolSlots);
  });

  it('refuses an unsigned image unless the deployment allows it, naming the file and line', async () => {
    const file = deployment(false);
    await assert.rejects(
      runDeploymentFile(file, { progress: false }),
      (e: { code?: string; message?: string; detail?: { line?: number } }) => {
        assert.equal(e.code, 'NFV_ERR_IMAGE_UNSIGNED');
        assert.ok(e.message?.includes(`${file}:10:`), e.message);
        assert.equal(e.detail?.line, 10);
        return true;
      },
    );
  });
});
