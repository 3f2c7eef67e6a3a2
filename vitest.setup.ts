/**
 * Runs before every test file. Between two tests the worker gives its event loop one full turn
 * (two setImmediate hops put a poll phase between them), so vitest's answers to the worker's RPC
 * calls are read. Without it a file of synchronous tests never lets the loop turn until it ends,
 * and on a busy machine a file that takes longer than the RPC's 60 s timeout failed with
 * `Timeout calling "onTaskUpdate"` although every test passed: the timer phase comes before the
 * read of the answer that was waiting all along.
 */
import { afterEach } from 'vitest';

afterEach(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))));
