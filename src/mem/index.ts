export {
  BufferPool,
  DEFAULT_SLOT_SIZE,
  MAX_SLOT_COUNT,
  Owner,
  type BufferPoolOptions,
  type BufferPoolShared,
  type BufferPoolStats,
} from './buffer-pool.js';
