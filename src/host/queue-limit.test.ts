import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueLimit } from './queue-limit.js';

/** Packets in flight that no limit makes room for: every read is held back. */
const FULL = 1e9;

/** One interval of `ms` in which the least sojourn was `leastMs` and `inFlight` wanted `wanted` more. */
function interval(queue: QueueLimit, at: number, leastMs: number, inFlight: number, wanted = 32): number {
  queue.update(at);
  const room = queue.room(inFlight, wanted);
  queue.observe(leastMs + 5);
  queue.observe(leastMs);
  return room;
}

describe('QueueLimit', () => {
  const options = { floor: 256, ceiling: 4096, step: 128, targetMs: 1, intervalMs: 20 };

  it('starts at the floor and lets in only what fits under the limit', () => {
    const queue = new QueueLimit(options);
    assert.equal(queue.limit, 256);
    assert.equal(queue.room(0, 32), 32);
    assert.equal(queue.room(240, 32), 16);
    assert.equal(queue.room(300, 32), 0);
  });

  it('grows a burst per interval while the least sojourn stays under the target', () => {
    const queue = new QueueLimit(options);
    queue.update(0);
    for (let i = 1; i <= 4; i++) interval(queue, i * 20, 0.4, FULL);
    queue.update(100);
    // The first update only opens the first interval; each full one that held packets back adds 128.
    assert.equal(queue.limit, 256 + 4 * 128);
  });

  it('shrinks by an eighth while a standing queue outlasts the target, never below the floor', () => {
    const queue = new QueueLimit({ ...options, floor: 256 });
    queue.limit = 2048;
    queue.update(0);
    interval(queue, 0, 3, FULL);
    queue.update(20);
    assert.equal(queue.limit, 2048 - 256);
    for (let i = 2; i < 60; i++) interval(queue, i * 20, 3, FULL);
    assert.equal(queue.limit, 256);
  });

  it('changes nothing in an interval that held nothing back, or saw no packet leave', () => {
    const queue = new QueueLimit(options);
    queue.update(0);
    assert.equal(queue.room(10, 32), 32); // room to spare: not held back
    queue.observe(0.1);
    queue.update(20);
    assert.equal(queue.limit, 256);
    assert.equal(queue.room(256, 32), 0); // held back, but nothing left the chains
    queue.update(40);
    assert.equal(queue.limit, 256);
  });

  it('never grows past the ceiling, and with a target of 0 is the ceiling', () => {
    const queue = new QueueLimit({ ...options, ceiling: 300 });
    queue.update(0);
    for (let i = 1; i <= 5; i++) interval(queue, i * 20, 0.1, FULL);
    queue.update(200);
    assert.equal(queue.limit, 300);
    const off = new QueueLimit({ ...options, targetMs: 0 });
    assert.equal(off.limit, 4096);
    off.update(0);
    for (let i = 1; i <= 5; i++) interval(off, i * 20, 10, FULL);
    assert.equal(off.limit, 4096);
  });
});
