/**
 * A burst of packets as an NF sees it: where each packet's bytes are, and the verdict the NF gives
 * it. The NF never sees rings, slots or descriptors: in `direct` mode `bytes` is the shared buffer
 * pool itself (packets are rewritten in place), in `paravirt` and `emulated` mode it is the guest's
 * private copy; the NF code is the same.
 *
 *   packet i:  bytes[at[i] .. at[i] + length[i])   room for growth up to at[i] + capacity
 *              inputPort[i]                        the port it came from (host port id)
 *              verdict[i]   ≥ 0: send to output verdict[i];  < 0: drop with reason −1 − verdict[i]
 *
 * Verdicts start at 0 (the first output): an NF that only rewrites or observes packets sets none.
 *
 * @example
 * process(batch, now) {
 *   for (let i = 0; i < batch.count; i++) {
 *     if (ip.attach(batch.bytes, batch.at[i] + 14, batch.length[i] - 14) !== DropReason.None) batch.drop(i, MALFORMED);
 *   }
 * }
 */

/** Packets per burst at most: the arrays of a batch are sized once, for this many. */
export const MAX_BATCH = 256;

// The class refers to nothing of this module but MAX_BATCH: the guest sandbox compiles its source
// again inside an NF image's realm (guest-sandbox.ts, `realmBatch`).
export class PacketBatch {
  bytes: Uint8Array;
  count = 0;
  /** Bytes each packet may grow to (the slot size). */
  capacity: number;
  readonly at: Uint32Array;
  readonly length: Uint32Array;
  readonly inputPort: Uint16Array;
  readonly verdict: Int32Array;

  /**
   * A batch over `bytes`. With `sharing`, its per-packet arrays are views of that batch's memory
   * (both batches see the same packets and verdicts; `count` is each one's own); otherwise new.
   */
  constructor(bytes: Uint8Array, capacity: number, sharing?: PacketBatch) {
    this.bytes = bytes;
    this.capacity = capacity;
    this.at = PacketBatch.lane(Uint32Array, sharing?.at);
    this.length = PacketBatch.lane(Uint32Array, sharing?.length);
    this.inputPort = PacketBatch.lane(Uint16Array, sharing?.inputPort);
    this.verdict = PacketBatch.lane(Int32Array, sharing?.verdict);
  }

  /** MAX_BATCH elements of `Type`: a view of `shared`'s memory, or new ones. */
  private static lane<T extends Uint32Array | Uint16Array | Int32Array>(
    Type: { new (length: number): T; new (buffer: ArrayBufferLike, byteOffset: number, length: number): T },
    shared: T | undefined,
  ): T {
    return shared ? new Type(shared.buffer, shared.byteOffset, MAX_BATCH) : new Type(MAX_BATCH);
  }

  /** Sends packet `i` to output `output` (an index into the NF's declared outputs). */
  send(i: number, output = 0): void {
    this.verdict[i] = output;
  }

  /** Drops packet `i` with reason `reason` (an index into the NF's declared drop reasons). */
  drop(i: number, reason: number): void {
    this.verdict[i] = -1 - reason;
  }

  /**
   * Changes packet `i`'s length (after growing or trimming it in place). Returns false, changing
   * nothing, when `length` exceeds the room the packet has.
   */
  setLength(i: number, length: number): boolean {
    if (length < 0 || length > this.capacity) return false;
    this.length[i] = length;
    return true;
  }

  /** Clears the batch for reuse: `count` packets, every verdict back to output 0. */
  reset(count: number): void {
    this.count = count;
    this.verdict.fill(0, 0, count);
  }
}

/** Decodes a verdict: the output index, or -1 for a drop. @example verdictOutput(-3) === -1 */
export function verdictOutput(verdict: number): number {
  return verdict >= 0 ? verdict : -1;
}

/** The drop-reason index of a drop verdict, or -1 for a send. @example verdictDropReason(-3) === 2 */
export function verdictDropReason(verdict: number): number {
  return verdict < 0 ? -1 - verdict : -1;
}
