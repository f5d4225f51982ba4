/**
 * load-balancer: a layer-4 load balancer for IPv4 virtual IPs, with Maglev consistent hashing and
 * a connection table.
 *
 * Each service is `vip:port` (TCP, UDP or both) with a pool of weighted backends, each active or
 * draining. A client's first packet to a service picks a backend from the service's Maglev table
 * (`maglev.ts`) by the symmetric hash of its 5-tuple (`FlowKey.symmetricHash`), so every replica
 * with the same pool makes the same choice; the choice goes into the connection table
 * (`conn-table.ts`), and every later packet of the connection goes to that backend, whatever
 * happens to the pool since. The destination of client → VIP packets is rewritten to the backend;
 * the source of the backend's replies is rewritten back to the VIP, found through the table (or,
 * for a connection the table does not hold, through the backend's address and port). Checksums are
 * patched incrementally (RFC 1624; a UDP checksum of 0 stays 0). Everything else passes untouched.
 * Only the IP header changes: delivering the frame to the backend (MAC addresses, routing) is the
 * next hop's job.
 *
 * Draining backends take no new connections but keep their established ones; removed backends
 * keep theirs too, until they close or time out. The pool changes at run time through
 * `setBackends()`; `restore()` carries the connections and a changed pool across a restart.
 *
 *   backend registry (id < REGISTRY_SIZE):  regService/regAddr/regState/regRefs/regPackets[id]
 *     regState: 0 free, 1 active, 2 draining, 3 removed (kept while connections still use it)
 *   service s: svcVip/svcPort/svcProtocols[s], tables[s] (Uint16Array of registry ids)
 *   serviceIndex: (vip, port) → s;   backendIndex: (backend address, port) → registry id
 *
 * A TCP segment with FIN or RST shortens its connection's timeout to `tcpClosingTimeoutSeconds`;
 * a SYN to a closing connection starts a new one (the client reused its port). A full connection
 * table is not a drop: the packet goes to the backend Maglev picks, untracked (`untracked`).
 *
 * A fragment to a VIP is dropped (`fragment`): later fragments carry no ports to hash, so the
 * pieces of one datagram could reach different backends. Fragments from a backend pass untouched.
 */
import { formatIpv4, parseIpv4 } from '../../src/packet/address.js';
import { rewriteIpv4Address, type L4ChecksumSite } from '../../src/packet/checksum.js';
import { DropReason } from '../../src/packet/drop-reason.js';
import { FlowKey } from '../../src/packet/flow-key.js';
import { IpProtocol } from '../../src/packet/ip-protocol.js';
import { Ipv4Field } from '../../src/packet/ipv4.js';
import { Layer, PacketParser } from '../../src/packet/packet-parser.js';
import { TcpField, TcpFlag } from '../../src/packet/tcp.js';
import { UdpField } from '../../src/packet/udp.js';
import { defineNf, type NfInstance } from '../../src/sdk/index.js';
import { ConnTable } from './conn-table.js';
import { maglevTableSize, populateMaglev } from './maglev.js';

export { maglevTableSize, populateMaglev } from './maglev.js';

export type Protocol = 'tcp' | 'udp' | 'any';
export type BackendState = 'active' | 'draining';

export interface BackendConfig {
  address: string;
  weight?: number;
  state?: BackendState;
}

export interface ServiceConfig {
  vip: string;
  port: number;
  protocol: Protocol;
  backends: BackendConfig[];
}

export interface LoadBalancerConfig {
  vip: string;
  port: number;
  backends: string[];
  protocol: Protocol;
  services: ServiceConfig[];
  maxConnections: number;
  tcpTimeoutSeconds: number;
  tcpClosingTimeoutSeconds: number;
  udpTimeoutSeconds: number;
}

/** A backend as `backendStats()` reports it. */
export interface BackendStats {
  address: string;
  weight: number;
  state: BackendState | 'removed';
  /** Connections in the table that use it. */
  connections: number;
  /** Packets sent to it. */
  packets: number;
  /** Slots it owns in the service's Maglev table. */
  slots: number;
}

export interface ServicePlan {
  vip: string;
  port: number;
  protocols: readonly number[];
  tableSize: number;
  backends: readonly { address: string; weight: number; state: BackendState }[];
}

export interface LoadBalancerInstance extends NfInstance {
  /** The compiled configuration (current pools), for `nfvisor` to print. */
  readonly plan: { readonly services: readonly ServicePlan[]; readonly maxConnections: number };
  /** Connections in the table. */
  connections(): number;
  /** Per-backend figures of service `service`: the pool's members, then removed ones still in use. */
  backendStats(service: number): BackendStats[];
  /** The backend address (dotted) the Maglev table of `service` gives a flow hash, or '' if none. */
  lookup(service: number, symmetricHash: number): string;
  /**
   * Replaces the pool of service `service` (add, remove, drain, reweight). Validates first and
   * throws, changing nothing, for a bad pool. Established connections keep their backends.
   */
  setBackends(service: number, backends: readonly BackendConfig[]): void;
  /** A digest of the whole state (pools, tables, connections, counts), equal after snapshot → restore. */
  stateDigest(): string;
}

/** What `snapshot()` returns (version 2). */
interface LbSnapshot {
  version: 2;
  /** The configured services, as text: restore carries run-time pool changes only onto the same. */
  configured: string;
  services: { vip: string; port: number; backends: BackendConfig[] }[];
  registry: { service: number; address: number; packets: number }[];
  connections: {
    service: Uint16Array;
    client: Int32Array;
    backend: Int32Array;
    ports: Int32Array;
    proto: Uint8Array;
    closing: Uint8Array;
    lastSeen: Float64Array;
    timeout: Float64Array;
  };
}

const MAX_SERVICES = 64;
const MAX_BACKENDS = 256;
/**
 * Every service's Maglev table has the same prime size, ≥ 100 × the largest pool (25,601): Maglev
 * moves few flows only while the size stays put, so it must not follow the pool's size.
 */
const TABLE_SIZE = maglevTableSize(MAX_BACKENDS);
const REGISTRY_SIZE = 2 * MAX_SERVICES * MAX_BACKENDS; // room for removed backends still in use
const FREE = 0;
const ACTIVE = 1;
const DRAINING = 2;
const REMOVED = 3;
const TCP_BIT = 1;
const UDP_BIT = 2;
const NS = 1e9;
/** Entries `tick()` looks at per call, and `process()` when the table is full. */
const SWEEP_BUDGET = 4096;
const FULL_SWEEP_BUDGET = 64;

/** A big-endian 32-bit word as int32 (never a heap number). */
function read32s(b: Uint8Array, at: number): number {
  return (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
}

function protocolBits(protocol: Protocol): number {
  return protocol === 'tcp' ? TCP_BIT : protocol === 'udp' ? UDP_BIT : TCP_BIT | UDP_BIT;
}

/** A small open-addressing map (a, b) → value with a protocol mask per value; built off the packet path. */
class PairIndex {
  readonly keyA: Int32Array;
  readonly keyB: Int32Array;
  readonly value: Int32Array; // value + 1; 0 = empty
  readonly bits: Uint8Array;
  readonly mask: number;

  constructor(items: number) {
    let size = 16;
    while (size < 4 * items) size *= 2;
    this.keyA = new Int32Array(size);
    this.keyB = new Int32Array(size);
    this.value = new Int32Array(size);
    this.bits = new Uint8Array(size);
    this.mask = size - 1;
  }

  static slot(a: number, b: number): number {
    let h = Math.imul(a ^ Math.imul(b, 0x85ebca6b), 0x9e3779b9);
    h ^= h >>> 15;
    return Math.imul(h, 0xc2b2ae35) ^ (h >>> 13);
  }

  add(a: number, b: number, value: number, bits: number): void {
    let s = PairIndex.slot(a, b) & this.mask;
    while (this.value[s] !== 0) s = (s + 1) & this.mask;
    this.keyA[s] = a;
    this.keyB[s] = b;
    this.value[s] = value + 1;
    this.bits[s] = bits;
  }

  /** The value of (a, b) whose mask has `bit`, or -1. */
  find(a: number, b: number, bit: number): number {
    let s = PairIndex.slot(a, b) & this.mask;
    for (;;) {
      const v = this.value[s];
      if (v === 0) return -1;
      if (this.keyA[s] === a && this.keyB[s] === b && (this.bits[s] & bit) !== 0) return v - 1;
      s = (s + 1) & this.mask;
    }
  }
}

interface PoolMember {
  address: string;
  addr: number;
  weight: number;
  state: BackendState;
}

/** Checks a pool (pure): addresses, duplicates, the VIP itself, weights. */
function compilePool(backends: readonly BackendConfig[], vip: number, path: string): PoolMember[] {
  if (backends.length > MAX_BACKENDS)
    throw new Error(`${path}: must have at most ${MAX_BACKENDS} entries (got ${backends.length})`);
  const seen = new Map<number, number>();
  return backends.map((backend, b) => {
    const address = parseIpv4(backend.address);
    if (address <= 0) throw new Error(`${path}[${b}]: not a usable IPv4 address (got "${backend.address}")`);
    if ((address | 0) === vip)
      throw new Error(`${path}[${b}]: a backend cannot be the VIP (${backend.address})`);
    const twice = seen.get(address);
    if (twice !== undefined)
      throw new Error(`${path}[${b}]: ${backend.address} is listed twice (${path}[${twice}])`);
    seen.set(address, b);
    const weight = backend.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000)
      throw new Error(`${path}[${b}].weight: must be an integer 1–1000 (got ${weight})`);
    const state = backend.state ?? 'active';
    if (state !== 'active' && state !== 'draining')
      throw new Error(`${path}[${b}].state: must be active or draining (got ${String(state)})`);
    return { address: formatIpv4(address), addr: address | 0, weight, state };
  });
}

/** The services a configuration declares: `services`, or the one-service shorthand `vip`/`port`/`backends`. */
function servicesOf(config: LoadBalancerConfig): ServiceConfig[] {
  const shorthand = config.vip !== '' || config.port !== 0 || config.backends.length > 0;
  if (shorthand && config.services.length > 0)
    throw new Error(
      'services: give either services or the one-service shorthand vip/port/backends, not both',
    );
  if (!shorthand) {
    if (config.services.length === 0) throw new Error('services: at least one service is needed');
    return config.services;
  }
  if (config.port < 1) throw new Error(`port: must be ≥ 1 (got ${config.port})`);
  if (config.backends.length === 0) throw new Error('backends: at least one backend is needed');
  return [
    {
      vip: config.vip,
      port: config.port,
      protocol: config.protocol,
      backends: config.backends.map((address) => ({ address, weight: 1, state: 'active' as const })),
    },
  ];
}

function backendSchema() {
  return {
    type: 'object',
    description: 'a backend',
    properties: {
      address: { type: 'string', description: 'the backend IPv4 address, listening on the service port' },
      weight: {
        type: 'integer',
        default: 1,
        minimum: 1,
        maximum: 1000,
        description: 'its share of new connections, relative to the other backends',
      },
      state: {
        type: 'string',
        enum: ['active', 'draining'],
        default: 'active',
        description: 'draining: takes no new connections, keeps its established ones',
      },
    },
  } as const;
}

export default defineNf<LoadBalancerConfig>({
  name: 'load-balancer',
  summary:
    'L4 load balancer: VIPs to weighted backend pools by Maglev hashing; connections keep their backend.',
  outputs: ['out'],
  drops: {
    malformed: 'the packet parser refused the frame (truncated, bad length or header checksum)',
    fragment: 'an IPv4 fragment to a VIP (fragments cannot be balanced without reassembly)',
    no_backend: 'a new connection to a service whose backends are all draining',
  },
  counters: {
    to_backend: { unit: 'packets', description: 'packets to a service rewritten to a backend' },
    from_backend: {
      unit: 'packets',
      description: 'packets from a backend rewritten to come from the VIP',
    },
    passed: { unit: 'packets', description: 'other packets, sent on untouched' },
    connections_new: { unit: 'connections', description: 'connections added to the connection table' },
    connections_expired: { unit: 'connections', description: 'connections forgotten after their timeout' },
    untracked: {
      unit: 'connections',
      description: 'new connections sent on without an entry because the connection table was full',
    },
  },
  config: {
    vip: {
      type: 'string',
      default: '',
      description: 'one-service shorthand: the virtual IPv4 address (use `services` for several)',
    },
    port: {
      type: 'integer',
      default: 0,
      minimum: 0,
      maximum: 65535,
      description: 'one-service shorthand: the service port, on the VIP and the backends',
    },
    backends: {
      type: 'array',
      default: [],
      maxItems: MAX_BACKENDS,
      items: { type: 'string', description: 'a backend IPv4 address' },
      description: 'one-service shorthand: backend IPv4 addresses (1–256), weight 1, active',
    },
    protocol: {
      type: 'string',
      enum: ['tcp', 'udp', 'any'],
      default: 'any',
      description: 'one-service shorthand: the transport balanced: tcp, udp or any (both)',
    },
    services: {
      type: 'array',
      default: [],
      maxItems: MAX_SERVICES,
      description: 'the services (1–64), when not using the shorthand',
      items: {
        type: 'object',
        description: 'a service',
        properties: {
          vip: { type: 'string', description: 'the virtual IPv4 address clients connect to' },
          port: {
            type: 'integer',
            minimum: 1,
            maximum: 65535,
            description: 'the service port, on the VIP and the backends',
          },
          protocol: {
            type: 'string',
            enum: ['tcp', 'udp', 'any'],
            default: 'any',
            description: 'the transport balanced: tcp, udp or any (both)',
          },
          backends: {
            type: 'array',
            maxItems: MAX_BACKENDS,
            items: backendSchema(),
            description: 'the pool (0–256 backends)',
          },
        },
      },
    },
    maxConnections: {
      type: 'integer',
      default: 262144,
      minimum: 16,
      maximum: 1 << 22,
      description: 'connections tracked at most',
    },
    tcpTimeoutSeconds: {
      type: 'integer',
      default: 900,
      minimum: 1,
      maximum: 604800,
      description: 'idle time after which a TCP connection is forgotten',
    },
    tcpClosingTimeoutSeconds: {
      type: 'integer',
      default: 10,
      minimum: 1,
      maximum: 604800,
      description: 'idle time after which a TCP connection that sent FIN or RST is forgotten',
    },
    udpTimeoutSeconds: {
      type: 'integer',
      default: 300,
      minimum: 1,
      maximum: 604800,
      description: 'idle time after which a UDP flow is forgotten',
    },
  },
  create(config, ctx): LoadBalancerInstance {
    // ---- configure: pure validation, nothing acquired yet -------------------------------------
    const services = servicesOf(config);
    const nServices = services.length;
    const seenService = new Map<string, number>();
    const compiled = services.map((service, s) => {
      const path = config.services.length > 0 ? `services[${s}]` : '';
      const p = (field: string): string => (path === '' ? field : `${path}.${field}`);
      const vipU = parseIpv4(service.vip);
      if (vipU <= 0) throw new Error(`${p('vip')}: not a usable IPv4 address (got "${service.vip}")`);
      const bits = protocolBits(service.protocol);
      for (const bit of [TCP_BIT, UDP_BIT]) {
        if ((bits & bit) === 0) continue;
        const id = `${vipU}:${service.port}/${bit}`;
        const other = seenService.get(id);
        if (other !== undefined)
          throw new Error(`${p('port')}: ${service.vip}:${service.port} is already services[${other}]`);
        seenService.set(id, s);
      }
      return {
        vip: vipU | 0,
        port: service.port,
        protocol: service.protocol,
        bits,
        pool: compilePool(service.backends, vipU | 0, p('backends')),
      };
    });
    const configuredSignature = JSON.stringify(services);

    // ---- initialize: the tables ----------------------------------------------------------------
    const svcVip = new Int32Array(nServices);
    const svcPort = new Int32Array(nServices);
    const svcBits = new Uint8Array(nServices);
    const tables: Uint16Array[] = [];
    const tableSize = new Int32Array(nServices);
    const pools: PoolMember[][] = [];
    const serviceIndex = new PairIndex(2 * nServices);
    const vips = new Int32Array(nServices);
    let nVips = 0;
    const regService = new Uint16Array(REGISTRY_SIZE);
    const regAddr = new Int32Array(REGISTRY_SIZE);
    const regState = new Uint8Array(REGISTRY_SIZE);
    const regWeight = new Uint16Array(REGISTRY_SIZE);
    const regRefs = new Int32Array(REGISTRY_SIZE);
    const regPackets = new Float64Array(REGISTRY_SIZE);
    let backendIndex = new PairIndex(REGISTRY_SIZE);

    const conns = new ConnTable(config.maxConnections);
    const tcpTimeout = config.tcpTimeoutSeconds * NS;
    const tcpClosingTimeout = config.tcpClosingTimeoutSeconds * NS;
    const udpTimeout = config.udpTimeoutSeconds * NS;

    /** The registry id of `addr` in service `s` that is not free, or -1. */
    function registered(s: number, addr: number): number {
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] !== FREE && regService[id] === s && regAddr[id] === addr) return id;
      return -1;
    }

    function rebuildBackendIndex(): void {
      let used = 0;
      for (let id = 0; id < REGISTRY_SIZE; id++) if (regState[id] !== FREE) used++;
      const index = new PairIndex(Math.max(16, used));
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] !== FREE)
          index.add(regAddr[id], svcPort[regService[id]], id, svcBits[regService[id]]);
      backendIndex = index;
    }

    /** Installs a validated pool for service `s`: registry ids, Maglev table, indexes. */
    function installPool(s: number, pool: PoolMember[]): void {
      // Count the ids needed before touching anything, so a failure changes nothing.
      const reuse = pool.map((m) => registered(s, m.addr));
      let freeIds = 0;
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] === FREE || (regState[id] === REMOVED && regRefs[id] === 0)) freeIds++;
      const needed = reuse.filter((id) => id < 0).length;
      if (needed > freeIds)
        throw new Error(`backends: no room for ${needed} new backends (removed ones still hold connections)`);
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] === REMOVED && regRefs[id] === 0) {
          regState[id] = FREE;
          regPackets[id] = 0;
        }
      const inPool = new Set<number>();
      const ids = pool.map((m, i) => {
        let id = reuse[i];
        if (id < 0) {
          id = regState.indexOf(FREE);
          regService[id] = s;
          regAddr[id] = m.addr;
          regRefs[id] = 0;
          regPackets[id] = 0;
        }
        regState[id] = m.state === 'active' ? ACTIVE : DRAINING;
        regWeight[id] = m.weight;
        inPool.add(id);
        return id;
      });
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] !== FREE && regService[id] === s && !inPool.has(id)) {
          regState[id] = regRefs[id] > 0 ? REMOVED : FREE;
          if (regState[id] === FREE) regPackets[id] = 0;
        }
      // The Maglev table over the active members, in address order: the same set gives the same
      // table on every replica whatever the order of the list.
      const active = ids
        .map((id, i) => ({ id, member: pool[i] }))
        .filter(({ member }) => member.state === 'active')
        .sort((a, b) => (a.member.addr >>> 0) - (b.member.addr >>> 0));
      if (active.length === 0) {
        tables[s] = new Uint16Array(0);
        tableSize[s] = 0;
      } else {
        const size = TABLE_SIZE;
        const positions = populateMaglev(
          active.map(({ member }) => member.address),
          active.map(({ member }) => member.weight),
          size,
        );
        const table = new Uint16Array(size);
        for (let slot = 0; slot < size; slot++) table[slot] = active[positions[slot]].id;
        tables[s] = table;
        tableSize[s] = size;
      }
      pools[s] = pool;
      rebuildBackendIndex();
    }

    compiled.forEach((service, s) => {
      svcVip[s] = service.vip;
      svcPort[s] = service.port;
      svcBits[s] = service.bits;
      serviceIndex.add(service.vip, service.port, s, service.bits);
      if (!vips.subarray(0, nVips).includes(service.vip)) vips[nVips++] = service.vip;
    });
    compiled.forEach((service, s) => installPool(s, service.pool));

    // L4 checksums are not verified: a forwarding NF passes a segment's checksum on (patched
    // incrementally where it rewrites), as routers and netfilter do; the end host verifies it.
    // Header checks — lengths, IPv4 header checksum, options — still apply to every packet.
    const parser = new PacketParser({ maxTunnelDepth: 0, verifyChecksums: false });
    const key = new FlowKey();
    const site: L4ChecksumSite = { at: -1, udp: false };
    const dMalformed = ctx.dropReason('malformed');
    const dFragment = ctx.dropReason('fragment');
    const dNoBackend = ctx.dropReason('no_backend');
    const cTo = ctx.counter('to_backend');
    const cFrom = ctx.counter('from_backend');
    const cPassed = ctx.counter('passed');
    const cNew = ctx.counter('connections_new');
    const cExpired = ctx.counter('connections_expired');
    const cUntracked = ctx.counter('untracked');
    let expiredSinceBatch = 0;
    const onExpire = (e: number): void => {
      regRefs[conns.backendId[e]]--;
      expiredSinceBatch++;
    };

    function isVip(address: number): boolean {
      for (let v = 0; v < nVips; v++) if (vips[v] === address) return true;
      return false;
    }

    function forget(e: number): void {
      regRefs[conns.backendId[e]]--;
      conns.remove(e);
    }

    /** Registry id the Maglev table of `s` gives `hash`, or -1 when no backend is active. */
    function pick(s: number, hash: number): number {
      const size = tableSize[s];
      return size === 0 ? -1 : tables[s][(hash >>> 0) % size];
    }

    function currentPlan(): { services: ServicePlan[]; maxConnections: number } {
      return {
        services: compiled.map((service, s) => ({
          vip: formatIpv4(service.vip >>> 0),
          port: service.port,
          protocols: [
            ...(service.bits & TCP_BIT ? [IpProtocol.Tcp] : []),
            ...(service.bits & UDP_BIT ? [IpProtocol.Udp] : []),
          ],
          tableSize: tableSize[s],
          backends: pools[s].map((m) => ({ address: m.address, weight: m.weight, state: m.state })),
        })),
        maxConnections: config.maxConnections,
      };
    }

    function checkService(s: number): void {
      if (!Number.isInteger(s) || s < 0 || s >= nServices)
        throw new Error(`service ${s}: there are ${nServices} services (0–${nServices - 1})`);
    }

    function backendStats(s: number): BackendStats[] {
      checkService(s);
      const stats = (id: number, state: BackendStats['state']): BackendStats => {
        let slots = 0;
        for (const owner of tables[s]) if (owner === id) slots++;
        return {
          address: formatIpv4(regAddr[id] >>> 0),
          weight: regWeight[id],
          state,
          connections: regRefs[id],
          packets: regPackets[id],
          slots,
        };
      };
      const out = pools[s].map((m) => stats(registered(s, m.addr), m.state));
      const removed: number[] = [];
      for (let id = 0; id < REGISTRY_SIZE; id++)
        if (regState[id] === REMOVED && regService[id] === s) removed.push(id);
      removed.sort((x, y) => (regAddr[x] >>> 0) - (regAddr[y] >>> 0));
      for (const id of removed) out.push(stats(id, 'removed'));
      return out;
    }

    /** The live connections, as plain records (for snapshots and digests). */
    function connectionRecords(): {
      service: number;
      client: number;
      backend: number;
      ports: number;
      proto: number;
      closing: number;
      lastSeen: number;
      timeout: number;
    }[] {
      const out = [];
      for (let e = 0; e < conns.capacity; e++)
        if (conns.used[e] === 1)
          out.push({
            service: conns.service[e],
            client: conns.client[e],
            backend: conns.backend[e],
            ports: conns.ports[e],
            proto: conns.proto[e],
            closing: conns.closing[e],
            lastSeen: conns.lastSeen[e],
            timeout: conns.timeout[e],
          });
      return out;
    }

    const instance: LoadBalancerInstance = {
      get plan() {
        return currentPlan();
      },

      connections: () => conns.size,
      backendStats,

      lookup(s, hash) {
        checkService(s);
        const id = pick(s, hash);
        return id < 0 ? '' : formatIpv4(regAddr[id] >>> 0);
      },

      setBackends(s, backends) {
        checkService(s);
        installPool(s, compilePool(backends, svcVip[s], 'backends'));
      },

      process(batch, now) {
        let toBackend = 0;
        let fromBackend = 0;
        let passed = 0;
        let added = 0;
        let untracked = 0;
        const bytes = batch.bytes;
        for (let i = 0; i < batch.count; i++) {
          const reason = parser.attach(bytes, batch.at[i], batch.length[i]);
          if (reason !== DropReason.None) {
            batch.drop(i, dMalformed);
            ctx.malformed(parser.failedLayer, reason);
            continue;
          }
          const protocol = parser.protocol;
          if (parser.l3 !== Layer.Ipv4 || (protocol !== IpProtocol.Tcp && protocol !== IpProtocol.Udp)) {
            passed++;
            continue;
          }
          const ipAt = parser.ipv4.at;
          const dstAt = ipAt + Ipv4Field.Dst;
          const srcAt = ipAt + Ipv4Field.Src;
          const dst = read32s(bytes, dstAt);
          if (parser.fragment) {
            if (isVip(dst)) batch.drop(i, dFragment);
            else passed++;
            continue;
          }
          // An unfragmented TCP/UDP packet the parser accepted has its L4 header.
          let l4At: number;
          let flags = 0;
          if (parser.l4 === Layer.Tcp) {
            l4At = parser.tcp.at;
            site.at = l4At + TcpField.Checksum;
            site.udp = false;
            flags = bytes[l4At + 13];
          } else if (parser.l4 === Layer.Udp) {
            l4At = parser.udp.at;
            site.at = l4At + UdpField.Checksum;
            site.udp = true;
          } else {
            passed++;
            continue;
          }
          const bit = protocol === IpProtocol.Tcp ? TCP_BIT : UDP_BIT;
          const srcPort = (bytes[l4At] << 8) | bytes[l4At + 1];
          const dstPort = (bytes[l4At + 2] << 8) | bytes[l4At + 3];
          const src = read32s(bytes, srcAt);
          const closingFlags = (flags & (TcpFlag.Fin | TcpFlag.Rst)) !== 0;

          const s = serviceIndex.find(dst, dstPort, bit);
          if (s >= 0) {
            // Client → VIP.
            const ports = (srcPort << 16) | dstPort;
            let e = conns.findForward(src, dst, ports, protocol);
            if (
              e >= 0 &&
              (conns.expired(e, now) ||
                (conns.closing[e] === 1 && (flags & (TcpFlag.Syn | TcpFlag.Ack)) === TcpFlag.Syn))
            ) {
              if (conns.expired(e, now)) expiredSinceBatch++;
              forget(e);
              e = -1;
            }
            let backend: number;
            if (e >= 0) {
              backend = conns.backend[e];
              regPackets[conns.backendId[e]]++;
            } else {
              parser.flowKey(key);
              const id = pick(s, key.symmetricHash());
              if (id < 0) {
                batch.drop(i, dNoBackend);
                continue;
              }
              backend = regAddr[id];
              regPackets[id]++;
              const timeout = protocol === IpProtocol.Tcp ? tcpTimeout : udpTimeout;
              if (conns.size === conns.capacity) conns.sweep(now, FULL_SWEEP_BUDGET, onExpire);
              e = conns.insert(src, dst, backend, ports, protocol, s, id, now, timeout);
              if (e < 0) untracked++;
              else {
                regRefs[id]++;
                added++;
              }
            }
            if (e >= 0) {
              conns.lastSeen[e] = now;
              if (closingFlags) {
                conns.closing[e] = 1;
                conns.timeout[e] = tcpClosingTimeout;
              }
            }
            rewriteIpv4Address(bytes, ipAt, dstAt, backend, site);
            toBackend++;
            continue;
          }

          const id = backendIndex.find(src, srcPort, bit);
          if (id >= 0) {
            // Backend → client: through the connection table, else by the backend's service.
            const e = conns.findReply(src, dst, (dstPort << 16) | srcPort, protocol);
            let vip: number;
            if (e >= 0 && !conns.expired(e, now)) {
              vip = conns.vip[e];
              conns.lastSeen[e] = now;
              if (closingFlags) {
                conns.closing[e] = 1;
                conns.timeout[e] = tcpClosingTimeout;
              }
            } else if (regState[id] === ACTIVE || regState[id] === DRAINING) {
              vip = svcVip[regService[id]];
            } else {
              passed++;
              continue;
            }
            rewriteIpv4Address(bytes, ipAt, srcAt, vip, site);
            fromBackend++;
            continue;
          }
          passed++;
        }
        const c = ctx.counters;
        c[cTo] += toBackend;
        c[cFrom] += fromBackend;
        c[cPassed] += passed;
        c[cNew] += added;
        c[cUntracked] += untracked;
        c[cExpired] += expiredSinceBatch;
        expiredSinceBatch = 0;
      },

      tick(now) {
        conns.sweep(now, SWEEP_BUDGET, onExpire);
        ctx.counters[cExpired] += expiredSinceBatch;
        expiredSinceBatch = 0;
      },

      snapshot(): LbSnapshot {
        const plan = currentPlan();
        const registry = [];
        for (let id = 0; id < REGISTRY_SIZE; id++)
          if (regState[id] !== FREE)
            registry.push({ service: regService[id], address: regAddr[id], packets: regPackets[id] });
        const records = connectionRecords();
        return {
          version: 2,
          configured: configuredSignature,
          services: plan.services.map((s) => ({
            vip: s.vip,
            port: s.port,
            backends: s.backends.map((b) => ({ ...b })),
          })),
          registry,
          connections: {
            service: Uint16Array.from(records, (r) => r.service),
            client: Int32Array.from(records, (r) => r.client),
            backend: Int32Array.from(records, (r) => r.backend),
            ports: Int32Array.from(records, (r) => r.ports),
            proto: Uint8Array.from(records, (r) => r.proto),
            closing: Uint8Array.from(records, (r) => r.closing),
            lastSeen: Float64Array.from(records, (r) => r.lastSeen),
            timeout: Float64Array.from(records, (r) => r.timeout),
          },
        };
      },

      restore(state) {
        // A snapshot of this configuration carries its run-time pool changes over; one of another
        // configuration keeps the configured pools. Connections come back either way, for every
        // service that still exists (matched by VIP and port), on the backends they had.
        const snap = state as Partial<LbSnapshot> | null;
        if (snap?.version !== 2 || !Array.isArray(snap.services)) return;
        const target = (vip: string, port: number): number =>
          compiled.findIndex((c) => formatIpv4(c.vip >>> 0) === vip && c.port === port);
        try {
          if (snap.configured === configuredSignature)
            for (const service of snap.services) {
              const s = target(service.vip, service.port);
              if (s >= 0) installPool(s, compilePool(service.backends, svcVip[s], 'backends'));
            }
        } catch {
          return; // a damaged snapshot: keep the configured state
        }
        const serviceMap = snap.services.map((s) => target(s.vip, s.port));
        const c = snap.connections;
        let changedRegistry = false;
        const n = c?.client?.length ?? 0;
        if (c !== undefined)
          for (let k = 0; k < n && conns.size < conns.capacity; k++) {
            const s = serviceMap[c.service[k]] ?? -1;
            if (s < 0) continue;
            const backend = c.backend[k] | 0;
            let id = registered(s, backend);
            if (id < 0) {
              id = regState.indexOf(FREE);
              if (id < 0) continue;
              regService[id] = s;
              regAddr[id] = backend;
              regState[id] = REMOVED;
              regWeight[id] = 1;
              regRefs[id] = 0;
              regPackets[id] = 0;
              changedRegistry = true;
            }
            const ports = c.ports[k] | 0;
            const proto = c.proto[k];
            if (conns.findForward(c.client[k] | 0, svcVip[s], ports, proto) >= 0) continue;
            const e = conns.insert(
              c.client[k] | 0,
              svcVip[s],
              backend,
              ports,
              proto,
              s,
              id,
              c.lastSeen[k],
              c.timeout[k],
            );
            conns.closing[e] = c.closing[k];
            regRefs[id]++;
          }
        if (changedRegistry) rebuildBackendIndex();
        for (const r of snap.registry ?? []) {
          const s = serviceMap[r.service] ?? -1;
          if (s < 0) continue;
          const id = registered(s, r.address);
          if (id >= 0) regPackets[id] = r.packets;
        }
      },

      stateDigest() {
        const lines: string[] = [JSON.stringify(currentPlan())];
        for (let s = 0; s < nServices; s++) {
          lines.push(JSON.stringify(backendStats(s)));
          let h = 0x811c9dc5;
          for (const id of tables[s]) h = Math.imul(h ^ regAddr[id], 0x01000193);
          lines.push(`table ${s} ${h >>> 0}`);
        }
        const records = connectionRecords().map((r) =>
          [r.service, r.client, r.ports, r.proto, r.backend, r.closing, r.lastSeen, r.timeout].join(' '),
        );
        records.sort();
        lines.push(...records);
        let h = 0x811c9dc5;
        const text = lines.join('\n');
        for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
        return `${(h >>> 0).toString(16).padStart(8, '0')}:${records.length}:${text.length}`;
      },
    };
    return instance;
  },
});
