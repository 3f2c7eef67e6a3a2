/**
 * A tiny setting used by core's own tests (never by the CLI unless SGD_LAB_PLUGINS names it):
 * estimating the mean of n fixed points in R^d, L(w) = 1/(2n) sum ||w - x_i||^2, so g_t is
 * w_t minus the batch mean and Var(g_0|F0) = C_b * (1/n) sum ||x_i - x_bar||^2 exactly.
 */
import type { JSONSchemaType } from 'ajv';
import { definePlugin } from '../plugin.js';
import { Tokens } from '../tokens.js';
import { PackedStreams, RandomStream, StreamPurpose } from '../random/stream.js';
import { denseBlockMoments, denseSgd } from '../engine/dense.js';
import type { DenseReplicaState, Model, SamplerFactory } from '../engine/contracts.js';
import { decreasingInBatchSize } from '../claims/monotone.js';

export interface ToyOptions {
  points: number;
  dim: number;
}

export interface ToyBatch {
  perm: Int32Array;
  n: number;
  b: number;
}

export function toyPoints(seed: number, o: ToyOptions): Float64Array {
  const rng = new RandomStream([seed, StreamPurpose.data]);
  return rng.fillNormal(new Float64Array(o.points * o.dim), 1) as Float64Array;
}

export function toyModel(x: Float64Array, o: ToyOptions): Model<DenseReplicaState, ToyBatch> {
  const d = o.dim;
  const blocks = d >= 2 ? [{ name: 'first', size: 1 }, { name: 'rest', size: d - 1 }] : [{ name: 'w', size: d }];
  const mean = new Float64Array(d);
  for (let i = 0; i < o.points; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / o.points;
  return {
    id: 'toy-mean',
    blocks,
    initialParameters: (rng) => rng.fillNormal(new Float64Array(d), 2) as Float64Array,
    replicate(theta0, shard) {
      const params = new Float64Array(shard.runCount * d);
      for (let r = 0; r < shard.runCount; r++) params.set(theta0, r * d);
      return { runs: shard.runCount, runBlock: shard.runBlock, dim: d, params, grad: new Float64Array(shard.runCount * d) };
    },
    gradients(state, batch, wantFull) {
      const full = new Float64Array(state.runs * d);
      for (let r = 0; r < state.runs; r++) {
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let k = 0; k < batch.b; k++) s += x[batch.perm[r * batch.n + k] * d + j];
          state.grad[r * d + j] = state.params[r * d + j] - s / batch.b;
          full[r * d + j] = state.params[r * d + j] - mean[j];
        }
      }
      const diff = state.grad.map((g, i) => g - full[i]);
      return {
        stochastic: denseBlockMoments(state.grad, state.runs, blocks, state.runBlock),
        full: wantFull ? denseBlockMoments(full, state.runs, blocks, state.runBlock) : undefined,
        difference: wantFull ? denseBlockMoments(diff, state.runs, blocks, state.runBlock) : undefined,
      };
    },
    scalars(state) {
      const loss = new Float64Array(state.runs);
      for (let r = 0; r < state.runs; r++) {
        let s = 0;
        for (let i = 0; i < o.points; i++) for (let j = 0; j < d; j++) s += (state.params[r * d + j] - x[i * d + j]) ** 2;
        loss[r] = s / (2 * o.points);
      }
      return { loss };
    },
  };
}

export function toySampler(n: number): SamplerFactory<ToyBatch> {
  return {
    id: 'toy-without-replacement',
    create(shard, seed) {
      const perm = new Int32Array(shard.runCount * n);
      for (let r = 0; r < shard.runCount; r++) for (let i = 0; i < n; i++) perm[r * n + i] = i;
      const rng = new PackedStreams(Array.from({ length: shard.runCount }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, shard.batchSize, shard.runStart + r]));
      return {
        next() {
          for (let r = 0; r < shard.runCount; r++) rng.partialShuffle(r, perm, r * n, n, shard.batchSize);
          return { perm, n, b: shard.batchSize };
        },
      };
    },
  };
}

const configSchema: JSONSchemaType<ToyOptions> = {
  type: 'object',
  properties: {
    points: { type: 'integer', minimum: 2, default: 40, description: 'Number of points.' },
    dim: { type: 'integer', minimum: 1, default: 3, description: 'Dimension.' },
  },
  required: [],
  additionalProperties: false,
};

export default definePlugin<ToyOptions>({
  name: 'toy-mean',
  description: 'Mean estimation by SGD (core test fixture)',
  configSchema,
  metrics: ['grad_variance', 'full_grad_variance', 'loss'],
  presets: {
    smoke: { seed: 1, batchSizes: [2, 8], steps: 10, runs: 200, initPoints: 1, learningRate: { type: 'constant', value: 0.3 } },
  },
  register(container, study) {
    const x = toyPoints(study.seed, study.options);
    container.register(Tokens.Model, { useValue: toyModel(x, study.options) });
    container.register(Tokens.SamplerFactory, { useValue: toySampler(study.options.points) });
    container.register(Tokens.Optimizer, { useValue: denseSgd });
    container.register(Tokens.Claim, {
      useValue: decreasingInBatchSize({ id: 'toy-decreasing', statement: 'Var(g_t) decreases in b', paperRef: '-', metric: 'grad_variance', layers: ['all'] }),
    });
  },
});
