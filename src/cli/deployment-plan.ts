/**
 * From a validated deployment to what the host runs: image references become verified images
 * that run in the guest sandbox (a built-in NF `builtin/<name>` is built into an image from
 * nfvisor's own compiled `nfs/<name>/` on first use, image/builtin-images.ts; a store reference is
 * verified), a path names a compiled module that runs as trusted code, ports become input or
 * output ports by their role, and chain matches become classifier plans.
 */
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Cidr, Deployment, ImageSource, MatchSpec } from '../deploy/deployment.js';
import { isNfvError, NfvError, type ErrorCode } from '../errors.js';
import {
  builtinImage,
  ImageStore,
  readTrustPolicy,
  resolveImage,
  sandboxPolicy,
  type TrustPolicy,
} from '../image/index.js';
import type { SandboxPlan } from '../host/guest-sandbox.js';
import type { MatchPlan, PrefixMatch } from '../host/classifier.js';
import type { HostPlan, NfPlan } from '../host/host.js';
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
    } else if (port.type === 'tap') {
      ports[name] = {
        kind: 'tap',
        options: {
          device: port.device,
          mode: port.mode,
          ...(port.queueLength !== undefined ? { queueLength: port.queueLength } : {}),
          ...(port.offload === true ? { offload: true } : {}),
        },
      };
    } else {
      ports[name] = {
        kind: port.type,
        options: { bind: port.bind, remote: port.remote, vni: port.vni, slots: port.slots },
      };
    }
  }
  // Resolved together: each image's checks mostly wait on files and esbuild. A failure is reported
  // for the first NF in file order that has one, as a one-at-a-time loop would.
  const names = Object.keys(deployment.nfs);
  const settled = await Promise.allSettled(
    names.map((name) => nfPlan(deployment, name, deployment.nfs[name])),
  );
  const nfs: Record<string, NfPlan> = {};
  settled.forEach((result, i) => {
    if (result.status === 'rejected') throw result.reason;
    nfs[names[i]] = result.value;
  });
  return {
    pool: deployment.pool,
    ringSize: deployment.ringSize,
    batch: deployment.batch,
    queueTargetMs: deployment.queueTargetMs,
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

function located(
  deployment: Deployment,
  nf: string,
  at: { line: number; column: number },
  field: string,
  message: string,
  code: ErrorCode = 'NFV_ERR_IMAGE_CAPABILITY',
): NfvError {
  // The message carries the location in the deployment's own form; the detail repeats it for
  // programs under names the generic prefix of NfvError does not read.
  return new NfvError(code, `${deployment.file}:${at.line}:${at.column}: nfs.${nf}.${field}: ${message}`, {
    deployment: deployment.file,
    line: at.line,
    column: at.column,
    path: `nfs.${nf}.${field}`,
  });
}

/** The host's plan for NF `name`: its image resolved, verified and unpacked, or its module's path. */
async function nfPlan(deployment: Deployment, name: string, nf: Deployment['nfs'][string]): Promise<NfPlan> {
  let module: string;
  let sandbox: SandboxPlan | undefined;
  if (nf.source.kind === 'store')
    ({ module, sandbox } = await resolveStoreImage(deployment, name, nf.source));
  else if (nf.source.kind === 'builtin') {
    // A built-in runs as an image too, built from nfvisor's own compiled NF on first use.
    const image = await builtinImage(nf.source.name, deployment.images.store ?? ImageStore.defaultRoot());
    module = image.moduleUrl;
    sandbox = sandboxFor(deployment, name, { ref: nf.image }, image.script, image.manifest.capabilities);
  } else {
    if (nf.capabilities !== undefined)
      throw located(
        deployment,
        name,
        nf.capabilities,
        'capabilities',
        'capabilities are granted to images; a compiled module given by its path runs as trusted code',
      );
    module = pathToFileURL(resolve(dirname(deployment.file), nf.source.path)).href;
  }
  return {
    module,
    ...(sandbox ? { sandbox } : {}),
    config: nf.config,
    vnic: nf.vnic,
    placement: nf.placement,
    replicas: nf.replicas,
    heapMb: nf.heapMb,
    failure: nf.failure,
  };
}

/**
 * The sandbox an image runs in: the deployment must grant exactly the capabilities the manifest
 * asks for — one asked for and not granted, or granted and not asked for, is an error at the
 * `capabilities` field (or at the image when the field is absent).
 */
function sandboxFor(
  deployment: Deployment,
  nf: string,
  source: { ref: string; line?: number; column?: number },
  script: string,
  asked: readonly string[],
): SandboxPlan {
  const written = deployment.nfs[nf].capabilities;
  const granted = written?.granted ?? [];
  const at = written ?? { line: source.line ?? 0, column: source.column ?? 0 };
  const field = written ? 'capabilities' : 'image';
  const missing = asked.filter((c) => !granted.includes(c));
  const extra = granted.filter((c) => !asked.includes(c));
  if (missing.length > 0)
    throw located(
      deployment,
      nf,
      at,
      field,
      `${source.ref} asks for capabilities ${missing.join(', ')}, which the deployment does not grant (grant them with capabilities: [${asked.join(', ')}])`,
    );
  if (extra.length > 0)
    throw located(
      deployment,
      nf,
      at,
      field,
      `grants ${extra.join(', ')}, which ${source.ref} does not ask for (its manifest asks for ${asked.length > 0 ? asked.join(', ') : 'none'})`,
    );
  return { script, policy: sandboxPolicy(granted) };
}

async function resolveStoreImage(
  deployment: Deployment,
  nf: string,
  source: Extract<ImageSource, { kind: 'store' }>,
): Promise<{ module: string; sandbox: SandboxPlan }> {
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
    return {
      module: resolved.moduleUrl,
      sandbox: sandboxFor(deployment, nf, source, resolved.script, resolved.manifest.capabilities),
    };
  } catch (error) {
    if (!isNfvError(error) || error.message.startsWith(`${deployment.file}:`)) throw error;
    // The image's own message, without its code: the error made here ends with the same one.
    const reason = error.message.endsWith(` (${error.code})`)
      ? error.message.slice(0, -` (${error.code})`.length)
      : error.message;
    throw located(deployment, nf, source, 'image', `${source.ref}: ${reason}`, error.code);
  }
}
