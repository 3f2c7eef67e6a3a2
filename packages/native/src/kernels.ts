/**
 * TensorFlow.js kernels for the `native` backend. The backend is a MathBackendCPU, so tensors are
 * plain TypedArrays in its data store and the addon reads and writes them in place. Cases the
 * native path does not cover (non-float32 dtypes, batch dimensions that broadcast other than by
 * 1, PReLU) run the cpu backend's own kernel, so every op stays correct.
 */
import {
  Abs,
  Elu,
  Erf,
  Exp,
  LeakyRelu,
  Log,
  Neg,
  Relu,
  Rsqrt,
  Sigmoid,
  Softmax,
  Sqrt,
  Step,
  GatherV2,
  PadV2,
  Slice,
  Tanh,
  Tile,
  slice_util,
  Add,
  BatchMatMul,
  Maximum,
  Mean,
  Minimum,
  Multiply,
  RealDiv,
  Square,
  SquaredDifference,
  Sub,
  Sum,
  Transpose,
  _FusedMatMul,
  backend_util,
  getKernel,
  util,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type SumAttrs,
  type TensorInfo,
  type TransposeAttrs,
  type _FusedMatMulAttrs,
} from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';

export const NATIVE = 'native';

/**
 * Fused kernels the engine uses when the active backend registers them (only `native` does):
 * - SQUARED_DEVIATION_SUM: inputs { x: [C, ...], mean: [...] } -> [C], sum of (x_c - mean)^2;
 * - AXPY: inputs { x, y } (same shape), attrs { alpha, inPlace } -> x + alpha y. With inPlace the
 *   caller promises to dispose x right after: its array is then updated where it is, when nothing
 *   else can see it (not read out, no other tensor on it).
 */
export const SQUARED_DEVIATION_SUM = 'SgdLabSquaredDeviationSum';
/**
 * RUN_MOMENTS: inputs { x: [C, ...] } -> [mean, deviations]: mean = x's mean over its first axis
 * (shape x.shape[1:]), deviations [C] = sum of (x_c - mean)^2 with that (float32) mean; one read of x.
 */
export const RUN_MOMENTS = 'SgdLabRunMoments';
/**
 * RUN_BLOCK_MOMENTS: inputs { x: [C, ...], y?: x's shape }, attrs { block, all? } -> the moments
 * by run blocks of `block` consecutive runs: each run's squared deviation from its block's
 * (float32) mean [C], and each block's squared mean norm [ceil(C / block)]. Without y: of x, as
 * [deviations, meanSquares]. With y: of x - y (never materialised); with y and `all`: of x, of y
 * and of x - y from one read of both, as six outputs (x's pair, y's, the difference's). No slices.
 * Native only.
 */
export const RUN_BLOCK_MOMENTS = 'SgdLabRunBlockMoments';
/**
 * DEEP_LINEAR_STEP: inputs { x: [C, b, p], teacher: [o, p], w0 .. w(d-1): [C, widths[k+1],
 * widths[k]] }, attrs { widths, wantFull } -> [grad_0 .. grad_(d-1), (full_0 .. full_(d-1),) loss
 * [C]]: the deep linear program's step (plugin-deeplinear) in one call, a replica at a time so its
 * products stay in cache, E and Delta side by side in each backward product. With wantFull and
 * attrs.runBlock, also the run-block moments of every layer k, as RUN_BLOCK_MOMENTS of (grad_k,
 * full_k) with `all` gives them, appended after the loss: six outputs per layer (g's deviations
 * [C] and mean squares [blocks], then full's, then the difference's), computed right after each
 * run block while its gradients are in cache. With wantFull, runBlock and attrs.sgd (a learning
 * rate), also the SGD step: the outputs are then [next_0 .. next_(d-1), loss, moments], next_k =
 * w_k - sgd grad_k exactly as AXPY computes it, and the gradients never leave the addon's scratch.
 * Native only.
 */
export const DEEP_LINEAR_STEP = 'SgdLabDeepLinearStep';
/**
 * MLP_STEP: inputs { x: [C, b, w_0], y: [C, b, w_L] (one-hot), w0, b0 .. w(L-1), b(L-1): [C, w_k,
 * w_(k+1)] and [C, 1, w_(k+1)] }, attrs { widths } -> [gradW_0, gradB_0, .., gradW_(L-1),
 * gradB_(L-1), loss [C]]: the stochastic-gradient step of a ReLU MLP with mean softmax
 * cross-entropy (plugin-mnist's program) in one call, a replica at a time on each thread from its
 * forward pass to its last weight gradient. With attrs.runBlock, also the run-block moments of
 * every block as RUN_BLOCK_MOMENTS gives them, appended after the loss: two outputs per block
 * (deviations [C], mean squares [blocks]), each run block's computed right after its replicas
 * where there are at least as many run blocks as threads (else in a second pass over all of them).
 * With runBlock and attrs.sgd (a learning rate), also the SGD step: the outputs are then the next
 * parameters (w - sgd grad, as AXPY computes it) in the gradients' places, and the gradients never
 * leave the addon. Given inputs.rows
 * ([C, b] int32), x is instead a table [n, w_0] and replica r's batch its rows rows[r]: each thread
 * gathers its replica's batch right before its forward pass. Native only.
 */
export const MLP_STEP = 'SgdLabMlpStep';
/** MUL_STEP: inputs { a, b } (broadcasting) -> a * step(b): a ReLU's backward pass from its output. */
export const MUL_STEP = 'SgdLabMulStep';
export const AXPY = 'SgdLabAxpy';
/**
 * ADAMW: inputs { w, g, m, v } (one shape), attrs { lr, beta1, beta2, epsilon, c1, c2, decay, clip,
 * groups } -> [w', m', v']: one AdamW step, the gradient clipped first to norm `clip` over each of
 * `groups` (default 1) equal runs of consecutive elements: per replica of a stacked block.
 */
export const ADAMW = 'SgdLabAdamW';

/**
 * The transformer kernels (plugin-xlnet's fused layer pieces; native only). A stacked activation
 * is [G, rows, n] with a parameter row [G, 1, n] per replica; per replica, [rows, n] and [1, n]:
 * - SCATTER_ADD_ROWS: inputs { x: [k, w], indices: int32 [k] }, attrs { rows } -> [rows, w], row
 *   indices[i] the sum of the x rows i that name it (an embedding table's gradient);
 * - BIAS_GELU: inputs { x, bias } -> gelu(x + bias); BIAS_GELU_GRAD: { dy, x, bias } -> [dx, dbias];
 * - ADD_LAYER_NORM: inputs { a, b, bias?, gamma, beta }, attrs { epsilon } -> [y, xhat, rstd]: the
 *   layer norm of (a + bias) + b, with what its backward pass needs (rstd: one per row, x's shape
 *   with a last axis of 1); LAYER_NORM_GRAD: { dy, xhat, rstd, gamma }, attrs { withBias } ->
 *   [dx, dgamma, dbeta(, dbias)];
 * - REL_ATTENTION_BLOCK: XLNet's whole relative-position attention from the projections, no head
 *   transposes: inputs { q, k, v: [G?, B L, d] token-major, kr: [G?, 2L, d] (the relative
 *   encodings' projection), segEmbed: [G?, 2, d], rw, rr, rs: [G?, 1, d] (the content, position
 *   and segment biases), seg: [L, L], mask: [G B, L] }, attrs { heads, scale } -> [out: [G?, B L,
 *   d], prob: [G B, heads, L, L]]: per sequence and head, with ac = (q + rw) k^T, bd = (q + rr)
 *   kr^T [L, 2L] and ef = (q + rs) segEmbed^T [L, 2], prob = the softmax over keys of ((ac +
 *   shift(bd)) + (ef0 + (ef1 - ef0) seg)) scale + mask, shift being XLNet's relative shift (key j
 *   of query i reads bd at L - i + j), and out = prob v at the head's columns;
 *   REL_ATTENTION_BLOCK_GRAD: { dout, q, k, v, kr, segEmbed, rw, rr, rs, seg, prob }, attrs
 *   { heads, scale } -> [dq, dk, dv, dkr, dsegEmbed, drw, drr, drs].
 */
export const SCATTER_ADD_ROWS = 'SgdLabScatterAddRows';
export const BIAS_GELU = 'SgdLabBiasGelu';
export const BIAS_GELU_GRAD = 'SgdLabBiasGeluGrad';
export const ADD_LAYER_NORM = 'SgdLabAddLayerNorm';
export const LAYER_NORM_GRAD = 'SgdLabLayerNormGrad';
export const REL_ATTENTION_BLOCK = 'SgdLabRelAttentionBlock';
export const REL_ATTENTION_BLOCK_GRAD = 'SgdLabRelAttentionBlockGrad';

interface Plan {
  outShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
}

/** Shapes of a (batched) product, or undefined when the native path does not cover them. */
export function planMatMul(aShape: readonly number[], bShape: readonly number[], transA: boolean, transB: boolean): Plan | undefined {
  if (aShape.length < 2 || bShape.length < 2) return undefined;
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new Error(`matMul: inner dimensions differ (${aShape} x ${bShape}, transposeA=${transA}, transposeB=${transB})`);
  const outerA = aShape.slice(0, -2);
  const outerB = bShape.slice(0, -2);
  const batchA = util.sizeFromShape(outerA);
  const batchB = util.sizeFromShape(outerB);
  let outer: number[];
  if (batchA === batchB && outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i])) outer = outerA;
  else if (batchB === 1) outer = outerA.length >= outerB.length ? outerA : [...outerB.map(() => 1).slice(outerA.length), ...outerA];
  else if (batchA === 1) outer = outerB.length >= outerA.length ? outerB : [...outerA.map(() => 1).slice(outerB.length), ...outerB];
  else return undefined;
  const batch = util.sizeFromShape(outer);
  return {
    outShape: [...outer, m, n],
    batch,
    m,
    n,
    k,
    strideA: batchA === 1 ? 0 : m * k,
    strideB: batchB === 1 ? 0 : k * n,
  };
}

/** An output array: from the native backend's pool when there is one (contents unspecified). */
function alloc(backend: MathBackendCPU, n: number): Float32Array {
  const pool = (backend as MathBackendCPU & { pool?: { take(n: number): Float32Array } }).pool;
  return pool ? pool.take(n) : new Float32Array(n);
}

function values(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  const v = backend.data.get(t.dataId).values;
  // Some cpu kernels (a cast from bool, say) leave float32 tensors in other typed arrays.
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

/** The product itself: a new float32 tensor in the backend's store. */
function product(addon: NativeAddon, backend: MathBackendCPU, a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean): { info: TensorInfo; out: Float32Array; plan: Plan } | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const plan = planMatMul(a.shape, b.shape, transA, transB);
  if (!plan) return undefined;
  const out = alloc(backend, plan.batch * plan.m * plan.n);
  if (plan.k === 0) out.fill(0);
  else if (out.length > 0) {
    addon.gemmBatched(values(backend, a), values(backend, b), out, plan.batch, plan.m, plan.n, plan.k, transA, transB, plan.strideA, plan.strideB, plan.m * plan.n, 1, 0);
  }
  return { info: backend.makeTensorInfo(plan.outShape, 'float32', out), out, plan };
}

/**
 * The cpu kernel's result when the native path does not cover a call (`ok` false), else
 * undefined; counts either way.
 */
function covered(name: string, ok: boolean, args: Parameters<KernelFunc>[0]): ReturnType<KernelFunc> | undefined {
  count(name, ok);
  return ok ? undefined : cpuKernel(name)(args);
}

function cpuKernel(name: string): KernelFunc {
  const k = getKernel(name, 'cpu');
  if (!k) throw new Error(`the cpu backend has no ${name} kernel to fall back on`);
  return k.kernelFunc;
}

/** Counts of calls that took the native path and the fallback, per kernel (tests, benchmarks). */
export const kernelCalls: Record<string, { native: number; fallback: number }> = {};
function count(name: string, native: boolean): void {
  const c = (kernelCalls[name] ??= { native: 0, fallback: 0 });
  if (native) c.native++;
  else c.fallback++;
}

export function nativeKernels(addon: NativeAddon): KernelConfig[] {
  const batchMatMul: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    const r = product(addon, args.backend as MathBackendCPU, a, b, transposeA, transposeB);
    count(BatchMatMul, r !== undefined);
    return r ? r.info : cpuKernel(BatchMatMul)(args);
  };

  const fusedMatMul: KernelFunc = (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as _FusedMatMulAttrs;
    const backend = args.backend as MathBackendCPU;
    const act = ACTIVATIONS[(activation as string | undefined) ?? 'linear'];
    const plan = a.dtype === 'float32' && b.dtype === 'float32' ? planMatMul(a.shape, b.shape, transposeA, transposeB) : undefined;
    const strides = plan && bias ? biasStrides(bias, plan) : [0, 0, 0];
    if (act === undefined || preluActivationWeights || !plan || !strides) return covered(_FusedMatMul, false, args)!;
    count(_FusedMatMul, true);
    const out = alloc(backend, plan.batch * plan.m * plan.n);
    if (out.length > 0) {
      const biasValues = bias ? values(backend, bias) : null;
      addon.gemmBatched(values(backend, a), values(backend, b), out, plan.batch, plan.m, plan.n, plan.k, transposeA, transposeB, plan.strideA, plan.strideB, plan.m * plan.n, 1, 0, biasValues, strides, act, leakyreluAlpha ?? 0.2);
    }
    return backend.makeTensorInfo(plan.outShape, 'float32', out);
  };

  const binary =
    (name: string, op: number): KernelFunc =>
    (args) => {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const fallback = covered(name, a.dtype === 'float32' && b.dtype === 'float32', args);
      if (fallback) return fallback;
      return elementwise(addon, args.backend as MathBackendCPU, op, a, b);
    };

  const square: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const fallback = covered(Square, x.dtype === 'float32', args);
    if (fallback) return fallback;
    return elementwise(addon, args.backend as MathBackendCPU, 2, x, x);
  };

  const transpose: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { perm } = args.attrs as unknown as TransposeAttrs;
    const fallback = covered(Transpose, x.dtype === 'float32', args);
    if (fallback) return fallback;
    const backend = args.backend as MathBackendCPU;
    const out = alloc(backend, util.sizeFromShape(x.shape));
    addon.transpose(values(backend, x), out, [...x.shape], [...perm]);
    return backend.makeTensorInfo(
      perm.map((p) => x.shape[p]),
      'float32',
      out,
    );
  };

  const reduce =
    (name: string, mean: boolean): KernelFunc =>
    (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const { axis, keepDims } = args.attrs as unknown as SumAttrs;
      const fallback = covered(name, x.dtype === 'float32', args);
      if (fallback) return fallback;
      const backend = args.backend as MathBackendCPU;
      const axes = util.parseAxisParam(axis, x.shape);
      const kept = x.shape.map((_, d) => !axes.includes(d));
      const outShape = x.shape.filter((_, d) => kept[d]);
      const strides = new Array<number>(x.shape.length).fill(0);
      for (let d = x.shape.length - 1, s = 1; d >= 0; d--) {
        if (kept[d]) {
          strides[d] = s;
          s *= x.shape[d];
        }
      }
      const reduced = axes.reduce((s, d) => s * x.shape[d], 1);
      const out = alloc(backend, util.sizeFromShape(outShape));
      out.fill(0);
      addon.reduceSum(values(backend, x), out, [...x.shape], strides, mean ? 1 / reduced : 1);
      return backend.makeTensorInfo(keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape, 'float32', out);
    };

  const unary =
    (name: string, op: number, alphaOf: (attrs: NamedAttrMap) => number = () => 0): KernelFunc =>
    (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const fallback = covered(name, x.dtype === 'float32', args);
      if (fallback) return fallback;
      const backend = args.backend as MathBackendCPU;
      const out = alloc(backend, util.sizeFromShape(x.shape));
      addon.unary(op, values(backend, x), out, alphaOf(args.attrs ?? {}));
      return backend.makeTensorInfo(x.shape, 'float32', out);
    };

  const softmax: KernelFunc = (args) => {
    const { logits } = args.inputs as { logits: TensorInfo };
    const { dim } = args.attrs as unknown as { dim: number };
    const rank = logits.shape.length;
    const fallback = covered(Softmax, logits.dtype === 'float32' && rank > 0 && (dim === -1 || dim === rank - 1), args);
    if (fallback) return fallback;
    const backend = args.backend as MathBackendCPU;
    const cols = logits.shape[rank - 1];
    const size = util.sizeFromShape(logits.shape);
    const out = alloc(backend, size);
    addon.softmax(values(backend, logits), out, cols === 0 ? 0 : size / cols, cols);
    return backend.makeTensorInfo(logits.shape, 'float32', out);
  };

  const sqdev: KernelFunc = (args) => {
    const { x, mean } = args.inputs as { x: TensorInfo; mean: TensorInfo };
    const backend = args.backend as MathBackendCPU;
    const rows = x.shape[0];
    const cols = util.sizeFromShape(x.shape.slice(1));
    if (x.dtype !== 'float32' || mean.dtype !== 'float32' || util.sizeFromShape(mean.shape) !== cols) {
      throw new Error(`${SQUARED_DEVIATION_SUM}: expected float32 x [C, ...] and mean of its row size, got ${x.shape} and ${mean.shape}`);
    }
    count(SQUARED_DEVIATION_SUM, true);
    const out = alloc(backend, rows);
    addon.sqdevSum(values(backend, x), values(backend, mean), out, rows, cols);
    return backend.makeTensorInfo([rows], 'float32', out);
  };

  const mulStep: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`${MUL_STEP}: expected float32 a and b, got ${a.dtype} and ${b.dtype}`);
    count(MUL_STEP, true);
    return elementwise(addon, args.backend as MathBackendCPU, 8, a, b);
  };

  const runMoments: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const backend = args.backend as MathBackendCPU;
    if (x.dtype !== 'float32' || x.shape.length < 1) throw new Error(`${RUN_MOMENTS}: expected a float32 x [C, ...], got ${x.dtype} ${JSON.stringify(x.shape)}`);
    count(RUN_MOMENTS, true);
    const runs = x.shape[0];
    const cols = util.sizeFromShape(x.shape.slice(1));
    const mean = alloc(backend, cols);
    const dev = alloc(backend, runs);
    addon.runMoments(values(backend, x), mean, dev, runs, cols);
    return [backend.makeTensorInfo(x.shape.slice(1), 'float32', mean), backend.makeTensorInfo([runs], 'float32', dev)];
  };

  const runBlockMoments: KernelFunc = (args) => {
    const { x, y } = args.inputs as { x: TensorInfo; y?: TensorInfo };
    const { block, all } = args.attrs as unknown as { block: number; all?: boolean };
    const backend = args.backend as MathBackendCPU;
    if (x.dtype !== 'float32' || x.shape.length < 1) throw new Error(`${RUN_BLOCK_MOMENTS}: expected a float32 x [C, ...], got ${x.dtype} ${JSON.stringify(x.shape)}`);
    if (y && (y.dtype !== 'float32' || !util.arraysEqual(x.shape, y.shape))) throw new Error(`${RUN_BLOCK_MOMENTS}: y must be float32 of x's shape ${JSON.stringify(x.shape)}, got ${y.dtype} ${JSON.stringify(y.shape)}`);
    if (!Number.isInteger(block) || block < 1) throw new Error(`${RUN_BLOCK_MOMENTS}: block must be a positive integer, got ${block}`);
    if (all && !y) throw new Error(`${RUN_BLOCK_MOMENTS}: all needs y`);
    count(RUN_BLOCK_MOMENTS, true);
    const runs = x.shape[0];
    const cols = util.sizeFromShape(x.shape.slice(1));
    const blocks = Math.ceil(runs / block);
    const outs = all ? 3 : 1;
    // Three results are cut from one array (small: one value per run and per block).
    const dev = outs === 1 ? alloc(backend, runs) : new Float32Array(outs * runs);
    const sq = outs === 1 ? alloc(backend, blocks) : new Float32Array(outs * blocks);
    addon.runBlockMoments(values(backend, x), y ? values(backend, y) : null, dev, sq, runs, cols, block, all ? 2 : y ? 1 : 0);
    const out: TensorInfo[] = [];
    for (let o = 0; o < outs; o++) {
      out.push(backend.makeTensorInfo([runs], 'float32', outs === 1 ? dev : dev.slice(o * runs, (o + 1) * runs)));
      out.push(backend.makeTensorInfo([blocks], 'float32', outs === 1 ? sq : sq.slice(o * blocks, (o + 1) * blocks)));
    }
    return out;
  };

  const deepLinearStep: KernelFunc = (args) => {
    const inputs = args.inputs as Record<string, TensorInfo>;
    const { widths, wantFull, runBlock, sgd } = args.attrs as unknown as { widths: number[]; wantFull: boolean; runBlock?: number; sgd?: number };
    const backend = args.backend as MathBackendCPU;
    const d = widths.length - 1;
    const { x, teacher } = inputs;
    const p = widths[0];
    const o = widths[d];
    if (!x || x.dtype !== 'float32' || x.shape.length !== 3 || x.shape[2] !== p) throw new Error(`${DEEP_LINEAR_STEP}: expected a float32 x [C, b, ${p}], got ${x?.dtype} ${JSON.stringify(x?.shape)}`);
    const runs = x.shape[0];
    const b = x.shape[1];
    if (!teacher || teacher.dtype !== 'float32' || !util.arraysEqual(teacher.shape, [o, p])) throw new Error(`${DEEP_LINEAR_STEP}: expected a float32 teacher [${o}, ${p}], got ${JSON.stringify(teacher?.shape)}`);
    const weights = Array.from({ length: d }, (_, k) => {
      const w = inputs[`w${k}`];
      const shape = [runs, widths[k + 1], widths[k]];
      if (!w || w.dtype !== 'float32' || !util.arraysEqual(w.shape, shape)) throw new Error(`${DEEP_LINEAR_STEP}: expected a float32 w${k} ${JSON.stringify(shape)}, got ${JSON.stringify(w?.shape)}`);
      return values(backend, w);
    });
    const withMoments = wantFull && runBlock !== undefined;
    if (withMoments && (!Number.isInteger(runBlock) || runBlock < 1)) throw new Error(`${DEEP_LINEAR_STEP}: runBlock must be a positive integer, got ${runBlock}`);
    const withStep = sgd !== undefined;
    if (withStep && (!withMoments || !Number.isFinite(sgd))) throw new Error(`${DEEP_LINEAR_STEP}: the SGD step needs wantFull, runBlock and a finite rate, got wantFull ${wantFull}, runBlock ${runBlock}, sgd ${sgd}`);
    count(DEEP_LINEAR_STEP, true);
    const next = withStep ? weights.map((w) => alloc(backend, w.length)) : null;
    const grads = withStep ? null : weights.map((w) => alloc(backend, w.length));
    const full = wantFull && !withStep ? weights.map((w) => alloc(backend, w.length)) : null;
    const loss = alloc(backend, runs);
    const blocks = withMoments ? Math.ceil(runs / runBlock) : 0;
    // One value per run and per run block: small, cut from one array per kind.
    const dev = new Float32Array(withMoments ? 3 * runs * d : 0);
    const sq = new Float32Array(3 * blocks * d);
    const [xv, tv] = [values(backend, x), values(backend, teacher)];
    if (withStep) addon.deepLinearStep(xv, tv, weights, widths, b, null, null, loss, runBlock!, dev, sq, sgd!, next!);
    else if (withMoments) addon.deepLinearStep(xv, tv, weights, widths, b, grads!, full!, loss, runBlock, dev, sq);
    else addon.deepLinearStep(xv, tv, weights, widths, b, grads!, full, loss);
    const shapeOf = (k: number) => [runs, widths[k + 1], widths[k]];
    const moments: TensorInfo[] = [];
    for (let i = 0; withMoments && i < 3 * d; i++) {
      moments.push(backend.makeTensorInfo([runs], 'float32', dev.slice(i * runs, (i + 1) * runs)));
      moments.push(backend.makeTensorInfo([blocks], 'float32', sq.slice(i * blocks, (i + 1) * blocks)));
    }
    return [
      ...(next ?? grads!).map((g, k) => backend.makeTensorInfo(shapeOf(k), 'float32', g)),
      ...(full ?? []).map((f, k) => backend.makeTensorInfo(shapeOf(k), 'float32', f)),
      backend.makeTensorInfo([runs], 'float32', loss),
      ...moments,
    ];
  };

  const mlpStep: KernelFunc = (args) => {
    const inputs = args.inputs as Record<string, TensorInfo>;
    const { widths, runBlock, sgd } = args.attrs as unknown as { widths: number[]; runBlock?: number; sgd?: number };
    const backend = args.backend as MathBackendCPU;
    const L = widths.length - 1;
    const { x, y, rows } = inputs;
    const p = widths[0];
    const o = widths[L];
    // x is the batch [C, b, p], or with rows ([C, b] int32) the table [n, p] they index.
    if (rows) {
      if (rows.dtype !== 'int32' || rows.shape.length !== 2) throw new Error(`${MLP_STEP}: expected int32 rows [C, b], got ${rows.dtype} ${JSON.stringify(rows.shape)}`);
      if (!x || x.dtype !== 'float32' || x.shape.length !== 2 || x.shape[1] !== p) throw new Error(`${MLP_STEP}: expected a float32 table x [n, ${p}] with rows, got ${x?.dtype} ${JSON.stringify(x?.shape)}`);
    } else if (!x || x.dtype !== 'float32' || x.shape.length !== 3 || x.shape[2] !== p) {
      throw new Error(`${MLP_STEP}: expected a float32 x [C, b, ${p}], got ${x?.dtype} ${JSON.stringify(x?.shape)}`);
    }
    const [runs, b] = rows ? rows.shape : x.shape;
    if (!y || y.dtype !== 'float32' || !util.arraysEqual(y.shape, [runs, b, o])) throw new Error(`${MLP_STEP}: expected a float32 y [${runs}, ${b}, ${o}], got ${y?.dtype} ${JSON.stringify(y?.shape)}`);
    const withMoments = runBlock !== undefined;
    if (withMoments && (!Number.isInteger(runBlock) || runBlock < 1)) throw new Error(`${MLP_STEP}: runBlock must be a positive integer, got ${runBlock}`);
    const withStep = sgd !== undefined;
    if (withStep && (!withMoments || !Number.isFinite(sgd))) throw new Error(`${MLP_STEP}: the SGD step needs runBlock and a finite rate, got runBlock ${runBlock}, sgd ${sgd}`);
    const param = (name: string, shape: number[]) => {
      const t = inputs[name];
      if (!t || t.dtype !== 'float32' || !util.arraysEqual(t.shape, shape)) throw new Error(`${MLP_STEP}: expected a float32 ${name} ${JSON.stringify(shape)}, got ${t?.dtype} ${JSON.stringify(t?.shape)}`);
      return values(backend, t);
    };
    const wShape = (k: number) => [runs, widths[k], widths[k + 1]];
    const bShape = (k: number) => [runs, 1, widths[k + 1]];
    const weights = Array.from({ length: L }, (_, k) => param(`w${k}`, wShape(k)));
    const biases = Array.from({ length: L }, (_, k) => param(`b${k}`, bShape(k)));
    count(MLP_STEP, true);
    // With the SGD step the outputs are the next parameters, and the gradients stay in the addon.
    const outW = weights.map((w) => alloc(backend, w.length));
    const outB = biases.map((v) => alloc(backend, v.length));
    const loss = alloc(backend, runs);
    const blocks = withMoments ? Math.ceil(runs / runBlock) : 0;
    const dev = new Float32Array(withMoments ? 2 * L * runs : 0);
    const sq = new Float32Array(2 * L * blocks);
    const [xv, yv] = [values(backend, x), values(backend, y)];
    const rv = rows && (backend.data.get(rows.dataId).values as Int32Array);
    if (rv && withMoments) {
      // The addon checks every row index against the table.
      if (withStep) addon.mlpStep(xv, yv, weights, biases, widths, b, null, null, loss, runBlock, dev, sq, sgd, outW, outB, rv);
      else addon.mlpStep(xv, yv, weights, biases, widths, b, outW, outB, loss, runBlock, dev, sq, null, null, null, rv);
    } else if (rv) {
      const batch = new Float32Array(runs * b * p);
      addon.gatherRows(xv, p, rv, batch);
      addon.mlpStep(batch, yv, weights, biases, widths, b, outW, outB, loss);
    } else if (withStep) addon.mlpStep(xv, yv, weights, biases, widths, b, null, null, loss, runBlock!, dev, sq, sgd, outW, outB);
    else if (withMoments) addon.mlpStep(xv, yv, weights, biases, widths, b, outW, outB, loss, runBlock, dev, sq);
    else addon.mlpStep(xv, yv, weights, biases, widths, b, outW, outB, loss);
    const moments: TensorInfo[] = [];
    for (let i = 0; i < 2 * L * (withMoments ? 1 : 0); i++) {
      moments.push(backend.makeTensorInfo([runs], 'float32', dev.slice(i * runs, (i + 1) * runs)));
      moments.push(backend.makeTensorInfo([blocks], 'float32', sq.slice(i * blocks, (i + 1) * blocks)));
    }
    return [
      ...outW.flatMap((g, k) => [backend.makeTensorInfo(wShape(k), 'float32', g), backend.makeTensorInfo(bShape(k), 'float32', outB[k])]),
      backend.makeTensorInfo([runs], 'float32', loss),
      ...moments,
    ];
  };

  const axpy: KernelFunc = (args) => {
    const { x, y } = args.inputs as { x: TensorInfo; y: TensorInfo };
    const { alpha, inPlace } = args.attrs as unknown as { alpha: number; inPlace?: boolean };
    const backend = args.backend as MathBackendCPU;
    if (x.dtype !== 'float32' || y.dtype !== 'float32' || !util.arraysEqual(x.shape, y.shape)) {
      throw new Error(`${AXPY}: expected two float32 tensors of one shape, got ${x.shape} and ${y.shape}`);
    }
    count(AXPY, true);
    const xv = values(backend, x);
    const yv = values(backend, y);
    const pool = (backend as MathBackendCPU & { pool?: { owns(v: unknown): boolean } }).pool;
    if (inPlace && pool?.owns(xv) && backend.refCount(x.dataId) === 1 && xv.buffer !== yv.buffer) {
      // x's array is the backend's alone (never read out, no other tensor on it) and the caller
      // drops x: update it where it is and hand it on, instead of streaming into a cold array.
      addon.axpy(xv, yv, xv, alpha);
      backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: 'float32' };
    }
    const out = alloc(backend, util.sizeFromShape(x.shape));
    addon.axpy(xv, yv, out, alpha);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  const adamw: KernelFunc = (args) => {
    const { w, g, m, v } = args.inputs as { w: TensorInfo; g: TensorInfo; m: TensorInfo; v: TensorInfo };
    const a = args.attrs as unknown as { lr: number; beta1: number; beta2: number; epsilon: number; c1: number; c2: number; decay: number; clip: number; groups?: number };
    const backend = args.backend as MathBackendCPU;
    for (const t of [g, m, v]) {
      if (t.dtype !== 'float32' || w.dtype !== 'float32' || !util.arraysEqual(t.shape, w.shape)) throw new Error(`${ADAMW}: expected four float32 tensors of one shape`);
    }
    count(ADAMW, true);
    const n = util.sizeFromShape(w.shape);
    const [wo, mo, vo] = [alloc(backend, n), alloc(backend, n), alloc(backend, n)];
    const ins = [w, g, m, v].map((t) => values(backend, t));
    const hyper = [a.lr, a.beta1, a.beta2, a.epsilon, a.c1, a.c2, a.decay, a.clip];
    // The clipping norm per group of n / groups consecutive elements (per replica of a stacked
    // block): one call per group on views; without clipping the groups change nothing.
    const groups = a.clip > 0 ? (a.groups ?? 1) : 1;
    if (n % groups !== 0) throw new Error(`${ADAMW}: ${groups} clipping groups do not divide ${n} elements`);
    const size = n / groups;
    for (let k = 0; k < groups; k++) {
      const [w1, g1, m1, v1, wo1, mo1, vo1] = [...ins, wo, mo, vo].map((x) => x.subarray(k * size, (k + 1) * size));
      addon.adamw(w1, g1, m1, v1, wo1, mo1, vo1, hyper);
    }
    return [wo, mo, vo].map((o) => backend.makeTensorInfo(w.shape, 'float32', o));
  };

  const tile: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { reps } = args.attrs as unknown as { reps: number[] };
    const fallback = covered(Tile, x.dtype === 'float32' && x.shape.length <= 4 && reps.length === x.shape.length, args);
    if (fallback) return fallback;
    const backend = args.backend as MathBackendCPU;
    // out viewed as [r0, s0, r1, s1, ...]: x's strides on the s axes, 0 on the r axes.
    const strides = broadcastStrides(x.shape, x.shape);
    const shape: number[] = [];
    const st: number[] = [];
    x.shape.forEach((d, i) => {
      shape.push(reps[i], d);
      st.push(0, strides[i]);
    });
    const out = alloc(backend, util.sizeFromShape(shape));
    const v = values(backend, x);
    addon.binary(7, v, v, out, shape, st, st);
    return backend.makeTensorInfo(
      x.shape.map((d, i) => d * reps[i]),
      'float32',
      out,
    );
  };

  const slice: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const fallback = covered(Slice, x.dtype === 'float32' && x.shape.length <= 8, args);
    if (fallback) return fallback;
    const backend = args.backend as MathBackendCPU;
    const [b, s] = slice_util.parseSliceParams(x, begin, size);
    const strides = broadcastStrides(x.shape, x.shape);
    const offset = b.reduce((o, v, d) => o + v * strides[d], 0);
    const out = alloc(backend, util.sizeFromShape(s));
    if (out.length > 0) {
      // A strided copy (op 7 copies a) from the slice's first element.
      const v = values(backend, x).subarray(offset);
      addon.binary(7, v, v, out, s, strides, strides);
    }
    return backend.makeTensorInfo(s, 'float32', out);
  };

  const pad: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { paddings, constantValue } = args.attrs as unknown as { paddings: [number, number][]; constantValue: number };
    const fallback = covered(PadV2, x.dtype === 'float32' && x.shape.length <= 8, args);
    if (fallback) return fallback;
    const backend = args.backend as MathBackendCPU;
    const outShape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
    const outStrides = broadcastStrides(outShape, outShape);
    const out = alloc(backend, util.sizeFromShape(outShape));
    out.fill(constantValue);
    if (util.sizeFromShape(x.shape) > 0) {
      const offset = paddings.reduce((o, [before], d) => o + before * outStrides[d], 0);
      addon.copyStrided(values(backend, x), out.subarray(offset), [...x.shape], broadcastStrides(x.shape, x.shape), outStrides);
    }
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  // Rows of a table by index (an embedding lookup): axis 0, no batch dimensions, float32.
  const gather: KernelFunc = (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    if (x.dtype !== 'float32' || (axis !== 0 && axis !== -x.shape.length) || (batchDims ?? 0) !== 0 || x.shape.length < 1) return covered(GatherV2, false, args)!;
    const backend = args.backend as MathBackendCPU;
    const idx = backend.data.get(indices.dataId).values as ArrayLike<number>;
    const rows = x.shape[0];
    for (let i = 0; i < idx.length; i++) {
      // The cpu kernel's error names the bad index.
      if (!(idx[i] >= 0 && idx[i] < rows)) return covered(GatherV2, false, args)!;
    }
    count(GatherV2, true);
    const row = util.sizeFromShape(x.shape.slice(1));
    const table = values(backend, x);
    const out = alloc(backend, idx.length * row);
    for (let i = 0; i < idx.length; i++) out.set(table.subarray(idx[i] * row, (idx[i] + 1) * row), i * row);
    return backend.makeTensorInfo([...indices.shape, ...x.shape.slice(1)], 'float32', out);
  };

  /** float32 inputs, or an error that names the kernel, the input and what it got. */
  const need = (kernel: string, inputs: Record<string, TensorInfo | undefined>): void => {
    for (const [name, t] of Object.entries(inputs)) {
      if (!t || t.dtype !== 'float32') throw new Error(`${kernel}: expected a float32 ${name}, got ${t ? `${t.dtype} ${JSON.stringify(t.shape)}` : 'none'}`);
    }
  };
  /** The rows a parameter row [G?, 1, n] is repeated over in x [G?, rows, n]: checks that they fit. */
  const rowOf = (kernel: string, x: TensorInfo, row: TensorInfo, name: string): number => {
    const n = x.shape[x.shape.length - 1] ?? 0;
    const size = util.sizeFromShape(row.shape);
    const groups = n > 0 ? size / n : 0;
    const lead = x.shape.length === 3 ? x.shape[0] : 1;
    if (x.shape.length < 2 || row.shape[row.shape.length - 1] !== n || groups !== lead || (x.shape.length === 3 && row.shape[0] !== lead)) {
      throw new Error(`${kernel}: ${name} ${JSON.stringify(row.shape)} is not a row per replica of x ${JSON.stringify(x.shape)}`);
    }
    return n;
  };

  const scatterAddRows: KernelFunc = (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { rows } = args.attrs as unknown as { rows: number };
    const backend = args.backend as MathBackendCPU;
    need(SCATTER_ADD_ROWS, { x });
    if (indices.dtype !== 'int32' || util.sizeFromShape(indices.shape) !== x.shape[0]) throw new Error(`${SCATTER_ADD_ROWS}: expected int32 indices, one per row of x ${JSON.stringify(x.shape)}, got ${indices.dtype} ${JSON.stringify(indices.shape)}`);
    count(SCATTER_ADD_ROWS, true);
    const width = util.sizeFromShape(x.shape.slice(1));
    const out = alloc(backend, rows * width);
    addon.scatterAddRows(values(backend, x), width, backend.data.get(indices.dataId).values as Int32Array, out);
    return backend.makeTensorInfo([rows, ...x.shape.slice(1)], 'float32', out);
  };

  const biasGelu: KernelFunc = (args) => {
    const { x, bias } = args.inputs as { x: TensorInfo; bias: TensorInfo };
    const backend = args.backend as MathBackendCPU;
    need(BIAS_GELU, { x, bias });
    const n = rowOf(BIAS_GELU, x, bias, 'bias');
    count(BIAS_GELU, true);
    const out = alloc(backend, util.sizeFromShape(x.shape));
    addon.biasGelu(values(backend, x), values(backend, bias), out, n);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  const biasGeluGrad: KernelFunc = (args) => {
    const { dy, x, bias } = args.inputs as { dy: TensorInfo; x: TensorInfo; bias: TensorInfo };
    const backend = args.backend as MathBackendCPU;
    need(BIAS_GELU_GRAD, { dy, x, bias });
    const n = rowOf(BIAS_GELU_GRAD, x, bias, 'bias');
    if (!util.arraysEqual(dy.shape, x.shape)) throw new Error(`${BIAS_GELU_GRAD}: dy ${JSON.stringify(dy.shape)} is not x's shape ${JSON.stringify(x.shape)}`);
    count(BIAS_GELU_GRAD, true);
    const dx = alloc(backend, util.sizeFromShape(x.shape));
    const db = alloc(backend, util.sizeFromShape(bias.shape));
    addon.biasGeluGrad(values(backend, dy), values(backend, x), values(backend, bias), dx, db, n);
    return [backend.makeTensorInfo(x.shape, 'float32', dx), backend.makeTensorInfo(bias.shape, 'float32', db)];
  };

  const addLayerNorm: KernelFunc = (args) => {
    const { a, b, bias, gamma, beta } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
    const { epsilon } = args.attrs as unknown as { epsilon: number };
    const backend = args.backend as MathBackendCPU;
    need(ADD_LAYER_NORM, { a, b, gamma, beta, ...(bias ? { bias } : {}) });
    if (!util.arraysEqual(a.shape, b.shape)) throw new Error(`${ADD_LAYER_NORM}: a ${JSON.stringify(a.shape)} and b ${JSON.stringify(b.shape)} differ`);
    const n = rowOf(ADD_LAYER_NORM, a, gamma, 'gamma');
    rowOf(ADD_LAYER_NORM, a, beta, 'beta');
    if (bias) rowOf(ADD_LAYER_NORM, a, bias, 'bias');
    count(ADD_LAYER_NORM, true);
    const size = util.sizeFromShape(a.shape);
    const [y, xhat, rstd] = [alloc(backend, size), alloc(backend, size), alloc(backend, n > 0 ? size / n : 0)];
    addon.addLayerNorm(values(backend, a), values(backend, b), bias ? values(backend, bias) : null, values(backend, gamma), values(backend, beta), y, xhat, rstd, n, epsilon);
    return [backend.makeTensorInfo(a.shape, 'float32', y), backend.makeTensorInfo(a.shape, 'float32', xhat), backend.makeTensorInfo([...a.shape.slice(0, -1), 1], 'float32', rstd)];
  };

  const layerNormGrad: KernelFunc = (args) => {
    const { dy, xhat, rstd, gamma } = args.inputs as { dy: TensorInfo; xhat: TensorInfo; rstd: TensorInfo; gamma: TensorInfo };
    const { withBias } = args.attrs as unknown as { withBias?: boolean };
    const backend = args.backend as MathBackendCPU;
    need(LAYER_NORM_GRAD, { dy, xhat, rstd, gamma });
    const n = rowOf(LAYER_NORM_GRAD, dy, gamma, 'gamma');
    if (!util.arraysEqual(dy.shape, xhat.shape) || util.sizeFromShape(rstd.shape) * n !== util.sizeFromShape(dy.shape)) throw new Error(`${LAYER_NORM_GRAD}: dy ${JSON.stringify(dy.shape)}, xhat ${JSON.stringify(xhat.shape)} and rstd ${JSON.stringify(rstd.shape)} do not match`);
    count(LAYER_NORM_GRAD, true);
    const size = util.sizeFromShape(dy.shape);
    const rowSize = util.sizeFromShape(gamma.shape);
    const dx = alloc(backend, size);
    const [dg, dbeta] = [alloc(backend, rowSize), alloc(backend, rowSize)];
    const dbias = withBias ? alloc(backend, rowSize) : null;
    addon.layerNormGrad(values(backend, dy), values(backend, xhat), values(backend, rstd), values(backend, gamma), dx, dg, dbeta, dbias, n);
    const out = [backend.makeTensorInfo(dy.shape, 'float32', dx), backend.makeTensorInfo(gamma.shape, 'float32', dg), backend.makeTensorInfo(gamma.shape, 'float32', dbeta)];
    if (dbias) out.push(backend.makeTensorInfo(gamma.shape, 'float32', dbias));
    return out;
  };

  const expect = (kernel: string, t: TensorInfo, name: string, shape: number[]): void => {
    if (!util.arraysEqual(t.shape, shape)) throw new Error(`${kernel}: expected ${name} ${JSON.stringify(shape)}, got ${JSON.stringify(t.shape)}`);
  };

  /** G (1 for 2-D), B, L, d of the attention block's inputs, checked, or an error naming the kernel and the input. */
  const blockShape = (kernel: string, inputs: Record<string, TensorInfo>, heads: number): { G: number; B: number; L: number; d: number } => {
    const { q, kr, seg, mask } = inputs;
    const stacked = q.shape.length === 3;
    if (q.shape.length !== 2 && !stacked) throw new Error(`${kernel}: expected q [G, B L, d] or [B L, d], got ${JSON.stringify(q.shape)}`);
    const G = stacked ? q.shape[0] : 1;
    const lead = stacked ? [G] : [];
    const d = q.shape[q.shape.length - 1];
    const [L] = seg.shape;
    if (seg.shape.length !== 2 || seg.shape[1] !== L || L === 0) throw new Error(`${kernel}: expected seg [L, L], got ${JSON.stringify(seg.shape)}`);
    const tokens = q.shape[q.shape.length - 2];
    if (tokens % L !== 0) throw new Error(`${kernel}: q ${JSON.stringify(q.shape)} does not hold whole sequences of L = ${L} tokens`);
    const B = tokens / L;
    if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0) throw new Error(`${kernel}: heads ${heads} must be a positive divisor of d = ${d}`);
    for (const name of ['k', 'v', 'dout']) if (inputs[name]) expect(kernel, inputs[name], name, q.shape);
    expect(kernel, kr, 'kr', [...lead, 2 * L, d]);
    expect(kernel, inputs.segEmbed, 'segEmbed', [...lead, 2, d]);
    for (const name of ['rw', 'rr', 'rs']) expect(kernel, inputs[name], name, [...lead, 1, d]);
    if (mask) expect(kernel, mask, 'mask', [G * B, L]);
    if (inputs.prob) expect(kernel, inputs.prob, 'prob', [G * B, heads, L, L]);
    return { G, B, L, d };
  };

  const relAttentionBlock: KernelFunc = (args) => {
    const inputs = args.inputs as Record<'q' | 'k' | 'v' | 'kr' | 'segEmbed' | 'rw' | 'rr' | 'rs' | 'seg' | 'mask', TensorInfo>;
    const { heads, scale } = args.attrs as unknown as { heads: number; scale: number };
    const backend = args.backend as MathBackendCPU;
    need(REL_ATTENTION_BLOCK, inputs);
    const { G, B, L } = blockShape(REL_ATTENTION_BLOCK, inputs, heads);
    count(REL_ATTENTION_BLOCK, true);
    const out = alloc(backend, util.sizeFromShape(inputs.q.shape));
    const prob = alloc(backend, G * B * heads * L * L);
    const [q, k, v, kr, se, rw, rr, rs, seg, mask] = (['q', 'k', 'v', 'kr', 'segEmbed', 'rw', 'rr', 'rs', 'seg', 'mask'] as const).map((n) => values(backend, inputs[n]));
    addon.relAttentionBlock(q, k, v, kr, se, rw, rr, rs, seg, mask, out, prob, heads, L, G, scale);
    return [backend.makeTensorInfo(inputs.q.shape, 'float32', out), backend.makeTensorInfo([G * B, heads, L, L], 'float32', prob)];
  };

  const relAttentionBlockGrad: KernelFunc = (args) => {
    const inputs = args.inputs as Record<'dout' | 'q' | 'k' | 'v' | 'kr' | 'segEmbed' | 'rw' | 'rr' | 'rs' | 'seg' | 'prob', TensorInfo>;
    const { heads, scale } = args.attrs as unknown as { heads: number; scale: number };
    const backend = args.backend as MathBackendCPU;
    need(REL_ATTENTION_BLOCK_GRAD, inputs);
    const { G, L } = blockShape(REL_ATTENTION_BLOCK_GRAD, inputs, heads);
    count(REL_ATTENTION_BLOCK_GRAD, true);
    const shapes = [inputs.q.shape, inputs.k.shape, inputs.v.shape, inputs.kr.shape, inputs.segEmbed.shape, inputs.rw.shape, inputs.rr.shape, inputs.rs.shape];
    const outs = shapes.map((s) => alloc(backend, util.sizeFromShape(s)));
    const ins = (['dout', 'q', 'k', 'v', 'kr', 'segEmbed', 'rw', 'rr', 'rs', 'seg', 'prob'] as const).map((n) => values(backend, inputs[n]));
    addon.relAttentionBlockGrad(ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], ins[6], ins[7], ins[8], ins[9], ins[10], outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], outs[6], outs[7], heads, L, G, scale);
    return outs.map((o, i) => backend.makeTensorInfo(shapes[i], 'float32', o));
  };

  const k = (kernelName: string, kernelFunc: KernelFunc): KernelConfig => ({ kernelName, backendName: NATIVE, kernelFunc });
  return [
    k(BatchMatMul, batchMatMul),
    k(_FusedMatMul, fusedMatMul),
    k(Add, binary(Add, 0)),
    k(Sub, binary(Sub, 1)),
    k(Multiply, binary(Multiply, 2)),
    k(RealDiv, binary(RealDiv, 3)),
    k(SquaredDifference, binary(SquaredDifference, 4)),
    k(Maximum, binary(Maximum, 5)),
    k(Minimum, binary(Minimum, 6)),
    k(Square, square),
    k(Transpose, transpose),
    k(Relu, unary(Relu, 0)),
    k(Step, unary(Step, 1, (a) => Number(a.alpha ?? 0))),
    k(Exp, unary(Exp, 2)),
    k(Log, unary(Log, 3)),
    k(Neg, unary(Neg, 4)),
    k(Sqrt, unary(Sqrt, 5)),
    k(Rsqrt, unary(Rsqrt, 6)),
    k(Tanh, unary(Tanh, 7)),
    k(Sigmoid, unary(Sigmoid, 8)),
    k(Abs, unary(Abs, 9)),
    k(Erf, unary(Erf, 10)),
    k(LeakyRelu, unary(LeakyRelu, 11, (a) => Number(a.alpha ?? 0.2))),
    k(Elu, unary(Elu, 12)),
    k(Softmax, softmax),
    k(Tile, tile),
    k(Slice, slice),
    k(GatherV2, gather),
    k(PadV2, pad),
    k(SQUARED_DEVIATION_SUM, sqdev),
    k(RUN_MOMENTS, runMoments),
    k(RUN_BLOCK_MOMENTS, runBlockMoments),
    k(DEEP_LINEAR_STEP, deepLinearStep),
    k(MLP_STEP, mlpStep),
    k(MUL_STEP, mulStep),
    k(SCATTER_ADD_ROWS, scatterAddRows),
    k(BIAS_GELU, biasGelu),
    k(BIAS_GELU_GRAD, biasGeluGrad),
    k(ADD_LAYER_NORM, addLayerNorm),
    k(LAYER_NORM_GRAD, layerNormGrad),
    k(REL_ATTENTION_BLOCK, relAttentionBlock),
    k(REL_ATTENTION_BLOCK_GRAD, relAttentionBlockGrad),
    k(AXPY, axpy),
    k(ADAMW, adamw),
    k(Sum, reduce(Sum, false)),
    k(Mean, reduce(Mean, true)),
  ];
}

/** Strides of `shape` read as broadcast to `out` (right-aligned; 0 on broadcast axes). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const strides = new Array<number>(out.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1, d = out.length - 1; i >= 0; i--, d--) {
    strides[d] = shape[i] === 1 && out[d] !== 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

function elementwise(addon: NativeAddon, backend: MathBackendCPU, op: number, a: TensorInfo, b: TensorInfo): TensorInfo {
  const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const out = alloc(backend, util.sizeFromShape(shape));
  addon.binary(op, values(backend, a), values(backend, b), out, shape, broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape));
  return backend.makeTensorInfo(shape, 'float32', out);
}

/** The activations the addon applies in a product's epilogue, by tfjs name (prelu is not one). */
export const ACTIVATIONS: Record<string, number | undefined> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4, elu: 5 };

/**
 * Strides [batch, row, column] of a bias read as broadcast to a product's [batch..., m, n] output,
 * or undefined when its batch axes neither broadcast entirely nor match the output's.
 */
export function biasStrides(bias: TensorInfo, plan: Plan): number[] | undefined {
  if (bias.dtype !== 'float32') return undefined;
  const out = plan.outShape;
  const r = out.length;
  if (bias.shape.length > r) return undefined;
  const full = [...new Array<number>(r - bias.shape.length).fill(1), ...bias.shape];
  for (let d = 0; d < r; d++) if (full[d] !== 1 && full[d] !== out[d]) return undefined;
  const rows = full[r - 2];
  const cols = full[r - 1];
  const batch = full.slice(0, r - 2);
  const sB = batch.every((v) => v === 1) ? 0 : batch.every((v, d) => v === out[d]) ? rows * cols : -1;
  if (sB < 0) return undefined;
  return [sB, rows === 1 ? 0 : cols, cols === 1 ? 0 : 1];
}
