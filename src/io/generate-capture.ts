/**
 * Runs a traffic generator into a capture file: the body of `nfvisor gen` and of the demo.
 */
import { createCaptureWriter } from './capture.js';
import { MAX_GENERATED_FRAME, TrafficGenerator, type GeneratorOptions } from './traffic-generator.js';

export interface GeneratedCaptureSummary {
  file: string;
  format: 'pcap' | 'pcapng';
  packets: number;
  bytes: number;
  /** Flows that received at least one packet. */
  flows: number;
  seconds: number;
}

const PROGRESS_EVERY = 65_536;

/**
 * Generates `options.packets` packets into `path`. `onProgress(done)` is called every 64 Ki packets.
 * @example await writeGeneratedCapture({ seed: 3, packets: 1000 }, 'out.pcapng', { format: 'pcapng' })
 */
export async function writeGeneratedCapture(
  options: Partial<GeneratorOptions>,
  path: string,
  output: { format: 'pcap' | 'pcapng'; nanosecond?: boolean },
  onProgress: (done: number) => void = () => undefined,
): Promise<GeneratedCaptureSummary> {
  const started = performance.now();
  const generator = new TrafficGenerator(options);
  const writer = createCaptureWriter(path, { format: output.format, nanosecond: output.nanosecond ?? false });
  const frame = new Uint8Array(MAX_GENERATED_FRAME);
  const flowSeen = new Uint8Array(generator.options.flows);
  let packets = 0;
  let bytes = 0;
  let flows = 0;
  try {
    for (let length = generator.next(frame, 0); length > 0; length = generator.next(frame, 0)) {
      writer.writePacket(frame, 0, length, generator.info.timestampSeconds, generator.info.timestampNanos);
      packets++;
      bytes += length;
      if (flowSeen[generator.info.flow] === 0) {
        flowSeen[generator.info.flow] = 1;
        flows++;
      }
      if ((packets & (PROGRESS_EVERY - 1)) === 0) {
        onProgress(packets);
        // Yield now and then so a long run leaves the event loop (signals, the progress bar) alive.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    writer.close();
  }
  return {
    file: path,
    format: output.format,
    packets,
    bytes,
    flows,
    seconds: (performance.now() - started) / 1000,
  };
}
