/**
 * Helpers for the control tests: a fake host with a deterministic status, and a reader for the
 * Prometheus text format. Not used outside tests.
 */
import type { HostPlan, NfPlan } from '../host/host.js';
import type { ApplyResult, CapturedPacket } from '../host/reconfigure.js';
import { diffPlans } from '../host/reconfigure-diff.js';
import type { ControlledHost } from './control-server.js';
import type { HostStatus } from './schemas.js';

export function fakeStatus(): HostStatus {
  return {
    running: true,
    seconds: 12.5,
    received: 1000,
    originated: 0,
    sent: 900,
    dropped: 80,
    lost: 20,
    ports: { out: { received: 0, sent: 900 } },
    hostDrops: { nf_down: 5 },
    nfs: [
      {
        name: 'fw',
        image: 'firewall',
        vnic: 'direct',
        placement: 'isolated',
        replicas: 1,
        packets: 1000,
        restarts: 2,
        quarantined: false,
        counters: { accepted: 925, denied: 75, rule_hits: 75 },
        drops: { denied: 75 },
      },
      {
        name: 'mon',
        image: 'flow-monitor',
        vnic: 'paravirt',
        placement: 'isolated',
        replicas: 2,
        packets: 925,
        restarts: 0,
        quarantined: false,
        counters: { packets: 925, flows_active: 12 },
        drops: {},
      },
      {
        name: 'bad',
        image: 'misbehaving',
        vnic: 'direct',
        placement: 'isolated',
        replicas: 1,
        packets: 0,
        restarts: 0,
        quarantined: true,
        counters: {},
        drops: {},
      },
    ],
    chains: [{ name: 'main', through: ['fw', 'mon'], output: 'out' }],
    poolSlots: 2048,
    poolFree: 2000,
    queueLimit: 1536,
    startSeconds: 0.12,
    latencyUs: { p50: 16, p99: 64, max: 181 },
  };
}

function fakeNf(module: string): NfPlan {
  return {
    module,
    config: {},
    vnic: 'direct',
    placement: 'isolated',
    replicas: 1,
    heapMb: 64,
    failure: 'fail-closed',
  };
}

/** A plan shaped like `fakeStatus()`: fw → mon, and the quarantined `bad` on a chain of its own. */
export function fakePlan(): HostPlan {
  return {
    pool: { slots: 2048, slotSize: 2048 },
    ringSize: 256,
    batch: 32,
    ports: { in: { kind: 'generator', options: {} }, out: { kind: 'sink' } },
    nfs: {
      fw: fakeNf('file:///fw.js'),
      mon: { ...fakeNf('file:///mon.js'), replicas: 2 },
      bad: fakeNf('file:///bad.js'),
    },
    chains: [
      { name: 'main', from: 'in', to: 'out', through: ['fw', 'mon'] },
      { name: 'quarantine', from: 'in', to: 'out', through: ['bad'] },
    ],
  };
}

/** A host whose status is `fakeStatus()`, or advanced by `step` packets per call of `status()`. */
export class FakeHost implements ControlledHost {
  readonly restarted: string[] = [];
  /** Every plan `apply` was given (dry runs too), and the instances drained or stopped. */
  readonly applied: { plan: HostPlan; dryRun: boolean }[] = [];
  readonly drained: string[] = [];
  readonly stopped: string[] = [];
  plan = fakePlan();
  /** Snapshots by NF name (tests put what they like here). */
  snapshots = new Map<string, unknown[]>();
  stops = 0;
  calls = 0;
  constructor(private readonly step = 0) {}

  status(): HostStatus {
    const s = fakeStatus();
    const n = this.step * this.calls++;
    s.received += n;
    s.sent += n;
    s.ports.out.sent += n;
    s.nfs[0].packets += n;
    s.nfs[0].restarts += this.restarted.length;
    s.running = this.stops === 0;
    return s;
  }

  restartInstance(name: string): boolean {
    const nf = fakeStatus().nfs.find((n) => n.name === name);
    if (!nf || nf.quarantined || this.stops > 0) return false;
    this.restarted.push(name);
    return true;
  }

  stop(): void {
    this.stops++;
  }

  apply(plan: HostPlan, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const dryRun = options.dryRun === true;
    this.applied.push({ plan, dryRun });
    const diff = diffPlans(this.plan, plan);
    if (!dryRun) this.plan = plan;
    return Promise.resolve({
      dryRun,
      applied: !dryRun && !diff.empty,
      diff,
      prepareMs: 1,
      drainMs: 1,
      lostInDrain: 0,
    });
  }

  drainInstance(name: string): Promise<ApplyResult> {
    this.drained.push(name);
    return this.apply(this.plan);
  }

  stopInstance(name: string): Promise<ApplyResult> {
    this.stopped.push(name);
    return this.apply(this.plan);
  }

  snapshotsOf(name: string): unknown[] | null {
    if (!fakeStatus().nfs.some((nf) => nf.name === name)) return null;
    return this.snapshots.get(name) ?? [undefined];
  }

  /** Two 60-byte frames of zeros then ones, whatever the hop. */
  captureHop(_chain: string, _hop: number, count: number): Promise<CapturedPacket[]> {
    const packets: CapturedPacket[] = [];
    for (let i = 0; i < Math.min(count, 2); i++)
      packets.push({ bytes: new Uint8Array(60).fill(i), seconds: 1_700_000_000, nanos: i });
    return Promise.resolve(packets);
  }
}

/** `name{a="x",b="y"}` → value, with labels sorted; HELP and TYPE lines by family. */
export function parseExposition(text: string): {
  samples: Map<string, number>;
  help: Map<string, string>;
  type: Map<string, string>;
} {
  const samples = new Map<string, number>();
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'HELP' ? help : type).set(meta[2], meta[3]);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not an exposition line: ${line}`);
    const labels = [...(sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)]
      .map((m) => `${m[1]}="${m[2]}"`)
      .sort();
    samples.set(labels.length ? `${sample[1]}{${labels.join(',')}}` : sample[1], Number(sample[3]));
  }
  return { samples, help, type };
}
