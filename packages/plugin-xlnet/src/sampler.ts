/** Encoded examples and the epoch-based sampler (core's epochRows, as in the MNIST setting). */
import { epochRows, stepsPerEpoch, type Sampler, type SamplerFactory, type ShardSpec } from '@sgd-lab/core';
import { rowGather } from '@sgd-lab/tensor';
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

export { stepsPerEpoch };

/** Epoch-based sampling of the encoded training set (core's epochRows). */
export function textEpochSampler(train: EncodedSet): SamplerFactory<TextBatch> {
  const table = { count: train.count, columns: [{ data: train.ids, width: train.length }, { data: train.labels, width: CLASSES }] };
  return {
    id: 'epoch-shuffle',
    create(shard: ShardSpec, seed: number): Sampler<TextBatch> {
      const rows = epochRows(table, shard, seed, { gather: rowGather() });
      return {
        next(t) {
          const [x, y] = rows.next(t);
          return { x, y, b: shard.batchSize };
        },
      };
    },
  };
}
