/**
 * The namespace testbed moved to src/testbed/ (the `nfvisor testbed` command uses it too); system
 * tests keep importing it from here.
 */
export * from '../../src/testbed/netns.js';
