/**
 * The worker side: takes shard jobs from the queue, computes each shard exactly as a single
 * process would (same plugin, same streams keyed by run), and returns its result as JSON.
 */
import 'reflect-metadata';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { container } from 'tsyringe';
import type { Logger } from 'winston';
import {
  ConfigError,
  DataError,
  Tokens,
  applyComponents,
  checkPluginResources,
  dependencyChanges,
  resultDependencies,
  resultFingerprint,
  confinedDataPath,
  resolveStudy,
  discoverExtensions,
  runShard,
  shardContext,
  shardResultToJson,
  type MachineResources,
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
export async function computeShard(job: ShardJob, dataDir: string, logger: Logger, machine?: MachineResources): Promise<string> {
  const { plugins, components } = await discoverExtensions();
  const found = plugins.find((p) => p.value.name === job.study?.setting);
  const plugin = found?.value;
  if (!plugin) throw new Error(`setting ${String(job.study?.setting).slice(0, 60)} is not installed on this worker`);
  // A job is untrusted input: its study must pass the same schema and checks as on the command line.
  const study = resolveStudy(structuredClone(job.study), plugin, 'job');
  // The shard's own resources against this machine, before anything is loaded: a job cannot take
  // a worker past its memory or keep it for longer than the study's limits allow.
  const s = job.shard;
  const shardStudy = { ...study, batchSizes: [s.batchSize], runs: s.runCount, runsPerShard: s.runCount, initPoints: 1 };
  checkPluginResources(plugin, shardStudy, dataDir, machine);
  const child = container.createChildContainer();
  const facts: Record<string, unknown> = {};
  const read: { path: string; sha256: string; description?: string }[] = [];
  const ctx: PluginContext = {
    dataDir,
    logger,
    recordDataFile: (path, sha256, description) => read.push({ path, sha256, description }),
    recordFact: (k, v) => (facts[k] = v),
    // Paths a job names (options.data, tokenizer, uciFile) resolve inside this worker's --data-dir only.
    dataPath: confinedDataPath(dataDir),
  };
  child.register(Tokens.Study, { useValue: study });
  child.register(Tokens.Context, { useValue: ctx });
  child.register(Tokens.Logger, { useValue: logger });
  await plugin.register(child, study, ctx);
  // The coordinator's data and this worker's must be the same files (by content, wherever they live).
  const mine = read.map((d) => d.sha256).sort().join(',');
  const theirs = (job.data ?? []).map((d) => d.sha256).sort().join(',');
  if (mine !== theirs) {
    const describe = (ds: readonly { description?: string; sha256: string }[]) => ds.map((d) => `${d.description ?? 'file'} ${d.sha256.slice(0, 12)}`).join(', ') || 'none';
    throw new Error(`this worker's data differ from the coordinator's: here ${describe(read)}; there ${describe(job.data ?? [])}. Give every worker the same --data-dir contents`);
  }
  // And the same code and backend: a shard computed by other code is not the coordinator's result.
  let fingerprint: string | undefined;
  if (job.dependsOn) {
    const here = resultDependencies(study, read.map((d) => d.sha256), `${found!.packageName}@${found!.version}`, facts);
    const differs = dependencyChanges(job.dependsOn, here, ['there', 'here']);
    if (differs.length) throw new Error(`this worker differs from the coordinator in ${differs.join('; ')}. Run every worker on the same code and backend as the coordinator`);
    fingerprint = resultFingerprint(job.dependsOn);
  }
  applyComponents(child, study, plugin, components);
  const result = await runShard(shardContext(child, study), job.shard);
  return shardResultToJson(job.shard, result, fingerprint);
}

/** What a failed job reports back: the kind of error and where, without file contents. */
export function failureReason(e: unknown): string {
  if (e instanceof DataError) return `${e.file}: the worker's data checks refused this file (the details are in the worker's log)`;
  if (e instanceof ConfigError) return e.message;
  const text = e instanceof Error ? e.message : String(e);
  // Quoted fragments may be file contents: keep the sentence, drop what it quotes.
  return text.replace(/"[^"]*"/g, '"..."').slice(0, 500);
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
      const out = await computeShard(job.data, o.dataDir, o.logger).catch((e: unknown) => {
        // The reason goes back through Redis to whoever queued the job: it names the problem, never
        // the contents of a file on this machine (those stay in this worker's log).
        o.logger.error(`shard ${job.id}: ${e instanceof Error ? e.message : String(e)}`);
        // A job the checks refuse (schema, limits, paths) fails the same way on every attempt.
        throw e instanceof ConfigError ? new UnrecoverableError(failureReason(e)) : new Error(failureReason(e));
      });
      o.logger.info(`shard ${job.id}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return out;
    },
    { connection, concurrency: o.concurrency ?? 1, lockDuration, stalledInterval: Math.max(1000, lockDuration / 2), maxStalledCount: 3 },
  );
  worker.on('error', (e) => o.logger.warn(`worker: ${e.message}`));
  return worker;
}
