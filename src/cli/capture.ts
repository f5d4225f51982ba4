/**
 * `nfvisor capture CHAIN --hop N --packets N -w FILE`: copies the next N packets that cross one hop
 * of a chain on a running host into a pcap file (hop 0: into the first NF; k: from NF k-1 into NF
 * k; the chain's length: out to its port). A hop between two `direct` guests is a shared ring the
 * host never sees; the host names the hops that can be captured.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { NfvError } from '../errors.js';
import { controlClient, withControlOptions, type ControlFlags } from './control-client.js';
import { parseInteger } from './options.js';

interface CaptureFlags extends ControlFlags {
  hop: string;
  packets: string;
  write: string;
  timeout: string;
}

export function registerCapture(program: Command): void {
  withControlOptions(
    program
      .command('capture')
      .description('capture packets crossing one hop of a chain on a running host, into a pcap file')
      .argument('<chain>', 'chain name')
      .requiredOption('-w, --write <file>', 'pcap file to write')
      .option('--hop <n>', 'hop: 0 into the first NF … the chain length out to its port', '0')
      .option('--packets <n>', 'packets to capture (1…10000)', '100')
      .option('--timeout <ms>', 'write what was captured by then (1…60000)', '5000'),
    'operator',
  ).action(async (chain: string, flags: CaptureFlags) => {
    console.log(await captureCommand(chain, flags));
  });
}

export async function captureCommand(chain: string, flags: CaptureFlags): Promise<string> {
  const body = {
    hop: parseInteger('--hop', flags.hop, 0, 64),
    packets: parseInteger('--packets', flags.packets, 1, 10_000),
    timeoutMs: parseInteger('--timeout', flags.timeout, 1, 60_000),
  };
  const bytes = await controlClient(flags, body.timeoutMs + 10_000).postForBytes(
    `/v1/chains/${encodeURIComponent(chain)}/capture`,
    body,
  );
  try {
    writeFileSync(flags.write, bytes);
  } catch (e) {
    throw new NfvError('NFV_ERR_IO', `cannot write the capture (${(e as NodeJS.ErrnoException).code})`, {
      file: flags.write,
    });
  }
  // A pcap record header is 16 bytes after the 24-byte file header; count them for the summary.
  let packets = 0;
  for (let at = 24; at + 16 <= bytes.length; at += 16 + bytes.readUInt32LE(at + 8)) packets++;
  const summary = { chain, hop: body.hop, packets, file: flags.write, bytes: bytes.length };
  return flags.json
    ? JSON.stringify(summary, null, 2)
    : `${packets} packets from chain ${chain} hop ${body.hop} written to ${flags.write}`;
}
