/**
 * `nfvisor testbed up|down|status`: the live testbed of src/testbed/live-testbed.ts — a client and
 * three backend servers in network namespaces, attached to nfvisor by a kernel VXLAN tunnel — for
 * trying a chain with real traffic by hand:
 *
 *   sudo nfvisor testbed up
 *   sudo nfvisor run examples/live-fw-nat-lb.yaml            # in another terminal
 *   sudo ip netns exec nfvlive-client curl http://10.77.2.80/
 *   sudo nfvisor testbed down
 *
 * `up` is idempotent: a complete testbed is left as it is, a partial one is removed and rebuilt.
 * `down` removes every namespace and interface with the prefix and kills every process inside.
 */
import type { Command } from 'commander';
import { LIVE, liveNamespaceSuffixes, liveTestbedUp } from '../testbed/live-testbed.js';
import { requireRoot, requireTools, Testbed } from '../testbed/netns.js';

export interface TestbedOptions {
  prefix: string;
  underlay: string;
  mtu: string;
}

/** The defaults match examples/live-fw-nat-lb.yaml. */
export const TESTBED_DEFAULTS: TestbedOptions = { prefix: 'nfvlive', underlay: '198.19.99', mtu: '1500' };

export function registerTestbed(program: Command): void {
  const testbed = program
    .command('testbed')
    .description('a client and three servers in network namespaces, attached to nfvisor over VXLAN (root)');
  const options = (command: Command): Command =>
    command
      .option('--prefix <name>', 'prefix of every namespace and interface', TESTBED_DEFAULTS.prefix)
      .option(
        '--underlay <a.b.c>',
        'underlay /30: nfvisor binds a.b.c.1, the testbed a.b.c.2',
        TESTBED_DEFAULTS.underlay,
      )
      .option('--mtu <bytes>', 'MTU of the overlay links', TESTBED_DEFAULTS.mtu);
  options(testbed.command('up').description('create the testbed and start its servers (idempotent)')).action(
    async (flags: TestbedOptions) => console.log(await testbedUp(flags)),
  );
  options(testbed.command('down').description('remove the testbed, its interfaces and processes')).action(
    async (flags: TestbedOptions) => console.log(await testbedDown(flags)),
  );
  options(testbed.command('status').description('say whether the testbed is up')).action(
    async (flags: TestbedOptions) => console.log(await testbedStatus(flags)),
  );
}

function checkOptions(o: TestbedOptions): { mtu: number } {
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.underlay))
    throw new Error(`--underlay: three octets such as 198.19.99 (got "${o.underlay}")`);
  const mtu = Number(o.mtu);
  if (!/^\d+$/.test(o.mtu) || mtu < 1280 || mtu > 9000) throw new Error(`--mtu: 1280…9000 (got "${o.mtu}")`);
  return { mtu };
}

async function namespacesUp(bed: Testbed): Promise<{ present: string[]; missing: string[] }> {
  const existing = new Set(await bed.existingNamespaces());
  const wanted = liveNamespaceSuffixes().map((s) => `${bed.prefix}-${s}`);
  return { present: wanted.filter((n) => existing.has(n)), missing: wanted.filter((n) => !existing.has(n)) };
}

export async function testbedUp(o: TestbedOptions): Promise<string> {
  const { mtu } = checkOptions(o);
  requireRoot('nfvisor testbed up');
  await requireTools(['ip', 'iperf3', 'python3']);
  const bed = new Testbed(o.prefix);
  const { present, missing } = await namespacesUp(bed);
  if (missing.length === 0) return `testbed ${o.prefix} is already up\n${usage(o)}`;
  if (present.length > 0) await bed.teardown(); // a partial testbed (an interrupted up): start over
  try {
    await liveTestbedUp(bed, { underlay: o.underlay, mtu, detached: true });
  } catch (error) {
    await bed.teardown();
    throw error;
  }
  return `testbed ${o.prefix} is up\n${usage(o)}`;
}

export async function testbedDown(o: TestbedOptions): Promise<string> {
  requireRoot('nfvisor testbed down');
  const bed = new Testbed(o.prefix);
  const problems = await bed.teardown();
  const left = await bed.leftovers();
  if (problems.length > 0 || left.length > 0)
    throw new Error(`testbed ${o.prefix}: could not remove ${left.join(', ')}\n${problems.join('\n')}`);
  return `testbed ${o.prefix} is down`;
}

export async function testbedStatus(o: TestbedOptions): Promise<string> {
  const bed = new Testbed(o.prefix);
  const { present, missing } = await namespacesUp(bed);
  if (present.length === 0) return `testbed ${o.prefix} is down`;
  if (missing.length > 0)
    return `testbed ${o.prefix} is partial (missing ${missing.join(', ')}): run up again`;
  return `testbed ${o.prefix} is up\n${usage(o)}`;
}

function usage(o: TestbedOptions): string {
  const client = `ip netns exec ${o.prefix}-client`;
  return [
    `  nfvisor binds ${o.underlay}.1:4789 and sends to ${o.underlay}.2 (VNI 77): nfvisor run examples/live-fw-nat-lb.yaml`,
    `  ${client} curl http://${LIVE.vip}/          # a backend answers with its name and the address it saw`,
    `  ${client} ping ${LIVE.vip}`,
    `  ${client} iperf3 -c ${LIVE.vip}`,
    `  nfvisor testbed down`,
  ].join('\n');
}
