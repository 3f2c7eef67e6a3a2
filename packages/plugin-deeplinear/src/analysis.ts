/**
 * Theorem 4 and 5 on Monte Carlo data: Var(g_t|F0) as a polynomial in 1/b with no constant term,
 * its leading coefficient (the limit of b Var), and b0, the batch size beyond which the fitted
 * variance decreases in b.
 */
import {
  normalQuantile,
  normalSf,
  polyfit,
  realRootsIn,
  type Analysis,
  type Claim,
  type ClaimResult,
  type MetricRecord,
  type RecordIndex,
  type StudyConfig,
} from '@sgd-lab/core';
import { logStdError } from '@sgd-lab/core';

/** Monte Carlo points (1/b, Var, its standard error) of the total gradient variance at step t. */
function points(index: RecordIndex, study: StudyConfig, ip: number, t: number) {
  return study.batchSizes
    .map((b) => ({ b, r: index.get('grad_variance', 'monte_carlo', b, ip, 'all').find((r) => r.step === t) }))
    .filter((x): x is { b: number; r: MetricRecord } => x.r !== undefined && x.r.value > 0)
    .map(({ b, r }) => ({ x: 1 / b, v: r.value, se: logStdError(r) * r.value }));
}

/** Steps to fit at: the requested ones, else about four spread over the run. */
export function fitStepsFor(study: StudyConfig, requested: readonly number[]): number[] {
  const steps = study.steps ?? 0;
  const want = requested.length ? requested : [0, 1, Math.floor(steps / 10), Math.floor(steps / 2), steps - 1];
  const rec = (t: number) => t % study.recordEvery === 0 || t === steps - 1;
  return [...new Set(want.filter((t) => t >= 0 && t < steps && rec(t)))].sort((a, b) => a - b);
}

/** b0: the largest b where d Var / d b = 0 for the fitted polynomial (0 when it decreases for all b >= 1). */
export function b0Estimate(coefficients: readonly number[]): number {
  // V(x) = sum c_k x^k with x = 1/b; V decreases in b where dV/dx > 0.
  const dv = coefficients.slice(1).map((c, k) => (k + 1) * c);
  const roots = realRootsIn(dv, 1e-9, 1, 4000).filter((x) => x > 0);
  return roots.length ? 1 / Math.min(...roots) : 0;
}

export function varianceFit(requestedSteps: readonly number[], degree: number): Analysis {
  return {
    id: 'deeplinear-variance-fit',
    *analyze(index, study) {
      for (let ip = 0; ip < study.initPoints; ip++) {
        for (const t of fitStepsFor(study, requestedSteps)) {
          const pts = points(index, study, ip, t);
          const deg = Math.min(degree, pts.length - 1);
          if (deg < 1) continue;
          const fit = polyfit(pts.map((p) => p.x), pts.map((p) => p.v), { degree: deg, minPower: 1, weights: pts.map((p) => 1 / p.v) });
          const base = { study: study.name, setting: study.setting, initPoint: ip, step: t, estimator: 'fitted' as const, layer: 'all' };
          for (let k = 1; k <= deg; k++) yield { ...base, metric: 'grad_variance_poly', power: k, value: fit.coefficients[k] };
          yield { ...base, metric: 'grad_variance_lead', value: fit.coefficients[1] };
          yield { ...base, metric: 'b0_estimate', value: b0Estimate(fit.coefficients) };
        }
      }
    },
  };
}

/** Solves the small symmetric system M c = r and returns c and M^-1 (Gauss-Jordan). */
function solveWithInverse(m: number[][], r: number[]): { c: number[]; inv: number[][] } {
  const n = r.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)), r[i]]);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let i = col + 1; i < n; i++) if (Math.abs(a[i][col]) > Math.abs(a[piv][col])) piv = i;
    [a[col], a[piv]] = [a[piv], a[col]];
    const d = a[col][col];
    for (let j = 0; j < a[col].length; j++) a[col][j] /= d;
    for (let i = 0; i < n; i++) {
      if (i === col) continue;
      const f = a[i][col];
      for (let j = 0; j < a[i].length; j++) a[i][j] -= f * a[col][j];
    }
  }
  return { c: a.map((row) => row[2 * n]), inv: a.map((row) => row.slice(n, 2 * n)) };
}

/**
 * Theorem 4: fit V(b) = c0 + sum_k c_k b^-k by weighted least squares (weights 1/se^2) and test
 * c0 = 0 at every fitted step; holds when no step rejects at alpha / m (Bonferroni).
 */
export function noConstantTermClaim(requestedSteps: readonly number[], degree: number): Claim {
  return {
    id: 'grad-variance-no-constant-term',
    evaluate(index: RecordIndex, study: StudyConfig): ClaimResult[] {
      const tests: { t: number; c0: number; se: number; z: number; scale: number }[] = [];
      for (let ip = 0; ip < study.initPoints; ip++) {
        for (const t of fitStepsFor(study, requestedSteps)) {
          const pts = points(index, study, ip, t).filter((p) => Number.isFinite(p.se) && p.se > 0);
          const deg = Math.min(degree, pts.length - 2);
          if (deg < 1) continue;
          const cols = deg + 1;
          const m = Array.from({ length: cols }, () => new Array<number>(cols).fill(0));
          const rhs = new Array<number>(cols).fill(0);
          for (const p of pts) {
            const w = 1 / (p.se * p.se);
            const row = Array.from({ length: cols }, (_, k) => p.x ** k);
            for (let i = 0; i < cols; i++) {
              rhs[i] += w * row[i] * p.v;
              for (let j = 0; j < cols; j++) m[i][j] += w * row[i] * row[j];
            }
          }
          const { c, inv } = solveWithInverse(m, rhs);
          const se = Math.sqrt(inv[0][0]);
          tests.push({ t, c0: c[0], se, z: c[0] / se, scale: Math.max(...pts.map((p) => p.v)) });
        }
      }
      if (tests.length === 0) return [];
      const worst = tests.reduce((w, x) => (Math.abs(x.z) > Math.abs(w.z) ? x : w));
      const bound = normalQuantile(1 - study.significance / (2 * tests.length));
      return [
        {
          id: 'grad-variance-no-constant-term',
          statement: 'Var(g_t|F0) is a polynomial in 1/b with no constant term (b Var tends to a constant)',
          paperRef: 'Theorem 4',
          estimator: 'monte_carlo',
          verdict: Math.abs(worst.z) <= bound ? 'holds' : 'fails',
          pValue: Math.min(1, 2 * normalSf(Math.abs(worst.z)) * tests.length),
          evidence: {
            test: `weighted fit with a constant term (degree ${degree} in 1/b); z of the constant; Bonferroni over steps`,
            steps: tests.map((x) => x.t),
            bound,
            worst: { step: worst.t, constant: worst.c0, stdError: worst.se, z: worst.z, constantRelativeToLargestVariance: worst.c0 / worst.scale },
          },
        },
      ];
    },
  };
}
