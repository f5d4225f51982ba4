import { builtinModule, type NfPlan } from '../../src/host/host.js';

/**
 * The plan of built-in NF `name` as most host tests run it: a `direct` vNIC in an isolated guest,
 * one replica, 64 MiB of heap, fail-closed; `overrides` change any of that.
 * @example nfs: { fw: builtinNfPlan('firewall', { default: 'accept' }, { placement: 'inline' }) }
 */
export function builtinNfPlan(name: string, config: unknown, overrides: Partial<NfPlan> = {}): NfPlan {
  return {
    module: builtinModule(name),
    config,
    vnic: 'direct',
    placement: 'isolated',
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed',
    ...overrides,
  };
}
