import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { RandomStream } from '@sgd-lab/core';
import { collectStudy } from '@sgd-lab/core/testing';
import plugin from './index.js';
import { DEFAULT_CONSTANT_TEST, constantTermAt, judgeConstant } from './analysis.js';
import { drawT99 } from './calibration.js';

/** Smallest k with P(X > k) < p for X ~ Binomial(n, q): a bound a test of size q stays under. */
function binomialBound(n: number, q: number, p: number): number {
  let cdf = 0;
  let pmf = (1 - q) ** n;
  for (let k = 0; k <= n; k++) {
    cdf += pmf;
    if (1 - cdf < p) return k;
    pmf *= ((n - k) / (k + 1)) * (q / (1 - q));
  }
  return n;
}

describe('Theorem 4 test (no constant term in 1/b)', () => {
  it('keeps its level on deep-linear Monte Carlo, where the theorem is true (40 studies, 7 values of b, 128 runs)', async () => {
    const studies = 40;
    let fails = 0;
    let holds = 0;
    for (let seed = 1; seed <= studies; seed++) {
      const { claims } = await collectStudy(plugin, { preset: 'smoke', seed, runs: 128 });
      const c = claims.find((x) => x.id === 'grad-variance-no-constant-term')!;
      if (c.verdict === 'fails') fails++;
      if (c.verdict === 'holds') holds++;
    }
    // A test of level 0.05 fails more than this many of 40 times with probability < 0.001.
    expect(fails).toBeLessThanOrEqual(binomialBound(studies, 0.05, 0.001));
    // And it is evidence, not silence: most studies show the constant inside the margin.
    expect(holds).toBeGreaterThanOrEqual(studies / 2);
  }, 600_000);

  const verdicts = (ratio: number, n: number) => {
    const rng = new RandomStream([2021, 99, Math.round(ratio * 1000)]);
    const out = { holds: 0, fails: 0, inconclusive: 0 };
    for (let i = 0; i < n; i++) {
      const step = { ...constantTermAt(drawT99(rng, ratio), 0.05), step: 99, initPoint: 0 };
      out[judgeConstant([step], 0.05, DEFAULT_CONSTANT_TEST, 128).verdict]++;
    }
    return out;
  };

  it('fails with power >= 0.8 when the constant is 10% of the leading coefficient (400 draws)', () => {
    const n = 400;
    const v = verdicts(0.1, n);
    // Power 0.8 is rejected below this count at the 0.001 level, so a pass shows power well above.
    expect(v.fails).toBeGreaterThanOrEqual(n - binomialBound(n, 0.2, 0.001));
    expect(v.holds).toBe(0);
  });

  it('keeps its level on synthetic variances without a constant (400 draws)', () => {
    const n = 400;
    const v = verdicts(0, n);
    expect(v.fails).toBeLessThanOrEqual(binomialBound(n, 0.05, 0.001));
    expect(v.holds).toBeGreaterThan(n * 0.8);
  });

  it('is inconclusive, with the reason, on fewer than 5 batch sizes', () => {
    const rng = new RandomStream([1]);
    const step = { ...constantTermAt(drawT99(rng, 0).slice(3), 0.05), step: 99, initPoint: 0 };
    const c = judgeConstant([step], 0.05, DEFAULT_CONSTANT_TEST, 128);
    expect(c.verdict).toBe('inconclusive');
    expect(String(c.evidence.reason)).toMatch(/4 batch sizes .* at least 5/);
  });
});
