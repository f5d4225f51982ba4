/**
 * From a validated deployment to what the host runs: image references become module URLs (a
 * built-in NF is the compiled module `nfs/<name>/index.js` shipped with nfvisor; a path image is a
 * compiled module next to the deployment file), ports become input or output ports by their role,
 * and chain matches become classifier plans.
 */
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Cidr, Deployment, MatchSpec } from '../deploy/deployment.js';
import type { MatchPlan, PrefixMatch } from '../host/classifier.js';
import { builtinModule, type HostPlan, type NfPlan } from '../host/host.js';
import type { PortPlan } from '../host/ports.js';

export function planFromDeployment(deployment: Deployment): HostPlan {
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
        : pathToFileURL(resolve(dirname(deployment.file), nf.source.path)).href;
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
