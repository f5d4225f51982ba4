/**
 * What the host and a guest agree on: the data a guest starts with, the control words they share,
 * and how a descriptor's flags carry an NF's verdict. Both sides import this file and nothing of
 * each other.
 *
 *   descriptor (DESCRIPTOR_WORDS u32):  slot │ length │ port (low 16) | flags (high 16) │ meta
 *   flags:  bit 15 set → dropped, bits 0–14 the drop-reason index
 *           bit 15 clear → sent, bits 0–14 the output index
 *   meta:   the symmetric flow hash the host computed at classification (replica steering)
 *   port:   ORIGINATED_PORT for a packet an NF made (`ctx.emit`): it came in on no port
 *
 *   spare ring (direct and paravirt guests of an NF that `originates`): host → guest, free slots
 *   the host set aside, the way a NIC driver fills an AF_XDP fill ring. A guest emitting a packet
 *   takes one, writes the packet into it and sends its descriptor on its output ring like any
 *   other, so a packet made in the middle of a run of direct guests needs no host hop.
 *
 *   control (Int32Array over a SharedArrayBuffer, written by the side named):
 *     [Stop]       host  → 1 asks the guest to finish its current burst and exit
 *     [Heartbeat]  guest → incremented every loop turn, busy or idle (the watchdog reads it)
 *     [Batches]    guest → bursts processed
 *     [Packets]    guest → packets processed
 *     [Doorbell]   host  → bumped and notified to wake an idle guest for a control message
 *     [Refused]    guest → attempts its sandbox refused (guest-sandbox.ts)
 */
import type { BufferPoolShared } from '../mem/buffer-pool.js';
import type { DescriptorRingShared } from '../mem/descriptor-ring.js';
import type { SandboxPlan } from './guest-sandbox.js';

export type VnicMode = 'direct' | 'paravirt' | 'emulated';
export type Placement = 'isolated' | 'inline';

export const Control = { Stop: 0, Heartbeat: 1, Batches: 2, Packets: 3, Doorbell: 4, Refused: 5 } as const;
export const CONTROL_WORDS = 8;

export const FLAG_DROP = 0x8000;
export const FLAG_INDEX_MASK = 0x7fff;
/** The input port of a packet an NF made: it came in on no port. */
export const ORIGINATED_PORT = 0xffff;
/** Free slots a host keeps in the spare ring of each guest that originates packets. */
export const SPARE_SLOTS = 16;

export interface GuestInit {
  guestId: number;
  instance: string;
  replica: number;
  replicas: number;
  /** File URL of the compiled module whose default export is the NF definition. */
  nfModule: string;
  /** An image's code runs in the sandbox instead (and `nfModule` is not imported). */
  sandbox?: SandboxPlan;
  /** Configuration, already validated by the host (defaults filled). */
  config: Record<string, unknown>;
  mode: VnicMode;
  pool: BufferPoolShared;
  /** Rings (direct and paravirt): where bursts come from, where sent packets go, where drops go. */
  inRing: DescriptorRingShared | null;
  outRing: DescriptorRingShared | null;
  returnRing: DescriptorRingShared | null;
  /** Free slots for packets the NF emits (direct and paravirt, when the NF originates packets). */
  spareRing: DescriptorRingShared | null;
  control: SharedArrayBuffer;
  /** The NF's counters, one f64 per declared counter. */
  counters: SharedArrayBuffer;
  batch: number;
  spinPolls: number;
  /** State from the last snapshot, restored after create (on a restart). */
  snapshot?: unknown;
}

/** Messages of the `emulated` vNIC: one packet each way, as its own message. */
export interface EmulatedPacket {
  id: number;
  port: number;
  bytes: Uint8Array;
}
export interface EmulatedVerdict {
  id: number;
  verdict: number;
  bytes: Uint8Array;
}

export type HostToGuest =
  { type: 'packet'; packet: EmulatedPacket } | { type: 'snapshot' } | { type: 'tick'; now: number };
export type GuestToHost =
  | { type: 'ready' }
  | { type: 'verdict'; verdict: EmulatedVerdict }
  /** A packet the NF emitted (emulated guests: the host puts it in a slot and sends it on). */
  | { type: 'emit'; output: number; bytes: Uint8Array }
  | { type: 'snapshot'; state: unknown }
  | { type: 'log'; message: string }
  | { type: 'failed'; error: { code?: string; message: string } };
