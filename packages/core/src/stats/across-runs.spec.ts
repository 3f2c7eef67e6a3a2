import { describe, expect, it } from 'vitest';
import { RandomStream } from '../random/stream.js';
import {
  WelfordAccumulator,
  compareVariances,
  mergeMoments,
  runMoments,
  traceVariance,
  traceVarianceStdError,
  varianceInterval,
} from './across-runs.js';

function randomMatrix(rng: RandomStream, runs: number, dim: number, scale: number[]): Float64Array {
  const m = new Float64Array(runs * dim);
  for (let r = 0; r < runs; r++) for (let j = 0; j < dim; j++) m[r * dim + j] = 3 + scale[j] * rng.nextNormal();
  return m;
}

describe('across-run moments', () => {
  it('equal the naive two-pass trace variance', () => {
    const rng = new RandomStream([1]);
    const data = randomMatrix(rng, 50, 4, [1, 2, 3, 4]);
    const m = runMoments(data, 50, 4);
    let naive = 0;
    for (let j = 0; j < 4; j++) {
      let mean = 0;
      for (let r = 0; r < 50; r++) mean += data[r * 4 + j] / 50;
      for (let r = 0; r < 50; r++) naive += (data[r * 4 + j] - mean) ** 2 / 49;
    }
    expect(traceVariance(m)).toBeCloseTo(naive, 12);
  });

  it('merge disjoint run sets exactly (n, mean, m2), in any split', () => {
    const rng = new RandomStream([2]);
    const runs = 97;
    const dim = 5;
    const data = randomMatrix(rng, runs, dim, [1, 1, 2, 0.5, 3]);
    const whole = runMoments(data, runs, dim);
    for (const cut of [1, 13, 50, 96]) {
      const a = runMoments(data, cut, dim);
      const b = runMoments(data, runs - cut, dim, 0, dim, cut * dim);
      const m = mergeMoments(a, b);
      expect(m.n).toBe(runs);
      expect(m.m2 / whole.m2).toBeCloseTo(1, 12);
      for (let j = 0; j < dim; j++) expect(m.mean[j]).toBeCloseTo(whole.mean[j], 12);
      // m4 is merged to leading order only: within a few per cent for these sizes.
      expect(Math.abs(m.m4 / whole.m4 - 1)).toBeLessThan(0.1);
    }
  });

  it('give 95% intervals that cover the true trace variance about 95% of the time', () => {
    // 2,000 independent experiments of 200 runs; coverage is binomial, so allow 4 standard errors.
    const rng = new RandomStream([3]);
    const scale = [1, 2, 0.5];
    const truth = scale.reduce((s, v) => s + v * v, 0);
    const experiments = 2000;
    let covered = 0;
    for (let e = 0; e < experiments; e++) {
      const m = runMoments(randomMatrix(rng, 200, 3, scale), 200, 3);
      const ci = varianceInterval(m, 0.95);
      if (ci.low <= truth && truth <= ci.high) covered++;
    }
    const sd = Math.sqrt((0.95 * 0.05) / experiments);
    expect(Math.abs(covered / experiments - 0.95)).toBeLessThan(4 * sd + 0.01);
  });

  it('standard error matches the spread of the estimate', () => {
    const rng = new RandomStream([4]);
    const reps = 1000;
    const est: number[] = [];
    let seSum = 0;
    for (let e = 0; e < reps; e++) {
      const m = runMoments(randomMatrix(rng, 100, 2, [1, 3]), 100, 2);
      est.push(traceVariance(m));
      seSum += traceVarianceStdError(m);
    }
    const mean = est.reduce((s, v) => s + v, 0) / reps;
    const sd = Math.sqrt(est.reduce((s, v) => s + (v - mean) ** 2, 0) / (reps - 1));
    // The sd of a sample sd from 1,000 replicates is about 2.2%; allow 10%.
    expect(Math.abs(seSum / reps / sd - 1)).toBeLessThan(0.1);
    expect(Math.abs(mean - 10)).toBeLessThan(5 * (sd / Math.sqrt(reps)));
  });

  it('one-sided comparison: small p when the first variance is clearly larger, large when smaller', () => {
    expect(compareVariances(2, 0.1, 1, 0.05).pValue).toBeLessThan(1e-10);
    expect(compareVariances(1, 0.05, 2, 0.1).pValue).toBeGreaterThan(0.999);
    expect(compareVariances(1, 0.1, 1, 0.1).pValue).toBeCloseTo(0.5, 12);
  });
});

describe('WelfordAccumulator', () => {
  it('streams runs to the two-pass moments', () => {
    const rng = new RandomStream([5]);
    const data = randomMatrix(rng, 300, 4, [1, 2, 3, 4]);
    const acc = new WelfordAccumulator(4);
    for (let r = 0; r < 300; r++) acc.push(data, r * 4);
    const a = acc.toMoments();
    const b = runMoments(data, 300, 4);
    expect(a.n).toBe(300);
    expect(a.m2 / b.m2).toBeCloseTo(1, 12);
    for (let j = 0; j < 4; j++) expect(a.mean[j]).toBeCloseTo(b.mean[j], 12);
    expect(Math.abs(a.m4 / b.m4 - 1)).toBeLessThan(0.05);
    const perCoordinate = acc.coordinateVariances();
    expect(perCoordinate.reduce((s, v) => s + v, 0)).toBeCloseTo(traceVariance(b), 10);
  });
});
