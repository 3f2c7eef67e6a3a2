/**
 * An XLNet-style encoder classifier on TensorFlow.js (Yang et al. 2019; the two-stream query
 * stream and memory are pre-training machinery and are left out): word embeddings; per layer,
 * relative positional multi-head attention on the content stream (content bias r_w_bias,
 * position bias r_r_bias with sinusoidal relative encodings and the relative shift, segment bias
 * r_s_bias with XLNet's relative segment encoding, padding masked before the softmax), residual and
 * layer norm, then a GELU feed-forward with residual and layer norm; the sequence summary of the
 * last token (<cls>) through a tanh projection; a 2-way head. Post-norm, no dropout, as in
 * XLNet's fine-tuning graph with dropout off (the runs then differ by their mini-batches only).
 *
 * The step is a ReplicaProgram for both of the engine's strategies (one replica on 2-D blocks,
 * or a chunk of replicas stacked on a leading run axis); gradients come from TensorFlow.js's
 * autodiff (tf.grads) of the composed ops below, or on native from the fused kernels' program
 * with its backward pass written out (fused.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import type { RandomStream } from '@sgd-lab/core';
import { matMulT, type BlockShape, type KernelStrategy, type ReplicaProgram } from '@sgd-lab/tensor';
import { PAD } from './tokenizer.js';
import { fusedLogits, fusedStep, fusedXlnet } from './fused.js';

// The step differentiates with tf.grads, so every op's gradient must be registered. tfjs-core's
// Node build has none; the union package's Node build registers them all on the same (global)
// engine. Its other parts (layers, converter, data) are loaded and left unused.
createRequire(import.meta.url)('@tensorflow/tfjs');

export interface XlnetSize {
  vocab: number;
  layers: number;
  dModel: number;
  heads: number;
  inner: number;
  /** Tokens per example (text, <sep>, <cls>, left padding). */
  length: number;
}

export const CLASSES = 2;
/** XLNet's layer-norm epsilon and initializer range. */
export const LN_EPS = 1e-12;
const INIT_STD = 0.02;

/** The parameter blocks, in the order the engine keeps them. Attention weights are [d, heads * dHead]. */
export function xlnetBlocks(s: XlnetSize): BlockShape[] {
  const d = s.dModel;
  const blocks: BlockShape[] = [
    { name: 'word_embedding', shape: [s.vocab, d] },
    { name: 'mask_emb', shape: [1, d] },
  ];
  for (let l = 1; l <= s.layers; l++) {
    const p = `layer${l}.`;
    blocks.push(
      { name: `${p}q`, shape: [d, d] },
      { name: `${p}k`, shape: [d, d] },
      { name: `${p}v`, shape: [d, d] },
      { name: `${p}o`, shape: [d, d] },
      { name: `${p}r`, shape: [d, d] },
      { name: `${p}r_w_bias`, shape: [1, d] },
      { name: `${p}r_r_bias`, shape: [1, d] },
      { name: `${p}r_s_bias`, shape: [1, d] },
      { name: `${p}seg_embed`, shape: [2, d] },
      { name: `${p}attn_ln.gamma`, shape: [1, d] },
      { name: `${p}attn_ln.beta`, shape: [1, d] },
      { name: `${p}ff1.weight`, shape: [d, s.inner] },
      { name: `${p}ff1.bias`, shape: [1, s.inner] },
      { name: `${p}ff2.weight`, shape: [s.inner, d] },
      { name: `${p}ff2.bias`, shape: [1, d] },
      { name: `${p}ff_ln.gamma`, shape: [1, d] },
      { name: `${p}ff_ln.beta`, shape: [1, d] },
    );
  }
  blocks.push(
    { name: 'summary.weight', shape: [d, d] },
    { name: 'summary.bias', shape: [1, d] },
    { name: 'logits.weight', shape: [d, CLASSES] },
    { name: 'logits.bias', shape: [1, CLASSES] },
  );
  return blocks;
}

/** Parameters of the classifier (the layout of Hugging Face's XLNetForSequenceClassification). */
export function parameterCount(s: XlnetSize): number {
  return xlnetBlocks(s).reduce((n, b) => n + b.shape[0] * b.shape[1], 0);
}

/** Whether decoupled weight decay applies to a block: weight matrices and embeddings only. */
export function decays(name: string): boolean {
  return !/(bias|gamma|beta|seg_embed|mask_emb)$/.test(name);
}

/** XLNet's initialisation: N(0, 0.02) for weights, embeddings and attention biases; LN at (1, 0); zero biases. */
export function initXlnet(rng: RandomStream, s: XlnetSize): Float64Array {
  const blocks = xlnetBlocks(s);
  const out = new Float64Array(parameterCount(s));
  let o = 0;
  for (const b of blocks) {
    const n = b.shape[0] * b.shape[1];
    if (b.name.endsWith('gamma')) out.fill(1, o, o + n);
    else if (b.name.endsWith('.bias') || b.name.endsWith('beta')) out.fill(0, o, o + n);
    else for (let i = 0; i < n; i++) out[o + i] = INIT_STD * rng.nextNormal();
    o += n;
  }
  return out;
}

/** Sinusoidal encodings of the relative distances L, L-1, ..., 1-L (XLNet's bidirectional pos_seq). */
export function relativePositions(length: number, d: number): Float32Array {
  const out = new Float32Array(2 * length * d);
  const half = d / 2;
  for (let i = 0; i < 2 * length; i++) {
    const pos = length - i;
    for (let j = 0; j < half; j++) {
      const angle = pos / 10000 ** ((2 * j) / d);
      out[i * d + j] = Math.sin(angle);
      out[i * d + half + j] = Math.cos(angle);
    }
  }
  return out;
}

/** 1 where exactly one of positions i, j is the last one (<cls>, XLNet's own segment), else 0. */
export function segmentDifference(length: number): Float32Array {
  const out = new Float32Array(length * length);
  for (let i = 0; i < length; i++) for (let j = 0; j < length; j++) out[i * length + j] = Number(i === length - 1) ^ Number(j === length - 1);
  return out;
}

/**
 * XLNet's relative shift: scores against the 2L relative positions [B, H, L, 2L] become scores
 * against the L key positions [B, H, L, L] (query i, key j reads distance i - j).
 */
export function relShift(x: tf.Tensor4D, klen: number): tf.Tensor4D {
  const [b, h, q, p] = x.shape;
  const y = tf.reshape(x, [b, h, p, q]);
  const cut = tf.slice(y, [0, 0, 1, 0], [b, h, p - 1, q]);
  const back = tf.reshape(cut, [b, h, q, p - 1]);
  return tf.slice(back, [0, 0, 0, 0], [b, h, q, klen]) as tf.Tensor4D;
}

/**
 * Embedding lookup whose gradient is a scatter-add (scatterND sums repeated ids) rather than
 * gather's UnsortedSegmentSum, which the wasm backend lacks and the cpu one runs slowly.
 */
const embed = tf.customGrad(((table: tf.Tensor, ids: tf.Tensor, save: tf.GradSaveFunc) => {
  save([ids]);
  return {
    value: tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [idx] = saved;
      return [tf.scatterND(tf.reshape(idx, [-1, 1]), dy as tf.Tensor, table.shape), tf.zerosLike(idx)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (table: tf.Tensor, ids: tf.Tensor) => tf.Tensor;

function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, LN_EPS))), gamma), beta);
}

function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export interface XlnetConstants {
  /** [2L, d] relative position encodings. */
  pos: tf.Tensor2D;
  /** [L, L] segment difference. */
  seg: tf.Tensor2D;
}

export function xlnetConstants(s: XlnetSize): XlnetConstants {
  return {
    pos: tf.keep(tf.tensor2d(relativePositions(s.length, s.dModel), [2 * s.length, s.dModel])),
    seg: tf.keep(tf.tensor2d(segmentDifference(s.length), [s.length, s.length])),
  };
}

/**
 * Logits for token ids (float-coded) at the parameters of one replica ([B, L] ids, 2-D blocks:
 * [B, 2]) or of a chunk of C replicas stacked on a leading run axis ([C, m, n] blocks; ids
 * [C, B, L], each replica on its own batch, or [B, L] shared by all: [C, B, 2]). Stacked, every
 * product is one batched matMul over the C replicas and the attention runs on C * B sequences.
 */
export function xlnetLogits(s: XlnetSize, c: XlnetConstants, params: readonly tf.Tensor[], x: tf.Tensor): tf.Tensor {
  // On native: the fused kernels' forward pass.
  if (fusedXlnet()) return fusedLogits(s, c, params, x);
  const stacked = params[0].rank === 3;
  const C = stacked ? params[0].shape[0] : 1;
  // Shapes below carry the run axis only when stacked: lead is [C] or [].
  const lead = stacked ? [C] : [];
  const o = lead.length;
  const B = x.shape[x.rank - 2];
  const L = s.length;
  const d = s.dModel;
  const H = s.heads;
  const dh = d / H;
  const ids = tf.cast(stacked && x.rank === 2 ? tf.tile(tf.expandDims(x, 0), [C, 1, 1]) : x, 'int32');
  const N = C * B; // sequences in the attention
  // Keys that are padding get -1e30 before the softmax.
  const keyMask = tf.reshape(tf.mul(tf.cast(tf.equal(ids, PAD), 'float32'), -1e30), [N, 1, 1, L]);
  // Word embeddings: stacked, replica c's table is rows c * vocab ... of the joined tables.
  const table = stacked ? tf.reshape(params[0], [C * s.vocab, d]) : params[0];
  const rows = stacked ? tf.add(ids, tf.reshape(tf.range(0, C * s.vocab, s.vocab, 'int32'), [C, 1, 1])) : ids;
  let h = tf.reshape(embed(table, tf.reshape(rows, [N * L])), [...lead, B * L, d]);
  /** A per-replica row [C?, 1, d] as [C?, ...shape] for broadcasting. */
  const row = (p: tf.Tensor, shape: number[]) => tf.reshape(p, [...lead, ...shape]);
  /** [C?, B*L, d] -> [N, H, L, dh]. */
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [N, L, H, dh]), [0, 2, 1, 3]);
  /** [C?, B*L, d] -> [C?, H, B*L, dh]: per replica, every token's heads. */
  const byHead = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [...lead, B * L, H, dh]), [...lead.map((_, i) => i), o + 1, o, o + 2]);
  /** [C?, H, B*L, n] -> [N, H, L, n]. */
  const fromHead = (t: tf.Tensor, n: number) => tf.reshape(tf.transpose(tf.reshape(t, [...lead, H, B, L, n]), [...lead.map((_, i) => i), o + 1, o, o + 2, o + 3]), [N, H, L, n]);
  /** The content queries plus a per-replica head bias [C?, 1, d], as [N, H, L, dh]. */
  const withBias = (q: tf.Tensor, bias: tf.Tensor) =>
    stacked ? tf.reshape(tf.add(tf.reshape(heads(q), [C, B, H, L, dh]), row(bias, [1, H, 1, dh])), [N, H, L, dh]) : tf.add(heads(q), row(bias, [1, H, 1, dh]));
  const scale = 1 / Math.sqrt(dh);
  // The relative encodings, one copy for every replica's position projection.
  const pos = stacked ? tf.reshape(c.pos, [1, 2 * L, d]) : c.pos;
  for (let l = 0; l < s.layers; l++) {
    const [wq, wk, wv, wo, wr, rw, rr, rs, segEmbed, g1, b1, w1, c1, w2, c2, g2, b2] = params.slice(2 + 17 * l, 2 + 17 * (l + 1));
    const q = tf.matMul(h, wq);
    const k = heads(tf.matMul(h, wk));
    const v = heads(tf.matMul(h, wv));
    // Content term: (q + r_w_bias) k^T.
    const ac = matMulT(withBias(q, rw), k, false, true);
    // Position term: (q + r_r_bias) k_r^T over the 2L relative positions, then shifted.
    const kr = tf.transpose(tf.reshape(tf.matMul(pos, wr), [...lead, 2 * L, H, dh]), [...lead.map((_, i) => i), o + 1, o, o + 2]); // [C?, H, 2L, dh]
    const qr = tf.add(byHead(q), row(rr, [H, 1, dh]));
    const bdAll = fromHead(matMulT(qr, kr, false, true), 2 * L); // [N, H, L, 2L]
    // Segment term: (q + r_s_bias) . seg_embed[s_ij], s_ij = 1 when i, j are in different segments.
    const qs = tf.add(byHead(q), row(rs, [H, 1, dh]));
    const segK = tf.transpose(tf.reshape(segEmbed, [...lead, 2, H, dh]), [...lead.map((_, i) => i), o + 1, o, o + 2]); // [C?, H, 2, dh]
    const ef2 = fromHead(matMulT(qs, segK, false, true), 2); // [N, H, L, 2]
    const bd = relShift(bdAll as tf.Tensor4D, L);
    const e0 = tf.slice(ef2, [0, 0, 0, 0], [N, H, L, 1]);
    const e1 = tf.slice(ef2, [0, 0, 0, 1], [N, H, L, 1]);
    const ef = tf.add(e0, tf.mul(tf.sub(e1, e0), c.seg));
    const prob = tf.softmax(tf.add(tf.mul(tf.add(tf.add(ac, bd), ef), scale), keyMask));
    const av = tf.reshape(tf.transpose(tf.matMul(prob, v), [0, 2, 1, 3]), [...lead, B * L, d]);
    h = layerNorm(tf.add(tf.matMul(av, wo), h), g1, b1);
    const hidden = gelu(tf.add(tf.matMul(h, w1), c1));
    h = layerNorm(tf.add(tf.add(tf.matMul(hidden, w2), c2), h), g2, b2);
  }
  const n = params.length;
  const last = tf.reshape(tf.slice(tf.reshape(h, [N, L, d]), [0, L - 1, 0], [N, 1, d]), [...lead, B, d]);
  const summary = tf.tanh(tf.add(tf.matMul(last, params[n - 4]), params[n - 3]));
  return tf.add(tf.matMul(summary, params[n - 2]), params[n - 1]);
}

/**
 * Mean softmax cross-entropy of logits [B, 2] against one-hot labels [B, 2]; stacked ([C, B, 2]),
 * one mean per replica, [C].
 */
export function crossEntropy(logits: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), -1), -1));
}

/**
 * The replica program, for both strategies: per replica (2-D blocks, [b, L] ids) or stacked
 * ([C, m, n] blocks, [C, b, L] ids; the products batched over replicas too). Autodiff either
 * way: stacked, the gradient of the sum of the replicas' losses is each replica's own gradient,
 * since no replica's loss depends on another's parameters.
 */
export function xlnetProgram(s: XlnetSize, options: { stackedSequences?: number } = {}): ReplicaProgram & { constants: XlnetConstants; dispose(): void } {
  const limit = options.stackedSequences ?? STACKED_SEQUENCES;
  if (s.dModel % s.heads !== 0) throw new Error(`dModel ${s.dModel} is not a multiple of heads ${s.heads}`);
  if ((s.dModel / 2) % 1 !== 0) throw new Error('dModel must be even (sinusoidal encodings)');
  const blocks = xlnetBlocks(s);
  const constants = xlnetConstants(s);
  const program: ReplicaProgram & { constants: XlnetConstants; dispose(): void } = {
    blocks,
    constants,
    step(params, [x, y]) {
      const stacked = params[0].rank === 3;
      if (x.rank !== (stacked ? 3 : 2)) throw new Error(`xlnet: expected ${stacked ? '[C, b, L]' : '[b, L]'} token ids for ${stacked ? 'stacked' : 'per-replica'} parameters, got [${x.shape}]`);
      const parts = stacked ? replicaGroups(params[0].shape[0] as number, x.shape[1] as number, limit) : [];
      if (parts.length > 1) {
        // A chunk of more sequences than fit the caches at once: its replicas in groups, each
        // group's gradients its own (no replica's loss depends on another's parameters).
        // A scope per group: its slices and intermediates are freed before the next group runs.
        const outs = parts.map(([start, n]) =>
          tf.tidy(() => {
            const sub = (t: tf.Tensor) => tf.slice(t, start, n);
            const o = program.step(params.map(sub), [sub(x), sub(y)], false);
            return { grads: o.grads, loss: o.loss };
          }),
        );
        // Each group's loss record was kept past its scope; the joined one is the step's.
        const loss = tf.keep(tf.concat(outs.map((o) => o.loss)));
        outs.forEach((o) => o.loss.dispose());
        return { grads: params.map((_, k) => tf.concat(outs.map((o) => o.grads[k]))), loss };
      }
      // On native: the fused kernels, backward pass written out.
      if (fusedXlnet()) return fusedStep(s, constants, params, x, y);
      let perRun: tf.Tensor | undefined;
      const f = (...ps: tf.Tensor[]) => {
        const losses = crossEntropy(xlnetLogits(s, constants, ps, x), y);
        // The per-replica losses outlive the gradient's scope: they are the step's loss record.
        if (stacked) perRun = tf.keep(tf.clone(losses));
        // mask_emb takes no part in classification; this keeps autodiff's bookkeeping whole.
        return tf.add(stacked ? tf.sum(losses) : losses, tf.mul(tf.sum(ps[1]), 0)) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(f)(params as tf.Tensor[]);
      if (stacked) value.dispose();
      return { grads, loss: stacked ? perRun! : value };
    },
    evaluate(params, [x, y]) {
      const stacked = params[0].rank === 3;
      const parts = stacked ? replicaGroups(params[0].shape[0] as number, x.shape[x.rank - 2] as number, limit) : [];
      if (parts.length > 1) {
        const outs = parts.map(([start, n]) =>
          tf.tidy(() => {
            const sub = (t: tf.Tensor) => tf.slice(t, start, n);
            const o = program.evaluate!(params.map(sub), [x.rank === 3 ? sub(x) : x, y.rank === 3 ? sub(y) : y]) as Record<string, tf.Tensor>;
            return { loss: o.loss, error: o.error };
          }),
        );
        return { loss: tf.concat(outs.map((o) => o.loss)), error: tf.concat(outs.map((o) => o.error)) };
      }
      const logits = xlnetLogits(s, constants, params, x);
      const wrong = tf.cast(tf.notEqual(tf.argMax(logits, -1), tf.argMax(y, -1)), 'float32');
      return { loss: crossEntropy(logits, y), error: tf.mean(wrong, -1) };
    },
    dispose() {
      constants.pos.dispose();
      constants.seg.dispose();
    },
  };
  return program;
}

/**
 * Sequences a stacked call runs at once (replicas x batch) before its activations outgrow the
 * caches: measured on native (cpu preset encoder), stacked beat per replica by 1.5-1.9x at 512
 * sequences (R = 8, b = 64; R = 16, b = 32) and only tied at 1,024 (R = 16, b = 64).
 */
export const STACKED_SEQUENCES = 512;

/** [start, count] groups of a chunk's C replicas with at most STACKED_SEQUENCES sequences each. */
export function replicaGroups(replicas: number, batch: number, limit = STACKED_SEQUENCES): [number, number][] {
  const per = Math.max(1, Math.floor(limit / Math.max(1, batch)));
  const out: [number, number][] = [];
  for (let start = 0; start < replicas; start += per) out.push([start, Math.min(per, replicas - start)]);
  return out;
}

/** Bytes one replica's step needs at batch b (float32 activations kept for the backward pass). */
export function xlnetBytesPerReplica(s: XlnetSize, b: number): number {
  const params = parameterCount(s);
  const perLayer = b * s.length * (8 * s.dModel + 2 * s.inner) + 6 * b * s.heads * s.length * 2 * s.length;
  return 4 * (5 * params + s.layers * perLayer);
}

/**
 * The engine strategy for XLNet on a tfjs backend: stacked on the GPU and on native (one op per
 * product for a group of replicas instead of one per replica, in groups of at most
 * STACKED_SEQUENCES sequences), per replica on wasm and cpu (XNNPACK's fast path is 2-D).
 * Measured on native before the groups: stacked made the cpu preset's step faster at 512
 * sequences (R = 8, b = 64: 317 against 490 ms) and tied at 1,024 (R = 16, b = 64), where the
 * cpu preset study ran 273 s and 3.1 GiB against 171 s and 0.55 GiB per replica.
 */
export function xlnetStrategy(tfjsBackend: string, env: NodeJS.ProcessEnv = process.env): KernelStrategy {
  // SGD_LAB_STRATEGY=stacked|per-replica overrides the choice (for comparisons).
  if (env.SGD_LAB_STRATEGY === 'stacked' || env.SGD_LAB_STRATEGY === 'per-replica') return env.SGD_LAB_STRATEGY;
  return tfjsBackend === 'webgpu' || tfjsBackend === 'native' ? 'stacked' : 'per-replica';
}

/**
 * Bytes of the largest tensor one replica has at batch b (its embedding table or that table's
 * gradient, the scores against the 2L relative positions, the feed-forward activations): a
 * stacked tensor holds a chunk's worth, which WebGPU binds whole.
 */
export function xlnetLargestTensorPerReplica(s: XlnetSize, b: number): number {
  return 4 * Math.max(s.vocab * s.dModel, b * s.heads * s.length * 2 * s.length, b * s.length * s.inner);
}
