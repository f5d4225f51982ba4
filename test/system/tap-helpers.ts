/**
 * Shared by the system tests of TAP ports: the NF their chains run and the wait for a device the
 * host creates.
 */
import { builtinModule, type HostSummary, type NfPlan } from '../../src/host/host.js';
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

/**
 * Waits until the host whose run is `running` has created every device of `devices` (60 s at most
 * each); a run that ends first ends the wait with its error.
 */
export async function waitForDevices(
  running: Promise<HostSummary>,
  devices: readonly string[],
): Promise<void> {
  const ended = running.then(
    () => Promise.reject(new Error('the host stopped before opening its ports')),
    (error: unknown) => Promise.reject(error as Error),
  );
  ended.catch(() => undefined); // reported by the race below, or by the test's `after()`
  for (const dev of devices) await Promise.race([waitForDevice(dev, 60_000), ended]);
}
