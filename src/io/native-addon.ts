/**
 * Loads nfvisor's native I/O addon (native/nfvisor_io.c: TAP/TUN devices, recvmmsg/sendmmsg), or
 * returns null: when it was not built (no compiler or Node headers at `npm ci`; see
 * tools/build-addon.mjs), when it fails to load, or when NFVISOR_NO_ADDON=1 forces the portable
 * path. Callers fall back to node:dgram for tunnel ports; TAP ports cannot work without it and say
 * so with `addonUnavailableReason()`.
 *
 * The addon is looked for at `native/build/Release/nfvisor_io.node` in the first ancestor folder of
 * this module that has one (the package root, whether running from src/ or dist/src/), or at the
 * path in NFVISOR_ADDON.
 *
 * @example
 * const addon = loadNativeAddon();
 * if (addon) console.log('batched I/O'); else console.log(addonUnavailableReason());
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bytes per address record exchanged with `recvBatch`/`sendBatch`: family, port, address. */
export const ADDRESS_RECORD_BYTES = 20;
/** Largest batch one native call moves. */
export const MAX_NATIVE_BATCH = 256;

/**
 * The addon's functions. Batch calls never throw on I/O: they return a count, or -errno. Open
 * calls throw an Error with `code` (EPERM, ENOENT, EBUSY, EADDRINUSE …) and `syscall`.
 */
export interface NativeAddon {
  /**
   * Opens (creating if needed) a non-blocking TAP (`tap` true) or TUN device with IFF_NO_PI: [fd,
   * name]. With `offload`, frames carry a virtio-net header and may be TCP super-packets (tap-port.ts).
   */
  openTun(name: string, tap: boolean, offload?: boolean): [number, string];
  /** Sets a device's transmit queue length (for a TAP/TUN device: frames waiting for the reader). */
  setTxQueueLength(name: string, length: number): void;
  /** Reads up to `count` frames, frame i at bytes[offsets[i]..] (≤ room; room + 1 means cut). */
  readFrames(
    fd: number,
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    room: number,
  ): number;
  /** Writes `count` frames (bytes[offsets[i] .. + lengths[i]]). */
  writeFrames(
    fd: number,
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): number;
  /** A non-blocking bound UDP socket: [fd, bound port]. */
  udpOpen(ipv6: boolean, address: string, port: number, receiveBuffer: number): [number, number];
  udpConnect(fd: number, ipv6: boolean, address: string, port: number): void;
  /** One recvmmsg: datagram i at bytes[offsets[i]..], its sender's record at senders[i * 20..]. */
  recvBatch(
    fd: number,
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    room: number,
    senders: Uint8Array,
  ): number;
  /** sendmmsg of `count` datagrams, to `destinations` records or (null) the connected peer. */
  sendBatch(
    fd: number,
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    destinations: Uint8Array | null,
  ): number;
  closeFd(fd: number): void;
  /** A one-shot readability watch in the event loop: `watchArm` calls `callback` once when readable. */
  watchCreate(fd: number, callback: () => void): NativeWatch;
  watchArm(watch: NativeWatch): void;
  /** Releases the watch; call before `closeFd`. */
  watchStop(watch: NativeWatch): void;
  /**
   * For memory that holds only zeros (a pool just made): transparent huge pages under its 2 MiB-
   * aligned part, the small pages already there dropped (they read as zeros again). Bytes advised,
   * or -errno. Optional: an addon built before it existed lacks it.
   */
  adviseHugePages?(bytes: Uint8Array): number;
  /**
   * Fixes glibc's mmap threshold at `bytes` (mallopt M_MMAP_THRESHOLD), which also stops glibc from
   * raising it by itself: large blocks are then mapped, and unmapped when freed. 1, or 0 if glibc
   * refused. Optional: an addon built before it existed lacks it.
   */
  fixMmapThreshold?(bytes: number): number;
  /**
   * The calling thread's scheduling policy: with `on`, SCHED_BATCH if it is SCHED_OTHER (any other
   * policy is left as it is); with `off`, SCHED_OTHER if it is SCHED_BATCH. Threads started
   * afterwards inherit it. Returns the policy before the call (0 SCHED_OTHER, 3 SCHED_BATCH…), or
   * -errno. Optional: an addon built before it existed lacks it.
   */
  setBatchScheduling?(on: boolean): number;
}

/** An opaque uv_poll handle. */
export type NativeWatch = { readonly __nativeWatch: unique symbol };

const ADDON_FILE = join('native', 'build', 'Release', 'nfvisor_io.node');

let loaded: NativeAddon | null | undefined;
let reason = '';

/** The addon, or null (see `addonUnavailableReason()`). Loaded once per process. */
export function loadNativeAddon(): NativeAddon | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.NFVISOR_NO_ADDON === '1') {
    reason = 'disabled by NFVISOR_NO_ADDON=1';
    return null;
  }
  if (process.platform !== 'linux') {
    reason = `not available on ${process.platform}`;
    return null;
  }
  const path = process.env.NFVISOR_ADDON ?? findAddon(dirname(fileURLToPath(import.meta.url)));
  if (path === null || !existsSync(path)) {
    reason = `not built (${path ?? ADDON_FILE} is missing; run npm ci or node tools/build-addon.mjs)`;
    return null;
  }
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (error) {
    reason = `${path} failed to load: ${error instanceof Error ? error.message : String(error)}`;
  }
  return loaded;
}

/** Why `loadNativeAddon()` returned null ('' when it did not). */
export function addonUnavailableReason(): string {
  loadNativeAddon();
  return reason;
}

/** Forgets the loaded addon so the next `loadNativeAddon()` looks again (tests switching NFVISOR_NO_ADDON). */
export function resetNativeAddonForTests(): void {
  loaded = undefined;
  reason = '';
}

function findAddon(from: string): string | null {
  for (let dir = from; ;) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * A readable message for a failed open of a port: what the errno means for this port, so a person
 * sees "no permission: needs CAP_NET_ADMIN" rather than a bare EPERM.
 */
export function explainErrno(code: string): string {
  switch (code) {
    case 'EPERM':
    case 'EACCES':
      return 'no permission (creating a TAP/TUN device needs CAP_NET_ADMIN, or a device owned by this user)';
    case 'ENOENT':
    case 'ENODEV':
      return 'device missing (/dev/net/tun absent: load the tun module, or give the container the device)';
    case 'EBUSY':
      return 'device busy (another process holds it, or it exists with another mode or owner)';
    case 'EINVAL':
      return 'invalid request (a device of that name exists and is not a TAP/TUN device of this mode)';
    case 'EADDRINUSE':
      return 'address in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    default:
      return code;
  }
}
