/**
 * `/metrics`: the host's status in the Prometheus text exposition format. prom-client cannot
 * aggregate across worker threads, so guests publish their counters in shared memory, the host
 * sums them (`host.status()`), and each scrape builds a fresh prom-client registry from that one
 * snapshot: every number in a scrape comes from the same instant, and nothing is kept between
 * scrapes (an NF that goes away takes its series with it).
 *
 * Families:
 *   nfvisor_packets_{received,originated,sent,lost}_total    host-wide
 *   nfvisor_packets_dropped_total{nf,reason}                 nf="" for the host's own drops
 *   nfvisor_port_packets_sent_total{port}
 *   nfvisor_instance_{packets,restarts}_total{nf}            what the host measures of each NF
 *   nfvisor_instance_{quarantined,replicas}{nf}              gauges
 *   nfvisor_nf_<counter>_total{nf,image}                     each NF's own declared counters, unit in HELP
 *   nfvisor_nf_<counter>{nf,image}                           … those declared as gauges
 *   nfvisor_pool_slots, nfvisor_pool_free_slots              gauges
 *   nfvisor_queue_limit_packets                              gauge: packets let into the chains at once
 *   nfvisor_latency_{p50,p99,max}_seconds                    port-to-port latency gauges
 *   nfvisor_running, nfvisor_uptime_seconds                  gauges
 */
import { readdir } from 'node:fs/promises';
import { Counter, Gauge, Registry } from 'prom-client';
import { builtinModule } from '../host/host.js';
import type { CounterSpec } from '../sdk/define-nf.js';
import type { HostStatus } from './schemas.js';

/** Counter declarations by image name (`NfSummary.image`, the definition's `name`). */
export type CounterSpecs = ReadonlyMap<string, Readonly<Record<string, CounterSpec>>>;

/**
 * A declared counter is a gauge when its description says so ("flows in the table now (a gauge)").
 * TODO(sdk): let CounterSpec declare `kind: 'counter' | 'gauge'` and read that instead.
 */
function isGauge(spec: CounterSpec | undefined): boolean {
  return spec !== undefined && /\ba gauge\b/i.test(spec.description);
}

/** `rule_hits`, `ruleHits`, `rule-hits` → `rule_hits`: a valid metric name fragment. */
export function metricFragment(name: string): string {
  const snake = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return snake === '' ? 'unnamed' : /^[0-9]/.test(snake) ? `_${snake}` : snake;
}

/** Renders one scrape. */
export async function renderMetrics(
  status: HostStatus,
  specs: CounterSpecs = new Map(),
): Promise<{ contentType: string; text: string }> {
  const registers = [new Registry()];
  const registry = registers[0];
  const counter = (name: string, help: string, labelNames: string[] = []): Counter =>
    new Counter({ name, help, labelNames, registers });
  const gauge = (name: string, help: string, labelNames: string[] = []): Gauge =>
    new Gauge({ name, help, labelNames, registers });

  counter('nfvisor_packets_received_total', 'Packets read from every input port (packets).').inc(
    status.received,
  );
  counter(
    'nfvisor_packets_originated_total',
    'Packets the NFs made themselves: keepalives, handshake retries (packets).',
  ).inc(status.originated);
  counter('nfvisor_packets_sent_total', 'Packets written to every output port (packets).').inc(status.sent);
  counter(
    'nfvisor_packets_lost_total',
    'Packets lost in guest failures: in flight in an NF when it failed or was restarted (packets).',
  ).inc(status.lost);
  const dropped = counter(
    'nfvisor_packets_dropped_total',
    'Packets dropped, by NF and named reason; nf is empty for the host’s own drops (packets).',
    ['nf', 'reason'],
  );
  for (const [reason, n] of Object.entries(status.hostDrops)) dropped.inc({ nf: '', reason }, n);
  for (const nf of status.nfs)
    for (const [reason, n] of Object.entries(nf.drops)) dropped.inc({ nf: nf.name, reason }, n);

  const portSent = counter(
    'nfvisor_port_packets_sent_total',
    'Packets written to an output port (packets).',
    ['port'],
  );
  for (const [port, counts] of Object.entries(status.ports)) portSent.inc({ port }, counts.sent);

  const packets = counter('nfvisor_instance_packets_total', 'Packets an NF instance processed (packets).', [
    'nf',
  ]);
  const restarts = counter('nfvisor_instance_restarts_total', 'Times an NF instance was restarted.', ['nf']);
  const quarantined = gauge(
    'nfvisor_instance_quarantined',
    '1 when an NF instance broke the shared-memory rules and was stopped for good.',
    ['nf'],
  );
  const replicas = gauge('nfvisor_instance_replicas', 'Replicas of an NF instance.', ['nf']);
  for (const nf of status.nfs) {
    packets.inc({ nf: nf.name }, nf.packets);
    restarts.inc({ nf: nf.name }, nf.restarts);
    quarantined.set({ nf: nf.name }, nf.quarantined ? 1 : 0);
    replicas.set({ nf: nf.name }, nf.replicas);
  }

  // Each NF's declared counters: one family per counter name, labelled by instance and image.
  const families = new Map<string, Counter | Gauge>();
  for (const nf of status.nfs) {
    for (const [name, value] of Object.entries(nf.counters)) {
      const spec = specs.get(nf.image)?.[name];
      const asGauge = isGauge(spec);
      const family = `nfvisor_nf_${metricFragment(name)}${asGauge ? '' : '_total'}`;
      let metric = families.get(family);
      if (metric === undefined) {
        const help = counterHelp(name, status, specs);
        metric = asGauge ? gauge(family, help, ['nf', 'image']) : counter(family, help, ['nf', 'image']);
        families.set(family, metric);
      }
      const labels = { nf: nf.name, image: nf.image };
      if (metric instanceof Gauge) metric.set(labels, value);
      else metric.inc(labels, Math.max(0, value));
    }
  }

  gauge('nfvisor_pool_slots', 'Packet buffer slots in the pool (slots).').set(status.poolSlots);
  gauge('nfvisor_pool_free_slots', 'Packet buffer slots free now (slots).').set(status.poolFree);
  gauge(
    'nfvisor_queue_limit_packets',
    'Packets the host lets into its chains at once now, adapted to the queue target (packets).',
  ).set(status.queueLimit);
  const latency = (q: 'p50' | 'p99' | 'max', what: string): void =>
    gauge(`nfvisor_latency_${q}_seconds`, `Port-to-port latency, ${what}, burst granularity (seconds).`).set(
      status.latencyUs[q] / 1e6,
    );
  latency('p50', 'median');
  latency('p99', '99th percentile');
  latency('max', 'maximum');
  if (status.overload) {
    const overload = status.overload;
    gauge('nfvisor_memory_pressure_ratio', 'Process memory in use as a fraction of the limit (ratio).').set(
      overload.pressure,
    );
    gauge(
      'nfvisor_overload_level',
      'Memory overload level: 0 normal, 1 rejecting new flows, 2 shedding.',
    ).set(['normal', 'reject_new', 'shed'].indexOf(overload.level));
  }
  gauge('nfvisor_running', '1 while the host moves packets, 0 once it stops.').set(status.running ? 1 : 0);
  gauge('nfvisor_uptime_seconds', 'Seconds since the host started (seconds).').set(status.seconds);
  return { contentType: registry.contentType, text: await registry.metrics() };
}

/** HELP for an NF counter: its description and unit; per image when images describe it differently. */
function counterHelp(name: string, status: HostStatus, specs: CounterSpecs): string {
  const texts = new Map<string, string[]>();
  for (const nf of status.nfs) {
    if (!(name in nf.counters)) continue;
    const spec = specs.get(nf.image)?.[name];
    const text = spec ? `${spec.description} (${spec.unit})` : '(unit not declared)';
    const images = texts.get(text) ?? [];
    if (!images.includes(nf.image)) images.push(nf.image);
    texts.set(text, images);
  }
  const prefix = `NF counter ${name}: `;
  if (texts.size === 1) return prefix + [...texts.keys()][0];
  return prefix + [...texts].map(([text, images]) => `${images.join(', ')}: ${text}`).join('; ');
}

/**
 * The counter declarations of the built-in NF images (dist/nfs/<name>/index.js next to the host),
 * so `/metrics` can give each counter its unit without the caller loading definitions. An image
 * that does not load is skipped.
 */
export async function builtinCounterSpecs(): Promise<CounterSpecs> {
  const specs = new Map<string, Readonly<Record<string, CounterSpec>>>();
  let names: string[];
  try {
    const root = new URL('..', builtinModule('x'));
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return specs;
  }
  for (const name of names) {
    try {
      const module = (await import(builtinModule(name))) as {
        default?: { name?: unknown; counters?: Record<string, CounterSpec> };
      };
      const definition = module.default;
      if (typeof definition?.name === 'string' && definition.counters)
        specs.set(definition.name, definition.counters);
    } catch {
      // Not an NF image (or not built): no units for it.
    }
  }
  return specs;
}
