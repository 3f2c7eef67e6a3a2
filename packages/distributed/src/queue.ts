/** The queue shards travel on, and how a Redis URL becomes a BullMQ connection. */
import { Redis } from 'ioredis';
import { sha256 } from '@sgd-lab/core';

export const QUEUE_NAME = 'sgd-lab-shards';

/** A connection for BullMQ (blocking commands need `maxRetriesPerRequest: null`). */
export function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** What a shard job carries: the resolved study (so a worker needs no file), the shard, and the coordinator's data files. */
export interface ShardJob {
  study: import('@sgd-lab/core').StudyConfig;
  shard: import('@sgd-lab/core').ShardSpec;
  data: readonly import('@sgd-lab/core').DataFileRecord[];
}

/** What a shard's result depends on besides the shard: the study and the data it read. */
export function jobFingerprint(studyFingerprint: string, data: readonly { sha256: string }[]): string {
  return sha256(JSON.stringify({ study: studyFingerprint, data: data.map((d) => d.sha256).sort() }));
}

/** A BullMQ job id for a shard (no ':' allowed): another study or other data give another id. */
export function jobId(fingerprint: string, shard: import('@sgd-lab/core').ShardSpec): string {
  return `${fingerprint.slice(0, 20)}_b${shard.batchSize}_i${shard.initPoint}_r${shard.runStart}_n${shard.runCount}`;
}
