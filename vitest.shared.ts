/**
 * What every package's vitest config shares. Tests must pass on a busy machine (CI on 2 cores,
 * other work beside it), so:
 * - one test file at a time per package (and `npm test` runs one package at a time): a test's
 *   synchronous work competes with nothing of ours, so vitest's worker RPC (whose 60 s timer
 *   fires first when a worker's event loop was blocked longer) never sees a starved worker;
 * - generous timeouts: they only catch a hang; tests wait for events, not for time.
 */
import type { ViteUserConfig } from 'vitest/config';

export const sharedTest: NonNullable<ViteUserConfig['test']> = {
  pool: 'forks',
  fileParallelism: false,
  testTimeout: 600_000,
  hookTimeout: 600_000,
  teardownTimeout: 60_000,
};
