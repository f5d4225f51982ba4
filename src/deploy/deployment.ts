/**
 * The normalized deployment: what `parseDeployment` returns once a deployment file has passed every
 * check. Every default is filled in, every name reference is known to resolve, every address and
 * port range is parsed, and relative file paths are resolved against the deployment file's folder.
 * The host consumes this and never looks at the file's text again.
 */
import type { GeneratorOptions } from '../io/traffic-generator.js';

/** Shared-memory buffer pool: `slots` fixed-size slots of `slotSize` bytes (the mbuf analogue). */
export interface PoolSpec {
  slots: number;
  slotSize: number;
}

/**
 * The host's memory budget (resident set, MiB): from `rejectNewAt` of it new TCP connections and
 * guest starts are refused, from `shedAt` every arriving packet is dropped (see host/overload.ts).
 */
export interface MemorySpec {
  limitMb: number;
  rejectNewAt: number;
  shedAt: number;
}

/** How a pcap port is used by the chains: read as a chain's `from`, written as a `to`, or not at all. */
export type PortRole = 'read' | 'write' | 'unused';

/** A capture file: read when it is some chain's `from`, written when it is some chain's `to`. */
export interface PcapPortSpec {
  type: 'pcap';
  name: string;
  /** Absolute path (a relative path in the file is resolved against the file's folder). */
  path: string;
  /** pcap or pcapng; from `format`, else from the extension (`.pcapng` → pcapng). Readers detect it anyway. */
  format: 'pcap' | 'pcapng';
  role: PortRole;
}

/** The seeded traffic generator of src/io/traffic-generator.ts, with every option filled in. */
export interface GeneratorPortSpec {
  type: 'generator';
  name: string;
  options: GeneratorOptions;
}

/** Counts and discards what it is given. */
export interface SinkPortSpec {
  type: 'sink';
  name: string;
}

/** A live VXLAN or GENEVE tunnel endpoint: frames arrive from and leave into the tunnel. */
export interface TunnelPortSpec {
  type: 'vxlan' | 'geneve';
  name: string;
  bind: { address: string; port?: number };
  /** Where frames are sent; without it each flow is answered in the tunnel it arrived in. */
  remote?: { address: string; port?: number };
  vni: number;
  slots?: number;
}

/**
 * A TAP device (Ethernet frames) or TUN device (IP packets, presented to chains with a synthesized
 * Ethernet header): created or attached to when the host starts, through the native addon.
 */
export interface TapPortSpec {
  type: 'tap';
  name: string;
  /** Interface name (≤ 15 bytes; `%d` lets the kernel number it). */
  device: string;
  mode: 'tap' | 'tun';
  /** Frames the device holds for nfvisor (its txqueuelen); absent: the port's default. */
  queueLength?: number;
  /** TSO and checksum offloads with the kernel: TCP super-packets cross the chains whole. */
  offload?: boolean;
}

export type PortSpec = PcapPortSpec | GeneratorPortSpec | SinkPortSpec | TunnelPortSpec | TapPortSpec;
export type PortType = PortSpec['type'];

export type VnicMode = 'direct' | 'paravirt' | 'emulated';
export type Placement = 'isolated' | 'inline';
export type FailurePolicy = 'fail-closed' | 'fail-open';

/** Where an NF image comes from: a built-in NF by name, or an image file. */
export type ImageSource =
  | { kind: 'builtin'; name: string }
  | { kind: 'path'; path: string }
  /** An image in the store, by `name:tag`, `name@sha256:…` or `sha256:…`; where it was written. */
  | { kind: 'store'; ref: string; line: number; column: number };

/** Where images come from and what is trusted (the `images` section of a deployment). */
export interface ImagesSpec {
  /** Image store folder; default `$NFVISOR_HOME/images` (or ~/.nfvisor/images). */
  store?: string;
  /** Trust policy file; default `$NFVISOR_HOME/trust-policy.json`. */
  trustPolicy?: string;
  /** Run images that carry no trusted signature. Off unless said explicitly. */
  allowUnsigned: boolean;
}

/** One network function and how its guests run. */
export interface NfSpec {
  name: string;
  /** The image as written (`builtin/firewall`, `./images/fw.nfimg`). */
  image: string;
  source: ImageSource;
  vnic: VnicMode;
  placement: Placement;
  /** Guests started for this NF (1…64); flows are spread over them. */
  replicas: number;
  /** Heap limit of each guest's isolate, in MiB (8…4096). */
  heapMb: number;
  /** What happens to its traffic while a guest is down: dropped (fail-closed) or passed on (fail-open). */
  failure: FailurePolicy;
  /** Passed to the NF as written; checked by `ParseOptions.validateNfConfig` when one is given. */
  config: Record<string, unknown>;
  /**
   * What an image's code may use beyond the SDK (`fs`, `net`, `dgram` …), with where the field is
   * written; absent when the file grants nothing. Must be exactly what the image's manifest asks for.
   */
  capabilities?: { granted: string[]; line: number; column: number };
}

/** An IPv4 prefix: `address` and `mask` are unsigned 32-bit numbers, host bits of `address` zero. */
export interface Ipv4Cidr {
  version: 4;
  address: number;
  mask: number;
  prefixLength: number;
  /** Canonical text, e.g. `10.0.0.0/8`. */
  text: string;
}

/** An IPv6 prefix: 16 bytes with host bits zero. */
export interface Ipv6Cidr {
  version: 6;
  bytes: Uint8Array;
  prefixLength: number;
  /** Canonical (RFC 5952) text, e.g. `2001:db8::/32`. */
  text: string;
}

export type Cidr = Ipv4Cidr | Ipv6Cidr;

/** An inclusive range of transport ports, `lo ≤ hi`; a single port has `lo === hi`. */
export interface PortRange {
  lo: number;
  hi: number;
}

/** What a chain takes from its port; an empty match takes everything. All fields must match. */
export interface MatchSpec {
  src?: Cidr;
  dst?: Cidr;
  /** IP protocol number (names in the file are translated: tcp → 6). */
  protocol?: number;
  srcPort?: PortRange;
  dstPort?: PortRange;
  /** Always the chain's `from` port when present (anything else could never match). */
  inPort?: string;
}

/** One chain: packets from `from` that match go through the NFs in order and out to `to`. */
export interface ChainSpec {
  /** As written, or `chain-<index>`. */
  name: string;
  from: string;
  match: MatchSpec;
  through: string[];
  to: string;
}

/**
 * A validated deployment. Chains sharing a `from` port are tried in this order; the first that
 * matches takes the packet, and a packet no chain matches is dropped (and counted) by the host.
 */
export interface Deployment {
  /** The file it came from, as given to `parseDeployment` or `loadDeployment`. */
  file: string;
  pool: PoolSpec;
  /** Descriptor ring capacity (a power of two). */
  ringSize: number;
  /** Packets per burst (1…256). */
  batch: number;
  /**
   * The standing delay, in ms, that packets may meet in the chains when the input outruns them:
   * the host lets fewer in while it is longer (src/host/queue-limit.ts). 0: as many as the pool holds.
   */
  queueTargetMs: number;
  /** No memory monitor when absent. */
  memory?: MemorySpec;
  ports: Record<string, PortSpec>;
  nfs: Record<string, NfSpec>;
  chains: ChainSpec[];
  images: ImagesSpec;
  exporters: ExporterSpec[];
}

/**
 * `ipfix`: exports a flow-monitor NF's ended flows as IPFIX (RFC 7011) to a UDP collector and/or a
 * file. `eve`: appends an ids NF's alerts to a file as EVE JSON lines (src/io/eve-exporter.ts).
 */
export interface ExporterSpec {
  type: 'ipfix' | 'eve';
  /** The flow-monitor (ipfix) or ids (eve) NF instance whose records are exported. */
  nf: string;
  udp?: { address: string; port: number };
  /** Absolute path of an IPFIX file (RFC 5655), or of the EVE file. */
  file?: string;
  intervalMs: number;
}

/** The defaults of the global settings. */
export const DEPLOYMENT_DEFAULTS = {
  pool: { slots: 8192, slotSize: 2048 },
  // Deep rings and long bursts: a chain's threads outnumber two cores, so each turn of a thread on
  // a core should move as much as it can (fw → NAT → LB direct, 6 interleaved runs at ~11:00 on
  // 2026-12-07: 0.47 Mpps with 1024 and 32, 0.68–0.70 with 4096 and 128 or 256; inline 1.77
  // against 1.99–3.04).
  // 128 rather than 256: a paravirt guest copies a burst into slot-sized private buffers, and 256
  // of them (512 KiB) no longer fit its core's cache (the demo's paravirt row lost 17–35 %). The
  // price of deep rings is latency at saturation: a full ring is a queue (demo p50 1 → 12 ms).
  ringSize: 4096,
  batch: 128,
  // Without a limit, deep rings and the pool were one long queue at saturation (direct fw → NAT →
  // LB: p50 3–10 ms, p99 0.05–0.37 s); two standing milliseconds keep the threads as busy
  // (src/host/queue-limit.ts QUEUE_TARGET_MS says why not one).
  queueTargetMs: 2,
  vnic: 'direct',
  placement: 'isolated',
  replicas: 1,
  heapMb: 64,
  failure: 'fail-closed',
} as const;
