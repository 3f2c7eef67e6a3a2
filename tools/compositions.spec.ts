/**
 * Custom studies composed from components of other packages, run through the CLI exactly as a
 * user would: the MNIST MLP with @sgd-lab/tensor's Adam, and logistic regression with
 * admission-linreg's sampler with replacement.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');
const dataDir = [process.env.SGD_LAB_DATA_DIR, join(repo, '..', 'shared', 'data')].find((d) => d && spawnSync('test', ['-d', d]).status === 0);
if (!dataDir) process.stderr.write('SKIPPED (no real data): the admission composition needs SGD_LAB_DATA_DIR or ../shared/data\n');

async function run(study: string | object, extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-comp-'));
  let file = typeof study === 'string' ? join(repo, 'studies', study) : join(dir, 'study.json');
  if (typeof study !== 'string') writeFileSync(file, JSON.stringify(study));
  file = resolve(file);
  const out = join(dir, 'out');
  // Asynchronous, so this test worker's event loop stays free for vitest's reporting.
  const r = await new Promise<{ status: number; stderr: string }>((resolve) =>
    execFile(process.execPath, [cli, 'run', file, '--out', out, '--quiet', '--set', 'reporters=["jsonl","claims"]', ...extra], { cwd: repo }, (err, _o, stderr) =>
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
    ),
  );
  return { code: r.status, stderr: r.stderr, out, metrics: r.status === 0 ? readFileSync(join(out, 'metrics.jsonl'), 'utf8') : '' };
}

describe('composed studies', () => {
  it('trains the MNIST MLP with Adam from @sgd-lab/tensor', async () => {
    const adam = await run('mnist-mlp-adam.json');
    expect(adam.code, adam.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(join(adam.out, 'manifest.json'), 'utf8'));
    expect(manifest.study.components).toEqual({ optimizer: 'adam' });
    // Same study with the setting's own SGD: a different trajectory from the same start.
    const sgd = await run({ setting: 'mnist-mlp', preset: 'smoke', name: 'mnist-mlp-adam', learningRate: { type: 'constant', value: 0.001 } });
    expect(sgd.code, sgd.stderr).toBe(0);
    const first = (m: string) => m.split('\n').filter((l) => l.includes('"metric":"loss"') && l.includes('"split":"train"'));
    expect(first(adam.metrics)[0]).toBe(first(sgd.metrics)[0]); // epoch 0: the shared initial point
    expect(first(adam.metrics).at(-1)).not.toBe(first(sgd.metrics).at(-1));
  });

  it.runIf(!!dataDir)('runs logistic regression with the sampler of admission-linreg', async () => {
    const composed = await run('admission-logreg-with-replacement.json', ['--data-dir', dataDir!]);
    expect(composed.code, composed.stderr).toBe(0);
    // The plugin's own with-replacement option uses the same sampler: byte-identical metrics.
    const own = await run({ setting: 'admission-logreg', preset: 'smoke', name: 'admission-logreg-with-replacement', options: { sampling: 'with-replacement' } }, ['--data-dir', dataDir!]);
    expect(own.code, own.stderr).toBe(0);
    expect(composed.metrics).toBe(own.metrics);
    const plain = await run({ setting: 'admission-logreg', preset: 'smoke', name: 'admission-logreg-with-replacement' }, ['--data-dir', dataDir!]);
    expect(plain.metrics).not.toBe(composed.metrics);
  });

  it('names an unknown component and the known ones', async () => {
    const r = await run({ setting: 'mnist-mlp', preset: 'smoke', components: { optimizer: 'lbfgs' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\/components\/optimizer: unknown optimizer "lbfgs"; known: adam, tensor-sgd/);
  });
});
