/**
 * Mini-batch samplers for all runs of a shard. Run r's stream is keyed by
 * (seed, batch, initPoint, b, runStart + r), so it does not depend on the shard layout.
 */
import { ConfigError, PackedStreams, StreamPurpose, type ComponentContext, type ComponentFactories, type Sampler, type SamplerFactory, type ShardSpec } from '@sgd-lab/core';
import type { IndexBatch } from './model.js';

export type SamplingScheme = 'without-replacement' | 'with-replacement';

function streamsFor(shard: ShardSpec, seed: number): PackedStreams {
  return new PackedStreams(
    Array.from({ length: shard.runCount }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, shard.batchSize, shard.runStart + r]),
  );
}

/**
 * A uniform b-subset per step, independent across steps: a partial Fisher-Yates shuffle of the
 * first b slots of each run's running permutation. Any permutation is a valid start, so keeping
 * the previous one costs nothing and needs no reset.
 */
export function withoutReplacement(n: number): SamplerFactory<IndexBatch> {
  return {
    id: 'without-replacement',
    samplingFactor: (b) => samplingFactor('without-replacement', n, b),
    create(shard: ShardSpec, seed: number): Sampler<IndexBatch> {
      const b = shard.batchSize;
      const runs = shard.runCount;
      const perm = new Int32Array(runs * n);
      for (let r = 0; r < runs; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
      const rng = streamsFor(shard, seed);
      const batch: IndexBatch = { indices: perm, stride: n, size: b };
      return {
        next() {
          for (let r = 0; r < runs; r++) rng.partialShuffle(r, perm, r * n, n, b);
          return batch;
        },
      };
    },
  };
}

/** b i.i.d. uniform draws per step. */
export function withReplacement(n: number): SamplerFactory<IndexBatch> {
  return {
    id: 'with-replacement',
    samplingFactor: (b) => samplingFactor('with-replacement', n, b),
    create(shard: ShardSpec, seed: number): Sampler<IndexBatch> {
      const b = shard.batchSize;
      const runs = shard.runCount;
      const indices = new Int32Array(runs * b);
      const rng = streamsFor(shard, seed);
      const batch: IndexBatch = { indices, stride: b, size: b };
      return {
        next() {
          for (let r = 0; r < runs; r++) rng.fillInts(r, indices, r * b, b, n);
          return batch;
        },
      };
    },
  };
}

/** Paper Lemma 1: Var of a b-sample mean = C_b * (population variance of the n terms). */
export function samplingFactor(scheme: SamplingScheme, n: number, b: number): number {
  return scheme === 'with-replacement' ? 1 / b : (n - b) / (b * (n - 1));
}

/** C_b = a1 / b + a0: the coefficients of C_b as an affine function of 1/b. */
export function samplingFactorAffine(scheme: SamplingScheme, n: number): { a1: number; a0: number } {
  return scheme === 'with-replacement' ? { a1: 1, a0: 0 } : { a1: n / (n - 1), a0: -1 / (n - 1) };
}

function rowsOf(ctx: ComponentContext, id: string): number {
  const rows = ctx.model.rows;
  if (!rows) throw new ConfigError(ctx.study.name, [`/components/sampler: "${id}" draws rows of a finite data set; ${ctx.study.setting}'s model has none`]);
  return rows;
}

/**
 * Index samplers offered to any setting whose model has a finite training set (`model.rows`) and
 * takes IndexBatch mini-batches.
 */
export const samplerComponents: ComponentFactories = {
  samplers: {
    'without-replacement': { description: 'uniform b-subsets, independent across steps', create: (ctx) => withoutReplacement(rowsOf(ctx, 'without-replacement')) },
    'with-replacement': { description: 'b i.i.d. uniform row draws per step', create: (ctx) => withReplacement(rowsOf(ctx, 'with-replacement')) },
  },
};
