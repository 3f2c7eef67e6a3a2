/**
 * The encoder layer's element-wise pieces as single native kernels with their own backward
 * passes (tf.customGrad), where the backend registers them (native): XLNet's attention
 * probabilities from the content, position and segment terms (relative shift, mask and softmax
 * included), the residual sum with layer norm (the feed-forward's output bias folded in), bias and
 * GELU, and the embedding gradient as a scatter-add. The products stay batched matMuls. Elsewhere
 * (wasm, cpu, webgpu), and with SGD_LAB_FUSED_STEP=0, the model composes TensorFlow.js ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADD_LAYER_NORM, BIAS_GELU, BIAS_GELU_GRAD, LAYER_NORM_GRAD, REL_ATTENTION, REL_ATTENTION_GRAD, SCATTER_ADD_ROWS } from '@sgd-lab/tensor';

type Grad = Parameters<typeof tf.customGrad>[0];
const KERNELS = [ADD_LAYER_NORM, BIAS_GELU, BIAS_GELU_GRAD, LAYER_NORM_GRAD, REL_ATTENTION, REL_ATTENTION_GRAD, SCATTER_ADD_ROWS];

/** Whether the fused kernels are registered on the active backend and not turned off (SGD_LAB_FUSED_STEP=0). */
export function fusedXlnet(): boolean {
  const backend = tf.getBackend();
  return process.env.SGD_LAB_FUSED_STEP !== '0' && KERNELS.every((k) => tf.getKernel(k, backend) !== undefined);
}

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];

/** gelu(x + bias); x [G?, rows, n], bias a row per replica [G?, 1, n]. */
export const biasGelu = tf.customGrad(((x: tf.Tensor, bias: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, bias]);
  return {
    value: run(BIAS_GELU, { x, bias }) as tf.Tensor,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], [xs, bs]: tf.Tensor[]) => run(BIAS_GELU_GRAD, { dy: dy as tf.Tensor, x: xs, bias: bs }) as tf.Tensor[],
  };
}) as unknown as Grad) as unknown as (x: tf.Tensor, bias: tf.Tensor) => tf.Tensor;

/** The layer norm of a + b (the residual sum), eps the layer norm's epsilon. */
export function addLayerNorm(eps: number) {
  return tf.customGrad(((a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, xhat, rstd] = run(ADD_LAYER_NORM, { a, b, gamma, beta }, { epsilon: eps }) as tf.Tensor[];
    save([xhat, rstd, gamma]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], [h, r, g]: tf.Tensor[]) => {
        const [dx, dg, db] = run(LAYER_NORM_GRAD, { dy: dy as tf.Tensor, xhat: h, rstd: r, gamma: g }, { withBias: false }) as tf.Tensor[];
        // a and b get the same gradient: a second handle on it, so backprop may dispose each.
        return [dx, tf.clone(dx), dg, db];
      },
    };
  }) as unknown as Grad) as unknown as (a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
}

/** The layer norm of (a + bias) + b: the feed-forward's output, its bias and the residual. */
export function addBiasLayerNorm(eps: number) {
  return tf.customGrad(((a: tf.Tensor, bias: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, xhat, rstd] = run(ADD_LAYER_NORM, { a, b, bias, gamma, beta }, { epsilon: eps }) as tf.Tensor[];
    save([xhat, rstd, gamma]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], [h, r, g]: tf.Tensor[]) => {
        const [dx, dg, db, dc] = run(LAYER_NORM_GRAD, { dy: dy as tf.Tensor, xhat: h, rstd: r, gamma: g }, { withBias: true }) as tf.Tensor[];
        return [dx, dc, tf.clone(dx), dg, db];
      },
    };
  }) as unknown as Grad) as unknown as (a: tf.Tensor, bias: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
}

/**
 * XLNet's attention probabilities [N, H, L, L] from the content term ac [N, H, L, L], the position
 * term against the 2L relative positions bd [N, H, L, 2L] (shifted inside) and the segment term ef
 * [N, H, L, 2], with the segment difference seg [L, L] and the additive key mask [N, L] (constants
 * of the step: no gradient).
 */
export function relAttention(seg: tf.Tensor, mask: tf.Tensor, scale: number) {
  return tf.customGrad(((ac: tf.Tensor, bd: tf.Tensor, ef: tf.Tensor, save: tf.GradSaveFunc) => {
    const prob = run(REL_ATTENTION, { ac, bd, ef, seg, mask }, { scale }) as tf.Tensor;
    save([prob]);
    return {
      value: prob,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], [p]: tf.Tensor[]) => run(REL_ATTENTION_GRAD, { dprob: dy as tf.Tensor, prob: p, seg }, { scale }) as tf.Tensor[],
    };
  }) as unknown as Grad) as unknown as (ac: tf.Tensor, bd: tf.Tensor, ef: tf.Tensor) => tf.Tensor;
}

/** The gradient of an embedding table [rows, d] from that of its looked-up rows dy [k, d] at ids [k]. */
export function scatterAddRows(dy: tf.Tensor, ids: tf.Tensor, rows: number): tf.Tensor {
  return run(SCATTER_ADD_ROWS, { x: tf.reshape(dy, [ids.size, -1]), indices: ids }, { rows }) as tf.Tensor;
}
