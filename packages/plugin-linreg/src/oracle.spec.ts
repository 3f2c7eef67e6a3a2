import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { polyval, resolveStudy } from '@sgd-lab/core';
import { collectStudy, testDataDir, testDataFile } from '@sgd-lab/core/testing';
import plugin from './index.js';
import { ADMISSION_DIR, ADMISSION_FILE, loadAdmission, syntheticData, type RegressionData } from './data.js';
import { dataMoments } from './model.js';
import { MomentOracle, substituteAffine } from './oracle.js';
import { POLYNOMIAL_REL_TOLERANCE } from './analysis.js';
import { samplingFactor, samplingFactorAffine, type SamplingScheme } from './sampler.js';

const realFile = testDataFile(ADMISSION_DIR, ADMISSION_FILE);
const synthetic = syntheticData(7, { rows: 120, features: 3, noise: 0.1 }, false);
const rate = (t: number) => 0.5 / (t + 1);
const run = (raw: Record<string, unknown>) => collectStudy(plugin, { preset: 'smoke', ...raw }, { dataDir: testDataDir() });

/** Var(g_0|F0) = C_b (1/n) sum ||u_i - u||^2 with u_i = grad L_i(w0): Lemma 1 at t = 0. */
function varianceAtZero(d: RegressionData, w0: Float64Array, c: number): number {
  const { x, y, n, p } = d;
  const u = new Float64Array(n * p);
  const mean = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    let res = -y[i];
    for (let a = 0; a < p; a++) res += x[i * p + a] * w0[a];
    for (let a = 0; a < p; a++) {
      u[i * p + a] = res * x[i * p + a];
      mean[a] += u[i * p + a] / n;
    }
  }
  let s = 0;
  for (let i = 0; i < n; i++) for (let a = 0; a < p; a++) s += (u[i * p + a] - mean[a]) ** 2 / n;
  return c * s;
}

const datasets: [string, () => RegressionData][] = [
  ['synthetic', () => synthetic],
  ...(realFile ? ([['admission', () => loadAdmission(realFile, { standardizeTarget: false })]] as [string, () => RegressionData][]) : []),
];

describe.each(datasets)('exact moment oracle on %s data', (_name, data) => {
  const d = data();
  const w0 = Float64Array.from({ length: d.p }, (_, a) => Math.sin(a + 1));
  const oracle = new MomentOracle(d, dataMoments(d));

  it.each<SamplingScheme>(['without-replacement', 'with-replacement'])('gives Lemma 1 at t = 0 (%s)', (scheme) => {
    for (const b of [1, 4, 64, d.n]) {
      const c = samplingFactor(scheme, d.n, b);
      const v = oracle.curves(w0, c, 1, rate).gradVariance[0];
      expect(v).toBeCloseTo(varianceAtZero(d, w0, c), 9);
    }
  });

  it.each<SamplingScheme>(['without-replacement', 'with-replacement'])('gives the noise scale at t = 0 as tr Sigma(w0) / ||grad L(w0)||^2, the same for every b (%s)', (scheme) => {
    // Direct: Sigma(w0) = (1/n) sum ||u_i - u||^2 (varianceAtZero with C_b = 1), u = grad L(w0).
    const traceSigma = varianceAtZero(d, w0, 1);
    const grad = new Float64Array(d.p);
    for (let i = 0; i < d.n; i++) {
      let res = -d.y[i];
      for (let a = 0; a < d.p; a++) res += d.x[i * d.p + a] * w0[a];
      for (let a = 0; a < d.p; a++) grad[a] += (res * d.x[i * d.p + a]) / d.n;
    }
    const expected = traceSigma / grad.reduce((s, v) => s + v * v, 0);
    for (const b of [1, 4, 64]) {
      const c = samplingFactor(scheme, d.n, b);
      const cv = oracle.curves(w0, c, 1, rate);
      expect((cv.gradVariance[0] - cv.fullGradVariance[0]) / c / cv.fullGradSqNorm[0]).toBeCloseTo(expected, 8);
    }
  });

  it.each<SamplingScheme>(['without-replacement', 'with-replacement'])('has a polynomial in 1/b equal to the recursion at every b (%s)', (scheme) => {
    const steps = [0, 1, 5, 20, 40];
    const inC = oracle.polynomialsInC(w0, 40, rate);
    const { a1, a0 } = samplingFactorAffine(scheme, d.n);
    let worst = 0;
    for (const t of steps) {
      const poly = substituteAffine(inC[t], a1, a0);
      expect(poly.length).toBe(t + 2);
      expect(poly[t + 1]).not.toBe(0);
      const v1 = oracle.curves(w0, samplingFactor(scheme, d.n, 1), t + 1, rate).gradVariance[t];
      for (let b = 1; b <= d.n; b++) {
        const v = oracle.curves(w0, samplingFactor(scheme, d.n, b), t + 1, rate).gradVariance[t];
        // Relative error, floored at 1e-9 of the b = 1 value: at b = n the variance is exactly 0.
        worst = Math.max(worst, Math.abs(polyval(poly, 1 / b) - v) / Math.max(Math.abs(v), 1e-9 * v1));
      }
    }
    expect(worst).toBeLessThan(POLYNOMIAL_REL_TOLERANCE);
  });

  it('keeps E[w_t] independent of b, and the full-gradient variance zero at t = 0', () => {
    const a = oracle.curves(w0, samplingFactor('without-replacement', d.n, 2), 30, rate);
    const b = oracle.curves(w0, samplingFactor('without-replacement', d.n, 50), 30, rate);
    expect(Math.abs(a.fullGradVariance[0])).toBeLessThan(1e-12 * a.gradVariance[0]);
    expect(a.loss[0]).toBe(b.loss[0]);
    expect(a.loss[30]).toBeGreaterThan(b.loss[30]);
  });
});

describe('Monte Carlo agrees with the exact oracle', () => {
  // Each record carries its own standard error; the claim combines a Bonferroni max-|t| test with a
  // test of a systematic bias per metric (monotone.ts), so its tolerance follows from R and the count.
  it.runIf(!!realFile)('on the real admission file at the cpu preset\'s 1,000 runs, and a 5% bias makes it fail', async () => {
    const cpu = plugin.presets.cpu;
    const { claims, records, study } = await run({ runs: cpu.runs, steps: 60, batchSizes: cpu.batchSizes, seed: 11 });
    const agree = claims.find((c) => c.id === 'monte-carlo-matches-exact')!;
    expect(agree.verdict).toBe('holds');
    // Per b: 60 gradient variances, 60 full-gradient ones (t = 0 is an exact zero, matched to
    // round-off), 61 losses, 60 noise scales.
    expect(agree.evidence.comparisons).toBe(4 * (60 + 60 + 61 + 60));
    for (const c of claims) expect([c.id, c.verdict]).toEqual([c.id, 'holds']);
    // Power: the same Monte Carlo with every variance 5% too large.
    const { agreesWithExact, RecordIndex } = await import('@sgd-lab/core');
    const spec = { id: 'x', statement: '', paperRef: '', metrics: [{ metric: 'grad_variance', scale: 'log' as const }, { metric: 'full_grad_variance', scale: 'log' as const }] };
    const judge = (bias: number) => {
      const index = new RecordIndex();
      for (const r of records) index.add(r.estimator === 'monte_carlo' && r.metric.endsWith('variance') ? { ...r, value: r.value * bias } : r);
      return agreesWithExact(spec).evaluate(index, study)[0];
    };
    expect(judge(1).verdict).toBe('holds');
    // The Monte Carlo noise scale (jackknife over run blocks) agrees with the exact one, and a 10%
    // error in it is found.
    const noise = (factor: number) => {
      const index = new RecordIndex();
      for (const r of records) index.add(r.estimator === 'monte_carlo' && r.metric === 'noise_scale' ? { ...r, value: r.value * factor } : r);
      return agreesWithExact({ id: 'n', statement: '', paperRef: '', metrics: [{ metric: 'noise_scale', scale: 'linear' }] }).evaluate(index, study)[0];
    };
    expect(noise(1).verdict).toBe('holds');
    expect(noise(1).evidence.comparisons as number).toBeGreaterThan(100);
    expect(noise(1.1).verdict).toBe('fails');
    const biased = judge(1.05);
    expect(biased.verdict).toBe('fails');
    // It is the systematic-bias test that finds it: no single estimate is off by that much.
    expect(biased.evidence.pSystematic as number).toBeLessThan(biased.evidence.pSingle as number);
  });

  it('fails when the oracle is given the wrong sampling scheme (the check has power)', async () => {
    // Monte Carlo draws without replacement from n = 120 rows; the oracle assumes replacement, so
    // at b = 60 its variance is (n - 1)/(n - b) ~ 2x too large.
    const study = resolveStudy({ setting: 'admission-linreg', preset: 'smoke', runs: 2000, steps: 10, batchSizes: [60], options: { source: 'synthetic', synthetic: { rows: 120, features: 3 } } }, plugin, 'test');
    const right = await run({ ...study, options: { ...study.options } });
    expect(right.claims.find((c) => c.id === 'monte-carlo-matches-exact')!.verdict).toBe('holds');
    const mc = right.records.filter((r) => r.estimator === 'monte_carlo');
    const wrong = await run({ ...study, options: { ...study.options, sampling: 'with-replacement', estimators: ['exact'] } });
    const { agreesWithExact, RecordIndex } = await import('@sgd-lab/core');
    const index = new RecordIndex();
    for (const r of [...mc, ...wrong.records]) index.add(r);
    const [verdict] = agreesWithExact({ id: 'x', statement: '', paperRef: '', metrics: [{ metric: 'grad_variance', scale: 'log' }] }).evaluate(index, study);
    expect(verdict.verdict).toBe('fails');
  });
});

describe('learningRate.scaleWith', () => {
  const scaled = { type: 'inverse-time', alpha0: 0.5, offset: 1, scaleWith: { rule: 'sqrt', referenceBatchSize: 16 } };
  it('scales the exact curves per b, and Monte Carlo still agrees with them', async () => {
    const base = { source: 'synthetic', polynomialSteps: [] };
    const plain = await run({ runs: 2000, options: base });
    const sqrt = await run({ runs: 2000, options: base, learningRate: scaled });
    const exact = (rs: typeof plain.records, b: number, t: number) => rs.find((r) => r.metric === 'grad_variance' && r.estimator === 'exact' && r.batchSize === b && r.step === t)!.value;
    // b = 16 is the reference: the same rate, the same curve; b = 4 and 64 get half and twice the rate.
    expect(exact(sqrt.records, 16, 29)).toBe(exact(plain.records, 16, 29));
    expect(exact(sqrt.records, 64, 29)).not.toBeCloseTo(exact(plain.records, 64, 29), 3);
    expect(exact(sqrt.records, 4, 0)).toBe(exact(plain.records, 4, 0));
    expect(sqrt.claims.find((c) => c.id === 'monte-carlo-matches-exact')!.verdict).toBe('holds');
    // A rate twice the reference's at b = 64 moves the iterates further in one step: the loss after
    // step 0 is exactly that of the unscaled recursion with alpha_0 doubled.
    const doubled = await run({ runs: 16, options: base, batchSizes: [64], learningRate: { type: 'inverse-time', alpha0: 1, offset: 1 } });
    const lossAt1 = (rs: typeof plain.records) => rs.find((r) => r.metric === 'loss' && r.estimator === 'exact' && r.batchSize === 64 && r.step === 1)!.value;
    expect(lossAt1(sqrt.records)).toBeCloseTo(lossAt1(doubled.records), 12);
  });

  it('is refused beside polynomialSteps, naming both fields', () => {
    expect(() => resolveStudy({ setting: 'admission-linreg', preset: 'smoke', learningRate: scaled }, plugin, 'test')).toThrow(/polynomialSteps.*scaleWith/s);
  });
});
