/**
 * The dashboard's routes in process: exactly the public table is served without a token, each
 * answer is a fixed file under a strict Content-Security-Policy, nothing else is reachable through
 * them, and with the dashboard off /dashboard is just an unknown route (401 without a token).
 * The page in a browser against a real host is test/system/dashboard.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildControlApp } from '../control-server.js';
import { FakeHost } from '../fake-host.js';
import { PUBLIC_ROUTES, ROUTE_ROLES } from '../route-roles.js';
import { TokenStore } from '../token-store.js';
import { CONTENT_SECURITY_POLICY, DASHBOARD_FILES } from './routes.js';

const SPECS = new Map();

async function app(dashboard = true): ReturnType<typeof buildControlApp> {
  const tokens = TokenStore.inMemory();
  const built = await buildControlApp(new FakeHost(), { tokens, counterSpecs: SPECS, dashboard });
  await built.app.ready();
  return built;
}

describe('dashboard routes', () => {
  it('registers exactly the public table, which shares no route with the role table', async () => {
    const { app: a, publicRoutes, routes } = await app();
    assert.deepEqual(publicRoutes.sort(), Object.keys(PUBLIC_ROUTES).sort());
    for (const key of Object.keys(PUBLIC_ROUTES)) assert.equal(Object.hasOwn(ROUTE_ROLES, key), false, key);
    assert.equal(
      routes.some((r) => r.url.startsWith('/dashboard')),
      false,
    );
    await a.close();
  });

  it('serves the page and its files without a token, under a strict CSP', async () => {
    const { app: a } = await app();
    const page = await a.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(page.statusCode, 200, page.body);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.equal(page.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.match(page.body, /<script type="module" src="dashboard\/dashboard.js"><\/script>/);
    assert.doesNotMatch(page.body, /fw|firewall/, 'the page holds no host data');
    const withToken = await a.inject({ method: 'GET', url: '/dashboard?token=abc' });
    assert.equal(withToken.statusCode, 200);
    for (const file of DASHBOARD_FILES) {
      const reply = await a.inject({ method: 'GET', url: `/dashboard/${file}` });
      assert.equal(reply.statusCode, 200, `${file}: ${reply.body.slice(0, 200)}`);
      assert.ok(reply.body.length > 100, file);
      assert.match(
        String(reply.headers['content-type']),
        file.endsWith('.css') ? /^text\/css/ : /^text\/javascript/,
      );
      assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    }
    const client = await a.inject({ method: 'GET', url: '/dashboard/dashboard.js' });
    assert.match(client.body, /v1\/stream/);
    assert.match(client.body, /authorization/);
    await a.close();
  });

  it('reaches nothing but its files, and the data stays behind the token', async () => {
    const { app: a } = await app();
    for (const url of ['/dashboard/routes.js', '/dashboard/client.js', '/dashboard/package.json']) {
      const reply = await a.inject({ method: 'GET', url });
      assert.equal(reply.statusCode, 404, url);
      assert.equal(reply.json<{ code: string }>().code, 'NFV_ERR_CONTROL_NOT_FOUND', url);
    }
    for (const url of [
      '/dashboard/..%2Fcontrol-server.js',
      '/dashboard/%2e%2e',
      '/dashboard?evil=1',
      '/dashboard/',
    ]) {
      const reply = await a.inject({ method: 'GET', url });
      assert.ok([400, 401, 404].includes(reply.statusCode), `${url}: ${reply.statusCode}`);
    }
    for (const url of ['/dashboard/x/y', '/v1/status', '/v1/stream']) {
      const reply = await a.inject({ method: 'GET', url });
      assert.equal(reply.statusCode, 401, url);
    }
    const post = await a.inject({ method: 'POST', url: '/dashboard', payload: {} });
    assert.equal(post.statusCode, 401, 'only GET is public');
    await a.close();
  });

  it('with the dashboard off, /dashboard is an unknown route', async () => {
    const { app: a, publicRoutes } = await app(false);
    assert.deepEqual(publicRoutes, []);
    const reply = await a.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(reply.statusCode, 401);
    await a.close();
  });
});
