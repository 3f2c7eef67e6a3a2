/**
 * Theorems 4 and 5 on Monte Carlo data: Var(g_t|F0) as a polynomial in 1/b with no constant term,
 * its leading coefficient (the limit of b Var), and b0, the batch size beyond which the fitted
 * variance decreases in b. docs/statistics.md ("Theorem 4") explains the test and its calibration.
 */
import {
  MIN_RUNS_FOR_VERDICT,
  RandomStream,
  StreamPurpose,
  chiSquareSf,
  logStdError,
  normalQuantile,
  realRootsIn,
  studentQuantile,
  studentSf,
  weightedPolyfit,
  type Analysis,
  type Claim,
  type ClaimResult,
  type MetricRecord,
  type RecordIndex,
  type StudyConfig,
} from '@sgd-lab/core';

/** One batch size's Monte Carlo variance at one step: value, log standard error, its df. */
export interface VariancePoint {
  b: number;
  v: number;
  logSe: number;
  df: number;
  runs: number;
}

/** Monte Carlo points of the total gradient variance at step t, by increasing b. */
export function variancePoints(index: RecordIndex, study: StudyConfig, ip: number, t: number): VariancePoint[] {
  return [...study.batchSizes]
    .sort((a, b) => a - b)
    .map((b) => ({ b, r: index.get('grad_variance', 'monte_carlo', b, ip, 'all').find((r) => r.step === t) }))
    .filter((x): x is { b: number; r: MetricRecord } => x.r !== undefined && x.r.value > 0 && logStdError(x.r) > 0)
    .map(({ b, r }) => ({ b, v: r.value, logSe: logStdError(r), df: r.df ?? Infinity, runs: r.runs ?? 0 }));
}

/** Steps to fit at: the requested ones, else about five spread over the run. */
export function fitStepsFor(study: StudyConfig, requested: readonly number[]): number[] {
  const steps = study.steps ?? 0;
  const want = requested.length ? requested : [0, 1, Math.floor(steps / 10), Math.floor(steps / 2), steps - 1];
  const rec = (t: number) => t % study.recordEvery === 0 || t === steps - 1;
  return [...new Set(want.filter((t) => t >= 0 && t < steps && rec(t)))].sort((a, b) => a - b);
}

/** Settings of the Theorem 4 test (the plugin's `constantTest` option). */
export interface ConstantTestOptions {
  /** Fewest batch sizes a step is tested on. @default 5 */
  minBatchSizes: number;
  /**
   * The degree in 1/b beside the constant is the highest the batch sizes allow (n - 2, one degree
   * of freedom left to check the fit), at least this. Lower degrees bias c0 by the truncated powers
   * (size 6.6% at degree 3 against 3.2% at degree 5 on 7 values of b, docs/calibration.md). @default 3
   */
  minDegree: number;
  /** Highest degree. @default 6 */
  maxDegree: number;
  /** A fit is adequate when its residual chi-square has p >= this (the nested test against the saturated model). @default 0.1 */
  fitLevel: number;
  /** Equivalence margin delta: "no constant" holds when the interval of c0 / c1 lies inside +/- delta. @default 0.05 */
  margin: number;
}

export const DEFAULT_CONSTANT_TEST: ConstantTestOptions = { minBatchSizes: 5, minDegree: 3, maxDegree: 6, fitLevel: 0.1, margin: 0.05 };

/** A weighted fit of V(b) in powers of 1/b, weights from the fitted values (iterated). */
export function fitVariance(pts: readonly VariancePoint[], powers: readonly number[]) {
  const x = pts.map((p) => 1 / p.b);
  const y = pts.map((p) => p.v);
  // The standard error of V_i is V_i * logSe_i; using the observed V_i as weights favours the
  // low estimates, so the weights are refitted from the fitted values (three passes).
  let sigma = pts.map((p) => p.v * p.logSe);
  let fit = weightedPolyfit(x, y, sigma, powers);
  for (let pass = 0; pass < 3; pass++) {
    const fitted = x.map((xi) => powers.reduce((s, k, j) => s + fit.coefficients[j] * xi ** k, 0));
    sigma = pts.map((p, i) => Math.max(fitted[i], p.v * 1e-3) * p.logSe);
    fit = weightedPolyfit(x, y, sigma, powers);
  }
  return { ...fit, fitP: fit.df > 0 ? chiSquareSf(fit.chiSquare, fit.df) : 1 };
}

/**
 * The model of a fit: the fewest small b dropped, then either the lowest adequate degree
 * (`lowest`, for the no-constant fits) or the highest degree the points allow (n - 2 with a
 * constant, at most maxDegree), which must be adequate. A fit is adequate when its residual
 * chi-square (the nested test against the saturated model) has p >= fitLevel.
 */
function chooseModel(pts: readonly VariancePoint[], withConstant: boolean, o: ConstantTestOptions, minDegree: number, pick: 'lowest' | 'highest') {
  const tried: { batchSizes: number[]; degree: number; fitP: number }[] = [];
  for (let drop = 0; pts.length - drop >= o.minBatchSizes; drop++) {
    const used = pts.slice(drop);
    const top = Math.min(o.maxDegree, used.length - (withConstant ? 2 : 1));
    const degrees = pick === 'highest' ? [top] : Array.from({ length: top - minDegree + 1 }, (_, i) => minDegree + i);
    for (const k of degrees.filter((d) => d >= minDegree)) {
      const powers = Array.from({ length: k + (withConstant ? 1 : 0) }, (_, i) => (withConstant ? i : i + 1));
      const fit = fitVariance(used, powers);
      tried.push({ batchSizes: used.map((p) => p.b), degree: k, fitP: fit.fitP });
      if (fit.fitP >= o.fitLevel) return { used, degree: k, fit, tried };
    }
  }
  return { tried };
}

export type ConstantTermStep =
  | {
      status: 'tested';
      batchSizes: number[];
      degree: number;
      /** p of the residual chi-square of the chosen fit. */
      fitP: number;
      constant: number;
      constantSe: number;
      lead: number;
      /** c0 / c1 and its (1 - 2 alpha) interval. */
      ratio: number;
      ratioLow: number;
      ratioHigh: number;
      t: number;
      df: number;
      /** Two-sided p of c0 = 0. */
      p: number;
      /** p of the equivalence test (TOST) of |c0 / c1| < margin: the larger of its two one-sided p. */
      pEquivalent: number;
      /** Whether the interval of c0 / c1 lies inside +/- margin (pEquivalent < alpha). */
      equivalent: boolean;
    }
  | { status: 'untested'; batchSizes: number[]; reason: string };

/**
 * Theorem 4 at one step: V(b) = c0 + sum_{k=1..K} c_k b^-k fitted by weighted least squares, with
 * K = min(maxDegree, n - 2) >= minDegree for the n batch sizes used; when the fit is not adequate
 * (residual chi-square p < fitLevel) the smallest b, where the truncated powers weigh most, is
 * dropped, as long as minBatchSizes remain. Then the t of c0 and the interval of c0 / c1.
 */
export function constantTermAt(pts: readonly VariancePoint[], alpha: number, o: ConstantTestOptions = DEFAULT_CONSTANT_TEST): ConstantTermStep {
  const bs = pts.map((p) => p.b);
  if (pts.length < o.minBatchSizes) {
    return { status: 'untested', batchSizes: bs, reason: `${pts.length} batch sizes with a variance: the test needs at least ${o.minBatchSizes} (a constant beside ${o.minDegree} powers of 1/b and one degree of freedom to check the fit)` };
  }
  const chosen = chooseModel(pts, true, o, o.minDegree, 'highest');
  if (!chosen.fit) {
    const best = chosen.tried.reduce((w, x) => (x.fitP > w.fitP ? x : w), chosen.tried[0]);
    return {
      status: 'untested',
      batchSizes: bs,
      reason: best
        ? `no fit is adequate (best: a constant and degree ${best.degree} in 1/b on b = ${best.batchSizes.join(', ')}, fit p = ${best.fitP.toPrecision(2)} < ${o.fitLevel}); more batch sizes would allow a higher degree`
        : `${pts.length} batch sizes allow no degree >= ${o.minDegree} beside a constant with a degree of freedom left`,
    };
  }
  const { fit, used, degree } = chosen;
  const [c0, c1] = fit.coefficients;
  const v = fit.covariance;
  const se = Math.sqrt(v[0][0]);
  const df = Math.min(...used.map((p) => p.df));
  const t = c0 / se;
  const ratio = c0 / c1;
  const ratioSe = Math.sqrt(Math.max(0, v[0][0] - 2 * ratio * v[0][1] + ratio * ratio * v[1][1])) / Math.abs(c1);
  const q = Number.isFinite(df) ? studentQuantile(1 - alpha, df) : normalQuantile(1 - alpha);
  const ratioLow = ratio - q * ratioSe;
  const ratioHigh = ratio + q * ratioSe;
  const pEquivalent = c1 > 0 ? Math.max(studentSf((ratio + o.margin) / ratioSe, df), studentSf((o.margin - ratio) / ratioSe, df)) : 1;
  return {
    status: 'tested',
    batchSizes: used.map((p) => p.b),
    degree,
    fitP: fit.fitP,
    constant: c0,
    constantSe: se,
    lead: c1,
    ratio,
    ratioLow,
    ratioHigh,
    t,
    df,
    p: Math.min(1, 2 * studentSf(Math.abs(t), df)),
    pEquivalent,
    equivalent: pEquivalent < alpha,
  };
}

/**
 * b0 of Theorem 5 for V(x) = sum_k c_k x^k, x = 1/b: the largest b where dV/db = 0, i.e. 1 / the
 * smallest positive root of dV/dx (searched down to b = 1e-3). 0 when the fitted variance decreases
 * for every b > 0 there; Infinity when the leading coefficient c1 is not positive (then V grows with
 * b for large b and no b0 exists).
 */
export function b0Estimate(coefficients: readonly number[]): number {
  if (!((coefficients[1] ?? 0) > 0)) return Infinity;
  const dv = coefficients.slice(1).map((c, k) => (k + 1) * c);
  // Grid in log x so that both b near 1e3 and b near 1e-3 are resolved.
  let smallest = Infinity;
  for (let e = -3; e < 3; e += 0.5) {
    const roots = realRootsIn(dv, 10 ** e, 10 ** (e + 0.5), 400).filter((r) => r > 0);
    if (roots.length) {
      smallest = Math.min(...roots);
      break;
    }
  }
  return Number.isFinite(smallest) ? 1 / smallest : 0;
}

/** Bootstrap replicates of the b0 interval. */
export const B0_BOOTSTRAP = 400;

/**
 * The no-constant polynomial fits (records `grad_variance_poly`, `grad_variance_lead`) and b0
 * (`b0_estimate`) with a parametric bootstrap interval: each replicate redraws every b's variance
 * from its sampling distribution (log-normal with the record's own standard error, which the runs
 * gave; the b are independent run sets) and refits at the same degree.
 */
export function varianceFit(requestedSteps: readonly number[], maxDegree: number): Analysis {
  return {
    id: 'deeplinear-variance-fit',
    *analyze(index, study) {
      const o = { ...DEFAULT_CONSTANT_TEST, minBatchSizes: 2, maxDegree };
      for (let ip = 0; ip < study.initPoints; ip++) {
        for (const t of fitStepsFor(study, requestedSteps)) {
          const pts = variancePoints(index, study, ip, t);
          if (pts.length < 2) continue;
          const chosen = chooseModel(pts, false, { ...o, minBatchSizes: pts.length }, 1, 'lowest');
          const degree = chosen.degree ?? Math.min(maxDegree, pts.length - 1);
          const powers = Array.from({ length: degree }, (_, i) => i + 1);
          const fit = chosen.fit ?? fitVariance(pts, powers);
          const c = [0, ...fit.coefficients];
          const base = { study: study.name, setting: study.setting, initPoint: ip, step: t, estimator: 'fitted' as const, layer: 'all' };
          const seMethod = chosen.fit ? `weighted fit of degree ${degree} (the lowest with fit p >= ${o.fitLevel})` : `weighted fit of degree ${degree}: no degree fits (p < ${o.fitLevel})`;
          for (let k = 1; k <= degree; k++) {
            const se = Math.sqrt(fit.covariance[k - 1][k - 1]);
            yield { ...base, metric: 'grad_variance_poly', power: k, value: c[k], stdError: se, scale: 'linear' as const, seMethod };
          }
          yield { ...base, metric: 'grad_variance_lead', value: c[1], stdError: Math.sqrt(fit.covariance[0][0]), scale: 'linear' as const, seMethod };
          const b0 = b0Estimate(c);
          // Parametric bootstrap over the runs' sampling distribution of each V(b).
          const rng = new RandomStream([study.seed, StreamPurpose.analysis, ip, t]);
          const reps: number[] = [];
          for (let r = 0; r < B0_BOOTSTRAP; r++) {
            const redrawn = pts.map((p) => ({ ...p, v: p.v * Math.exp(p.logSe * rng.nextNormal()) }));
            reps.push(b0Estimate([0, ...fitVariance(redrawn, powers).coefficients]));
          }
          reps.sort((a, b) => a - b);
          const lo = reps[Math.floor(((1 - study.confidenceLevel) / 2) * B0_BOOTSTRAP)];
          const hi = reps[Math.min(B0_BOOTSTRAP - 1, Math.ceil(((1 + study.confidenceLevel) / 2) * B0_BOOTSTRAP) - 1)];
          const unbounded = reps.filter((x) => !Number.isFinite(x)).length;
          // b0 = Infinity (c1 <= 0) cannot be written as JSON: the record is left out and the
          // leading-coefficient record shows the sign.
          if (!Number.isFinite(b0)) continue;
          yield {
            ...base,
            metric: 'b0_estimate',
            value: b0,
            ...(Number.isFinite(lo) ? { ciLow: lo } : {}),
            ...(Number.isFinite(hi) ? { ciHigh: hi } : {}),
            seMethod: `parametric bootstrap, ${B0_BOOTSTRAP} replicates, percentile interval${unbounded ? `; ${unbounded} replicates had c1 <= 0 (no b0)` : ''}`,
          };
        }
      }
    },
  };
}

/**
 * Theorem 4 as a claim with a verdict that is evidence either way:
 * - fails when some step's constant differs from 0 at alpha / (tested steps) (Bonferroni);
 * - holds when, at every fitted step, the (1 - 2 alpha) interval of c0 / c1 lies inside
 *   +/- margin (an equivalence test; intersection-union over steps, so no correction), i.e. the
 *   constant is shown to be small, not merely not rejected;
 * - else inconclusive, with the reason (too few b, no adequate fit, or not rejected but not
 *   within the margin).
 */
export function noConstantTermClaim(requestedSteps: readonly number[], options: Partial<ConstantTestOptions> = {}): Claim {
  const o = { ...DEFAULT_CONSTANT_TEST, ...options };
  return {
    id: 'grad-variance-no-constant-term',
    evaluate(index: RecordIndex, study: StudyConfig): ClaimResult[] {
      const steps: (ConstantTermStep & { step: number; initPoint: number })[] = [];
      let fewestRuns = Infinity;
      for (let ip = 0; ip < study.initPoints; ip++) {
        for (const t of fitStepsFor(study, requestedSteps)) {
          const pts = variancePoints(index, study, ip, t);
          if (pts.length === 0) continue;
          fewestRuns = Math.min(fewestRuns, ...pts.map((p) => p.runs));
          steps.push({ ...constantTermAt(pts, study.significance, o), step: t, initPoint: ip });
        }
      }
      if (steps.length === 0) return [];
      return [judgeConstant(steps, study.significance, o, fewestRuns)];
    },
  };
}

export function judgeConstant(steps: readonly (ConstantTermStep & { step: number; initPoint: number })[], alpha: number, o: ConstantTestOptions, fewestRuns: number): ClaimResult {
  const tested = steps.filter((s): s is Extract<ConstantTermStep, { status: 'tested' }> & { step: number; initPoint: number } => s.status === 'tested');
  const untested = steps.filter((s) => s.status === 'untested');
  const m = tested.length;
  const worst = tested.reduce<(typeof tested)[number] | undefined>((w, x) => (!w || x.p < w.p ? x : w), undefined);
  // Evidence against the claim: the smallest p of c0 = 0, Bonferroni over the tested steps.
  const pDifferent = worst ? Math.min(1, worst.p * m) : undefined;
  // Evidence for it: the intersection-union p of the equivalence tests (1 when a step is untested).
  const pValue = untested.length || m === 0 ? 1 : Math.max(...tested.map((s) => s.pEquivalent));
  const notWithin = tested.filter((s) => !s.equivalent);
  let verdict: ClaimResult['verdict'];
  const reasons: string[] = [];
  if (pDifferent !== undefined && pDifferent < alpha) verdict = 'fails';
  else if (m > 0 && untested.length === 0 && notWithin.length === 0) verdict = 'holds';
  else {
    verdict = 'inconclusive';
    for (const s of untested) if (s.status === 'untested') reasons.push(`t = ${s.step}: ${s.reason}`);
    if (notWithin.length) reasons.push(`not rejected, but c0 / c1 is not shown inside +/- ${o.margin} at t = ${notWithin.map((s) => s.step).join(', ')}`);
  }
  if (verdict !== 'fails' && fewestRuns < MIN_RUNS_FOR_VERDICT) {
    verdict = 'inconclusive';
    reasons.push(`fewer than ${MIN_RUNS_FOR_VERDICT} runs per b`);
  }
  const widest = tested.reduce<(typeof tested)[number] | undefined>((w, x) => (!w || Math.max(-x.ratioLow, x.ratioHigh) > Math.max(-w.ratioLow, w.ratioHigh) ? x : w), undefined);
  const row = (s: (typeof tested)[number]) => ({
    step: s.step,
    initPoint: s.initPoint,
    batchSizes: s.batchSizes,
    degree: s.degree,
    fitP: s.fitP,
    constant: s.constant,
    constantStdError: s.constantSe,
    lead: s.lead,
    ratio: s.ratio,
    ratioInterval: [s.ratioLow, s.ratioHigh],
    t: s.t,
    p: s.p,
    pEquivalent: s.pEquivalent,
  });
  return {
    id: 'grad-variance-no-constant-term',
    statement: 'Var(g_t|F0) is a polynomial in 1/b with no constant term (b Var tends to a constant)',
    paperRef: 'Theorem 4',
    estimator: 'monte_carlo',
    verdict,
    pValue,
    equivalenceMargin: o.margin,
    evidence: {
      test:
        `per step, a weighted fit V(b) = c0 + sum_k c_k b^-k of the lowest degree in [${o.minDegree}, ${o.maxDegree}] whose residual chi-square has p >= ${o.fitLevel} ` +
        `(smallest b dropped first while ${o.minBatchSizes} remain); fails when t(c0) rejects at alpha / ${m} steps (Bonferroni); ` +
        `holds when every step's ${Math.round((1 - 2 * alpha) * 100)}% interval of c0 / c1 lies inside +/- ${o.margin} (equivalence, intersection-union)`,
      alpha,
      margin: o.margin,
      pValue: 'the equivalence p (largest over steps of the TOST p of |c0 / c1| < margin); pDifferent is the Bonferroni p of c0 = 0',
      ...(pDifferent !== undefined ? { pDifferent } : {}),
      runs: fewestRuns,
      testedSteps: m,
      ...(worst ? { worst: row(worst) } : {}),
      ...(widest ? { widest: row(widest) } : {}),
      steps: tested.map(row),
      ...(untested.length ? { untested: untested.map((s) => ({ step: s.step, initPoint: s.initPoint, reason: s.status === 'untested' ? s.reason : '' })) } : {}),
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    },
  };
}
