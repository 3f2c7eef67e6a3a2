/**
 * Encoded examples and the epoch-based sampler: every run reshuffles the training rows at each
 * epoch start from its own keyed stream and takes consecutive batches (the last partial batch is
 * dropped), as in the MNIST setting.
 */
import { PackedStreams, StreamPurpose, type Sampler, type SamplerFactory, type ShardSpec } from '@sgd-lab/core';
import type { TextSet } from './data.js';
import { CLASSES } from './model.js';
import type { Tokenizer } from './tokenizer.js';

/** Token ids [n, L] (float-coded) and one-hot labels [n, 2]. */
export interface EncodedSet {
  ids: Float32Array;
  labels: Float32Array;
  count: number;
  length: number;
  /** Texts longer than L - 2 tokens, cut. */
  truncated: number;
  /** Mean tokens per text before cutting. */
  meanTokens: number;
}

export function encodeSet(set: TextSet, tokenizer: Tokenizer, length: number, limit = 0): EncodedSet {
  const count = limit > 0 ? Math.min(limit, set.texts.length) : set.texts.length;
  const ids = new Float32Array(count * length);
  const labels = new Float32Array(count * CLASSES);
  let truncated = 0;
  let tokens = 0;
  for (let i = 0; i < count; i++) {
    const n = tokenizer.encode(set.texts[i]).length;
    tokens += n;
    if (n > length - 2) truncated++;
    tokenizer.encodeForClassification(set.texts[i], length, ids, i * length);
    labels[i * CLASSES + set.labels[i]] = 1;
  }
  return { ids, labels, count, length, truncated, meanTokens: count ? tokens / count : 0 };
}

export interface TextBatch {
  x: Float32Array;
  y: Float32Array;
  b: number;
}

export function stepsPerEpoch(n: number, b: number): number {
  return Math.floor(n / b);
}

export function textEpochSampler(train: EncodedSet): SamplerFactory<TextBatch> {
  return {
    id: 'epoch-shuffle',
    create(shard: ShardSpec, seed: number): Sampler<TextBatch> {
      const n = train.count;
      const b = shard.batchSize;
      const L = train.length;
      const runs = shard.runCount;
      const perEpoch = stepsPerEpoch(n, b);
      if (perEpoch === 0) throw new Error(`batch size ${b} exceeds the ${n} training examples`);
      const perm = new Int32Array(runs * n);
      for (let r = 0; r < runs; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
      const rng = new PackedStreams(Array.from({ length: runs }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, b, shard.runStart + r]));
      const batch: TextBatch = { x: new Float32Array(runs * b * L), y: new Float32Array(runs * b * CLASSES), b };
      return {
        next(t) {
          const j = t % perEpoch;
          if (j === 0) for (let r = 0; r < runs; r++) rng.partialShuffle(r, perm, r * n, n, n);
          for (let r = 0; r < runs; r++) {
            for (let k = 0; k < b; k++) {
              const row = perm[r * n + j * b + k];
              const o = r * b + k;
              batch.x.set(train.ids.subarray(row * L, (row + 1) * L), o * L);
              batch.y.set(train.labels.subarray(row * CLASSES, (row + 1) * CLASSES), o * CLASSES);
            }
          }
          return batch;
        },
      };
    },
  };
}
