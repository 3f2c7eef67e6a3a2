/**
 * The MLP 784 -> h1 -> ... -> 10 with ReLU and softmax cross-entropy, as a replica program with
 * hand-written backpropagation (2-D products without transpose flags, so the wasm fast path
 * applies), and its epoch-based sampler: every run reshuffles the training set at every epoch
 * from its own stream.
 */
import * as tf from '@tensorflow/tfjs-core';
import { epochRows, epochSchedule, stepsPerEpoch, whenAll, type EpochSchedule, type MaybePromise, type GradientReport, type Model, type NextStep, type ParamBlock, type RandomStream, type Sampler, type SamplerFactory, type ShardSchedule, type ShardSpec, type StudyConfig } from '@sgd-lab/core';
import { MLP_STEP, ReplicaEngine, dense, gatherRows, matMulT, reluBackward, rowGather, type ReplicaProgram, type StepInput, type StepOutput, type TensorReplicaState } from '@sgd-lab/tensor';
import { CLASSES, PIXELS, oneHot, type ImageSet } from './data.js';

/** Blocks W1, b1, W2, b2, ...: W_k is (in x out), b_k is (1 x out). */
export function mlpBlocks(widths: readonly number[]) {
  return widths.slice(1).flatMap((out, k) => [
    { name: `W${k + 1}`, shape: [widths[k], out] as [number, number] },
    { name: `b${k + 1}`, shape: [1, out] as [number, number] },
  ]);
}

/** Like PyTorch's nn.Linear default: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function initMlp(rng: RandomStream, widths: readonly number[]): Float64Array {
  const blocks = mlpBlocks(widths);
  const out = new Float64Array(blocks.reduce((s, b) => s + b.shape[0] * b.shape[1], 0));
  let o = 0;
  blocks.forEach((b, i) => {
    const bound = 1 / Math.sqrt(widths[i >> 1]);
    for (let j = 0; j < b.shape[0] * b.shape[1]; j++) out[o++] = (2 * rng.nextDouble() - 1) * bound;
  });
  return out;
}

/** The forward pass; keeps each layer's input, which backpropagation needs. */
function forward(params: readonly tf.Tensor[], x: tf.Tensor) {
  const layers = params.length / 2;
  const acts: tf.Tensor[] = [x];
  let h = x;
  for (let k = 0; k < layers; k++) {
    const last = k === layers - 1;
    h = dense(h, params[2 * k], params[2 * k + 1], last ? 'linear' : 'relu');
    if (!last) acts.push(h);
  }
  return { logits: h, acts };
}

/** Mean cross-entropy of logits against one-hot rows, per replica. */
function crossEntropy(logits: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.mean(tf.sum(tf.mul(y, logp), -1), -1));
}

/** Broadcasts a shared 2-D input to the chunk size of stacked parameters. */
function match(x: tf.Tensor, params: readonly tf.Tensor[]): tf.Tensor {
  return params[0].rank === 3 && x.rank === 2 ? tf.tile(tf.expandDims(x, 0), [params[0].shape[0], 1, 1]) : x;
}

/** Whether the native fused step is registered and not turned off (SGD_LAB_FUSED_STEP=0: the composed ops, for comparison). */
function fusedStep(): boolean {
  return process.env.SGD_LAB_FUSED_STEP !== '0' && tf.getKernel(MLP_STEP, tf.getBackend()) !== undefined;
}

export function mlpProgram(widths: readonly number[]): ReplicaProgram {
  const blocks = mlpBlocks(widths);
  return {
    blocks,
    takesRows: true,
    step(params, [given, y], _wantFull, context) {
      if (params[0].rank === 3 && fusedStep()) {
        // native, stacked: the whole step in one addon call, a replica at a time on each thread
        // (the same products; forward to last weight gradient in that core's cache), with the
        // engine's run-block moments and, told the SGD step that follows, that step too. Given
        // the images as table rows, each thread gathers its replica's rows itself.
        const table = given.dtype === 'int32' ? context?.tables?.[0] : undefined;
        if (given.dtype === 'int32' && !table) throw new Error('mlp step: row indices came without their table');
        const inputs: tf.NamedTensorMap = table ? { x: table, y, rows: given } : { x: given, y };
        for (let k = 0; k < params.length / 2; k++) {
          inputs[`w${k}`] = params[2 * k];
          inputs[`b${k}`] = params[2 * k + 1];
        }
        const runBlock = context?.runBlock;
        const sgd = runBlock !== undefined ? context?.sgd : undefined;
        const attrs = { widths: [...widths], ...(runBlock !== undefined ? { runBlock } : {}), ...(sgd !== undefined ? { sgd } : {}) };
        const out = tf.engine().runKernel(MLP_STEP, inputs, attrs) as tf.Tensor[];
        const n = params.length;
        const parameters = out.slice(0, n);
        const result: StepOutput = sgd !== undefined ? { grads: [], next: parameters, loss: out[n] } : { grads: parameters, loss: out[n] };
        if (runBlock !== undefined) result.moments = { grads: params.map((_, i) => ({ deviations: out[n + 1 + 2 * i], meanSquares: out[n + 2 + 2 * i] })) };
        return result;
      }
      const x = gatherRows(given, context?.tables?.[0]);
      const b = x.shape[x.rank - 2];
      const { logits, acts } = forward(params, x);
      const layers = params.length / 2;
      const grads = new Array<tf.Tensor>(params.length);
      // d loss / d logits for the mean cross-entropy.
      let delta = tf.div(tf.sub(tf.softmax(logits), y), b);
      for (let k = layers - 1; k >= 0; k--) {
        grads[2 * k] = matMulT(acts[k], delta, true, false);
        grads[2 * k + 1] = tf.sum(delta, -2, true);
        // acts[k] = relu(z_{k-1}) is positive exactly where z_{k-1} is.
        if (k > 0) delta = reluBackward(matMulT(delta, params[2 * k], false, true), acts[k]);
      }
      return { grads, loss: crossEntropy(logits, y) };
    },
    evaluate(params, [x, y]) {
      const xs = match(x, params);
      const ys = match(y, params);
      const { logits } = forward(params, xs);
      const correct = tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(ys, -1)), 'float32');
      return { loss: crossEntropy(logits, ys), error: tf.sub(1, tf.mean(correct, -1)) };
    },
  };
}

/** Bytes one replica needs during a step at batch size b (float32). */
/**
 * Bytes of the largest tensor one replica has (a weight block or its gradient, or the activations
 * of a training batch or of an evaluation call of `evalRows` rows): a stacked tensor holds a
 * chunk's worth, which WebGPU binds whole.
 */
export function mlpLargestTensorPerReplica(widths: readonly number[], b: number, evalRows = 1000): number {
  return 4 * Math.max(...mlpBlocks(widths).map((blk) => blk.shape[0] * blk.shape[1]), Math.max(b, evalRows) * Math.max(...widths));
}

export function mlpBytesPerReplica(widths: readonly number[], b: number): number {
  const params = mlpBlocks(widths).reduce((s, x) => s + x.shape[0] * x.shape[1], 0);
  const acts = widths.reduce((s, w) => s + w, 0) * b;
  return 4 * (4 * params + 4 * acts);
}

/** A mini-batch of every run: images [R * b * 784] and one-hot labels [R * b * 10]. */
export interface ImageBatch {
  x: Float32Array;
  y: Float32Array;
  b: number;
  /**
   * Where the batch came from, when it was drawn from a table: run r's images are the table rows
   * at rows[r b .. (r + 1) b) (images [n * 784]). A fused step on native gathers them itself.
   */
  rows?: Int32Array;
  images?: Float32Array;
}

export { stepsPerEpoch };

/**
 * Epoch-based sampling (core's epochRows): run r reshuffles the n training rows at every epoch
 * start from its stream keyed by (seed, batch, initPoint, b, r) and takes consecutive batches.
 */
export function epochSampler(train: ImageSet): SamplerFactory<ImageBatch> {
  const labels = oneHot(train.labels);
  const table = { count: train.count, columns: [{ data: train.images, width: PIXELS }, { data: labels, width: CLASSES }] };
  return {
    id: 'epoch-shuffle',
    create(shard: ShardSpec, seed: number): Sampler<ImageBatch> {
      const draw = epochRows(table, shard, seed, { gather: rowGather() });
      return {
        next(t) {
          const rows = draw.rows(t);
          const y = draw.gather(1, rows);
          // The images are copied out only when read: a fused step gathers them from the rows.
          let x: Float32Array | undefined;
          return {
            get x() {
              return (x ??= draw.gather(0, rows));
            },
            y,
            b: shard.batchSize,
            rows,
            images: train.images,
          };
        },
      };
    },
  };
}

/**
 * The engine's inputs for a batch: the images as table rows where the fused step on native
 * gathers each replica's rows itself (stacked), else the gathered images; the one-hot labels.
 */
export function mlpInputs(batch: ImageBatch, engine: ReplicaEngine): StepInput[] {
  const images: StepInput =
    batch.rows && batch.images && engine.options.strategy === 'stacked' && fusedStep()
      ? { table: batch.images, rows: batch.rows, shape: [batch.b, PIXELS] }
      : { data: batch.x, shape: [batch.b, PIXELS] };
  return [images, { data: batch.y, shape: [batch.b, CLASSES] }];
}

/** What the model evaluates at epoch boundaries. */
export interface EvaluationSets {
  train: ImageSet;
  validation: ImageSet;
  /** The distorted validation images, for the accuracy gap. */
  distorted?: ImageSet;
  /** Evaluate every this many epochs. */
  every: number;
  /** Accuracy gap every this many epochs, from `gapFrom`. */
  gapEvery: number;
  gapFrom: number;
}

const asInputs = (s: ImageSet) => [
  { data: s.images, shape: [s.count, PIXELS] as [number, number] },
  { data: oneHot(s.labels), shape: [s.count, CLASSES] as [number, number] },
];

export class MlpModel implements Model<TensorReplicaState, ImageBatch> {
  readonly id = 'mlp';
  readonly blocks: readonly ParamBlock[];
  private readonly inputs: { train: ReturnType<typeof asInputs>; validation: ReturnType<typeof asInputs>; distorted?: ReturnType<typeof asInputs> };
  /** The grids of the shard being run (set by replicate). */
  private current?: EpochSchedule;

  constructor(
    readonly widths: readonly number[],
    readonly engine: ReplicaEngine,
    private readonly trainingRows: number,
    private readonly evalSets: EvaluationSets,
    /** The study's batch sizes and length: the equal-steps grid depends on the largest b. */
    private readonly study: Pick<StudyConfig, 'batchSizes' | 'epochs' | 'steps'>,
  ) {
    this.blocks = engine.program.blocks.map((b) => ({ name: b.name, size: b.shape[0] * b.shape[1] }));
    this.inputs = {
      train: asInputs(evalSets.train),
      validation: asInputs(evalSets.validation),
      distorted: evalSets.distorted && asInputs(evalSets.distorted),
    };
  }

  schedule(shard: ShardSpec, study: StudyConfig): ShardSchedule {
    return epochSchedule(this.trainingRows, shard, study, this.evalSets.every);
  }

  initialParameters(rng: RandomStream): Float64Array {
    return initMlp(rng, this.widths);
  }

  replicate(theta0: Float64Array, shard: ShardSpec): TensorReplicaState {
    this.current = epochSchedule(this.trainingRows, shard, this.study, 1);
    return this.engine.replicate(theta0, shard.runCount);
  }

  gradients(state: TensorReplicaState, batch: ImageBatch, wantFull: boolean, next?: NextStep): MaybePromise<GradientReport> {
    void wantFull; // the full training-set gradient is not part of this setting's metrics
    return this.engine.gradients(state, mlpInputs(batch, this.engine), false, next);
  }

  scalars(state: TensorReplicaState, t: number): MaybePromise<Record<string, Float64Array>> {
    // The gap every gapEvery epochs from gapFrom, on both grids: this b's epochs (equal epochs)
    // and reference epochs (equal steps).
    const { gapEvery, gapFrom } = this.evalSets;
    const grid = this.current!;
    const onGrid = (len: number) => t % len === 0 && t / len >= gapFrom && (t / len) % gapEvery === 0;
    const distorted = this.inputs.distorted && (onGrid(grid.epochLength) || onGrid(grid.referenceLength)) ? this.inputs.distorted : undefined;
    return whenAll(
      [this.engine.evaluate(state, this.inputs.train), this.engine.evaluate(state, this.inputs.validation), distorted ? this.engine.evaluate(state, distorted) : undefined] as const,
      ([train, val, test]) => {
        const out: Record<string, Float64Array> = {
          'loss@train': train.loss,
          'error@train': train.error,
          'loss@validation': val.loss,
          'error@validation': val.error,
        };
        // Accuracy gap = (1 - train error) - (1 - distorted test error).
        if (test) out.accuracy_gap = test.error.map((e, r) => e - train.error[r]);
        return out;
      },
    );
  }

  dispose(state: TensorReplicaState): void {
    this.engine.dispose(state);
  }
}
