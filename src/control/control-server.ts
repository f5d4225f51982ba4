/**
 * The control server: one HTTP API to watch and steer a running host.
 *
 *   GET  /v1/status             viewer    the whole live status
 *   GET  /v1/nfs                viewer    every NF instance: counters, drops, restarts, quarantined
 *   GET  /v1/nfs/:name          viewer    one NF instance
 *   POST /v1/nfs/:name/restart  operator  restart an NF instance (from its last snapshot)
 *   POST /v1/nfs/:name/scale    operator  change its replica count (a live reconfiguration)
 *   POST /v1/nfs/:name/drain    operator  take it out of service once what it holds is through
 *   POST /v1/nfs/:name/stop     operator  take it out of service now (what it holds is lost)
 *   GET  /v1/nfs/:name/snapshot operator  its state as JSON, secret-named fields redacted
 *   POST /v1/deployments        operator  apply a deployment file live (`?dryRun=true`: the diff)
 *   POST /v1/chains/:name/capture operator  N packets crossing one hop of a chain, as a pcap file
 *   GET  /v1/chains             viewer    chains and the NFs they go through
 *   GET  /v1/ports              viewer    packets per port
 *   GET  /v1/stream             viewer    Server-Sent Events: `rates` once per interval
 *   GET  /metrics               viewer    Prometheus text exposition
 *   POST /v1/stop               admin     stop reading the inputs, drain, stop
 *   GET  /dashboard             public    the web dashboard's static page (./dashboard/)
 *   GET  /dashboard/:file       public    its script, uPlot and stylesheet
 *
 * (The roles live in one table, ./route-roles.ts; this list only mirrors it. The two public
 * routes serve fixed files with no data in them; the page sends its token on every data call.)
 *
 * Safety. It listens on loopback unless told otherwise. Every request needs a bearer token; the
 * check runs in `onRequest`, before a body is read, so an unauthenticated client gets 401 whatever
 * it sends, and an unknown route answers 404 only to a valid token. Every route has closed TypeBox
 * schemas for its params, query, body and replies (unknown fields are refused, not stripped);
 * bodies are limited in size; every client mistake is a 4xx with a registry code
 * (`{ code, message, detail }`), never a 500.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Static } from '../deploy/typebox.js';
import {
  fastify,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { type ErrorCode, NfvError, isNfvError } from '../errors.js';
import { builtinCounterSpecs, renderMetrics, type CounterSpecs } from './metrics.js';
import { ratesBetween } from './rates.js';
import { registerDashboard } from './dashboard/routes.js';
import { isPublicRoute, minimumRole, type RouteKey } from './route-roles.js';
import type { HostPlan } from '../host/host.js';
import type { ApplyResult, CapturedPacket } from '../host/reconfigure.js';
import { pcapFile } from './capture-file.js';
import { snapshotJson } from './snapshot-json.js';
import {
  ActionBody,
  ApplyReply,
  CaptureBody,
  ChainParams,
  DeploymentBody,
  DryRunQuery,
  ScaleBody,
  SnapshotReply,
  ChainList,
  HostStatus,
  NfList,
  NfParams,
  NfStatus,
  NoQuery,
  PortList,
  RestartReply,
  StopReply,
  StreamQuery,
  Text,
  replies,
} from './schemas.js';
import { type Role, type TokenInfo, type TokenStore, roleAtLeast } from './token-store.js';

/** What the control server needs of a host; `Host` (src/host/host.ts) satisfies it. */
export interface ControlledHost {
  status(): HostStatus;
  /** False for an unknown or quarantined NF, or a host that is stopping. */
  restartInstance(name: string): boolean;
  /** Stop reading the inputs; the host drains what is in flight and its `run()` returns. */
  stop(): void;
  /** The plan the host runs now (scaling changes one NF's replicas in it). */
  readonly plan: HostPlan;
  /** Live reconfiguration (src/host/reconfigure.ts). */
  apply(plan: HostPlan, options?: { dryRun?: boolean }): Promise<ApplyResult>;
  drainInstance(name: string): Promise<ApplyResult>;
  stopInstance(name: string): Promise<ApplyResult>;
  /** Last state snapshot of each replica of an NF, or null for an unknown name. */
  snapshotsOf(name: string): unknown[] | null;
  captureHop(chain: string, hop: number, count: number, timeoutMs: number): Promise<CapturedPacket[]>;
}

export interface ControlServerOptions {
  /** `host:port` (`[v6]:port`) or a Unix socket path; default 127.0.0.1:9180. */
  listen?: string;
  tokens: TokenStore;
  /** Largest request body in bytes; default 1 MiB. */
  bodyLimit?: number;
  /** Live streams served at once; default 8. */
  maxStreams?: number;
  /** Time between two stream messages; default 1000 ms. */
  streamIntervalMs?: number;
  /** Counter declarations by image, for units in /metrics; default: the built-in images'. */
  counterSpecs?: CounterSpecs;
  /** Log requests (pino, to stdout); default off. */
  logger?: boolean;
  /** Clock in ms for rates; default performance.now. */
  now?: () => number;
  /** Serve the web dashboard at /dashboard; default true. */
  dashboard?: boolean;
  /**
   * Turns a deployment file's text into a plan: parse, check, resolve and verify its images
   * (`nfvisor run` passes src/cli/deployment-plan.ts). Without it POST /v1/deployments is a conflict.
   */
  deploy?: (text: string, file: string) => Promise<HostPlan>;
}

export interface ControlServer {
  /** `http://127.0.0.1:9180`, or `unix:/path/to.sock`. */
  address: string;
  close(): Promise<void>;
}

export const DEFAULT_LISTEN = '127.0.0.1:9180';
const DEFAULT_BODY_LIMIT = 1 << 20;

/** A registered route and its minimum role (the census the auth test walks). */
export interface RegisteredRoute {
  method: string;
  url: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token of the caller (set by the auth hook). */
    caller: TokenInfo | null;
  }
  interface FastifyContextConfig {
    minRole?: Role;
    /** A static route of the dashboard (route-roles.ts PUBLIC_ROUTES): no token needed. */
    public?: boolean;
  }
}

/** Status codes of the control API's error codes. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  NFV_ERR_BAD_ARGUMENT: 400,
  NFV_ERR_DEPLOY_INVALID: 400,
  NFV_ERR_BAD_ADDRESS: 400,
  NFV_ERR_RECONFIGURE_REFUSED: 409,
  NFV_ERR_RECONFIGURE_FAILED: 422,
  NFV_ERR_IO: 422,
  NFV_ERR_CONTROL_BAD_REQUEST: 400,
  NFV_ERR_CONTROL_UNAUTHORIZED: 401,
  NFV_ERR_CONTROL_FORBIDDEN: 403,
  NFV_ERR_CONTROL_NOT_FOUND: 404,
  NFV_ERR_NF_NOT_FOUND: 404,
  NFV_ERR_CONTROL_CONFLICT: 409,
  NFV_ERR_CONTROL_TOO_LARGE: 413,
  NFV_ERR_CONTROL_BUSY: 503,
};

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const match = /^Bearer +(\S+)$/i.exec(header);
  return match ? match[1] : null;
}

/**
 * The fastify app, not listening: tests drive it with `app.inject()`. `routes` fills as routes
 * register; a route without a row in the role table makes registration throw.
 */
export async function buildControlApp(
  host: ControlledHost,
  options: ControlServerOptions,
): Promise<{ app: FastifyInstance; routes: RegisteredRoute[]; publicRoutes: string[] }> {
  const tokens = options.tokens;
  const maxStreams = options.maxStreams ?? 8;
  const intervalMs = options.streamIntervalMs ?? 1000;
  const now = options.now ?? (() => performance.now());
  const counterSpecs = options.counterSpecs ?? (await builtinCounterSpecs());
  const routes: RegisteredRoute[] = [];
  const publicRoutes: string[] = [];
  /** Closers of the open streams. */
  const streams = new Set<() => void>();

  const app = fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    exposeHeadRoutes: false,
    // Closed schemas refuse unknown fields (fastify's default strips them silently).
    // and types are not coerced: `{"reason": 7}` is refused, not turned into "7".
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // A URL that does not decode is a client error with a code like any other.
    frameworkErrors: (error, _request, reply) => {
      const { status, body } = errorReply(error);
      void (reply as FastifyReply).code(status).send(body);
    },
  });
  app.decorateRequest('caller', null);
  // Bodies are JSON or nothing: text/plain gets 415 like any other type.
  app.removeContentTypeParser('text/plain');

  // The auth rule of every route, from the one table; a route without one is a bug.
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      const url = route.url ?? route.path;
      if (isPublicRoute(method, url)) {
        route.config = { ...route.config, public: true };
        publicRoutes.push(`${method} ${url}`);
        continue;
      }
      const role = minimumRole(method, url);
      if (role === undefined)
        throw new NfvError(
          'NFV_ERR_CONTROL_ROUTE_UNGUARDED',
          `${method} ${url} has no minimum role in src/control/route-roles.ts`,
          { method, url },
        );
      route.config = { ...route.config, minRole: role };
      routes.push({ method, url, role });
    }
  });

  // Before the body is read: who is calling, and may they?
  app.addHook('onRequest', (request, _reply, done) => {
    done(authorize(request) ?? undefined);
  });

  function authorize(request: FastifyRequest): NfvError | null {
    if (request.routeOptions.config.public === true && !request.is404) return null;
    const token = bearer(request);
    const caller = token === null ? null : tokens.verify(token);
    if (caller === null)
      return new NfvError(
        'NFV_ERR_CONTROL_UNAUTHORIZED',
        token === null ? 'a bearer token is required' : 'the bearer token is not valid',
      );
    request.caller = caller;
    // An unknown route needs any valid token before it says 404; a known one without a role
    // (impossible: onRoute refuses it) would need admin.
    const minimum = request.routeOptions.config.minRole ?? (request.is404 ? 'viewer' : 'admin');
    if (!roleAtLeast(caller.role, minimum))
      return new NfvError('NFV_ERR_CONTROL_FORBIDDEN', `this needs the ${minimum} role`, {
        required: minimum,
        role: caller.role,
      });
    return null;
  }

  // An action's body is optional: no body at all is the empty object (but `{}` is checked).
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.body === undefined && request.method === 'POST') request.body = {};
    done();
  });

  app.setNotFoundHandler((request) => {
    throw new NfvError(
      'NFV_ERR_CONTROL_NOT_FOUND',
      `no route ${request.method} ${request.url.slice(0, 200)}`,
      {
        method: request.method,
      },
    );
  });

  app.setErrorHandler((error: FastifyError | NfvError, request, reply) => {
    const { status, body } = errorReply(error);
    if (status >= 500) request.log.error({ err: error }, 'control request failed');
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="nfvisor"');
    return reply.code(status).send(body);
  });

  const route = <K extends RouteKey>(key: K): { method: string; url: string } => {
    const [method, url] = key.split(' ');
    return { method, url };
  };

  app.route({
    ...route('GET /v1/status'),
    schema: { querystring: NoQuery, response: replies(HostStatus) },
    handler: () => host.status(),
  });

  app.route({
    ...route('GET /v1/nfs'),
    schema: { querystring: NoQuery, response: replies(NfList) },
    handler: () => ({ nfs: host.status().nfs }),
  });

  app.route<{ Params: Static<typeof NfParams> }>({
    ...route('GET /v1/nfs/:name'),
    schema: { params: NfParams, querystring: NoQuery, response: replies(NfStatus) },
    handler: (request) => findNf(host.status(), request.params.name),
  });

  app.route<{ Params: Static<typeof NfParams>; Body: Static<typeof ActionBody> | undefined }>({
    ...route('POST /v1/nfs/:name/restart'),
    schema: {
      params: NfParams,
      querystring: NoQuery,
      body: ActionBody,
      response: replies(RestartReply, 202),
    },
    handler: async (request, reply) => {
      const name = request.params.name;
      const nf = findNf(host.status(), name);
      if (nf.quarantined)
        throw new NfvError('NFV_ERR_CONTROL_CONFLICT', `${name} is quarantined and is not restarted`, {
          nf: name,
          reason: 'quarantined',
        });
      if (!host.restartInstance(name))
        throw new NfvError('NFV_ERR_CONTROL_CONFLICT', `the host refused to restart ${name} (stopping?)`, {
          nf: name,
          reason: 'refused',
        });
      request.log.info({ nf: name, by: request.caller?.id, reason: request.body?.reason }, 'restart');
      return reply.code(202).send({ nf: name, restarting: true, restartsBefore: nf.restarts });
    },
  });

  app.route<{ Params: Static<typeof NfParams>; Body: Static<typeof ScaleBody> }>({
    ...route('POST /v1/nfs/:name/scale'),
    schema: { params: NfParams, querystring: NoQuery, body: ScaleBody, response: replies(ApplyReply) },
    handler: async (request) => {
      const name = request.params.name;
      findNf(host.status(), name);
      const current = host.plan;
      const nf = current.nfs[name];
      const plan: HostPlan = {
        ...current,
        nfs: { ...current.nfs, [name]: { ...nf, replicas: request.body.replicas } },
      };
      request.log.info({ nf: name, replicas: request.body.replicas, by: request.caller?.id }, 'scale');
      return host.apply(plan);
    },
  });

  for (const action of ['drain', 'stop'] as const) {
    app.route<{ Params: Static<typeof NfParams>; Body: Static<typeof ActionBody> | undefined }>({
      ...route(`POST /v1/nfs/:name/${action}`),
      schema: { params: NfParams, querystring: NoQuery, body: ActionBody, response: replies(ApplyReply) },
      handler: async (request) => {
        const name = request.params.name;
        findNf(host.status(), name);
        request.log.info({ nf: name, by: request.caller?.id, reason: request.body?.reason }, action);
        return action === 'drain' ? host.drainInstance(name) : host.stopInstance(name);
      },
    });
  }

  app.route<{ Params: Static<typeof NfParams> }>({
    ...route('GET /v1/nfs/:name/snapshot'),
    schema: { params: NfParams, querystring: NoQuery, response: replies(SnapshotReply) },
    handler: (request) => {
      const name = request.params.name;
      const snapshots = host.snapshotsOf(name);
      if (snapshots === null)
        throw new NfvError('NFV_ERR_NF_NOT_FOUND', `no NF instance ${name}`, { field: 'name', nf: name });
      return {
        nf: name,
        replicas: snapshots.map((state, replica) => ({ replica, state: snapshotJson(state) })),
      };
    },
  });

  app.route<{ Querystring: Static<typeof DryRunQuery>; Body: Static<typeof DeploymentBody> }>({
    ...route('POST /v1/deployments'),
    schema: { querystring: DryRunQuery, body: DeploymentBody, response: replies(ApplyReply) },
    handler: async (request) => {
      const deploy = options.deploy;
      if (deploy === undefined)
        throw new NfvError('NFV_ERR_CONTROL_CONFLICT', 'this host was not started from a deployment file', {
          reason: 'no-deployer',
        });
      const dryRun = request.query.dryRun === 'true';
      const plan = await deploy(request.body.deployment, request.body.file ?? 'api');
      request.log.info({ by: request.caller?.id, dryRun }, 'apply');
      return host.apply(plan, { dryRun });
    },
  });

  app.route<{ Params: Static<typeof ChainParams>; Body: Static<typeof CaptureBody> }>({
    ...route('POST /v1/chains/:name/capture'),
    schema: { params: ChainParams, querystring: NoQuery, body: CaptureBody, response: replies(Text) },
    handler: async (request, reply) => {
      const { hop, packets, timeoutMs } = request.body;
      const captured = await host.captureHop(request.params.name, hop, packets, timeoutMs ?? 5000);
      return reply
        .type('application/vnd.tcpdump.pcap')
        .header('content-disposition', `attachment; filename="${request.params.name}-hop${hop}.pcap"`)
        .header('x-nfvisor-packets', String(captured.length))
        .send(pcapFile(captured));
    },
  });

  app.route({
    ...route('GET /v1/chains'),
    schema: { querystring: NoQuery, response: replies(ChainList) },
    handler: () => ({ chains: host.status().chains }),
  });

  app.route({
    ...route('GET /v1/ports'),
    schema: { querystring: NoQuery, response: replies(PortList) },
    handler: () => ({
      ports: Object.entries(host.status().ports).map(([name, c]) => ({ name, ...c })),
    }),
  });

  app.route<{ Body: Static<typeof ActionBody> | undefined }>({
    ...route('POST /v1/stop'),
    schema: { querystring: NoQuery, body: ActionBody, response: replies(StopReply, 202) },
    handler: async (request, reply) => {
      request.log.info({ by: request.caller?.id, reason: request.body?.reason }, 'stop');
      host.stop();
      return reply.code(202).send({ stopping: true });
    },
  });

  app.route({
    ...route('GET /metrics'),
    schema: { querystring: NoQuery, response: replies(Text) },
    handler: async (_request, reply) => {
      const { contentType, text } = await renderMetrics(host.status(), counterSpecs);
      return reply.type(contentType).send(text);
    },
  });

  app.route<{ Querystring: Static<typeof StreamQuery> }>({
    ...route('GET /v1/stream'),
    schema: { querystring: StreamQuery, response: replies(Text) },
    handler: (request, reply) => {
      if (streams.size >= maxStreams)
        throw new NfvError('NFV_ERR_CONTROL_BUSY', `${maxStreams} streams are open already`, {
          maxStreams,
        });
      reply.hijack();
      const count = request.query.count;
      openStream(request.raw, reply.raw, count === undefined ? undefined : Number(count));
    },
  });

  function openStream(req: IncomingMessage, res: ServerResponse, count: number | undefined): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${Math.max(1000, intervalMs)}\n\n`);
    let before = host.status();
    let beforeAt = now();
    let sent = 0;
    const timer = setInterval(() => {
      const status = host.status();
      const at = now();
      const rates = ratesBetween(before, status, (at - beforeAt) / 1000);
      before = status;
      beforeAt = at;
      sent++;
      res.write(`event: rates\nid: ${sent}\ndata: ${JSON.stringify(rates)}\n\n`);
      if (count !== undefined && sent >= count) close();
    }, intervalMs);
    const close = (): void => {
      clearInterval(timer);
      if (streams.delete(close)) res.end();
    };
    streams.add(close);
    req.once('close', close);
    res.once('close', close);
  }

  if (options.dashboard !== false) registerDashboard(app);

  app.addHook('preClose', (done) => {
    for (const close of [...streams]) close();
    done();
  });

  return { app, routes, publicRoutes };
}

function findNf(status: HostStatus, name: string): HostStatus['nfs'][number] {
  const nf = status.nfs.find((n) => n.name === name);
  if (nf === undefined)
    throw new NfvError('NFV_ERR_NF_NOT_FOUND', `no NF instance ${name}`, { field: 'name', nf: name });
  return nf;
}

/** The status and `{ code, message, detail }` of any error a request ends in. */
export function errorReply(error: unknown): {
  status: number;
  body: { code: string; message: string; detail: Record<string, unknown> };
} {
  if (isNfvError(error)) {
    const detail = error instanceof NfvError ? { ...error.detail } : {};
    // An image a deployment names that is missing, unsigned or untrusted: the request's fault.
    const image = error.code.startsWith('NFV_ERR_IMAGE_') || error.code === 'NFV_ERR_TRUST_POLICY';
    return {
      status: STATUS[error.code] ?? (image ? 422 : 500),
      body: { code: error.code, message: error.message, detail },
    };
  }
  const e = error as Partial<FastifyError> & { message?: string };
  if (e.validation !== undefined) {
    const first = e.validation[0];
    return {
      status: 400,
      body: {
        code: 'NFV_ERR_CONTROL_BAD_REQUEST',
        message: e.message ?? 'invalid request',
        detail: {
          field: `${e.validationContext ?? 'request'}${first?.instancePath ?? ''}`,
          ...(first?.params ? { rule: first.keyword, params: first.params } : {}),
        },
      },
    };
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code: ErrorCode =
      status === 413
        ? 'NFV_ERR_CONTROL_TOO_LARGE'
        : status === 404
          ? 'NFV_ERR_CONTROL_NOT_FOUND'
          : 'NFV_ERR_CONTROL_BAD_REQUEST';
    return {
      status,
      body: { code, message: e.message ?? 'bad request', detail: e.code ? { cause: e.code } : {} },
    };
  }
  return {
    status: 500,
    body: { code: 'NFV_ERR_CONTROL_INTERNAL', message: 'internal error in the control server', detail: {} },
  };
}

/** Parses `host:port`, `[v6]:port`, or a Unix socket path (anything with a `/`, or `unix:PATH`). */
export function parseListen(listen: string): { host: string; port: number } | { path: string } {
  if (listen.startsWith('unix:')) return { path: listen.slice(5) };
  if (listen.includes('/')) return { path: listen };
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535)
    throw new NfvError('NFV_ERR_BAD_ARGUMENT', `listen address ${listen} is not host:port or a socket path`, {
      field: 'listen',
    });
  return { host: match[1] ?? match[2], port };
}

/**
 * Starts the control server for `host` and returns where it listens; `close()` ends the open
 * streams and stops listening (it does not stop the host).
 *
 * @example
 * const tokens = TokenStore.inMemory();
 * const { token } = await tokens.issue('admin');
 * const server = await startControlServer(host, { tokens });   // http://127.0.0.1:9180
 * const summary = await host.run();
 * await server.close();
 */
export async function startControlServer(
  host: ControlledHost,
  options: ControlServerOptions,
): Promise<ControlServer> {
  const where = parseListen(options.listen ?? DEFAULT_LISTEN);
  const { app } = await buildControlApp(host, options);
  try {
    await app.listen('path' in where ? { path: where.path } : { host: where.host, port: where.port });
  } catch (e) {
    await app.close();
    throw new NfvError(
      'NFV_ERR_IO',
      `the control server cannot listen on ${options.listen ?? DEFAULT_LISTEN}`,
      {
        field: 'listen',
      },
      { cause: e },
    );
  }
  let address: string;
  if ('path' in where) address = `unix:${where.path}`;
  else {
    const info = app.server.address() as AddressInfo;
    address = `http://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`;
  }
  return { address, close: () => app.close() };
}
