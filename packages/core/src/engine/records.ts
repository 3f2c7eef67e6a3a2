/**
 * The flat records every setting emits and every reporter reads. No tensors, no nesting beyond
 * primitive fields, so a record is one JSON line.
 */

/** How a value was obtained. */
export type Estimator = 'monte_carlo' | 'exact' | 'fitted';

/** One measured or computed number. */
export interface MetricRecord {
  study: string;
  setting: string;
  /** Metric name: grad_variance, full_grad_variance, loss, ... */
  metric: string;
  estimator: Estimator;
  /** Mini-batch size; absent for quantities that do not depend on b. */
  batchSize?: number;
  initPoint: number;
  /** SGD iteration t (0-based); absent for per-b summaries. */
  step?: number;
  /** Epoch, for epoch-based settings. */
  epoch?: number;
  /** Parameter block ("W1", ...) or "all"; absent for single-block models. */
  layer?: string;
  /** Data split for losses and errors: train, validation, test. */
  split?: string;
  /** Power of 1/b for polynomial coefficients. */
  power?: number;
  value: number;
  /** Runs behind a Monte Carlo value. */
  runs?: number;
  ciLow?: number;
  ciHigh?: number;
  /**
   * Standard error of the estimate on `scale`: of log(value) for variances, of value for means.
   * Claims compare records with it (docs/statistics.md), never with the interval.
   */
  stdError?: number;
  scale?: 'log' | 'linear';
  /** Degrees of freedom of the Student t reference of `stdError`. */
  df?: number;
  /** How `stdError` was computed (see docs/statistics.md). */
  seMethod?: string;
  /**
   * Variances: Var(d_r) / E(d_r)^2 of the per-run squared deviations; <= 2 for every Gaussian,
   * larger for heavier tails than any Gaussian (docs/statistics.md).
   */
  dispersion?: number;
}

/** Verdict of a claim. */
export type Verdict = 'holds' | 'fails' | 'inconclusive';

/** A checked claim of the paper, with the evidence behind its verdict. */
export interface ClaimResult {
  id: string;
  /** The claim in words. */
  statement: string;
  /** Where the paper states it. */
  paperRef: string;
  /** The paper's sentence the claim tests, verbatim, where the claim rests on its wording. */
  quote?: string;
  /** A note shared by related claims (e.g. why a claim exists in two readings); reports show each once. */
  note?: string;
  estimator: Estimator;
  verdict: Verdict;
  /** Largest p-value of the per-comparison tests (intersection-union test), Monte Carlo only. */
  pValue?: number;
  /** Smallest relative margin (exact only): min over comparisons of (V(b1) - V(b2)) / V(b1). */
  margin?: number;
  /**
   * Equivalence claims ("no constant term"): "holds" means the quantity was shown to lie inside
   * +/- this margin, not merely that a difference was not found.
   */
  equivalenceMargin?: number;
  /** Numbers behind the verdict: where the weakest comparison was, counts, levels. */
  evidence: Record<string, unknown>;
}

/** The verdict as people read it: "holds" of an equivalence claim names its margin. */
export function verdictLabel(c: Pick<ClaimResult, 'verdict' | 'equivalenceMargin'>): string {
  return c.equivalenceMargin !== undefined && c.equivalenceMargin !== null && c.verdict === 'holds' ? `holds within +/-${c.equivalenceMargin}` : c.verdict;
}

/** Lifecycle and data events of a study; each `type` is also an observer hook name. */
export type StudyEvent =
  | { type: 'studyStart'; study: string; setting: string; plannedShards: number; plannedSteps: number; plannedReplicaSteps: number }
  | { type: 'shardStart'; batchSize: number; initPoint: number; runStart: number; runCount: number; steps: number }
  | { type: 'progress'; batchSize: number; initPoint: number; step: number; steps: number; runCount: number }
  | { type: 'metric'; record: MetricRecord }
  | { type: 'shardEnd'; batchSize: number; initPoint: number; runStart: number; runCount: number; seconds: number; reused?: boolean }
  | { type: 'claim'; claim: ClaimResult }
  | { type: 'studyEnd'; status: 'completed' | 'cancelled' | 'failed'; seconds: number };

type HookOf<E extends StudyEvent> = (event: E) => void | Promise<void>;

/**
 * An observer of a study: every hook optional. Hooks are called in stream order; `metric` receives
 * the event, whose `record` is the flat record.
 */
export type MetricObserver = {
  [K in StudyEvent['type']]?: HookOf<Extract<StudyEvent, { type: K }>>;
} & {
  /** Called once when the study fails; the observer should flush what it has. */
  error?: (error: unknown) => void | Promise<void>;
  /** Called last, whatever happened: flush and close files. */
  close?: () => void | Promise<void>;
  /** After close: files written and their digests, for the manifest. */
  outputs?: () => Record<string, unknown>;
};
