/**
 * A test NF whose `create()` throws: the guest never becomes ready. Used to prove that a live
 * reconfiguration that cannot start a new guest rolls back and leaves the running host as it was.
 */
import { defineNf } from '../../../src/sdk/index.js';

export default defineNf({
  name: 'create-throws',
  summary: 'Throws while it is created.',
  outputs: ['out'],
  drops: {},
  counters: {},
  config: {},
  create() {
    throw new Error('create-throws: refusing to start, on purpose');
  },
});
