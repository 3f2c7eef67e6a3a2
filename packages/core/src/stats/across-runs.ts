/**
 * Statistics across runs of one quantity (a gradient, a parameter block, a loss) at one step.
 *
 * For per-run vectors v_1..v_R the framework reports the trace variance
 * Var_hat = 1/(R-1) sum_r ||v_r - v_bar||^2 (the sum of per-coordinate unbiased variances, the
 * paper's Var). Partial results of disjoint run sets merge exactly (Chan et al.), so a study split
 * into shards gives the same estimate as one computed in a single pass.
 *
 * For confidence intervals the sum of squared squared deviations sum_r ||v_r - v_bar||^4 is carried
 * too: a distribution-free (fourth-moment) standard error that holds for correlated coordinates.
 */
import { normalQuantile, normalSf } from './normal.js';

/** Sufficient statistics of one quantity over a set of runs. */
export interface RunMoments {
  /** Number of runs. */
  n: number;
  /** Across-run mean, per coordinate. */
  mean: Float64Array;
  /** sum_r ||v_r - mean||^2. */
  m2: number;
  /** sum_r ||v_r - mean||^4, for the standard error of the variance. */
  m4: number;
}

/**
 * Moments of the rows of a run-major matrix: row r of `data` (length `stride`, starting at `offset`)
 * holds run r; the quantity is its `dim` entries from `col`. Two passes, so no cancellation.
 */
export function runMoments(
  data: ArrayLike<number>,
  runs: number,
  stride: number,
  col = 0,
  dim = stride,
  offset = 0,
): RunMoments {
  const mean = new Float64Array(dim);
  for (let r = 0; r < runs; r++) {
    const o = offset + r * stride + col;
    for (let j = 0; j < dim; j++) mean[j] += data[o + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= runs;
  let m2 = 0;
  let m4 = 0;
  for (let r = 0; r < runs; r++) {
    const o = offset + r * stride + col;
    let d = 0;
    for (let j = 0; j < dim; j++) {
      const e = data[o + j] - mean[j];
      d += e * e;
    }
    m2 += d;
    m4 += d * d;
  }
  return { n: runs, mean, m2, m4 };
}

/** Moments of a scalar per run (a loss, an error). */
export function scalarMoments(values: ArrayLike<number>): RunMoments {
  return runMoments(values, values.length, 1);
}

/**
 * Exact merge of two disjoint run sets for n, mean and m2 (Chan et al. pairwise update).
 * m4 is merged to leading order: each side's squared deviations are shifted by its squared mean
 * offset, which ignores the projection of individual deviations onto the mean shift. It only feeds
 * the width of a confidence interval, never an estimate.
 */
export function mergeMoments(a: RunMoments, b: RunMoments): RunMoments {
  if (a.n === 0) return cloneMoments(b);
  if (b.n === 0) return cloneMoments(a);
  const n = a.n + b.n;
  const dim = a.mean.length;
  if (b.mean.length !== dim) throw new RangeError(`cannot merge moments of sizes ${dim} and ${b.mean.length}`);
  const mean = new Float64Array(dim);
  let delta2 = 0;
  for (let j = 0; j < dim; j++) {
    const delta = b.mean[j] - a.mean[j];
    delta2 += delta * delta;
    mean[j] = a.mean[j] + (delta * b.n) / n;
  }
  const m2 = a.m2 + b.m2 + (delta2 * a.n * b.n) / n;
  const shiftA = delta2 * (b.n / n) ** 2;
  const shiftB = delta2 * (a.n / n) ** 2;
  const m4 =
    a.m4 + 2 * shiftA * a.m2 + a.n * shiftA * shiftA + b.m4 + 2 * shiftB * b.m2 + b.n * shiftB * shiftB;
  return { n, mean, m2, m4 };
}

export function cloneMoments(m: RunMoments): RunMoments {
  return { n: m.n, mean: Float64Array.from(m.mean), m2: m.m2, m4: m.m4 };
}

export function emptyMoments(dim: number): RunMoments {
  return { n: 0, mean: new Float64Array(dim), m2: 0, m4: 0 };
}

/** Unbiased trace variance 1/(n-1) sum ||v - mean||^2. */
export function traceVariance(m: RunMoments): number {
  return m.n > 1 ? m.m2 / (m.n - 1) : NaN;
}

/**
 * Standard error of the trace-variance estimate from the fourth moment of the deviations:
 * Var(Var_hat) ~ (E d^2 - (n-3)/(n-1) (E d)^2) / n with d = ||v - mean||^2, which is the exact
 * formula for a scalar and stays valid when coordinates are correlated.
 */
export function traceVarianceStdError(m: RunMoments): number {
  if (m.n < 4) return NaN;
  const meanD = m.m2 / m.n;
  const meanD2 = m.m4 / m.n;
  const v = (meanD2 - ((m.n - 3) / (m.n - 1)) * meanD * meanD) / m.n;
  return Math.sqrt(Math.max(v, 0));
}

/** A two-sided confidence interval. */
export interface Interval {
  low: number;
  high: number;
}

/**
 * Two-sided interval for the trace variance at `level`, built on the log scale (delta method) so
 * it stays positive and is not too narrow on the low side for skewed variance estimates.
 */
export function varianceInterval(m: RunMoments, level = 0.95): Interval {
  const v = traceVariance(m);
  const se = traceVarianceStdError(m);
  if (!(v > 0) || !Number.isFinite(se)) return { low: NaN, high: NaN };
  const z = normalQuantile(0.5 + level / 2);
  const f = Math.exp((z * se) / v);
  return { low: v / f, high: v * f };
}

/** Two-sided interval for the mean of a scalar quantity. */
export function meanInterval(m: RunMoments, level = 0.95): Interval {
  if (m.n < 2) return { low: NaN, high: NaN };
  const z = normalQuantile(0.5 + level / 2);
  const se = Math.sqrt(m.m2 / (m.n - 1) / m.n);
  return { low: m.mean[0] - z * se, high: m.mean[0] + z * se };
}

/** Result of a one-sided comparison of two variances. */
export interface VarianceComparison {
  /** z statistic on the log scale; positive when the first variance is larger. */
  z: number;
  /** P-value for H1: Var(first) > Var(second). */
  pValue: number;
}

/**
 * One-sided test that the first variance exceeds the second, for independent run sets, from the
 * estimates and their standard errors on the log scale (asymptotically normal).
 */
export function compareVariances(v1: number, se1: number, v2: number, se2: number): VarianceComparison {
  const s = Math.sqrt((se1 / v1) ** 2 + (se2 / v2) ** 2);
  const z = (Math.log(v1) - Math.log(v2)) / s;
  return { z, pValue: normalSf(z) };
}

/** `compareVariances` on two sets of moments. */
export function testVarianceGreater(a: RunMoments, b: RunMoments): VarianceComparison {
  return compareVariances(traceVariance(a), traceVarianceStdError(a), traceVariance(b), traceVarianceStdError(b));
}

/**
 * Streaming (Welford) accumulation of RunMoments one run at a time, for quantities whose runs
 * arrive one by one; `toMoments()` gives the same n, mean and m2 as the two-pass `runMoments`
 * (and merges exactly with `mergeMoments`). m4 is accumulated around the running mean, so it is
 * approximate in the same way as merges.
 */
export class WelfordAccumulator {
  private n = 0;
  private readonly mean: Float64Array;
  private readonly m2c: Float64Array;
  private m4 = 0;

  constructor(readonly dim: number) {
    this.mean = new Float64Array(dim);
    this.m2c = new Float64Array(dim);
  }

  /** Adds one run's vector. */
  push(v: ArrayLike<number>, offset = 0): void {
    this.n++;
    let d2 = 0;
    for (let j = 0; j < this.dim; j++) {
      const x = v[offset + j];
      const delta = x - this.mean[j];
      this.mean[j] += delta / this.n;
      const after = x - this.mean[j];
      this.m2c[j] += delta * after;
      d2 += after * after;
    }
    this.m4 += d2 * d2;
  }

  /** Per-coordinate unbiased variances. */
  coordinateVariances(): Float64Array {
    return this.m2c.map((v) => (this.n > 1 ? v / (this.n - 1) : NaN));
  }

  toMoments(): RunMoments {
    return { n: this.n, mean: Float64Array.from(this.mean), m2: this.m2c.reduce((s, v) => s + v, 0), m4: this.m4 };
  }
}
