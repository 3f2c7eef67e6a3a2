/**
 * The exact variance at t = 0 (oracles.md, generalised to depth d): with A = (W_d..W_{k+1})^T Delta
 * and B = (W_{k-1}..W_1)^T, g_{0,k} = A S_b B and, for x ~ N(0, I),
 * Var(g_{0,k}|F0) = (||A||^2 ||B||^2 + ||A B||^2) / b. For d = 2 this is (p+1)||W2^T Delta||^2 / b
 * and (||W1||^2 ||Delta||^2 + ||Delta W1^T||^2) / b. The full gradient at t = 0 is deterministic.
 */
import type { MetricRecord, Oracle, StudyConfig } from '@sgd-lab/core';
import { layerShapes, matmul64, product } from './model.js';

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

const sq = (a: Float64Array) => a.reduce((s, v) => s + v * v, 0);

/**
 * b * Var(g_{0,k}|F0) per layer, the loss 1/2 ||Delta||^2 and ||grad L(θ0)||^2 (the full gradient
 * of layer k is A B, so its squared norm is ||A B||^2), at θ0.
 */
export function varianceAtZero(theta0: Float64Array, teacher: Float64Array, widths: readonly number[]): { perLayerTimesB: number[]; loss: number; fullGradSqNorm: number } {
  const shapes = layerShapes(widths);
  const d = shapes.length;
  const p = widths[0];
  const o = widths[d];
  const layers: Float64Array[] = [];
  let off = 0;
  for (const [r, c] of shapes) {
    layers.push(theta0.subarray(off, off + r * c));
    off += r * c;
  }
  const delta = product(theta0, widths).map((v, i) => v - teacher[i]);
  // below[k] = W_{k-1} ... W_1 (widths[k] x p); below[0] = I.
  const below: (Float64Array | undefined)[] = [undefined];
  for (let k = 1; k < d; k++) {
    const [r, c] = shapes[k - 1];
    below.push(k === 1 ? Float64Array.from(layers[0]) : matmul64(layers[k - 1], below[k - 1]!, r, c, p));
  }
  const perLayerTimesB = new Array<number>(d);
  let fullGradSqNorm = 0;
  let a: Float64Array = delta; // (W_d..W_{k+1})^T Delta, rows = widths[k+1]
  let aRows = o;
  for (let k = d - 1; k >= 0; k--) {
    const nB2 = k === 0 ? p : sq(below[k]!);
    // A B with B = below[k]^T: (aRows x p)(p x widths[k])
    const ab = k === 0 ? a : matmul64(a, transpose(below[k]!, widths[k], p), aRows, p, widths[k]);
    perLayerTimesB[k] = sq(a) * nB2 + sq(ab);
    fullGradSqNorm += sq(ab);
    if (k > 0) {
      const [r, c] = shapes[k];
      a = matmul64(transpose(layers[k], r, c), a, c, r, p);
      aRows = c;
    }
  }
  return { perLayerTimesB, loss: 0.5 * sq(delta), fullGradSqNorm };
}

export function exactAtZero(teacher: Float64Array, widths: readonly number[]): Oracle {
  return {
    id: 'deeplinear-exact-t0',
    *compute(study: StudyConfig, initPoint: number, theta0: Float64Array): Iterable<MetricRecord> {
      const { perLayerTimesB, loss, fullGradSqNorm } = varianceAtZero(theta0, teacher, widths);
      // Online sampling, C_b = 1/b: tr Sigma(θ0) = b Var(g_0|F0), the same for every b.
      const noiseScale = perLayerTimesB.reduce((s, v) => s + v, 0) / fullGradSqNorm;
      const base = { study: study.name, setting: study.setting, initPoint, estimator: 'exact' as const, step: 0 };
      for (const b of study.batchSizes) {
        for (let k = 0; k < perLayerTimesB.length; k++) {
          yield { ...base, batchSize: b, metric: 'grad_variance', layer: `W${k + 1}`, value: perLayerTimesB[k] / b };
        }
        yield { ...base, batchSize: b, metric: 'grad_variance', layer: 'all', value: perLayerTimesB.reduce((s, v) => s + v, 0) / b };
        yield { ...base, batchSize: b, metric: 'loss', value: loss };
        yield { ...base, batchSize: b, metric: 'noise_scale', layer: 'all', value: noiseScale };
      }
    },
  };
}
