export { validateConfig, type ConfigError, type ConfigSchema, type FieldSchema } from './config-schema.js';
export {
  checkNfConfig,
  createNfContext,
  defineNf,
  MAX_EMITS_PER_TICK,
  portOwner,
  replicaOwnsPort,
  type CounterSpec,
  type EmitSink,
  type NfContext,
  type NfDefinition,
  type NfInstance,
  type Translation,
} from './define-nf.js';
export { NfHarness, type HarnessResult } from './nf-harness.js';
export { MAX_BATCH, PacketBatch, verdictDropReason, verdictOutput } from './packet-batch.js';
