/** `sgd-lab worker --redis <url> [--data-dir d] [--concurrency n]`: computes shards until stopped. */
import { resolve } from 'node:path';
import { UsageError, closeLogger, createLogger, type CliCommand } from '@sgd-lab/core';
import { checkRedisSecurity } from './queue.js';
import { startWorker } from './worker.js';

/** A Redis URL with its password (and user) replaced, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable Redis URL)';
  }
}

export const commands: Record<string, CliCommand> = {
  worker: {
    description: 'compute shards from a Redis queue until stopped (SIGINT or SIGTERM)',
    options: [
      { flags: '--redis <url>', description: 'the Redis URL, e.g. redis://127.0.0.1:6379 (required)' },
      { flags: '--data-dir <dir>', description: 'data directory (default: $SGD_LAB_DATA_DIR, else ./data)' },
      { flags: '--concurrency <n>', description: 'shards computed at once', default: 1, type: 'positive-integer' },
      { flags: '--lock-ms <ms>', description: 'how long a job stays locked without a heartbeat', type: 'positive-integer' },
      { flags: '--insecure', description: 'connect to a Redis without a password, or off this machine without TLS (refused otherwise)' },
      { flags: '--quiet', description: 'only warnings and errors' },
    ],
    help: 'Start one per machine (or core group), then `sgd-lab run <study> --redis <url>` on the coordinator.',
    async run(_args, o) {
      const url = o.redis as string | undefined;
      if (!url) {
        throw new UsageError('worker: --redis <url> is required, e.g. --redis redis://127.0.0.1:6379', 'worker');
      }
      const logger = createLogger({ quiet: o.quiet === true });
      try {
        checkRedisSecurity(url, { insecure: o.insecure === true, warn: (m) => logger.warn(m), command: 'worker' });
      } catch (e) {
        await closeLogger(logger);
        throw e;
      }
      const worker = startWorker({
        url,
        dataDir: resolve((o.dataDir as string | undefined) ?? process.env.SGD_LAB_DATA_DIR ?? 'data'),
        logger,
        concurrency: (o.concurrency as number | undefined) ?? 1,
        lockMs: o.lockMs as number | undefined,
      });
      await worker.waitUntilReady();
      logger.info(`worker ready on ${redactUrl(url)}`);
      await new Promise<void>((done) => {
        const stop = () => void worker.close().then(() => done());
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    },
  },
};

export default commands;
