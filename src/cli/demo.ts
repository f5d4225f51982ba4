/**
 * `nfvisor demo` (what `npm start` runs): nfvisor's main job on an embedded default, with no files
 * to prepare. Until the host lands it generates a mixed capture — IPv4 and IPv6; TCP sessions, UDP
 * and ICMP; VLAN and Q-in-Q tags; VXLAN and GENEVE tunnels; Zipf-distributed flows — then reads
 * it back through the parser and prints what it holds. The host issue turns this into a chain demo.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writeGeneratedCapture } from '../io/generate-capture.js';
import type { GeneratorOptions } from '../io/traffic-generator.js';
import { parseCount } from './options.js';
import { captureInfo } from './pcap.js';
import { ProgressReporter } from './progress.js';

/** The embedded default: one of everything the generator can make. */
export const DEMO_TRAFFIC: Partial<GeneratorOptions> = {
  seed: 2026,
  packets: 200_000,
  frameSize: 'imix',
  flows: 1000,
  distribution: 'zipf',
  zipfExponent: 1.0,
  mix: { tcp: 6, udp: 3, icmp: 1 },
  ipv6: 0.3,
  vlan: 0.1,
  qinq: 0.05,
  vxlan: 0.1,
  geneve: 0.05,
  tcpSessions: true,
  ratePps: 1_000_000,
};

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('generate the embedded default traffic mix, read it back and report what it holds')
    .option('-o, --output <file>', 'where to keep the capture (default: a new temporary folder)')
    .option('-n, --packets <count>', 'packets to generate', String(DEMO_TRAFFIC.packets))
    .action(async (flags: { output?: string; packets: string }) => {
      const output = flags.output ?? join(mkdtempSync(join(tmpdir(), 'nfvisor-demo-')), 'demo.pcapng');
      const packets = parseCount('--packets', flags.packets);
      console.log(
        `nfvisor demo: generating ${packets} packets of mixed traffic (seed ${DEMO_TRAFFIC.seed}) into ${output}`,
      );
      const progress = new ProgressReporter('generate', packets, 'packets');
      const made = await writeGeneratedCapture(
        { ...DEMO_TRAFFIC, packets },
        output,
        { format: 'pcapng', nanosecond: true },
        (n) => progress.update(n),
      );
      progress.stop();
      const rate = made.packets / Math.max(made.seconds, 1e-9);
      console.log(
        `wrote ${made.packets} packets (${made.bytes} bytes, ${made.flows} flows) in ${made.seconds.toFixed(2)} s ` +
          `(${(rate / 1e6).toFixed(2)} Mpps)\n`,
      );
      console.log(captureInfo(output));
      console.log(`\nOpen it in Wireshark, or: tshark -r ${output} | head`);
    });
}
