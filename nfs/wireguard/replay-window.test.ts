/**
 * The replay-window vectors of the reference implementations' self tests (the Linux kernel's
 * counter.c selftest, as ported to wireguard-go's replay/replay_test.go): 34 single verdicts and six
 * bulk loops, with the limit the port uses there, 2^64 − 2^4 − 1. Counters are written as bigint
 * and split into the two 32-bit halves a packet carries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayWindow, WINDOW_SIZE } from './replay-window.js';
import { REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from './timers.js';

const TEST_LIMIT = (1n << 64n) - (1n << 4n) - 1n;
const LIMIT_HI = Number(TEST_LIMIT >> 32n);
const LIMIT_LO = Number(TEST_LIMIT & 0xffffffffn);
const W = BigInt(WINDOW_SIZE);

function checker(window: ReplayWindow): (n: bigint, expected: boolean) => void {
  let test = 0;
  return (n, expected) => {
    test++;
    const verdict = window.accept(Number(n >> 32n), Number(n & 0xffffffffn), LIMIT_HI, LIMIT_LO);
    assert.equal(
      verdict,
      expected,
      `vector ${test}: counter ${n} should be ${expected ? 'accepted' : 'refused'}`,
    );
  };
}

void describe('ReplayWindow (wireguard-go replay_test.go vectors)', () => {
  void it('has the window of the reference: 8,192 − 64', () => {
    assert.equal(WINDOW_SIZE, 8192 - 64);
  });

  void it('passes the 34 single vectors', () => {
    const T = checker(new ReplayWindow());
    const L = W + 1n; // T_LIM
    const R = TEST_LIMIT;
    T(0n, true);
    T(1n, true);
    T(1n, false);
    T(9n, true);
    T(8n, true);
    T(7n, true);
    T(7n, false);
    T(L, true);
    T(L - 1n, true);
    T(L - 1n, false);
    T(L - 2n, true);
    T(2n, true);
    T(2n, false);
    T(L + 16n, true);
    T(3n, false);
    T(L + 16n, false);
    T(L * 4n, true);
    T(L * 4n - (L - 1n), true);
    T(10n, false);
    T(L * 4n - L, false);
    T(L * 4n - (L + 1n), false);
    T(L * 4n - (L - 2n), true);
    T(L * 4n + 1n - L, false);
    T(0n, false);
    T(R, false);
    T(R - 1n, true);
    T(R, false);
    T(R - 1n, false);
    T(R - 2n, true);
    T(R + 1n, false);
    T(R + 2n, false);
    T(R - 2n, false);
    T(R - 3n, true);
    T(0n, false);
  });

  void it('passes bulk test 1: 1 … W ascending, then 0 once', () => {
    const T = checker(new ReplayWindow());
    for (let i = 1n; i <= W; i++) T(i, true);
    T(0n, true);
    T(0n, false);
  });

  void it('passes bulk test 2: 2 … W+1 ascending, then 1, and 0 is out of the window', () => {
    const T = checker(new ReplayWindow());
    for (let i = 2n; i <= W + 1n; i++) T(i, true);
    T(1n, true);
    T(0n, false);
  });

  void it('passes bulk test 3: W+1 … 1 descending', () => {
    const T = checker(new ReplayWindow());
    for (let i = W + 1n; i > 0n; i--) T(i, true);
  });

  void it('passes bulk test 4: W+2 … 2 descending, then 0 is out of the window', () => {
    const T = checker(new ReplayWindow());
    for (let i = W + 2n; i > 1n; i--) T(i, true);
    T(0n, false);
  });

  void it('passes bulk test 5: W … 1 descending, W+1, then 0 is out of the window', () => {
    const T = checker(new ReplayWindow());
    for (let i = W; i > 0n; i--) T(i, true);
    T(W + 1n, true);
    T(0n, false);
  });

  void it('passes bulk test 6: W … 1 descending, 0, then W+1', () => {
    const T = checker(new ReplayWindow());
    for (let i = W; i > 0n; i--) T(i, true);
    T(0n, true);
    T(W + 1n, true);
  });

  void it('refuses counters at or beyond REJECT_AFTER_MESSAGES with the protocol limit', () => {
    const window = new ReplayWindow();
    const limit = (BigInt(REJECT_AFTER_MESSAGES_HI) << 32n) | BigInt(REJECT_AFTER_MESSAGES_LO);
    assert.equal(limit, (1n << 64n) - (1n << 13n) - 1n);
    const at = (n: bigint): boolean =>
      window.accept(
        Number(n >> 32n),
        Number(n & 0xffffffffn),
        REJECT_AFTER_MESSAGES_HI,
        REJECT_AFTER_MESSAGES_LO,
      );
    assert.equal(at(limit), false);
    assert.equal(at(limit + 1n), false);
    assert.equal(at(limit - 1n), true);
  });

  void it('a jump of more than 2^32 clears the whole window', () => {
    const window = new ReplayWindow();
    assert.equal(window.accept(0, 100, LIMIT_HI, LIMIT_LO), true);
    assert.equal(window.accept(2, 100, LIMIT_HI, LIMIT_LO), true);
    assert.equal(window.accept(2, 100, LIMIT_HI, LIMIT_LO), false);
    assert.equal(window.accept(2, 99, LIMIT_HI, LIMIT_LO), true);
    assert.equal(window.accept(0, 100, LIMIT_HI, LIMIT_LO), false, 'far behind the newest');
  });
});
