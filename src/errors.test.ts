import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCodes, NfvError, isNfvError } from './errors.js';

test('errors: docs/errors.md lists exactly the registry codes, with their descriptions', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `(NFV_ERR_[A-Z_]+)` \| (.+) \|$/gm)) documented.set(m[1], m[2].trim());
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ErrorCodes).sort());
  for (const [code, text] of Object.entries(ErrorCodes)) assert.equal(documented.get(code), text, code);
});

test('errors: an NfvError crosses an isolate as plain data and is still recognised by code', () => {
  const e = new NfvError('NFV_ERR_CAPTURE_TRUNCATED', 'record cut short', { file: 'x.pcap', offset: 40 });
  assert.match(e.message, /^x\.pcap at byte 40: record cut short/);
  const crossed: unknown = structuredClone(e.toJSON());
  assert.equal(isNfvError(crossed, 'NFV_ERR_CAPTURE_TRUNCATED'), true);
  assert.equal(isNfvError(crossed, 'NFV_ERR_IO'), false);
  assert.equal(isNfvError({ code: 'ENOENT' }), false);
});
