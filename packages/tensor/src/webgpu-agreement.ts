/**
 * The agreement checks of the webgpu backend's kernels: each kernel (the WGSL ones and the
 * batched product every stacked setting runs on) on deterministic float32 inputs, against a
 * float64 reference computed here, element by element within float32's error bound for that
 * kernel. `npm test` runs them on llvmpipe; the device check (tools/device) runs them on the GPU.
 *
 * Bounds (u = 2^-24, float32's unit roundoff): a sum of n terms in any order is off by at most
 * (n - 1) u times the sum of their magnitudes; each elementwise operation adds u of its result.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RandomStream } from '@sgd-lab/core';
import { ADAMW, AXPY, RUN_MOMENTS } from '@sgd-lab/native';

const U = 2 ** -24;

export interface AgreementCheck {
  name: string;
  /** Elements compared. */
  elements: number;
  /** Largest |kernel - float64 reference|. */
  maxAbsError: number;
  /** Largest error over its bound: at most 1 to pass. */
  worstOverBound: number;
  ok: boolean;
}

function normals(seed: number, n: number, scale = 1, shift = 0): Float32Array {
  const rng = new RandomStream([7, seed]);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = shift + scale * rng.nextNormal();
  return out;
}

function compare(name: string, got: Float32Array, want: Float64Array, bound: (i: number) => number): AgreementCheck {
  let maxAbsError = 0;
  let worstOverBound = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    maxAbsError = Math.max(maxAbsError, e);
    // NaN (a wrong kernel) fails: the comparison below is false and Infinity is recorded.
    const r = e / (bound(i) + 1e-37);
    worstOverBound = Math.max(worstOverBound, Number.isNaN(r) ? Infinity : r);
  }
  const lengthOk = got.length === want.length;
  return { name, elements: want.length, maxAbsError, worstOverBound: lengthOk ? worstOverBound : Infinity, ok: lengthOk && worstOverBound <= 1 };
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

async function runMoments(shape: [number, number, number], seed: number): Promise<AgreementCheck[]> {
  const [C, m, n] = shape;
  const E = m * n;
  const x = normals(seed, C * E, 1, 0.3);
  const mean = new Float64Array(E);
  for (let c = 0; c < C; c++) for (let e = 0; e < E; e++) mean[e] += x[c * E + e] / C;
  const dev = new Float64Array(C);
  const absDev = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    for (let e = 0; e < E; e++) {
      const d = x[c * E + e] - mean[e];
      dev[c] += d * d;
      absDev[c] += Math.abs(d);
    }
  }
  const absSum = new Float64Array(E);
  for (let c = 0; c < C; c++) for (let e = 0; e < E; e++) absSum[e] += Math.abs(x[c * E + e]) / C;
  const xt = tf.tensor3d(x, shape);
  const [gm, gd] = tf.engine().runKernel(RUN_MOMENTS, { x: xt }, {}) as tf.Tensor[];
  const [gotMean, gotDev] = [await read(gm), await read(gd)];
  tf.dispose([xt, gm, gd]);
  // The mean: C terms and a division. The deviations: E squares of differences from the float32
  // mean, whose error (below, per element) moves each square by 2 |d| of it.
  const meanErr = (i: number) => (C + 1) * U * absSum[i];
  let worstMeanErr = 0;
  for (let e = 0; e < E; e++) worstMeanErr = Math.max(worstMeanErr, meanErr(e));
  return [
    compare(`RUN_MOMENTS mean [${shape}]`, gotMean, mean, meanErr),
    compare(`RUN_MOMENTS deviations [${shape}]`, gotDev, dev, (c) => (E + 3) * U * dev[c] + 2 * absDev[c] * worstMeanErr + E * worstMeanErr ** 2),
  ];
}

async function axpy(n: number): Promise<AgreementCheck> {
  const x = normals(11, n);
  const y = normals(12, n);
  const alpha = -0.1;
  const want = Float64Array.from(x, (v, i) => v + alpha * y[i]);
  const [xt, yt] = [tf.tensor1d(x), tf.tensor1d(y)];
  const out = tf.engine().runKernel(AXPY, { x: xt, y: yt }, { alpha, inPlace: false }) as tf.Tensor;
  const got = await read(out);
  tf.dispose([xt, yt, out]);
  // alpha rounded to float32, a product and a sum.
  return compare(`AXPY [${n}]`, got, want, (i) => 3 * U * (Math.abs(x[i]) + Math.abs(alpha * y[i])));
}

async function adamw(shape: [number, number, number], clip: number): Promise<AgreementCheck[]> {
  const [C, rows, cols] = shape;
  const n = C * rows * cols;
  const per = rows * cols;
  const w = normals(21, n);
  const g = normals(22, n);
  const m = normals(23, n, 0.1);
  const v = Float32Array.from(normals(24, n, 0.1), Math.abs);
  const h = { lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, c1: 0.1, c2: 0.002, decay: 0.01, clip, groups: C };
  const keep = 1 - h.lr * h.decay;
  const scale = new Float64Array(C).fill(1);
  if (clip > 0) {
    for (let c = 0; c < C; c++) {
      let ss = 0;
      for (let i = c * per; i < (c + 1) * per; i++) ss += g[i] * g[i];
      scale[c] = Math.min(1, clip / (Math.sqrt(ss) + 1e-30));
    }
  }
  const [m1, v1, w1, em, ev] = Array.from({ length: 5 }, () => new Float64Array(n));
  // The clip scale: a sum of `per` squares (relative (per + 1) u), half of it through the square
  // root, then a division and a minimum.
  const relScale = clip > 0 ? ((per + 1) / 2 + 3) * U : 0;
  for (let i = 0; i < n; i++) {
    const gi = g[i] * scale[Math.floor(i / per)];
    m1[i] = h.beta1 * m[i] + (1 - h.beta1) * gi;
    v1[i] = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    w1[i] = w[i] * keep - (h.lr * (m1[i] / h.c1)) / (Math.sqrt(v1[i] / h.c2) + h.epsilon);
    em[i] = 4 * U * (Math.abs(h.beta1 * m[i]) + Math.abs((1 - h.beta1) * gi)) + Math.abs((1 - h.beta1) * gi) * relScale;
    ev[i] = 5 * U * (h.beta2 * v[i] + (1 - h.beta2) * gi * gi) + 2 * (1 - h.beta2) * gi * gi * relScale;
  }
  const ts = [w, g, m, v].map((a) => tf.tensor3d(a, shape));
  const out = tf.engine().runKernel(ADAMW, { w: ts[0], g: ts[1], m: ts[2], v: ts[3] }, h) as tf.Tensor[];
  const [gotW, gotM, gotV] = [await read(out[0]), await read(out[1]), await read(out[2])];
  tf.dispose([...ts, ...out]);
  const label = `ADAMW [${shape}] clip ${clip}`;
  return [
    compare(`${label}: m`, gotM, m1, (i) => em[i]),
    compare(`${label}: v`, gotV, v1, (i) => ev[i]),
    // w' = w keep - step: the step carries m's relative error, half of v's and a few u (two
    // divisions, a square root, a sum, a product).
    compare(`${label}: w`, gotW, w1, (i) => {
      const step = Math.abs(w1[i] - w[i] * keep);
      return 3 * U * (Math.abs(w[i] * keep) + Math.abs(w1[i])) + step * (em[i] / Math.abs(m1[i]) + (0.5 * ev[i]) / v1[i] + 8 * U);
    }),
  ];
}

async function batchedMatMul(C: number, m: number, k: number, n: number): Promise<AgreementCheck> {
  const a = normals(31, C * m * k);
  const b = normals(32, C * k * n);
  const want = new Float64Array(C * m * n);
  const abs = new Float64Array(C * m * n);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let t = 0;
        for (let p = 0; p < k; p++) {
          const x = a[(c * m + i) * k + p] * b[(c * k + p) * n + j];
          s += x;
          t += Math.abs(x);
        }
        want[(c * m + i) * n + j] = s;
        abs[(c * m + i) * n + j] = t;
      }
    }
  }
  const [at, bt] = [tf.tensor3d(a, [C, m, k]), tf.tensor3d(b, [C, k, n])];
  const out = tf.matMul(at, bt);
  const got = await read(out);
  tf.dispose([at, bt, out]);
  return compare(`batched matMul [${C}, ${m}, ${k}] x [${C}, ${k}, ${n}]`, got, want, (i) => (k + 1) * U * abs[i]);
}

/**
 * Every check on the active backend (webgpu, with its kernels registered). Sizes cover odd
 * shapes, a run block of one element, several workgroup spans, and a stacked MNIST-like block.
 */
export async function kernelAgreement(): Promise<AgreementCheck[]> {
  return [
    ...(await runMoments([3, 5, 7], 1)),
    ...(await runMoments([7, 1, 1], 2)),
    ...(await runMoments([50, 97, 301], 3)),
    await axpy(100_003),
    ...(await adamw([4, 30, 70], 0)),
    ...(await adamw([4, 30, 70], 5)),
    await batchedMatMul(8, 33, 129, 65),
  ];
}
