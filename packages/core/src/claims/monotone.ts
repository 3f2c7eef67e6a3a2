/**
 * Claims of the form "metric M decreases strictly in b at every step", checked on records only.
 *
 * Exact estimator: every adjacent pair of batch sizes must satisfy V(b1) > V(b2); the evidence is
 * the smallest relative margin. Monte Carlo: a one-sided test per (step, adjacent pair) on the log
 * scale; the claim holds at level alpha when every test rejects at alpha (an intersection-union
 * test, so no multiplicity correction is needed, and the reported p-value is the largest one), and
 * fails when some test in the opposite direction rejects at alpha / m (Bonferroni over m tests).
 */
import type { StudyConfig } from '../config/study-config.js';
import type { Claim } from '../engine/contracts.js';
import type { RecordIndex } from '../engine/record-index.js';
import type { ClaimResult, Estimator, MetricRecord } from '../engine/records.js';
import { compareRecords, incomparable, type Comparison } from '../stats/compare.js';
import { normalSf } from '../stats/normal.js';
import { studentSf } from '../stats/student-t.js';

export interface DecreasingInBatchSizeSpec {
  id: string;
  statement: string;
  paperRef: string;
  /** The paper's sentence this claim tests (ClaimResult.quote). */
  quote?: string;
  /** ClaimResult.note. */
  note?: string;
  metric: string;
  /** Steps before this are not compared (e.g. t = 0 where the full gradient is deterministic). */
  fromStep?: number;
  /** Parameter block; undefined for single-block models. */
  layers?: readonly (string | undefined)[];
  estimators?: readonly Estimator[];
  /** Which field indexes the curve. @default 'step' */
  axis?: 'step' | 'epoch';
  split?: string;
  /** 'increasing' checks the opposite order (the accuracy gap grows with b). @default 'decreasing' */
  direction?: 'decreasing' | 'increasing';
}

/**
 * Fewest runs per (b, initial point) at which a Monte Carlo comparison gives a verdict: from there
 * on the intervals cover and the one-sided tests keep their size for Gaussian and rank-1 gradients
 * (docs/calibration.md); below it a claim is `inconclusive` and says how many runs it needs.
 */
export const MIN_RUNS_FOR_VERDICT = 16;

/** MIN_RUNS_FOR_VERDICT when a claim rests on fewer runs than that, else undefined. */
const runsNeeded = (fewestRuns: number) => (fewestRuns < MIN_RUNS_FOR_VERDICT ? MIN_RUNS_FOR_VERDICT : undefined);

/** Largest dispersion Var(d) / E(d)^2 of per-run squared deviations that a Gaussian can have. */
export const GAUSSIAN_DISPERSION = 2;

/** The standard error of a record's log value (variances), from the record itself. */
export function logStdError(r: MetricRecord): number {
  if (r.stdError === undefined) return NaN;
  return r.scale === 'log' ? r.stdError : r.stdError / Math.abs(r.value);
}

export function decreasingInBatchSize(spec: DecreasingInBatchSizeSpec): Claim {
  return {
    id: spec.id,
    evaluate(index: RecordIndex, study: StudyConfig): ClaimResult[] {
      const out: ClaimResult[] = [];
      const bs = [...study.batchSizes].sort((a, b) => a - b);
      const axis = spec.axis ?? 'step';
      for (const estimator of spec.estimators ?? (['exact', 'monte_carlo'] as const)) {
        for (const layer of spec.layers ?? [undefined]) {
          // Checking "increasing" is checking "decreasing" over the reversed batch sizes.
          const order = spec.direction === 'increasing' ? [...bs].reverse() : bs;
          const curves = order.map((b) => {
            const m = new Map<number, MetricRecord>();
            for (let ip = 0; ip < study.initPoints; ip++) {
              for (const r of index.get(spec.metric, estimator, b, ip, layer, spec.split)) {
                const x = r[axis];
                if (x !== undefined && x >= (spec.fromStep ?? 0)) m.set(ip * 1e9 + x, r);
              }
            }
            return m;
          });
          if (bs.length < 2 || curves.some((c) => c.size === 0)) continue;
          const id = layer ? `${spec.id}[${layer}]` : spec.id;
          out.push(
            estimator === 'monte_carlo'
              ? judgeMonteCarlo(spec, id, order, curves, study)
              : judgeExact(spec, id, estimator, order, curves),
          );
        }
      }
      return out;
    },
  };
}

const wording = (spec: DecreasingInBatchSizeSpec) => ({ ...(spec.quote ? { quote: spec.quote } : {}), ...(spec.note ? { note: spec.note } : {}) });

/** The two axes of an epoch-based setting and the suffix of their claim ids. */
export const AXES = {
  epoch: { suffix: 'at-equal-epochs', words: 'at equal epochs (the same samples seen)' },
  step: { suffix: 'at-equal-steps', words: 'at equal steps (the same number of updates)' },
} as const;

export interface EpochClaimSpec extends Omit<DecreasingInBatchSizeSpec, 'axis' | 'fromStep'> {
  /** The metric compared at equal steps when it differs (per-epoch means at equal epochs, per-step values at equal steps). */
  stepMetric?: string;
  /** First epoch compared; at equal steps, the first step is this many reference epochs. @default 0 */
  fromEpoch?: number;
  /** Steps of a reference epoch (`referenceEpochLength`): the unit of the equal-steps grid. */
  referenceLength: number;
}

/**
 * One claim of an epoch-based setting on both axes: at equal epochs b is confounded with the
 * number of updates (b = 64 has taken twice the steps of b = 128), at equal steps with the samples
 * seen; `<id>-at-equal-epochs` and `<id>-at-equal-steps` say which.
 */
export function atEqualEpochsAndSteps(spec: EpochClaimSpec): Claim[] {
  const { stepMetric, fromEpoch = 0, referenceLength, ...rest } = spec;
  return [
    decreasingInBatchSize({ ...rest, id: `${spec.id}-${AXES.epoch.suffix}`, statement: `${spec.statement}, ${AXES.epoch.words}`, axis: 'epoch', fromStep: fromEpoch }),
    decreasingInBatchSize({
      ...rest,
      id: `${spec.id}-${AXES.step.suffix}`,
      statement: `${spec.statement}, ${AXES.step.words}`,
      metric: stepMetric ?? spec.metric,
      axis: 'step',
      fromStep: fromEpoch * referenceLength,
    }),
  ];
}

function pairs<T>(xs: readonly T[]): [T, T, number][] {
  return xs.slice(1).map((x, i) => [xs[i], x, i]);
}

function judgeExact(spec: DecreasingInBatchSizeSpec, id: string, estimator: Estimator, bs: number[], curves: Map<number, MetricRecord>[]): ClaimResult {
  let margin = Infinity;
  let where: Record<string, unknown> = {};
  let comparisons = 0;
  let violations = 0;
  for (const [b1, b2, i] of pairs(bs)) {
    for (const [k, r1] of curves[i]) {
      const r2 = curves[i + 1].get(k);
      if (!r2) continue;
      comparisons++;
      const m = (r1.value - r2.value) / Math.abs(r1.value);
      if (!(m > 0)) violations++;
      if (m < margin || Number.isNaN(m)) {
        margin = m;
        where = { step: r1.step, epoch: r1.epoch, initPoint: r1.initPoint, b1, b2, v1: r1.value, v2: r2.value };
      }
    }
  }
  return {
    id,
    statement: spec.statement,
    paperRef: spec.paperRef,
    ...wording(spec),
    estimator,
    verdict: comparisons > 0 && violations === 0 ? 'holds' : 'fails',
    margin,
    evidence: { comparisons, violations, weakest: where, batchSizes: bs },
  };
}

function judgeMonteCarlo(spec: DecreasingInBatchSizeSpec, id: string, bs: number[], curves: Map<number, MetricRecord>[], study: StudyConfig): ClaimResult {
  const alpha = study.significance;
  const tests: { c: Comparison; r1: MetricRecord; r2: MetricRecord; b1: number; b2: number }[] = [];
  const problems = new Set<string>();
  let fewestRuns = Infinity;
  for (const [b1, b2, i] of pairs(bs)) {
    for (const [k, r1] of curves[i]) {
      const r2 = curves[i + 1].get(k);
      if (!r2) continue;
      fewestRuns = Math.min(fewestRuns, r1.runs ?? 0, r2.runs ?? 0);
      const why = incomparable(r1, r2);
      if (why) problems.add(why);
      else tests.push({ c: compareRecords(r1, r2), r1, r2, b1, b2 });
    }
  }
  const base = { id, statement: spec.statement, paperRef: spec.paperRef, ...wording(spec), estimator: 'monte_carlo' as const };
  const m = tests.length;
  if (m === 0) return { ...base, verdict: 'inconclusive', evidence: { comparisons: 0, problems: [...problems] } };
  const weakest = tests.reduce((w, t) => (t.c.pValue > w.c.pValue ? t : w), tests[0]);
  const pValue = weakest.c.pValue;
  // Opposite direction: the most significant reversal, Bonferroni over all comparisons.
  const reverse = tests.reduce((w, t) => (t.c.t < w.c.t ? t : w), tests[0]);
  const reverseP = studentSf(-reverse.c.t, reverse.c.df);
  const significant = tests.filter((t) => t.c.pValue < alpha).length;
  let verdict: ClaimResult['verdict'] = problems.size > 0 ? 'inconclusive' : pValue < alpha ? 'holds' : reverseP < alpha / m ? 'fails' : 'inconclusive';
  const needsRuns = runsNeeded(fewestRuns);
  if (needsRuns) verdict = 'inconclusive';
  // Tails at the weakest comparison: above GAUSSIAN_DISPERSION no Gaussian explains the runs, and
  // the size of the test is that of calibration.md's heavy-tailed rows (up to about 2x alpha).
  const dispersion = Math.max(weakest.r1.dispersion ?? 0, weakest.r2.dispersion ?? 0);
  const at = (t: (typeof tests)[number]) => ({
    step: t.r1.step,
    epoch: t.r1.epoch,
    initPoint: t.r1.initPoint,
    b1: t.b1,
    b2: t.b2,
    v1: t.r1.value,
    v2: t.r2.value,
    t: t.c.t,
    df: t.c.df,
  });
  return {
    ...base,
    verdict,
    pValue,
    evidence: {
      test: `one-sided Student t on the ${weakest.c.scale} scale per (${spec.axis ?? 'step'}, adjacent b pair) from each record's standard error; intersection-union (holds when every test rejects at alpha); fails when a reversal is significant at alpha / comparisons`,
      alpha,
      comparisons: m,
      significantAtAlpha: significant,
      weakest: at(weakest),
      strongestReversal: { ...at(reverse), pValue: reverseP },
      runs: fewestRuns,
      ...(dispersion > 0 ? { dispersion, tails: dispersion > GAUSSIAN_DISPERSION ? 'estimated above 2, the most any Gaussian has: probably heavy-tailed (an estimate: rank-1 Gaussian samples exceed 2 a third of the time), and the test may then reject up to about twice as often as alpha (docs/calibration.md)' : 'within the Gaussian range' } : {}),
      ...(needsRuns ? { needsRuns, reason: `fewer than ${needsRuns} runs per (b, initial point): the tests are not calibrated there (docs/calibration.md); run with runs >= ${needsRuns}` } : {}),
      ...(problems.size > 0 ? { problems: [...problems] } : {}),
      batchSizes: bs,
    },
  };
}

/** An interval narrower than this (relative) means the quantity did not vary across runs. */
export const DETERMINISTIC_REL_WIDTH = 1e-9;

export interface AgreesWithExactSpec {
  id: string;
  statement: string;
  paperRef: string;
  metrics: readonly { metric: string; scale: 'log' | 'linear'; layer?: string }[];
  /**
   * Relative tolerance for values that did not vary across runs (t = 0 from a shared start);
   * float32 settings need about 1e-5. @default DETERMINISTIC_REL_WIDTH
   */
  roundOff?: number;
}

/**
 * Monte Carlo estimates agree with the exact oracle: for every (metric, b, step) with both, the
 * studentised error of the estimate around the exact value, from the record's own standard error
 * (log scale for variances, linear for means) against Student's t. Holds when no two-sided p-value
 * is below alpha / comparisons (Bonferroni, valid however the steps are correlated).
 */
export function agreesWithExact(spec: AgreesWithExactSpec): Claim {
  return {
    id: spec.id,
    evaluate(index: RecordIndex, study: StudyConfig): ClaimResult[] {
      const zs: { z: number; df: number; p: number; r: MetricRecord; exact: number }[] = [];
      let fewestRuns = Infinity;
      for (const { metric, layer } of spec.metrics) {
        for (let ip = 0; ip < study.initPoints; ip++) {
          for (const b of study.batchSizes) {
            const exactRecords = index.get(metric, 'exact', b, ip, layer);
            const exact = new Map(exactRecords.map((r) => [r.step, r.value]));
            const size = Math.max(0, ...exactRecords.map((r) => Math.abs(r.value)));
            for (const r of index.get(metric, 'monte_carlo', b, ip, layer)) {
              if (!exact.has(r.step) || r.stdError === undefined) continue;
              const e = exact.get(r.step)!;
              const df = r.df ?? Infinity;
              let z: number;
              if (Math.abs(e) <= ZERO_REL * size) {
                // An exact zero (the full gradient at t = 0): Monte Carlo must be round-off too.
                z = Math.abs(r.value) <= ZERO_REL * size ? 0 : Infinity;
              } else if (!(r.stdError > DETERMINISTIC_REL_WIDTH * (r.scale === 'log' ? 1 : Math.abs(r.value)))) {
                // Every run gave the same value (t = 0 from a shared start): compare to round-off.
                z = Math.abs(r.value - e) <= (spec.roundOff ?? DETERMINISTIC_REL_WIDTH) * Math.abs(e) ? 0 : Infinity;
              } else if (r.scale === 'log') {
                z = r.value > 0 && e > 0 ? (Math.log(r.value) - Math.log(e)) / aboutExact(r, e) : Infinity;
              } else z = (r.value - e) / r.stdError;
              if (Number.isNaN(z)) continue;
              fewestRuns = Math.min(fewestRuns, r.runs ?? 0);
              zs.push({ z, df, p: Math.min(1, 2 * studentSf(Math.abs(z), df)), r, exact: e });
            }
          }
        }
      }
      if (zs.length === 0) return [];
      const m = zs.length;
      const worst = zs.reduce((w, x) => (x.p < w.p ? x : w));
      // Two families of tests, Bonferroni between them (alpha / 2 each):
      // 1. any single estimate off: the smallest p, times the number of comparisons;
      // 2. a systematic bias: per (metric, layer), the mean z of each b's series, combined over the
      //    independent run sets of the b's as sum / sqrt(#b). The z of one series are correlated
      //    over steps (the same runs), but a mean of unit-variance variables has variance <= 1
      //    whatever their correlation, so the combined statistic is at most standard normal under
      //    agreement: conservative, and far more powerful than (1) against a bias of a few per cent.
      const series = new Map<string, Map<number, number[]>>();
      for (const x of zs) {
        if (!Number.isFinite(x.z) || x.z === 0) continue;
        const key = `${x.r.metric}|${x.r.layer ?? ''}`;
        const byB = series.get(key) ?? new Map<number, number[]>();
        series.set(key, byB);
        const list = byB.get(x.r.batchSize ?? 0) ?? [];
        byB.set(x.r.batchSize ?? 0, list);
        list.push(x.z);
      }
      const systematic = [...series].map(([key, byB]) => {
        const means = [...byB.values()].map((zz) => zz.reduce((a, z) => a + z, 0) / zz.length);
        const z = means.reduce((a, v) => a + v, 0) / Math.sqrt(means.length);
        return { key, z, p: Math.min(1, 2 * normalSf(Math.abs(z))), batchSizes: byB.size };
      });
      const worstSystematic = systematic.reduce((w, x) => (x.p < w.p ? x : w), { key: '', z: 0, p: 1, batchSizes: 0 });
      const pSingle = Math.min(1, worst.p * m);
      const pSystematic = Math.min(1, worstSystematic.p * Math.max(1, systematic.length));
      const pValue = Math.min(1, 2 * Math.min(pSingle, pSystematic));
      const finite = zs.filter((x) => Number.isFinite(x.z));
      const meanZ = finite.reduce((s, x) => s + x.z, 0) / Math.max(1, finite.length);
      const needsRuns = runsNeeded(fewestRuns);
      const verdict = pValue < study.significance ? 'fails' : needsRuns ? 'inconclusive' : 'holds';
      return [
        {
          id: spec.id,
          statement: spec.statement,
          paperRef: spec.paperRef,
          estimator: 'monte_carlo',
          verdict,
          pValue,
          evidence: {
            test:
              'two-sided Student t of each Monte Carlo estimate around the exact value from its own standard error (for variances, the spread of the runs about the exact value): ' +
              'max |t| with Bonferroni over all comparisons, and per metric the mean t of each b combined over b (a systematic bias); Bonferroni between the two',
            alpha: study.significance,
            comparisons: m,
            meanZ,
            runs: fewestRuns,
            pSingle,
            pSystematic,
            worst: { metric: worst.r.metric, layer: worst.r.layer, batchSize: worst.r.batchSize, step: worst.r.step, estimate: worst.r.value, exact: worst.exact, z: worst.z, df: worst.df },
            systematic: systematic.map((x) => ({ series: x.key, z: x.z, batchSizes: x.batchSizes })),
            ...(needsRuns ? { needsRuns } : {}),
          },
        },
      ];
    },
  };
}

/**
 * The log standard error of a variance record measured about the exact value e rather than about
 * the estimate: the per-run contributions' spread about e is Var(d) + (V - e)^2, so the record's
 * standard error grows by sqrt(1 + (V - e)^2 / Var(d)). A sample that missed a heavy tail has a
 * low estimate and a low spread together; about e its spread is not low, and its z is not
 * inflated (the size of the test is in docs/calibration.md).
 */
function aboutExact(r: MetricRecord, e: number): number {
  const varD = (r.dispersion ?? 0) * r.value * r.value;
  const a = r.value - e;
  return varD > 0 ? r.stdError! * Math.sqrt(1 + (a * a) / varD) : r.stdError!;
}

/** Exact values this small relative to their series are zeros (round-off of a zero). */
export const ZERO_REL = 1e-12;
