/**
 * The deep linear teacher-student network f(x) = W_d ... W_1 x with x ~ N(0, I) drawn fresh at
 * every step (online SGD), population loss L(W) = 1/2 ||W_d ... W_1 - M*||_F^2 with M* the
 * teacher's product, and its exact gradient as the full gradient.
 *
 * Per replica the step works with the product rather than through the batch: with
 * S_b = X^T X / b and Delta = W_d ... W_1 - M*, the layer-k gradient is
 * (W_d ... W_{k+1})^T Delta S_b (W_{k-1} ... W_1)^T, and the full gradient the same with I for S_b.
 */
import * as tf from '@tensorflow/tfjs-core';
import { PackedStreams, RandomStream, StreamPurpose, andThen, type MaybePromise, type GradientReport, type Model, type NextStep, type ParamBlock, type Sampler, type SamplerFactory, type ShardSpec } from '@sgd-lab/core';
import { DEEP_LINEAR_STEP, ReplicaEngine, matMulT, normalFill, sumSquaresLast2, type ReplicaProgram, type StepOutput, type TensorReplicaState } from '@sgd-lab/tensor';

/** The mini-batches of all runs of a shard for one step: run r's [b, p] block at r*b*p. */
export interface GaussianBatch {
  x: Float32Array;
  b: number;
  p: number;
}

/** Sizes and scales of the network. */
export interface DeepLinearSpec {
  /** [input, hidden..., output]. */
  widths: number[];
  /** Teacher entries ~ N(0, teacherScale^2 / fan_in). */
  teacherScale: number;
  /** Student entries ~ N(0, studentScale^2 / fan_in). */
  studentScale: number;
}

/** Layer k (0-based) maps widths[k] -> widths[k+1]: a widths[k+1] x widths[k] matrix. */
export function layerShapes(widths: readonly number[]): [number, number][] {
  return widths.slice(1).map((out, k) => [out, widths[k]]);
}

/** Draws the layers of a network, flat in layer order, entries N(0, scale^2 / fan_in). */
export function drawLayers(rng: RandomStream, widths: readonly number[], scale: number): Float64Array {
  const shapes = layerShapes(widths);
  const out = new Float64Array(shapes.reduce((s, [r, c]) => s + r * c, 0));
  let o = 0;
  for (const [rows, cols] of shapes) {
    const std = scale / Math.sqrt(cols);
    for (let i = 0; i < rows * cols; i++) out[o++] = std * rng.nextNormal();
  }
  return out;
}

/** Row-major float64 matrix product (rows x inner) (inner x cols). */
export function matmul64(a: Float64Array, b: Float64Array, rows: number, inner: number, cols: number): Float64Array {
  const c = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < inner; k++) {
      const v = a[i * inner + k];
      if (v === 0) continue;
      for (let j = 0; j < cols; j++) c[i * cols + j] += v * b[k * cols + j];
    }
  return c;
}

/** The product W_d ... W_1 of flat layers, o x p, in float64. */
export function product(flat: Float64Array, widths: readonly number[]): Float64Array {
  const shapes = layerShapes(widths);
  let o = 0;
  let acc: Float64Array | undefined;
  for (const [rows, cols] of shapes) {
    const w = flat.subarray(o, o + rows * cols);
    o += rows * cols;
    acc = acc ? matmul64(w, acc, rows, cols, widths[0]) : Float64Array.from(w);
  }
  return acc!;
}

/** Whether the native fused step is registered and not turned off (SGD_LAB_FUSED_STEP=0: the composed ops, for comparison). */
function fusedStep(): boolean {
  return process.env.SGD_LAB_FUSED_STEP !== '0' && tf.getKernel(DEEP_LINEAR_STEP, tf.getBackend()) !== undefined;
}

/**
 * The step of one replica (2-D) or of a chunk ([C, ...]), rank-polymorphic. With Q_k = W_k ... W_1,
 * Delta = Q_d - M* and E = Delta S_b (S_b = X^T X / b), the stochastic gradient of layer k is
 * (W_d ... W_{k+1})^T E Q_{k-1}^T; the full gradient is the same with Delta for E.
 */
export function deepLinearProgram(widths: readonly number[], teacherT: tf.Tensor2D): ReplicaProgram {
  const shapes = layerShapes(widths);
  const d = shapes.length;
  const blocks = shapes.map((shape, k) => ({ name: `W${k + 1}`, shape }));
  const teacher = tf.keep(tf.transpose(teacherT));
  /** Q_1 .. Q_d and Delta = Q_d - M*. */
  const forward = (params: readonly tf.Tensor[]) => {
    const q: tf.Tensor[] = [params[0]];
    for (let k = 1; k < d; k++) q.push(tf.matMul(params[k], q[k - 1]));
    return { q, delta: tf.sub(q[d - 1], teacher) };
  };
  /** Layer gradients for a left factor E (o x p). */
  const layerGrads = (e: tf.Tensor, params: readonly tf.Tensor[], q: tf.Tensor[]) => {
    const grads = new Array<tf.Tensor>(d);
    let g = e;
    for (let k = d - 1; k >= 0; k--) {
      grads[k] = k === 0 ? g : matMulT(g, q[k - 1], false, true);
      if (k > 0) g = matMulT(params[k], g, true, false);
    }
    return grads;
  };
  return {
    blocks,
    step(params, [x], wantFull, context) {
      if (x.rank === 3 && fusedStep()) {
        // native, stacked: the whole step in one addon call (the same products, a replica at a
        // time in cache, E and Delta side by side in the backward products), and with the full
        // gradients the engine's run-block moments too, each run block's right after it; told the
        // SGD step that follows, that as well (the gradients then stay in the addon's scratch).
        const inputs: tf.NamedTensorMap = { x, teacher };
        params.forEach((w, k) => (inputs[`w${k}`] = w));
        const runBlock = wantFull ? context?.runBlock : undefined;
        const sgd = runBlock !== undefined ? context?.sgd : undefined;
        const attrs = { widths: [...widths], wantFull, ...(runBlock !== undefined ? { runBlock } : {}), ...(sgd !== undefined ? { sgd } : {}) };
        const out = tf.engine().runKernel(DEEP_LINEAR_STEP, inputs, attrs) as tf.Tensor[];
        const nOut = sgd !== undefined ? d : wantFull ? 2 * d : d;
        const result: StepOutput =
          sgd !== undefined
            ? { grads: [], next: out.slice(0, d), loss: out[nOut] }
            : { grads: out.slice(0, d), full: wantFull ? out.slice(d, 2 * d) : undefined, loss: out[nOut] };
        if (runBlock !== undefined) {
          // Per layer: g's (deviations, mean squares), full's, the difference's.
          const of = (which: number) => Array.from({ length: d }, (_, k) => ({ deviations: out[nOut + 1 + 6 * k + 2 * which], meanSquares: out[nOut + 2 + 6 * k + 2 * which] }));
          result.moments = { grads: of(0), full: of(1), difference: of(2) };
        }
        return result;
      }
      const { q, delta } = forward(params);
      const b = x.shape[x.rank - 2];
      const s = tf.div(matMulT(x, x, true, false), b);
      const e = tf.matMul(delta, s);
      return {
        grads: layerGrads(e, params, q),
        full: wantFull ? layerGrads(delta, params, q) : undefined,
        loss: tf.mul(sumSquaresLast2(delta), 0.5),
      };
    },
    loss(params) {
      return tf.mul(sumSquaresLast2(forward(params).delta), 0.5);
    },
  };
}

/** Bytes one replica needs during a step (parameters, gradients, products, batch), float32. */
export function bytesPerReplica(widths: readonly number[], b: number): number {
  const params = layerShapes(widths).reduce((s, [r, c]) => s + r * c, 0);
  const p = widths[0];
  const o = widths[widths.length - 1];
  const maxPrefix = widths.reduce((s, w) => s + p * w, 0);
  return 4 * (params * 6 + maxPrefix * 2 + b * p + p * p + 4 * o * p);
}

/**
 * Bytes of the largest tensor one replica has in a step (weights and their gradients, the batch,
 * S_b, the prefix products): a stacked tensor holds a chunk's worth, which WebGPU binds whole.
 */
export function largestTensorPerReplica(widths: readonly number[], b: number): number {
  const p = widths[0];
  return 4 * Math.max(...layerShapes(widths).map(([r, c]) => r * c), b * p, p * p, ...widths.map((w) => p * w));
}

export class DeepLinearModel implements Model<TensorReplicaState, GaussianBatch> {
  readonly id = 'deep-linear';
  readonly blocks: readonly ParamBlock[];

  constructor(
    readonly spec: DeepLinearSpec,
    readonly engine: ReplicaEngine,
  ) {
    this.blocks = engine.program.blocks.map((b) => ({ name: b.name, size: b.shape[0] * b.shape[1] }));
  }

  initialParameters(rng: RandomStream): Float64Array {
    return drawLayers(rng, this.spec.widths, this.spec.studentScale);
  }

  replicate(theta0: Float64Array, shard: ShardSpec): TensorReplicaState {
    return this.engine.replicate(theta0, shard.runCount);
  }

  gradients(state: TensorReplicaState, batch: GaussianBatch, wantFull: boolean, next?: NextStep): MaybePromise<GradientReport> {
    return this.engine.gradients(state, [{ data: batch.x, shape: [batch.b, batch.p] }], wantFull, next);
  }

  scalars(state: TensorReplicaState): MaybePromise<Record<string, Float64Array>> {
    return andThen(this.engine.losses(state), (loss) => ({ loss }));
  }

  dispose(state: TensorReplicaState): void {
    this.engine.dispose(state);
  }
}

/** Fresh x ~ N(0, I_p) for every run and step; run r's stream is keyed by (seed, batch, initPoint, b, r). */
export function gaussianSampler(p: number): SamplerFactory<GaussianBatch> {
  return {
    id: 'gaussian-online',
    // Fresh i.i.d. samples: the mean of b has covariance Sigma / b.
    samplingFactor: (b) => 1 / b,
    create(shard: ShardSpec, seed: number): Sampler<GaussianBatch> {
      const streams = new PackedStreams(Array.from({ length: shard.runCount }, (_, r) => [seed, StreamPurpose.batch, shard.initPoint, shard.batchSize, shard.runStart + r]));
      const len = shard.batchSize * p;
      const batch: GaussianBatch = { x: new Float32Array(shard.runCount * len), b: shard.batchSize, p };
      // In the native addon where it is built (every stream on its threads, the same bits).
      const fill = normalFill();
      return {
        next() {
          streams.fillNormals(batch.x, len, 1, fill);
          return batch;
        },
      };
    },
  };
}
