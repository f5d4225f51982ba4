/**
 * The shape of a deployment file as JSON Schema (TypeBox), before references, addresses and
 * cross-field rules are checked. Every object rejects unknown keys. Ports are checked in two steps:
 * `PortHeaderSchema` first (is `type` known?), then the schema of that type from `PortSchemas`, so an
 * error names the field that is wrong instead of "matches none of three shapes".
 *
 * Custom keyword `errorMessage` on a schema replaces the generic wording of its errors.
 */
import { Type, type TSchema } from './typebox.js';

/** A string that must be one of `values`; reported as "must be one of a, b, c (got …)". */
function oneOf<const T extends readonly string[]>(values: T) {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { errorMessage: `must be one of ${values.join(', ')}` },
  );
}

const int = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum });
const fraction = () => Type.Number({ minimum: 0, maximum: 1 });

export const VNIC_MODES = ['direct', 'paravirt', 'emulated'] as const;
export const PLACEMENTS = ['isolated', 'inline'] as const;
export const FAILURE_POLICIES = ['fail-closed', 'fail-open'] as const;
/** What an NF image's code may use beyond the SDK (src/image/capabilities.ts CAPABILITIES; a test keeps them equal). */
export const NF_CAPABILITIES = ['fs', 'net', 'http', 'dgram', 'child_process', 'worker_threads'] as const;
export const PORT_TYPES = ['pcap', 'generator', 'sink', 'vxlan', 'geneve', 'tap'] as const;

export const PoolSchema = Type.Object(
  { slots: Type.Optional(int(16, 1 << 20)), slotSize: Type.Optional(int(128, 65600)) },
  { additionalProperties: false },
);

/** The process memory budget and the overload thresholds (fractions of it). */
export const MemorySchema = Type.Object(
  {
    limitMb: int(16, 1 << 24),
    rejectNewAt: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    shedAt: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);

export const PortHeaderSchema = Type.Object({ type: oneOf(PORT_TYPES) }, { additionalProperties: true });

export const PcapPortSchema = Type.Object(
  {
    type: Type.Literal('pcap'),
    path: Type.String({ minLength: 1 }),
    format: Type.Optional(oneOf(['pcap', 'pcapng'] as const)),
  },
  { additionalProperties: false },
);

/** The options of src/io/traffic-generator.ts `GeneratorOptions`, all optional. */
export const GeneratorPortSchema = Type.Object(
  {
    type: Type.Literal('generator'),
    seed: Type.Optional(int(0, 0xffffffff)),
    packets: Type.Optional(int(0, Number.MAX_SAFE_INTEGER)),
    frameSize: Type.Optional(
      Type.Union([Type.Literal('imix'), int(60, 9000)], {
        errorMessage: "must be 'imix' or an integer 60…9000",
      }),
    ),
    flows: Type.Optional(int(1, 1 << 20)),
    distribution: Type.Optional(oneOf(['uniform', 'zipf'] as const)),
    zipfExponent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10 })),
    mix: Type.Optional(
      Type.Object(
        {
          tcp: Type.Optional(Type.Number({ minimum: 0 })),
          udp: Type.Optional(Type.Number({ minimum: 0 })),
          icmp: Type.Optional(Type.Number({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    ipv6: Type.Optional(fraction()),
    vlan: Type.Optional(fraction()),
    qinq: Type.Optional(fraction()),
    vxlan: Type.Optional(fraction()),
    geneve: Type.Optional(fraction()),
    tcpSessions: Type.Optional(Type.Boolean()),
    startSeconds: Type.Optional(int(0, 0xffffffff)),
    ratePps: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1e12 })),
  },
  { additionalProperties: false },
);

export const SinkPortSchema = Type.Object({ type: Type.Literal('sink') }, { additionalProperties: false });

const TunnelEndpointSchema = Type.Object(
  { address: Type.String({ minLength: 1 }), port: Type.Optional(int(1, 65535)) },
  { additionalProperties: false },
);

/** A live tunnel endpoint (src/io/vxlan-port.ts, geneve-port.ts): read and written by chains. */
const tunnelPortSchema = (type: 'vxlan' | 'geneve'): TSchema =>
  Type.Object(
    {
      type: Type.Literal(type),
      bind: TunnelEndpointSchema,
      remote: Type.Optional(TunnelEndpointSchema),
      vni: int(0, 0xffffff),
      slots: Type.Optional(int(16, 1 << 16)),
    },
    { additionalProperties: false },
  );

/** A TAP or TUN device (src/io/tap-port.ts, needs the native addon): read and written by chains. */
export const TapPortSchema = Type.Object(
  {
    type: Type.Literal('tap'),
    device: Type.String({ minLength: 1, maxLength: 15 }),
    mode: Type.Optional(
      Type.Union([Type.Literal('tap'), Type.Literal('tun')], { errorMessage: "must be 'tap' or 'tun'" }),
    ),
    /** Frames the device holds for nfvisor (its txqueuelen); default 4,096. */
    queueLength: Type.Optional(int(1, 1 << 20)),
    /** TSO and checksum offloads with the kernel: TCP super-packets (needs pool.slotSize ≥ 65,600). */
    offload: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const PortSchemas: Record<(typeof PORT_TYPES)[number], TSchema> = {
  pcap: PcapPortSchema,
  generator: GeneratorPortSchema,
  sink: SinkPortSchema,
  vxlan: tunnelPortSchema('vxlan'),
  geneve: tunnelPortSchema('geneve'),
  tap: TapPortSchema,
};

export const ImagesSchema = Type.Object(
  {
    store: Type.Optional(Type.String({ minLength: 1 })),
    trustPolicy: Type.Optional(Type.String({ minLength: 1 })),
    allowUnsigned: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/**
 * An IPFIX exporter of a flow-monitor NF's records (src/io/ipfix-exporter.ts), or an EVE exporter
 * of an ids NF's alerts (src/io/eve-exporter.ts).
 */
export const ExporterSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('ipfix'), Type.Literal('eve')]),
    nf: Type.String({ minLength: 1 }),
    udp: Type.Optional(
      Type.Object(
        { address: Type.String({ minLength: 1 }), port: int(1, 65535) },
        { additionalProperties: false },
      ),
    ),
    file: Type.Optional(Type.String({ minLength: 1 })),
    intervalMs: Type.Optional(int(100, 3_600_000)),
  },
  { additionalProperties: false },
);

export const NfSchema = Type.Object(
  {
    image: Type.String({ minLength: 1 }),
    vnic: Type.Optional(oneOf(VNIC_MODES)),
    placement: Type.Optional(oneOf(PLACEMENTS)),
    replicas: Type.Optional(int(1, 64)),
    heapMb: Type.Optional(int(8, 4096)),
    failure: Type.Optional(oneOf(FAILURE_POLICIES)),
    capabilities: Type.Optional(Type.Array(oneOf(NF_CAPABILITIES), { uniqueItems: true, maxItems: 6 })),
    config: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);

const portMatch = () =>
  Type.Union([int(0, 65535), Type.String()], { errorMessage: 'must be a port 0…65535 or a range lo-hi' });

export const MatchSchema = Type.Object(
  {
    src: Type.Optional(Type.String()),
    dst: Type.Optional(Type.String()),
    protocol: Type.Optional(
      Type.Union([int(0, 255), Type.String()], {
        errorMessage: 'must be a protocol name (tcp, udp, icmp, …) or a number 0…255',
      }),
    ),
    srcPort: Type.Optional(portMatch()),
    dstPort: Type.Optional(portMatch()),
    inPort: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ChainSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    from: Type.String(),
    match: Type.Optional(MatchSchema),
    through: Type.Optional(Type.Array(Type.String())),
    to: Type.String(),
  },
  { additionalProperties: false },
);

/** The whole file; ports are only checked for a known `type` here (see the module comment). */
export const DeploymentFileSchema = Type.Object(
  {
    pool: Type.Optional(PoolSchema),
    ringSize: Type.Optional(int(2, 65536)),
    batch: Type.Optional(int(1, 256)),
    queueTargetMs: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
    memory: Type.Optional(MemorySchema),
    ports: Type.Record(Type.String(), PortHeaderSchema),
    nfs: Type.Optional(Type.Record(Type.String(), NfSchema)),
    chains: Type.Array(ChainSchema, { minItems: 1 }),
    images: Type.Optional(ImagesSchema),
    exporters: Type.Optional(Type.Array(ExporterSchema, { maxItems: 16 })),
  },
  { additionalProperties: false },
);
