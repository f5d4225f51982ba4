/**
 * `nfvisor pcap info FILE`: what a capture holds — counts by layer, sizes, duration, rates, and
 * the conversations with the busiest ones (what `capinfos` tells, and the flow view it doesn't).
 */
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { analyzeCapture, formatCaptureStats } from '../io/capture-stats.js';
import { parseInteger } from './options.js';
import { ProgressReporter } from './progress.js';

interface InfoFlags {
  json: boolean;
  top: string;
  maxFlows: string;
}

export function registerPcap(program: Command): void {
  const pcap = program.command('pcap').description('inspect pcap and pcapng captures');
  pcap
    .command('info')
    .description('packets, bytes, duration, layers, frame sizes and conversations of a capture')
    .argument('<file>', 'a pcap or pcapng file')
    .option('--json', 'print the statistics as JSON', false)
    .option('--top <n>', 'busiest conversations to list', '10')
    .option('--max-flows <n>', 'conversations to track (more are counted, not itemised)', String(1 << 18))
    .action((file: string, flags: InfoFlags) => {
      console.log(captureInfo(file, flags));
    });
}

/** The text (or JSON) `pcap info` prints for `file`. */
export function captureInfo(file: string, flags: Partial<InfoFlags> = {}): string {
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    // openCapture reports a missing or unreadable file with its own error code.
  }
  const progress = new ProgressReporter('pcap info', size, 'bytes');
  const stats = analyzeCapture(file, {
    top: parseInteger('--top', flags.top ?? '10', 0, 1_000_000),
    maxFlows: parseInteger('--max-flows', flags.maxFlows ?? String(1 << 18), 16, 1 << 26),
    onProgress: (bytesRead) => progress.update(bytesRead),
  });
  progress.stop();
  return flags.json ? JSON.stringify(stats, null, 2) : formatCaptureStats(stats);
}
