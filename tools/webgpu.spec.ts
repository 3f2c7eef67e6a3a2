/**
 * Every tensor setting's smoke preset on the webgpu backend (on CI: Mesa's llvmpipe through
 * Dawn's OpenGL ES backend; .ci/run installs it) against the same study on the cpu backend.
 * Both compute in float32 with other kernels and another order of operations, so records agree
 * to float32 error, not bit for bit: measured here, the largest relative difference of any
 * Monte Carlo record was 3e-6 (XLNet, 2 epochs), 5e-7 (MNIST) and 2e-7 (deep linear). The bound,
 * 1e-4 relative plus 1e-9 of the metric's largest value (for values that are 0 in exact
 * arithmetic, such as the across-run variance at t = 0 where every run is at θ0), is 30x the
 * largest difference seen and far below any difference between batch sizes.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnCli, testDataDir } from '@sgd-lab/core/testing';

const dataDir = testDataDir();
const RELATIVE = 1e-4;
const OF_SCALE = 1e-9;

interface Rec {
  metric: string;
  layer?: string;
  batchSize: number;
  initPoint: number;
  step?: number;
  epoch?: number;
  split?: string;
  power?: number;
  estimator: string;
  value: number | null;
}

async function run(setting: string, backend: string, out: string) {
  const p = spawnCli(['run', setting, '--preset', 'smoke', '--backend', backend, '--out', out, '--progress', 'off', ...(dataDir ? ['--data-dir', dataDir] : [])]);
  const exit = await p.exited;
  expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  return { records, manifest, stderr: exit.stderr };
}

const key = (r: Rec) => JSON.stringify([r.metric, r.layer, r.split, r.power, r.batchSize, r.initPoint, r.step, r.epoch, r.estimator]);

describe('the webgpu backend runs every tensor setting', () => {
  const settings = ['gaussian-deeplinear', 'mnist-mlp', ...(dataDir ? ['yelp-xlnet'] : [])];
  it.each(settings)('%s: the smoke preset on webgpu (stacked) agrees with cpu (per replica) within float32 error', async (setting) => {
    const dir = mkdtempSync(join(tmpdir(), `sgd-lab-webgpu-${setting}-`));
    const gpu = await run(setting, 'webgpu', join(dir, 'webgpu'));
    const cpu = await run(setting, 'cpu', join(dir, 'cpu'));
    const adapter = gpu.manifest.facts.backend.adapter;
    expect(gpu.manifest.facts.backend.name).toBe('webgpu');
    expect(typeof adapter.device).toBe('string');
    if (adapter.software) expect(gpu.stderr).toMatch(/software rasterizer/);
    // Every setting runs stacked on webgpu (a chunk of replicas per op); cpu runs per replica.
    expect(gpu.manifest.facts.engine.strategy).toBe('stacked');
    expect(cpu.manifest.facts.engine.strategy).toBe('per-replica');

    const cpuByKey = new Map(cpu.records.filter((r) => r.estimator === 'monte_carlo').map((r) => [key(r), r]));
    const gpuMc = gpu.records.filter((r) => r.estimator === 'monte_carlo');
    expect(gpuMc.length).toBe(cpuByKey.size);
    const scale = new Map<string, number>();
    for (const r of cpuByKey.values()) scale.set(r.metric, Math.max(scale.get(r.metric) ?? 0, Math.abs(r.value ?? 0)));
    const off: string[] = [];
    for (const g of gpuMc) {
      const c = cpuByKey.get(key(g));
      if (!c) {
        off.push(`${key(g)}: missing on cpu`);
        continue;
      }
      if (g.value === null || c.value === null) {
        if (g.value !== c.value) off.push(`${key(g)}: ${g.value} vs ${c.value}`);
        continue;
      }
      const bound = RELATIVE * Math.max(Math.abs(g.value), Math.abs(c.value)) + OF_SCALE * scale.get(g.metric)!;
      if (Math.abs(g.value - c.value) > bound) off.push(`${key(g)}: webgpu ${g.value} vs cpu ${c.value}`);
    }
    expect(off).toEqual([]);
  });
});
