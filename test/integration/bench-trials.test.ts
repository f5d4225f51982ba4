/**
 * The figures benches report from repeated trials (bench/trials.ts): the median and range that
 * bench `modes` puts in its table and chart, and the trial count read from the environment.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { formatSpread, median, spread, trialCount } from '../../bench/trials.js';

describe('bench trials', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([7]), 7);
    assert.ok(Number.isNaN(median([])));
  });

  it('leaves trials without a figure out of the spread', () => {
    assert.deepEqual(spread([2.5, undefined, 1.5, 3.5]), { median: 2.5, low: 1.5, high: 3.5, count: 3 });
    assert.deepEqual(spread([undefined, NaN]), undefined);
  });

  it('prints the range only when there was more than one trial', () => {
    assert.equal(formatSpread(spread([1.5, 1.25, 2]), 2), '1.50 (1.25–2.00)');
    assert.equal(formatSpread(spread([1.5]), 2), '1.50');
    assert.equal(formatSpread(undefined, 2, 'too short'), 'too short');
  });

  describe('trial count', () => {
    afterEach(() => delete process.env.NFVISOR_TEST_TRIALS);

    it('reads a whole number, and falls back when there is none', () => {
      assert.equal(trialCount('NFVISOR_TEST_TRIALS', 3), 3);
      process.env.NFVISOR_TEST_TRIALS = '5';
      assert.equal(trialCount('NFVISOR_TEST_TRIALS', 3), 5);
    });

    it('refuses a bad value by name', () => {
      for (const bad of ['0', '2.5', 'three', '101']) {
        process.env.NFVISOR_TEST_TRIALS = bad;
        assert.throws(
          () => trialCount('NFVISOR_TEST_TRIALS', 3),
          /NFVISOR_TEST_TRIALS must be a whole number/,
        );
      }
    });
  });
});
