/**
 * Captured packets as the bytes of a pcap file (nanosecond timestamps, Ethernet), written with the
 * project's own PcapWriter so the control API's captures are the same format `nfvisor run` writes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CapturedPacket } from '../host/reconfigure.js';
import { createCaptureWriter } from '../io/capture.js';

export function pcapFile(packets: readonly CapturedPacket[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'nfvisor-capture-'));
  try {
    const path = join(dir, 'hop.pcap');
    const writer = createCaptureWriter(path, { format: 'pcap', nanosecond: true });
    for (const p of packets) writer.writePacket(p.bytes, 0, p.bytes.length, p.seconds, p.nanos);
    writer.close();
    return readFileSync(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
