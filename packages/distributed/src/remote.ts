/**
 * The coordinator side: every unfinished shard becomes a BullMQ job; results come back as the
 * jobs' return values and are merged by the run engine in plan order (and saved as shard files
 * as they arrive, so nothing finished is lost if Redis or the coordinator goes away).
 */
import { Queue, QueueEvents } from 'bullmq';
import { UserError, redactSecrets, type DataFileRecord, shardResultFromJson, studyFingerprint, type RemoteConnection, type ShardResult, type ShardSpec, type StudyConfig } from '@sgd-lab/core';
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
  try {
    await Promise.race([monitor.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer to PING')), unreachableMs))]);
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

  let failWith: ((e: Error) => void)[] = [];
  let lastOk = Date.now();
  let lastError = '';
  let stopped = false;
  const watchdog = setInterval(() => {
    monitor.ping().then(
      () => (lastOk = Date.now()),
      (e: Error) => (lastError = e.message),
    );
    if (!stopped && Date.now() - lastOk > unreachableMs) {
      stopped = true;
      const err = new RedisGoneError(o.url, lastError || 'no answer to PING', unreachableMs);
      for (const f of failWith) f(err);
      failWith = [];
    }
  }, o.pingMs ?? 500);

  return {
    async submit(shard: ShardSpec, data: readonly DataFileRecord[]): Promise<ShardResult> {
      const id = jobId(jobFingerprint(fingerprint, data), shard);
      return new Promise<ShardResult>((resolve, reject) => {
        failWith.push(reject);
        (async () => {
          // A job that failed before (a worker with other data, say) would be returned as failed
          // again: a new run submits it afresh.
          const previous = await queue.getJob(id);
          if (previous && (await previous.getState()) === 'failed') await previous.remove();
          const job = await queue.add('shard', { study: o.study, shard, data }, {
            jobId: id,
            // A worker that dies mid-shard leaves a stalled job that BullMQ hands to another worker;
            // attempts cover shards that throw.
            attempts: 3,
            backoff: { type: 'fixed', delay: 1000 },
            removeOnComplete: { age: 3600 },
            removeOnFail: { age: 24 * 3600 },
          });
          const state = await job.getState();
          const value = state === 'completed' ? (await queue.getJob(job.id!))?.returnvalue : await job.waitUntilFinished(events);
          const result = shardResultFromJson(String(value), shard);
          // Merged here and saved in the results folder: the job has nothing more to give.
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
