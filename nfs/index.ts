/**
 * The built-in NFs, by name: what `builtin/<name>` images are built from. An NF is listed here and
 * nowhere else; the host never imports this file (it loads images), the image builder and docs do.
 *
 * @example
 * const firewall = builtinNf('firewall'); // undefined for an unknown name
 */
import type { NfDefinition } from '../src/sdk/index.js';
import firewall from './firewall/index.js';
import flowMonitor from './flow-monitor/index.js';
import ids from './ids/index.js';
import loadBalancer from './load-balancer/index.js';
import nat from './nat/index.js';
import rateLimiter from './rate-limiter/index.js';
import router from './router/index.js';
import wireguard from './wireguard/index.js';

// Each NF has its own Config type; the registry holds them all.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const builtinNfs: Readonly<Record<string, NfDefinition<any>>> = Object.freeze({
  [firewall.name]: firewall,
  [nat.name]: nat,
  [loadBalancer.name]: loadBalancer,
  [rateLimiter.name]: rateLimiter,
  [flowMonitor.name]: flowMonitor,
  [router.name]: router,
  [wireguard.name]: wireguard,
  [ids.name]: ids,
});

/** The built-in NF called `name`, or undefined. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function builtinNf(name: string): NfDefinition<any> | undefined {
  return Object.hasOwn(builtinNfs, name) ? builtinNfs[name] : undefined;
}
