/**
 * The one table of who may call what. Every route the control server registers must appear here
 * with its minimum role: the server refuses at startup to register a route that does not
 * (NFV_ERR_CONTROL_ROUTE_UNGUARDED), and a test proves every registered route refuses a missing,
 * garbage and under-privileged token. Keys are `METHOD path` exactly as registered.
 */
import type { Role } from './token-store.js';

export const ROUTE_ROLES = {
  'GET /v1/status': 'viewer',
  'GET /v1/nfs': 'viewer',
  'GET /v1/nfs/:name': 'viewer',
  'POST /v1/nfs/:name/restart': 'operator',
  'POST /v1/nfs/:name/scale': 'operator',
  'POST /v1/nfs/:name/drain': 'operator',
  'POST /v1/nfs/:name/stop': 'operator',
  // State can hold addresses and flows: more than a dashboard viewer needs.
  'GET /v1/nfs/:name/snapshot': 'operator',
  'POST /v1/deployments': 'operator',
  'POST /v1/chains/:name/capture': 'operator',
  'GET /v1/chains': 'viewer',
  'GET /v1/ports': 'viewer',
  'GET /v1/stream': 'viewer',
  'GET /metrics': 'viewer',
  'POST /v1/stop': 'admin',
} as const satisfies Record<string, Role>;

export type RouteKey = keyof typeof ROUTE_ROLES;

/**
 * The only routes that answer without a token: the dashboard's static files (./dashboard/), which
 * hold no data. The page asks for a token and sends it as a bearer header on every data call
 * (`/v1/...`), so what the dashboard shows is guarded exactly as the API is. A route must be in one
 * table or the other; it cannot be in both.
 */
export const PUBLIC_ROUTES = {
  'GET /dashboard': 'the dashboard page (static HTML)',
  'GET /dashboard/:file': "the dashboard's script, uPlot and its stylesheet (a fixed list of files)",
} as const satisfies Record<string, string>;

export type PublicRouteKey = keyof typeof PUBLIC_ROUTES;

/** True when `METHOD path` is a public static route of the dashboard. */
export function isPublicRoute(method: string, url: string): boolean {
  return Object.hasOwn(PUBLIC_ROUTES, `${method.toUpperCase()} ${url}`);
}

/** The minimum role of `METHOD path`, or undefined for a route the table does not know. */
export function minimumRole(method: string, url: string): Role | undefined {
  const key = `${method.toUpperCase()} ${url}`;
  return Object.hasOwn(ROUTE_ROLES, key) ? ROUTE_ROLES[key as RouteKey] : undefined;
}
