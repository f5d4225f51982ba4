// The whole tunnel-port suite again on the portable path: node:dgram, as where the native addon
// could not build. NFVISOR_NO_ADDON is read when the first port opens, so setting it before the
// suite is imported covers every test in it (each test file runs in its own process).
process.env.NFVISOR_NO_ADDON = '1';
await import('./tunnel-port.test.js');
