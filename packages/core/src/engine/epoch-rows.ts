/**
 * Epoch-based sampling of a finite training set: run r reshuffles the n rows at every epoch start
 * (Fisher-Yates from its stream keyed by (seed, batch, initPoint, b, r)) and takes consecutive
 * batches; the last partial batch of an epoch is dropped. Settings give their rows as columns
 * (images and labels, token ids and labels) and get per step one array per column holding every
 * run's batch ([runs * b * width], reused from step to step).
 */
import { PackedStreams, StreamPurpose } from '../random/stream.js';
import { ConfigError } from '../errors.js';
import type { ShardSchedule, ShardSpec } from './contracts.js';
import type { StudyConfig } from '../config/study-config.js';

export interface RowColumns {
  count: number;
  columns: readonly { data: Float32Array; width: number }[];
}

/** Steps per epoch at batch size b: the last partial batch is dropped. */
export function stepsPerEpoch(n: number, b: number): number {
  return Math.floor(n / b);
}

/**
 * Copies rows: dst row i = src row rows[i] (rows of `width` floats). The default is a typed-array
 * copy per row; a backend can offer a faster one (the native addon's copies on several threads).
 */
export type RowGather = (src: Float32Array, width: number, rows: Int32Array, dst: Float32Array) => void;

export interface EpochRowsOptions {
  /** Used for every column when given (images, token ids, labels); else rows are copied here. */
  gather?: RowGather;
}

/** A shard's epoch-based batches: the rows of every run's batch, and the columns at those rows. */
export interface EpochRows {
  /**
   * The table rows of every run's batch at step t, run-major ([runs * b], a new array per call).
   * Call it once per step, in step order: at an epoch start it reshuffles.
   */
  rows(t: number): Int32Array;
  /** Column i at `rows` ([rows.length * width]), in an array reused by every call for that column. */
  gather(i: number, rows: Int32Array): Float32Array;
  /** Every column at step t's rows: `gather` of each column at `rows(t)`. */
  next(t: number): Float32Array[];
}

export function epochRows(table: RowColumns, shard: ShardSpec, seed: number, options: EpochRowsOptions = {}): EpochRows {
  const n = table.count;
  const b = shard.batchSize;
  const runs = shard.runCount;
  const perEpoch = stepsPerEpoch(n, b);
  if (perEpoch === 0) throw new Error(`batch size ${b} exceeds the ${n} training rows`);
  const perm = new Int32Array(runs * n);
  for (let r = 0; r < runs; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
  const rng = new PackedStreams(Array.from({ length: runs }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, b, shard.runStart + r]));
  const out = table.columns.map((c) => new Float32Array(runs * b * c.width));
  const rowsAt = (t: number): Int32Array => {
    const j = t % perEpoch;
    if (j === 0) for (let r = 0; r < runs; r++) rng.partialShuffle(r, perm, r * n, n, n);
    const rows = new Int32Array(runs * b);
    for (let r = 0; r < runs; r++) rows.set(perm.subarray(r * n + j * b, r * n + (j + 1) * b), r * b);
    return rows;
  };
  const gather = (i: number, rows: Int32Array): Float32Array => {
    const { data, width } = table.columns[i];
    const dst = out[i];
    if (rows.length !== runs * b) throw new RangeError(`expected the ${runs * b} rows of one step, got ${rows.length}`);
    if (options.gather) {
      options.gather(data, width, rows, dst);
      return dst;
    }
    for (let k = 0; k < rows.length; k++) {
      const src = rows[k] * width;
      const o = k * width;
      // A typed-array copy pays off for wide rows; narrow ones (labels) copy faster by hand.
      if (width > 32) dst.set(data.subarray(src, src + width), o);
      else for (let c = 0; c < width; c++) dst[o + c] = data[src + c];
    }
    return dst;
  };
  return {
    rows: rowsAt,
    gather,
    next(t) {
      const rows = rowsAt(t);
      return table.columns.map((_, i) => gather(i, rows));
    },
  };
}

/**
 * The unit of the equal-steps grid: the epoch length of the study's largest b (a "reference
 * epoch"). Every b is evaluated at the same multiples of it, so losses and errors can be compared
 * at equal numbers of updates as well as at equal epochs.
 */
export function referenceEpochLength(n: number, study: Pick<StudyConfig, 'batchSizes'>): number {
  return stepsPerEpoch(n, Math.max(...study.batchSizes));
}

/** The schedule of an epoch-based shard and the grids its scalars are evaluated on. */
export interface EpochSchedule extends ShardSchedule {
  epochLength: number;
  /** `referenceEpochLength`: the equal-steps grid is its multiples. */
  referenceLength: number;
  /** Whole epochs of this b at step t (evaluated there), else undefined. */
  epochAt(t: number): number | undefined;
  /** Whole reference epochs at step t (evaluated there), else undefined. */
  referenceEpochAt(t: number): number | undefined;
}

/**
 * Steps and evaluations of an epoch-based shard on n training rows: `study.epochs` epochs (or
 * `study.steps` steps); scalars evaluated every `every` epochs of the shard's own b (equal epochs
 * across b), every `every` reference epochs (equal steps across b), and at the end.
 */
export function epochSchedule(n: number, shard: Pick<ShardSpec, 'batchSize'>, study: Pick<StudyConfig, 'batchSizes' | 'epochs' | 'steps'>, every: number): EpochSchedule {
  const epochLength = stepsPerEpoch(n, shard.batchSize);
  const referenceLength = referenceEpochLength(n, study);
  const steps = study.epochs !== undefined ? study.epochs * epochLength : (study.steps ?? 0);
  const whole = (t: number, len: number) => (t % len === 0 && (t / len) % every === 0 ? t / len : undefined);
  const epochAt = (t: number) => whole(t, epochLength);
  const referenceEpochAt = (t: number) => whole(t, referenceLength);
  return {
    steps,
    epochLength,
    referenceLength,
    epochAt,
    referenceEpochAt,
    evaluateAt: (t) => t === steps || epochAt(t) !== undefined || referenceEpochAt(t) !== undefined,
  };
}

/**
 * Refuses batch sizes larger than a finite training set (exit 2, naming the field): an epoch of
 * such a b would have no step.
 */
export function checkBatchSizesFit(study: Pick<StudyConfig, 'name' | 'batchSizes'>, rows: number, what: string): void {
  const bad = study.batchSizes.map((b, i) => [b, i] as const).filter(([b]) => b > rows);
  if (bad.length) throw new ConfigError(study.name, bad.map(([b, i]) => `/batchSizes/${i}: b = ${b} exceeds the ${rows} training rows of ${what}`));
}
