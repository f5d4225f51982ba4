import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NfvError, type ErrorCode } from '../errors.js';
import { createCaptureWriter, openCapture, readAllPackets } from './capture.js';

const dir = mkdtempSync(join(tmpdir(), 'nfv-pcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (ext = 'pcap'): string => join(dir, `t${fileNo++}.${ext}`);

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

function fileOf(bytes: Uint8Array): string {
  const path = tmp();
  writeFileSync(path, bytes);
  return path;
}

/** Asserts that `fn` throws an NfvError with `code` naming `file` and byte `offset`. */
function throwsAt(fn: () => unknown, code: ErrorCode, file: string, offset: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NfvError, `not an NfvError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.detail.file, file);
    assert.equal(e.detail.offset, offset, e.message);
    assert.ok(e.message.includes(`${file} at byte ${offset}`), e.message);
    return true;
  });
}

// Little-endian, microseconds, snaplen 65535, Ethernet; one 4-byte record of a 60-byte frame.
const LE_USEC = hex(`
  d4c3b2a1 0200 0400 00000000 00000000 ffff0000 01000000
  00105e5f 40e20100 04000000 3c000000 deadbeef`);

// Big-endian, nanoseconds, snaplen 65535, raw IP (101); two records.
const BE_NSEC = hex(`
  a1b23c4d 0002 0004 00000000 00000000 0000ffff 00000065
  5f5e1000 3b9ac9ff 00000002 00000002 abcd
  5f5e1001 00000000 00000000 00000028`);

test('pcap: reads a little-endian microsecond file byte for byte', () => {
  const path = fileOf(LE_USEC);
  const r = openCapture(path);
  assert.equal(r.format, 'pcap');
  assert.equal(r.next(), true);
  assert.deepEqual(r.bytes.subarray(r.at, r.at + r.capturedLength), hex('deadbeef'));
  assert.equal(r.capturedLength, 4);
  assert.equal(r.originalLength, 60);
  assert.equal(r.timestampSeconds, 0x5f5e1000);
  assert.equal(r.timestampNanos, 123_456_000);
  assert.equal(r.timestampNs(), 0x5f5e1000n * 1_000_000_000n + 123_456_000n);
  assert.equal(r.linkType, 1);
  assert.equal(r.interfaceId, 0);
  assert.equal(r.recordOffset, 24);
  assert.equal(r.packetsRead, 1);
  assert.equal(r.next(), false);
  assert.equal(r.next(), false);
  r.close();
});

test('pcap: reads a big-endian nanosecond raw-IP file, including an empty record', () => {
  const packets = readAllPackets(fileOf(BE_NSEC));
  assert.equal(packets.length, 2);
  assert.deepEqual(packets[0], {
    data: hex('abcd'),
    originalLength: 2,
    timestampSeconds: 0x5f5e1000,
    timestampNanos: 999_999_999,
    linkType: 101,
    interfaceId: 0,
    recordOffset: 24,
  });
  assert.equal(packets[1].data.length, 0);
  assert.equal(packets[1].originalLength, 40);
  assert.equal(packets[1].recordOffset, 24 + 18);
});

test('pcap: passes any other link type through, without the FCS bits', () => {
  const bytes = LE_USEC.slice();
  bytes.set(hex('e4000014'), 20); // 228 (IPv4) with an FCS-length field in the top bits
  const r = openCapture(fileOf(bytes));
  assert.equal(r.next(), true);
  assert.equal(r.linkType, 228);
  r.close();
});

test('pcap: a microsecond field of a second or more carries into the seconds', () => {
  const bytes = LE_USEC.slice();
  bytes.set(hex('80841e00'), 28); // 2 000 000 µs
  const [p] = readAllPackets(fileOf(bytes));
  assert.equal(p.timestampSeconds, 0x5f5e1002);
  assert.equal(p.timestampNanos, 0);
});

test('pcap: the writer produces the literal bytes, in both byte orders', () => {
  const le = tmp();
  const w = createCaptureWriter(le, { format: 'pcap', snaplen: 65535 });
  const frame = hex('00 deadbeef 00');
  w.writePacket(frame, 1, 4, 0x5f5e1000, 123_456_789, 60);
  assert.equal(w.packetsWritten, 1);
  assert.equal(w.bytesWritten, LE_USEC.length);
  w.close();
  w.close();
  assert.deepEqual(new Uint8Array(readFileSync(le)), LE_USEC);

  const be = tmp();
  const w2 = createCaptureWriter(be, {
    format: 'pcap',
    nanosecond: true,
    littleEndian: false,
    snaplen: 65535,
    linkType: 101,
  });
  w2.writePacket(hex('abcd'), 0, 2, 0x5f5e1000, 999_999_999);
  w2.writePacket(new Uint8Array(0), 0, 0, 0x5f5e1001, 0, 40);
  w2.close();
  assert.deepEqual(new Uint8Array(readFileSync(be)), BE_NSEC);
});

test('pcap: write→read round trip in both byte orders and resolutions, with snaplen truncation', () => {
  for (const littleEndian of [true, false]) {
    for (const nanosecond of [true, false]) {
      const path = tmp();
      const w = createCaptureWriter(path, { format: 'pcap', nanosecond, littleEndian, snaplen: 100 });
      const frame = new Uint8Array(300).map((_, i) => i & 0xff);
      for (let i = 0; i < 50; i++) w.writePacket(frame, i, 50 + i * 3, 1_700_000_000 + i, i * 20_000_001);
      w.close();
      const packets = readAllPackets(path);
      assert.equal(packets.length, 50);
      packets.forEach((p, i) => {
        const length = 50 + i * 3;
        assert.equal(p.originalLength, length);
        assert.deepEqual(p.data, frame.slice(i, i + Math.min(length, 100)));
        assert.equal(p.timestampSeconds, 1_700_000_000 + i);
        const ns = i * 20_000_001;
        assert.equal(p.timestampNanos, nanosecond ? ns : ns - (ns % 1000));
      });
    }
  }
});

test('pcap: records straddling chunk boundaries, and one larger than the chunk', () => {
  const path = tmp();
  const w = createCaptureWriter(path, { format: 'pcap', nanosecond: true, chunkSize: 1000 });
  const frame = new Uint8Array(20000).map((_, i) => (i * 7) & 0xff);
  const lengths: number[] = [];
  for (let i = 0; i < 3000; i++) lengths.push(i === 1500 ? 20000 : 1 + ((i * 131) % 1600));
  lengths.forEach((n, i) => w.writePacket(frame, 0, n, i, i));
  w.close();
  const r = openCapture(path, { chunkSize: 4096 });
  let i = 0;
  let offset = 24;
  while (r.next()) {
    assert.equal(r.capturedLength, lengths[i]);
    assert.equal(r.recordOffset, offset);
    assert.equal(r.timestampSeconds, i);
    assert.equal(r.timestampNanos, i);
    const b = r.bytes;
    for (let k = 0; k < r.capturedLength; k += 97) assert.equal(b[r.at + k], frame[k]);
    assert.equal(b[r.at + r.capturedLength - 1], frame[r.capturedLength - 1]);
    offset += 16 + lengths[i];
    i++;
  }
  assert.equal(i, lengths.length);
  assert.equal(r.packetsRead, lengths.length);
  r.close();
});

test('pcap: a file cut anywhere gives CAPTURE_TRUNCATED at the cut record', () => {
  const whole = BE_NSEC;
  for (let cut = 4; cut < whole.length; cut++) {
    if (cut === 24 || cut === 24 + 18) continue; // clean record boundaries
    const path = fileOf(whole.subarray(0, cut));
    const offset = cut < 24 ? 0 : cut < 42 ? 24 : 42;
    throwsAt(() => readAllPackets(path), 'NFV_ERR_CAPTURE_TRUNCATED', path, offset);
  }
  assert.equal(readAllPackets(fileOf(whole.subarray(0, 24))).length, 0);
});

test('pcap: an absurd captured length is CAPTURE_FORMAT naming the record', () => {
  const bytes = BE_NSEC.slice();
  bytes.set(hex('00100000'), 24 + 18 + 8); // 1 MiB in a file with snaplen 65535
  const path = fileOf(bytes);
  const r = openCapture(path);
  assert.equal(r.next(), true);
  throwsAt(() => r.next(), 'NFV_ERR_CAPTURE_FORMAT', path, 42);
  r.close();
});

test('pcap: unknown magic, short file, missing file and bad version', () => {
  const junk = fileOf(hex('00010203 04050607'));
  throwsAt(() => openCapture(junk), 'NFV_ERR_CAPTURE_FORMAT', junk, 0);
  const short = fileOf(hex('d4c3'));
  throwsAt(() => openCapture(short), 'NFV_ERR_CAPTURE_TRUNCATED', short, 0);
  const missing = join(dir, 'missing.pcap');
  assert.throws(
    () => openCapture(missing),
    (e: unknown) => e instanceof NfvError && e.code === 'NFV_ERR_IO' && e.message.includes(missing),
  );
  const v3 = LE_USEC.slice();
  v3[4] = 3;
  const path = fileOf(v3);
  assert.throws(() => openCapture(path), { code: 'NFV_ERR_CAPTURE_UNSUPPORTED' });
});

test('pcap: writer rejects bad options and arguments with BAD_ARGUMENT', () => {
  assert.throws(() => createCaptureWriter(tmp(), { format: 'pcap', snaplen: 0 }), {
    code: 'NFV_ERR_BAD_ARGUMENT',
  });
  assert.throws(() => createCaptureWriter(tmp(), { format: 'pcap', linkType: -1 }), {
    code: 'NFV_ERR_BAD_ARGUMENT',
  });
  const w = createCaptureWriter(tmp(), { format: 'pcap' });
  const b = new Uint8Array(10);
  assert.throws(() => w.writePacket(b, 5, 6, 0, 0), { code: 'NFV_ERR_BAD_ARGUMENT' });
  assert.throws(() => w.writePacket(b, 0, 4, 0, 1e9), { code: 'NFV_ERR_BAD_ARGUMENT' });
  assert.throws(() => w.writePacket(b, 0, 4, 2 ** 32, 0), { code: 'NFV_ERR_BAD_ARGUMENT' });
  assert.throws(() => w.writePacket(b, 0, 4, 0, 0, 3), { code: 'NFV_ERR_BAD_ARGUMENT' });
  w.close();
  assert.throws(() => w.writePacket(b, 0, 4, 0, 0), { code: 'NFV_ERR_BAD_ARGUMENT' });
  assert.throws(() => createCaptureWriter(join(dir, 'no', 'such', 'dir.pcap'), { format: 'pcap' }), {
    code: 'NFV_ERR_IO',
  });
});
