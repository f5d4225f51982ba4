export {
  BufferPool,
  DEFAULT_SLOT_SIZE,
  MAX_SLOT_COUNT,
  Owner,
  type BufferPoolOptions,
  type BufferPoolShared,
  type BufferPoolStats,
} from './buffer-pool.js';
export {
  DESCRIPTOR_WORDS,
  Desc,
  DescriptorRing,
  MAX_RING_CAPACITY,
  portFlags,
  type DescriptorRingShared,
  type DescriptorRingStats,
} from './descriptor-ring.js';
