/**
 * The coordinator side: every unfinished shard becomes a BullMQ job; results come back as the
 * jobs' return values and are merged by the run engine in plan order (and saved as shard files
 * as they arrive, so nothing finished is lost if Redis or the coordinator goes away).
 */
import { Queue, QueueEvents } from 'bullmq';
import { UserError, redactSecrets, resultFingerprint, type DataFileRecord, type ResultDependencies, shardResultFromJson, studyFingerprint, type RemoteConnection, type ShardResult, type ShardSpec, type StudyConfig } from '@sgd-lab/core';
import { QUEUE_NAME, connect, jobFingerprint, jobId, type ShardJob } from './queue.js';

export interface RemoteOptions {
  url: string;
  study: StudyConfig;
  /** How long Redis may be unreachable before the study stops. @default 20000 */
  unreachableMs?: number;
  /** How often Redis is pinged. @default 500 */
  pingMs?: number;
}

/** Raised when Redis stops answering: the finished shards are on disk, `--resume` continues. */
export class RedisGoneError extends UserError {
  constructor(url: string, detail: string, ms: number) {
    const login = /WRONGPASS|NOAUTH|invalid password|AUTH/i.test(detail);
    super(
      login
        ? `Redis at ${redactSecrets(url)} refused the login (${detail}); check the user and password in --redis. The study stopped; finished shards are saved for --resume.`
        : `Redis at ${redactSecrets(url)} did not answer for ${ms / 1000} s (${detail}); the study stopped. Finished shards are saved: run the same command with --resume when Redis is back.`,
      5,
    );
  }
}

/** Raised when Redis restarted without the jobs in flight (no persistence): `--resume` continues. */
export class RedisRestartedError extends UserError {
  constructor(url: string, lost: number) {
    super(
      `Redis at ${redactSecrets(url)} restarted and lost ${lost} queued shard job${lost > 1 ? 's' : ''} (it keeps no data across restarts: enable appendonly or save in its config); ` +
        'the study stopped. Finished shards are saved: run the same command with --resume.',
      5,
    );
  }
}

export type Remote = RemoteConnection;

export async function createRemote(o: RemoteOptions): Promise<Remote> {
  const unreachableMs = o.unreachableMs ?? 20_000;
  const fingerprint = studyFingerprint(o.study);
  const queueConn = connect(o.url);
  const eventsConn = connect(o.url);
  const monitor = connect(o.url);
  const swallow = () => undefined; // ioredis reports every failed reconnect; the watchdog decides
  for (const c of [queueConn, eventsConn, monitor]) c.on('error', swallow);
  const queue = new Queue<ShardJob, string>(QUEUE_NAME, { connection: queueConn });
  // A short blocking read keeps close() quick; events still arrive as soon as they are written.
  const events = new QueueEvents(QUEUE_NAME, { connection: eventsConn, blockingTimeout: 500 });
  queue.on('error', swallow);
  events.on('error', swallow);
  // The first answer also gives the server's run_id, by which a restart is noticed (below).
  let firstInfo = '';
  try {
    firstInfo = await Promise.race([monitor.info('server'), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer to INFO')), unreachableMs).unref())]);
  } catch (e) {
    // Closing a queue whose connection never became ready can wait forever (a wrong password, a
    // Redis that died at once): bound it, then drop the connections.
    await Promise.race([Promise.allSettled([queue.close(), events.close()]), new Promise((r) => setTimeout(r, 1000).unref())]);
    for (const c of [queueConn, eventsConn, monitor]) c.disconnect();
    throw new RedisGoneError(o.url, (e as Error).message, unreachableMs);
  }
  // Ready within the same bound as the ping (it can also wait forever on a refused login).
  try {
    await Promise.race([events.waitUntilReady(), new Promise((_, reject) => setTimeout(() => reject(new Error('the event stream did not open')), unreachableMs).unref())]);
  } catch (e) {
    await Promise.race([Promise.allSettled([queue.close(), events.close()]), new Promise((r) => setTimeout(r, 1000).unref())]);
    for (const c of [queueConn, eventsConn, monitor]) c.disconnect();
    throw new RedisGoneError(o.url, (e as Error).message, unreachableMs);
  }

  // Each job waited on holds one 'closing' listener on the queue until it finishes (BullMQ's
  // waitUntilFinished): the limit grows with the jobs in flight, so Node's leak warning (at 10)
  // stays for real leaks and is not printed for every study of more than 10 shards.
  const waitFor = async (job: Awaited<ReturnType<typeof queue.add>>) => {
    queue.setMaxListeners(queue.getMaxListeners() + 1);
    try {
      return await job.waitUntilFinished(events);
    } finally {
      queue.setMaxListeners(queue.getMaxListeners() - 1);
    }
  };
  let failWith: ((e: Error) => void)[] = [];
  let lastOk = Date.now();
  let lastError = '';
  let stopped = false;
  const stop = (err: Error) => {
    if (stopped) return;
    stopped = true;
    for (const f of failWith) f(err);
    failWith = [];
  };
  // A Redis that restarts gets a new run_id. Without persistence it comes back empty: the jobs
  // in flight are gone and no worker will ever finish them, so the study stops (exit 5) instead
  // of waiting forever. With persistence the jobs are still there and the study goes on.
  const outstanding = new Set<string>();
  const runIdOf = (info: string) => /^run_id:(\w+)/m.exec(info)?.[1];
  let serverRunId = runIdOf(firstInfo);
  let checking = false;
  const checkRestart = async (runId: string) => {
    checking = true;
    try {
      const lost: string[] = [];
      for (const id of outstanding) if (!(await queue.getJob(id))) lost.push(id);
      if (lost.length) stop(new RedisRestartedError(o.url, lost.length));
      else serverRunId = runId;
    } catch (e) {
      lastError = (e as Error).message;
    } finally {
      checking = false;
    }
  };
  const watchdog = setInterval(() => {
    monitor.info('server').then(
      (info) => {
        lastOk = Date.now();
        const runId = runIdOf(info);
        if (runId && serverRunId && runId !== serverRunId && !checking) void checkRestart(runId);
        serverRunId ??= runId;
      },
      (e: Error) => (lastError = e.message),
    );
    if (Date.now() - lastOk > unreachableMs) stop(new RedisGoneError(o.url, lastError || 'no answer to INFO', unreachableMs));
  }, o.pingMs ?? 500);

  return {
    async submit(shard: ShardSpec, data: readonly DataFileRecord[], dependsOn?: ResultDependencies): Promise<ShardResult> {
      // The job id is made from everything the result depends on: a job of another study, data,
      // code or backend is never taken for this one.
      const resultFp = dependsOn ? resultFingerprint(dependsOn) : undefined;
      const id = jobId(resultFp ?? jobFingerprint(fingerprint, data), shard);
      return new Promise<ShardResult>((resolve, reject) => {
        failWith.push(reject);
        outstanding.add(id);
        (async () => {
          // A job that failed before (a worker with other data, say) would be returned as failed
          // again: a new run submits it afresh.
          const previous = await queue.getJob(id);
          if (previous && (await previous.getState()) === 'failed') await previous.remove();
          const job = await queue.add('shard', { study: o.study, shard, data, dependsOn }, {
            jobId: id,
            // A worker that dies mid-shard leaves a stalled job that BullMQ hands to another worker;
            // attempts cover shards that throw.
            attempts: 3,
            backoff: { type: 'fixed', delay: 1000 },
            removeOnComplete: { age: 3600 },
            removeOnFail: { age: 24 * 3600 },
          });
          const state = await job.getState();
          const value = state === 'completed' ? (await queue.getJob(job.id!))?.returnvalue : await waitFor(job);
          const result = shardResultFromJson(String(value), shard, resultFp);
          // Merged here and saved in the results folder: the job has nothing more to give.
          outstanding.delete(id);
          await queue.remove(id).catch(() => undefined);
          resolve(result);
        })().catch((e: Error) => reject(e instanceof UserError ? e : new UserError(`shard ${id} failed on the workers: ${e.message}`, 1)));
      });
    },
    async close() {
      clearInterval(watchdog);
      // After a Redis failure close() could wait on a dead connection: bound it.
      await Promise.race([Promise.allSettled([queue.close(), events.close()]), new Promise((r) => setTimeout(r, 2000).unref())]);
      for (const c of [queueConn, eventsConn, monitor]) c.disconnect();
    },
  };
}
