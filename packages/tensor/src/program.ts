/**
 * A replica program: one SGD step of a model written once with rank-polymorphic TensorFlow.js
 * ops, so the engine can run it per replica on 2-D tensors or on a whole chunk of replicas with
 * the run axis leading ([C, ...] tensors), whichever the backend runs faster. Rules for authors:
 * products with transposes through `matMulT` (flags where the backend's kernel takes them for
 * free, explicit transposes on wasm, whose flagged products are slow), reductions over negative
 * axes, shared tensors (a teacher) broadcast from their own rank.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MUL_STEP, NATIVE } from '@sgd-lab/native';

/** Shape of one parameter block of one replica. */
export interface BlockShape {
  name: string;
  shape: [number, number];
}

/** What one step computes for one replica (2-D blocks) or a chunk of replicas ([C, ...]). */
export interface StepOutput {
  /** Stochastic gradient per block (empty when the step returns `next` instead). */
  grads: tf.Tensor[];
  /**
   * Optional, stacked only, when `StepContext.sgd` asked for it: the parameters after the SGD step
   * W - sgd g per block, computed in the same pass (the gradients then need not be returned; the
   * step must return `moments` with them).
   */
  next?: tf.Tensor[];
  /** Full (population) gradient per block, when asked for. */
  full?: tf.Tensor[];
  /** Loss at the current parameters: a scalar per replica (shape [] or [C]). */
  loss: tf.Tensor;
  /**
   * Optional, stacked only: the run-block moments the engine would otherwise compute (in run
   * blocks of `StepContext.runBlock`), per parameter block, of the stochastic gradients and, with
   * `full`, of the full ones and of their difference. A fused step computes them while its
   * gradients are in cache. The engine takes them when they are complete or when `next` is given.
   */
  moments?: { grads: RunBlockMoments[]; full?: RunBlockMoments[]; difference?: RunBlockMoments[] };
}

/** A parameter block's run-block moments over a chunk of C runs in B run blocks. */
export interface RunBlockMoments {
  /** [C]: each run's squared distance from its run block's mean (double sums). */
  deviations: tf.Tensor;
  /** [B]: each run block's squared mean norm. */
  meanSquares: tf.Tensor;
}

/** What the engine tells a step beyond its inputs. */
export interface StepContext {
  /** Runs per run block of the engine's moments (the last block of a chunk may be shorter). */
  runBlock: number;
  /**
   * The learning rate of the plain SGD step that follows these gradients, when the engine knows
   * it: a step may then return `next` (W - sgd g) instead of the gradients.
   */
  sgd?: number;
  /**
   * Per input, its table when the input came as `TableRowsInput` to a program that `takesRows`:
   * that input is then the [C, b] int32 row indices into this [n, width] table.
   */
  tables?: (tf.Tensor2D | undefined)[];
}

export interface ReplicaProgram {
  readonly blocks: readonly BlockShape[];
  /**
   * Whether a stacked step takes a `TableRowsInput` as its row indices (with the table in
   * `StepContext.tables`) and gathers the rows itself; otherwise the engine gathers them first.
   */
  readonly takesRows?: boolean;
  /**
   * Gradients at `params` for the mini-batch `inputs` (each [b, k], or [C, b, k] stacked). Called
   * inside tf.tidy: return new tensors, never the inputs.
   */
  step(params: readonly tf.Tensor[], inputs: readonly tf.Tensor[], wantFull: boolean, context?: StepContext): StepOutput;
  /** Loss at `params` without a batch (population losses); settings without one omit it. */
  loss?(params: readonly tf.Tensor[]): tf.Tensor;
  /**
   * Scalars per replica on inputs shared by every replica (an evaluation set): e.g. loss and error.
   * Values are scalars (per-replica call) or [C] (stacked).
   */
  evaluate?(params: readonly tf.Tensor[], inputs: readonly tf.Tensor[]): Record<string, tf.Tensor>;
}

/** A per-run input: run r's [rows, cols] block starts at r * rows * cols. */
export interface ReplicaInput {
  data: Float32Array;
  shape: [number, number];
}

/**
 * A per-run input given as rows of a shared table, not copied out: run r's [b, width] block
 * (`shape`) is the table's rows at indices rows[r b .. (r + 1) b). A stacked program that
 * `takesRows` gets the indices and the table; any other program gets the rows gathered.
 */
export interface TableRowsInput {
  /** [n, width], row-major. */
  table: Float32Array;
  /** [runs * b] row indices, run-major. */
  rows: Int32Array;
  shape: [number, number];
}

/** What a step's inputs may be given as. */
export type StepInput = ReplicaInput | TableRowsInput;

/** Row r of a stacked step's [C, b] int32 row-index input, gathered from its table: [C, b, width]. */
export function gatherRows(x: tf.Tensor, table: tf.Tensor2D | undefined): tf.Tensor {
  if (x.dtype !== 'int32') return x;
  if (!table) throw new Error('an int32 row-index input came without its table (StepContext.tables)');
  return tf.gather(table, x);
}

/** Transposes the last two axes of a tensor of rank 2 or more. */
export function swapLast(x: tf.Tensor): tf.Tensor {
  if (x.rank === 2) return tf.transpose(x);
  const perm = [...Array(x.rank).keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

/**
 * op(a) op(b) with op a transpose of the last two axes where asked. On wasm, transpose flags and
 * rank-3 products leave XNNPACK's fast path, so the transposes are made explicitly there; native
 * (OpenBLAS) and the other backends take the flags, which cost nothing.
 */
export function matMulT(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if ((transposeA || transposeB) && tf.getBackend() === 'wasm') {
    return tf.matMul(transposeA ? swapLast(a) : a, transposeB ? swapLast(b) : b);
  }
  return tf.matMul(a, b, transposeA, transposeB);
}

/** Sum of squares over the last two axes: a scalar per replica. */
export function sumSquaresLast2(x: tf.Tensor): tf.Tensor {
  return tf.sum(tf.square(x), [-2, -1]);
}

/**
 * act(x W + bias), with `bias` broadcast over the rows ([1, n] per replica, [C, 1, n] stacked).
 * On native it is one kernel (the bias and the activation applied to each product while it is in
 * cache); elsewhere the composed ops (wasm's fused kernel takes only 1-D biases).
 */
export function dense(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, activation: 'relu' | 'linear'): tf.Tensor {
  if (tf.getBackend() === NATIVE) return tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias, activation });
  const z = tf.add(tf.matMul(x, w), bias);
  return activation === 'relu' ? tf.relu(z) : z;
}

/**
 * dy * step(y): the gradient through a ReLU given its output y (y > 0 exactly where the input
 * was). One pass on backends with the fused kernel (native), two elsewhere.
 */
export function reluBackward(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (tf.getKernel(MUL_STEP, tf.getBackend()) !== undefined) return tf.engine().runKernel(MUL_STEP, { a: dy, b: y }, {}) as tf.Tensor;
  return tf.mul(dy, tf.step(y));
}
