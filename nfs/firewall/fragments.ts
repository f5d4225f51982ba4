/**
 * Fragments cannot bypass a port rule: a later fragment carries no ports, so it follows the verdict
 * of its datagram's first fragment. First fragments that were accepted are remembered here by
 * (source, destination, protocol, identification) — IPv4's 16-bit id, IPv6's 32-bit Fragment-header
 * id — for `timeout` ns (netfilter's ipfrag_time, 30 s). The table is direct-mapped and bounded: a
 * datagram whose slot is taken over by a newer one loses its record, and its later fragments are
 * then dropped (fail closed), never passed.
 */
import { FLOW_KEY_WORDS, type FlowKey } from '../../src/packet/flow-key.js';

export class FragmentTable {
  readonly size: number;
  private readonly keys: Uint32Array;
  private readonly expires: Float64Array;

  constructor(
    slots: number,
    readonly timeout: number,
  ) {
    let size = 1;
    while (size < slots) size *= 2;
    this.size = size;
    this.keys = new Uint32Array(size * FLOW_KEY_WORDS);
    this.expires = new Float64Array(size);
  }

  /** Remembers the accepted first fragment whose datagram `key` names (see `datagramKey`). */
  remember(key: FlowKey, now: number): void {
    const slot = key.hash() & (this.size - 1);
    key.writeTo(this.keys, slot * FLOW_KEY_WORDS);
    this.expires[slot] = now + this.timeout;
  }

  /** True when the datagram's first fragment was accepted less than `timeout` ago. */
  accepted(key: FlowKey, now: number): boolean {
    const slot = key.hash() & (this.size - 1);
    return this.expires[slot] > now && key.equalsAt(this.keys, slot * FLOW_KEY_WORDS);
  }

  snapshot(): { keys: Uint32Array; expires: Float64Array } {
    return { keys: this.keys.slice(), expires: this.expires.slice() };
  }

  restore(state: unknown): void {
    const s = state as { keys?: unknown; expires?: unknown } | null;
    if (s?.keys instanceof Uint32Array && s.keys.length === this.keys.length) this.keys.set(s.keys);
    if (s?.expires instanceof Float64Array && s.expires.length === this.expires.length)
      this.expires.set(s.expires);
  }
}
