/**
 * One shard: R' runs of one (b, initial point), stepped together from θ0, reduced each recorded
 * step to the within-block statistics of its run blocks. A shard's result depends on the study, the
 * shard's run range and nothing else, so it can be computed anywhere (this process, a worker, an
 * earlier process whose result was stored) and merged with the others (engine/merge.ts).
 */
import { createHash } from 'node:crypto';
import type { DependencyContainer } from 'tsyringe';
import { learningRateAt, type StudyConfig } from '../config/study-config.js';
import { CancelledError, DivergenceError } from '../errors.js';
import { RandomStream, StreamPurpose } from '../random/stream.js';
import { scalarBlockStats, type RunBlockStats } from '../stats/across-runs.js';
import { Tokens } from '../tokens.js';
import type { BlockMoments, GradientReport, Model, Optimizer, Oracle, SamplerFactory, ShardSchedule, ShardSpec } from './contracts.js';
import { denseSgd } from './dense.js';
import { isPending } from './maybe.js';

/** Per-step statistics of a range of runs: one entry per run block, in run order. */
export interface StepStats {
  grad?: BlockMoments;
  full?: BlockMoments;
  difference?: BlockMoments;
  /** `metric` or `metric@split` -> run blocks. */
  scalars: Record<string, RunBlockStats[]>;
}

/** What a finished shard leaves: its per-step block statistics. */
export interface ShardResult {
  epochLength?: number;
  steps: [number, StepStats][];
}

/** Identity of a shard within a study (also its job id and file name stem). */
export const shardKey = (s: Pick<ShardSpec, 'batchSize' | 'initPoint' | 'runStart' | 'runCount'>) => `${s.batchSize}|${s.initPoint}|${s.runStart}|${s.runCount}`;

/** What an oracle-only study needs of a model: θ0. */
type InitOnly = Pick<Model, 'initialParameters'>;

/** The components a study's shards run with, resolved once from the plugin's container. */
export interface ShardContext {
  study: StudyConfig;
  model?: Model;
  optimizer: Optimizer;
  samplers?: SamplerFactory;
  oracles: Oracle[];
  /** θ0 of an initial point (drawn once, then cached). */
  theta0(initPoint: number): Float64Array;
}

export function shardContext(container: DependencyContainer, study: StudyConfig): ShardContext {
  const model = container.isRegistered(Tokens.Model, true) ? container.resolve<Model>(Tokens.Model) : undefined;
  const initModel = model ?? container.resolve<InitOnly>(Tokens.Initializer);
  const thetas = new Map<number, Float64Array>();
  return {
    study,
    model,
    optimizer: container.isRegistered(Tokens.Optimizer, true) ? container.resolve<Optimizer>(Tokens.Optimizer) : (denseSgd as Optimizer),
    samplers: model ? container.resolve<SamplerFactory>(Tokens.SamplerFactory) : undefined,
    oracles: container.isRegistered(Tokens.Oracle, true) ? container.resolveAll<Oracle>(Tokens.Oracle) : [],
    theta0(initPoint) {
      let t = thetas.get(initPoint);
      if (!t) thetas.set(initPoint, (t = initModel.initialParameters(new RandomStream([study.seed, StreamPurpose.init, initPoint]), initPoint)));
      return t;
    },
  };
}

export function hashTheta(theta: Float64Array): string {
  return createHash('sha256').update(Buffer.from(theta.buffer, theta.byteOffset, theta.byteLength)).digest('hex');
}

/** The schedule of a shard: the model's, or `study.steps` steps with scalars at recorded steps. */
export function scheduleOf(ctx: Pick<ShardContext, 'model' | 'study'>, shard: ShardSpec): ShardSchedule {
  return ctx.model?.schedule?.(shard, ctx.study) ?? { steps: ctx.study.steps ?? 0 };
}

export interface RunShardOptions {
  signal?: AbortSignal;
  /** Every recorded step's statistics as soon as they exist (for live records). */
  onStep?(t: number, stats: StepStats): void;
  /** Called about every `yieldEveryMs`; the shard then yields to the event loop. */
  onProgress?(step: number, steps: number): void;
  /** @default 50 */
  yieldEveryMs?: number;
}

/** Runs one shard's replicas step by step and returns its statistics. */
export async function runShard(ctx: ShardContext, shard: ShardSpec, o: RunShardOptions = {}): Promise<ShardResult> {
  const { study } = ctx;
  const m = ctx.model;
  if (!m || !ctx.samplers) throw new Error(`setting ${study.setting} has no model: it has no shards to run`);
  const schedule = scheduleOf(ctx, shard);
  const steps = schedule.steps;
  const recorded = (t: number) => t % study.recordEvery === 0 || t === steps - 1;
  const evaluate = (t: number) => (schedule.evaluateAt ? schedule.evaluateAt(t) : recorded(t) || t === steps);
  const state = m.replicate(ctx.theta0(shard.initPoint), shard);
  const sampler = ctx.samplers.create(shard, study.seed);
  const result: ShardResult = { epochLength: schedule.epochLength, steps: [] };
  const yieldEvery = o.yieldEveryMs ?? 50;
  let initialLoss: number | undefined;
  let lastYield = performance.now();
  try {
    for (let t = 0; t <= steps; t++) {
      if (o.signal?.aborted) throw new CancelledError();
      const record = t < steps && recorded(t);
      // Gradients first: a model may compute the loss in the same pass and reuse it.
      let report: GradientReport | undefined;
      const lr = t < steps ? learningRateAt(study.learningRate, t, shard.batchSize) : 0;
      if (t < steps) {
        // A plain SGD step may be taken in the gradient pass; it is installed by the optimizer below.
        const r = m.gradients(state, sampler.next(t), record, ctx.optimizer.plainSgd ? { sgd: lr } : undefined);
        report = isPending(r) ? await r : r;
      }
      let scalars: Record<string, Float64Array> | undefined;
      if (evaluate(t)) {
        const s = m.scalars(state, t);
        scalars = isPending(s) ? await s : s;
      }
      const loss = scalars?.loss ?? scalars?.['loss@train'];
      if (loss) {
        // Every run starts at θ0: the first evaluated loss is the reference of the bound.
        if (initialLoss === undefined) initialLoss = Math.max(...loss.map((v) => Math.abs(v)), Number.MIN_VALUE);
        const bound = study.divergenceFactor * initialLoss;
        for (let r = 0; r < loss.length; r++) {
          if (!Number.isFinite(loss[r]) || loss[r] > bound) {
            throw new DivergenceError(
              `run ${shard.runStart + r} diverged at step ${t} (b = ${shard.batchSize}, initial point ${shard.initPoint}): ` +
                `loss is ${loss[r]}${Number.isFinite(loss[r]) ? `, above /divergenceFactor (${study.divergenceFactor}) x the initial loss ${initialLoss.toPrecision(4)}` : ''}; ` +
                `lower /learningRate. Records up to step ${t - 1} were written.`,
            );
          }
        }
      }
      if (record || scalars) {
        const stats: StepStats = {
          grad: record ? report?.stochastic : undefined,
          full: record ? report?.full : undefined,
          difference: record ? report?.difference : undefined,
          scalars: Object.fromEntries(Object.entries(scalars ?? {}).map(([k, v]) => [k, scalarBlockStats(v, shard.runBlock)])),
        };
        result.steps.push([t, stats]);
        o.onStep?.(t, stats);
      }
      if (t < steps) ctx.optimizer.step(state, lr, t);
      if (performance.now() - lastYield > yieldEvery) {
        o.onProgress?.(t, steps);
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  } finally {
    m.dispose?.(state);
  }
  return result;
}
