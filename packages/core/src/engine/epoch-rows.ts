/**
 * Epoch-based sampling of a finite training set: run r reshuffles the n rows at every epoch start
 * (Fisher-Yates from its stream keyed by (seed, batch, initPoint, b, r)) and takes consecutive
 * batches; the last partial batch of an epoch is dropped. Settings give their rows as columns
 * (images and labels, token ids and labels) and get per step one array per column holding every
 * run's batch ([runs * b * width], reused from step to step).
 */
import { PackedStreams, StreamPurpose } from '../random/stream.js';
import type { ShardSpec } from './contracts.js';

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
  /** Used for columns wider than 32 floats (images, token ids); narrow ones are copied here. */
  gather?: RowGather;
}

export function epochRows(table: RowColumns, shard: ShardSpec, seed: number, options: EpochRowsOptions = {}): { next(t: number): Float32Array[] } {
  const n = table.count;
  const b = shard.batchSize;
  const runs = shard.runCount;
  const perEpoch = stepsPerEpoch(n, b);
  if (perEpoch === 0) throw new Error(`batch size ${b} exceeds the ${n} training rows`);
  const perm = new Int32Array(runs * n);
  for (let r = 0; r < runs; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
  const rng = new PackedStreams(Array.from({ length: runs }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, b, shard.runStart + r]));
  const out = table.columns.map((c) => new Float32Array(runs * b * c.width));
  const rows = new Int32Array(runs * b);
  return {
    next(t) {
      const j = t % perEpoch;
      if (j === 0) for (let r = 0; r < runs; r++) rng.partialShuffle(r, perm, r * n, n, n);
      for (let r = 0; r < runs; r++) rows.set(perm.subarray(r * n + j * b, r * n + (j + 1) * b), r * b);
      for (let i = 0; i < table.columns.length; i++) {
        const { data, width } = table.columns[i];
        const dst = out[i];
        if (width > 32 && options.gather) {
          options.gather(data, width, rows, dst);
          continue;
        }
        for (let k = 0; k < rows.length; k++) {
          const src = rows[k] * width;
          const o = k * width;
          // A typed-array copy pays off for wide rows; narrow ones (labels) copy faster by hand.
          if (width > 32) dst.set(data.subarray(src, src + width), o);
          else for (let c = 0; c < width; c++) dst[o + c] = data[src + c];
        }
      }
      return out;
    },
  };
}
