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

export function epochRows(table: RowColumns, shard: ShardSpec, seed: number): { next(t: number): Float32Array[] } {
  const n = table.count;
  const b = shard.batchSize;
  const runs = shard.runCount;
  const perEpoch = stepsPerEpoch(n, b);
  if (perEpoch === 0) throw new Error(`batch size ${b} exceeds the ${n} training rows`);
  const perm = new Int32Array(runs * n);
  for (let r = 0; r < runs; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
  const rng = new PackedStreams(Array.from({ length: runs }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, b, shard.runStart + r]));
  const out = table.columns.map((c) => new Float32Array(runs * b * c.width));
  return {
    next(t) {
      const j = t % perEpoch;
      if (j === 0) for (let r = 0; r < runs; r++) rng.partialShuffle(r, perm, r * n, n, n);
      for (let r = 0; r < runs; r++) {
        for (let k = 0; k < b; k++) {
          const row = perm[r * n + j * b + k];
          const o = r * b + k;
          table.columns.forEach((c, i) => out[i].set(c.data.subarray(row * c.width, (row + 1) * c.width), o * c.width));
        }
      }
      return out;
    },
  };
}
