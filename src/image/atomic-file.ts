/**
 * Crash-safe file writes and a cross-process lock, for the image store.
 *
 * A write goes to a temporary file in the same directory, is fsynced, then renamed over the
 * target, and the directory is fsynced: a reader sees the old file or the new one, never half of
 * one, and a crash leaves at most a stray `.tmp-*` file (never under the final name).
 *
 * The lock is a file created with O_EXCL holding the owner's pid and the time; a waiter retries
 * until it can create it. A lock whose owner process is gone (or older than `staleMs`) is broken,
 * so a crash while holding it does not wedge the store.
 *
 * @example
 * await writeFileAtomic('/store/index.json', bytes);
 * await withLock('/store/index.lock', async () => { ...read, change, writeFileAtomic... });
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NfvError } from '../errors.js';

/** Writes `data` to `path` atomically and durably. */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.tmp-${basename(path)}-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw ioError(`cannot write ${path}`, path, e);
  }
  await syncDirectory(dir);
}

/** fsyncs a directory so a rename in it survives a crash (best effort where not supported). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}

export function ioError(message: string, file: string, cause: unknown): NfvError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new NfvError('NFV_ERR_IO', `${message}: ${reason}`, { file }, { cause });
}

export interface LockOptions {
  /** Give up after this long (NFV_ERR_IO). */
  timeoutMs?: number;
  /** A lock older than this is taken to be left by a crash. */
  staleMs?: number;
}

/** Runs `fn` while holding the lock file `path`. */
export async function withLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const staleMs = options.staleMs ?? 60_000;
  const token = `${process.pid} ${Date.now()} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o644);
      try {
        await handle.writeFile(token);
      } finally {
        await handle.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('cannot create lock', path, e);
    }
    await breakIfStale(path, staleMs);
    if (Date.now() > deadline)
      throw new NfvError('NFV_ERR_IO', `lock held too long: ${path}`, { file: path });
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
  try {
    return await fn();
  } finally {
    // Remove only our own lock: if it was broken as stale and retaken, leave the new owner's.
    const held = await readFile(path, 'utf8').catch(() => '');
    if (held === token) await rm(path, { force: true });
  }
}

async function breakIfStale(path: string, staleMs: number): Promise<void> {
  let text: string;
  let age: number;
  try {
    text = await readFile(path, 'utf8');
    age = Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return; // released meanwhile
  }
  const pid = Number(text.split(' ')[0]);
  if (age > staleMs || (Number.isSafeInteger(pid) && pid > 0 && !alive(pid))) {
    // Rename first so two waiters cannot both break it and then delete each other's new lock.
    const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      const again = await readFile(path, 'utf8');
      if (again !== text) return;
      await rename(path, aside);
      await rm(aside, { force: true });
    } catch {
      // Someone else broke or released it.
    }
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
