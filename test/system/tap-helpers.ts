/**
 * Shared by the system tests of TAP ports: the NF their chains run and the wait for a device the
 * host creates.
 */
import { builtinModule, type NfPlan } from '../../src/host/host.js';
import { run } from './netns.js';

/**
 * An accept-all firewall on the host's thread (`inline`): these tests are about the ports, and on
 * a 2-core box shared with other jobs isolated guests' wake-ups add seconds of latency.
 */
export function inlineFirewall(): NfPlan {
  return {
    module: builtinModule('firewall'),
    config: { default: 'accept' },
    vnic: 'direct',
    placement: 'inline',
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed',
  };
}

/** Resolves once `ip link show dev` finds the device in the root namespace (the host created it). */
export async function waitForDevice(dev: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await run('ip', ['link', 'show', 'dev', dev], 2_000).then(
      () => true,
      () => false,
    );
    if (found) return;
    if (Date.now() > deadline) throw new Error(`device ${dev} did not appear within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
