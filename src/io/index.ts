// The public face of nfvisor/io: captures, the traffic generator, capture statistics, tunnel ports.
export * from './capture.js';
export * from './capture-stats.js';
export * from './generate-capture.js';
export * from './geneve-port.js';
export * from './seeded-random.js';
export * from './traffic-generator.js';
export * from './tunnel-port.js';
export * from './vxlan-port.js';
export * from './ipfix.js';
export * from './ipfix-exporter.js';
