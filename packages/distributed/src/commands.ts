/** `sgd-lab worker --redis <url> [--data-dir d] [--concurrency n]`: computes shards until stopped. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, type CliCommand } from '@sgd-lab/core';
import { startWorker } from './worker.js';

export const commands: Record<string, CliCommand> = {
  worker: {
    usage: 'sgd-lab worker --redis <url> [--data-dir d] [--concurrency n] [--lock-ms ms]   compute shards from a Redis queue',
    async run(args) {
      const { values } = parseArgs({
        args,
        options: { redis: { type: 'string' }, 'data-dir': { type: 'string' }, concurrency: { type: 'string' }, 'lock-ms': { type: 'string' }, quiet: { type: 'boolean', default: false } },
      });
      if (!values.redis) throw new ConfigError('command line', ['--redis: the Redis URL is required, e.g. redis://127.0.0.1:6379']);
      const logger = createLogger({ quiet: values.quiet });
      const worker = startWorker({ url: values.redis, dataDir: resolve(values['data-dir'] ?? process.env.SGD_LAB_DATA_DIR ?? 'data'), logger, concurrency: Number(values.concurrency ?? 1), lockMs: values['lock-ms'] ? Number(values['lock-ms']) : undefined });
      await worker.waitUntilReady();
      logger.info(`worker ready on ${values.redis}`);
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
