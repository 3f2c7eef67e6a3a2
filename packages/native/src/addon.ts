/**
 * Loads the compiled addon (build/Release/sgd_native.node). When it is absent or cannot load, the
 * reason says what to install: the build step records why it could not build in build/status.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; every array is a Float32Array view, used in place. */
export interface NativeAddon {
  /**
   * For i < batch: C_i = alpha op(A_i) op(B_i) + beta C_i (row-major; op(A_i) is m x k, op(B_i)
   * k x n; A_i starts at i * strideA, a stride of 0 broadcasts one matrix). The optional epilogue
   * adds bias[i sB + r sM + j sN] (biasStrides [sB, sM, sN]) to C_i[r, j], then applies the
   * activation (ACTIVATIONS codes, actAlpha the leaky slope), on each C_i while it is in cache.
   */
  gemmBatched(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    beta: number,
    bias?: Float32Array | null,
    biasStrides?: number[],
    activation?: number,
    actAlpha?: number,
  ): void;
  /** out (contiguous, `shape`) = a op b; a and b read with their strides (0 where they broadcast). */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, shape: number[], stridesA: number[], stridesB: number[]): void;
  /** out = x with its axes permuted (out axis d is x axis perm[d]). */
  transpose(x: Float32Array, out: Float32Array, shape: number[], perm: number[]): void;
  /** out[j] = scale * sum of the x elements whose index dotted with outStrides is j (double accumulators). */
  reduceSum(x: Float32Array, out: Float32Array, shape: number[], outStrides: number[], scale: number): void;
  /** out = f(x) element-wise; op codes as in UNARY_OPS. */
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  /** Softmax over the last axis of a [rows, cols] view. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** out[idx . outStrides] = x[idx . xStrides] over `shape` (views from the first element). */
  copyStrided(x: Float32Array, out: Float32Array, shape: number[], xStrides: number[], outStrides: number[]): void;
  /** out[r] = sum_j (x[r, j] - mean[j])^2 over a [rows, cols] view. */
  sqdevSum(x: Float32Array, mean: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** dst row i = src row rows[i], rows of `width` floats; throws on a row outside src. */
  gatherRows(src: Float32Array, width: number, rows: Int32Array, dst: Float32Array): void;
  /** meanOut[j] = mean_r x[r, j] and devOut[r] = sum_j (x[r, j] - meanOut[j])^2 over a [runs, cols] view, in one read. */
  runMoments(x: Float32Array, meanOut: Float32Array, devOut: Float32Array, runs: number, cols: number): void;
  /**
   * The across-run moments of a [runs, cols] view by run blocks of `block` runs: devOut[r] =
   * squared deviation of run r from its block's mean, sqOut[k] = squared norm of block k's mean
   * (double sums). mode 0: of x; 1: of the float32 difference x - y, never materialised; 2: of x,
   * y and x - y from one read of both (devOut 3 runs, sqOut 3 blocks, in that order).
   */
  runBlockMoments(x: Float32Array, y: Float32Array | null, devOut: Float32Array, sqOut: Float32Array, runs: number, cols: number, block: number, mode: 0 | 1 | 2): void;
  /** One AdamW step of a block into wOut, mOut, vOut; h = [lr, beta1, beta2, eps, c1, c2, decay, clip]. */
  adamw(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, wOut: Float32Array, mOut: Float32Array, vOut: Float32Array, h: number[]): void;
  /**
   * For each stream i of a PackedStreams (state: 4 words per stream; hasSpare, spare: its
   * Box-Muller spare), out[i perStream .. (i + 1) perStream) = std * its next standard normal
   * deviates, equal to the bit to RandomStream.fillNormal; states and spares advance. Streams go
   * 8 at a time in SIMD lanes; returns how many Box-Muller pairs the lanes left to the scalar code
   * (their rare cases).
   */
  fillNormals(state: Uint32Array, hasSpare: Uint8Array, spare: Float64Array, out: Float32Array, perStream: number, std: number): number;
  /**
   * The whole step of a stacked deep linear network for every replica (lossOut's length): from
   * x [R, b, p], the teacher M [o, p] and weights[k] [R, widths[k+1], widths[k]], the stochastic
   * gradients into grads[k], the full gradients into full[k] (null: none) and 1/2 ||W_d..W_1 - M||^2
   * into lossOut, a replica at a time on the addon's threads. With full and (runBlock, devOut,
   * sqOut): also runBlockMoments(grads[k], full[k], ..., runBlock, mode 2) of every layer k, at
   * devOut[3 R k ..] and sqOut[3 B k ..] (B run blocks), each run block's right after it. With
   * (lr, next) as well: the SGD step next[k] = weights[k] - lr grads[k] (as axpy), each replica's
   * right after its gradients (with fewer run blocks than threads, each tile's in the second pass
   * after its moments); grads and full may then be null (the gradients stay in the addon's scratch).
   */
  deepLinearStep(x: Float32Array, teacher: Float32Array, weights: Float32Array[], widths: number[], b: number, grads: Float32Array[], full: Float32Array[] | null, lossOut: Float32Array): void;
  deepLinearStep(
    x: Float32Array,
    teacher: Float32Array,
    weights: Float32Array[],
    widths: number[],
    b: number,
    grads: Float32Array[],
    full: Float32Array[],
    lossOut: Float32Array,
    runBlock: number,
    devOut: Float32Array,
    sqOut: Float32Array,
  ): void;
  deepLinearStep(
    x: Float32Array,
    teacher: Float32Array,
    weights: Float32Array[],
    widths: number[],
    b: number,
    grads: Float32Array[] | null,
    full: Float32Array[] | null,
    lossOut: Float32Array,
    runBlock: number,
    devOut: Float32Array,
    sqOut: Float32Array,
    lr: number,
    next: Float32Array[],
  ): void;
  /**
   * The stochastic-gradient step of a stacked ReLU MLP with mean softmax cross-entropy for every
   * replica (lossOut's length): x [R, b, w_0], one-hot y [R, b, w_L], weights[k] [R, w_k, w_(k+1)],
   * biases[k] [R, 1, w_(k+1)]; the gradients into gradW[k], gradB[k] (their shapes), the losses into
   * lossOut; a replica at a time on the addon's threads. With (runBlock, devOut, sqOut): also
   * runBlockMoments(.., runBlock, mode 0) of every parameter block i (W_1, b_1, W_2, ..) at
   * devOut[R i ..] and sqOut[B i ..] (B run blocks), each run block's right after its replicas
   * where there are at least as many run blocks as threads (else in a second pass over column
   * tiles). With (lr, nextW, nextB) as well: the SGD step into nextW and nextB (as axpy), each
   * replica's right after its gradients (in the second pass, each tile's after its moments); gradW
   * and gradB may then be null (the gradients stay in the addon's scratch).
   */
  mlpStep(x: Float32Array, y: Float32Array, weights: Float32Array[], biases: Float32Array[], widths: number[], b: number, gradW: Float32Array[], gradB: Float32Array[], lossOut: Float32Array): void;
  mlpStep(
    x: Float32Array,
    y: Float32Array,
    weights: Float32Array[],
    biases: Float32Array[],
    widths: number[],
    b: number,
    gradW: Float32Array[],
    gradB: Float32Array[],
    lossOut: Float32Array,
    runBlock: number,
    devOut: Float32Array,
    sqOut: Float32Array,
  ): void;
  mlpStep(
    x: Float32Array,
    y: Float32Array,
    weights: Float32Array[],
    biases: Float32Array[],
    widths: number[],
    b: number,
    gradW: null,
    gradB: null,
    lossOut: Float32Array,
    runBlock: number,
    devOut: Float32Array,
    sqOut: Float32Array,
    lr: number,
    nextW: Float32Array[],
    nextB: Float32Array[],
  ): void;
  /** With the batch as rows of a table: x is [n, widths[0]], replica r's batch its rows rows[r b .. (r + 1) b); the SGD step optional (lr, nextW, nextB null). */
  mlpStep(
    x: Float32Array,
    y: Float32Array,
    weights: Float32Array[],
    biases: Float32Array[],
    widths: number[],
    b: number,
    gradW: Float32Array[] | null,
    gradB: Float32Array[] | null,
    lossOut: Float32Array,
    runBlock: number,
    devOut: Float32Array,
    sqOut: Float32Array,
    lr: number | null,
    nextW: Float32Array[] | null,
    nextB: Float32Array[] | null,
    rows: Int32Array,
  ): void;
  /** dst = 0, then dst row rows[i] += src row i (rows of `width` floats; repeated rows sum); throws on a row outside dst. */
  scatterAddRows(src: Float32Array, width: number, rows: Int32Array, dst: Float32Array): void;
  /** out = gelu(x + bias) (exact GELU), x [groups, rows, n], bias [groups, n]. */
  biasGelu(x: Float32Array, bias: Float32Array, out: Float32Array, n: number): void;
  /** dx = dy gelu'(x + bias); dbias [groups, n] = dx summed over each group's rows. */
  biasGeluGrad(dy: Float32Array, x: Float32Array, bias: Float32Array, dx: Float32Array, dbias: Float32Array, n: number): void;
  /** Layer norm of (a + bias) + b over rows of n: y, xhat and rstd (one per row); a, b [groups, rows, n], bias, gamma, beta [groups, n]. */
  addLayerNorm(a: Float32Array, b: Float32Array, bias: Float32Array | null, gamma: Float32Array, beta: Float32Array, y: Float32Array, xhat: Float32Array, rstd: Float32Array, n: number, eps: number): void;
  /** addLayerNorm's backward pass: dx, and per group dgamma, dbeta and (when given) dbias = the column sums of dx. */
  layerNormGrad(dy: Float32Array, xhat: Float32Array, rstd: Float32Array, gamma: Float32Array, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, dbias: Float32Array | null, n: number): void;
  /**
   * XLNet's whole relative-position attention for C = replicas replicas of B sequences of L tokens
   * (B from mask [C B, L]): from q, k, v [C, B L, d] (token-major, d = heads x dHead), kr [C, 2L, d],
   * segEmbed [C, 2, d], the head biases rw, rr, rs [C, d], seg [L, L] and the additive mask, the
   * probabilities into prob [C B, heads, L, L] and prob V into out [C, B L, d] at each head's columns.
   */
  relAttentionBlock(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    kr: Float32Array,
    segEmbed: Float32Array,
    rw: Float32Array,
    rr: Float32Array,
    rs: Float32Array,
    seg: Float32Array,
    mask: Float32Array,
    out: Float32Array,
    prob: Float32Array,
    heads: number,
    length: number,
    replicas: number,
    scale: number,
  ): void;
  /** relAttentionBlock's backward pass: from dout (out's gradient) the gradients of q, k, v, kr, segEmbed, rw, rr and rs. */
  relAttentionBlockGrad(
    dout: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    kr: Float32Array,
    segEmbed: Float32Array,
    rw: Float32Array,
    rr: Float32Array,
    rs: Float32Array,
    seg: Float32Array,
    prob: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dkr: Float32Array,
    dsegEmbed: Float32Array,
    drw: Float32Array,
    drr: Float32Array,
    drs: Float32Array,
    heads: number,
    length: number,
    replicas: number,
    scale: number,
  ): void;
  /** out = x + alpha y. */
  axpy(x: Float32Array, y: Float32Array, out: Float32Array, alpha: number): void;
  setThreads(threads: number): void;
  getThreads(): number;
  getProcs(): number;
  /** OpenBLAS's build line, including the core type its kernels were picked for. */
  getConfig(): string;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ADDON_PATH = join(root, 'build', 'Release', 'sgd_native.node');
const INSTALL_HINT = 'install a C++ compiler and OpenBLAS (Debian/Ubuntu: apt-get install g++ make python3 libopenblas-dev), then run `npm run build`';

let cached: AddonLoad | undefined;

/** The addon, or why it is not available (the result is cached). */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  if (process.env.SGD_LAB_NATIVE === '0') return (cached = { ok: false, reason: 'disabled by SGD_LAB_NATIVE=0' });
  return (cached = loadAddonFrom(ADDON_PATH, join(root, 'build', 'status.json')));
}

/** Loads an addon file; when it is missing, the build's status file says why. */
export function loadAddonFrom(path: string, statusFile: string): AddonLoad {
  if (!existsSync(path)) {
    let why = 'it was not built';
    if (existsSync(statusFile)) {
      try {
        why = `its build failed: ${(JSON.parse(readFileSync(statusFile, 'utf8')) as { reason: string }).reason}`;
      } catch {
        why = `its build status ${statusFile} is unreadable`;
      }
    }
    return { ok: false, reason: `the native addon ${path} is missing (${why}); ${INSTALL_HINT}` };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    return { ok: true, addon, path };
  } catch (e) {
    return { ok: false, reason: `the native addon ${path} does not load (${(e as Error).message.split('\n')[0]}); ${INSTALL_HINT}` };
  }
}
