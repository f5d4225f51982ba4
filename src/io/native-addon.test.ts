import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  addonUnavailableReason,
  explainErrno,
  loadNativeAddon,
  resetNativeAddonForTests,
} from './native-addon.js';
import { readAddressRecord, UdpBatchSocket, writeAddressRecord } from './udp-batch.js';
import { BufferPool } from '../mem/buffer-pool.js';

const HUGE_PAGE = 2 << 20;

describe('native addon loader', () => {
  const saved = { no: process.env.NFVISOR_NO_ADDON, path: process.env.NFVISOR_ADDON };
  afterEach(() => {
    if (saved.no === undefined) delete process.env.NFVISOR_NO_ADDON;
    else process.env.NFVISOR_NO_ADDON = saved.no;
    if (saved.path === undefined) delete process.env.NFVISOR_ADDON;
    else process.env.NFVISOR_ADDON = saved.path;
    resetNativeAddonForTests();
  });

  it('NFVISOR_NO_ADDON=1 forces the portable path and says so', () => {
    process.env.NFVISOR_NO_ADDON = '1';
    resetNativeAddonForTests();
    assert.equal(loadNativeAddon(), null);
    assert.match(addonUnavailableReason(), /NFVISOR_NO_ADDON=1/);
  });

  it('a missing addon file is null with the path it looked for, not a throw', () => {
    delete process.env.NFVISOR_NO_ADDON;
    process.env.NFVISOR_ADDON = '/nonexistent/nfvisor_io.node';
    resetNativeAddonForTests();
    assert.equal(loadNativeAddon(), null);
    assert.match(addonUnavailableReason(), /not built \(\/nonexistent\/nfvisor_io\.node is missing/);
  });

  it('a file that is not an addon is null with the loader error', () => {
    delete process.env.NFVISOR_NO_ADDON;
    const dir = mkdtempSync(join(tmpdir(), 'nfv-addon-'));
    try {
      process.env.NFVISOR_ADDON = join(dir, 'nfvisor_io.node');
      writeFileSync(process.env.NFVISOR_ADDON, 'not an ELF shared object');
      resetNativeAddonForTests();
      assert.equal(loadNativeAddon(), null);
      assert.match(addonUnavailableReason(), /nfvisor_io\.node failed to load: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when built, it loads once and exposes the batch calls', (t) => {
    delete process.env.NFVISOR_NO_ADDON;
    delete process.env.NFVISOR_ADDON;
    resetNativeAddonForTests();
    const addon = loadNativeAddon();
    if (addon === null) {
      t.skip(addonUnavailableReason());
      return;
    }
    assert.equal(addonUnavailableReason(), '');
    assert.equal(loadNativeAddon(), addon);
    for (const f of [
      'openTun',
      'setTxQueueLength',
      'readFrames',
      'writeFrames',
      'recvBatch',
      'sendBatch',
      'watchCreate',
    ] as const)
      assert.equal(typeof addon[f], 'function', f);
    // Bad arguments come back as -EINVAL, never a throw or a write out of bounds.
    const bytes = new Uint8Array(64);
    assert.equal(addon.readFrames(-1, bytes, new Uint32Array([60]), new Uint32Array(1), 1, 16), -22);
    assert.equal(addon.writeFrames(-1, bytes, new Uint32Array([0]), new Uint32Array([65]), 1), -22);
  });
});

describe('huge pages for the buffer pool', () => {
  /** AnonHugePages of this process, in bytes (smaps_rollup: every mapping summed). */
  const anonHugeBytes = (): number =>
    Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0) *
    1024;

  it('a fresh pool asks for them, gets them on first write, and reads as zeros until then', (t) => {
    delete process.env.NFVISOR_NO_ADDON;
    delete process.env.NFVISOR_ADDON;
    resetNativeAddonForTests();
    const addon = loadNativeAddon();
    if (addon?.adviseHugePages === undefined) {
      t.skip(addon === null ? addonUnavailableReason() : 'addon built without adviseHugePages');
      return;
    }
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    if (thp.includes('[never]')) {
      t.skip('transparent huge pages are off on this kernel');
      return;
    }
    const pool = BufferPool.create({ slotSize: 2048, slotCount: 4096 }); // 8 MiB of slots
    const before = anonHugeBytes();
    const advised = addon.adviseHugePages(pool.bytes);
    // The 2 MiB-aligned part of 8 MiB: three or four huge pages.
    assert.ok(advised >= 3 * HUGE_PAGE && advised % HUGE_PAGE === 0, `advised ${advised}`);
    assert.equal(pool.bytes.indexOf(1), -1, 'the slots still read as zeros');
    pool.bytes.fill(1);
    assert.ok(anonHugeBytes() - before >= HUGE_PAGE, `AnonHugePages grew by ${anonHugeBytes() - before}`);
    assert.equal(pool.bytes.indexOf(0), -1, 'every byte written is there');
    assert.equal(addon.adviseHugePages(new Uint8Array(64)), 0, 'nothing aligned in 64 bytes');
    assert.equal(addon.adviseHugePages(42 as unknown as Uint8Array), -22);
  });
});

describe('a fixed mmap threshold', () => {
  /**
   * In a fresh process: a 24 MiB block is freed (glibc would now raise its threshold to 24 MiB),
   * then four 4 MiB blocks are made. Returns how far the malloc heap ([heap] in /proc/self/maps)
   * grew for them: 16 MiB when they came from the arena, nothing when each got its own mapping.
   */
  const heapGrowth = (fix: boolean): number => {
    const child = `
      import { readFileSync } from 'node:fs';
      import { loadNativeAddon } from ${JSON.stringify(new URL('./native-addon.js', import.meta.url).href)};
      if (${fix} && loadNativeAddon().fixMmapThreshold(128 * 1024) !== 1) throw new Error('refused');
      const heap = () => {
        const line = readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.endsWith('[heap]'));
        const [from, to] = (line ?? '0-0').split(' ')[0].split('-');
        return parseInt(to, 16) - parseInt(from, 16);
      };
      const rss = () => process.memoryUsage().rss;
      const start = rss();
      let big = new ArrayBuffer(24 << 20);
      new Uint8Array(big).fill(1);
      big = null;
      // Freed by V8's background sweeper: wait until its 24 MiB are gone (on a loaded machine the
      // free may come late, and the blocks below must come after it).
      for (const deadline = Date.now() + 5000; rss() > start + (8 << 20) && Date.now() < deadline; ) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      const before = heap();
      const blocks = [];
      for (let i = 0; i < 4; i++) blocks.push(new Uint8Array(4 << 20).fill(1));
      console.log(heap() - before, blocks.length);`;
    const env = { ...process.env };
    delete env.NFVISOR_NO_ADDON;
    delete env.MALLOC_MMAP_THRESHOLD_;
    const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', child], { env });
    return Number(out.toString().split(' ')[0]);
  };

  it('keeps large blocks out of the arena after a larger one was freed', (t) => {
    delete process.env.NFVISOR_NO_ADDON;
    resetNativeAddonForTests();
    if (loadNativeAddon()?.fixMmapThreshold === undefined) {
      t.skip(loadNativeAddon() === null ? addonUnavailableReason() : 'addon built without fixMmapThreshold');
      return;
    }
    // Without it glibc's moving threshold puts all four blocks in the arena (kept after free).
    assert.ok(heapGrowth(false) >= 16 * 2 ** 20, 'glibc raised its threshold (the case the fix is for)');
    assert.ok(heapGrowth(true) < 2 ** 20, 'with the threshold fixed, each block is its own mapping');
  });
});

describe('errno explanations', () => {
  it('names the cause a person can act on', () => {
    assert.match(explainErrno('EPERM'), /no permission.*CAP_NET_ADMIN/);
    assert.match(explainErrno('EACCES'), /no permission/);
    assert.match(explainErrno('ENOENT'), /device missing.*\/dev\/net\/tun/);
    assert.match(explainErrno('EBUSY'), /device busy/);
    assert.match(explainErrno('EADDRINUSE'), /address in use/);
    assert.equal(explainErrno('EWHATEVER'), 'EWHATEVER');
  });
});

describe('address records', () => {
  it('round-trip IPv4 and IPv6 with the port big endian', () => {
    const records = new Uint8Array(60).fill(0xa5);
    writeAddressRecord(records, 20, '192.0.2.7', 4789);
    assert.deepEqual([...records.subarray(20, 28)], [4, 0, 0x12, 0xb5, 192, 0, 2, 7]);
    assert.deepEqual(readAddressRecord(records, 20), { address: '192.0.2.7', port: 4789 });
    assert.equal(records[19], 0xa5);
    assert.equal(records[40], 0xa5);
    writeAddressRecord(records, 0, '2001:db8::1', 6081);
    assert.deepEqual(readAddressRecord(records, 0), { address: '2001:db8:0:0:0:0:0:1', port: 6081 });
    writeAddressRecord(records, 0, '::ffff:192.0.2.1', 1);
    assert.deepEqual(readAddressRecord(records, 0), { address: '0:0:0:0:0:ffff:c000:201', port: 1 });
  });
});

describe('UdpBatchSocket', () => {
  it('sends a batch with sendmmsg and receives it with recvmmsg, senders recorded', (t) => {
    resetNativeAddonForTests();
    const addon = loadNativeAddon();
    if (addon === null) {
      t.skip(addonUnavailableReason());
      return;
    }
    const rx = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 1 << 20);
    const tx = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 0);
    try {
      tx.connect('127.0.0.1', rx.port);
      const out = new Uint8Array(3 * 100);
      for (let i = 0; i < 3; i++) out.fill(i + 1, i * 100, i * 100 + 10 + i);
      assert.equal(tx.send(out, Uint32Array.of(0, 100, 200), Uint32Array.of(10, 11, 12), 3, null), 3);
      const bytes = new Uint8Array(4 * 64);
      const lengths = new Uint32Array(4);
      const senders = new Uint8Array(4 * 20);
      const n = rx.receive(bytes, Uint32Array.of(0, 64, 128, 192), lengths, 4, 64, senders);
      assert.equal(n, 3);
      assert.deepEqual([...lengths.subarray(0, 3)], [10, 11, 12]);
      assert.deepEqual([...bytes.subarray(64, 64 + 11)], new Array<number>(11).fill(2));
      assert.deepEqual(readAddressRecord(senders, 20), { address: '127.0.0.1', port: tx.port });
      assert.equal(rx.receive(bytes, Uint32Array.of(0), lengths, 1, 64, senders), 0, 'nothing now');
      // A datagram longer than the room is reported as room + 1 (cut), not silently shortened.
      assert.equal(tx.send(new Uint8Array(100), Uint32Array.of(0), Uint32Array.of(100), 1, null), 1);
      assert.equal(rx.receive(bytes, Uint32Array.of(0), lengths, 1, 64, senders), 1);
      assert.equal(lengths[0], 65);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it('keeps every datagram whole and in order when runs of one size leave as UDP GSO messages', (t) => {
    resetNativeAddonForTests();
    const addon = loadNativeAddon();
    if (addon === null) {
      t.skip(addonUnavailableReason());
      return;
    }
    const rx = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 1 << 21);
    const tx = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 0);
    try {
      tx.connect('127.0.0.1', rx.port);
      // 100 of 72 bytes (more than one GSO message of 64), a shorter one ending a run, 3 of 40,
      // 46 of 72 again: each datagram carries its index in every byte.
      const sizes = [...Array<number>(100).fill(72), 50, 40, 40, 40, ...Array<number>(46).fill(72)];
      const out = new Uint8Array(sizes.length * 128);
      const offsets = new Uint32Array(sizes.length);
      sizes.forEach((size, i) => {
        offsets[i] = i * 128;
        out.fill(i, i * 128, i * 128 + size);
      });
      assert.equal(tx.send(out, offsets, Uint32Array.from(sizes), sizes.length, null), sizes.length);
      const bytes = new Uint8Array(256 * 128);
      const lengths = new Uint32Array(256);
      const at = Uint32Array.from({ length: 256 }, (_, i) => i * 128);
      const senders = new Uint8Array(256 * 20);
      let got = 0;
      const deadline = Date.now() + 2000;
      while (got < sizes.length && Date.now() < deadline)
        got += rx.receive(bytes, at.subarray(got), lengths.subarray(got), 256 - got, 128, senders);
      assert.equal(got, sizes.length, 'one datagram received per datagram sent');
      sizes.forEach((size, i) => {
        assert.equal(lengths[i], size, `datagram ${i}'s length`);
        assert.ok(
          bytes.subarray(i * 128, i * 128 + size).every((b) => b === i),
          `datagram ${i} holds its own bytes`,
        );
      });
    } finally {
      rx.close();
      tx.close();
    }
  });

  it('a port in use is an EADDRINUSE error from open', (t) => {
    resetNativeAddonForTests();
    const addon = loadNativeAddon();
    if (addon === null) {
      t.skip(addonUnavailableReason());
      return;
    }
    const first = UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', 0, 0);
    try {
      assert.throws(() => UdpBatchSocket.open(addon, 'udp4', '127.0.0.1', first.port, 0), {
        code: 'EADDRINUSE',
      });
    } finally {
      first.close();
    }
  });
});
