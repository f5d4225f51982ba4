/**
 * V8 settings for the packet path, applied once when the host module loads — before any NF code
 * is compiled, in this thread or in a guest (V8's flags are per process, so guests inherit them).
 *
 * An NF's per-packet loop is one function calling small view methods (attach, field reads, table
 * probes). V8 stops inlining once the callee bytecode adds up to its default budget (460 bytes per
 * callee, 920 in all), and the firewall's loop is past it: the calls it does not inline cost more
 * than the work they do. Raising the budget (bench `nfs`, inline, 10⁴ flows, two alternating runs
 * each at load ~1.3, without → with): firewall 7.4 / 7.3 → 9.0 / 7.9 Mpps, NAT 9.0 / 6.0 →
 * 10.7 / 10.0, rate limiter 11.8 / 11.3 → 12.9 / 13.8, router 12.0 / 12.0 → 15.2 / 15.0,
 * firewall → NAT 3.4 / 2.7 → 4.3 / 3.6.
 * NFVISOR_V8_DEFAULTS=1 leaves V8 as it is (to measure the difference).
 */
import { setFlagsFromString } from 'node:v8';

const FLAGS = [
  '--max-inlined-bytecode-size=1200',
  '--max-inlined-bytecode-size-cumulative=4000',
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
