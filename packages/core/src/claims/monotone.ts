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
import { normalCdf, normalQuantile, normalSf } from '../stats/normal.js';

export interface DecreasingInBatchSizeSpec {
  id: string;
  statement: string;
  paperRef: string;
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

/** The log-scale standard error of a record, recovered from its log-symmetric interval. */
export function logStdError(r: MetricRecord, confidenceLevel: number): number {
  if (r.ciLow === undefined || r.ciHigh === undefined || !(r.ciLow > 0)) return NaN;
  return Math.log(r.ciHigh / r.ciLow) / (2 * normalQuantile(0.5 + confidenceLevel / 2));
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
    estimator,
    verdict: comparisons > 0 && violations === 0 ? 'holds' : 'fails',
    margin,
    evidence: { comparisons, violations, weakest: where, batchSizes: bs },
  };
}

function judgeMonteCarlo(spec: DecreasingInBatchSizeSpec, id: string, bs: number[], curves: Map<number, MetricRecord>[], study: StudyConfig): ClaimResult {
  const alpha = study.significance;
  const tests: { z: number; r1: MetricRecord; r2: MetricRecord; b1: number; b2: number }[] = [];
  for (const [b1, b2, i] of pairs(bs)) {
    for (const [k, r1] of curves[i]) {
      const r2 = curves[i + 1].get(k);
      if (!r2) continue;
      const s1 = logStdError(r1, study.confidenceLevel);
      const s2 = logStdError(r2, study.confidenceLevel);
      const z = (Math.log(r1.value) - Math.log(r2.value)) / Math.sqrt(s1 * s1 + s2 * s2);
      // NaN: two equal values without spread (a tie), which is no evidence either way.
      tests.push({ z: Number.isNaN(z) ? 0 : z, r1, r2, b1, b2 });
    }
  }
  const m = tests.length;
  if (m === 0) {
    return { id, statement: spec.statement, paperRef: spec.paperRef, estimator: 'monte_carlo', verdict: 'inconclusive', evidence: { comparisons: 0 } };
  }
  const weakest = tests.reduce((w, t) => (t.z < w.z ? t : w), tests[0]);
  const pValue = normalSf(weakest.z);
  const reverseP = normalCdf(weakest.z);
  const significant = tests.filter((t) => normalSf(t.z) < alpha).length;
  const verdict = pValue < alpha ? 'holds' : reverseP < alpha / m ? 'fails' : 'inconclusive';
  const at = (t: typeof weakest) => ({
    step: t.r1.step,
    epoch: t.r1.epoch,
    initPoint: t.r1.initPoint,
    b1: t.b1,
    b2: t.b2,
    v1: t.r1.value,
    v2: t.r2.value,
    z: t.z,
  });
  return {
    id,
    statement: spec.statement,
    paperRef: spec.paperRef,
    estimator: 'monte_carlo',
    verdict,
    pValue,
    evidence: {
      test: 'one-sided z on log variance per (step, adjacent b pair); intersection-union',
      alpha,
      comparisons: m,
      significantAtAlpha: significant,
      weakest: at(weakest),
      runs: weakest.r1.runs,
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
 * z-score of the estimate around the exact value. Holds when no |z| exceeds the two-sided
 * Bonferroni bound for the number of comparisons at the study's significance level.
 */
export function agreesWithExact(spec: AgreesWithExactSpec): Claim {
  return {
    id: spec.id,
    evaluate(index: RecordIndex, study: StudyConfig): ClaimResult[] {
      const zq = normalQuantile(0.5 + study.confidenceLevel / 2);
      const zs: { z: number; r: MetricRecord; exact: number }[] = [];
      for (const { metric, scale, layer } of spec.metrics) {
        for (let ip = 0; ip < study.initPoints; ip++) {
          for (const b of study.batchSizes) {
            const exactRecords = index.get(metric, 'exact', b, ip, layer);
            const exact = new Map(exactRecords.map((r) => [r.step, r.value]));
            const size = Math.max(0, ...exactRecords.map((r) => Math.abs(r.value)));
            const series = index.get(metric, 'monte_carlo', b, ip, layer).filter((r) => exact.has(r.step) && r.ciLow !== undefined && r.ciHigh !== undefined);
            // Standard error per step on the compared scale (log or linear).
            const se = series.map((r) =>
              scale === 'log' ? logStdError(r, study.confidenceLevel) : (r.ciHigh! - r.ciLow!) / (2 * zq),
            );
            const pooled = pooledStdErrors(se, POOL_HALF_WINDOW);
            series.forEach((r, i) => {
              const e = exact.get(r.step)!;
              let z: number;
              if (Math.abs(e) <= ZERO_REL * size) {
                // An exact zero (the full gradient at t = 0): Monte Carlo must be round-off too.
                z = Math.abs(r.value) <= ZERO_REL * size ? 0 : Infinity;
              } else if (r.ciHigh! - r.ciLow! <= DETERMINISTIC_REL_WIDTH * Math.abs(r.value)) {
                // Every run gave the same value (t = 0 from a shared start): compare to round-off.
                z = Math.abs(r.value - e) <= (spec.roundOff ?? DETERMINISTIC_REL_WIDTH) * Math.abs(e) ? 0 : Infinity;
              } else if (scale === 'log') {
                if (!(r.value > 0) || !(e > 0)) z = Infinity;
                else z = (Math.log(r.value) - Math.log(e)) / pooled[i];
              } else z = (r.value - e) / pooled[i];
              if (!Number.isNaN(z)) zs.push({ z, r, exact: e });
            });
          }
        }
      }
      if (zs.length === 0) return [];
      const bound = normalQuantile(1 - study.significance / (2 * zs.length));
      const worst = zs.reduce((w, x) => (Math.abs(x.z) > Math.abs(w.z) ? x : w));
      const pValue = Math.min(1, 2 * normalSf(Math.abs(worst.z)) * zs.length);
      const meanZ = zs.reduce((s, x) => s + (Number.isFinite(x.z) ? x.z : 0), 0) / zs.length;
      return [
        {
          id: spec.id,
          statement: spec.statement,
          paperRef: spec.paperRef,
          estimator: 'monte_carlo',
          verdict: Math.abs(worst.z) <= bound ? 'holds' : 'fails',
          pValue,
          evidence: {
            test:
              'two-sided z of each Monte Carlo estimate around the exact value, Bonferroni over all comparisons; ' +
              `standard error = max(own, median over +-${POOL_HALF_WINDOW} recorded steps)`,
            comparisons: zs.length,
            bound,
            meanZ,
            worst: { metric: worst.r.metric, layer: worst.r.layer, batchSize: worst.r.batchSize, step: worst.r.step, estimate: worst.r.value, exact: worst.exact, z: worst.z },
          },
        },
      ];
    },
  };
}

/** Exact values this small relative to their series are zeros (round-off of a zero). */
export const ZERO_REL = 1e-12;
/** Half-width, in recorded steps, of the window the standard error is pooled over. */
export const POOL_HALF_WINDOW = 10;

/**
 * Standard errors pooled over neighbouring steps: max(own, median of the window). For heavy-tailed
 * runs a sample that misses the tail underestimates the variance and its own standard error
 * together, which inflates |z|; the relative error varies slowly in t, so its window median is a
 * steadier floor.
 */
export function pooledStdErrors(se: readonly number[], half: number): number[] {
  return se.map((own, i) => {
    const w = se.slice(Math.max(0, i - half), i + half + 1).filter(Number.isFinite).sort((a, b) => a - b);
    const med = w.length ? w[w.length >> 1] : own;
    return Number.isFinite(own) ? Math.max(own, med) : med;
  });
}
