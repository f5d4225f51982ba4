import { builtinModule, type NfPlan } from '../../src/host/host.js';

/** The test NF that fails, stalls or dawdles on purpose (test/integration/nfs/misbehaving.ts). */
export const MISBEHAVING = new URL('../integration/nfs/misbehaving.js', import.meta.url).href;

/**
 * The plan of built-in NF `name` as most host tests run it: a `direct` vNIC in an isolated guest,
 * one replica, 64 MiB of heap, fail-closed; `overrides` change any of that.
 * @example nfs: { fw: builtinNfPlan('firewall', { default: 'accept' }, { placement: 'inline' }) }
 */
export function builtinNfPlan(name: string, config: unknown, overrides: Partial<NfPlan> = {}): NfPlan {
  return moduleNfPlan(builtinModule(name), config, overrides);
}

/** The same for the NF module at `module` (a file URL), e.g. MISBEHAVING. */
export function moduleNfPlan(module: string, config: unknown, overrides: Partial<NfPlan> = {}): NfPlan {
  return {
    module,
    config,
    vnic: 'direct',
    placement: 'isolated',
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed',
    ...overrides,
  };
}
