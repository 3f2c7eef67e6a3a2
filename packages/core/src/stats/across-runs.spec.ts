import { describe, expect, it } from 'vitest';
import { RandomStream } from '../random/stream.js';
import { biasRatio, interval, meanEstimate, runBlockStats, scalarBlockStats, varianceEstimate } from './across-runs.js';

function randomMatrix(rng: RandomStream, runs: number, dim: number, scale: number[], shift = 3): Float64Array {
  const m = new Float64Array(runs * dim);
  for (let r = 0; r < runs; r++) for (let j = 0; j < dim; j++) m[r * dim + j] = shift + scale[j] * rng.nextNormal();
  return m;
}

/** Naive pooled within-block trace variance. */
function naive(data: Float64Array, runs: number, dim: number, block: number): number {
  let ss = 0;
  let dof = 0;
  for (let s = 0; s < runs; s += block) {
    const n = Math.min(block, runs - s);
    for (let j = 0; j < dim; j++) {
      let mean = 0;
      for (let r = s; r < s + n; r++) mean += data[r * dim + j] / n;
      for (let r = s; r < s + n; r++) ss += (data[r * dim + j] - mean) ** 2;
    }
    dof += n - 1;
  }
  return ss / dof;
}

describe('run-block statistics', () => {
  it('give the pooled within-block trace variance, blocks of any size including a partial last one', () => {
    const rng = new RandomStream([1]);
    const data = randomMatrix(rng, 50, 4, [1, 2, 3, 4]);
    for (const block of [2, 7, 16, 50]) {
      const e = varianceEstimate(runBlockStats(data, 50, block, 4));
      expect(e.value).toBeCloseTo(naive(data, 50, 4, block), 10);
      expect(e.runs).toBe(50);
    }
  });

  it('are bit-identical however the runs are split at block boundaries', () => {
    const rng = new RandomStream([2]);
    const runs = 96;
    const dim = 5;
    const data = randomMatrix(rng, runs, dim, [1, 1, 2, 0.5, 3]);
    const whole = runBlockStats(data, runs, 8, dim);
    for (const cuts of [[8], [40, 48], [16, 32, 88]]) {
      const edges = [0, ...cuts, runs];
      const parts = edges.slice(1).map((end, i) => runBlockStats(data, end - edges[i], 8, dim, 0, dim, edges[i] * dim));
      const merged = parts.flat();
      expect(merged).toEqual(whole);
      expect(varianceEstimate(merged)).toEqual(varianceEstimate(whole));
    }
  });

  it('are unbiased with a standard error that matches the spread of the estimate', () => {
    // 2,000 replications of R = 64 Gaussian runs (tr Var = 1 + 4 + 9 = 14).
    const rng = new RandomStream([3]);
    const reps = 2000;
    const values: number[] = [];
    const ses: number[] = [];
    for (let i = 0; i < reps; i++) {
      const e = varianceEstimate(runBlockStats(randomMatrix(rng, 64, 3, [1, 2, 3]), 64, 16, 3));
      values.push(e.value);
      ses.push(e.stdError * e.value);
    }
    const mean = values.reduce((s, v) => s + v, 0) / reps;
    const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (reps - 1));
    // The mean of 2,000 estimates is within 4 of its standard errors of the truth.
    expect(Math.abs(mean - 14)).toBeLessThan((4 * sd) / Math.sqrt(reps));
    // The average standard error is the spread of the estimates within 10% (its own noise is ~2%).
    const avgSe = ses.reduce((s, v) => s + v, 0) / reps;
    expect(avgSe / sd).toBeGreaterThan(0.9);
    expect(avgSe / sd).toBeLessThan(1.1);
  });

  it('give the mean of a scalar with its standard error; zeros have a zero standard error', () => {
    const x = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const e = meanEstimate(scalarBlockStats(x, 4));
    expect(e.value).toBe(4.5);
    // Pooled within blocks of 4: each block's squared deviations sum to 5.
    expect(e.stdError).toBeCloseTo(Math.sqrt(10 / 6 / 8), 14);
    expect(e.df).toBe(6);
    const zero = meanEstimate(scalarBlockStats(new Float64Array(8), 4));
    expect([zero.value, zero.stdError]).toEqual([0, 0]);
    const ci = interval(zero, 0.95);
    expect([ci.low, ci.high]).toEqual([0, 0]);
  });

  it('bias ratio is about 1 for a centred quantity and large for a biased one', () => {
    const rng = new RandomStream([4]);
    const centred = randomMatrix(rng, 400, 6, [1, 1, 1, 1, 1, 1], 0);
    const r0 = biasRatio(runBlockStats(centred, 400, 16, 6));
    // Average of 25 blocks of about chi^2_6 / 6 values: sd about 0.12.
    expect(Math.abs(r0 - 1)).toBeLessThan(0.5);
    const biased = randomMatrix(rng, 400, 6, [1, 1, 1, 1, 1, 1], 0.5);
    // Expected 1 + n_k ||bias||^2 / tr Var = 1 + 16 * 1.5 / 6 = 5.
    expect(biasRatio(runBlockStats(biased, 400, 16, 6))).toBeGreaterThan(3);
  });
});
