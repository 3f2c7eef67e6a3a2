/**
 * The shared vitest setup keeps a passing run passing on a busy machine: a test file whose
 * synchronous tests block the worker for longer than vitest's 60 s RPC timeout (as the native
 * kernels' agreement tests do on a loaded 2-core machine) passes with no "Timeout calling
 * onTaskUpdate" error. Without vitest.setup.ts the same file fails (checked when it was written).
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));

describe('vitest.shared.ts', () => {
  it('lets a file of synchronous tests longer than the RPC timeout pass', async () => {
    const r = await new Promise<{ code: number; out: string }>((done) =>
      execFile(process.execPath, [join(repo, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', join(repo, 'tools', 'fixtures', 'rpc')], { maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
        done({ code: err ? Number(err.code) : 0, out: `${stdout}\n${stderr}` }),
      ),
    );
    expect(r.out).not.toMatch(/Timeout calling/);
    expect(r.out).toMatch(/33 passed/);
    expect(r.code, r.out).toBe(0);
  });
});
