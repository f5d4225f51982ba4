/**
 * Built-in NFs as `nfvisor run` runs them — their images' code in the guest sandbox, not the
 * compiled modules imported — for the benches that build host plans themselves.
 */
import type { Placement, VnicMode } from '../src/host/guest-protocol.js';
import { loadSandboxedNf, type NfRealm } from '../src/host/guest-sandbox.js';
import type { NfPlan } from '../src/host/host.js';
import { builtinImage, ImageStore, sandboxPolicy } from '../src/image/index.js';
import type { NfDefinition } from '../src/sdk/index.js';

/** The plan of built-in NF `name` (its image built into the default store on first use). */
export async function builtinNf(
  name: string,
  config: unknown,
  vnic: VnicMode,
  placement: Placement,
  heapMb = 128,
): Promise<NfPlan> {
  const image = await builtinImage(name, ImageStore.defaultRoot());
  return {
    module: image.moduleUrl,
    sandbox: { script: image.script, policy: sandboxPolicy(image.manifest.capabilities) },
    config,
    vnic,
    placement,
    replicas: 1,
    heapMb,
    failure: 'fail-closed',
  };
}

/** Built-in NF `name` loaded from its image into a sandbox in this thread, with the sandbox's realm. */
export async function sandboxedBuiltin(
  name: string,
): Promise<{ definition: NfDefinition<never>; realm: NfRealm }> {
  const image = await builtinImage(name, ImageStore.defaultRoot());
  const loaded = loadSandboxedNf(
    { script: image.script, policy: sandboxPolicy(image.manifest.capabilities) },
    { refused: () => {}, log: () => {} },
  );
  return { definition: loaded.definition as NfDefinition<never>, realm: loaded.realm };
}
