/**
 * The worker side: takes shard jobs from the queue, computes each shard exactly as a single
 * process would (same plugin, same streams keyed by run), and returns its result as JSON.
 */
import 'reflect-metadata';
import { Worker, type Job } from 'bullmq';
import { container } from 'tsyringe';
import type { Logger } from 'winston';
import {
  Tokens,
  applyComponents,
  discoverExtensions,
  runShard,
  shardContext,
  shardResultToJson,
  type PluginContext,
} from '@sgd-lab/core';
import { QUEUE_NAME, connect, type ShardJob } from './queue.js';

export interface WorkerOptions {
  url: string;
  dataDir: string;
  logger: Logger;
  /** Shards computed at once by this process. @default 1 */
  concurrency?: number;
  /** How long a job stays locked without a heartbeat before it is handed to another worker. @default 10000 */
  lockMs?: number;
}

/** Computes one shard job; returns the shard result as JSON text. */
export async function computeShard(job: ShardJob, dataDir: string, logger: Logger): Promise<string> {
  const { plugins, components } = await discoverExtensions();
  const plugin = plugins.find((p) => p.value.name === job.study.setting)?.value;
  if (!plugin) throw new Error(`setting ${job.study.setting} is not installed on this worker`);
  const child = container.createChildContainer();
  const ctx: PluginContext = { dataDir, logger, recordDataFile: () => {}, recordFact: () => {} };
  child.register(Tokens.Study, { useValue: job.study });
  child.register(Tokens.Context, { useValue: ctx });
  child.register(Tokens.Logger, { useValue: logger });
  await plugin.register(child, job.study, ctx);
  applyComponents(child, job.study, plugin, components);
  const result = await runShard(shardContext(child, job.study), job.shard);
  return shardResultToJson(job.shard, result);
}

export function startWorker(o: WorkerOptions): Worker<ShardJob, string> {
  const connection = connect(o.url);
  connection.on('error', (e) => o.logger.warn(`redis: ${e.message}`));
  const lockDuration = o.lockMs ?? 10_000;
  const worker = new Worker<ShardJob, string>(
    QUEUE_NAME,
    async (job: Job<ShardJob, string>) => {
      const s = job.data.shard;
      o.logger.info(`shard ${job.id}: ${job.data.study.setting} b=${s.batchSize} init=${s.initPoint} runs ${s.runStart}..${s.runStart + s.runCount - 1}`);
      const t0 = performance.now();
      const out = await computeShard(job.data, o.dataDir, o.logger);
      o.logger.info(`shard ${job.id}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return out;
    },
    { connection, concurrency: o.concurrency ?? 1, lockDuration, stalledInterval: Math.max(1000, lockDuration / 2), maxStalledCount: 3 },
  );
  worker.on('error', (e) => o.logger.warn(`worker: ${e.message}`));
  return worker;
}
