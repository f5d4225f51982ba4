import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { NfvError } from '../errors.js';
import { createCaptureWriter, openCapture, readAllPackets, type CaptureFormat } from './capture.js';

const dir = mkdtempSync(join(tmpdir(), 'nfv-capture-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (): string => join(dir, `t${fileNo++}.cap`);

// Compiled tests run from dist/src/io/, three levels below the repository root; or use the cwd.
function fixture(name: string): string {
  const bases = [fileURLToPath(new URL('../../../', import.meta.url)), process.cwd()];
  const found = bases.map((base) => join(base, 'test', 'fixtures', name)).find((path) => existsSync(path));
  assert.ok(found !== undefined, `fixture ${name} not found`);
  return found;
}

/** The frames in test/fixtures/text2pcap.* (see the README there). */
function expectedFrame(i: number): Uint8Array {
  const head = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0x45, 0, 0, 20 + i * 10];
  return Uint8Array.from([...head, ...Array.from({ length: 16 + i * 10 }, (_, k) => k)]);
}
const FIXTURE_NANOS = [123_456_789, 123_456_900, 123_457_011, 123_457_122];

test('capture: reads the Wireshark-made fixtures in all three forms', () => {
  for (const [name, format, nanos] of [
    ['text2pcap.pcapng', 'pcapng', FIXTURE_NANOS],
    ['text2pcap-ns.pcap', 'pcap', FIXTURE_NANOS],
    ['text2pcap-us.pcap', 'pcap', FIXTURE_NANOS.map((n) => n - (n % 1000))],
  ] as const) {
    const r = openCapture(fixture(name));
    assert.equal(r.format, format);
    r.close();
    const packets = readAllPackets(fixture(name));
    assert.equal(packets.length, 4, name);
    packets.forEach((p, i) => {
      assert.deepEqual(p.data, expectedFrame(i), name);
      assert.equal(p.originalLength, 34 + 10 * i);
      assert.equal(p.timestampSeconds, 1_700_000_000 + i, name);
      assert.equal(p.timestampNanos, nanos[i], name);
      assert.equal(p.linkType, 1);
    });
  }
});

test('capture: the reader hands out its one buffer; nothing per packet', () => {
  const path = tmp();
  const w = createCaptureWriter(path, { format: 'pcapng' });
  const frame = new Uint8Array(1500);
  for (let i = 0; i < 1000; i++) w.writePacket(frame, 0, 60 + (i % 1400), i, 0);
  w.close();
  const r = openCapture(path);
  assert.equal(r.next(), true);
  const buffer = r.bytes;
  while (r.next()) assert.equal(r.bytes, buffer);
  assert.equal(r.packetsRead, 1000);
  r.close();
  assert.equal(r.next(), false);
});

test('capture: bytesWritten is the file size after close', () => {
  for (const format of ['pcap', 'pcapng'] as const) {
    const path = tmp();
    const w = createCaptureWriter(path, { format, chunkSize: 256 });
    for (let i = 0; i < 100; i++) w.writePacket(new Uint8Array(i), 0, i, i, i);
    assert.equal(w.packetsWritten, 100);
    w.close();
    assert.equal(readFileSync(path).length, w.bytesWritten);
  }
});

test('capture: an unknown format name is BAD_ARGUMENT', () => {
  assert.throws(() => createCaptureWriter(tmp(), { format: 'erf' as CaptureFormat }), {
    code: 'NFV_ERR_BAD_ARGUMENT',
  });
});

const CAPTURE_CODES = new Set([
  'NFV_ERR_CAPTURE_FORMAT',
  'NFV_ERR_CAPTURE_TRUNCATED',
  'NFV_ERR_CAPTURE_UNSUPPORTED',
]);

/** Reads a whole file; returns the packet count, or checks the error is a located capture error. */
function readOrFail(path: string, size: number, chunkSize: number): number {
  try {
    const r = openCapture(path, { chunkSize });
    try {
      let n = 0;
      while (r.next()) {
        assert.ok(r.at >= 0 && r.at + r.capturedLength <= r.bytes.length);
        assert.ok(r.timestampNanos >= 0 && r.timestampNanos < 1e9 && Number.isInteger(r.timestampNanos));
        assert.ok(r.recordOffset >= 0 && r.recordOffset < size);
        n++;
      }
      return n;
    } finally {
      r.close();
    }
  } catch (e) {
    if (!(e instanceof NfvError) || !CAPTURE_CODES.has(e.code)) throw e;
    assert.equal(e.detail.file, path);
    assert.ok(
      typeof e.detail.offset === 'number' && e.detail.offset >= 0 && e.detail.offset <= size,
      e.message,
    );
    assert.ok(e.message.includes(path), e.message);
    return -1;
  }
}

const packetsArb = fc.array(
  fc.record({
    length: fc.integer({ min: 0, max: 300 }),
    seconds: fc.integer({ min: 0, max: 0xffffffff }),
    nanos: fc.integer({ min: 0, max: 999_999_999 }),
  }),
  { maxLength: 20 },
);
const writerArb = fc.record({
  format: fc.constantFrom<CaptureFormat>('pcap', 'pcapng'),
  nanosecond: fc.boolean(),
  littleEndian: fc.boolean(),
  snaplen: fc.integer({ min: 1, max: 400 }),
});

function writeValid(
  path: string,
  options: { format: CaptureFormat; nanosecond: boolean; littleEndian: boolean; snaplen: number },
  packets: Array<{ length: number; seconds: number; nanos: number }>,
): Uint8Array {
  const w = createCaptureWriter(path, options);
  const frame = new Uint8Array(300).map((_, i) => i & 0xff);
  for (const p of packets) w.writePacket(frame, 0, p.length, p.seconds, p.nanos);
  w.close();
  return new Uint8Array(readFileSync(path));
}

test('capture fuzz: valid files round-trip exactly', () => {
  fc.assert(
    fc.property(writerArb, packetsArb, (options, packets) => {
      const path = tmp();
      writeValid(path, options, packets);
      const read = readAllPackets(path, { chunkSize: 64 });
      assert.equal(read.length, packets.length);
      read.forEach((p, i) => {
        const q = packets[i];
        assert.equal(p.data.length, Math.min(q.length, options.snaplen));
        assert.equal(p.originalLength, q.length);
        assert.equal(p.timestampSeconds, q.seconds);
        assert.equal(p.timestampNanos, options.nanosecond ? q.nanos : q.nanos - (q.nanos % 1000));
      });
      rmSync(path);
    }),
    { numRuns: 150 },
  );
});

test('capture fuzz: corrupted and truncated files give located NfvErrors or clean results, never a crash', () => {
  fc.assert(
    fc.property(
      writerArb,
      packetsArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.option(fc.nat(), { nil: undefined }),
      fc.constantFrom(64, 100, 4096),
      (options, packets, flips, cut, chunkSize) => {
        const path = tmp();
        const bytes = writeValid(path, options, packets);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        const data = cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
        writeFileSync(path, data);
        readOrFail(path, data.length, chunkSize);
        rmSync(path);
      },
    ),
    { numRuns: 400 },
  );
});

test('capture fuzz: random bytes after a valid magic never crash the reader', () => {
  const magics = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
  ];
  fc.assert(
    fc.property(
      fc.constantFrom(...magics),
      fc.uint8Array({ maxLength: 400 }),
      fc.boolean(),
      (magic, rest, bigEndianShb) => {
        const head =
          magic[0] === 0x0a
            ? [...magic, 0, 0, 0, 28, ...(bigEndianShb ? [0x1a, 0x2b, 0x3c, 0x4d] : [0x4d, 0x3c, 0x2b, 0x1a])]
            : magic;
        const data = Uint8Array.from([...head, ...rest]);
        const path = tmp();
        writeFileSync(path, data);
        readOrFail(path, data.length, 64);
        rmSync(path);
      },
    ),
    { numRuns: 400 },
  );
});
