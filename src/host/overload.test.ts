import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OverloadLevel, OverloadManager } from './overload.js';

describe('OverloadManager', () => {
  const MiB = 2 ** 20;

  it('escalates at each threshold and comes down only below the hysteresis band', () => {
    let used = 0;
    const changes: string[] = [];
    const m = new OverloadManager({ limitBytes: 1000 * MiB, readBytes: () => used * MiB }, (from, to) =>
      changes.push(`${from}>${to}`),
    );
    const at = (mib: number): OverloadLevel => {
      used = mib;
      return m.update();
    };
    assert.equal(at(100), OverloadLevel.Normal);
    assert.equal(at(949), OverloadLevel.Normal);
    assert.equal(at(950), OverloadLevel.RejectNew);
    assert.equal(at(945), OverloadLevel.RejectNew, 'within 1 % below the threshold: stays');
    assert.equal(at(979), OverloadLevel.RejectNew);
    assert.equal(at(980), OverloadLevel.Shed);
    assert.equal(at(975), OverloadLevel.Shed, 'within the band below shedAt');
    assert.equal(at(969), OverloadLevel.RejectNew);
    assert.equal(at(939), OverloadLevel.Normal);
    assert.equal(at(1000), OverloadLevel.Shed, 'a jump skips a level');
    assert.deepEqual(changes, [
      'normal>reject_new',
      'reject_new>shed',
      'shed>reject_new',
      'reject_new>normal',
      'normal>shed',
    ]);
    assert.deepEqual(m.status(), { level: 'shed', pressure: 1, limitBytes: 1000 * MiB, escalations: 3 });
  });

  it('honours configured thresholds', () => {
    let used = 0;
    const m = new OverloadManager({ limitBytes: 100, rejectNewAt: 0.5, shedAt: 0.6, readBytes: () => used });
    used = 49;
    assert.equal(m.update(), OverloadLevel.Normal);
    used = 50;
    assert.equal(m.update(), OverloadLevel.RejectNew);
    used = 60;
    assert.equal(m.update(), OverloadLevel.Shed);
  });

  it('refuses a limit or thresholds that cannot work', () => {
    assert.throws(() => new OverloadManager({ limitBytes: 0 }), /memory limit must be positive/);
    assert.throws(
      () => new OverloadManager({ limitBytes: 1, rejectNewAt: 0.99, shedAt: 0.9 }),
      /rejectNewAt ≤ shedAt/,
    );
  });

  it('reads the process RSS by default', () => {
    const m = new OverloadManager({ limitBytes: 1e15 });
    m.update();
    assert.ok(m.pressure > 0 && m.pressure < 1e-3, `pressure ${m.pressure}`);
  });
});
