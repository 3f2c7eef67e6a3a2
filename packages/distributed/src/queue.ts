/** The queue shards travel on, and how a Redis URL becomes a BullMQ connection. */
import { Redis } from 'ioredis';

export const QUEUE_NAME = 'sgd-lab-shards';

/** A connection for BullMQ (blocking commands need `maxRetriesPerRequest: null`). */
export function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** What a shard job carries: the resolved study (so a worker needs no file), and the shard. */
export interface ShardJob {
  study: import('@sgd-lab/core').StudyConfig;
  shard: import('@sgd-lab/core').ShardSpec;
}

/** A BullMQ job id for a shard of a study (no ':' allowed). */
export function jobId(fingerprint: string, shard: import('@sgd-lab/core').ShardSpec): string {
  return `${fingerprint.slice(0, 16)}_b${shard.batchSize}_i${shard.initPoint}_r${shard.runStart}_n${shard.runCount}`;
}
