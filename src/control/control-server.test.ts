/**
 * The control API in process (`app.inject()`) against a fake host with a deterministic status:
 * the auth census over every registered route, closed schemas, client errors as 4xx with codes,
 * the metrics exposition, and the rates stream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import {
  buildControlApp,
  parseListen,
  startControlServer,
  type ControlServerOptions,
} from './control-server.js';
import { FakeHost, fakePlan, fakeStatus, parseExposition } from './fake-host.js';
import { openCapture } from '../io/capture.js';
import { REDACTED } from './snapshot-json.js';
import type { CounterSpec } from '../sdk/define-nf.js';
import { NfvError } from '../errors.js';
import type { CounterSpecs } from './metrics.js';
import type { Rates } from './rates.js';
import { ROUTE_ROLES } from './route-roles.js';
import { ROLES, TokenStore, type Role } from './token-store.js';

const SPECS: CounterSpecs = new Map<string, Record<string, CounterSpec>>([
  [
    'firewall',
    {
      accepted: { unit: 'packets', description: 'IP packets accepted' },
      denied: { unit: 'packets', description: 'IP packets dropped by a rule' },
      rule_hits: { unit: 'packets', description: 'packets decided by a rule' },
    },
  ],
  [
    'flow-monitor',
    {
      packets: { unit: 'packets', description: 'IP packets recorded in a flow' },
      flows_active: { unit: 'flows', description: 'flows in the table now (a gauge)' },
    },
  ],
]);

interface Harness {
  app: FastifyInstance;
  host: FakeHost;
  routes: { method: string; url: string; role: Role }[];
  tokens: TokenStore;
  token: Record<Role, string>;
  revoked: string;
}

async function harness(options: Partial<ControlServerOptions> = {}, host = new FakeHost()): Promise<Harness> {
  const tokens = TokenStore.inMemory();
  const token = {} as Record<Role, string>;
  for (const role of ROLES) token[role] = (await tokens.issue(role, role)).token;
  const gone = await tokens.issue('admin', 'revoked');
  await tokens.revoke(gone.id);
  const { app, routes } = await buildControlApp(host, {
    tokens,
    counterSpecs: SPECS,
    streamIntervalMs: 5,
    deploy: (text) => {
      // The fake deployer: JSON `{ "replicas": n }` scales fw; anything else is an invalid file.
      const { replicas } = JSON.parse(text) as { replicas: number };
      const plan = fakePlan();
      plan.nfs.fw = { ...plan.nfs.fw, replicas };
      return Promise.resolve(plan);
    },
    ...options,
  });
  await app.ready();
  return { app, host, routes, tokens, token, revoked: gone.token };
}

function auth(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function code(response: LightMyRequestResponse): string {
  return response.json<{ code: string }>().code;
}

/** A body each POST route accepts (the census must reach the handler, not the schema check). */
const BODIES: Record<string, unknown> = {
  'POST /v1/nfs/:name/scale': { replicas: 2 },
  'POST /v1/deployments': { deployment: '{"replicas": 3}' },
  'POST /v1/chains/:name/capture': { hop: 0, packets: 2 },
};

/** A request that reaches the handler of `url`: params filled, a bounded stream. */
function concrete(url: string): string {
  const filled = url.replace(':name', url.startsWith('/v1/chains/') ? 'main' : 'fw');
  return filled === '/v1/stream' ? `${filled}?count=1` : filled;
}

describe('control server: auth census', () => {
  it('registers exactly the routes of the role table', async () => {
    const { app, routes } = await harness();
    assert.deepEqual(routes.map((r) => `${r.method} ${r.url}`).sort(), Object.keys(ROUTE_ROLES).sort());
    for (const r of routes)
      assert.equal(r.role, ROUTE_ROLES[`${r.method} ${r.url}` as keyof typeof ROUTE_ROLES]);
    await app.close();
  });

  it('every route refuses a missing, garbage, revoked and under-privileged token, and admits its role', async () => {
    const h = await harness();
    assert.ok(h.routes.length >= 9);
    for (const route of h.routes) {
      const what = `${route.method} ${route.url}`;
      const url = concrete(route.url);
      const send = (headers: Record<string, string>): Promise<LightMyRequestResponse> =>
        h.app.inject({
          method: route.method as 'GET' | 'POST',
          url,
          headers,
          ...(route.method === 'POST' ? { payload: BODIES[what] ?? {} } : {}),
        });
      const missing = await send({});
      assert.equal(missing.statusCode, 401, what);
      assert.equal(code(missing), 'NFV_ERR_CONTROL_UNAUTHORIZED', what);
      assert.match(String(missing.headers['www-authenticate']), /^Bearer/, what);
      for (const headers of [
        auth('garbage'),
        auth('A'.repeat(43)),
        auth(h.revoked),
        { authorization: h.token.admin }, // no scheme
        { authorization: `Basic ${h.token.admin}` },
      ]) {
        const garbage = await send(headers);
        assert.equal(garbage.statusCode, 401, `${what} ${headers.authorization}`);
        assert.equal(code(garbage), 'NFV_ERR_CONTROL_UNAUTHORIZED', what);
      }
      const minimum = ROLES.indexOf(route.role);
      for (const role of ROLES.slice(0, minimum)) {
        const under = await send(auth(h.token[role]));
        assert.equal(under.statusCode, 403, `${what} as ${role}`);
        assert.equal(code(under), 'NFV_ERR_CONTROL_FORBIDDEN', what);
      }
      for (const role of ROLES.slice(minimum)) {
        const ok = await send(auth(h.token[role]));
        assert.ok(
          ok.statusCode >= 200 && ok.statusCode < 300,
          `${what} as ${role}: ${ok.statusCode} ${ok.body}`,
        );
      }
    }
    await h.app.close();
  });

  it('a route without a row in the role table is refused at registration', async () => {
    const h = await harness();
    await h.app.close();
    const { app } = await buildControlApp(new FakeHost(), { tokens: h.tokens, counterSpecs: SPECS });
    assert.throws(
      () => app.get('/v1/new-thing', () => 'unguarded'),
      (e: unknown) => (e as { code?: string }).code === 'NFV_ERR_CONTROL_ROUTE_UNGUARDED',
    );
    // Also from inside a plugin, where the error surfaces at ready().
    // eslint-disable-next-line @typescript-eslint/require-await
    void app.register(async (child) => {
      child.post('/v1/another', () => 'unguarded');
    });
    await app.ready().then(
      () => assert.fail('registration should fail'),
      (e: unknown) => assert.equal((e as { code?: string }).code, 'NFV_ERR_CONTROL_ROUTE_UNGUARDED'),
    );
  });

  it('an unknown route answers 401 without a token and 404 with one', async () => {
    const h = await harness();
    const anonymous = await h.app.inject({ method: 'GET', url: '/v1/secret' });
    assert.equal(code(anonymous), 'NFV_ERR_CONTROL_UNAUTHORIZED');
    const known = await h.app.inject({ method: 'GET', url: '/v1/secret', headers: auth(h.token.viewer) });
    assert.equal(known.statusCode, 404);
    assert.equal(code(known), 'NFV_ERR_CONTROL_NOT_FOUND');
    const head = await h.app.inject({ method: 'HEAD', url: '/v1/status', headers: auth(h.token.viewer) });
    assert.equal(head.statusCode, 404);
    await h.app.close();
  });
});

describe('control server: reads', () => {
  it('GET /v1/status is the host status, and only the declared fields', async () => {
    const host = new FakeHost();
    const leaky = Object.assign(host, {
      status: () => ({ ...fakeStatus(), secret: 'x', nfs: [{ ...fakeStatus().nfs[0], internal: 1 }] }),
    });
    const h = await harness({}, leaky);
    const response = await h.app.inject({ method: 'GET', url: '/v1/status', headers: auth(h.token.viewer) });
    assert.equal(response.statusCode, 200);
    const body = response.json<Record<string, unknown>>();
    assert.equal(body.secret, undefined);
    assert.deepEqual(body, { ...fakeStatus(), nfs: [fakeStatus().nfs[0]] });
    await h.app.close();
  });

  it('GET /v1/nfs, /v1/nfs/:name, /v1/chains and /v1/ports', async () => {
    const h = await harness();
    const get = async (url: string): Promise<LightMyRequestResponse> =>
      h.app.inject({ method: 'GET', url, headers: auth(h.token.viewer) });
    const s = fakeStatus();
    assert.deepEqual((await get('/v1/nfs')).json(), { nfs: s.nfs });
    assert.deepEqual((await get('/v1/nfs/fw')).json(), s.nfs[0]);
    assert.deepEqual((await get('/v1/chains')).json(), { chains: s.chains });
    assert.deepEqual((await get('/v1/ports')).json(), { ports: [{ name: 'out', received: 0, sent: 900 }] });
    const missing = await get('/v1/nfs/nope');
    assert.equal(missing.statusCode, 404);
    assert.equal(code(missing), 'NFV_ERR_NF_NOT_FOUND');
    await h.app.close();
  });
});

describe('control server: actions', () => {
  it('POST /v1/nfs/:name/restart restarts (202), refuses a quarantined NF (409) and an unknown one (404)', async () => {
    const h = await harness();
    const post = (url: string, payload?: unknown): Promise<LightMyRequestResponse> =>
      h.app.inject({ method: 'POST', url, headers: auth(h.token.operator), ...(payload ? { payload } : {}) });
    const ok = await post('/v1/nfs/fw/restart', { reason: 'stuck' });
    assert.equal(ok.statusCode, 202);
    assert.deepEqual(ok.json(), { nf: 'fw', restarting: true, restartsBefore: 2 });
    const bare = await post('/v1/nfs/fw/restart');
    assert.equal(bare.statusCode, 202, bare.body);
    assert.deepEqual(h.host.restarted, ['fw', 'fw']);
    const quarantined = await post('/v1/nfs/bad/restart', {});
    assert.equal(quarantined.statusCode, 409);
    assert.equal(code(quarantined), 'NFV_ERR_CONTROL_CONFLICT');
    const unknown = await post('/v1/nfs/ghost/restart', {});
    assert.equal(unknown.statusCode, 404);
    assert.equal(code(unknown), 'NFV_ERR_NF_NOT_FOUND');
    assert.deepEqual(h.host.restarted, ['fw', 'fw']);
    await h.app.close();
  });

  it('POST /v1/stop stops the host (admin) and a restart after it is a conflict', async () => {
    const h = await harness();
    const stop = await h.app.inject({
      method: 'POST',
      url: '/v1/stop',
      headers: auth(h.token.admin),
      payload: {},
    });
    assert.equal(stop.statusCode, 202);
    assert.deepEqual(stop.json(), { stopping: true });
    assert.equal(h.host.stops, 1);
    const late = await h.app.inject({
      method: 'POST',
      url: '/v1/nfs/fw/restart',
      headers: auth(h.token.admin),
      payload: {},
    });
    assert.equal(late.statusCode, 409);
    assert.equal(code(late), 'NFV_ERR_CONTROL_CONFLICT');
    await h.app.close();
  });
});

describe('control server: reconfiguration, snapshots and captures', () => {
  it('POST /v1/deployments applies, and with ?dryRun=true only returns the diff', async () => {
    const h = await harness();
    const post = (url: string, payload: unknown): Promise<LightMyRequestResponse> =>
      h.app.inject({ method: 'POST', url, headers: auth(h.token.operator), payload: payload as object });
    const dry = await post('/v1/deployments?dryRun=true', { deployment: '{"replicas": 4}' });
    assert.equal(dry.statusCode, 200, dry.body);
    const reply = dry.json<{ dryRun: boolean; applied: boolean; diff: { nfs: { changed: unknown[] } } }>();
    assert.equal(reply.dryRun, true);
    assert.equal(reply.applied, false);
    assert.deepEqual(reply.diff.nfs.changed, [{ name: 'fw', fields: ['replicas'] }]);
    assert.equal(h.host.plan.nfs.fw.replicas, 1, 'a dry run changes nothing');
    const applied = await post('/v1/deployments', { deployment: '{"replicas": 4}', file: 'next.yaml' });
    assert.equal(applied.statusCode, 200, applied.body);
    assert.equal(applied.json<{ applied: boolean }>().applied, true);
    assert.equal(h.host.plan.nfs.fw.replicas, 4);
    await h.app.close();
  });

  it('POST /v1/deployments without a deployer is a conflict; deployer errors keep their codes', async () => {
    const none = await harness({ deploy: undefined });
    const r = await none.app.inject({
      method: 'POST',
      url: '/v1/deployments',
      headers: auth(none.token.operator),
      payload: { deployment: 'ports: {}' },
    });
    assert.equal(r.statusCode, 409);
    assert.equal(code(r), 'NFV_ERR_CONTROL_CONFLICT');
    await none.app.close();
    for (const [error, status] of [
      ['NFV_ERR_DEPLOY_INVALID', 400],
      ['NFV_ERR_IMAGE_NOT_FOUND', 422],
      ['NFV_ERR_RECONFIGURE_FAILED', 422],
      ['NFV_ERR_RECONFIGURE_REFUSED', 409],
    ] as const) {
      const h = await harness({
        deploy: () => Promise.reject(new NfvError(error, 'no', { file: 'x.yaml', line: 3 })),
      });
      const bad = await h.app.inject({
        method: 'POST',
        url: '/v1/deployments',
        headers: auth(h.token.operator),
        payload: { deployment: 'x' },
      });
      assert.equal(bad.statusCode, status, error);
      assert.equal(code(bad), error);
      await h.app.close();
    }
  });

  it('scale, drain and stop act on the named NF; an unknown NF is 404', async () => {
    const h = await harness();
    const post = (url: string, payload: unknown = {}): Promise<LightMyRequestResponse> =>
      h.app.inject({ method: 'POST', url, headers: auth(h.token.operator), payload: payload as object });
    const scale = await post('/v1/nfs/mon/scale', { replicas: 3 });
    assert.equal(scale.statusCode, 200, scale.body);
    assert.equal(h.host.plan.nfs.mon.replicas, 3);
    assert.deepEqual(scale.json<{ diff: { nfs: { changed: unknown[] } } }>().diff.nfs.changed, [
      { name: 'mon', fields: ['replicas'] },
    ]);
    assert.equal((await post('/v1/nfs/fw/drain')).statusCode, 200);
    assert.equal((await post('/v1/nfs/fw/stop', { reason: 'maintenance' })).statusCode, 200);
    assert.deepEqual(h.host.drained, ['fw']);
    assert.deepEqual(h.host.stopped, ['fw']);
    for (const url of ['/v1/nfs/nope/scale', '/v1/nfs/nope/drain', '/v1/nfs/nope/stop']) {
      const missing = await post(url, url.endsWith('scale') ? { replicas: 2 } : {});
      assert.equal(missing.statusCode, 404, url);
      assert.equal(code(missing), 'NFV_ERR_NF_NOT_FOUND');
    }
    await h.app.close();
  });

  it('GET /v1/nfs/:name/snapshot is JSON with every secret-named field redacted', async () => {
    const h = await harness();
    h.host.snapshots.set('fw', [
      {
        version: 1,
        flows: new Map([['10.0.0.1', 3n]]),
        table: new Uint8Array([1, 2, 3]),
        peers: [{ publicKey: 'pub', presharedKey: 'psk-bytes', nested: { privateKey: 'priv', token: 't' } }],
        cookieSecret: 'c',
      },
    ]);
    const r = await h.app.inject({
      method: 'GET',
      url: '/v1/nfs/fw/snapshot',
      headers: auth(h.token.operator),
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), {
      nf: 'fw',
      replicas: [
        {
          replica: 0,
          state: {
            version: 1,
            flows: [['10.0.0.1', '3']],
            table: { typedArray: 'Uint8Array', length: 3, base64: 'AQID' },
            peers: [
              { publicKey: 'pub', presharedKey: REDACTED, nested: { privateKey: REDACTED, token: REDACTED } },
            ],
            cookieSecret: REDACTED,
          },
        },
      ],
    });
    assert.doesNotMatch(r.body, /psk-bytes|priv"|"c"/);
    const viewer = await h.app.inject({
      method: 'GET',
      url: '/v1/nfs/fw/snapshot',
      headers: auth(h.token.viewer),
    });
    assert.equal(viewer.statusCode, 403, 'state is for operators');
    const missing = await h.app.inject({
      method: 'GET',
      url: '/v1/nfs/nope/snapshot',
      headers: auth(h.token.operator),
    });
    assert.equal(missing.statusCode, 404);
    await h.app.close();
  });

  it('POST /v1/chains/:name/capture returns a pcap file the project reader reads back', async () => {
    const h = await harness();
    const r = await h.app.inject({
      method: 'POST',
      url: '/v1/chains/main/capture',
      headers: auth(h.token.operator),
      payload: { hop: 1, packets: 5 },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.headers['content-type'], 'application/vnd.tcpdump.pcap');
    assert.equal(r.headers['x-nfvisor-packets'], '2');
    const dir = mkdtempSync(join(tmpdir(), 'ctl-capture-'));
    try {
      const file = join(dir, 'hop.pcap');
      writeFileSync(file, r.rawPayload);
      const reader = openCapture(file);
      const frames: number[][] = [];
      while (reader.next())
        frames.push([reader.capturedLength, reader.bytes[reader.at], reader.timestampNanos]);
      reader.close();
      assert.deepEqual(frames, [
        [60, 0, 0],
        [60, 1, 1],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await h.app.close();
  });
});

describe('control server: client errors are 4xx with a code, never 500', () => {
  const cases: [
    string,
    { method: 'GET' | 'POST'; url: string; payload?: string; type?: string },
    number,
    string,
  ][] = [
    [
      'malformed JSON',
      { method: 'POST', url: '/v1/nfs/fw/restart', payload: '{"reason":', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'JSON that is not an object',
      { method: 'POST', url: '/v1/stop', payload: '[1,2]', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a JSON string',
      { method: 'POST', url: '/v1/stop', payload: '"stop"', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an unknown field',
      { method: 'POST', url: '/v1/nfs/fw/restart', payload: '{"force":true}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a field of the wrong type',
      { method: 'POST', url: '/v1/nfs/fw/restart', payload: '{"reason":7}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an empty JSON body',
      { method: 'POST', url: '/v1/stop', payload: '', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a prototype-polluting body',
      { method: 'POST', url: '/v1/stop', payload: '{"__proto__":{"x":1}}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a body over the limit',
      {
        method: 'POST',
        url: '/v1/stop',
        payload: `{"reason":"${'x'.repeat(2 << 20)}"}`,
        type: 'application/json',
      },
      413,
      'NFV_ERR_CONTROL_TOO_LARGE',
    ],
    [
      'an unsupported content type',
      { method: 'POST', url: '/v1/stop', payload: 'stop', type: 'text/plain' },
      415,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an unknown query parameter',
      { method: 'GET', url: '/v1/status?verbose=1' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    ['a bad stream count', { method: 'GET', url: '/v1/stream?count=0' }, 400, 'NFV_ERR_CONTROL_BAD_REQUEST'],
    [
      'a non-numeric stream count',
      { method: 'GET', url: '/v1/stream?count=1e2' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an NF name outside the grammar',
      { method: 'GET', url: '/v1/nfs/a%20b' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an over-long NF name',
      { method: 'GET', url: `/v1/nfs/${'n'.repeat(65)}` },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    ['a bad percent-encoding', { method: 'GET', url: '/v1/nfs/%zz' }, 400, 'NFV_ERR_CONTROL_BAD_REQUEST'],
    [
      'malformed JSON to a deployment',
      { method: 'POST', url: '/v1/deployments', payload: '{"deployment":', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a deployment without its text',
      { method: 'POST', url: '/v1/deployments', payload: '{}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'an unknown field beside a deployment',
      {
        method: 'POST',
        url: '/v1/deployments',
        payload: '{"deployment":"x","force":true}',
        type: 'application/json',
      },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a dry run that is not true or false',
      {
        method: 'POST',
        url: '/v1/deployments?dryRun=yes',
        payload: '{"deployment":"x"}',
        type: 'application/json',
      },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a deployment over the body limit',
      {
        method: 'POST',
        url: '/v1/deployments',
        payload: `{"deployment":"${'x'.repeat(2 << 20)}"}`,
        type: 'application/json',
      },
      413,
      'NFV_ERR_CONTROL_TOO_LARGE',
    ],
    [
      'a replica count of zero',
      { method: 'POST', url: '/v1/nfs/fw/scale', payload: '{"replicas":0}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a replica count as text',
      { method: 'POST', url: '/v1/nfs/fw/scale', payload: '{"replicas":"2"}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a fractional replica count',
      { method: 'POST', url: '/v1/nfs/fw/scale', payload: '{"replicas":1.5}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'malformed JSON to a scale',
      { method: 'POST', url: '/v1/nfs/fw/scale', payload: '{"replicas":', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a capture of too many packets',
      {
        method: 'POST',
        url: '/v1/chains/main/capture',
        payload: '{"hop":0,"packets":1000000}',
        type: 'application/json',
      },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a capture without a hop',
      { method: 'POST', url: '/v1/chains/main/capture', payload: '{"packets":10}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a drain with an unknown field',
      { method: 'POST', url: '/v1/nfs/fw/drain', payload: '{"now":true}', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a snapshot with a query',
      { method: 'GET', url: '/v1/nfs/fw/snapshot?replica=1' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
    [
      'a wrong method',
      { method: 'POST', url: '/v1/status', payload: '{}', type: 'application/json' },
      404,
      'NFV_ERR_CONTROL_NOT_FOUND',
    ],
    [
      'malformed JSON to an unknown route',
      { method: 'POST', url: '/v1/nope', payload: '{', type: 'application/json' },
      400,
      'NFV_ERR_CONTROL_BAD_REQUEST',
    ],
  ];
  for (const [what, request, status, expected] of cases) {
    it(what, async () => {
      const h = await harness();
      const response = await h.app.inject({
        method: request.method,
        url: request.url,
        headers: { ...auth(h.token.admin), ...(request.type ? { 'content-type': request.type } : {}) },
        ...(request.payload !== undefined ? { payload: request.payload } : {}),
      });
      assert.equal(response.statusCode, status, response.body.slice(0, 300));
      assert.equal(code(response), expected);
      assert.equal(h.host.stops, 0, 'a refused request changed nothing');
      assert.deepEqual(h.host.restarted, []);
      assert.deepEqual(h.host.applied, []);
      assert.deepEqual([...h.host.drained, ...h.host.stopped], []);
      await h.app.close();
    });
  }

  it('a failing host is a 500 with NFV_ERR_CONTROL_INTERNAL and no stack in the reply', async () => {
    const host = new FakeHost();
    host.status = () => {
      throw new Error('boom at /secret/path');
    };
    const h = await harness({}, host);
    const response = await h.app.inject({ method: 'GET', url: '/v1/status', headers: auth(h.token.viewer) });
    assert.equal(response.statusCode, 500);
    assert.equal(code(response), 'NFV_ERR_CONTROL_INTERNAL');
    assert.doesNotMatch(response.body, /secret/);
    await h.app.close();
  });
});

describe('control server: /metrics', () => {
  it('exposes the status in the Prometheus format, units in HELP', async () => {
    const h = await harness();
    const response = await h.app.inject({ method: 'GET', url: '/metrics', headers: auth(h.token.viewer) });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const { samples, help, type } = parseExposition(response.body);
    const expected: [string, number][] = [
      ['nfvisor_packets_received_total', 1000],
      ['nfvisor_packets_sent_total', 900],
      ['nfvisor_packets_lost_total', 20],
      ['nfvisor_packets_dropped_total{nf="",reason="nf_down"}', 5],
      ['nfvisor_packets_dropped_total{nf="fw",reason="denied"}', 75],
      ['nfvisor_port_packets_sent_total{port="out"}', 900],
      ['nfvisor_instance_packets_total{nf="fw"}', 1000],
      ['nfvisor_instance_restarts_total{nf="fw"}', 2],
      ['nfvisor_instance_quarantined{nf="bad"}', 1],
      ['nfvisor_instance_quarantined{nf="fw"}', 0],
      ['nfvisor_instance_replicas{nf="mon"}', 2],
      ['nfvisor_nf_accepted_total{image="firewall",nf="fw"}', 925],
      ['nfvisor_nf_rule_hits_total{image="firewall",nf="fw"}', 75],
      ['nfvisor_nf_packets_total{image="flow-monitor",nf="mon"}', 925],
      ['nfvisor_nf_flows_active{image="flow-monitor",nf="mon"}', 12],
      ['nfvisor_pool_slots', 2048],
      ['nfvisor_pool_free_slots', 2000],
      ['nfvisor_queue_limit_packets', 1536],
      ['nfvisor_latency_p50_seconds', 16e-6],
      ['nfvisor_latency_p99_seconds', 64e-6],
      ['nfvisor_latency_max_seconds', 181e-6],
      ['nfvisor_running', 1],
      ['nfvisor_uptime_seconds', 12.5],
    ];
    for (const [key, value] of expected) assert.equal(samples.get(key), value, key);
    // The dropped series add up to the host's dropped count.
    let dropped = 0;
    for (const [key, value] of samples)
      if (key.startsWith('nfvisor_packets_dropped_total{')) dropped += value;
    assert.equal(dropped, 80);
    assert.match(help.get('nfvisor_nf_accepted_total') ?? '', /IP packets accepted \(packets\)/);
    assert.match(help.get('nfvisor_nf_flows_active') ?? '', /\(flows\)/);
    assert.equal(type.get('nfvisor_nf_accepted_total'), 'counter');
    assert.equal(type.get('nfvisor_nf_flows_active'), 'gauge');
    assert.equal(type.get('nfvisor_pool_free_slots'), 'gauge');
    await h.app.close();
  });
});

describe('control server: /v1/stream', () => {
  it('sends a rates message per interval, computed from status differences', async () => {
    let clock = 0;
    const h = await harness({ now: () => (clock += 500) }, new FakeHost(100));
    const response = await h.app.inject({
      method: 'GET',
      url: '/v1/stream?count=3',
      headers: auth(h.token.viewer),
    });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/event-stream/);
    const events = response.body
      .split('\n\n')
      .filter((block) => block.startsWith('event: rates'))
      .map((block) => JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as Rates);
    assert.equal(events.length, 3);
    for (const rates of events) {
      assert.equal(rates.interval, 0.5);
      assert.equal(rates.received, 200, '100 packets per half second');
      assert.equal(rates.ports.out, 200);
      assert.equal(rates.nfs.find((nf) => nf.name === 'fw')?.pps, 200);
      assert.equal(rates.dropped, 0);
    }
    await h.app.close();
  });

  it('serves a bounded number of streams at once, and frees a slot when a client leaves', async () => {
    const tokens = TokenStore.inMemory();
    const { token } = await tokens.issue('viewer');
    const server = await startControlServer(new FakeHost(), {
      listen: '127.0.0.1:0',
      tokens,
      counterSpecs: SPECS,
      maxStreams: 1,
      streamIntervalMs: 10,
    });
    const url = new URL('/v1/stream', server.address);
    const open = (): Promise<{ status: number; body: Promise<string>; destroy(): void }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(url, { headers: auth(token) }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          const body = new Promise<string>((done) => {
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => done(text));
            res.on('close', () => done(text));
          });
          // Wait for the first message (or the error reply) before handing it over.
          res.once('data', () =>
            resolve({ status: res.statusCode ?? 0, body, destroy: () => req.destroy() }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    const first = await open();
    assert.equal(first.status, 200);
    const second = await open();
    assert.equal(second.status, 503);
    assert.equal((JSON.parse(await second.body) as { code: string }).code, 'NFV_ERR_CONTROL_BUSY');
    first.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const third = await open();
    assert.equal(third.status, 200, 'the slot came back');
    // close() ends the open stream rather than waiting for it.
    await server.close();
    assert.match(await third.body, /^retry: \d+/);
  });
});

describe('control server: listening', () => {
  it('parses listen addresses strictly, loopback by default', async () => {
    assert.deepEqual(parseListen('127.0.0.1:9180'), { host: '127.0.0.1', port: 9180 });
    assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseListen('/run/nfvisor.sock'), { path: '/run/nfvisor.sock' });
    assert.deepEqual(parseListen('unix:ctl.sock'), { path: 'ctl.sock' });
    for (const bad of ['9180', 'localhost', 'a:99999', 'a:-1', 'a: 1', '::1:80'])
      assert.throws(
        () => parseListen(bad),
        (e: unknown) => (e as { code?: string }).code === 'NFV_ERR_BAD_ARGUMENT',
        bad,
      );
    const server = await startControlServer(new FakeHost(), {
      listen: '127.0.0.1:0',
      tokens: TokenStore.inMemory(),
      counterSpecs: SPECS,
    });
    assert.match(server.address, /^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(new URL('/v1/status', server.address));
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { code: string }).code, 'NFV_ERR_CONTROL_UNAUTHORIZED');
    await server.close();
  });
});
