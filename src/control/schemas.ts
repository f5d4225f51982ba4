/**
 * The control API's request and response schemas (TypeBox, so they are JSON Schema as written and
 * TypeScript types at once). Every object is closed (`additionalProperties: false`): a request with
 * an unknown field is refused, and a response carries only what is declared.
 */
import { Type, type Static, type TSchema } from '../deploy/typebox.js';

const closed = { additionalProperties: false } as const;
const Count = Type.Number({ minimum: 0 });
const Counts = Type.Record(Type.String(), Type.Number());

/** Every error reply: the registry code, a message for people, and details that locate it. */
export const ErrorReply = Type.Object(
  {
    code: Type.String({ pattern: '^NFV_ERR_[A-Z_]+$' }),
    message: Type.String(),
    detail: Type.Object({}, { additionalProperties: true }),
  },
  closed,
);
export type ErrorReply = Static<typeof ErrorReply>;

export const NfName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' });
export const NfParams = Type.Object({ name: NfName }, closed);
export const NoQuery = Type.Object({}, closed);
export const NoParams = Type.Object({}, closed);

/** The body of an action: optional, closed; `reason` is logged. */
export const ActionBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, closed);

export const StreamQuery = Type.Object(
  {
    /** End the stream after this many messages (scripts, tests); unbounded without it. */
    count: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })),
  },
  closed,
);

export const NfStatus = Type.Object(
  {
    name: Type.String(),
    image: Type.String(),
    vnic: Type.String(),
    placement: Type.String(),
    replicas: Count,
    packets: Count,
    restarts: Count,
    quarantined: Type.Boolean(),
    counters: Counts,
    drops: Counts,
  },
  closed,
);

export const ChainStatus = Type.Object(
  { name: Type.String(), through: Type.Array(Type.String()), output: Type.String() },
  closed,
);

export const HostStatus = Type.Object(
  {
    running: Type.Boolean(),
    seconds: Count,
    /** Of seconds, the time the host took to start its guests and open its live ports. */
    startSeconds: Count,
    received: Count,
    /** Packets the NFs made themselves (keepalives, handshake retries). */
    originated: Count,
    sent: Count,
    dropped: Count,
    lost: Count,
    ports: Type.Record(Type.String(), Type.Object({ received: Count, sent: Count }, closed)),
    hostDrops: Counts,
    nfs: Type.Array(NfStatus),
    chains: Type.Array(ChainStatus),
    poolSlots: Count,
    poolFree: Count,
    /** Packets let into the chains at once now (host/queue-limit.ts). */
    queueLimit: Count,
    latencyUs: Type.Object({ p50: Count, p99: Count, max: Count }, closed),
    /** The memory monitor (host/overload.ts), when the deployment sets a limit. */
    overload: Type.Optional(
      Type.Object(
        {
          level: Type.Union([Type.Literal('normal'), Type.Literal('reject_new'), Type.Literal('shed')]),
          pressure: Type.Number({ minimum: 0 }),
          limitBytes: Count,
          escalations: Count,
        },
        closed,
      ),
    ),
  },
  closed,
);
export type HostStatus = Static<typeof HostStatus>;

export const NfList = Type.Object({ nfs: Type.Array(NfStatus) }, closed);
export const ChainList = Type.Object({ chains: Type.Array(ChainStatus) }, closed);
export const PortList = Type.Object(
  { ports: Type.Array(Type.Object({ name: Type.String(), received: Count, sent: Count }, closed)) },
  closed,
);
export const RestartReply = Type.Object(
  { nf: Type.String(), restarting: Type.Literal(true), restartsBefore: Count },
  closed,
);
export const StopReply = Type.Object({ stopping: Type.Literal(true) }, closed);

/** POST /v1/deployments: the deployment file's text (YAML or JSON), as `nfvisor run` reads it. */
export const DeploymentBody = Type.Object(
  {
    deployment: Type.String({ minLength: 1 }),
    /** Named in error messages (`<file>:<line>:<column>`); default `api`. */
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  closed,
);
export const DryRunQuery = Type.Object(
  { dryRun: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) },
  closed,
);

const Names = Type.Array(Type.String());
const Changes = Type.Array(Type.Object({ name: Type.String(), fields: Names }, closed));
/** What a reconfiguration changes (src/host/reconfigure-diff.ts `PlanDiff`). */
export const PlanDiff = Type.Object(
  {
    ports: Type.Object({ added: Names, removed: Names, changed: Changes }, closed),
    nfs: Type.Object({ added: Names, removed: Names, changed: Changes }, closed),
    chains: Type.Object({ added: Names, removed: Names, changed: Changes, kept: Names }, closed),
    refused: Names,
    empty: Type.Boolean(),
  },
  closed,
);
export const ApplyReply = Type.Object(
  {
    dryRun: Type.Boolean(),
    applied: Type.Boolean(),
    diff: PlanDiff,
    prepareMs: Count,
    drainMs: Count,
    lostInDrain: Count,
  },
  closed,
);

export const ScaleBody = Type.Object(
  {
    replicas: Type.Integer({ minimum: 1, maximum: 64 }),
    reason: Type.Optional(Type.String({ maxLength: 200 })),
  },
  closed,
);

/** A snapshot as JSON: one entry per replica; fields whose names say they are secret are redacted. */
export const SnapshotReply = Type.Object(
  {
    nf: Type.String(),
    replicas: Type.Array(Type.Object({ replica: Count, state: Type.Unknown() }, closed)),
  },
  closed,
);

export const ChainParams = Type.Object({ name: NfName }, closed);
export const CaptureBody = Type.Object(
  {
    /** 0: into the first NF; k: from NF k-1 into NF k; n (the chain's length): out to its port. */
    hop: Type.Integer({ minimum: 0, maximum: 64 }),
    packets: Type.Integer({ minimum: 1, maximum: 10_000 }),
    /** Return what was captured by then; default 5000 ms. */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
  },
  closed,
);
/** Text bodies (Prometheus exposition, Server-Sent Events). */
export const Text = Type.String();

/** The response map of a route: its success schema, and the error reply for every failure. */
export function replies(ok: TSchema, status = 200): Record<string, TSchema> {
  return { [status]: ok, '4xx': ErrorReply, '5xx': ErrorReply };
}
