export {
  buildControlApp,
  startControlServer,
  parseListen,
  DEFAULT_LISTEN,
  type ControlledHost,
  type ControlServer,
  type ControlServerOptions,
  type RegisteredRoute,
} from './control-server.js';
export { ROUTE_ROLES, minimumRole, type RouteKey } from './route-roles.js';
export { TokenStore, ROLES, roleAtLeast, type Role, type TokenInfo } from './token-store.js';
export { renderMetrics, builtinCounterSpecs, type CounterSpecs } from './metrics.js';
export { ratesBetween, type Rates } from './rates.js';
export type { HostStatus } from './schemas.js';
export { ControlClient, DEFAULT_CONTROL_URL } from './control-client.js';
