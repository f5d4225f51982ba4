/**
 * Why a view refused bytes. Checked `attach()` calls return one of these instead of throwing; the
 * host and NFs count drops per (layer, reason). `None` (0) means the bytes were accepted, so
 * `if (reason !== DropReason.None)` is the only check a caller needs.
 *
 * @example
 * const reason = ipv4.attach(bytes, 14);
 * if (reason !== DropReason.None) counters[reason]++;
 */
export const DropReason = {
  None: 0,
  /** Fewer bytes than the header needs, or than a length field claims. */
  Truncated: 1,
  /** A length field that contradicts itself or the header (IPv4 total < header, UDP length < 8). */
  BadLength: 2,
  /** IP version nibble differs from the view's version. */
  BadVersion: 3,
  /** Header-length field below the minimum (IPv4 IHL < 5, TCP data offset < 5). */
  BadHeaderLength: 4,
  /** A checksum that does not verify. */
  BadChecksum: 5,
  /** A malformed option or extension-header TLV (zero length, overrun). */
  BadOption: 6,
  /** More nested headers (tags, extension headers, tunnels) than the parser allows. */
  TooManyLayers: 7,
  /** A field value the format forbids (reserved bits, unknown hardware type where one is required). */
  BadField: 8,
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Number of distinct reasons, for sizing per-reason counter arrays. */
export const DROP_REASON_COUNT = 9;

const names: readonly string[] = [
  'none',
  'truncated',
  'bad_length',
  'bad_version',
  'bad_header_length',
  'bad_checksum',
  'bad_option',
  'too_many_layers',
  'bad_field',
];

/** The snake_case name used in counters and logs. @example dropReasonName(DropReason.Truncated) === 'truncated' */
export function dropReasonName(reason: number): string {
  return names[reason] ?? `unknown_${reason}`;
}
