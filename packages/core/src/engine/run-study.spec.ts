import 'reflect-metadata';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { container } from 'tsyringe';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveStudy } from '../config/validate.js';
import { CancelledError, DivergenceError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import toy, { toyPoints } from '../testing/toy-plugin.js';
import type { MetricRecord, StudyEvent } from './records.js';
import { runStudy } from './run-study.js';
import { runSession } from './session.js';

const silent = createLogger({ quiet: true, level: 'error' });
const ctx = { dataDir: '.', logger: silent, recordDataFile: () => {}, recordFact: () => {} };

async function events(raw: Record<string, unknown>, signal?: AbortSignal): Promise<StudyEvent[]> {
  const study = resolveStudy({ setting: 'toy-mean', preset: 'smoke', ...raw }, toy, 'test');
  const child = container.createChildContainer();
  await toy.register(child, study, ctx);
  return lastValueFrom(runStudy({ container: child, study, signal }).pipe(toArray()));
}

const metrics = (es: StudyEvent[]): MetricRecord[] => es.flatMap((e) => (e.type === 'metric' ? [e.record] : []));

afterEach(() => container.clearInstances());

describe('runStudy', () => {
  it('matches the exact variance at t = 0 within a sample-size tolerance', async () => {
    const runs = 4000;
    const recs = metrics(await events({ runs, steps: 1, batchSizes: [2, 8] }));
    const x = toyPoints(1, { points: 40, dim: 3 });
    const mean = [0, 1, 2].map((j) => Array.from({ length: 40 }, (_, i) => x[i * 3 + j]).reduce((s, v) => s + v, 0) / 40);
    let spread = 0;
    for (let i = 0; i < 40; i++) for (let j = 0; j < 3; j++) spread += (x[i * 3 + j] - mean[j]) ** 2 / 40;
    for (const b of [2, 8]) {
      const exact = ((40 - b) / (b * 39)) * spread;
      const r = recs.find((m) => m.metric === 'grad_variance' && m.layer === 'all' && m.batchSize === b && m.step === 0)!;
      // The interval is 95%; a 5-sigma band keeps the fixed-seed test far from flaky while still
      // failing for any estimator off by more than ~10%.
      const se = (Math.log(r.ciHigh! / r.ciLow!) / (2 * 1.959964)) * r.value;
      expect(Math.abs(r.value - exact)).toBeLessThan(5 * se);
      expect(se / exact).toBeLessThan(0.05);
    }
  });

  it('gives identical records and claims whatever the shard size (whole run blocks)', async () => {
    const all = (e: StudyEvent[]) => JSON.stringify(e.filter((x) => x.type === 'metric' || x.type === 'claim'));
    const whole = await events({ runs: 120, steps: 5, runBlock: 8 });
    for (const runsPerShard of [8, 16, 40, 56, 112]) {
      const sharded = await events({ runs: 120, steps: 5, runBlock: 8, runsPerShard });
      expect(all(sharded)).toBe(all(whole));
    }
    expect(metrics(whole).every((r) => r.runs === 120)).toBe(true);
  });

  it('refuses a shard size that would split a run block, naming both fields', async () => {
    await expect(events({ runs: 120, steps: 5, runBlock: 8, runsPerShard: 50 })).rejects.toThrow(/runsPerShard: 50 is not a multiple of \/runBlock \(8\)/);
  });

  it('emits per-layer and total variances for multi-block models', async () => {
    const recs = metrics(await events({ runs: 50, steps: 2 }));
    const at = recs.filter((r) => r.metric === 'grad_variance' && r.step === 1 && r.batchSize === 2);
    expect(at.map((r) => r.layer).sort()).toEqual(['all', 'first', 'rest']);
    const sum = at.filter((r) => r.layer !== 'all').reduce((s, r) => s + r.value, 0);
    expect(at.find((r) => r.layer === 'all')!.value).toBeCloseTo(sum, 12);
  });

  it('stops cleanly when aborted, keeping what was emitted', async () => {
    const ac = new AbortController();
    const seen: StudyEvent[] = [];
    const study = resolveStudy({ setting: 'toy-mean', preset: 'smoke', runs: 2000, steps: 100000 }, toy, 'test');
    const child = container.createChildContainer();
    await toy.register(child, study, ctx);
    const err = await new Promise<unknown>((resolve) => {
      runStudy({ container: child, study, signal: ac.signal }).subscribe({
        next: (e) => {
          seen.push(e);
          if (metrics(seen).length === 30) ac.abort();
        },
        error: resolve,
        complete: () => resolve(undefined),
      });
    });
    expect(err).toBeInstanceOf(CancelledError);
    expect(seen.at(-1)).toMatchObject({ type: 'studyEnd', status: 'cancelled' });
    expect(metrics(seen).length).toBeGreaterThanOrEqual(30);
  });

  it('reports a diverging run with the step and batch size, and keeps the records before it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-div-'));
    // A bound far above the loss's range: the run goes on until its loss is not finite.
    const study = resolveStudy({ setting: 'toy-mean', preset: 'smoke', steps: 2000, learningRate: { type: 'constant', value: 3 }, divergenceFactor: 1e300, reporters: ['jsonl', 'claims'] }, toy, 'test');
    const result = await runSession({ study, plugin: toy, packages: {}, outDir: dir, dataDir: '.', logger: silent });
    expect(result.status).toBe('failed');
    expect(result.error).toBeInstanceOf(DivergenceError);
    expect((result.error as Error).message).toMatch(/diverged at step \d+ \(b = 2, initial point 0\)/);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(100);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('failed');
    expect(manifest.error).toMatch(/diverged/);
    expect(manifest.outputs['metrics.jsonl'].records).toBe(lines.length);
    // With the default bound the same run stops as soon as its loss passes 1e6 x the initial one.
    const early = await runSession({ study: { ...study, divergenceFactor: 1e6 }, plugin: toy, packages: {}, outDir: mkdtempSync(join(tmpdir(), 'sgd-lab-div-')), dataDir: '.', logger: silent });
    expect((early.error as Error).message).toMatch(/loss is [0-9.e+]+, above \/divergenceFactor \(1000000\) x the initial loss/);
  });

  it('writes byte-identical metrics for the same config and seed', async () => {
    const run = async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-det-'));
      const study = resolveStudy({ setting: 'toy-mean', preset: 'smoke', reporters: ['jsonl'] }, toy, 'test');
      const r = await runSession({ study, plugin: toy, packages: {}, outDir: dir, dataDir: '.', logger: silent });
      expect(r.status).toBe('completed');
      return readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    };
    const a = await run();
    expect(a.length).toBeGreaterThan(1000);
    expect(await run()).toBe(a);
  });
});
