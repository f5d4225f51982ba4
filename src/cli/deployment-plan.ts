/**
 * From a validated deployment to what the host runs: image references become module URLs (a
 * built-in NF is the compiled module `nfs/<name>/index.js` shipped with nfvisor; a path image is a
 * compiled module next to the deployment file), ports become input or output ports by their role,
 * and chain matches become classifier plans.
 */
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Cidr, Deployment, ImageSource, MatchSpec } from '../deploy/deployment.js';
import { isNfvError, NfvError } from '../errors.js';
import { ImageStore, readTrustPolicy, resolveImage, type TrustPolicy } from '../image/index.js';
import type { MatchPlan, PrefixMatch } from '../host/classifier.js';
import { builtinModule, type HostPlan, type NfPlan } from '../host/host.js';
import type { PortPlan } from '../host/ports.js';

/**
 * Resolves every NF image to a module the host can load: built-in NFs ship compiled with nfvisor,
 * a path names a compiled module, and a store reference is verified (digest, signature, trust
 * policy, SDK version, no rollback) and unpacked. An image that fails names the deployment file,
 * the line of its reference and the reason, before anything starts.
 */
export async function planFromDeployment(deployment: Deployment): Promise<HostPlan> {
  const ports: Record<string, PortPlan> = {};
  for (const [name, port] of Object.entries(deployment.ports)) {
    if (port.type === 'generator') ports[name] = { kind: 'generator', options: port.options };
    else if (port.type === 'sink') ports[name] = { kind: 'sink' };
    else if (port.type === 'pcap') {
      ports[name] =
        port.role === 'write' ? { kind: 'pcap-out', path: port.path } : { kind: 'pcap-in', path: port.path };
    } else {
      ports[name] = {
        kind: port.type,
        options: { bind: port.bind, remote: port.remote, vni: port.vni, slots: port.slots },
      };
    }
  }
  const nfs: Record<string, NfPlan> = {};
  for (const [name, nf] of Object.entries(deployment.nfs)) {
    const module =
      nf.source.kind === 'builtin'
        ? builtinModule(nf.source.name)
        : nf.source.kind === 'path'
          ? pathToFileURL(resolve(dirname(deployment.file), nf.source.path)).href
          : await resolveStoreImage(deployment, name, nf.source);
    nfs[name] = {
      module,
      config: nf.config,
      vnic: nf.vnic,
      placement: nf.placement,
      replicas: nf.replicas,
      heapMb: nf.heapMb,
      failure: nf.failure,
    };
  }
  return {
    pool: deployment.pool,
    ringSize: deployment.ringSize,
    batch: deployment.batch,
    ...(deployment.memory
      ? {
          memory: {
            limitBytes: deployment.memory.limitMb * 2 ** 20,
            rejectNewAt: deployment.memory.rejectNewAt,
            shedAt: deployment.memory.shedAt,
          },
        }
      : {}),
    ports,
    nfs,
    chains: deployment.chains.map((chain) => ({
      name: chain.name,
      from: chain.from,
      to: chain.to,
      through: chain.through,
      match: matchPlan(chain.match),
    })),
  };
}

function matchPlan(match: MatchSpec): Omit<MatchPlan, 'chain' | 'inPort'> {
  const plan: Omit<MatchPlan, 'chain' | 'inPort'> = {};
  if (match.protocol !== undefined) plan.protocol = match.protocol;
  if (match.src) plan.src = prefix(match.src);
  if (match.dst) plan.dst = prefix(match.dst);
  if (match.srcPort) plan.srcPort = [match.srcPort.lo, match.srcPort.hi];
  if (match.dstPort) plan.dstPort = [match.dstPort.lo, match.dstPort.hi];
  return plan;
}

function prefix(cidr: Cidr): PrefixMatch {
  if (cidr.version === 6) return { version: 6, bytes: cidr.bytes, prefixLength: cidr.prefixLength };
  const a = cidr.address >>> 0;
  return {
    version: 4,
    bytes: Uint8Array.of(a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff),
    prefixLength: cidr.prefixLength,
  };
}

let trustPolicies: Map<string, TrustPolicy> | null = null;

async function resolveStoreImage(
  deployment: Deployment,
  nf: string,
  source: Extract<ImageSource, { kind: 'store' }>,
): Promise<string> {
  const images = deployment.images;
  const store = images.store ?? ImageStore.defaultRoot();
  const policyFile = images.trustPolicy ?? join(ImageStore.home(), 'trust-policy.json');
  trustPolicies ??= new Map();
  let policy = trustPolicies.get(policyFile);
  if (policy === undefined && existsSync(policyFile)) {
    policy = await readTrustPolicy(policyFile);
    trustPolicies.set(policyFile, policy);
  }
  try {
    const resolved = await resolveImage(source.ref, { store, policy, allowUnsigned: images.allowUnsigned });
    return resolved.moduleUrl;
  } catch (error) {
    if (!isNfvError(error)) throw error;
    throw new NfvError(
      error.code,
      `${deployment.file}:${source.line}:${source.column}: nfs.${nf}.image: ${source.ref}: ${error.message}`,
      { file: deployment.file, line: source.line, field: `nfs.${nf}.image` },
    );
  }
}
