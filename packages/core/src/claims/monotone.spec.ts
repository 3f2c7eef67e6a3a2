import { describe, expect, it } from 'vitest';
import { RecordIndex } from '../engine/record-index.js';
import type { MetricRecord } from '../engine/records.js';
import type { StudyConfig } from '../config/study-config.js';
import { agreesWithExact, decreasingInBatchSize } from './monotone.js';

const study = { name: 's', setting: 'x-y', batchSizes: [16, 4], initPoints: 1, confidenceLevel: 0.95, significance: 0.01 } as unknown as StudyConfig;

/** A Monte Carlo variance record with a standard error `logSe` of its log (100 runs). */
function mc(b: number, step: number, value: number, logSe: number, runs = 100): MetricRecord {
  const f = Math.exp(1.959963984540054 * logSe);
  return { study: 's', setting: 'x-y', metric: 'v', estimator: 'monte_carlo', batchSize: b, initPoint: 0, step, value, runs, ciLow: value / f, ciHigh: value * f, stdError: logSe, scale: 'log', df: runs - 2 };
}
/** A Monte Carlo mean record (linear scale), e.g. an error that can be 0. */
function mean(b: number, step: number, value: number, se: number, runs = 100): MetricRecord {
  return { study: 's', setting: 'x-y', metric: 'v', estimator: 'monte_carlo', batchSize: b, initPoint: 0, step, value, runs, stdError: se, scale: 'linear', df: runs - 1 };
}
function exact(b: number, step: number, value: number): MetricRecord {
  return { study: 's', setting: 'x-y', metric: 'v', estimator: 'exact', batchSize: b, initPoint: 0, step, value };
}

const claim = decreasingInBatchSize({ id: 'c', statement: 's', paperRef: 'r', metric: 'v' });

describe('decreasingInBatchSize', () => {
  it('holds when every comparison is significant, with the largest p-value', () => {
    const idx = new RecordIndex();
    [0, 1, 2].forEach((t) => {
      idx.add(mc(4, t, 4, 0.05));
      idx.add(mc(16, t, 1, 0.05));
    });
    const [r] = claim.evaluate(idx, study);
    expect(r.verdict).toBe('holds');
    expect(r.pValue!).toBeLessThan(1e-10);
    expect(r.evidence.comparisons).toBe(3);
  });

  it('is inconclusive when one step is within noise, and fails when reversed beyond Bonferroni', () => {
    const idx = new RecordIndex();
    idx.add(mc(4, 0, 4, 0.05));
    idx.add(mc(16, 0, 1, 0.05));
    idx.add(mc(4, 1, 1.01, 0.05));
    idx.add(mc(16, 1, 1, 0.05));
    expect(claim.evaluate(idx, study)[0].verdict).toBe('inconclusive');
    idx.add(mc(4, 2, 1, 0.01));
    idx.add(mc(16, 2, 2, 0.01));
    const [r] = claim.evaluate(idx, study);
    expect(r.verdict).toBe('fails');
    expect(r.evidence.weakest).toMatchObject({ step: 2, b1: 4, b2: 16 });
  });

  it('judges exact curves by their margin', () => {
    const idx = new RecordIndex();
    idx.add(exact(4, 0, 2));
    idx.add(exact(16, 0, 1));
    expect(claim.evaluate(idx, study)[0]).toMatchObject({ verdict: 'holds', margin: 0.5 });
    idx.add(exact(4, 1, 1));
    idx.add(exact(16, 1, 1));
    expect(claim.evaluate(idx, study)[0]).toMatchObject({ verdict: 'fails', margin: 0 });
  });
});

describe('increasing direction', () => {
  it('checks the reversed order', () => {
    const up = decreasingInBatchSize({ id: 'u', statement: 's', paperRef: 'r', metric: 'v', direction: 'increasing' });
    const idx = new RecordIndex();
    idx.add(mc(4, 0, 1, 0.05));
    idx.add(mc(16, 0, 4, 0.05));
    expect(up.evaluate(idx, study)[0].verdict).toBe('holds');
    expect(claim.evaluate(idx, study)[0].verdict).toBe('fails');
  });
});

describe('records without spread and small samples', () => {
  it('compares means on the linear scale, zeros included (Welch), never as NaN ties', () => {
    const idx = new RecordIndex();
    // An error that reached 0 in every run at b = 4 and not at b = 16: decreasing in b fails.
    idx.add(mean(4, 0, 0, 0));
    idx.add(mean(16, 0, 0.2, 0.01));
    const [r] = claim.evaluate(idx, study);
    expect(r.verdict).toBe('fails');
    expect((r.evidence.weakest as { t: number }).t).toBeLessThan(-10);
    const up = decreasingInBatchSize({ id: 'u', statement: 's', paperRef: 'r', metric: 'v', direction: 'increasing' });
    expect(up.evaluate(idx, study)[0].verdict).toBe('holds');
  });

  it('is inconclusive below the calibrated run count and says how many runs it needs', () => {
    const idx = new RecordIndex();
    idx.add(mc(4, 0, 4, 0.05, 8));
    idx.add(mc(16, 0, 1, 0.05, 8));
    const [r] = claim.evaluate(idx, study);
    expect(r.verdict).toBe('inconclusive');
    expect(r.evidence.needsRuns).toBe(16);
    expect(r.pValue!).toBeLessThan(1e-6);
  });
});

describe('agreesWithExact', () => {
  const agree = agreesWithExact({ id: 'a', statement: 's', paperRef: 'r', metrics: [{ metric: 'v', scale: 'log' }] });
  it('holds within noise and fails for a biased estimate', () => {
    const idx = new RecordIndex();
    idx.add(exact(4, 0, 1));
    idx.add(mc(4, 0, 1.05, 0.05));
    expect(agree.evaluate(idx, study)[0].verdict).toBe('holds');
    const bad = new RecordIndex();
    bad.add(exact(4, 0, 1));
    bad.add(mc(4, 0, 1.5, 0.05));
    expect(agree.evaluate(bad, study)[0].verdict).toBe('fails');
  });
});
