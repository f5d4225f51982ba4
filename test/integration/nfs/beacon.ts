/**
 * A test NF that makes packets of its own: at every tick it emits up to `perTick` numbered UDP
 * frames (to port 9999, the number in the payload) until it has emitted `total`, and passes
 * every packet it is given on unchanged. Used to prove that packets an NF makes enter the chain
 * after it, in order, in every vNIC mode, and are accounted for like received ones.
 */
import { defineNf } from '../../../src/sdk/index.js';

export const BEACON_PORT = 9999;
export const BEACON_FRAME = 60;

/** Ethernet / IPv4 / UDP with a 4-byte sequence number (UDP checksum 0: none, as RFC 768 allows). */
export function beaconFrame(out: Uint8Array, sequence: number): number {
  out.fill(0, 0, BEACON_FRAME);
  out.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  const ip = 14;
  out[ip] = 0x45;
  out[ip + 3] = BEACON_FRAME - 14; // total length (< 256)
  out[ip + 8] = 64;
  out[ip + 9] = 17;
  out.set([192, 0, 2, 1, 192, 0, 2, 2], ip + 12);
  const udp = ip + 20;
  out[udp] = 0x27;
  out[udp + 1] = 0x0f; // source port 9999
  out[udp + 2] = BEACON_PORT >> 8;
  out[udp + 3] = BEACON_PORT & 0xff;
  out[udp + 5] = BEACON_FRAME - 34; // UDP length
  const view = new DataView(out.buffer, out.byteOffset);
  view.setUint32(udp + 8, sequence);
  let sum = 0;
  for (let k = ip; k < ip + 20; k += 2) sum += view.getUint16(k);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  view.setUint16(ip + 10, ~sum & 0xffff);
  return BEACON_FRAME;
}

export default defineNf<{ total: number; perTick: number }>({
  name: 'beacon',
  summary: 'Emits numbered UDP frames at every tick and passes packets on unchanged.',
  outputs: ['out'],
  originates: true,
  drops: {},
  counters: {
    emitted: { unit: 'packets', description: 'frames emitted' },
    refused: { unit: 'packets', description: 'emits the host refused (budget spent, no slot)' },
  },
  config: {
    total: { type: 'integer', minimum: 0, default: 40, description: 'frames to emit in all' },
    perTick: { type: 'integer', minimum: 1, default: 20, description: 'frames to try at each tick' },
  },
  create(config, ctx) {
    const emitted = ctx.counter('emitted');
    const refused = ctx.counter('refused');
    const frame = new Uint8Array(BEACON_FRAME);
    let sequence = 0;
    return {
      process() {},
      tick() {
        for (let k = 0; k < config.perTick && sequence < config.total; k++) {
          const length = beaconFrame(frame, sequence);
          if (!ctx.emit(frame, 0, length)) {
            ctx.counters[refused]++;
            return;
          }
          sequence++;
          ctx.counters[emitted]++;
        }
      },
      snapshot: () => sequence,
      restore(state) {
        if (typeof state === 'number') sequence = state;
      },
    };
  },
});
