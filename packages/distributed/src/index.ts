/** @sgd-lab/distributed: shards as BullMQ jobs over Redis. */
export * from './queue.js';
export * from './remote.js';
export * from './worker.js';
