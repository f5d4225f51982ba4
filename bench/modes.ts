/**
 * `modes` bench part: the 3-NF chain (firewall → NAT → load balancer) on 64-byte and IMIX frames
 * replayed from memory, in each vNIC mode and inline; then chain length 1…8 in `direct` mode.
 * The NFs run from their built-in images in the guest sandbox, as `nfvisor run` runs them.
 * Reports Mpps, CPU seconds per million packets (all threads: getrusage), and the direct/emulated
 * ratio, prints Markdown tables and writes them with an SVG chart to bench/results/.
 *
 * Each run is bounded by a packet count and a deadline: the host is stopped after DEADLINE_S and
 * the rate is what it moved, from the host's run() on — the guests' start (reported apart, "ready")
 * and their code's warm-up included. A second rate leaves the first WARMUP_S after the guests are
 * ready out, as a forwarding-rate trial follows a learning period (RFC 2544 §23): the rate the
 * chain keeps, once V8 has compiled each thread's loops.
 *
 * Every row is run BENCH_MODES_TRIALS times (default 3), in rounds — each round runs every mode
 * once at a frame size (then every chain length, then both whole runs) — so that a slow minute of a
 * shared VM falls on every mode alike; a row reports the median of its
 * trials with the lowest and highest, and the direct/emulated ratio is taken within each round.
 * The machine's core probe runs before and after, to show whether its capacity changed meanwhile.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEPLOYMENT_DEFAULTS } from '../src/deploy/deployment.js';
import { Host, type HostPlan, type NfPlan } from '../src/host/host.js';
import { builtinNf } from './builtin-nf.js';
import { describeCoreCapacity, measureCoreCapacity, type CoreCapacity } from './cores.js';
import type { Placement, VnicMode } from '../src/host/guest-protocol.js';
import { writeGeneratedCapture } from '../src/io/generate-capture.js';
import { packedFrames } from './packed-frames.js';
import { formatMicros } from '../src/cli/format.js';
import { formatSpread, spread, trialCount, type Spread } from './trials.js';

const DEADLINE_S = 4;
/** Seconds after the guests are ready that the steady rate leaves out. */
const WARMUP_S = 1;
const STRIDE = 2048;

/** One trial of a chain: a host run, bounded by DEADLINE_S. */
interface ChainTrial {
  mpps: number;
  /** After the warm-up; undefined when the run ended too soon after it to tell. */
  steadyMpps: number | undefined;
  /** From the host's run() until every guest had started. */
  readyMs: number;
  cpuPerMillion: number;
  packets: number;
  p50: number;
  p99: number;
}

/** A row of the modes table: one mode at one frame size, and its trials in round order. */
interface ModeResult {
  label: string;
  frames: string;
  trials: ChainTrial[];
}

/** The spread of one figure over a row's trials. */
function over(
  trials: readonly ChainTrial[],
  pick: (t: ChainTrial) => number | undefined,
): Spread | undefined {
  return spread(trials.map(pick));
}

async function runChain(
  traffic: { frames: Uint8Array; lengths: Uint16Array; stride: number },
  rounds: number,
  stages: [string, unknown][],
  vnic: VnicMode,
  placement: Placement,
): Promise<ChainTrial> {
  const nfs: Record<string, NfPlan> = {};
  for (const [i, [image, config]] of stages.entries())
    nfs[`nf${i}`] = await builtinNf(image, config, vnic, placement);
  const plan: HostPlan = {
    pool: { slots: 8192, slotSize: STRIDE },
    ringSize: DEPLOYMENT_DEFAULTS.ringSize,
    batch: DEPLOYMENT_DEFAULTS.batch,
    ports: {
      mem: {
        kind: 'memory',
        frames: traffic.frames,
        lengths: traffic.lengths,
        stride: traffic.stride,
        rounds,
      },
      bin: { kind: 'sink' },
    },
    nfs,
    chains: [{ name: 'bench', from: 'mem', to: 'bin', through: Object.keys(nfs) }],
  };
  const host = await Host.create(plan);
  const cpuBefore = process.cpuUsage();
  const timer = setTimeout(() => host.stop(), DEADLINE_S * 1000);
  // Progress every 50 ms; the steady rate starts at the first report WARMUP_S after the guests were
  // ready (the summary says when that was).
  const reports: { seconds: number; received: number }[] = [];
  const summary = await host.run((p) => reports.push({ seconds: p.seconds, received: p.received }), 50);
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const steady = reports.find((p) => p.seconds >= summary.startSeconds + WARMUP_S);
  const steadySeconds = steady === undefined ? 0 : summary.seconds - steady.seconds;
  return {
    mpps: summary.received / summary.seconds / 1e6,
    // A quarter second at least, or it is one burst's luck.
    steadyMpps:
      steady !== undefined && steadySeconds >= 0.25
        ? (summary.received - steady.received) / steadySeconds / 1e6
        : undefined,
    readyMs: summary.startSeconds * 1000,
    cpuPerMillion: cpuSeconds / (summary.received / 1e6),
    packets: summary.received,
    p50: summary.latencyUs.p50,
    p99: summary.latencyUs.p99,
  };
}

const THREE_NFS: [string, unknown][] = [
  ['firewall', { default: 'accept', rules: [{ action: 'drop', protocol: 'udp', dstPort: '53' }] }],
  ['nat', { external: '203.0.113.1', inside: '198.18.0.0/16' }],
  ['load-balancer', { vip: '198.19.0.80', port: 80, backends: ['10.1.0.1', '10.1.0.2'] }],
];

/**
 * `filter` (BENCH_MODES_FILTER) runs only the rows whose name contains it — `inline`, `direct`,
 * `paravirt`, `emulated`, `chain`, `run` — and then writes no results (a partial table would
 * replace the whole one).
 */
export async function benchModes(filter?: string): Promise<void> {
  const trials = trialCount('BENCH_MODES_TRIALS', 3);
  console.log(
    `modes: firewall → NAT → load balancer from memory, each run at most ${DEADLINE_S} s, ${trials} trial${trials === 1 ? '' : 's'} of each row`,
  );
  // Threads of the isolated modes share the machine's cores: how many it really has (two vCPUs may
  // be less than two cores) bounds them.
  const coresBefore = await measureCoreCapacity();
  console.log(`  machine: ${describeCoreCapacity(coresBefore)}`);
  const want = (row: string): boolean => !filter || row.includes(filter);
  const progress = (trial: number): string => (trials === 1 ? '' : `[${trial + 1}/${trials}] `);

  const results: ModeResult[] = [];
  for (const [label, size] of [
    ['64 B', 60],
    ['IMIX', 'imix'],
  ] as const) {
    const traffic = packedFrames(size, 200_000);
    const rows = (
      [
        ['direct', 'inline'],
        ['direct', 'isolated'],
        ['paravirt', 'isolated'],
        ['emulated', 'isolated'],
      ] as const
    )
      .map(([vnic, placement]) => {
        const name = placement === 'inline' ? 'inline' : vnic;
        const result: ModeResult = { label: name, frames: label, trials: [] };
        return { vnic, placement, name, result };
      })
      .filter((row) => want(row.name));
    for (let trial = 0; trial < trials; trial++) {
      for (const { vnic, placement, name, result } of rows) {
        const r = await runChain(traffic, vnic === 'emulated' ? 1 : 25, THREE_NFS, vnic, placement);
        result.trials.push(r);
        console.log(
          `  ${progress(trial)}${label.padEnd(5)} ${name.padEnd(9)} ${r.mpps.toFixed(3).padStart(7)} Mpps (${formatSteady(r.steadyMpps)} after ${WARMUP_S} s; ready in ${r.readyMs.toFixed(0)} ms)  ${r.cpuPerMillion.toFixed(2).padStart(6)} CPU s / Mpkt  p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs  (${r.packets} packets)`,
        );
      }
    }
    results.push(...rows.map((row) => row.result));
  }
  if (trials > 1 && results.length > 0) {
    console.log(`  median of ${trials} (lowest–highest):`);
    for (const r of results)
      console.log(
        `    ${r.frames.padEnd(5)} ${r.label.padEnd(9)} ${formatSpread(
          over(r.trials, (t) => t.mpps),
          3,
        )} Mpps, ${formatSpread(
          over(r.trials, (t) => t.steadyMpps),
          3,
          'too short',
        )} after ${WARMUP_S} s`,
      );
  }
  const ratios = { '64 B': directOverEmulated(results, '64 B'), IMIX: directOverEmulated(results, 'IMIX') };
  console.log(
    `  direct / emulated: ${formatSpread(ratios['64 B'], 1)}× at 64 B, ${formatSpread(ratios.IMIX, 1)}× at IMIX`,
  );

  const scaling: ChainLengthResult[] = want('chain')
    ? [1, 2, 4, 8].map((length) => ({ length, trials: [] }))
    : [];
  if (scaling.length > 0) console.log('  chain length in direct mode (accept-all firewalls, 64 B):');
  const traffic = packedFrames(60, 200_000);
  for (let trial = 0; trial < trials && scaling.length > 0; trial++) {
    for (const row of scaling) {
      const stages = Array.from({ length: row.length }, (): [string, unknown] => [
        'firewall',
        { default: 'accept' },
      ]);
      const r = await runChain(traffic, 25, stages, 'direct', 'isolated');
      row.trials.push(r);
      console.log(
        `    ${progress(trial)}${String(row.length).padStart(2)} NFs  ${r.mpps.toFixed(3)} Mpps (${formatSteady(r.steadyMpps)} after ${WARMUP_S} s)`,
      );
    }
  }
  const whole: WholeRunResult[] = want('run')
    ? (['isolated', 'inline'] as const).map((placement) => ({ placement, trials: [] }))
    : [];
  for (let trial = 0; trial < trials && whole.length > 0; trial++)
    for (const row of whole) row.trials.push(await wholeRun(row.placement, progress(trial)));

  const coresAfter = await measureCoreCapacity();
  console.log(`  machine afterwards: ${describeCoreCapacity(coresAfter)}`);
  if (filter) console.log('  (a filtered run: bench/results/modes.md left as it was)');
  else writeResults({ trials, results, scaling, ratios, whole, coresBefore, coresAfter });
}

/** direct ÷ emulated at one frame size, within each round of trials (a slow minute hits both). */
function directOverEmulated(results: ModeResult[], frames: string): Spread | undefined {
  const direct = results.find((r) => r.frames === frames && r.label === 'direct')?.trials ?? [];
  const emulated = results.find((r) => r.frames === frames && r.label === 'emulated')?.trials ?? [];
  return spread(direct.map((d, i) => (i < emulated.length ? d.mpps / emulated[i].mpps : undefined)));
}

interface ChainLengthResult {
  length: number;
  trials: ChainTrial[];
}

interface WholeRunResult {
  placement: 'isolated' | 'inline';
  trials: WholeRun[];
}

interface WholeRun {
  placement: 'isolated' | 'inline';
  packets: number;
  seconds: number;
  mpps: number;
  /** The host's run() less its guests' start: packets moving. */
  movingSeconds: number;
  /** The guests' start, in the host's run(). */
  guestStartSeconds: number;
}

/**
 * `nfvisor run` start to exit, as a user runs it: pcap → firewall (20 rules) → NAT → pcap over
 * 10⁶ 64-byte packets (the job Click's userlevel driver does at 3.2 Mpps on this machine). With
 * the deployment's default placement (`isolated`: a guest thread per NF, `direct` vNICs) and with
 * `placement: inline` (both NFs in the host thread: one core, no isolation — Click's setting).
 */
async function wholeRun(placement: 'isolated' | 'inline', prefix: string): Promise<WholeRun> {
  const packets = 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'nfvisor-bench-run-'));
  try {
    const input = join(dir, 'in.pcap');
    await writeGeneratedCapture(
      { seed: 3, packets, frameSize: 60, flows: 4096, ipv6: 0, tcpSessions: false },
      input,
      { format: 'pcap' },
    );
    const rules = Array.from(
      { length: 19 },
      (_, i) => `        - { action: drop, protocol: tcp, dstPort: ${10_000 + i} }`,
    ).join('\n');
    const deployment = [
      'ports:',
      `  in: { type: pcap, path: ${input} }`,
      `  out: { type: pcap, path: ${join(dir, 'out.pcap')} }`,
      'nfs:',
      '  fw:',
      '    image: builtin/firewall',
      `    placement: ${placement}`,
      '    config:',
      '      default: accept',
      '      rules:',
      rules,
      '        - { action: drop, protocol: udp, dstPort: 9 }',
      '  nat:',
      '    image: builtin/nat',
      `    placement: ${placement}`,
      '    config: { external: 203.0.113.1, inside: 198.18.0.0/16, maxFlows: 65536 }',
      'chains:',
      '  - { from: in, through: [fw, nat], to: out }',
      '',
    ].join('\n');
    const file = join(dir, 'deploy.yaml');
    writeFileSync(file, deployment);
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const started = performance.now();
    const output = execFileSync(process.execPath, [cli, 'run', file, '--json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 300_000,
    });
    const seconds = (performance.now() - started) / 1000;
    const mpps = packets / seconds / 1e6;
    // The summary's `seconds` is the host's run(), its guests' start (`startSeconds`) in it; the
    // rest of the wall time is the process's start-up (modules, deployment, images) and exit.
    const summary = JSON.parse(output.toString()) as { seconds: number; startSeconds: number };
    const movingSeconds = summary.seconds - summary.startSeconds;
    const guestStartSeconds = summary.startSeconds;
    console.log(
      `  ${prefix}nfvisor run (${placement}), pcap → firewall (20 rules) → NAT → pcap, ${packets} × 64 B: ${seconds.toFixed(2)} s start to exit, ${mpps.toFixed(3)} Mpps (${movingSeconds.toFixed(2)} s moving packets: ${(packets / movingSeconds / 1e6).toFixed(3)} Mpps; ${guestStartSeconds.toFixed(2)} s starting guests)`,
    );
    return { placement, packets, seconds, mpps, movingSeconds, guestStartSeconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A steady rate, or why there is none. */
function formatSteady(mpps: number | undefined): string {
  return mpps === undefined ? 'too short' : mpps.toFixed(3);
}

interface ModesReport {
  trials: number;
  results: ModeResult[];
  scaling: ChainLengthResult[];
  ratios: Record<'64 B' | 'IMIX', Spread | undefined>;
  whole: WholeRunResult[];
  coresBefore: CoreCapacity;
  coresAfter: CoreCapacity;
}

function writeResults(report: ModesReport): void {
  const { trials, results, scaling, ratios, whole } = report;
  const dir = new URL('../../bench/results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const of = (pick: (t: ChainTrial) => number | undefined, digits: number) => (r: { trials: ChainTrial[] }) =>
    formatSpread(over(r.trials, pick), digits, 'too short');
  const mpps = of((t) => t.mpps, 3);
  const steady = of((t) => t.steadyMpps, 3);
  const md = [
    `# vNIC modes — ${new Date().toISOString().slice(0, 10)}, ${machine}`,
    '',
    'Chain firewall → NAT → load balancer, frames replayed from memory into the pool, sink output.',
    '',
    `Machine: before the runs, ${describeCoreCapacity(report.coresBefore)}; after them, ${describeCoreCapacity(report.coresAfter)}. The isolated modes run a thread per NF and one for the host on these cores: the 3-NF chain's 4 threads get half a core each at best.`,
    '',
    `Each figure is the median of ${trials} trial${trials === 1 ? '' : 's'}, run in rounds of every row${trials > 1 ? ', with the lowest and highest in parentheses' : ''}. Mpps counts from the host's run() on: the guests' start ("ready", ms) and their code's warm-up are in it. "after ${WARMUP_S} s" leaves the first ${WARMUP_S} s after the guests were ready out — a trial after a learning period (RFC 2544 §23), the rate the chain keeps.`,
    '',
    `| frames | mode | Mpps | Mpps after ${WARMUP_S} s | ready (ms) | CPU s per 10⁶ packets | latency p50 (µs) | latency p99 (µs) |`,
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.frames} | ${r.label} | ${mpps(r)} | ${steady(r)} | ${formatSpread(
          over(r.trials, (t) => t.readyMs),
          0,
        )} | ${formatSpread(
          over(r.trials, (t) => t.cpuPerMillion),
          2,
        )} | ${formatSpread(
          over(r.trials, (t) => t.p50),
          0,
        )} | ${formatSpread(
          over(r.trials, (t) => t.p99),
          0,
        )} |`,
    ),
    '',
    `direct / emulated (within each round): ${formatSpread(ratios['64 B'], 1)}× at 64 B, ${formatSpread(ratios.IMIX, 1)}× at IMIX.`,
    '',
    `| chain length (direct) | Mpps | Mpps after ${WARMUP_S} s |`,
    '|---:|---:|---:|',
    ...scaling.map((s) => `| ${s.length} | ${mpps(s)} | ${steady(s)} |`),
    '',
    ...whole.map((w) => {
      const seconds = spread(w.trials.map((t) => t.seconds));
      const rate = spread(w.trials.map((t) => t.mpps));
      const moving = spread(w.trials.map((t) => t.movingSeconds));
      const movingRate = spread(w.trials.map((t) => t.packets / t.movingSeconds / 1e6));
      const guests = spread(w.trials.map((t) => t.guestStartSeconds));
      return `\`nfvisor run\`, pcap → firewall (20 rules) → NAT → pcap, ${w.placement === 'inline' ? 'both NFs `placement: inline`' : 'guests isolated (the default)'}, ${w.trials[0]?.packets ?? 0} × 64 B, start to exit: ${formatSpread(seconds, 2)} s, ${formatSpread(rate, 3)} Mpps; of which ${formatSpread(moving, 2)} s moving packets (${formatSpread(movingRate, 3)} Mpps) and ${formatSpread(guests, 2)} s starting guests; the rest the process's start-up (modules, deployment, images) and exit.\n`;
    }),
    '',
    '![modes](modes.svg)',
    '',
    '![latency](modes-latency.svg)',
    '',
  ].join('\n');
  writeFileSync(new URL('modes.md', dir), md);
  writeFileSync(new URL('modes.svg', dir), rateChart(results, trials));
  writeFileSync(new URL('modes-latency.svg', dir), latencyChart(results, trials));
  console.log(`  wrote bench/results/modes.md, modes.svg and modes-latency.svg`);
}

/** Bars of one kind in a grouped chart: each mode's figure over its trials, or undefined for none. */
interface BarGroup {
  name: string;
  color: string;
  value: (mode: string) => Spread | undefined;
}

/** Mpps per mode, 64 B and IMIX side by side. */
function rateChart(results: ModeResult[], trials: number): string {
  const of = (frames: string, pick: (t: ChainTrial) => number | undefined) => (mode: string) => {
    const r = results.find((x) => x.label === mode && x.frames === frames);
    return r === undefined ? undefined : over(r.trials, pick);
  };
  return barChart(
    'firewall → NAT → load balancer: Mpps by vNIC mode (log scale)',
    medianNote(trials),
    [...new Set(results.map((r) => r.label))],
    [
      { name: '64 B', color: '#4e79a7', value: of('64 B', (t) => t.mpps) },
      { name: `64 B after ${WARMUP_S} s`, color: '#76b7b2', value: of('64 B', (t) => t.steadyMpps) },
      { name: 'IMIX', color: '#f28e2b', value: of('IMIX', (t) => t.mpps) },
    ],
    [0.001, 0.01, 0.1, 1, 10],
    (v) => v.toFixed(3),
    String,
  );
}

/** Port-to-port latency per mode at 64 B, p50 and p99: the price of each mode in delay. */
function latencyChart(results: ModeResult[], trials: number): string {
  const of = (pick: (t: ChainTrial) => number) => (mode: string) => {
    const r = results.find((x) => x.label === mode && x.frames === '64 B');
    return r === undefined ? undefined : over(r.trials, pick);
  };
  return barChart(
    'firewall → NAT → LB at 64 B: port-to-port latency by vNIC mode (log scale)',
    medianNote(trials),
    [...new Set(results.map((r) => r.label))],
    [
      { name: 'p50', color: '#59a14f', value: of((t) => t.p50) },
      { name: 'p99', color: '#e15759', value: of((t) => t.p99) },
    ],
    [10, 100, 1000, 10_000, 100_000, 1_000_000],
    formatMicros,
  );
}

/** What a chart's bars are, when they are medians (beside the legend). */
function medianNote(trials: number): string {
  return trials > 1 ? `bars: median of ${trials} trials; whiskers: lowest–highest` : '';
}

/** A grouped bar chart on a log scale, as plain SVG: one slot per mode, one bar per group in it. */
function barChart(
  title: string,
  note: string,
  modes: string[],
  groups: BarGroup[],
  ticks: number[],
  label: (value: number) => string,
  tickLabel: (value: number) => string = label,
): string {
  const width = 640;
  const height = 330;
  const left = 60;
  const bottom = 40;
  const top = 30;
  const values = modes.flatMap((m) => groups.map((g) => g.value(m)?.high ?? 0));
  const floor = ticks[0];
  const minLog = Math.log10(floor);
  const maxLog = Math.log10(Math.max(...values, floor) * 2);
  const y = (v: number): number =>
    top + (height - top - bottom) * (1 - (Math.log10(Math.max(v, floor)) - minLog) / (maxLog - minLog));
  const slot = (width - left - 20) / modes.length;
  const bars: string[] = [];
  modes.forEach((mode, m) => {
    groups.forEach((group, g) => {
      const figure = group.value(mode);
      if (figure === undefined) return;
      const value = figure.median;
      const x = left + m * slot + 10 + (g * (slot - 20)) / groups.length;
      const w = (slot - 20) / groups.length - 4;
      bars.push(
        `<rect x="${x.toFixed(1)}" y="${y(value).toFixed(1)}" width="${w.toFixed(1)}" height="${(height - bottom - y(value)).toFixed(1)}" fill="${group.color}"/>`,
      );
      // The trials' range as a whisker, the label above whichever is higher.
      let labelY = y(value);
      if (figure.count > 1) {
        const cx = (x + w / 2).toFixed(1);
        const [lo, hi] = [y(figure.low).toFixed(1), y(figure.high).toFixed(1)];
        const [x0, x1] = [(x + w / 2 - 3).toFixed(1), (x + w / 2 + 3).toFixed(1)];
        bars.push(
          `<path d="M${cx} ${lo}V${hi}M${x0} ${lo}H${x1}M${x0} ${hi}H${x1}" stroke="#333" stroke-width="1" fill="none"/>`,
        );
        labelY = Math.min(labelY, y(figure.high));
      }
      bars.push(
        `<text x="${(x + w / 2).toFixed(1)}" y="${(labelY - 4).toFixed(1)}" font-size="10" text-anchor="middle">${label(value)}</text>`,
      );
    });
    bars.push(
      `<text x="${(left + m * slot + slot / 2).toFixed(1)}" y="${height - bottom + 16}" font-size="12" text-anchor="middle">${mode}</text>`,
    );
  });
  const axis = ticks
    .filter((t) => Math.log10(t) <= maxLog)
    .map(
      (t) =>
        `<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" font-size="10" text-anchor="end">${tickLabel(t)}</text><line x1="${left}" x2="${width - 10}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/>`,
    );
  // Each legend entry as wide as its name (~6.5 px a character at 11 px) and its swatch.
  let legendX = left;
  const legend = groups.map((group) => {
    const x = legendX;
    legendX += 30 + Math.ceil(group.name.length * 6.5);
    return `<rect x="${x}" y="${height - 14}" width="10" height="10" fill="${group.color}"/><text x="${x + 15}" y="${height - 5}" font-size="11">${group.name}</text>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">${title}</text>`,
    ...axis,
    ...bars,
    ...legend,
    `<text x="${width - 10}" y="${height - 5}" font-size="10" text-anchor="end" fill="#555">${note}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
