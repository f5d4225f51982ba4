/**
 * Chaos soak (TESTING.md E5): generated traffic through firewall → NAT (two replicas) → load
 * balancer in `direct` guests, while guests are killed (worker.terminate()), restarted through the
 * supervisor, the chain is reloaded with new firewall rules, the firewall scaled between one and
 * two replicas, and an NF drained or stopped as the control API does (and restarted 50–500 ms
 * later) — at seeded random moments. Only invariants are checked, after every round:
 *
 *   conservation   received + originated = sent + dropped + lost, and every pool slot is back
 *   no duplicate   every packet written carries its generator token (flow, packet number) in its
 *                  payload; no token is written twice, and as many packets are written as `sent`
 *   NAT ownership  in every snapshot of the NAT's replicas, each external port belongs to the
 *                  replica that holds it and to no other (the replies' steering depends on it)
 *   memory         RSS, heap and array buffers after each round (garbage collected first under
 *                  `node --expose-gc`), for their slope over the soak
 *
 * `npm run bench chaos` soaks for CHAOS_SECONDS (1800 by default, like CSIT's soak); the CI variant
 * (test/integration/chaos.test.ts) runs a couple of short rounds. Traffic stays in the process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Host, type HostPlan, type HostSummary, type NfPlan } from '../src/host/host.js';
import { builtinModule } from '../src/host/host.js';
import { openCapture } from '../src/io/capture.js';
import { read32 } from '../src/packet/bytes.js';
import { DropReason } from '../src/packet/drop-reason.js';
import { FLOW_KEY_WORDS, FlowKey } from '../src/packet/flow-key.js';
import { PacketParser } from '../src/packet/packet-parser.js';
import { portOwner } from '../src/sdk/index.js';

export interface ChaosOptions {
  /** Stop starting rounds after this long. */
  seconds: number;
  seed: number;
  /** Generated packets per round (128-byte frames). */
  roundPackets: number;
  /** A line per round and per violation. */
  log?: (line: string) => void;
}

export interface ChaosReport {
  rounds: number;
  packets: number;
  /** Chaos events carried out, by kind. */
  events: Record<ChaosEvent, number>;
  /** Every broken invariant, with its round; empty when the soak passed. */
  violations: string[];
  /** RSS after each round, MiB. */
  rssMb: number[];
}

type ChaosEvent = 'kill' | 'restart' | 'reload' | 'scale' | 'drain' | 'stop' | 'natCheck';

const NAT_PORTS = { lo: 20000, hi: 59999 };
const NAT_REPLICAS = 2;

/** xorshift32: the soak's choices are a function of its seed. */
function random(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function plan(ports: HostPlan['ports'], fwReplicas: number, blockedPort: number): HostPlan {
  const nf = (name: string, config: unknown, replicas = 1): NfPlan => ({
    module: builtinModule(name),
    config,
    vnic: 'direct',
    placement: 'isolated',
    replicas,
    heapMb: 64,
    failure: 'fail-closed',
  });
  return {
    pool: { slots: 8192, slotSize: 2048 },
    ringSize: 1024,
    batch: 32,
    restartBackoffMs: 20,
    ports,
    nfs: {
      fw: nf(
        'firewall',
        { default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dstPort: String(blockedPort) }] },
        fwReplicas,
      ),
      nat: nf(
        'nat',
        {
          external: '203.0.113.1',
          inside: '198.18.0.0/16',
          portRange: `${NAT_PORTS.lo}-${NAT_PORTS.hi}`,
          filtering: 'endpoint-independent',
        },
        NAT_REPLICAS,
      ),
      lb: nf('load-balancer', { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2'] }),
    },
    chains: [{ name: 'soak', from: 'gen', to: 'out', through: ['fw', 'nat', 'lb'] }],
  };
}

export async function chaosSoak(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const rand = random(options.seed);
  const report: ChaosReport = {
    rounds: 0,
    packets: 0,
    events: { kill: 0, restart: 0, reload: 0, scale: 0, drain: 0, stop: 0, natCheck: 0 },
    violations: [],
    rssMb: [],
  };
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'nfvisor-chaos-'));
  try {
    while (report.rounds === 0 || performance.now() - started < options.seconds * 1000) {
      const round = report.rounds + 1;
      const output = join(dir, `round-${round % 2}.pcap`);
      const violations = await chaosRound(options.seed + round, options.roundPackets, output, rand, report);
      report.violations.push(...violations.map((v) => `round ${round}: ${v}`));
      report.rounds = round;
      report.packets += options.roundPackets;
      // With --expose-gc, garbage is collected first, so the heap figure is what is still held.
      (globalThis as { gc?: () => void }).gc?.();
      const memory = process.memoryUsage();
      report.rssMb.push(memory.rss / 2 ** 20);
      const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
      log(
        `  round ${round}: ${options.roundPackets} packets, events ${JSON.stringify(report.events)}, ` +
          `RSS ${mb(memory.rss)} MiB (heap ${mb(memory.heapUsed)} of ${mb(memory.heapTotal)}, ` +
          `array buffers ${mb(memory.arrayBuffers)} MiB)` +
          `${violations.length > 0 ? `, VIOLATIONS: ${violations.join('; ')}` : ''}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

async function chaosRound(
  seed: number,
  packets: number,
  output: string,
  rand: () => number,
  report: ChaosReport,
): Promise<string[]> {
  const violations: string[] = [];
  // The same port objects in every plan: a reload changes the chain, never the ports (a generator
  // opened again would replay its packets — duplicates by construction, not by fault).
  const ports: HostPlan['ports'] = {
    gen: {
      kind: 'generator',
      options: {
        seed,
        packets,
        frameSize: 128,
        flows: 512,
        ipv6: 0,
        tcpSessions: false,
        mix: { tcp: 3, udp: 2, icmp: 1 },
      },
    },
    out: { kind: 'pcap-out', path: output },
  };
  let fwReplicas = 1;
  let blockedPort = 53;
  const host = await Host.create(plan(ports, fwReplicas, blockedPort));
  const running = host.run();
  let done = false;
  void running.finally(() => (done = true));
  await host.opened;
  let applying: Promise<unknown> | null = null;
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 20 + rand() * 150));
    if (done) break;
    const pick = rand();
    if (pick < 0.3) {
      // A guest dies without warning: its worker is gone mid-burst.
      const nfs = host.reconfigurable().nfs.filter((nf) => !nf.retiring);
      const nf = nfs[Math.floor(rand() * nfs.length)];
      const replica = nf?.replicas[Math.floor(rand() * nf.replicas.length)];
      if (replica?.worker) {
        void replica.worker.terminate();
        report.events.kill++;
      }
    } else if (pick < 0.45) {
      if (host.restartInstance(['fw', 'nat', 'lb'][Math.floor(rand() * 3)])) report.events.restart++;
    } else if (pick < 0.75) {
      // One live change at a time (the host refuses a second one while the first is under way).
      if (applying !== null) continue;
      let event: ChaosEvent;
      let change: () => Promise<unknown>;
      if (pick >= 0.7) {
        // The control API's drain or stop: the NF stays down (its traffic dropped, fail-closed)
        // until restarted, as an operator would, 50–500 ms later.
        const name = ['fw', 'nat', 'lb'][Math.floor(rand() * 3)];
        const downMs = 50 + rand() * 450;
        event = rand() < 0.5 ? 'drain' : 'stop';
        change = async () => {
          await (event === 'drain' ? host.drainInstance(name) : host.stopInstance(name));
          setTimeout(() => {
            if (host.restartInstance(name)) report.events.restart++;
          }, downMs);
        };
      } else if (pick >= 0.6) {
        event = 'scale';
        fwReplicas = 3 - fwReplicas;
        change = () => host.apply(plan(ports, fwReplicas, blockedPort));
      } else {
        event = 'reload';
        blockedPort = blockedPort === 53 ? 5353 : 53;
        change = () => host.apply(plan(ports, fwReplicas, blockedPort));
      }
      applying = change().then(
        () => {
          report.events[event]++;
          applying = null;
        },
        (error: unknown) => {
          applying = null;
          // Refused once the input has ended and the host winds down: that is no fault.
          const windingDown = !host.status().running || host.reconfigurable().inputsDone;
          if (!windingDown) violations.push(`${event} failed: ${(error as Error).message}`);
        },
      );
    } else {
      const problem = natOwnership(host.snapshotsOf('nat'));
      if (problem !== null) violations.push(problem);
      report.events.natCheck++;
    }
  }
  await applying;
  const summary = await running;
  violations.push(...conservation(summary));
  violations.push(...duplicates(output, summary.sent));
  return violations;
}

function conservation(s: HostSummary): string[] {
  const problems: string[] = [];
  if (s.received + s.originated !== s.sent + s.dropped + s.lost)
    problems.push(
      `conservation: received ${s.received} + originated ${s.originated} ≠ sent ${s.sent} + dropped ${s.dropped} + lost ${s.lost}`,
    );
  if (s.poolFree !== s.poolSlots) problems.push(`slot leak: ${s.poolSlots - s.poolFree} slots not back`);
  return problems;
}

/** Reads the round's output: every token once, and as many packets as the host says it sent. */
function duplicates(output: string, sent: number): string[] {
  const problems: string[] = [];
  const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
  const seen = new Map<number, Uint8Array>(); // flow → bitmap of packet numbers
  let written = 0;
  let unreadable = 0;
  let repeated = 0;
  const reader = openCapture(output);
  try {
    while (reader.next()) {
      written++;
      const end = reader.at + reader.capturedLength;
      if (
        parser.attach(reader.bytes, reader.at, reader.capturedLength, reader.linkType) !== DropReason.None ||
        parser.payloadAt + 8 > end
      ) {
        unreadable++;
        continue;
      }
      const flow = read32(reader.bytes, parser.payloadAt);
      const n = read32(reader.bytes, parser.payloadAt + 4);
      let bits = seen.get(flow);
      if (bits === undefined || bits.length * 8 <= n) {
        const grown = new Uint8Array(Math.max(64, (n >>> 3) * 2 + 8));
        if (bits) grown.set(bits);
        bits = grown;
        seen.set(flow, bits);
      }
      if ((bits[n >>> 3] & (1 << (n & 7))) !== 0) repeated++;
      bits[n >>> 3] |= 1 << (n & 7);
    }
  } finally {
    reader.close();
  }
  if (repeated > 0) problems.push(`${repeated} packets written twice (same generator token)`);
  if (unreadable > 0) problems.push(`${unreadable} packets written without a readable token`);
  if (written !== sent) problems.push(`${written} packets in the output, the host says ${sent} sent`);
  return problems;
}

/** Each external port in the NAT replicas' snapshots is held by its owner replica and no other. */
function natOwnership(snapshots: unknown[] | null): string | null {
  if (snapshots === null) return null; // between a reload's swap and its new guests' first snapshot
  const holder = new Map<number, number>();
  const key = new FlowKey();
  for (const [replica, snapshot] of snapshots.entries()) {
    if (snapshot === undefined || snapshot === null) continue;
    const { keys, ports } = snapshot as { keys: Uint32Array; ports: Uint16Array };
    for (let i = 0; i < ports.length; i++) {
      key.readFrom(keys, i * FLOW_KEY_WORDS);
      const id = key.protocol() * 65536 + ports[i];
      if (portOwner(ports[i], NAT_PORTS.lo, snapshots.length) !== replica)
        return `NAT replica ${replica} holds port ${ports[i]}, which replica ${portOwner(ports[i], NAT_PORTS.lo, snapshots.length)} owns`;
      const other = holder.get(id);
      if (other !== undefined && other !== replica)
        return `NAT port ${ports[i]} (protocol ${key.protocol()}) held by replicas ${other} and ${replica}`;
      holder.set(id, replica);
    }
  }
  return null;
}
