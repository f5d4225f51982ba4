/**
 * Real traffic through a whole nfvisor chain. Two namespaces with kernel `vxlan` devices (VNI 42)
 * reach the host over veth underlays; the host terminates both tunnels with its VXLAN ports and
 * joins them with two chains, a → firewall guest → b and b → firewall guest → a. Then real `ping`
 * between the namespaces must work, and stop working when the firewall denies ICMP — with every
 * denied packet counted, every packet accounted for and every pool slot free after the run.
 *
 *   ns a  vx 10.99.1.1 ─ a1 ══ a0 ─┐                                ┌─ b0 ══ b1 ─ vx 10.99.1.2  ns b
 *                                  └─ host: vxa → [fwab] → vxb ─────┘
 *                                           vxb → [fwba] → vxa
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Host, type HostPlan, type HostSummary, type NfPlan } from '../../src/host/host.js';
import { builtinNfPlan } from '../support/nf-plan.js';
import { addVxlanPeers, requireRoot, requireTools, Testbed } from './netns.js';

process.env.NFVISOR_QUIET = '1';
const VNI = 42;
const octet = ((process.pid + 64) % 127) * 2;
const U = `198.18.${octet}`;
const V = `198.18.${octet + 1}`;

function firewall(config: unknown): NfPlan {
  return builtinNfPlan('firewall', config);
}

describe('ping through an nfvisor chain between namespaces over VXLAN', () => {
  const bed = new Testbed(`nfh${process.pid % 100000}`);
  let a = '';

  before(async () => {
    requireRoot('host-netns.test');
    await requireTools(['ip', 'ping']);
    ({ a } = await addVxlanPeers(bed, {
      vni: VNI,
      underlayA: U,
      underlayB: V,
      overlayA: '10.99.1.1/24',
      overlayB: '10.99.1.2/24',
    }));
  });

  after(async () => {
    await bed.teardown();
    assert.deepEqual(await bed.leftovers(), [], 'no namespace or interface left behind');
  });

  /** Runs the host with the given a→b firewall while `ping` runs in namespace a; returns both results. */
  async function pingThrough(
    abFirewall: unknown,
    count: number,
  ): Promise<{ summary: HostSummary; replies: number }> {
    const plan: HostPlan = {
      pool: { slots: 1024, slotSize: 2048 },
      ringSize: 256,
      batch: 32,
      ports: {
        vxa: {
          kind: 'vxlan',
          options: { bind: { address: `${U}.1` }, remote: { address: `${U}.2` }, vni: VNI },
        },
        vxb: {
          kind: 'vxlan',
          options: { bind: { address: `${V}.1` }, remote: { address: `${V}.2` }, vni: VNI },
        },
      },
      nfs: { fwab: firewall(abFirewall), fwba: firewall({ default: 'accept' }) },
      chains: [
        { name: 'a-to-b', from: 'vxa', to: 'vxb', through: ['fwab'] },
        { name: 'b-to-a', from: 'vxb', to: 'vxa', through: ['fwba'] },
      ],
    };
    const host = await Host.create(plan);
    const running = host.run();
    let replies: number;
    try {
      await host.opened; // guests started, sockets bound
      // -c bounds the count, -w the whole run; the exit status is not the verdict, the count is.
      const result = await bed
        .exec(
          a,
          'ping',
          ['-c', String(count), '-i', '0.2', '-W', '1', '-w', String(count + 3), '10.99.1.2'],
          20_000,
        )
        .catch((e: unknown) => ({
          stdout: String((e as { stdout?: string }).stdout ?? (e as Error).message),
          stderr: '',
        }));
      replies = Number(/(\d+) received/.exec(result.stdout)?.[1] ?? 0);
    } finally {
      host.stop();
    }
    return { summary: await running, replies };
  }

  it('forwards: ping a → b gets its replies through two firewall guests', async () => {
    const { summary, replies } = await pingThrough({ default: 'accept' }, 5);
    assert.equal(replies, 5, 'every echo request got its reply');
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.poolFree, summary.poolSlots);
    assert.ok(summary.sent >= 10, `requests and replies crossed the host (${summary.sent})`);
  });

  it('enforces: a firewall that denies ICMP from a stops the pings, and counts each one', async () => {
    const { summary, replies } = await pingThrough(
      { default: 'accept', rules: [{ action: 'drop', protocol: 'icmp', src: '10.99.1.1' }] },
      4,
    );
    assert.equal(replies, 0, 'no reply crosses a firewall that drops the requests');
    const fwab = summary.nfs.find((n) => n.name === 'fwab');
    assert.ok((fwab?.drops.denied ?? 0) >= 4, `every request was denied and counted (${fwab?.drops.denied})`);
    assert.equal(summary.received, summary.sent + summary.dropped + summary.lost);
    assert.equal(summary.poolFree, summary.poolSlots);
  });
});
