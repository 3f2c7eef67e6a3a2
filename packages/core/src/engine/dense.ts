/** Helpers for models whose replicas live in run-major Float64Arrays. */
import { runMoments } from '../stats/across-runs.js';
import type { BlockMoments, DenseReplicaState, Optimizer, ParamBlock } from './contracts.js';

/** Moments of a run-major matrix in total and, for several blocks, per block. */
export function denseBlockMoments(data: Float64Array, runs: number, blocks: readonly ParamBlock[]): BlockMoments {
  const dim = blocks.reduce((s, b) => s + b.size, 0);
  const all = runMoments(data, runs, dim);
  if (blocks.length === 1) return { all };
  const per: Record<string, ReturnType<typeof runMoments>> = {};
  let col = 0;
  for (const b of blocks) {
    per[b.name] = runMoments(data, runs, dim, col, b.size);
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
