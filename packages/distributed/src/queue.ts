/** The queue shards travel on, and how a Redis URL becomes a BullMQ connection. */
import { Redis } from 'ioredis';
import { UsageError, sha256 } from '@sgd-lab/core';

export const QUEUE_NAME = 'sgd-lab-shards';

/** Whether a host name is this machine (loopback). */
function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h.endsWith('.localhost');
}

/**
 * What is unsafe about a Redis URL: whoever can write to the queue makes workers compute (and
 * read data files inside their --data-dir), so a queue off this machine needs a password and TLS.
 * `refuse`: off loopback without a password or without TLS (rediss://); `warn`: loopback without
 * a password (any local user can write to it).
 */
export function redisSecurity(url: string): { refuse: string[]; warn: string[] } {
  const u = new URL(url);
  const where = `${u.hostname || 'localhost'}:${u.port || 6379}`;
  const refuse: string[] = [];
  const warn: string[] = [];
  const local = isLoopback(u.hostname || 'localhost');
  if (!u.password) {
    (local ? warn : refuse).push(
      `Redis at ${where} has no password: anyone who can reach it can queue jobs for the workers; set requirepass and add the password to the URL`,
    );
  }
  if (!local && u.protocol !== 'rediss:') {
    refuse.push(`Redis at ${where} is not on this machine and the URL is not TLS (redis://): the password, the studies and the results travel in clear; use rediss://`);
  }
  return { refuse, warn };
}

/** Applies `redisSecurity`: refusals are a usage error (exit 2) unless `insecure`, then warnings. */
export function checkRedisSecurity(url: string, o: { insecure?: boolean; warn: (message: string) => void; command: string }): void {
  const { refuse, warn } = redisSecurity(url);
  if (refuse.length && !o.insecure) throw new UsageError(`--redis: ${refuse.join('; ')}. Pass --insecure to connect anyway (on a network you trust)`, o.command);
  for (const m of [...(o.insecure ? refuse : []), ...warn]) o.warn(m);
}

/** A connection for BullMQ (blocking commands need `maxRetriesPerRequest: null`). */
export function connect(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** What a shard job carries: the resolved study (so a worker needs no file), the shard, and the coordinator's data files. */
export interface ShardJob {
  study: import('@sgd-lab/core').StudyConfig;
  shard: import('@sgd-lab/core').ShardSpec;
  data: readonly import('@sgd-lab/core').DataFileRecord[];
  /** What the result depends on (study, data, code, backend); the worker checks its own against it. */
  dependsOn?: import('@sgd-lab/core').ResultDependencies;
}

/** What a shard's result depends on besides the shard: the study and the data it read. */
export function jobFingerprint(studyFingerprint: string, data: readonly { sha256: string }[]): string {
  return sha256(JSON.stringify({ study: studyFingerprint, data: data.map((d) => d.sha256).sort() }));
}

/** A BullMQ job id for a shard (no ':' allowed): another study or other data give another id. */
export function jobId(fingerprint: string, shard: import('@sgd-lab/core').ShardSpec): string {
  return `${fingerprint.slice(0, 20)}_b${shard.batchSize}_i${shard.initPoint}_r${shard.runStart}_n${shard.runCount}`;
}
