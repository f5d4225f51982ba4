/**
 * The load balancer's connection table: which backend each established connection went to, so
 * that it stays there when the pool changes. Bounded, typed arrays only, nothing allocated per
 * packet. Every entry is indexed twice — by the packet a client sends (client → VIP) and by the
 * reply its backend sends (backend → client) — in one open-addressing index with linear probing
 * and backward-shift deletion (no tombstones, so lookups stay short under churn).
 *
 *   entry e:  client[e] cport/port ports[e] (clientPort << 16 | servicePort)  proto[e]
 *             vip[e]  backend[e] (addresses, int32)  service[e]  backendId[e] (registry id)
 *             lastSeen[e] (ns)  timeout[e] (ns of idleness allowed)  closing[e] (FIN/RST seen)
 *   index:    slots[s] = 0 (empty) or 1 + (e << 1 | dir), dir 0 = client → VIP, 1 = backend → client
 *             slotHash[s] = the key's hash (its home slot is slotHash & mask)
 *
 * The index has 4 slots per entry (2 keys per entry: at most half full), so probes stay short and
 * always end at an empty slot. `free` is a stack of unused entry numbers.
 *
 * @example
 * const t = new ConnTable(1024);
 * let e = t.findForward(client, vip, ports, 6);
 * if (e < 0) e = t.insert(client, vip, backend, ports, 6, service, backendId, now, timeout);
 */

export const Direction = { Forward: 0, Reply: 1 } as const;

/** The key hash: four words folded with a multiply-rotate step and finished with fmix32. */
function hashKey(a: number, b: number, ports: number, protoDir: number): number {
  let h = Math.imul(a ^ 0x2545f491, 0x9e3779b9);
  h = Math.imul(((h << 5) | (h >>> 27)) ^ b, 0x9e3779b9);
  h = Math.imul(((h << 5) | (h >>> 27)) ^ ports, 0x9e3779b9);
  h = Math.imul(((h << 5) | (h >>> 27)) ^ protoDir, 0x9e3779b9);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

export class ConnTable {
  readonly capacity: number;
  readonly client: Int32Array;
  readonly vip: Int32Array;
  readonly backend: Int32Array;
  readonly ports: Int32Array;
  readonly proto: Uint8Array;
  readonly closing: Uint8Array;
  readonly used: Uint8Array;
  readonly service: Uint16Array;
  readonly backendId: Uint16Array;
  readonly lastSeen: Float64Array;
  readonly timeout: Float64Array;
  /** Entries in use. */
  size = 0;
  private readonly free: Int32Array;
  private freeTop: number;
  private readonly slots: Int32Array;
  private readonly slotHash: Int32Array;
  private readonly mask: number;
  /** Where the next `sweep` starts. */
  private cursor = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.client = new Int32Array(capacity);
    this.vip = new Int32Array(capacity);
    this.backend = new Int32Array(capacity);
    this.ports = new Int32Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.closing = new Uint8Array(capacity);
    this.used = new Uint8Array(capacity);
    this.service = new Uint16Array(capacity);
    this.backendId = new Uint16Array(capacity);
    this.lastSeen = new Float64Array(capacity);
    this.timeout = new Float64Array(capacity);
    this.free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.free[i] = capacity - 1 - i; // pops 0, 1, 2 …
    this.freeTop = capacity;
    let slots = 16;
    while (slots < 4 * capacity) slots *= 2;
    this.slots = new Int32Array(slots);
    this.slotHash = new Int32Array(slots);
    this.mask = slots - 1;
  }

  /** The entry for a client's packet `client:cport → vip:port` (ports = cport << 16 | port), or -1. */
  findForward(client: number, vip: number, ports: number, proto: number): number {
    const hash = hashKey(client, vip, ports, proto);
    let s = hash & this.mask;
    for (;;) {
      const v = this.slots[s];
      if (v === 0) return -1;
      if (this.slotHash[s] === hash && (v & 1) === 1) {
        const e = (v - 1) >>> 1;
        if (
          this.client[e] === client &&
          this.vip[e] === vip &&
          this.ports[e] === ports &&
          this.proto[e] === proto
        )
          return e;
      }
      s = (s + 1) & this.mask;
    }
  }

  /** The entry for a backend's reply `backend:port → client:cport` (ports = cport << 16 | port), or -1. */
  findReply(backend: number, client: number, ports: number, proto: number): number {
    const hash = hashKey(client, backend, ports, proto | 0x100);
    let s = hash & this.mask;
    for (;;) {
      const v = this.slots[s];
      if (v === 0) return -1;
      if (this.slotHash[s] === hash && (v & 1) === 0) {
        const e = (v - 2) >>> 1;
        if (
          this.client[e] === client &&
          this.backend[e] === backend &&
          this.ports[e] === ports &&
          this.proto[e] === proto
        )
          return e;
      }
      s = (s + 1) & this.mask;
    }
  }

  /**
   * Adds a connection (not already present) and returns its entry, or -1 when the table is full.
   * `now` and `timeout` are in nanoseconds.
   */
  insert(
    client: number,
    vip: number,
    backend: number,
    ports: number,
    proto: number,
    service: number,
    backendId: number,
    now: number,
    timeout: number,
  ): number {
    if (this.freeTop === 0) return -1;
    const e = this.free[--this.freeTop];
    this.client[e] = client;
    this.vip[e] = vip;
    this.backend[e] = backend;
    this.ports[e] = ports;
    this.proto[e] = proto;
    this.service[e] = service;
    this.backendId[e] = backendId;
    this.lastSeen[e] = now;
    this.timeout[e] = timeout;
    this.closing[e] = 0;
    this.used[e] = 1;
    this.size++;
    // Forward refs are odd (1 + 2e + 0 → stored as 2e + 1), reply refs even (2e + 2).
    this.place(hashKey(client, vip, ports, proto), 2 * e + 1);
    this.place(hashKey(client, backend, ports, proto | 0x100), 2 * e + 2);
    return e;
  }

  /** Forgets entry `e`. */
  remove(e: number): void {
    if (this.used[e] === 0) return;
    this.unplace(hashKey(this.client[e], this.vip[e], this.ports[e], this.proto[e]), 2 * e + 1);
    this.unplace(hashKey(this.client[e], this.backend[e], this.ports[e], this.proto[e] | 0x100), 2 * e + 2);
    this.used[e] = 0;
    this.free[this.freeTop++] = e;
    this.size--;
  }

  /** True when entry `e` has been idle longer than its timeout at `now`. */
  expired(e: number, now: number): boolean {
    return now - this.lastSeen[e] > this.timeout[e];
  }

  /**
   * Looks at up to `budget` entries from where the last sweep stopped and calls `onExpire(e)` then
   * removes each expired one. Returns how many were removed.
   */
  sweep(now: number, budget: number, onExpire: (e: number) => void): number {
    let removed = 0;
    let e = this.cursor;
    for (let i = 0; i < budget && i < this.capacity; i++) {
      if (this.used[e] === 1 && this.expired(e, now)) {
        onExpire(e);
        this.remove(e);
        removed++;
      }
      e = e + 1 === this.capacity ? 0 : e + 1;
    }
    this.cursor = e;
    return removed;
  }

  private place(hash: number, ref: number): void {
    let s = hash & this.mask;
    while (this.slots[s] !== 0) s = (s + 1) & this.mask;
    this.slots[s] = ref;
    this.slotHash[s] = hash;
  }

  /** Removes `ref` (whose key hashes to `hash`) and shifts later members of its run back. */
  private unplace(hash: number, ref: number): void {
    const mask = this.mask;
    let i = hash & mask;
    while (this.slots[i] !== ref) {
      if (this.slots[i] === 0) return; // not present: nothing to do
      i = (i + 1) & mask;
    }
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = this.slots[j];
      if (v === 0) break;
      const home = this.slotHash[j] & mask;
      // The item at j may move to the hole at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        this.slots[i] = v;
        this.slotHash[i] = this.slotHash[j];
        i = j;
      }
    }
    this.slots[i] = 0;
  }
}
