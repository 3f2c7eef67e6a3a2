/** Helpers for models whose replicas live in run-major Float64Arrays. */
import { runBlockStats, type RunBlockStats } from '../stats/across-runs.js';
import type { BlockMoments, DenseReplicaState, Optimizer, ParamBlock } from './contracts.js';

/**
 * Run-block statistics of a run-major matrix in total and, for several parameter blocks, per
 * block; `runBlock` is the shard's (`shard.runBlock`).
 */
export function denseBlockMoments(data: Float64Array, runs: number, blocks: readonly ParamBlock[], runBlock: number): BlockMoments {
  const dim = blocks.reduce((s, b) => s + b.size, 0);
  const all = runBlockStats(data, runs, runBlock, dim);
  if (blocks.length === 1) return { all };
  const per: Record<string, RunBlockStats[]> = {};
  let col = 0;
  for (const b of blocks) {
    per[b.name] = runBlockStats(data, runs, runBlock, dim, col, b.size);
    col += b.size;
  }
  return { all, blocks: per };
}

/** Plain SGD on dense replicas: w <- w - alpha g. */
export const denseSgd: Optimizer<DenseReplicaState> = {
  id: 'sgd',
  step(state, lr) {
    const { params, grad } = state;
    for (let i = 0; i < params.length; i++) params[i] -= lr * grad[i];
  },
};
