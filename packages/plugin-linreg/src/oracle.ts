/**
 * The exact first and second moments of the SGD iterate for linear regression (oracles.md):
 * carry m_t = E[w_t|F0] and S_t = E[w_t w_t^T|F0] through the step, which gives E[g_t], the exact
 * Var(g_t|F0), Var(grad L(w_t)|F0) and E[L(w_t)|F0] for any b without a single Monte Carlo run.
 *
 * The fourth-moment term A_t = (1/n) sum c_i x_i x_i^T is linear in S, so it is applied through the
 * precomputed tensor K[a,b,c,d] = (1/n) sum x_ia x_ib x_ic x_id: O(p^4) per step instead of O(n p^2).
 *
 * Carrying S_t as coefficients of powers of the sampling factor C_b gives the exact polynomial of
 * Var(g_t|F0) in 1/b (degree t+1).
 */
import type { MetricRecord, Oracle, StudyConfig } from '@sgd-lab/core';
import { DivergenceError, learningRateAt } from '@sgd-lab/core';
import type { RegressionData } from './data.js';
import type { DataMoments } from './model.js';
import { samplingFactor, samplingFactorAffine, type SamplingScheme } from './sampler.js';

/** Everything the recursion needs from the data, computed once. */
export class MomentOracle {
  readonly p: number;
  readonly n: number;
  private readonly H: Float64Array;
  private readonly h: Float64Array;
  private readonly yy: number;
  /** K4[((a*p+b)*p+c)*p+d] = (1/n) sum x_ia x_ib x_ic x_id. */
  private readonly K4: Float64Array;
  /** K3y[(a*p+b)*p+c] = (1/n) sum y_i x_ia x_ib x_ic. */
  private readonly K3y: Float64Array;
  /** K2y2[a*p+b] = (1/n) sum y_i^2 x_ia x_ib. */
  private readonly K2y2: Float64Array;

  constructor(data: RegressionData, moments: DataMoments) {
    const { x, y, n, p } = data;
    this.p = p;
    this.n = n;
    this.H = moments.H;
    this.h = moments.h;
    this.yy = moments.yy;
    const K4 = new Float64Array(p ** 4);
    const K3y = new Float64Array(p ** 3);
    const K2y2 = new Float64Array(p * p);
    const xx = new Float64Array(p * p);
    for (let i = 0; i < n; i++) {
      const o = i * p;
      for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) xx[a * p + b] = x[o + a] * x[o + b];
      const yi = y[i];
      for (let ab = 0; ab < p * p; ab++) {
        const v = xx[ab];
        K2y2[ab] += yi * yi * v;
        for (let c = 0; c < p; c++) K3y[ab * p + c] += yi * v * x[o + c];
        const base = ab * p * p;
        for (let cd = 0; cd < p * p; cd++) K4[base + cd] += v * xx[cd];
      }
    }
    const inv = 1 / n;
    for (let k = 0; k < K4.length; k++) K4[k] *= inv;
    for (let k = 0; k < K3y.length; k++) K3y[k] *= inv;
    for (let k = 0; k < K2y2.length; k++) K2y2[k] *= inv;
    this.K4 = K4;
    this.K3y = K3y;
    this.K2y2 = K2y2;
  }

  /** out = K4 : S (the part of A_t linear in S). */
  private aLinear(S: Float64Array, out: Float64Array): void {
    const pp = this.p * this.p;
    const K = this.K4;
    for (let ab = 0; ab < pp; ab++) {
      let s = 0;
      const base = ab * pp;
      for (let cd = 0; cd < pp; cd++) s += K[base + cd] * S[cd];
      out[ab] = s;
    }
  }

  /** out = -2 K3y m + K2y2 (the part of A_t that does not involve S). */
  private aConstant(m: Float64Array, out: Float64Array): void {
    const p = this.p;
    for (let ab = 0; ab < p * p; ab++) {
      let s = 0;
      for (let c = 0; c < p; c++) s += this.K3y[ab * p + c] * m[c];
      out[ab] = this.K2y2[ab] - 2 * s;
    }
  }

  /**
   * Exact curves for one b: for t = 0..steps, Var(g_t|F0) and Var(grad L(w_t)|F0) (t < steps) and
   * E[L(w_t)|F0] (t <= steps). `rate(t)` is alpha_t and `c` the sampling factor C_b.
   */
  curves(w0: Float64Array, c: number, steps: number, rate: (t: number) => number): { gradVariance: Float64Array; fullGradVariance: Float64Array; fullGradSqNorm: Float64Array; loss: Float64Array } {
    const p = this.p;
    const pp = p * p;
    const { H, h, yy } = this;
    const m = Float64Array.from(w0);
    const S = new Float64Array(pp);
    for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) S[a * p + b] = w0[a] * w0[b];
    const A = new Float64Array(pp);
    const A0 = new Float64Array(pp);
    const HS = new Float64Array(pp);
    const HSH = new Float64Array(pp);
    const G = new Float64Array(pp);
    const Cov = new Float64Array(pp);
    const HC = new Float64Array(pp);
    const Hm = new Float64Array(p);
    const mu = new Float64Array(p);
    const gradVariance = new Float64Array(steps);
    const fullGradVariance = new Float64Array(steps);
    const fullGradSqNorm = new Float64Array(steps);
    const loss = new Float64Array(steps + 1);
    for (let t = 0; ; t++) {
      matmul(H, S, HS, p);
      let trHS = 0;
      let hm = 0;
      for (let a = 0; a < p; a++) {
        trHS += HS[a * p + a];
        hm += h[a] * m[a];
      }
      loss[t] = 0.5 * (trHS - 2 * hm + yy);
      if (t === steps) break;
      matmul(HS, H, HSH, p);
      matvec(H, m, Hm, p);
      this.aLinear(S, A);
      this.aConstant(m, A0);
      let trG = 0;
      let nMu = 0;
      for (let a = 0; a < p; a++) {
        mu[a] = Hm[a] - h[a];
        nMu += mu[a] * mu[a];
      }
      // Var(grad L(w_t)) = tr(H Cov H) with Cov = S - m m^T formed first: exactly 0 at t = 0 and
      // no cancellation between two large traces later.
      for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) Cov[a * p + b] = S[a * p + b] - m[a] * m[b];
      matmul(H, Cov, HC, p);
      let trHCH = 0;
      for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) trHCH += HC[a * p + b] * H[b * p + a];
      for (let a = 0; a < p; a++) {
        for (let b = 0; b < p; b++) {
          const k = a * p + b;
          const u = HSH[k] - Hm[a] * h[b] - h[a] * Hm[b] + h[a] * h[b];
          G[k] = c * (A[k] + A0[k]) + (1 - c) * u;
        }
        trG += G[a * p + a];
      }
      gradVariance[t] = trG - nMu;
      fullGradVariance[t] = trHCH;
      // E||grad L(w_t)||^2 = Var(grad L(w_t)) + ||E grad L(w_t)||^2.
      fullGradSqNorm[t] = trHCH + nMu;
      const alpha = rate(t);
      const a2 = alpha * alpha;
      for (let a = 0; a < p; a++) {
        for (let b = a; b < p; b++) {
          const k = a * p + b;
          const v = S[k] - alpha * (HS[k] - h[a] * m[b] + HS[b * p + a] - m[a] * h[b]) + a2 * G[k];
          S[k] = v;
          S[b * p + a] = v;
        }
      }
      for (let a = 0; a < p; a++) m[a] -= alpha * mu[a];
    }
    return { gradVariance, fullGradVariance, fullGradSqNorm, loss };
  }

  /**
   * The exact coefficients of Var(g_t|F0) as a polynomial in the sampling factor C, for every
   * t = 0..maxStep: result[t][k] multiplies C^k (degree t+1).
   */
  polynomialsInC(w0: Float64Array, maxStep: number, rate: (t: number) => number): number[][] {
    const p = this.p;
    const pp = p * p;
    const { H, h } = this;
    const m = Float64Array.from(w0);
    let S: Float64Array[] = [new Float64Array(pp)];
    for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) S[0][a * p + b] = w0[a] * w0[b];
    const HS = new Float64Array(pp);
    const HSH = new Float64Array(pp);
    const Hm = new Float64Array(p);
    const mu = new Float64Array(p);
    const A0 = new Float64Array(pp);
    const out: number[][] = [];
    for (let t = 0; t <= maxStep; t++) {
      const deg = S.length - 1; // = t
      matvec(H, m, Hm, p);
      this.aConstant(m, A0);
      let nMu = 0;
      for (let a = 0; a < p; a++) {
        mu[a] = Hm[a] - h[a];
        nMu += mu[a] * mu[a];
      }
      // A^(k) and U^(k) for k = 0..deg.
      const A: Float64Array[] = [];
      const U: Float64Array[] = [];
      const HSk: Float64Array[] = [];
      for (let k = 0; k <= deg; k++) {
        const Ak = new Float64Array(pp);
        this.aLinear(S[k], Ak);
        matmul(H, S[k], HS, p);
        HSk.push(Float64Array.from(HS));
        matmul(HS, H, HSH, p);
        const Uk = Float64Array.from(HSH);
        if (k === 0) {
          for (let a = 0; a < p; a++)
            for (let b = 0; b < p; b++) {
              const i = a * p + b;
              Ak[i] += A0[i];
              Uk[i] += -Hm[a] * h[b] - h[a] * Hm[b] + h[a] * h[b];
            }
        }
        A.push(Ak);
        U.push(Uk);
      }
      // G = U + C (A - U): G^(k) = U^(k) + A^(k-1) - U^(k-1), k = 0..deg+1.
      const G: Float64Array[] = [];
      for (let k = 0; k <= deg + 1; k++) {
        const g = new Float64Array(pp);
        if (k <= deg) g.set(U[k]);
        if (k >= 1) for (let i = 0; i < pp; i++) g[i] += A[k - 1][i] - U[k - 1][i];
        G.push(g);
      }
      out.push(G.map((g, k) => trace(g, p) - (k === 0 ? nMu : 0)));
      if (t === maxStep) break;
      const alpha = rate(t);
      const next: Float64Array[] = [];
      for (let k = 0; k <= deg + 1; k++) {
        const s = new Float64Array(pp);
        for (let a = 0; a < p; a++)
          for (let b = 0; b < p; b++) {
            const i = a * p + b;
            let v = alpha * alpha * G[k][i];
            if (k <= deg) v += S[k][i] - alpha * (HSk[k][i] + HSk[k][b * p + a]);
            if (k === 0) v += alpha * (h[a] * m[b] + m[a] * h[b]);
            s[i] = v;
          }
        next.push(s);
      }
      S = next;
      for (let a = 0; a < p; a++) m[a] -= alpha * mu[a];
    }
    return out;
  }
}

/** Rewrites sum_k c_k C^k with C = a1 x + a0 as sum_j d_j x^j. */
export function substituteAffine(coefInC: readonly number[], a1: number, a0: number): number[] {
  const deg = coefInC.length - 1;
  const d = new Array<number>(deg + 1).fill(0);
  for (let k = 0; k <= deg; k++) {
    // (a1 x + a0)^k = sum_j binom(k, j) a1^j a0^(k-j) x^j
    let binom = 1;
    for (let j = 0; j <= k; j++) {
      d[j] += coefInC[k] * binom * a1 ** j * a0 ** (k - j);
      binom = (binom * (k - j)) / (j + 1);
    }
  }
  return d;
}

export function matmul(a: Float64Array, b: Float64Array, out: Float64Array, p: number): void {
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += a[i * p + k] * b[k * p + j];
      out[i * p + j] = s;
    }
}

function matvec(a: Float64Array, v: Float64Array, out: Float64Array, p: number): void {
  for (let i = 0; i < p; i++) {
    let s = 0;
    for (let k = 0; k < p; k++) s += a[i * p + k] * v[k];
    out[i] = s;
  }
}

function trace(a: Float64Array, p: number): number {
  let s = 0;
  for (let i = 0; i < p; i++) s += a[i * p + i];
  return s;
}

export interface OracleOptions {
  sampling: SamplingScheme;
  /** Steps at which the exact polynomial in 1/b is emitted. */
  polynomialSteps: number[];
}

/** The Oracle the engine resolves: exact records in the same shape as the Monte Carlo ones. */
export function exactOracle(data: RegressionData, moments: DataMoments, opts: OracleOptions): Oracle {
  let oracle: MomentOracle | undefined;
  return {
    id: 'linreg-exact-moments',
    *compute(study: StudyConfig, initPoint: number, theta0: Float64Array): Iterable<MetricRecord> {
      oracle ??= new MomentOracle(data, moments);
      const steps = study.steps ?? 0;
      // The rate of batch size b (learningRate.scaleWith may make it depend on b).
      const rateOf = (b: number) => (t: number) => learningRateAt(study.learningRate, t, b);
      const base = { study: study.name, setting: study.setting, initPoint, estimator: 'exact' as const };
      const recorded = (t: number) => t % study.recordEvery === 0 || t === steps - 1 || t === steps;
      for (const b of study.batchSizes) {
        const c = samplingFactor(opts.sampling, data.n, b);
        const cv = oracle.curves(theta0, c, steps, rateOf(b));
        // The expected loss passes the study's divergence bound: the recursion has diverged (its
        // values would overflow to Infinity and NaN, which JSON writes as null).
        const bound = study.divergenceFactor * Math.max(Math.abs(cv.loss[0]), Number.MIN_VALUE);
        const bad = cv.loss.findIndex((v) => !Number.isFinite(v) || v > bound);
        if (bad >= 0) {
          throw new DivergenceError(
            `the exact oracle diverges at step ${bad} (b = ${b}, initial point ${initPoint}): E[L(w_t)] = ${cv.loss[bad]}, above /divergenceFactor (${study.divergenceFactor}) x the initial loss; lower /learningRate`,
          );
        }
        for (let t = 0; t <= steps; t++) {
          if (!recorded(t)) continue;
          if (t < steps) {
            yield { ...base, batchSize: b, step: t, metric: 'grad_variance', value: cv.gradVariance[t] };
            yield { ...base, batchSize: b, step: t, metric: 'full_grad_variance', value: cv.fullGradVariance[t] };
            // B_simple = E[tr Cov(g_t|w_t)] / (C_b E||grad L(w_t)||^2) (docs/noise-scale.md).
            if (c > 0) yield { ...base, batchSize: b, step: t, metric: 'noise_scale', value: (cv.gradVariance[t] - cv.fullGradVariance[t]) / c / cv.fullGradSqNorm[t] };
          }
          yield { ...base, batchSize: b, step: t, metric: 'loss', value: cv.loss[t] };
        }
      }
      const polySteps = opts.polynomialSteps.filter((t) => t < steps);
      if (polySteps.length > 0) {
        // A polynomial in 1/b needs a rate that does not depend on b (checkStudy refuses scaleWith here).
        const inC = oracle.polynomialsInC(theta0, Math.max(...polySteps), rateOf(study.batchSizes[0]));
        const { a1, a0 } = samplingFactorAffine(opts.sampling, data.n);
        for (const t of polySteps) {
          const coefficients = substituteAffine(inC[t], a1, a0);
          for (let power = 0; power < coefficients.length; power++) {
            yield { ...base, step: t, metric: 'grad_variance_poly', power, value: coefficients[power] };
          }
        }
      }
    },
  };
}
