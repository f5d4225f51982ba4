/**
 * `nfvisor demo` (what `npm start` runs): nfvisor's main job on an embedded default, with no files
 * to prepare. An embedded deployment — generated traffic → firewall → NAT → load balancer → sink,
 * every NF an isolated guest with a `direct` vNIC — runs for about ten seconds with live progress
 * and ends with its summary; then the same chain runs a few seconds in each vNIC mode and inline,
 * and a side-by-side table shows what each mode costs.
 */
import type { Command } from 'commander';
import type { Deployment } from '../deploy/deployment.js';
import { Host, type HostSummary } from '../host/host.js';
import { planFromDeployment } from './deployment-plan.js';
import { parsePositive } from './options.js';
import { formatMicros, formatSummary, table } from './format.js';
import { LiveProgress, parseCheckedDeployment } from './run.js';

/** The embedded deployment: a file like any other, validated the same way. */
export const DEMO_DEPLOYMENT = `
# nfvisor's embedded demo: three NFs in a chain, each in its own isolate.
pool: { slots: 8192, slotSize: 2048 }
ringSize: 4096
batch: 128
ports:
  gen:
    type: generator
    packets: 50000000        # more than the demo's time allows: it stops the clock, not the count
    seed: 2026
    frameSize: imix
    flows: 1000
    distribution: zipf
    ipv6: 0.2
    vlan: 0.1
    tcpSessions: false       # established connections: 1000 flows, not a new connection every few packets
  bin: { type: sink }
nfs:
  fw:
    image: builtin/firewall
    config:
      default: accept
      rules:
        - { action: drop, protocol: udp, dstPort: 53 }
        - { action: drop, protocol: tcp, dstPort: 25 }
  nat:
    image: builtin/nat
    config: { external: 203.0.113.1, inside: 198.18.0.0/16, timeoutSeconds: 30 }
  lb:
    image: builtin/load-balancer
    config: { vip: 198.19.0.80, port: 80, backends: [10.1.0.1, 10.1.0.2, 10.1.0.3] }
chains:
  - { name: demo, from: gen, through: [fw, nat, lb], to: bin }
`;

interface DemoFlags {
  seconds: string;
  modeSeconds: string;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the embedded deployment (generator → firewall → NAT → load balancer), then compare vNIC modes',
    )
    .option('--seconds <s>', 'how long the main run lasts', '10')
    .option('--mode-seconds <s>', 'how long each mode of the comparison lasts (0 skips it)', '3')
    .action(async (flags: DemoFlags) => {
      await runDemo(parsePositive('--seconds', flags.seconds), Number(flags.modeSeconds) || 0);
    });
}

export async function runDemo(seconds: number, modeSeconds: number): Promise<void> {
  const deployment = await parseCheckedDeployment(DEMO_DEPLOYMENT, '<embedded demo>');
  console.log(
    `nfvisor demo: generator → firewall → NAT → load balancer → sink, isolated guests, direct vNICs, ${seconds} s`,
  );
  const main = await runFor(deployment, seconds, true);
  console.log(formatSummary(main));
  if (modeSeconds <= 0) return;

  console.log(`\nThe same chain, ${modeSeconds} s in each vNIC mode:`);
  const rows: string[][] = [];
  let direct = 0;
  for (const [vnic, placement] of [
    ['direct', 'inline'],
    ['direct', 'isolated'],
    ['paravirt', 'isolated'],
    ['emulated', 'isolated'],
  ] as const) {
    const variant = structuredClone(deployment);
    for (const nf of Object.values(variant.nfs)) {
      nf.vnic = vnic;
      nf.placement = placement;
    }
    const s = await runFor(variant, modeSeconds, false);
    const pps = s.received / s.seconds;
    if (vnic === 'direct' && placement === 'isolated') direct = pps;
    rows.push([
      placement === 'inline' ? 'inline (no isolation)' : vnic,
      (pps / 1e6).toFixed(3),
      String(s.received),
      String(s.lost),
      `${s.poolFree}/${s.poolSlots}`,
      formatMicros(s.latencyUs.p50),
      formatMicros(s.latencyUs.p99),
    ]);
  }
  const withRatio = rows.map((row) => [
    ...row,
    direct > 0 ? `${((Number(row[1]) * 1e6) / direct).toFixed(2)}×` : '-',
  ]);
  for (const line of table(
    ['mode', 'Mpps', 'packets', 'lost', 'free slots', 'p50', 'p99', 'vs direct'],
    withRatio,
  ))
    console.log(line);
}

async function runFor(deployment: Deployment, seconds: number, live: boolean): Promise<HostSummary> {
  const host = await Host.create(await planFromDeployment(deployment));
  const timer = setTimeout(() => host.stop(), seconds * 1000);
  const progress = live ? new LiveProgress() : null;
  try {
    return await host.run((p) => progress?.update(p), 1000);
  } finally {
    clearTimeout(timer);
    progress?.done();
  }
}
