/**
 * What every package's vitest config shares. Tests must pass on a busy machine (CI on 2 cores,
 * other work beside it), so:
 * - one test file at a time per package (and `npm test` runs one package at a time): a test's
 *   synchronous work competes with nothing of ours, so vitest's worker RPC (whose 60 s timer
 *   fires first when a worker's event loop was blocked longer) never sees a starved worker;
 * - the event loop turns between tests (vitest.setup.ts), so a file of synchronous tests longer
 *   than vitest's 60 s RPC timeout cannot fail a passing run;
 * - generous timeouts: they only catch a hang; tests wait for events, not for time.
 */
import { fileURLToPath } from 'node:url';
import type { ViteUserConfig } from 'vitest/config';

export const sharedTest: NonNullable<ViteUserConfig['test']> = {
  pool: 'forks',
  setupFiles: [fileURLToPath(new URL('./vitest.setup.ts', import.meta.url))],
  fileParallelism: false,
  testTimeout: 600_000,
  hookTimeout: 600_000,
  teardownTimeout: 60_000,
};
