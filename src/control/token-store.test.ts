import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROLES, TokenStore, roleAtLeast } from './token-store.js';

const dir = mkdtempSync(join(tmpdir(), 'nfvisor-tokens-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

describe('TokenStore', () => {
  it('issues random 32-byte base64url tokens and verifies them with their role', async () => {
    const store = TokenStore.inMemory();
    const a = await store.issue('viewer', 'grafana');
    const b = await store.issue('admin');
    assert.match(a.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a.token, 'base64url').length, 32);
    assert.notEqual(a.token, b.token);
    assert.deepEqual(
      { ...store.verify(a.token), created: undefined },
      { id: a.id, role: 'viewer', label: 'grafana', created: undefined },
    );
    assert.equal(store.verify(b.token)?.role, 'admin');
  });

  it('refuses unknown, near-miss, malformed and revoked tokens', async () => {
    const store = TokenStore.inMemory();
    const { id, token } = await store.issue('operator');
    const flipped = (token[0] === 'A' ? 'B' : 'A') + token.slice(1);
    for (const bad of [
      '',
      'short',
      flipped,
      token.slice(0, -1),
      `${token}x`,
      `${token} `,
      'é'.repeat(43),
      'x'.repeat(10_000),
    ])
      assert.equal(store.verify(bad), null, JSON.stringify(bad.slice(0, 50)));
    assert.equal(await store.revoke(id), true);
    assert.equal(store.verify(token), null);
    assert.equal(await store.revoke(id), false);
  });

  it('orders roles viewer < operator < admin', () => {
    assert.deepEqual(ROLES, ['viewer', 'operator', 'admin']);
    assert.equal(roleAtLeast('admin', 'operator'), true);
    assert.equal(roleAtLeast('operator', 'operator'), true);
    assert.equal(roleAtLeast('viewer', 'operator'), false);
  });

  it('keeps only hashes in its file (mode 0600), and reads them back', async () => {
    const file = join(dir, 'tokens.json');
    const store = await TokenStore.open(file);
    const { token } = await store.issue('admin', 'ops');
    const text = readFileSync(file, 'utf8');
    assert.equal(text.includes(token), false, 'the token itself is never written');
    assert.match(text, /"sha256": "[0-9a-f]{64}"/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const again = await TokenStore.open(file);
    assert.equal(again.verify(token)?.role, 'admin');
    assert.deepEqual(again.list(), store.list());
  });

  it('refuses a malformed token file with NFV_ERR_TOKEN_STORE, naming the field', async () => {
    const cases: [string, string][] = [
      ['{', ''],
      ['{"version":2,"tokens":[]}', 'version'],
      ['{"version":1}', 'tokens'],
      [
        '{"version":1,"tokens":[{"id":"a","role":"root","sha256":"' + '0'.repeat(64) + '"}]}',
        'tokens[0].role',
      ],
      ['{"version":1,"tokens":[{"id":"a","role":"admin","sha256":"xyz"}]}', 'tokens[0].sha256'],
    ];
    for (const [text, field] of cases) {
      const file = join(dir, 'bad.json');
      writeFileSync(file, text);
      await assert.rejects(TokenStore.open(file), (e: unknown) => {
        assert.equal(codeOf(e), 'NFV_ERR_TOKEN_STORE', text);
        assert.equal((e as { detail: { field: string } }).detail.field, field, text);
        return true;
      });
    }
    assert.equal((await TokenStore.open(join(dir, 'missing.json'))).list().length, 0);
  });
});
