/**
 * The dashboard's routes on the control server: the page and a fixed list of static files, all
 * public (route-roles.ts PUBLIC_ROUTES) because none holds data. The page reads its token from the
 * URL fragment (`/dashboard#token=…`, never sent to the server), `?token=`, or a form, keeps it in
 * sessionStorage, and sends it as a bearer header on every `/v1/...` call, the live stream
 * included (read with fetch(), since EventSource cannot set headers).
 *
 * The files are found next to this module (the compiled ./client.js) and in the uplot package, so
 * the page works from any build directory. Every answer carries a strict Content-Security-Policy:
 * scripts from this origin only, connections to this origin only, no framing, no referrer.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '../../deploy/typebox.js';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NfvError } from '../../errors.js';
import { Text, replies } from '../schemas.js';
import type { PublicRouteKey } from '../route-roles.js';
import { dashboardPage } from './page.js';

const require = createRequire(import.meta.url);

/** The files under /dashboard/: name → where it is and what it is. */
const FILES = {
  'dashboard.js': {
    path: () => fileURLToPath(new URL('./client.js', import.meta.url)),
    type: 'text/javascript; charset=utf-8',
  },
  'uPlot.iife.min.js': {
    path: () => require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'uPlot.min.css': {
    path: () => require.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
} as const;
type FileName = keyof typeof FILES;

export const DASHBOARD_FILES = Object.keys(FILES) as FileName[];

const PageQuery = Type.Object(
  // The page reads a token from ?token= itself; the server ignores it.
  { token: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const FileParams = Type.Object(
  { file: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' }) },
  { additionalProperties: false },
);
const NoQuery = Type.Object({}, { additionalProperties: false });

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  // uPlot and the page set element styles; no script runs from a style.
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function secure(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache');
}

/** Registers GET /dashboard and GET /dashboard/:file on the control app. */
export function registerDashboard(app: FastifyInstance): void {
  const cache = new Map<FileName, Buffer>();
  const route = (key: PublicRouteKey): { method: string; url: string } => {
    const [method, url] = key.split(' ');
    return { method, url };
  };

  app.route<{ Querystring: Static<typeof PageQuery> }>({
    ...route('GET /dashboard'),
    schema: { querystring: PageQuery, response: replies(Text) },
    handler: (_request, reply) => secure(reply, 'text/html; charset=utf-8').send(dashboardPage()),
  });

  app.route<{ Params: Static<typeof FileParams> }>({
    ...route('GET /dashboard/:file'),
    schema: { params: FileParams, querystring: NoQuery, response: replies(Text) },
    handler: async (request, reply) => {
      const name = request.params.file;
      if (!Object.hasOwn(FILES, name))
        throw new NfvError('NFV_ERR_CONTROL_NOT_FOUND', `no dashboard file ${name}`, { field: 'file' });
      const file = FILES[name as FileName];
      let body = cache.get(name as FileName);
      if (body === undefined) {
        body = await readFile(file.path());
        cache.set(name as FileName, body);
      }
      return secure(reply, file.type).send(body);
    },
  });
}
