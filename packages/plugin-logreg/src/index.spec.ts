import 'reflect-metadata';
import { lastValueFrom, toArray } from 'rxjs';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { RandomStream, createLogger, resolveStudy, runStudy } from '@sgd-lab/core';
import { testDataDir, testDataFile } from '@sgd-lab/core/testing';
import { ADMISSION_DIR, ADMISSION_FILE, syntheticData } from '@sgd-lab/plugin-linreg';
import plugin from './index.js';
import { LogisticRegressionModel, aboveMedian } from './model.js';

const real = testDataFile(ADMISSION_DIR, ADMISSION_FILE);
const ctx = { dataDir: testDataDir() ?? '.', logger: createLogger({ quiet: true, level: 'error' }), recordDataFile: () => {}, recordFact: () => {} };

describe('logistic regression model', () => {
  it('has the gradient of its loss (finite differences) and splits labels at the median', () => {
    const data = aboveMedian(syntheticData(1, { rows: 41, features: 3, noise: 0.1 }, false));
    expect(data.labels.reduce((s, v) => s + v, 0)).toBe(20);
    const model = new LogisticRegressionModel(data, 1);
    const theta = model.initialParameters(new RandomStream([2]));
    const shard = { batchSize: data.n, initPoint: 0, runStart: 0, runCount: 1, steps: 1 };
    const state = model.replicate(theta, shard);
    const all = Int32Array.from({ length: data.n }, (_, i) => i);
    model.gradients(state, { indices: all, stride: data.n, size: data.n }, false);
    const h = 1e-6;
    for (let a = 0; a < data.p; a++) {
      const up = model.replicate(theta.map((v, i) => (i === a ? v + h : v)), shard);
      const down = model.replicate(theta.map((v, i) => (i === a ? v - h : v)), shard);
      const fd = (model.scalars(up).loss[0] - model.scalars(down).loss[0]) / (2 * h);
      expect(state.grad[a]).toBeCloseTo(fd, 6);
    }
  });
});

describe.skipIf(!real)('admission-logreg on the real file', () => {
  it('runs the smoke preset, with its claims holding', async () => {
    const study = resolveStudy({ setting: 'admission-logreg', preset: 'smoke' }, plugin, 'test');
    const child = container.createChildContainer();
    await plugin.register(child, study as never, ctx);
    const events = await lastValueFrom(runStudy({ container: child, study }).pipe(toArray()));
    const records = events.flatMap((e) => (e.type === 'metric' ? [e.record] : []));
    const err = records.filter((r) => r.metric === 'error' && r.batchSize === 64);
    expect(err.at(-1)!.value).toBeLessThan(0.2);
    const claims = events.flatMap((e) => (e.type === 'claim' ? [e.claim] : []));
    expect(claims).toHaveLength(2);
    for (const c of claims) expect([c.id, c.verdict]).toEqual([c.id, 'holds']);
  });
});
