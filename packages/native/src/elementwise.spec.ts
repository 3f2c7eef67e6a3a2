/**
 * Every element-wise, layout and reduction kernel of the native backend against the cpu
 * backend's own kernels (the reference implementation of TensorFlow.js), on shapes that
 * broadcast, are empty, or reduce over every axis pattern. Tolerances: a few float32 ulps for
 * element-wise results; for sums, n u sum|x| (the cpu kernel accumulates in float32, native in
 * float64). Also: the output-array pool never hands out an array something else can still see.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { registerNative, type NativeBackend } from './backend.js';
import { AXPY, MUL_STEP, NATIVE, RUN_BLOCK_MOMENTS, RUN_MOMENTS, SQUARED_DEVIATION_SUM, kernelCalls } from './kernels.js';

const U = 2 ** -24;

beforeAll(async () => {
  if (loadAddon().ok) await registerNative();
});

function values(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Runs f on both backends with the same inputs; returns [native, cpu] values and shapes. */
async function both(f: () => tf.Tensor): Promise<[Float32Array, Float32Array, number[], number[]]> {
  await tf.setBackend(NATIVE);
  const n = tf.tidy(f);
  const nv = n.dataSync() as Float32Array;
  const ns = n.shape;
  n.dispose();
  await tf.setBackend('cpu');
  const c = tf.tidy(f);
  const cv = c.dataSync() as Float32Array;
  const cs = c.shape;
  c.dispose();
  return [nv, cv, ns, cs];
}

function close(a: Float32Array, b: Float32Array, ulps = 4, abs = 0): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i])) expect(a[i]).toBeNaN();
    else if (!Number.isFinite(b[i])) expect(a[i]).toBe(b[i]);
    else expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(ulps * U * Math.abs(b[i]) + abs);
  }
}

describe.skipIf(!loadAddon().ok)('native element-wise and reduction kernels agree with cpu', () => {
  const pairs: [number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4]],
    [[2, 3, 4], [4]],
    [[2, 3, 4], [3, 1]],
    [[2, 1, 4], [1, 3, 1]],
    [[5], []],
    [[], [6]],
    [[0, 3], [3]],
    [[16, 64, 256], [64, 256]],
  ];
  const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['Add', tf.add],
    ['Sub', tf.sub],
    ['Multiply', tf.mul],
    ['RealDiv', tf.div],
    ['SquaredDifference', tf.squaredDifference],
    ['Maximum', tf.maximum],
    ['Minimum', tf.minimum],
  ];
  it.each(ops.flatMap(([name, op]) => pairs.map(([a, b]) => ({ name, op, a, b }))))('$name of $a and $b', async ({ name, op, a, b }) => {
    const av = values(size(a), 1);
    const bv = values(size(b), 2, 0.5, 2);
    const before = kernelCalls[name]?.native ?? 0;
    const [n, c, ns, cs] = await both(() => op(tf.tensor(av, a), tf.tensor(bv, b)));
    expect(ns).toEqual(cs);
    close(n, c, 2);
    expect(kernelCalls[name].native).toBe(before + 1);
  });

  const unary: [string, (x: tf.Tensor) => tf.Tensor, number, number][] = [
    ['Relu', tf.relu, -2, 2],
    ['Step', (x) => tf.step(x, 0.25), -2, 2],
    ['Exp', tf.exp, -5, 5],
    ['Log', tf.log, 0.01, 10],
    ['Neg', tf.neg, -2, 2],
    ['Sqrt', tf.sqrt, 0, 10],
    ['Rsqrt', tf.rsqrt, 0.01, 10],
    ['Tanh', tf.tanh, -4, 4],
    ['Sigmoid', tf.sigmoid, -8, 8],
    ['Abs', tf.abs, -2, 2],
    ['Erf', tf.erf, -3, 3],
    ['LeakyRelu', (x) => tf.leakyRelu(x, 0.1), -2, 2],
    ['Elu', tf.elu, -3, 3],
    ['Square', tf.square, -3, 3],
  ];
  it.each(unary.map(([name, f, lo, hi]) => ({ name, f, lo, hi })))('$name', async ({ name, f, lo, hi }) => {
    const xv = values(3 * 257, 3, lo, hi);
    const before = kernelCalls[name]?.native ?? 0;
    const [n, c] = await both(() => f(tf.tensor2d(xv, [3, 257])));
    // Transcendentals: the C library and V8 may differ in the last bits; erf's cpu kernel is a
    // rational approximation good to about 1.5e-7 absolute.
    close(n, c, 8, name === 'Erf' ? 3e-7 : 1e-30);
    expect(kernelCalls[name].native).toBe(before + 1);
  });

  it('Softmax over the last axis, NaN-free for large logits', async () => {
    const xv = values(3 * 4 * 50, 4, -30, 30);
    const [n, c] = await both(() => tf.softmax(tf.tensor3d(xv, [3, 4, 50])));
    close(n, c, 8, 1e-9);
    const [big] = await both(() => tf.softmax(tf.tensor2d([1000, 1001, 999], [1, 3])));
    expect(big.every((v) => Number.isFinite(v))).toBe(true);
  });

  it.each([
    { shape: [3, 5], perm: [1, 0] },
    { shape: [4, 33, 70], perm: [0, 2, 1] },
    { shape: [2, 3, 4], perm: [2, 0, 1] },
    { shape: [2, 3, 4, 5], perm: [1, 0, 2, 3] },
    { shape: [2, 3, 4, 5], perm: [3, 2, 1, 0] },
    { shape: [2, 12, 16, 32], perm: [0, 2, 1, 3] },
    { shape: [0, 3], perm: [1, 0] },
  ])('Transpose $shape by $perm', async ({ shape, perm }) => {
    const xv = values(size(shape), 5);
    const [n, c, ns, cs] = await both(() => tf.transpose(tf.tensor(xv, shape), perm));
    expect(ns).toEqual(cs);
    expect(Array.from(n)).toEqual(Array.from(c));
  });

  const axes: (number | number[] | undefined)[] = [0, 1, 2, -1, [0, 1], [1, 2], [0, 2], [0, 1, 2], undefined];
  it.each(axes.flatMap((axis) => [true, false].flatMap((keepDims) => ['sum', 'mean'].map((fn) => ({ axis, keepDims, fn })))))(
    '$fn over $axis (keepDims $keepDims)',
    async ({ axis, keepDims, fn }) => {
      const shape = [7, 9, 300];
      const xv = values(size(shape), 6);
      const f = fn === 'sum' ? tf.sum : tf.mean;
      const [n, c, ns, cs] = await both(() => f(tf.tensor(xv, shape), axis, keepDims));
      expect(ns).toEqual(cs);
      const count = size(shape) / n.length;
      // |float32 running sum - exact| <= count u sum|x| <= count^2 u max|x| (max|x| = 2).
      for (let i = 0; i < n.length; i++) expect(Math.abs(n[i] - c[i])).toBeLessThanOrEqual(count * U * count * 2 / (fn === 'mean' ? count : 1) + 1e-6);
    },
  );

  it.each([
    { shape: [2, 3], reps: [2, 1] },
    { shape: [2, 3], reps: [1, 3] },
    { shape: [1, 4, 5], reps: [3, 1, 1] },
    { shape: [2, 1, 2, 2], reps: [1, 2, 1, 3] },
  ])('Tile $shape by $reps', async ({ shape, reps }) => {
    const xv = values(size(shape), 7);
    const [n, c, ns, cs] = await both(() => tf.tile(tf.tensor(xv, shape), reps));
    expect(ns).toEqual(cs);
    expect(Array.from(n)).toEqual(Array.from(c));
  });

  it.each([
    { shape: [5, 7], begin: [1, 2], size: [3, 4] },
    { shape: [2, 3, 8, 9], begin: [0, 1, 2, 0], size: [2, 2, 5, 9] },
    { shape: [2, 3, 8, 9], begin: [1, 0, 0, 3], size: [1, 3, 8, 1] },
    { shape: [4, 6], begin: [2, 0], size: [0, 6] },
  ])('Slice $shape from $begin size $size', async ({ shape, begin, size }) => {
    const xv = values(shape.reduce((a, b) => a * b, 1), 15);
    const before = kernelCalls.Slice?.native ?? 0;
    const [n, c, ns, cs] = await both(() => tf.slice(tf.tensor(xv, shape), begin, size));
    expect(ns).toEqual(cs);
    expect(Array.from(n)).toEqual(Array.from(c));
    expect(kernelCalls.Slice.native).toBe(before + 1);
  });

  it.each([
    { shape: [3, 4], paddings: [[1, 2], [0, 3]] as [number, number][], value: 0 },
    { shape: [2, 3, 4, 5], paddings: [[0, 0], [0, 1], [2, 0], [1, 1]] as [number, number][], value: -1.5 },
  ])('Pad $shape by $paddings', async ({ shape, paddings, value }) => {
    const xv = values(shape.reduce((a, b) => a * b, 1), 16);
    const [n, c, ns, cs] = await both(() => tf.pad(tf.tensor(xv, shape), paddings, value));
    expect(ns).toEqual(cs);
    expect(Array.from(n)).toEqual(Array.from(c));
  });

  it('Gather of table rows, and the gradient of a slice (a pad)', async () => {
    const table = values(10 * 6, 17);
    const [n, c, ns, cs] = await both(() => tf.gather(tf.tensor2d(table, [10, 6]), tf.tensor2d([3, 0, 9, 3, 1, 2], [2, 3], 'int32')));
    expect(ns).toEqual([2, 3, 6]);
    expect(ns).toEqual(cs);
    expect(Array.from(n)).toEqual(Array.from(c));
    const [gn, gc] = await both(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, [1, 1], [2, 3]), tf.slice(x, [0, 0], [2, 3]))))(tf.tensor2d(table.subarray(0, 20), [4, 5])));
    close(gn, gc, 2);
  });

  it('fused squared-deviation sums and axpy equal their composed ops', async () => {
    await tf.setBackend(NATIVE);
    const x = tf.tensor3d(values(6 * 20 * 30, 8), [6, 20, 30]);
    const mean = tf.mean(x, 0);
    const fused = (tf.engine().runKernel(SQUARED_DEVIATION_SUM, { x, mean }, {}) as tf.Tensor).dataSync();
    const composed = tf.sum(tf.squaredDifference(x, mean), [1, 2]).dataSync();
    close(fused as Float32Array, composed as Float32Array, 600 * 4);
    const y = tf.tensor3d(values(6 * 20 * 30, 9), [6, 20, 30]);
    const ax = (tf.engine().runKernel(AXPY, { x, y }, { alpha: -0.3 }) as tf.Tensor).dataSync();
    close(ax as Float32Array, tf.sub(x, tf.mul(y, 0.3)).dataSync() as Float32Array, 4, 1e-7);
    expect(() => tf.engine().runKernel(AXPY, { x, y: mean }, { alpha: 1 })).toThrow(/two float32 tensors of one shape/);
    tf.dispose([x, mean, y]);
  });

  it('run moments equal the mean and the squared deviations from it, for one run and many', async () => {
    await tf.setBackend(NATIVE);
    for (const [runs, rows, cols] of [[8, 784, 256], [1, 3, 5], [300, 2, 3], [5, 1, 4099]]) {
      const x = tf.tensor3d(values(runs * rows * cols, runs), [runs, rows, cols]);
      const [mean, dev] = tf.engine().runKernel(RUN_MOMENTS, { x }, {}) as tf.Tensor[];
      expect(mean.shape).toEqual([rows, cols]);
      expect(dev.shape).toEqual([runs]);
      // The mean is the Mean kernel's, to the bit (the same double sum in the same order).
      expect(Array.from(mean.dataSync())).toEqual(Array.from(tf.mean(x, 0).dataSync()));
      // Deviations in double from that float32 mean: only the final rounding differs from float64.
      const xv = x.dataSync();
      const mv = mean.dataSync();
      const dv = dev.dataSync();
      for (let r = 0; r < runs; r++) {
        let s = 0;
        for (let j = 0; j < rows * cols; j++) s += (xv[r * rows * cols + j] - mv[j]) ** 2;
        expect(Math.abs(dv[r] - s)).toBeLessThanOrEqual(s * 2 ** -23 + 1e-30);
      }
      tf.dispose([x, mean, dev]);
    }
    expect(() => tf.engine().runKernel(RUN_MOMENTS, { x: tf.tensor1d([1, 2], 'int32') }, {})).toThrow(/expected a float32 x/);
  });

  it('run-block moments equal RUN_MOMENTS on each run block, of x and of x - y unmaterialised', async () => {
    await tf.setBackend(NATIVE);
    // Uneven last blocks, one block, one run per block, and tiles narrower than the columns.
    for (const [runs, cols, block] of [[50, 700, 16], [7, 5, 7], [9, 33, 1], [40, 20000, 16], [3, 4, 8]]) {
      const x = tf.tensor2d(values(runs * cols, runs + cols), [runs, cols]);
      const y = tf.tensor2d(values(runs * cols, block), [runs, cols]);
      for (const withY of [false, true]) {
        const [dev, sq] = tf.engine().runKernel(RUN_BLOCK_MOMENTS, withY ? { x, y } : { x }, { block }) as tf.Tensor[];
        expect(dev.shape).toEqual([runs]);
        expect(sq.shape).toEqual([Math.ceil(runs / block)]);
        const target = withY ? tf.sub(x, y) : x;
        const dv = dev.dataSync();
        const qv = sq.dataSync();
        for (let k = 0, r0 = 0; r0 < runs; k++, r0 += block) {
          const n = Math.min(block, runs - r0);
          const part = tf.slice(target, r0, n);
          const [mean, ref] = tf.engine().runKernel(RUN_MOMENTS, { x: part }, {}) as tf.Tensor[];
          const rv = ref.dataSync();
          // The same float32 block mean; the deviations' double sums differ by the order of the tiles only.
          for (let r = 0; r < n; r++) expect(Math.abs(dv[r0 + r] - rv[r])).toBeLessThanOrEqual(rv[r] * 2 ** -22 + 1e-30);
          const mv = mean.dataSync();
          let q = 0;
          for (let j = 0; j < cols; j++) q += mv[j] * mv[j];
          expect(Math.abs(qv[k] - q)).toBeLessThanOrEqual(q * 2 ** -23 + 1e-30);
          tf.dispose([part, mean, ref]);
        }
        tf.dispose(withY ? [dev, sq, target] : [dev, sq]);
      }
      // all: the three pairs (x, y, x - y) from one read equal the separate calls.
      const three = tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x, y }, { block, all: true }) as tf.Tensor[];
      expect(three).toHaveLength(6);
      const separate = [{ x }, { x: y }, { x, y }].flatMap((inputs) => tf.engine().runKernel(RUN_BLOCK_MOMENTS, inputs, { block }) as tf.Tensor[]);
      three.forEach((t, i) => {
        expect(t.shape).toEqual(separate[i].shape);
        const a = t.dataSync();
        const b = separate[i].dataSync();
        for (let j = 0; j < a.length; j++) expect(Math.abs(a[j] - b[j])).toBeLessThanOrEqual(Math.abs(b[j]) * 2 ** -22 + 1e-30);
      });
      tf.dispose([...three, ...separate]);
      tf.dispose([x, y]);
    }
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    expect(() => tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x, y: tf.tensor1d([1, 2]) }, { block: 1 })).toThrow(/y must be float32 of x's shape/);
    expect(() => tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x }, { block: 0 })).toThrow(/block must be a positive integer/);
    expect(() => tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x }, { block: 1, all: true })).toThrow(/all needs y/);
  });

  it('a * step(b) equals the composed ops, NaN included, with broadcasting', async () => {
    await tf.setBackend(NATIVE);
    const a = tf.tensor3d(values(4 * 6 * 5, 30), [4, 6, 5]);
    const bv = values(6 * 5, 31);
    bv[3] = NaN;
    bv[7] = 0;
    const b = tf.tensor2d(bv, [6, 5]);
    const fused = (tf.engine().runKernel(MUL_STEP, { a, b }, {}) as tf.Tensor).dataSync();
    const composed = tf.mul(a, tf.step(b)).dataSync();
    expect(Array.from(fused)).toEqual(Array.from(composed));
    expect(Number.isNaN(fused[3])).toBe(true);
    expect(Math.abs(fused[7])).toBe(0);
    tf.dispose([a, b]);
  });

  it('updates x in place only when nothing else can see its array', async () => {
    await tf.setBackend(NATIVE);
    const backend = tf.backend() as NativeBackend;
    const array = (t: tf.Tensor) => backend.data.get(t.dataId)?.values;
    const yv = values(64, 40);
    const y = tf.tensor1d(yv);
    const expected = (xv: Float32Array) => Array.from(xv, (v, i) => Math.fround(v + Math.fround(-0.5 * yv[i])));
    const axpy = (x: tf.Tensor) => tf.engine().runKernel(AXPY, { x, y }, { alpha: -0.5, inPlace: true }) as tf.Tensor;
    // A pooled array only x holds: updated where it is, and the result holds it.
    const x = tf.add(tf.tensor1d(values(64, 41)), 0);
    const before = Float32Array.from(array(x) as Float32Array);
    const r = axpy(x);
    expect(array(r)).toBe(array(x));
    x.dispose();
    expect(Array.from(r.dataSync())).toEqual(expected(before));
    // Read out (the caller may hold the array): a new array, x unchanged.
    const read = tf.add(tf.tensor1d(values(64, 42)), 0);
    const seen = read.dataSync();
    const copy = Array.from(seen);
    const r2 = axpy(read);
    expect(array(r2)).not.toBe(seen);
    expect(Array.from(seen)).toEqual(copy);
    expect(Array.from(r2.dataSync())).toEqual(expected(Float32Array.from(copy)));
    // Another tensor on the same data (a reshape): a new array, the other tensor unchanged.
    const shared = tf.add(tf.tensor1d(values(64, 43)), 0);
    const other = tf.reshape(shared, [8, 8]);
    const otherBefore = Array.from(other.dataSync());
    const r3 = axpy(shared);
    expect(Array.from(other.dataSync())).toEqual(otherBefore);
    expect(Array.from(r3.dataSync())).toEqual(expected(Float32Array.from(otherBefore)));
    tf.dispose([y, r, read, r2, shared, other, r3]);
  });

  it('gradients through native kernels equal those on cpu', async () => {
    const wv = values(20 * 10, 10);
    const xv = values(32 * 20, 11);
    const [n, c] = await both(() => {
      const x = tf.tensor2d(xv, [32, 20]);
      const g = tf.grad((w: tf.Tensor) => tf.mean(tf.sum(tf.mul(tf.softmax(tf.tanh(tf.matMul(x, w))), tf.sigmoid(tf.matMul(x, w))), -1)))(tf.tensor2d(wv, [20, 10]));
      return g;
    });
    close(n, c, 64, 1e-7);
  });
});

describe.skipIf(!loadAddon().ok)('the output-array pool', () => {
  it('reuses the arrays of freed results', async () => {
    await tf.setBackend(NATIVE);
    const pool = (tf.backend() as NativeBackend).pool;
    const a = tf.tensor2d(values(64 * 64, 12), [64, 64]);
    tf.dispose(tf.add(a, a));
    const reused = pool.stats.reused;
    tf.dispose(tf.add(a, a));
    expect(pool.stats.reused).toBe(reused + 1);
    a.dispose();
  });

  it('never reuses an array that was read out', async () => {
    await tf.setBackend(NATIVE);
    const a = tf.tensor1d(values(4096, 13));
    const r = tf.add(a, 1);
    const read = r.dataSync();
    const copy = Float32Array.from(read);
    r.dispose();
    for (let i = 0; i < 5; i++) tf.dispose(tf.mul(a, i));
    expect(Array.from(read)).toEqual(Array.from(copy));
    a.dispose();
  });

  it('never reuses an array a slice still views', async () => {
    await tf.setBackend(NATIVE);
    const a = tf.tensor2d(values(64 * 64, 14), [64, 64]);
    const r = tf.add(a, 1);
    const view = tf.slice(r, [10, 0], [4, 64]);
    const expected = Float32Array.from(r.dataSync().subarray(640, 640 + 256));
    // r's array escaped by dataSync above; make one that did not, and slice it.
    const r2 = tf.mul(a, 3);
    const view2 = tf.slice(r2, [5, 0], [2, 64]);
    r2.dispose();
    for (let i = 0; i < 5; i++) tf.dispose(tf.mul(a, -7 - i));
    expect(Array.from(view2.dataSync())).toEqual(Array.from(a.dataSync().subarray(320, 448)).map((v) => Math.fround(v * 3)));
    expect(Array.from(view.dataSync())).toEqual(Array.from(expected));
    tf.dispose([a, r, view, view2]);
  });
});

describe.skipIf(!loadAddon().ok)('inputs the cpu kernels leave in other arrays', () => {
  it('reads a float32 cast from bool', async () => {
    const [n, c] = await both(() => tf.mean(tf.cast(tf.equal(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 0, 3, 0])), 'float32')));
    expect(Array.from(n)).toEqual(Array.from(c));
    expect(n[0]).toBe(0.5);
  });
});
