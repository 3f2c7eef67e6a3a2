/**
 * The encoder's step on native as a short program of fused kernels, forward and backward written
 * out by hand (no autodiff tape): per layer the products stay batched matMuls over the replicas,
 * and everything between them is one kernel each, with its own backward kernel: the whole
 * relative-position attention from the projections (content, position and segment terms with
 * their biases, relative shift, mask, softmax and the product with the values, every head, in
 * token-major layout so no head is ever transposed), the residual sum with layer norm (the
 * feed-forward's output bias folded in), bias and GELU, and the embedding gradient as a
 * scatter-add. The two-way head's softmax cross-entropy is computed on the host in double (a [C, B, 2]
 * array). Elsewhere (wasm, cpu, webgpu), and with SGD_LAB_FUSED_STEP=0, the model composes
 * TensorFlow.js ops and differentiates them with tf.grads (model.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADD_LAYER_NORM, BIAS_GELU, BIAS_GELU_GRAD, LAYER_NORM_GRAD, REL_ATTENTION_BLOCK, REL_ATTENTION_BLOCK_GRAD, SCATTER_ADD_ROWS } from '@sgd-lab/tensor';
import { PAD } from './tokenizer.js';
import { LN_EPS, type XlnetConstants, type XlnetSize } from './model.js';

const KERNELS = [ADD_LAYER_NORM, BIAS_GELU, BIAS_GELU_GRAD, LAYER_NORM_GRAD, REL_ATTENTION_BLOCK, REL_ATTENTION_BLOCK_GRAD, SCATTER_ADD_ROWS];

/** Whether the fused kernels are registered on the active backend and not turned off (SGD_LAB_FUSED_STEP=0). */
export function fusedXlnet(): boolean {
  const backend = tf.getBackend();
  return process.env.SGD_LAB_FUSED_STEP !== '0' && KERNELS.every((k) => tf.getKernel(k, backend) !== undefined);
}

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];

/** Parameters per layer, in xlnetBlocks' order, and where the first layer's start. */
const PER_LAYER = 17;
const FIRST_LAYER = 2;

/** What a layer's backward pass needs from its forward pass. */
interface LayerActivations {
  /** The layer's input [C, B L, d]. */
  h: tf.Tensor;
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  /** The relative encodings' projection [C, 2L, d]. */
  kr: tf.Tensor;
  /** Attention probabilities [C B, H, L, L]. */
  prob: tf.Tensor;
  /** prob V, heads side by side [C, B L, d]. */
  av: tf.Tensor;
  h1: tf.Tensor;
  xhat1: tf.Tensor;
  rstd1: tf.Tensor;
  /** The first feed-forward product (before its bias) and the GELU's output. */
  f1: tf.Tensor;
  hidden: tf.Tensor;
  xhat2: tf.Tensor;
  rstd2: tf.Tensor;
}

interface Forward {
  C: number;
  B: number;
  logits: tf.Tensor;
  /** Every replica's own embedding row for every token, [C B L] int32 (rows of the joined tables). */
  rows: tf.Tensor;
  layers: LayerActivations[];
  /** The <cls> token's hidden state [C, B, d] and the summary tanh(last Ws + bs) [C, B, d]. */
  last: tf.Tensor;
  summary: tf.Tensor;
}

/**
 * The embedding rows and the key mask of a batch: x [C, B, L] (each replica its own batch) or
 * [B, L] (one batch for every replica) of token ids, float-coded. Rows are those of the C joined
 * embedding tables; padding keys get -1e30 before the softmax. Host arithmetic on the ids, which
 * are small and read once.
 */
function tokens(x: tf.Tensor, C: number, s: XlnetSize): { rows: tf.Tensor; mask: tf.Tensor; B: number } {
  const L = s.length;
  if (x.shape[x.rank - 1] !== L || (x.rank === 3 && x.shape[0] !== C) || (x.rank !== 2 && x.rank !== 3)) {
    throw new Error(`xlnet: expected token ids [${C}, b, ${L}] or [b, ${L}], got [${x.shape}]`);
  }
  const B = x.shape[x.rank - 2];
  const ids = x.dataSync();
  const shared = x.rank === 2;
  const rows = new Int32Array(C * B * L);
  const mask = new Float32Array(C * B * L);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < B * L; i++) {
      const id = ids[shared ? i : c * B * L + i];
      if (!(Number.isInteger(id) && id >= 0 && id < s.vocab)) {
        const where = `${shared ? '' : `replica ${c}, `}sequence ${Math.floor(i / L)}, position ${i % L}`;
        throw new Error(`xlnet: token id ${id} (${where}) is not in the vocabulary [0, ${s.vocab})`);
      }
      rows[c * B * L + i] = c * s.vocab + id;
      mask[c * B * L + i] = id === PAD ? -1e30 : 0;
    }
  }
  return { rows: tf.tensor1d(rows, 'int32'), mask: tf.tensor2d(mask, [C * B, L]), B };
}

/** Stacked parameters [C, m, n] (2-D blocks of one replica: C = 1). */
function stackedParams(params: readonly tf.Tensor[]): tf.Tensor[] {
  return params[0].rank === 3 ? [...params] : params.map((p) => tf.reshape(p, [1, ...p.shape]));
}

function forward(s: XlnetSize, c: XlnetConstants, params: readonly tf.Tensor[], x: tf.Tensor): Forward {
  const C = params[0].shape[0];
  const L = s.length;
  const d = s.dModel;
  const { rows, mask, B } = tokens(x, C, s);
  const scale = 1 / Math.sqrt(d / s.heads);
  const pos = tf.reshape(c.pos, [1, 2 * L, d]);
  let h = tf.reshape(tf.gather(tf.reshape(params[0], [C * s.vocab, d]), rows), [C, B * L, d]);
  const layers: LayerActivations[] = [];
  for (let l = 0; l < s.layers; l++) {
    const [wq, wk, wv, wo, wr, rw, rr, rs, segEmbed, g1, b1, w1, c1, w2, c2, g2, b2] = params.slice(FIRST_LAYER + PER_LAYER * l, FIRST_LAYER + PER_LAYER * (l + 1));
    const q = tf.matMul(h, wq);
    const k = tf.matMul(h, wk);
    const v = tf.matMul(h, wv);
    const kr = tf.matMul(pos, wr);
    const [av, prob] = run(REL_ATTENTION_BLOCK, { q, k, v, kr, segEmbed, rw, rr, rs, seg: c.seg, mask }, { heads: s.heads, scale }) as tf.Tensor[];
    const [h1, xhat1, rstd1] = run(ADD_LAYER_NORM, { a: tf.matMul(av, wo), b: h, gamma: g1, beta: b1 }, { epsilon: LN_EPS }) as tf.Tensor[];
    const f1 = tf.matMul(h1, w1);
    const hidden = run(BIAS_GELU, { x: f1, bias: c1 }) as tf.Tensor;
    const [h2, xhat2, rstd2] = run(ADD_LAYER_NORM, { a: tf.matMul(hidden, w2), bias: c2, b: h1, gamma: g2, beta: b2 }, { epsilon: LN_EPS }) as tf.Tensor[];
    layers.push({ h, q, k, v, kr, prob, av, h1, xhat1, rstd1, f1, hidden, xhat2, rstd2 });
    h = h2;
  }
  const n = params.length;
  const last = tf.reshape(tf.slice(tf.reshape(h, [C * B, L, d]), [0, L - 1, 0], [C * B, 1, d]), [C, B, d]);
  const summary = tf.tanh(tf.fused.matMul({ a: last, b: params[n - 4], bias: params[n - 3] }));
  const logits = tf.fused.matMul({ a: summary, b: params[n - 2], bias: params[n - 1] });
  return { C, B, logits, rows, layers, last, summary };
}

/**
 * Logits for token ids at the parameters of one replica ([b, L] ids, [b, 2] logits) or of a chunk
 * of C replicas stacked on a leading run axis (ids [C, b, L] or [b, L] shared: [C, b, 2]).
 */
export function fusedLogits(s: XlnetSize, c: XlnetConstants, params: readonly tf.Tensor[], x: tf.Tensor): tf.Tensor {
  const { logits } = forward(s, c, stackedParams(params), x);
  return params[0].rank === 3 ? logits : tf.reshape(logits, logits.shape.slice(1));
}

/**
 * The mean softmax cross-entropy per replica of logits [C, B, 2] against one-hot labels, in double,
 * and its gradient (softmax - y) / B as float32.
 */
function crossEntropyAndGradient(logits: Float32Array | Int32Array | Uint8Array, labels: Float32Array | Int32Array | Uint8Array, C: number, B: number, K: number): { loss: Float32Array; grad: Float32Array } {
  const loss = new Float32Array(C);
  const grad = new Float32Array(C * B * K);
  const e = new Float64Array(K);
  for (let c = 0; c < C; c++) {
    let total = 0;
    for (let i = 0; i < B; i++) {
      const o = (c * B + i) * K;
      let top = -Infinity;
      for (let j = 0; j < K; j++) top = Math.max(top, logits[o + j]);
      let sum = 0;
      for (let j = 0; j < K; j++) sum += e[j] = Math.exp(logits[o + j] - top);
      const logSum = Math.log(sum);
      for (let j = 0; j < K; j++) {
        total -= labels[o + j] * (logits[o + j] - top - logSum);
        grad[o + j] = (e[j] / sum - labels[o + j]) / B;
      }
    }
    loss[c] = total / B;
  }
  return { loss, grad };
}

/**
 * The loss and the gradient of every parameter block, per replica, for one replica's 2-D blocks
 * ([b, L] ids, [b, 2] labels; a scalar loss) or a chunk of C stacked replicas ([C, b, L], [C, b, 2];
 * a loss per replica [C]), each replica's gradient its own.
 */
export function fusedStep(s: XlnetSize, c: XlnetConstants, params: readonly tf.Tensor[], x: tf.Tensor, y: tf.Tensor): { grads: tf.Tensor[]; loss: tf.Tensor } {
  const stacked = params[0].rank === 3;
  const ps = stackedParams(params);
  const f = forward(s, c, ps, x);
  const { C, B } = f;
  const L = s.length;
  const d = s.dModel;
  const K = f.logits.shape[2] as number;
  if (y.size !== C * B * K) throw new Error(`xlnet: expected labels [${stacked ? `${C}, ` : ''}${B}, ${K}], got [${y.shape}]`);
  const { loss, grad } = crossEntropyAndGradient(f.logits.dataSync(), y.dataSync(), C, B, K);
  const n = ps.length;
  const grads: tf.Tensor[] = new Array<tf.Tensor>(n);
  // The head: logits = summary Wl + bl, summary = tanh(last Ws + bs).
  const dLogits = tf.tensor3d(grad, [C, B, K]);
  grads[n - 2] = tf.matMul(f.summary, dLogits, true, false);
  grads[n - 1] = tf.sum(dLogits, 1, true);
  const dz = tf.mul(tf.matMul(dLogits, ps[n - 2], false, true), tf.sub(1, tf.square(f.summary)));
  grads[n - 4] = tf.matMul(f.last, dz, true, false);
  grads[n - 3] = tf.sum(dz, 1, true);
  // Only the last token's hidden state reaches the head.
  let dh = tf.reshape(tf.pad(tf.reshape(tf.matMul(dz, ps[n - 4], false, true), [C * B, 1, d]), [[0, 0], [L - 1, 0], [0, 0]]), [C, B * L, d]);
  const scale = 1 / Math.sqrt(d / s.heads);
  const pos = tf.reshape(c.pos, [1, 2 * L, d]);
  for (let l = s.layers - 1; l >= 0; l--) {
    const at = FIRST_LAYER + PER_LAYER * l;
    const [wq, wk, wv, wo, , rw, rr, rs, segEmbed, g1, , w1, c1, w2, , g2] = ps.slice(at, at + PER_LAYER);
    const a = f.layers[l];
    // The feed-forward sublayer: h2 = LN((hidden W2 + c2) + h1), hidden = gelu(h1 W1 + c1).
    const [dx2, dg2, db2, dc2] = run(LAYER_NORM_GRAD, { dy: dh, xhat: a.xhat2, rstd: a.rstd2, gamma: g2 }, { withBias: true }) as tf.Tensor[];
    const [df1, dc1] = run(BIAS_GELU_GRAD, { dy: tf.matMul(dx2, w2, false, true), x: a.f1, bias: c1 }) as tf.Tensor[];
    grads[at + 11] = tf.matMul(a.h1, df1, true, false);
    grads[at + 12] = dc1;
    grads[at + 13] = tf.matMul(a.hidden, dx2, true, false);
    grads[at + 14] = dc2;
    grads[at + 15] = dg2;
    grads[at + 16] = db2;
    // The attention sublayer: h1 = LN(av Wo + h).
    const [dx1, dg1, db1] = run(LAYER_NORM_GRAD, { dy: tf.add(dx2, tf.matMul(df1, w1, false, true)), xhat: a.xhat1, rstd: a.rstd1, gamma: g1 }, { withBias: false }) as tf.Tensor[];
    grads[at + 3] = tf.matMul(a.av, dx1, true, false);
    grads[at + 9] = dg1;
    grads[at + 10] = db1;
    const [dq, dk, dv, dkr, dSeg, drw, drr, drs] = run(
      REL_ATTENTION_BLOCK_GRAD,
      { dout: tf.matMul(dx1, wo, false, true), q: a.q, k: a.k, v: a.v, kr: a.kr, segEmbed, rw, rr, rs, seg: c.seg, prob: a.prob },
      { heads: s.heads, scale },
    ) as tf.Tensor[];
    grads[at] = tf.matMul(a.h, dq, true, false);
    grads[at + 1] = tf.matMul(a.h, dk, true, false);
    grads[at + 2] = tf.matMul(a.h, dv, true, false);
    grads[at + 4] = tf.matMul(pos, dkr, true, false);
    [grads[at + 5], grads[at + 6], grads[at + 7], grads[at + 8]] = [drw, drr, drs, dSeg];
    // The layer's input feeds the residual and the three projections.
    dh = tf.add(tf.add(tf.add(dx1, tf.matMul(dq, wq, false, true)), tf.matMul(dk, wk, false, true)), tf.matMul(dv, wv, false, true));
  }
  // Embeddings: each replica's table rows summed over the tokens that look them up.
  grads[0] = tf.reshape(run(SCATTER_ADD_ROWS, { x: tf.reshape(dh, [C * B * L, d]), indices: f.rows }, { rows: C * s.vocab }) as tf.Tensor, ps[0].shape);
  // mask_emb takes no part in classification.
  grads[1] = tf.zeros(ps[1].shape);
  return stacked
    ? { grads, loss: tf.tensor1d(loss) }
    : { grads: grads.map((g, k) => tf.reshape(g, params[k].shape)), loss: tf.scalar(loss[0]) };
}
