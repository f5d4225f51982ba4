/**
 * `nfvisor gen`: write seeded traffic to a pcap or pcapng file.
 *
 *   nfvisor gen -o mix.pcapng --packets 1M --size imix --flows 1000 --zipf --ipv6 30% --vxlan 10%
 */
import type { Command } from 'commander';
import { writeGeneratedCapture } from '../io/generate-capture.js';
import { type GeneratorOptions } from '../io/traffic-generator.js';
import { parseCount, parseFraction, parseInteger, parseMix, parsePositive } from './options.js';
import { ProgressReporter } from './progress.js';

interface GenFlags {
  output: string;
  format?: 'pcap' | 'pcapng';
  packets: string;
  seed: string;
  size: string;
  flows: string;
  zipf?: string | boolean;
  mix: string;
  ipv6: string;
  vlan: string;
  qinq: string;
  vxlan: string;
  geneve: string;
  sessions: boolean;
  rate: string;
  nanosecond: boolean;
  json: boolean;
}

export function registerGen(program: Command): void {
  program
    .command('gen')
    .description('generate seeded, reproducible traffic into a pcap or pcapng file')
    .requiredOption('-o, --output <file>', 'capture to write (.pcap or .pcapng)')
    .option('--format <format>', 'pcap or pcapng (default: from the file name)')
    .option('-n, --packets <count>', 'packets to generate (k, M, G allowed)', '10000')
    .option('--seed <n>', 'PRNG seed: the same seed gives the same bytes', '1')
    .option('--size <bytes|imix>', 'frame size 60–9000 without FCS, or imix (7:4:1 of 60/590/1514)', 'imix')
    .option('--flows <n>', 'concurrent flows', '64')
    .option('--zipf [exponent]', 'pick flows by Zipf rank (default exponent 1.0) instead of uniformly')
    .option('--mix <weights>', 'protocol weights', 'tcp:6,udp:3,icmp:1')
    .option('--ipv6 <fraction>', 'fraction of flows over IPv6', '0.25')
    .option('--vlan <fraction>', 'fraction of flows with one 802.1Q tag', '0')
    .option('--qinq <fraction>', 'fraction of flows with 802.1ad + 802.1Q tags', '0')
    .option('--vxlan <fraction>', 'fraction of flows in VXLAN', '0')
    .option('--geneve <fraction>', 'fraction of flows in GENEVE', '0')
    .option('--no-sessions', 'TCP as established data only, without handshakes and teardowns')
    .option('--rate <pps>', 'packets per second, which spaces the timestamps', '1000000')
    .option('--nanosecond', 'nanosecond timestamps (pcap: the 0xa1b23c4d magic; pcapng: if_tsresol 9)', false)
    .option('--json', 'print the summary as JSON', false)
    .action(async (flags: GenFlags) => {
      const options = generatorOptionsFrom(flags);
      const format = flags.format ?? (flags.output.endsWith('.pcapng') ? 'pcapng' : 'pcap');
      const progress = new ProgressReporter('gen', options.packets ?? 0, 'packets');
      const summary = await writeGeneratedCapture(
        options,
        flags.output,
        { format, nanosecond: flags.nanosecond },
        (n) => progress.update(n),
      );
      progress.stop();
      if (flags.json) console.log(JSON.stringify(summary, null, 2));
      else
        console.log(
          `${summary.file}: ${summary.packets} packets, ${summary.bytes} bytes, ${summary.flows} flows ` +
            `(${summary.format}, seed ${options.seed}, ${(summary.seconds * 1000).toFixed(0)} ms)`,
        );
    });
}

export function generatorOptionsFrom(
  flags: Omit<GenFlags, 'output' | 'format' | 'nanosecond' | 'json'>,
): Partial<GeneratorOptions> {
  return {
    packets: parseCount('--packets', flags.packets),
    seed: parseInteger('--seed', flags.seed, 0, 0xffffffff),
    frameSize: flags.size === 'imix' ? 'imix' : parseInteger('--size', flags.size, 60, 9000),
    flows: parseInteger('--flows', flags.flows, 1, 1 << 20),
    distribution: flags.zipf === undefined ? 'uniform' : 'zipf',
    zipfExponent: typeof flags.zipf === 'string' ? parsePositive('--zipf', flags.zipf) : 1.0,
    mix: parseMix('--mix', flags.mix),
    ipv6: parseFraction('--ipv6', flags.ipv6),
    vlan: parseFraction('--vlan', flags.vlan),
    qinq: parseFraction('--qinq', flags.qinq),
    vxlan: parseFraction('--vxlan', flags.vxlan),
    geneve: parseFraction('--geneve', flags.geneve),
    tcpSessions: flags.sessions,
    ratePps: parsePositive('--rate', flags.rate),
  };
}
