/**
 * Comparisons of two Monte Carlo records of independent run sets (two batch sizes), from the
 * standard errors the records carry. Variances are compared on the log scale, means (losses,
 * errors, which can be 0) on the linear scale with Welch's degrees of freedom. The reference
 * distribution is Student's t; its calibration is in docs/calibration.md.
 */
import type { MetricRecord } from '../engine/records.js';
import { studentSf } from './student-t.js';

/** A one-sided comparison: is the first value larger? */
export interface Comparison {
  /** Studentised difference; positive when the first is larger. */
  t: number;
  df: number;
  /** P-value for H1: first > second. */
  pValue: number;
  scale: 'log' | 'linear';
}

/** Why two records cannot be compared, or undefined when they can. */
export function incomparable(a: MetricRecord, b: MetricRecord): string | undefined {
  for (const r of [a, b]) {
    if (r.stdError === undefined || r.scale === undefined || r.df === undefined) return `the record of b = ${r.batchSize} at step ${r.step} carries no standard error`;
    if (Number.isNaN(r.stdError) || Number.isNaN(r.value)) return `the record of b = ${r.batchSize} at step ${r.step} has too few runs for a standard error (${r.runs})`;
  }
  if (a.scale !== b.scale) return 'the records are on different scales';
  if (a.scale === 'log' && !(a.value > 0 && b.value > 0)) return 'a variance is not positive';
  return undefined;
}

/** One-sided test of first > second (see `incomparable` for when it applies). */
export function compareRecords(a: MetricRecord, b: MetricRecord): Comparison {
  const scale = a.scale!;
  if (scale === 'log') {
    const s = Math.hypot(a.stdError!, b.stdError!);
    const diff = Math.log(a.value) - Math.log(b.value);
    const t = s > 0 ? diff / s : diff === 0 ? 0 : Math.sign(diff) * Infinity;
    const df = Math.min(a.df!, b.df!);
    return { t, df, pValue: studentSf(t, df), scale };
  }
  const va = a.stdError! ** 2;
  const vb = b.stdError! ** 2;
  const diff = a.value - b.value;
  const s = Math.sqrt(va + vb);
  // Both without spread: equal values are a tie (no evidence either way), unequal ones certain.
  const t = s > 0 ? diff / s : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  // Welch-Satterthwaite; one side without spread leaves the other's degrees of freedom.
  const df = va + vb > 0 ? (va + vb) ** 2 / ((va * va) / Math.max(a.df!, 1) + (vb * vb) / Math.max(b.df!, 1)) : Math.min(a.df!, b.df!);
  return { t, df, pValue: studentSf(t, df), scale };
}
