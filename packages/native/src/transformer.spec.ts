/**
 * The transformer kernels (plugin-xlnet's fused pieces) on their own: GELU and its slope against a
 * float64 reference across both tails (the kernel's erfc is a polynomial fitted here, so its
 * accuracy is measured, not assumed), the bias sums per replica, the embedding scatter-add with
 * repeated ids, the whole attention block and its backward pass against float64 (mask and
 * normalisation included), the layer norm against float64, and errors
 * that name the kernel and the input. Agreement with the composed TensorFlow.js ops, gradients
 * included, is tested in plugin-xlnet's model.spec.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { registerNative } from './backend.js';
import { ADD_LAYER_NORM, BIAS_GELU, BIAS_GELU_GRAD, LAYER_NORM_GRAD, NATIVE, REL_ATTENTION_BLOCK, REL_ATTENTION_BLOCK_GRAD, SCATTER_ADD_ROWS } from './kernels.js';

beforeAll(async () => {
  if (loadAddon().ok) {
    await registerNative();
    await tf.setBackend(NATIVE);
  }
});

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];

/** erfc in float64: the Maclaurin series below 3 (terms below 1e4: 1e-12 absolute), Lentz's continued fraction above. */
function erfc(z: number): number {
  if (z < 0) return 2 - erfc(-z);
  if (z < 3) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 80; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = exp(-z^2) / sqrt(pi) * 1 / (z + 1/2 / (z + 1 / (z + 3/2 / (z + ...)))).
  let f = z;
  let c = z;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = z + a * d;
    d = 1 / d;
    c = z + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}
const cdf = (v: number) => 0.5 * erfc(-v / Math.SQRT2);
const gelu = (v: number) => v * cdf(v);
const phi = (v: number) => Math.exp((-v * v) / 2) / Math.sqrt(2 * Math.PI);
const slope = (v: number) => cdf(v) + v * phi(v);

describe.skipIf(!loadAddon().ok)('native transformer kernels', () => {
  it('the reference erfc is erfc (known values)', () => {
    expect(erfc(0)).toBe(1);
    expect(Math.abs(erfc(1) - 0.15729920705028513) / 0.157).toBeLessThan(1e-13);
    expect(Math.abs(erfc(3.5) - 7.430983723414128e-7) / 7.43e-7).toBeLessThan(1e-12);
    expect(Math.abs(erfc(6) - 2.1519736712498913e-17) / 2.15e-17).toBeLessThan(1e-12);
  });

  it('GELU of x + bias within 1e-6 relative of float64 on [-12, 12], both tails included, and its slope within 1e-6 of its terms', () => {
    const n = 4801;
    // v = x + bias exactly: bias 0.5 on one replica, -0.25 on the other (both exact in float32).
    const xs = Float32Array.from({ length: 2 * n }, (_, i) => -12 + (24 * (i % n)) / (n - 1));
    const bias = tf.tensor3d([...new Array(3).fill(0.5), ...new Array(3).fill(-0.25)], [2, 1, 3]);
    const x = tf.tensor3d(xs.subarray(0, 2 * 1599 * 3), [2, 1599, 3]);
    const y = (run(BIAS_GELU, { x, bias }) as tf.Tensor).dataSync();
    const dy = tf.onesLike(x);
    const [dx, db] = (run(BIAS_GELU_GRAD, { dy, x, bias }) as tf.Tensor[]).map((t) => t.dataSync());
    const xv = x.dataSync();
    let worstValue = 0;
    let worstSlope = 0;
    const sums = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < xv.length; i++) {
      const g = i < xv.length / 2 ? 0 : 1;
      const v = Math.fround(xv[i] + (g === 0 ? 0.5 : -0.25));
      const want = gelu(v);
      // Relative (gelu(-12) is 2e-32, a normal float; measured: at most 4.7e-7).
      worstValue = Math.max(worstValue, Math.abs(y[i] - want) / Math.max(Math.abs(want), 1e-30));
      // The slope Phi(v) + v phi(v) cancels near v = -0.75: its error is relative to its terms' sizes.
      worstSlope = Math.max(worstSlope, Math.abs(dx[i] - slope(v)) / (cdf(v) + Math.abs(v * phi(v))));
      sums[g * 3 + (i % 3)] += dx[i];
    }
    expect(worstValue).toBeLessThan(1e-6);
    expect(worstSlope).toBeLessThan(1e-6);
    // The bias gradient: each replica's column sums of dx.
    for (let k = 0; k < 6; k++) expect(Math.abs(db[k] - sums[k])).toBeLessThanOrEqual(1e-6 * Math.abs(sums[k]) + 1e-6);
    tf.dispose([bias, x, dy]);
  });

  it('scatter-adds rows, repeated ids summing, and names a row outside the table', () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
    const ids = tf.tensor1d([2, 0, 2, 3], 'int32');
    const out = run(SCATTER_ADD_ROWS, { x, indices: ids }, { rows: 5 }) as tf.Tensor;
    expect(out.shape).toEqual([5, 2]);
    expect(Array.from(out.dataSync())).toEqual([3, 4, 0, 0, 1 + 5, 2 + 6, 7, 8, 0, 0]);
    const bad = tf.tensor1d([2, 0, 9, 3], 'int32');
    expect(() => run(SCATTER_ADD_ROWS, { x, indices: bad }, { rows: 5 })).toThrow(/row 9 is outside the table's 5 rows/);
    expect(() => run(SCATTER_ADD_ROWS, { x, indices: tf.tensor1d([1, 2], 'int32') }, { rows: 5 })).toThrow(/SgdLabScatterAddRows: expected int32 indices, one per row/);
    tf.dispose([x, ids, out, bad]);
  });

  it('attention block: prob and out against float64, every input gradient against float64 central differences, masked keys exactly 0', () => {
    const [C, B, L, H, dh] = [2, 2, 5, 3, 4];
    const d = H * dh;
    const rnd = (n: number, s: number) => Float64Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 12.9898 + s) * 0.8));
    const shapes: Record<string, number[]> = { q: [C, B * L, d], k: [C, B * L, d], v: [C, B * L, d], kr: [C, 2 * L, d], segEmbed: [C, 2, d], rw: [C, 1, d], rr: [C, 1, d], rs: [C, 1, d] };
    const names = Object.keys(shapes);
    const vals: Record<string, Float64Array> = Object.fromEntries(names.map((n, i) => [n, rnd(shapes[n].reduce((a, b) => a * b, 1), i + 1)]));
    const segV = Array.from({ length: L * L }, (_, k) => Number((Math.floor(k / L) === L - 1) !== (k % L === L - 1)));
    // Sequence 0 of replica 0: its first two keys are padding; the others: none.
    const maskV = Array.from({ length: C * B * L }, (_, i) => (i < 2 ? -1e30 : 0));
    const scale = 1 / Math.sqrt(dh);
    /** The block in float64: prob [C B, H, L, L] and out [C, B L, d]. */
    const reference = (x: Record<string, Float64Array>) => {
      const prob = new Float64Array(C * B * H * L * L);
      const out = new Float64Array(C * B * L * d);
      for (let n = 0; n < C * B; n++) {
        const c = Math.floor(n / B);
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < L; i++) {
            const qe = (bias: Float64Array, e: number) => x.q[(n * L + i) * d + h * dh + e] + bias[c * d + h * dh + e];
            const score = Array.from({ length: L }, (_, j) => {
              let ac = 0;
              let bd = 0;
              let e0 = 0;
              let e1 = 0;
              for (let e = 0; e < dh; e++) {
                ac += qe(x.rw, e) * x.k[(n * L + j) * d + h * dh + e];
                bd += qe(x.rr, e) * x.kr[(c * 2 * L + (L - i + j)) * d + h * dh + e];
                e0 += qe(x.rs, e) * x.segEmbed[c * 2 * d + h * dh + e];
                e1 += qe(x.rs, e) * x.segEmbed[c * 2 * d + d + h * dh + e];
              }
              return (ac + bd + (segV[i * L + j] ? e1 : e0)) * scale + maskV[n * L + j];
            });
            const top = Math.max(...score);
            const ex = score.map((v) => Math.exp(v - top));
            const sum = ex.reduce((a, b) => a + b, 0);
            for (let j = 0; j < L; j++) {
              const p = ex[j] / sum;
              prob[((n * H + h) * L + i) * L + j] = p;
              for (let e = 0; e < dh; e++) out[(n * L + i) * d + h * dh + e] += p * x.v[(n * L + j) * d + h * dh + e];
            }
          }
        }
      }
      return { prob, out };
    };
    const tensors = Object.fromEntries(names.map((n) => [n, tf.tensor(Float32Array.from(vals[n]), shapes[n])]));
    const seg = tf.tensor2d(segV, [L, L]);
    const mask = tf.tensor2d(maskV, [C * B, L]);
    const [out, prob] = run(REL_ATTENTION_BLOCK, { ...tensors, seg, mask }, { heads: H, scale }) as tf.Tensor[];
    expect(out.shape).toEqual([C, B * L, d]);
    expect(prob.shape).toEqual([C * B, H, L, L]);
    const want = reference(vals);
    const [pv, ov] = [prob.dataSync(), out.dataSync()];
    pv.forEach((v, i) => expect(Math.abs(v - want.prob[i]), `prob ${i}`).toBeLessThan(2e-6));
    ov.forEach((v, i) => expect(Math.abs(v - want.out[i]), `out ${i}`).toBeLessThan(2e-6));
    for (let r = 0; r < C * B * H * L; r++) {
      const row = pv.subarray(r * L, (r + 1) * L);
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(4e-7);
      // Sequence 0's padding keys: exactly 0.
      if (r < H * L) expect([row[0], row[1]]).toEqual([0, 0]);
      expect(row[2]).toBeGreaterThan(0);
    }
    // Backward: the gradient of sum(w . out) for a fixed weighting w, for every element of every input.
    const w = rnd(C * B * L * d, 9);
    const grads = run(REL_ATTENTION_BLOCK_GRAD, { dout: tf.tensor(Float32Array.from(w), shapes.q), ...tensors, seg, prob }, { heads: H, scale }) as tf.Tensor[];
    const objective = (x: Record<string, Float64Array>) => reference(x).out.reduce((s, v, i) => s + v * w[i], 0);
    const eps = 1e-5;
    names.forEach((name, g) => {
      expect(grads[g].shape, name).toEqual(shapes[name]);
      const got = grads[g].dataSync();
      let largest = 0;
      for (let i = 0; i < vals[name].length; i++) {
        const moved = (delta: number) => ({ ...vals, [name]: Float64Array.from(vals[name], (v, j) => (j === i ? v + delta : v)) });
        const fd = (objective(moved(eps)) - objective(moved(-eps))) / (2 * eps);
        // float32 products and sums (about 1e-7 relative each) against float64 differences (O(eps^2)).
        expect(Math.abs(got[i] - fd), `${name}[${i}]`).toBeLessThan(2e-5 * (1 + Math.abs(fd)));
        largest = Math.max(largest, Math.abs(fd));
      }
      expect(largest, name).toBeGreaterThan(1e-3);
    });
    expect(() => run(REL_ATTENTION_BLOCK, { ...tensors, kr: tensors.segEmbed, seg, mask }, { heads: H, scale })).toThrow(/SgdLabRelAttentionBlock: expected kr \[2,10,12\], got \[2,2,12\]/);
    expect(() => run(REL_ATTENTION_BLOCK, { ...tensors, seg, mask }, { heads: 5, scale })).toThrow(/SgdLabRelAttentionBlock: heads 5 must be a positive divisor of d = 12/);
    expect(() => run(REL_ATTENTION_BLOCK, { ...tensors, seg, mask: tf.zeros([3, L]) }, { heads: H, scale })).toThrow(/SgdLabRelAttentionBlock: expected mask \[4,5\], got \[3,5\]/);
    expect(() => run(REL_ATTENTION_BLOCK_GRAD, { dout: tensors.segEmbed, ...tensors, seg, prob }, { heads: H, scale })).toThrow(/SgdLabRelAttentionBlockGrad: expected dout \[2,10,12\], got \[2,2,12\]/);
    tf.dispose([...Object.values(tensors), seg, mask, out, prob, ...grads]);
  });

  it('layer norm of (a + bias) + b against float64, and its gradients against central differences', () => {
    const [G, R, n] = [2, 3, 8];
    const a = tf.tensor3d(Float32Array.from({ length: G * R * n }, (_, i) => Math.cos(i * 0.7) * 2), [G, R, n]);
    const b = tf.tensor3d(Float32Array.from({ length: G * R * n }, (_, i) => Math.sin(i * 1.3)), [G, R, n]);
    const row = (s: number) => tf.tensor3d(Float32Array.from({ length: G * n }, (_, i) => 1 + 0.3 * Math.sin(i + s)), [G, 1, n]);
    const [bias, gamma, beta] = [row(1), row(2), row(3)];
    const [y, , rstd] = run(ADD_LAYER_NORM, { a, b, bias, gamma, beta }, { epsilon: 1e-12 }) as tf.Tensor[];
    expect(rstd.shape).toEqual([G, R, 1]);
    const [av, bv, cv, gv, ev, yv] = [a, b, bias, gamma, beta, y].map((t) => t.dataSync());
    const norm = (q: number, shift: (j: number) => number = () => 0) => {
      const g = Math.floor(q / R);
      const x = Array.from({ length: n }, (_, j) => av[q * n + j] + cv[g * n + j] + bv[q * n + j] + shift(j));
      const m = x.reduce((s, v) => s + v, 0) / n;
      const sd = Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / n + 1e-12);
      return x.map((v, j) => ((v - m) / sd) * gv[g * n + j] + ev[g * n + j]);
    };
    for (let q = 0; q < G * R; q++) norm(q).forEach((v, j) => expect(Math.abs(yv[q * n + j] - v)).toBeLessThan(3e-6));
    // Backward: d/dx of sum(w . y) for a fixed weighting w, against float64 central differences.
    const w = Float32Array.from({ length: G * R * n }, (_, i) => Math.sin(i * 2.1));
    const [, xhat] = run(ADD_LAYER_NORM, { a, b, bias, gamma, beta }, { epsilon: 1e-12 }) as tf.Tensor[];
    const [dx, dgamma, dbeta, dbias] = run(LAYER_NORM_GRAD, { dy: tf.tensor3d(w, [G, R, n]), xhat, rstd, gamma }, { withBias: true }) as tf.Tensor[];
    const dxv = dx.dataSync();
    const h = 1e-4;
    for (const [q, j] of [[0, 0], [2, 5], [4, 7]]) {
      const at = (d: number) => norm(q, (k) => (k === j ? d : 0)).reduce((s, v, k) => s + w[q * n + k] * v, 0);
      expect(Math.abs(dxv[q * n + j] - (at(h) - at(-h)) / (2 * h))).toBeLessThan(1e-4);
    }
    // The row gradients: per replica, sums over its rows.
    const [xh, dg, dbe, dc] = [xhat, dgamma, dbeta, dbias].map((t) => t.dataSync());
    for (let g = 0; g < G; g++) {
      for (let j = 0; j < n; j++) {
        let [sg, sb, sc] = [0, 0, 0];
        for (let r = 0; r < R; r++) {
          const i = (g * R + r) * n + j;
          sg += w[i] * xh[i];
          sb += w[i];
          sc += dxv[i];
        }
        expect(Math.abs(dg[g * n + j] - sg)).toBeLessThan(1e-5);
        expect(Math.abs(dbe[g * n + j] - sb)).toBeLessThan(1e-5);
        expect(Math.abs(dc[g * n + j] - sc)).toBeLessThan(1e-5);
      }
    }
    expect(() => run(ADD_LAYER_NORM, { a, b, gamma: tf.ones([3, 1, n]), beta }, { epsilon: 1e-12 })).toThrow(/SgdLabAddLayerNorm: gamma \[3,1,8\] is not a row per replica of x \[2,3,8\]/);
    expect(() => run(ADD_LAYER_NORM, { a, b: tf.ones([2, 3]), gamma, beta }, { epsilon: 1e-12 })).toThrow(/a \[2,3,8\] and b \[2,3\] differ/);
    expect(() => run(BIAS_GELU, { x: tf.ones([4, 8], 'int32'), bias: tf.ones([1, 8]) })).toThrow(/SgdLabBiasGelu: expected a float32 x, got int32/);
  });
});
