/**
 * The component contracts. A setting provides a Model, a Sampler factory and usually an Oracle and
 * Claims; the core provides Optimizers for dense states. Components are resolved from the study's
 * child DI container by the tokens in `tokens.ts`.
 */
import type { RandomStream } from '../random/stream.js';
import type { RunBlockStats } from '../stats/across-runs.js';
import type { StudyConfig } from '../config/study-config.js';
import type { ClaimResult, MetricRecord } from './records.js';
import type { RecordIndex } from './record-index.js';
import type { MaybePromise } from './maybe.js';

/** A named slice of the flat parameter vector. */
export interface ParamBlock {
  name: string;
  size: number;
}

/** One unit of work: R' runs of one (batch size, initial point). */
export interface ShardSpec {
  batchSize: number;
  initPoint: number;
  /** First run index (global across shards, so streams do not depend on sharding). */
  runStart: number;
  runCount: number;
  steps: number;
  /**
   * Runs per run block (`study.runBlock`): models reduce each block of this many consecutive runs
   * on its own. `runStart` is a multiple of it, and so is `runCount` except for the study's last
   * runs.
   */
  runBlock: number;
}

/**
 * Across-run statistics of one quantity, in total and per parameter block: one entry per run block
 * of the shard, in run order (see `runBlockStats`, `denseBlockMoments`).
 */
export interface BlockMoments {
  all: RunBlockStats[];
  /** Per parameter block, keyed by block name; omitted for single-block models. */
  blocks?: Record<string, RunBlockStats[]>;
}

/** What a model reports about the gradients of one step. */
export interface GradientReport {
  /** The mini-batch (stochastic) gradient g_t. */
  stochastic: BlockMoments;
  /** The full (population or training-set) gradient grad L(w_t). */
  full?: BlockMoments;
  /** g_t - grad L(w_t) per run, for the unbiasedness check. */
  difference?: BlockMoments;
}

/** How a shard's steps are laid out, for epoch-based settings. */
export interface ShardSchedule {
  /** Total SGD steps of the shard. */
  steps: number;
  /** Steps per epoch; records then carry `epoch`. */
  epochLength?: number;
  /** Whether scalars (losses, errors) are evaluated before step t (t = steps: at the end). */
  evaluateAt?(t: number): boolean;
}

/** What a model can say about its cost before running, for `sgd-lab plan` (each field optional). */
export interface ModelCost {
  /** Floating-point operations of one SGD step of one replica (mini-batch gradient and update). */
  flopsPerStep?: number;
  /** Floating-point operations of one evaluation of the scalars (losses, errors) of one replica. */
  flopsPerEvaluation?: number;
  /** Bytes one replica takes in a batched computation (parameters, activations, gradients). */
  bytesPerReplica?: number;
  /** Replicas computed together (the chunk the memory budget allows). */
  replicasPerChunk?: number;
}

/**
 * A model run as R replicas side by side. `S` is the replica state (parameters and gradient
 * buffers of all runs), `B` a mini-batch for all runs.
 */
export interface Model<S = unknown, B = unknown> {
  readonly id: string;
  /** Parameter blocks in order; several blocks give per-layer records. */
  readonly blocks: readonly ParamBlock[];
  /** Rows of a finite training set, for index samplers from other packages; absent for online data. */
  readonly rows?: number;
  /** θ0; drawn from a stream keyed by (seed, initPoint) only, so it is the same for every b. */
  initialParameters(rng: RandomStream, initPoint: number): Float64Array;
  /** R replicas at θ0. */
  replicate(theta0: Float64Array, shard: ShardSpec): S;
  /**
   * Computes the per-run stochastic gradients for `batch` (kept in the state for the optimizer).
   * A Promise where the backend reads asynchronously (WebGPU); the engine awaits it before the
   * optimizer's step, and a plain value costs no await. `next`, when the loop knows it, is the
   * optimizer step that follows: a model may compute its result in the same pass (keeping the
   * current parameters until the step installs it) and need not keep the gradients.
   */
  gradients(state: S, batch: B, wantFull: boolean, next?: NextStep): MaybePromise<GradientReport>;
  /**
   * Per-run scalar metrics at the current parameters, named by metric (at least `loss`); a name
   * `metric@split` gives the record that split (`loss@train`, `error@validation`). `t` is the step.
   * A Promise where the backend reads asynchronously, like `gradients`.
   */
  scalars(state: S, t: number): MaybePromise<Record<string, Float64Array>>;
  /** Steps and epochs of a shard; default: `study.steps` steps, scalars at recorded steps. */
  schedule?(shard: ShardSpec, study: StudyConfig): ShardSchedule;
  dispose?(state: S): void;
  /** Its cost at mini-batch size b, for planning; absent: the plan times it and says no more. */
  cost?(batchSize: number): ModelCost;
}

/** Produces the mini-batches of one shard; the stream of run r depends on (seed, initPoint, b, r) only. */
export interface Sampler<B = unknown> {
  next(step: number): B;
}

export interface SamplerFactory<B = unknown> {
  readonly id: string;
  /**
   * C_b with Cov(g_t | w_t) = C_b Sigma(w_t), Sigma the per-sample gradient covariance:
   * (n - b) / (b (n - 1)) without replacement from n rows, 1 / b with replacement or online. With it
   * and a full gradient, records include the gradient noise scale `noise_scale` (docs/noise-scale.md).
   */
  samplingFactor?(batchSize: number): number;
  create(shard: ShardSpec, seed: number): Sampler<B>;
}

/** Updates every replica from the gradients stored in the state. */
export interface Optimizer<S = unknown> {
  readonly id: string;
  /**
   * True when `step(state, lr)` is exactly plain SGD, W <- W - lr g, and accepts the result of a
   * gradient pass that was told it in advance (`NextStep.sgd`): the loops then pass the rate to
   * `Model.gradients`.
   */
  readonly plainSgd?: boolean;
  step(state: S, learningRate: number, step: number): void;
}

/** What the loop will do right after `Model.gradients`, for models that can fold it into the pass. */
export interface NextStep {
  /**
   * Plain SGD with this learning rate (the optimizer is `plainSgd`). The parameters must stay as
   * they are until the optimizer's step: scalars evaluated in between see W_t.
   */
  sgd?: number;
}

/** Computes exact curves (no Monte Carlo) for one initial point. */
export interface Oracle {
  readonly id: string;
  compute(study: StudyConfig, initPoint: number, theta0: Float64Array): Iterable<MetricRecord>;
}

/** Derives records from the records of a finished study (fitted curves, summaries). */
export interface Analysis {
  readonly id: string;
  analyze(records: RecordIndex, study: StudyConfig): Iterable<MetricRecord>;
}

/** A claim of the paper checked on the records of a study. */
export interface Claim {
  readonly id: string;
  evaluate(records: RecordIndex, study: StudyConfig): ClaimResult[];
}

/** The dense replica state core's optimizers understand: row r of `params`/`grad` is run r. */
export interface DenseReplicaState {
  runs: number;
  /** The shard's run-block size (`shard.runBlock`), for `denseBlockMoments`. */
  runBlock: number;
  dim: number;
  params: Float64Array;
  grad: Float64Array;
}

/** Gives a model its cost for planning (`sgd-lab plan`); returns the same object. */
export function withCost<M extends Model>(model: M, cost: (batchSize: number) => ModelCost): M {
  return Object.assign(model, { cost });
}
