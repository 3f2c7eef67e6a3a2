/**
 * Statistics across runs of one quantity (a gradient, a parameter block, a loss) at one step.
 *
 * Runs are grouped in fixed *run blocks* of `runBlock` consecutive global run indices
 * (docs/statistics.md). Each block is reduced on its own, in two passes over its runs, to four
 * numbers (`RunBlockStats`); blocks are combined by sums in block order. A block is never split by
 * a shard, a memory chunk or a worker, so every estimate and its standard error are the same
 * floating-point numbers whatever the layout of the work.
 *
 * For per-run vectors v_r the trace variance tr Var(v) (the paper's Var) is estimated by the
 * pooled within-block estimator V = sum_k sum_{r in k} ||v_r - vbar_k||^2 / sum_k (n_k - 1),
 * unbiased for any distribution. Its standard error comes from the spread of the per-run
 * contributions d_r = n_k/(n_k - 1) ||v_r - vbar_k||^2 (a fourth-moment estimate that holds for
 * correlated coordinates), with a correction for their dependence inside a block and a
 * small-sample factor; the reference distribution is Student's t. The calibration (coverage and
 * test size by simulation) is in docs/calibration.md.
 */
import { studentQuantile } from './student-t.js';

/** Default run-block size. */
export const DEFAULT_RUN_BLOCK = 16;

/** Within-block statistics of one quantity over one block of runs. */
export interface RunBlockStats {
  /** Runs in the block. */
  n: number;
  /** sum_r ||v_r - vbar||^2 over the block. */
  m2: number;
  /** sum_r ||v_r - vbar||^4. */
  m4: number;
  /** ||vbar||^2, the squared norm of the block's mean (for the bias ratio). */
  meanSq: number;
  /** sum_r v_r, for scalar quantities. */
  sum?: number;
}

/**
 * Statistics of the runs of a run-major matrix, one entry per run block: row r of `data`
 * (length `stride`, starting at `offset`) holds run r; the quantity is its `dim` entries from
 * `col`. `runs` must be a whole number of blocks except for the last one.
 */
export function runBlockStats(
  data: ArrayLike<number>,
  runs: number,
  runBlock: number,
  stride: number,
  col = 0,
  dim = stride,
  offset = 0,
): RunBlockStats[] {
  const out: RunBlockStats[] = [];
  const mean = new Float64Array(dim);
  for (let start = 0; start < runs; start += runBlock) {
    const n = Math.min(runBlock, runs - start);
    mean.fill(0);
    for (let r = start; r < start + n; r++) {
      const o = offset + r * stride + col;
      for (let j = 0; j < dim; j++) mean[j] += data[o + j];
    }
    let meanSq = 0;
    let sum = 0;
    for (let j = 0; j < dim; j++) {
      sum += mean[j];
      mean[j] /= n;
      meanSq += mean[j] * mean[j];
    }
    let m2 = 0;
    let m4 = 0;
    for (let r = start; r < start + n; r++) {
      const o = offset + r * stride + col;
      let d = 0;
      for (let j = 0; j < dim; j++) {
        const e = data[o + j] - mean[j];
        d += e * e;
      }
      m2 += d;
      m4 += d * d;
    }
    out.push(dim === 1 ? { n, m2, m4, meanSq, sum } : { n, m2, m4, meanSq });
  }
  return out;
}

/** Block statistics of a scalar per run (a loss, an error). */
export function scalarBlockStats(values: ArrayLike<number>, runBlock: number): RunBlockStats[] {
  return runBlockStats(values, values.length, runBlock, 1);
}

/**
 * Block statistics from per-run squared deviations already computed about each block's mean
 * (`d[r]`, r in the block), e.g. read back from a tensor backend.
 */
export function blockStatsFromDeviations(d: ArrayLike<number>, start: number, n: number, meanSq: number): RunBlockStats {
  let m2 = 0;
  let m4 = 0;
  for (let r = start; r < start + n; r++) {
    m2 += d[r];
    m4 += d[r] * d[r];
  }
  return { n, m2, m4, meanSq };
}

/** The c of the small-sample factor n/(n - c) of the variance's standard error. */
export const SMALL_SAMPLE_SHIFT = 2.5;

/** How an estimate's standard error was obtained (written on every Monte Carlo record). */
export const SE_METHOD_VARIANCE = 'run-blocks-4th-moment';
export const SE_METHOD_MEAN = 'run-blocks-pooled';

/** An estimate with its uncertainty. */
export interface Estimate {
  value: number;
  /** Runs behind it. */
  runs: number;
  /** Standard error on `scale`: of log(value) for variances, of value for means. */
  stdError: number;
  scale: 'log' | 'linear';
  /** Degrees of freedom of the Student t reference. */
  df: number;
  method: string;
  /**
   * Variances only: Var(d_r) / E(d_r)^2 for the per-run squared deviations d_r. At most 2 for
   * every Gaussian distribution of the runs (2 tr(S^2) / tr(S)^2); larger means heavier tails than
   * any Gaussian, where the calibration of docs/calibration.md's heavy-tailed rows applies.
   */
  dispersion?: number;
}

const totals = (blocks: readonly RunBlockStats[]) => {
  let n = 0;
  let dof = 0;
  for (const b of blocks) {
    n += b.n;
    dof += b.n - 1;
  }
  return { n, dof };
};

/**
 * The trace variance of a quantity from its run blocks (fixed block order) with the standard error
 * of its logarithm.
 */
export function varianceEstimate(blocks: readonly RunBlockStats[]): Estimate {
  const { n, dof } = totals(blocks);
  let m2 = 0;
  for (const b of blocks) m2 += b.m2;
  const value = dof > 0 ? m2 / dof : NaN;
  // d_r = c_k ||v_r - vbar_k||^2 with c_k = n_k/(n_k - 1) is unbiased for tr Var(v) for every run;
  // its spread over all runs, sum_k c_k^2 m4_k - (sum_k c_k m2_k)^2 / n, is formed per block.
  let sumD = 0;
  let sumD2 = 0;
  let dependence = 0;
  let runs = 0;
  for (const b of blocks) {
    if (b.n < 2) continue;
    const c = b.n / (b.n - 1);
    sumD += c * b.m2;
    sumD2 += c * c * b.m4;
    // Deviations from a block mean sum to zero, so the d_r of a block are dependent; for Gaussian
    // runs the variance of their sum is n/(n - 1) times that of independent ones.
    dependence += b.n * c;
    runs += b.n;
  }
  if (runs < 3 || !(value > 0)) return { value, runs: n, stdError: NaN, scale: 'log', df: Math.max(dof - 1, 0), method: SE_METHOD_VARIANCE };
  const varD = Math.max(sumD2 - (sumD * sumD) / runs, 0) / (runs - 1);
  // Small-sample factor n/(n - c), after Bonett's n/(n - z) (2006): sample fourth moments are low
  // in small samples. c = 2.5 is set by the simulation in docs/calibration.md.
  const small = runs / (runs - SMALL_SAMPLE_SHIFT);
  const stdError = Math.sqrt(((varD * (dependence / runs)) / runs) * small) / value;
  const meanD = sumD / runs;
  return { value, runs: n, stdError, scale: 'log', df: Math.max(dof - 1, 1), method: SE_METHOD_VARIANCE, dispersion: varD / (meanD * meanD) };
}

/** The mean of a scalar quantity from its run blocks, with its standard error (linear scale). */
export function meanEstimate(blocks: readonly RunBlockStats[]): Estimate {
  const { n, dof } = totals(blocks);
  let sum = 0;
  let m2 = 0;
  for (const b of blocks) {
    sum += b.sum ?? NaN;
    m2 += b.m2;
  }
  const value = sum / n;
  const stdError = dof > 0 ? Math.sqrt(m2 / dof / n) : NaN;
  return { value, runs: n, stdError, scale: 'linear', df: dof, method: SE_METHOD_MEAN };
}

/**
 * R ||mean(v)||^2 / tr Var(v) for v = g - grad L, estimated without the mean vector: each block's
 * n_k ||vbar_k||^2 / V is about 1 when E[v] = 0, whatever the distribution, so the ratio is their
 * average (about 1 for an unbiased stochastic gradient, larger when E[g] != grad L).
 */
export function biasRatio(blocks: readonly RunBlockStats[]): number {
  const v = varianceEstimate(blocks).value;
  let s = 0;
  for (const b of blocks) s += b.n * b.meanSq;
  return s / blocks.length / v;
}

/** A two-sided interval. */
export interface Interval {
  low: number;
  high: number;
}

/** Two-sided interval at `level` (log-scale estimates give an interval that stays positive). */
export function interval(e: Estimate, level: number): Interval {
  if (!Number.isFinite(e.stdError) || !(e.df > 0)) return { low: NaN, high: NaN };
  const q = studentQuantile(0.5 + level / 2, e.df);
  if (e.scale === 'log') {
    const f = Math.exp(q * e.stdError);
    return { low: e.value / f, high: e.value * f };
  }
  return { low: e.value - q * e.stdError, high: e.value + q * e.stdError };
}

/** Jackknife over run blocks, for the noise scale. */
export const SE_METHOD_NOISE_SCALE = 'jackknife over run blocks (delete one block), t with blocks - 1 df';

/**
 * The simple gradient noise scale B_simple(t) = E[tr Cov(g_t | w_t) | F0] / (C_b E[||grad L(w_t)||^2 | F0])
 * (McCandlish et al. 2018) from the paper's own quantities (docs/noise-scale.md): by unbiasedness
 * E[tr Cov(g_t|w_t)|F0] = Var(g_t|F0) - Var(grad L(w_t)|F0), C_b is the sampling factor of the
 * mini-batch mean (Cov(g_t|w_t) = C_b Sigma(w_t)), and E||grad L||^2 = (1/R) sum_r ||grad L_r||^2 =
 * (1/R) sum_k (m2_k + n_k meanSq_k). The runs of g and of grad L are the same, so the ratio's
 * standard error is a delete-one-block jackknife.
 */
export function noiseScaleEstimate(grad: readonly RunBlockStats[], full: readonly RunBlockStats[], samplingFactor: number): Estimate {
  const k = Math.min(grad.length, full.length);
  const ratio = (skip: number) => {
    let g = 0;
    let f = 0;
    let dof = 0;
    let sq = 0;
    let n = 0;
    for (let i = 0; i < k; i++) {
      if (i === skip) continue;
      g += grad[i].m2;
      f += full[i].m2;
      dof += full[i].n - 1;
      sq += full[i].m2 + full[i].n * full[i].meanSq;
      n += full[i].n;
    }
    return dof > 0 && n > 0 && sq > 0 ? (g - f) / dof / (samplingFactor * (sq / n)) : NaN;
  };
  const value = ratio(-1);
  const runs = full.slice(0, k).reduce((s, b) => s + b.n, 0);
  if (k < 2) return { value, runs, stdError: NaN, scale: 'linear', df: 0, method: SE_METHOD_NOISE_SCALE };
  const loo = Array.from({ length: k }, (_, i) => ratio(i));
  const mean = loo.reduce((s, v) => s + v, 0) / k;
  const stdError = Math.sqrt(((k - 1) / k) * loo.reduce((s, v) => s + (v - mean) ** 2, 0));
  return { value, runs, stdError, scale: 'linear', df: k - 1, method: SE_METHOD_NOISE_SCALE };
}
