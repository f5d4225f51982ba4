/**
 * V8 settings for the packet path, applied once when the host module loads — before any NF code
 * is compiled, in this thread or in a guest (V8's flags are per process, so guests inherit them).
 *
 * V8's own inlining budget (460 bytes of bytecode per callee, 920 in all) is kept. A raised one
 * (1,200 and 4,000) made each NF's loop alone faster in one thread (bench `nfs`, 2026-12-07 ~15:00:
 * firewall 15.0–15.4 → 17.0–17.4 Mpps, LB 12.4–12.8 → 15.4–15.8), but every deployment it was
 * measured in lost, interleaved runs V8's own → raised: fw → NAT → LB `direct` 1.70 / 1.75 / 2.14 /
 * 2.23 → 1.42 / 1.42 / 1.68 / 1.72 Mpps (p99 8–12 → 27–39 ms); one firewall guest 3.67–3.71 →
 * 2.69–3.48; the same chain inline 2.98–3.10 → 2.84–3.02; `nfvisor run` pcap → fw → NAT → pcap
 * inline, moving 0.64–0.73 → 0.85–1.12 s. Larger optimized code for several NFs sharing a core's
 * caches, and in a guest (which optimizes on its own thread, below) longer pauses in its loop.
 * NFVISOR_V8_DEFAULTS=1 leaves V8 as it is (to measure the difference).
 */
import { setFlagsFromString } from 'node:v8';

const FLAGS = [
  // Guests optimize their code on their own thread. A TurboFan job running beside a guest that is
  // terminated (a crash, the watchdog, a restart, a retired guest) can ask for the isolate's task
  // runner after Node has unregistered it, and Node aborts the whole process ("Assertion failed:
  // (data.first) != nullptr" in NodePlatform::ForIsolate; the chaos soak hit it twice in two
  // minutes). Set before any guest starts: the isolates made afterwards — the guests — have no
  // concurrent compiler to race with.
  '--no-concurrent-recompilation',
];

let applied = false;

/** Applies the flags once per process; later calls do nothing. */
export function tuneV8ForPacketPath(): void {
  if (applied || process.env.NFVISOR_V8_DEFAULTS === '1') return;
  applied = true;
  for (const flag of FLAGS) setFlagsFromString(flag);
}
