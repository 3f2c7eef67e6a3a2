/**
 * The remote executor core's CLI finds through this package's `"sgd-lab": { "remote" }` field:
 * `sgd-lab run ... --redis redis://host:6379` sends the unfinished shards to BullMQ workers.
 */
import type { RemoteExecutor } from '@sgd-lab/core';
import { createRemote } from './remote.js';
import { checkRedisSecurity } from './queue.js';

const executor: RemoteExecutor = {
  schemes: ['redis', 'rediss'],
  connect: (o) => {
    checkRedisSecurity(o.url, { insecure: o.insecure, warn: o.warn ?? ((m) => process.emitWarning(m)), command: 'run' });
    return createRemote(o);
  },
};

export default executor;
