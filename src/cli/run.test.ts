import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCheckedDeployment } from './run.js';

describe('parseCheckedDeployment', () => {
  const yaml = (image: string, fallback: string) =>
    [
      'ports:',
      '  in: { type: pcap, path: in.pcap }',
      '  out: { type: pcap, path: out.pcap }',
      'nfs:',
      '  fw:',
      `    image: ${image}`,
      `    config: { default: ${fallback} }`,
      'chains:',
      '  - { from: in, through: [fw], to: out }',
      '',
    ].join('\n');

  it("checks a built-in's config against its schema, with the line and the field", async () => {
    await assert.rejects(parseCheckedDeployment(yaml('builtin/firewall', 'sideways'), 'd.yaml'), (e: Error) => {
      assert.match(e.message, /d\.yaml:7:\d+.*nfs\.fw\.config\.default/);
      return true;
    });
    const ok = await parseCheckedDeployment(yaml('builtin/firewall', 'drop'), 'd.yaml');
    assert.deepEqual(ok.nfs.fw.config, { default: 'drop' });
  });

  it('checks a built-in named with an escaped slash too (found by the parser, not the scan)', async () => {
    // "builtin\u002ffirewall" is builtin/firewall to the parser, and nothing to a text scan.
    const escaped = yaml('"builtin\\u002ffirewall"', 'sideways');
    assert.doesNotMatch(escaped, /builtin\/firewall/);
    await assert.rejects(parseCheckedDeployment(escaped, 'd.yaml'), /nfs\.fw\.config\.default/);
    const ok = await parseCheckedDeployment(yaml('"builtin\\u002ffirewall"', 'accept'), 'd.yaml');
    assert.equal(ok.nfs.fw.image, 'builtin/firewall');
  });
});
