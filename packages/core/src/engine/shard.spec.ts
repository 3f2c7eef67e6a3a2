import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { learningRateAt } from '../config/study-config.js';
import { resolveStudy } from '../config/validate.js';
import toy from '../testing/toy-plugin.js';
import type { GradientReport, Model, NextStep, Optimizer } from './contracts.js';
import { runShard, type ShardContext } from './shard.js';

/** A model that records what the loop tells its gradient pass, and an optimizer that records its steps. */
function recordingContext(plainSgd: boolean) {
  const study = resolveStudy({ setting: 'toy-mean', preset: 'smoke', steps: 6, learningRate: { type: 'inverse-time', alpha0: 0.5, offset: 2 } }, toy, 'test');
  const told: (NextStep | undefined)[] = [];
  const stepped: number[] = [];
  const empty = { all: [], blocks: [] } as unknown as GradientReport['stochastic'];
  const model: Model<null, null> = {
    id: 'recording',
    blocks: [{ name: 'w', size: 1 }],
    initialParameters: () => new Float64Array(1),
    replicate: () => null,
    gradients(_state, _batch, _wantFull, next) {
      told.push(next);
      return { stochastic: empty };
    },
    scalars: () => ({ loss: new Float64Array([1, 1]) }),
  };
  const optimizer: Optimizer<null> = { id: 'recording', plainSgd, step: (_state, lr) => void stepped.push(lr) };
  const ctx: ShardContext = {
    study,
    model: model as Model,
    optimizer: optimizer as Optimizer,
    samplers: { id: 'none', samplingFactor: () => 1, create: () => ({ next: () => null }) } as unknown as ShardContext['samplers'],
    oracles: [],
    theta0: () => new Float64Array(1),
  };
  return { study, ctx, told, stepped };
}

describe('runShard and the step after the gradients', () => {
  it('tells the gradient pass the rate of a plain SGD step that follows, the one the optimizer then takes', async () => {
    const { study, ctx, told, stepped } = recordingContext(true);
    await runShard(ctx, { batchSize: 4, initPoint: 0, runStart: 0, runCount: 2, steps: 6, runBlock: 2 });
    const rates = Array.from({ length: 6 }, (_, t) => learningRateAt(study.learningRate, t, 4));
    expect(stepped).toEqual(rates);
    expect(told).toEqual(rates.map((sgd) => ({ sgd })));
    // The rate decays: each step is told its own.
    expect(new Set(rates).size).toBe(6);
  });

  it('tells it nothing when the optimizer is not plain SGD', async () => {
    const { ctx, told, stepped } = recordingContext(false);
    await runShard(ctx, { batchSize: 4, initPoint: 0, runStart: 0, runCount: 2, steps: 6, runBlock: 2 });
    expect(stepped).toHaveLength(6);
    expect(told).toEqual(Array(6).fill(undefined));
  });
});
