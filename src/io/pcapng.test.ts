import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NfvError, type ErrorCode } from '../errors.js';
import { createCaptureWriter, openCapture, readAllPackets } from './capture.js';

const dir = mkdtempSync(join(tmpdir(), 'nfv-pcapng-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (): string => join(dir, `t${fileNo++}.pcapng`);

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

function fileOf(...parts: Uint8Array[]): string {
  const path = tmp();
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

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

// What the writer produces for one 4-byte packet of a 60-byte frame at 1600000000.123456 s:
// little-endian SHB, IDB (Ethernet, snaplen 65535, if_tsresol 6) and EPB.
const LE_USEC = hex(`
  0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000
  01000000 20000000 0100 0000 ffff0000 0900 0100 06000000 0000 0000 20000000
  06000000 24000000 00000000 31af0500 40e2a507 04000000 3c000000 deadbeef 24000000`);

/** Builds blocks field by field in one byte order (test scaffolding, not the code under test). */
class Blocks {
  private readonly out: number[] = [];
  constructor(private readonly le: boolean) {}
  private int(v: number, n: number): this {
    const b = new Uint8Array(n);
    const dv = new DataView(b.buffer);
    if (n === 2) dv.setUint16(0, v, this.le);
    else dv.setUint32(0, v >>> 0, this.le);
    this.out.push(...b);
    return this;
  }
  u16(v: number): this {
    return this.int(v, 2);
  }
  u32(v: number): this {
    return this.int(v, 4);
  }
  i64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, v, this.le);
    this.out.push(...b);
    return this;
  }
  raw(b: Uint8Array | number[]): this {
    this.out.push(...b);
    while (this.out.length % 4 !== 0) this.out.push(0);
    return this;
  }
  option(code: number, value: Uint8Array | number[]): this {
    return this.u16(code).u16(value.length).raw(value);
  }
  /** A block of `type` whose body `body` adds. */
  static block(le: boolean, type: number, body: (b: Blocks) => void): Uint8Array {
    const inner = new Blocks(le);
    body(inner);
    const total = 12 + inner.out.length;
    const b = new Blocks(le).u32(type).u32(total);
    b.out.push(...inner.out);
    b.u32(total);
    return Uint8Array.from(b.out);
  }
}

const shb = (le: boolean, major = 1): Uint8Array =>
  Blocks.block(le, 0x0a0d0d0a, (b) => b.u32(0x1a2b3c4d).u16(major).u16(0).i64(-1n));
const idb = (le: boolean, linkType: number, snaplen: number, options: (b: Blocks) => void = () => {}) =>
  Blocks.block(le, 1, (b) => {
    b.u16(linkType).u16(0).u32(snaplen);
    options(b);
  });
const epb = (le: boolean, iface: number, high: number, low: number, data: number[], orig = data.length) =>
  Blocks.block(le, 6, (b) => b.u32(iface).u32(high).u32(low).u32(data.length).u32(orig).raw(data));

test('pcapng: reads a little-endian file byte for byte', () => {
  const r = openCapture(fileOf(LE_USEC));
  assert.equal(r.format, 'pcapng');
  assert.equal(r.next(), true);
  assert.deepEqual(r.bytes.subarray(r.at, r.at + r.capturedLength), hex('deadbeef'));
  assert.equal(r.originalLength, 60);
  assert.equal(r.timestampSeconds, 1_600_000_000);
  assert.equal(r.timestampNanos, 123_456_000);
  assert.equal(r.timestampNs(), 1_600_000_000_123_456_000n);
  assert.equal(r.linkType, 1);
  assert.equal(r.interfaceId, 0);
  assert.equal(r.recordOffset, 28 + 32);
  assert.equal(r.next(), false);
  r.close();
});

test('pcapng: the writer produces the literal bytes', () => {
  const path = tmp();
  const w = createCaptureWriter(path, { format: 'pcapng', snaplen: 65535 });
  w.writePacket(hex('00 deadbeef'), 1, 4, 1_600_000_000, 123_456_789, 60);
  assert.equal(w.bytesWritten, LE_USEC.length);
  w.close();
  assert.deepEqual(new Uint8Array(readFileSync(path)), LE_USEC);
});

test('pcapng: big-endian section, two interfaces with their own resolution and offset, EPB/SPB/OPB, skipped blocks', () => {
  const le = false;
  const blocks = [
    shb(le),
    // interface 0: Ethernet, snaplen 8, nanoseconds
    idb(le, 1, 8, (b) => b.option(9, [9]).u32(0)),
    // interface 1: raw IP, no snaplen, 2^-20 s units, 100 s offset, a comment option first
    idb(le, 101, 0, (b) =>
      b
        .option(1, [0x68, 0x69])
        .option(9, [0x80 | 20])
        .option(14, i64(le, 100n))
        .u32(0),
    ),
    Blocks.block(le, 4, (b) => b.u16(0).u16(0)), // name resolution block
    epb(le, 1, 0, (3 << 20) | (1 << 19), [1, 2, 3]), // 3.5 s + 100
    Blocks.block(le, 0x00000bad, (b) => b.raw([9, 9, 9, 9, 9])), // unknown
    epb(le, 0, 0x5af3, 0x107a4000 + 7, [4, 5, 6, 7, 8], 1514),
    Blocks.block(le, 5, (b) => b.u32(0).u32(0).u32(0)), // interface statistics block
    Blocks.block(le, 3, (b) => b.u32(10).raw([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])), // SPB, cut to snaplen 8
    Blocks.block(le, 3, (b) => b.u32(2).raw([7, 7, 0, 0])), // SPB with padding
    Blocks.block(le, 2, (b) =>
      b
        .u16(1)
        .u16(0)
        .u32(0)
        .u32(1 << 20)
        .u32(1)
        .u32(64)
        .raw([0xee]),
    ), // OPB
    Blocks.block(le, 0x00000bad, () => {}), // empty unknown block at the end
  ];
  const path = fileOf(...blocks);
  const packets = readAllPackets(path);
  assert.equal(packets.length, 5);
  const offsets: number[] = [];
  let at = 0;
  for (const b of blocks) {
    offsets.push(at);
    at += b.length;
  }
  assert.deepEqual(packets[0], {
    data: Uint8Array.from([1, 2, 3]),
    originalLength: 3,
    timestampSeconds: 103,
    timestampNanos: 500_000_000,
    linkType: 101,
    interfaceId: 1,
    recordOffset: offsets[4],
  });
  // 0x5af3_107a4007 ns = 10^14 + 7 ns
  assert.equal(packets[1].timestampSeconds, 100_000);
  assert.equal(packets[1].timestampNanos, 7);
  assert.equal(packets[1].linkType, 1);
  assert.equal(packets[1].originalLength, 1514);
  assert.deepEqual(packets[1].data, Uint8Array.from([4, 5, 6, 7, 8]));
  assert.deepEqual(packets[2].data, Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]));
  assert.equal(packets[2].originalLength, 10);
  assert.equal(packets[2].interfaceId, 0);
  assert.equal(packets[2].recordOffset, offsets[8]);
  assert.deepEqual(packets[3].data, Uint8Array.from([7, 7]));
  assert.deepEqual(packets[4].data, Uint8Array.from([0xee]));
  assert.equal(packets[4].originalLength, 64);
  assert.equal(packets[4].interfaceId, 1);
  assert.equal(packets[4].timestampSeconds, 101);
  assert.equal(packets[4].timestampNanos, 0);
});

function i64(le: boolean, v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, v, le);
  return b;
}

test('pcapng: a new section may switch byte order and resets the interfaces', () => {
  const first = [shb(false), idb(false, 1, 0), idb(false, 101, 0), epb(false, 1, 0, 5_000_000, [1])];
  const second = [shb(true), idb(true, 228, 0, (b) => b.option(14, i64(true, -10n)).u32(0))];
  const good = fileOf(...first, ...second, epb(true, 0, 0, 12_000_001, [2]));
  const packets = readAllPackets(good);
  assert.equal(packets.length, 2);
  assert.equal(packets[0].linkType, 101);
  assert.equal(packets[0].timestampSeconds, 5);
  assert.equal(packets[1].linkType, 228);
  assert.equal(packets[1].timestampSeconds, 2); // 12 s (default µs) - 10 s
  assert.equal(packets[1].timestampNanos, 1000);
  const stale = epb(true, 1, 0, 0, [3]);
  const bad = fileOf(...first, ...second, stale);
  const offset = [...first, ...second].reduce((n, b) => n + b.length, 0);
  throwsAt(() => readAllPackets(bad), 'NFV_ERR_CAPTURE_FORMAT', bad, offset);
});

test('pcapng: timestamps are exact for decimal and binary resolutions, fine and coarse', () => {
  const NS = (0x17d78400n << 32n) | 0x1bn; // about 2023, in nanoseconds
  const cases: Array<[number, number, number, number, number]> = [
    // if_tsresol, high, low → seconds, nanos
    [3, 0, 1_234_567, 1234, 567_000_000],
    [9, 0x17d78400, 0x1b, Number(NS / 1_000_000_000n), Number(NS % 1_000_000_000n)],
    [12, 0, 3_000_000_000, 0, 3_000_000], // picoseconds (BigInt path)
    [0x80 | 32, 7, 0x40000000, 7, 250_000_000],
    [0x80 | 40, 0x100, 0x80000, 1, 476], // 2^-40 s units: 2^19 of them = 2^-21 s = 476.8 ns
    [0x80 | 0, 0, 42, 42, 0],
    [0, 0, 42, 42, 0],
  ];
  for (const [resol, high, low, seconds, nanos] of cases) {
    const path = fileOf(
      shb(true),
      idb(true, 1, 0, (b) => b.option(9, [resol]).u32(0)),
      epb(true, 0, high, low, []),
    );
    const [p] = readAllPackets(path);
    assert.equal(p.timestampSeconds, seconds, `if_tsresol 0x${resol.toString(16)}`);
    assert.equal(p.timestampNanos, nanos, `if_tsresol 0x${resol.toString(16)}`);
  }
});

test('pcapng: write→read round trip, both byte orders and resolutions, snaplen, exact timestamps', () => {
  const frame = new Uint8Array(400).map((_, i) => (i * 13) & 0xff);
  for (const littleEndian of [true, false]) {
    for (const nanosecond of [true, false]) {
      const path = tmp();
      const w = createCaptureWriter(path, {
        format: 'pcapng',
        nanosecond,
        littleEndian,
        snaplen: 97,
        linkType: 101,
      });
      const stamps: Array<[number, number]> = [
        [0, 0],
        [1, 999_999_999],
        [1_700_000_000, 123_456_789],
        [4_294_967_295, 999_999_999],
        [17_000_000_000, 1],
      ];
      stamps.forEach(([s, n], i) => w.writePacket(frame, i, 90 + i * 3, s, n));
      w.close();
      const packets = readAllPackets(path);
      assert.equal(packets.length, stamps.length);
      packets.forEach((p, i) => {
        const [s, n] = stamps[i];
        assert.equal(p.timestampSeconds, s);
        assert.equal(p.timestampNanos, nanosecond ? n : n - (n % 1000));
        assert.equal(p.originalLength, 90 + i * 3);
        assert.deepEqual(p.data, frame.slice(i, i + Math.min(90 + i * 3, 97)));
        assert.equal(p.linkType, 101);
      });
    }
  }
});

test('pcapng: blocks straddling chunk boundaries, and one larger than the chunk', () => {
  const path = tmp();
  const w = createCaptureWriter(path, { format: 'pcapng', nanosecond: true, chunkSize: 512 });
  const frame = new Uint8Array(10000).map((_, i) => (i * 5 + 1) & 0xff);
  const lengths: number[] = [];
  for (let i = 0; i < 2000; i++) lengths.push(i === 999 ? 10000 : (i * 37) % 1500);
  lengths.forEach((n, i) => w.writePacket(frame, 0, n, 1000 + i, i));
  w.close();
  const r = openCapture(path, { chunkSize: 4096 });
  let i = 0;
  while (r.next()) {
    assert.equal(r.capturedLength, lengths[i]);
    assert.equal(r.timestampSeconds, 1000 + i);
    assert.equal(r.timestampNanos, i);
    if (r.capturedLength > 0) {
      assert.equal(r.bytes[r.at], frame[0]);
      assert.equal(r.bytes[r.at + r.capturedLength - 1], frame[r.capturedLength - 1]);
    }
    i++;
  }
  assert.equal(i, lengths.length);
  r.close();
});

test('pcapng: cut files, bad lengths and bad trailers name the block offset', () => {
  const whole = LE_USEC;
  for (let cut = 4; cut < whole.length; cut++) {
    if (cut === 28 || cut === 60) continue; // block boundaries before any packet: a clean, empty file
    const path = fileOf(whole.subarray(0, cut));
    const offset = cut < 28 ? 0 : cut < 60 ? 28 : 60;
    throwsAt(() => readAllPackets(path), 'NFV_ERR_CAPTURE_TRUNCATED', path, offset);
  }
  const trailer = whole.slice();
  trailer[whole.length - 4] = 0x28;
  const t = fileOf(trailer);
  throwsAt(() => readAllPackets(t), 'NFV_ERR_CAPTURE_FORMAT', t, 60);
  const odd = whole.slice();
  odd[28 + 4] = 0x21;
  const o = fileOf(odd);
  throwsAt(() => readAllPackets(o), 'NFV_ERR_CAPTURE_FORMAT', o, 28);
  const caplen = whole.slice();
  caplen[60 + 20] = 5; // 5 bytes do not fit a 36-byte EPB
  const c = fileOf(caplen);
  throwsAt(() => readAllPackets(c), 'NFV_ERR_CAPTURE_FORMAT', c, 60);
  const iface = whole.slice();
  iface[60 + 8] = 1;
  const i = fileOf(iface);
  throwsAt(() => readAllPackets(i), 'NFV_ERR_CAPTURE_FORMAT', i, 60);
  const magic = whole.slice();
  magic[8] = 0;
  const m = fileOf(magic);
  throwsAt(() => readAllPackets(m), 'NFV_ERR_CAPTURE_FORMAT', m, 0);
  const overrun = whole.slice();
  overrun[28 + 16 + 2] = 40; // if_tsresol claims 40 bytes
  const v = fileOf(overrun);
  throwsAt(() => readAllPackets(v), 'NFV_ERR_CAPTURE_FORMAT', v, 28 + 16);
  const version = fileOf(shb(true, 2));
  assert.throws(() => readAllPackets(version), { code: 'NFV_ERR_CAPTURE_UNSUPPORTED' });
  const spbFirst = fileOf(
    shb(true),
    Blocks.block(true, 3, (b) => b.u32(0)),
  );
  throwsAt(() => readAllPackets(spbFirst), 'NFV_ERR_CAPTURE_FORMAT', spbFirst, 28);
});
