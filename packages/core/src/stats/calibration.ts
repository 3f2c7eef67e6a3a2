/**
 * Calibration of the project's intervals and tests by simulation: draw R per-run vectors from a
 * known distribution, reduce them exactly as a study does (run blocks, `varianceEstimate`,
 * `compareRecords`), and count how often the nominal 95% interval covers the true trace variance
 * and how often the one-sided 1% test rejects when two batch sizes have equal variances (its
 * size). `npm test` runs a short version (stats/calibration.spec.ts), `npm run calibrate` the long
 * one whose report is docs/calibration.md.
 */
import { agreesWithExact } from '../claims/monotone.js';
import type { StudyConfig } from '../config/study-config.js';
import { RecordIndex } from '../engine/record-index.js';
import type { MetricRecord } from '../engine/records.js';
import { RandomStream } from '../random/stream.js';
import { interval, meanEstimate, runBlockStats, varianceEstimate, type Estimate } from './across-runs.js';
import { compareRecords } from './compare.js';

/** A distribution of per-run gradient vectors, with its true trace variance (and mean). */
export interface Family {
  id: string;
  description: string;
  dim: number;
  /** Fills `out` (length dim) with one draw. */
  draw(rng: RandomStream, out: Float64Array): void;
  traceVariance: number;
}

const chi2 = (rng: RandomStream, k: number) => {
  let s = 0;
  for (let i = 0; i < k; i++) s += rng.nextNormal() ** 2;
  return s;
};

/** The distributions of the calibration (issue 14); `scalar-mixture` is the hardest. */
export const FAMILIES: readonly Family[] = [
  {
    id: 'gaussian',
    description: '20 independent N(0, 1) coordinates',
    dim: 20,
    draw: (rng, out) => rng.fillNormal(out),
    traceVariance: 20,
  },
  {
    id: 'rank-1',
    description: 'z u: one N(0, 1) factor along a fixed direction (scalar-like)',
    dim: 20,
    draw: (rng, out) => {
      const z = rng.nextNormal();
      for (let j = 0; j < out.length; j++) out[j] = (z * (j + 1)) / Math.sqrt(2870);
    },
    traceVariance: 1,
  },
  {
    id: 'student-t5',
    description: 'one Student t (5 df) factor along a fixed direction (kurtosis 9, infinite 8th moment)',
    dim: 20,
    draw: (rng, out) => {
      const z = rng.nextNormal() / Math.sqrt(chi2(rng, 5) / 5);
      for (let j = 0; j < out.length; j++) out[j] = (z * (j + 1)) / Math.sqrt(2870);
    },
    traceVariance: 5 / 3,
  },
  {
    id: 'scale-mixture',
    description: '20 N(0, s^2) coordinates sharing one scale, s = 3 with probability 0.1 else 1 (whole-gradient bursts)',
    dim: 20,
    draw: (rng, out) => {
      const s = rng.nextDouble() < 0.1 ? 3 : 1;
      for (let j = 0; j < out.length; j++) out[j] = s * rng.nextNormal();
    },
    traceVariance: 20 * 1.8,
  },
  {
    id: 'scalar-mixture',
    description: 'one N(0, s^2) factor, s = 3 with probability 0.1 else 1 (kurtosis 8.3)',
    dim: 1,
    draw: (rng, out) => {
      out[0] = (rng.nextDouble() < 0.1 ? 3 : 1) * rng.nextNormal();
    },
    traceVariance: 1.8,
  },
];

export interface CalibrationResult {
  family: string;
  runs: number;
  runBlock: number;
  replications: number;
  /** Share of nominal 95% intervals that cover the true trace variance. */
  coverage: number;
  /** Share of intervals entirely above / below the truth. */
  missLow: number;
  missHigh: number;
  /** Rejection rate of the one-sided 1% test at equal true variances (its size). */
  size: number;
  /** Rejection rate of the same test when the first variance is `powerRatio` times the second. */
  power: number;
  powerRatio: number;
  /** Mean of the estimates' dispersion Var(d) / E(d)^2 (<= 2 for any Gaussian). */
  dispersion: number;
  /** Share of estimates whose dispersion exceeds the Gaussian bound 2. */
  flaggedHeavy: number;
}

function draws(rng: RandomStream, f: Family, runs: number, into: Float64Array): void {
  const v = new Float64Array(f.dim);
  for (let r = 0; r < runs; r++) {
    f.draw(rng, v);
    into.set(v, r * f.dim);
  }
}

const asRecord = (e: Estimate): MetricRecord => ({ study: 'calibration', setting: 'calibration', metric: 'v', estimator: 'monte_carlo', initPoint: 0, value: e.value, runs: e.runs, stdError: e.stdError, scale: e.scale, df: e.df, dispersion: e.dispersion });

/** Coverage, size and power of the variance interval and test for one family and run count. */
export function calibrate(f: Family, runs: number, runBlock: number, replications: number, seed = 14, powerRatio = 2): CalibrationResult {
  const rng = new RandomStream([seed, runs, runBlock, f.dim, Math.round(f.traceVariance * 1000)]);
  const a = new Float64Array(runs * f.dim);
  const b = new Float64Array(runs * f.dim);
  let cover = 0;
  let low = 0;
  let high = 0;
  let rejections = 0;
  let detections = 0;
  let dispersion = 0;
  let flagged = 0;
  for (let i = 0; i < replications; i++) {
    draws(rng, f, runs, a);
    draws(rng, f, runs, b);
    const ea = varianceEstimate(runBlockStats(a, runs, runBlock, f.dim));
    const eb = varianceEstimate(runBlockStats(b, runs, runBlock, f.dim));
    dispersion += ea.dispersion ?? NaN;
    if ((ea.dispersion ?? 0) > 2) flagged++;
    const ci = interval(ea, 0.95);
    if (ci.low > f.traceVariance) low++;
    else if (ci.high < f.traceVariance) high++;
    else cover++;
    if (compareRecords(asRecord(ea), asRecord(eb)).pValue < 0.01) rejections++;
    // Power: the first sample scaled so its variance is powerRatio times the second's.
    const scaled = asRecord({ ...ea, value: ea.value * powerRatio });
    if (compareRecords(scaled, asRecord(eb)).pValue < 0.01) detections++;
  }
  return { family: f.id, runs, runBlock, replications, coverage: cover / replications, missLow: low / replications, missHigh: high / replications, size: rejections / replications, power: detections / replications, powerRatio, dispersion: dispersion / replications, flaggedHeavy: flagged / replications };
}

/** Coverage of the interval of a mean (losses, errors) for Gaussian and skewed scalars. */
export function calibrateMean(kind: 'gaussian' | 'exponential', runs: number, runBlock: number, replications: number, seed = 14): { kind: string; runs: number; coverage: number } {
  const rng = new RandomStream([seed, runs, runBlock, kind === 'gaussian' ? 1 : 2]);
  const x = new Float64Array(runs);
  let cover = 0;
  for (let i = 0; i < replications; i++) {
    for (let r = 0; r < runs; r++) x[r] = kind === 'gaussian' ? rng.nextNormal() : -Math.log(1 - rng.nextDouble());
    const truth = kind === 'gaussian' ? 0 : 1;
    const ci = interval(meanEstimate(runBlockStats(x, runs, runBlock, 1)), 0.95);
    if (ci.low <= truth && truth <= ci.high) cover++;
  }
  return { kind, runs, coverage: cover / replications };
}

/**
 * Size of the agreement-with-the-oracle claim (`agreesWithExact`) when the Monte Carlo is right:
 * per replication, `batchSizes` independent run sets of R runs at each of `steps` steps, exact
 * value = the family's true trace variance; the share of replications whose claim fails at
 * alpha = 0.01.
 */
export function calibrateAgreement(f: Family, runs: number, runBlock: number, steps: number, batchSizes: number, replications: number, seed = 15): { family: string; runs: number; comparisons: number; size: number } {
  const rng = new RandomStream([seed, runs, runBlock, f.dim, steps, batchSizes]);
  const data = new Float64Array(runs * f.dim);
  const bs = Array.from({ length: batchSizes }, (_, i) => 2 ** i);
  const study = { name: 'c', setting: 'c', batchSizes: bs, initPoints: 1, significance: 0.01, confidenceLevel: 0.95 } as unknown as StudyConfig;
  const claim = agreesWithExact({ id: 'a', statement: '', paperRef: '', metrics: [{ metric: 'v', scale: 'log' }] });
  let fails = 0;
  let comparisons = 0;
  for (let i = 0; i < replications; i++) {
    const index = new RecordIndex();
    for (const b of bs) {
      for (let t = 0; t < steps; t++) {
        draws(rng, f, runs, data);
        const e = varianceEstimate(runBlockStats(data, runs, runBlock, f.dim));
        index.add({ ...asRecord(e), batchSize: b, step: t });
        index.add({ study: 'c', setting: 'c', metric: 'v', estimator: 'exact', initPoint: 0, batchSize: b, step: t, value: f.traceVariance });
      }
    }
    const [r] = claim.evaluate(index, study);
    comparisons = r.evidence.comparisons as number;
    if (r.verdict === 'fails') fails++;
  }
  return { family: f.id, runs, comparisons, size: fails / replications };
}
