/**
 * The deployment file, YAML or JSON, checked before anything starts: syntax, shape (schema.ts),
 * ranges, names, references between ports, NFs and chains, match fields, and each NF's config
 * through a hook. Every problem is collected and reported at once, each with file, line, column
 * and field path, as one NFV_ERR_DEPLOY_INVALID (DeploymentError). Nothing runs here.
 *
 * @example
 * const deployment = loadDeployment('deploy.yaml');
 * for (const chain of deployment.chains) console.log(chain.name, chain.from, '→', chain.through, '→', chain.to);
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { NfvError } from '../errors.js';
import { MAX_SUPER_FRAME, SUPER_PACKET_SLOT_SIZE } from '../io/tcp-offload.js';
import {
  DEFAULT_GENERATOR_OPTIONS,
  resolveGeneratorOptions,
  type GeneratorOptions,
} from '../io/traffic-generator.js';
import {
  DEPLOYMENT_DEFAULTS,
  type ChainSpec,
  type Deployment,
  type ImageSource,
  type MatchSpec,
  type MemorySpec,
  type NfSpec,
  type PortSpec,
  type PortType,
  type TunnelPortSpec,
  type ExporterSpec,
} from './deployment.js';
import { Issues, parseFieldPath, show } from './issues.js';
import { PORTED_PROTOCOLS, parseCidr, parsePortRange, parseProtocol, type Parsed } from './match-fields.js';
import { DeploymentFileSchema, PortSchemas } from './schema.js';
import { YamlSource, type PathSegment } from './yaml-source.js';

/** A problem an NF's config check found: `path` inside the config (`rules[0].src`), and why. */
export interface NfConfigProblem {
  path: string;
  message: string;
}

export interface ParseOptions {
  /**
   * Checks an NF's `config` for its image (e.g. against the schema in the image's manifest). The
   * problems it returns are reported at `nfs.<name>.config.<path>` with their line and column.
   */
  validateNfConfig?: (image: string, config: Record<string, unknown>) => readonly NfConfigProblem[];
  /** Folder that relative paths are resolved against; by default the folder of `file`. */
  baseDir?: string;
}

/** Names of ports, NFs and chains: what metrics labels, CLI arguments and logs can carry as is. */
const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const NAME_RULE = 'names must start with a letter and have only letters, digits, - and _ (at most 63)';
const BUILTIN_IMAGE = /^builtin\/[a-z][a-z0-9-]{0,62}$/;
/** `name:tag`, `name@sha256:<hex>` or `sha256:<hex>` (the grammar src/image checks in full). */
const STORE_REF =
  /^(?:sha256:[0-9a-f]{64}|[a-z0-9][a-z0-9._/-]*(?::[A-Za-z0-9_][A-Za-z0-9._-]*|@sha256:[0-9a-f]{64}))$/;
/** The largest frame of the 'imix' mix (see src/io/traffic-generator.ts). */
const IMIX_MAX_FRAME = 1514;

/**
 * Parses and checks a deployment. `file` names the source in messages and, unless
 * `options.baseDir` is given, is where relative paths are resolved from.
 * Throws DeploymentError (NFV_ERR_DEPLOY_INVALID) listing every problem.
 */
export function parseDeployment(text: string, file: string, options: ParseOptions = {}): Deployment {
  const source = new YamlSource(text);
  const issues = new Issues(file, source);
  if (!source.sound) {
    for (const p of source.problems) issues.addAt(p.line, p.column, p.message);
    issues.throwIfAny();
  }
  const built = source.value();
  for (const p of source.problems) issues.addAt(p.line, p.column, p.message);
  if (!built.ok) issues.throwIfAny();
  const baseDir = options.baseDir ?? dirname(resolve(file));
  const deployment = new Checker(issues, baseDir, options).check(built.ok ? built.value : undefined, file);
  issues.throwIfAny();
  if (deployment === undefined) throw new NfvError('NFV_ERR_DEPLOY_INVALID', 'invalid deployment', { file });
  return deployment;
}

/** Reads `path` (NFV_ERR_IO when it cannot be read) and parses it with `parseDeployment`. */
export function loadDeployment(path: string, options: ParseOptions = {}): Deployment {
  return parseDeployment(readDeploymentFile(path), path, options);
}

/** The text of deployment file `path`; NFV_ERR_IO naming the file when it cannot be read. */
export function readDeploymentFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new NfvError(
      'NFV_ERR_IO',
      `cannot read the deployment file (${code})`,
      { file: path },
      { cause: e },
    );
  }
}

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function entries(value: unknown): [string, unknown][] {
  return isRecord(value) ? Object.entries(value) : [];
}

/** Which way a chain uses a port, and where, for "read here, written there" messages. */
interface PortUse {
  role: 'read' | 'write';
  chain: string;
  path: readonly PathSegment[];
}

class Checker {
  /** Every port name written, with its type when that type is known. */
  private readonly portTypes = new Map<string, PortType | undefined>();
  private readonly nfNames = new Set<string>();
  private readonly portUses = new Map<string, PortUse>();
  /** TAP/TUN device names to the port that opens each. */
  private readonly tapDevices = new Map<string, string>();

  constructor(
    private readonly issues: Issues,
    private readonly baseDir: string,
    private readonly options: ParseOptions,
  ) {}

  check(value: unknown, file: string): Deployment | undefined {
    const issues = this.issues;
    issues.checkSchema(DeploymentFileSchema, value, []);
    if (!isRecord(value)) return undefined;

    const pool = {
      slots: this.pick(
        ['pool', 'slots'],
        isRecord(value.pool) ? value.pool.slots : undefined,
        DEPLOYMENT_DEFAULTS.pool.slots,
      ),
      slotSize: this.pick(
        ['pool', 'slotSize'],
        isRecord(value.pool) ? value.pool.slotSize : undefined,
        DEPLOYMENT_DEFAULTS.pool.slotSize,
      ),
    };
    const ringSize = this.pick(['ringSize'], value.ringSize, DEPLOYMENT_DEFAULTS.ringSize);
    if ((ringSize & (ringSize - 1)) !== 0)
      issues.add(['ringSize'], `must be a power of two (got ${ringSize})`);
    const batch = this.pick(['batch'], value.batch, DEPLOYMENT_DEFAULTS.batch);
    if (batch > ringSize) issues.add(['batch'], `must not exceed ringSize (${ringSize}) (got ${batch})`);
    const queueTargetMs = this.pick(
      ['queueTargetMs'],
      value.queueTargetMs,
      DEPLOYMENT_DEFAULTS.queueTargetMs,
    );

    const memory = this.memory(value.memory);

    const ports = new Map<string, PortSpec>();
    for (const [name, raw] of entries(value.ports)) {
      const spec = this.port(name, raw, pool.slotSize);
      if (spec !== undefined) ports.set(name, spec);
    }
    const nfs = new Map<string, NfSpec>();
    for (const [name, raw] of entries(value.nfs)) {
      const spec = this.nf(name, raw);
      if (spec !== undefined) nfs.set(name, spec);
    }
    const chains: { index: number; chain: ChainSpec }[] = [];
    const chainNames = new Map<string, number>();
    const rawChains = Array.isArray(value.chains) ? (value.chains as unknown[]) : [];
    rawChains.forEach((raw, index) => {
      const chain = this.chain(index, raw, chainNames);
      if (chain !== undefined) chains.push({ index, chain });
    });
    this.checkShadowed(chains);

    for (const [name, spec] of ports)
      if (spec.type === 'pcap') spec.role = this.portUses.get(name)?.role ?? 'unused';
    return {
      file,
      pool,
      ringSize,
      batch,
      queueTargetMs,
      ...(memory ? { memory } : {}),
      ports: Object.fromEntries(ports),
      nfs: Object.fromEntries(nfs),
      chains: chains.map((c) => c.chain),
      images: this.images(value.images),
      exporters: this.exporters(value.exporters, nfs),
    };
  }

  /** The `memory` section (its types were checked by the schema): thresholds in order. */
  private memory(raw: unknown): MemorySpec | undefined {
    if (!isRecord(raw) || typeof raw.limitMb !== 'number') return undefined;
    const rejectNewAt = typeof raw.rejectNewAt === 'number' ? raw.rejectNewAt : 0.95;
    const shedAt = typeof raw.shedAt === 'number' ? raw.shedAt : 0.98;
    if (rejectNewAt > shedAt)
      this.issues.add(['memory', 'rejectNewAt'], `must not exceed shedAt (${shedAt}) (got ${rejectNewAt})`);
    return { limitMb: raw.limitMb, rejectNewAt, shedAt };
  }

  /** The `exporters` section: each names an NF that exists; a file path is resolved. */
  private exporters(raw: unknown, nfs: ReadonlyMap<string, NfSpec>): Deployment['exporters'] {
    if (!Array.isArray(raw)) return [];
    const out: Deployment['exporters'] = [];
    raw.forEach((entry: unknown, index) => {
      if (!isRecord(entry) || typeof entry.nf !== 'string') return;
      if (!nfs.has(entry.nf)) {
        this.issues.add(['exporters', index, 'nf'], `unknown NF ${show(entry.nf)}${known(nfs.keys())}`);
        return;
      }
      const eve = entry.type === 'eve';
      if (eve && (entry.file === undefined || entry.udp !== undefined)) {
        this.issues.add(['exporters', index], 'an eve exporter writes a file: needs file, and no udp', 'key');
        return;
      }
      if (entry.udp === undefined && entry.file === undefined) {
        this.issues.add(['exporters', index], 'needs a udp collector, a file, or both', 'key');
        return;
      }
      out.push({
        type: eve ? 'eve' : 'ipfix',
        nf: entry.nf,
        udp: entry.udp as ExporterSpec['udp'],
        file: typeof entry.file === 'string' ? resolve(this.baseDir, entry.file) : undefined,
        intervalMs: typeof entry.intervalMs === 'number' ? entry.intervalMs : 1000,
      });
    });
    return out;
  }

  /** The `images` section: store and trust-policy paths resolved against the file's folder. */
  private images(raw: unknown): Deployment['images'] {
    const images = isRecord(raw) ? raw : {};
    const path = (value: unknown): string | undefined =>
      typeof value === 'string' ? resolve(this.baseDir, value) : undefined;
    return {
      store: path(images.store),
      trustPolicy: path(images.trustPolicy),
      allowUnsigned: images.allowUnsigned === true,
    };
  }

  /** The value at `path` when the schema found nothing wrong with it, else `fallback`. */
  private pick<T>(path: readonly PathSegment[], value: unknown, fallback: T): T {
    return value === undefined || this.issues.hasUnder(path) ? fallback : (value as T);
  }

  private name(path: readonly PathSegment[], name: string, anchor: 'key' | 'value' = 'key'): void {
    if (!NAME.test(name)) this.issues.add(path, `${NAME_RULE} (got ${show(name)})`, anchor);
  }

  private port(name: string, raw: unknown, slotSize: number): PortSpec | undefined {
    const at = ['ports', name];
    this.name(at, name);
    if (!isRecord(raw) || this.issues.hasUnder(at)) {
      this.portTypes.set(name, undefined);
      return undefined;
    }
    const type = raw.type as PortType;
    this.portTypes.set(name, type);
    if (this.issues.checkSchema(PortSchemas[type], raw, at) > 0) return undefined;
    switch (type) {
      case 'pcap': {
        const path = raw.path as string;
        const format =
          (raw.format as 'pcap' | 'pcapng' | undefined) ??
          (extname(path).toLowerCase() === '.pcapng' ? 'pcapng' : 'pcap');
        return { type, name, path: resolve(this.baseDir, path), format, role: 'unused' };
      }
      case 'generator': {
        const options = this.generatorOptions(at, raw);
        if (options === undefined) return undefined;
        const largest = options.frameSize === 'imix' ? IMIX_MAX_FRAME : options.frameSize;
        if (largest > slotSize)
          this.issues.add(
            raw.frameSize === undefined ? at : [...at, 'frameSize'],
            `frames of up to ${largest} bytes do not fit pool.slotSize (${slotSize})`,
          );
        return { type, name, options };
      }
      case 'sink':
        return { type, name };
      case 'vxlan':
      case 'geneve': {
        const tunnel = raw as Omit<TunnelPortSpec, 'name'>;
        return { type, name, bind: tunnel.bind, remote: tunnel.remote, vni: tunnel.vni, slots: tunnel.slots };
      }
      case 'tap': {
        const device = raw.device as string;
        if (/[\s/:]/.test(device) || device === '.' || device === '..') {
          this.issues.add(
            [...at, 'device'],
            `must be an interface name without spaces, '/' or ':' (got ${show(device)})`,
          );
          return undefined;
        }
        // One device, one port: a second open of the same TAP would fail with EBUSY at start.
        const holder = this.tapDevices.get(device);
        if (holder !== undefined) {
          this.issues.add([...at, 'device'], `device ${show(device)} is already port "${holder}"'s`);
          return undefined;
        }
        this.tapDevices.set(device, name);
        const queueLength = raw.queueLength as number | undefined;
        const offload = raw.offload === true;
        if (offload && slotSize < SUPER_PACKET_SLOT_SIZE) {
          this.issues.add(
            [...at, 'offload'],
            `brings TCP super-packets of up to ${MAX_SUPER_FRAME} bytes: pool.slotSize must be at least ` +
              `${SUPER_PACKET_SLOT_SIZE} (got ${slotSize})`,
          );
          return undefined;
        }
        return {
          type,
          name,
          device,
          mode: (raw.mode as 'tap' | 'tun' | undefined) ?? 'tap',
          ...(queueLength !== undefined ? { queueLength } : {}),
          ...(offload ? { offload } : {}),
        };
      }
    }
  }

  private generatorOptions(at: readonly PathSegment[], raw: Raw): GeneratorOptions | undefined {
    const { type: _type, ...partial } = raw as Partial<GeneratorOptions> & { type: string };
    const sum = (key: 'vlan' | 'qinq' | 'vxlan' | 'geneve') => partial[key] ?? 0;
    let bad = false;
    if (sum('vlan') + sum('qinq') > 1) {
      this.issues.add([...at, partial.qinq !== undefined ? 'qinq' : 'vlan'], 'vlan + qinq must not exceed 1');
      bad = true;
    }
    if (sum('vxlan') + sum('geneve') > 1) {
      this.issues.add(
        [...at, partial.geneve !== undefined ? 'geneve' : 'vxlan'],
        'vxlan + geneve must not exceed 1',
      );
      bad = true;
    }
    if (partial.mix !== undefined) {
      const mix = { ...DEFAULT_GENERATOR_OPTIONS.mix, ...(partial.mix as Partial<GeneratorOptions['mix']>) };
      if (mix.tcp + mix.udp + mix.icmp <= 0) {
        this.issues.add([...at, 'mix'], 'needs at least one positive weight');
        bad = true;
      }
    }
    if (bad) return undefined;
    try {
      return resolveGeneratorOptions(partial);
    } catch (e) {
      const field =
        e instanceof NfvError && typeof e.detail.field === 'string' ? e.detail.field.split('.') : [];
      this.issues.add([...at, ...field], e instanceof Error ? e.message : String(e));
      return undefined;
    }
  }

  private nf(name: string, raw: unknown): NfSpec | undefined {
    const at = ['nfs', name];
    this.name(at, name);
    this.nfNames.add(name);
    if (!isRecord(raw) || this.issues.hasUnder(at)) return undefined;
    const image = raw.image as string;
    const source = this.imageSource([...at, 'image'], image);
    const config = (raw.config as Record<string, unknown> | undefined) ?? {};
    if (source === undefined) return undefined;
    this.checkNfConfig(at, image, config);
    return {
      name,
      image,
      source,
      vnic: (raw.vnic as NfSpec['vnic'] | undefined) ?? DEPLOYMENT_DEFAULTS.vnic,
      placement: (raw.placement as NfSpec['placement'] | undefined) ?? DEPLOYMENT_DEFAULTS.placement,
      replicas: (raw.replicas as number | undefined) ?? DEPLOYMENT_DEFAULTS.replicas,
      heapMb: (raw.heapMb as number | undefined) ?? DEPLOYMENT_DEFAULTS.heapMb,
      failure: (raw.failure as NfSpec['failure'] | undefined) ?? DEPLOYMENT_DEFAULTS.failure,
      config,
      ...(raw.capabilities === undefined
        ? {}
        : {
            capabilities: {
              granted: [...(raw.capabilities as string[])],
              ...this.issues.locate([...at, 'capabilities']),
            },
          }),
    };
  }

  private imageSource(at: readonly PathSegment[], image: string): ImageSource | undefined {
    if (image.startsWith('builtin/')) {
      if (BUILTIN_IMAGE.test(image)) return { kind: 'builtin', name: image.slice('builtin/'.length) };
      this.issues.add(
        at,
        `must be builtin/<name> with a lowercase name of letters, digits and - (got ${show(image)})`,
      );
      return undefined;
    }
    // An image in the store: name:tag, name@sha256:…, or a bare sha256:… digest.
    if (STORE_REF.test(image) && !image.startsWith('.') && !image.startsWith('/')) {
      return { kind: 'store', ref: image, ...this.issues.locate(at) };
    }
    if (!image.includes('/') && !image.includes('.')) {
      this.issues.add(
        at,
        `must be builtin/<name> or the path of an image file (got ${show(image)}; did you mean builtin/${image}?)`,
      );
      return undefined;
    }
    return { kind: 'path', path: resolve(this.baseDir, image) };
  }

  private checkNfConfig(at: readonly PathSegment[], image: string, config: Record<string, unknown>): void {
    const hook = this.options.validateNfConfig;
    if (hook === undefined) return;
    const configAt = [...at, 'config'];
    let problems: unknown;
    try {
      problems = hook(image, config);
    } catch (e) {
      this.issues.add(configAt, `config check failed: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (!Array.isArray(problems)) return;
    for (const p of problems as unknown[]) {
      if (!isRecord(p)) continue;
      const path = typeof p.path === 'string' ? parseFieldPath(p.path) : [];
      this.issues.add([...configAt, ...path], typeof p.message === 'string' ? p.message : 'is not valid');
    }
  }

  private chain(index: number, raw: unknown, names: Map<string, number>): ChainSpec | undefined {
    const at: PathSegment[] = ['chains', index];
    if (!isRecord(raw)) return undefined;
    const valid = !this.issues.hasUnder(at);
    let name = `chain-${index}`;
    if (typeof raw.name === 'string' && !this.issues.hasUnder([...at, 'name'])) {
      name = raw.name;
      this.name([...at, 'name'], name, 'value');
    }
    const earlier = names.get(name);
    if (earlier !== undefined)
      this.issues.add(
        raw.name === undefined ? at : [...at, 'name'],
        `duplicate chain name "${name}" (chains[${earlier}])`,
      );
    else names.set(name, index);

    const from = this.endpoint([...at, 'from'], raw.from, 'read', name);
    const to = this.endpoint([...at, 'to'], raw.to, 'write', name);
    const through: string[] = [];
    if (Array.isArray(raw.through)) {
      raw.through.forEach((nf: unknown, j) => {
        if (typeof nf !== 'string') return;
        const path = [...at, 'through', j];
        if (!this.nfNames.has(nf))
          this.issues.add(path, `unknown NF ${show(nf)}${known(this.nfNames.keys())}`);
        else if (through.includes(nf)) this.issues.add(path, `NF "${nf}" appears twice in this chain`);
        through.push(nf);
      });
    }
    const match = isRecord(raw.match) ? this.match([...at, 'match'], raw.match, from) : {};
    if (!valid || from === undefined || to === undefined || match === undefined) return undefined;
    return { name, from, match, through, to };
  }

  /** A chain's `from` (read) or `to` (written): a known port that can be used that way. */
  private endpoint(
    path: readonly PathSegment[],
    value: unknown,
    role: 'read' | 'write',
    chain: string,
  ): string | undefined {
    if (typeof value !== 'string') return undefined;
    if (!this.portTypes.has(value)) {
      this.issues.add(path, `unknown port ${show(value)}${known(this.portTypes.keys())}`);
      return undefined;
    }
    const type = this.portTypes.get(value);
    if (type === undefined) return undefined; // the port itself is wrong, and reported
    if (role === 'read' && type === 'sink') {
      this.issues.add(path, `port "${value}" is a sink: it can be a chain's "to", not its "from"`);
      return undefined;
    }
    if (role === 'write' && type === 'generator') {
      this.issues.add(path, `port "${value}" is a generator: it can be a chain's "from", not its "to"`);
      return undefined;
    }
    if (type === 'pcap') {
      const use = this.portUses.get(value);
      if (use === undefined) this.portUses.set(value, { role, chain, path });
      else if (use.role !== role) {
        const verb = use.role === 'read' ? 'read' : 'written';
        this.issues.add(
          path,
          `pcap port "${value}" is ${verb} by chain "${chain === use.chain ? chain : use.chain}"; a capture file cannot be both read and written`,
        );
        return undefined;
      }
    }
    return value;
  }

  private match(at: readonly PathSegment[], raw: Raw, from: string | undefined): MatchSpec | undefined {
    const match: MatchSpec = {};
    let bad = false;
    const field = <T>(key: string, parse: (v: string | number) => Parsed<T>): T | undefined => {
      const value = raw[key];
      if ((typeof value !== 'string' && typeof value !== 'number') || this.issues.hasUnder([...at, key])) {
        if (value !== undefined) bad = true;
        return undefined;
      }
      const parsed = parse(value);
      if (parsed.ok) return parsed.value;
      this.issues.add([...at, key], parsed.message);
      bad = true;
      return undefined;
    };
    const cidr = (v: string | number) => parseCidr(String(v));
    const src = field('src', cidr);
    const dst = field('dst', cidr);
    const protocol = field('protocol', parseProtocol);
    const srcPort = field('srcPort', parsePortRange);
    const dstPort = field('dstPort', parsePortRange);
    if (src !== undefined) match.src = src;
    if (dst !== undefined) match.dst = dst;
    if (src !== undefined && dst !== undefined && src.version !== dst.version) {
      this.issues.add(
        [...at, 'dst'],
        `is IPv${dst.version} but src is IPv${src.version}: no packet has both`,
      );
      bad = true;
    }
    if (protocol !== undefined) match.protocol = protocol;
    if (srcPort !== undefined) match.srcPort = srcPort;
    if (dstPort !== undefined) match.dstPort = dstPort;
    if (protocol !== undefined && !PORTED_PROTOCOLS.includes(protocol)) {
      for (const key of ['srcPort', 'dstPort'] as const) {
        if (raw[key] === undefined) continue;
        this.issues.add(
          [...at, key],
          `protocol ${protocol} has no ports (only tcp, udp, sctp and udplite do)`,
        );
        bad = true;
      }
    }
    const inPort = raw.inPort;
    if (typeof inPort === 'string') {
      if (!this.portTypes.has(inPort)) {
        this.issues.add([...at, 'inPort'], `unknown port ${show(inPort)}${known(this.portTypes.keys())}`);
        bad = true;
      } else if (from !== undefined && inPort !== from) {
        this.issues.add([...at, 'inPort'], `never matches: this chain reads from port "${from}"`);
        bad = true;
      } else match.inPort = inPort;
    }
    return bad ? undefined : match;
  }

  /** A chain after one that takes everything from the same port would never see a packet. */
  private checkShadowed(chains: readonly { index: number; chain: ChainSpec }[]): void {
    const catchAll = new Map<string, string>();
    for (const { index, chain } of chains) {
      const earlier = catchAll.get(chain.from);
      if (earlier !== undefined)
        this.issues.add(
          ['chains', index, 'from'],
          `never gets a packet: chain "${earlier}" before it takes everything from port "${chain.from}"`,
        );
      const { inPort: _inPort, ...rest } = chain.match;
      if (Object.keys(rest).length === 0 && !catchAll.has(chain.from)) catchAll.set(chain.from, chain.name);
    }
  }
}

function known(names: Iterable<string>): string {
  const list = [...names];
  return list.length === 0 ? ' (none are defined)' : ` (defined: ${list.join(', ')})`;
}
