/**
 * The native kernels agree with the wasm backend's on every shape and transpose combination the
 * settings use (and a few more), to float32 tolerance: |C_native - C_wasm| <= 2 k u (|A| |B|)_ij
 * with u = 2^-24 (the standard bound for two float32 dot products of length k), plus a denormal
 * floor. Gradients through matMul agree too.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { registerNative } from './backend.js';
import { ADAMW, NATIVE, kernelCalls, planMatMul } from './kernels.js';

const required = process.env.SGD_LAB_NATIVE !== '0';

beforeAll(async () => {
  const load = loadAddon();
  // CI builds the addon (.ci/run installs libopenblas-dev); a missing addon there is a failure.
  if (required) expect(load.ok, load.ok ? '' : load.reason).toBe(true);
  if (load.ok) await registerNative();
  setWasmPaths(join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
});

/** Seeded uniform values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

async function on<T>(backend: string, f: () => T): Promise<T> {
  await tf.setBackend(backend);
  return tf.tidy(f);
}

type Case = { a: number[]; b: number[]; ta: boolean; tb: boolean; why: string };
const cases: Case[] = [];
const tt = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;
const shapes: [number[], number[], string][] = [
  [[64, 256], [256, 128], 'deep linear, per replica'],
  [[16, 64, 256], [16, 256, 128], 'deep linear, stacked'],
  [[8, 128, 784], [8, 784, 256], 'MNIST layer 1, stacked'],
  [[8, 128, 256], [8, 256, 128], 'MNIST layer 2'],
  [[8, 128, 128], [8, 128, 10], 'MNIST head'],
  [[2, 12, 16, 32], [2, 12, 32, 16], 'attention scores [B, H, L, d]'],
  [[5, 7], [1, 7, 3], 'rank 2 by a batch of 1'],
  [[4, 5, 7], [7, 3], 'batch by a shared matrix'],
  [[1, 3, 1], [1, 1, 4], 'outer product, k = 1'],
  [[3, 0, 4], [3, 4, 2], 'empty'],
];
for (const [a, b, why] of shapes) {
  for (const [ta, tb] of tt) {
    const sa = [...a];
    const sb = [...b];
    // Store the operand transposed so op(A) op(B) keeps the shapes above.
    if (ta) [sa[sa.length - 2], sa[sa.length - 1]] = [sa[sa.length - 1], sa[sa.length - 2]];
    if (tb) [sb[sb.length - 2], sb[sb.length - 1]] = [sb[sb.length - 1], sb[sb.length - 2]];
    cases.push({ a: sa, b: sb, ta, tb, why });
  }
}

describe.skipIf(!loadAddon().ok)('native kernels', () => {
  it.each(cases)('BatchMatMul $why, A $a, B $b, transposeA $ta, transposeB $tb', async ({ a, b, ta, tb }) => {
    const av = values(a.reduce((s, d) => s * d, 1), 1);
    const bv = values(b.reduce((s, d) => s * d, 1), 2);
    const before = kernelCalls.BatchMatMul?.native ?? 0;
    const [native, shape] = await on(NATIVE, () => {
      const c = tf.matMul(tf.tensor(av, a), tf.tensor(bv, b), ta, tb);
      return [c.dataSync().slice(), c.shape] as const;
    });
    expect(kernelCalls.BatchMatMul.native).toBe(before + 1);
    const [wasm, wshape, bound] = await on('wasm', () => {
      const A = tf.tensor(av, a);
      const B = tf.tensor(bv, b);
      const c = tf.matMul(A, B, ta, tb);
      const abs = tf.matMul(tf.abs(A), tf.abs(B), ta, tb);
      return [c.dataSync().slice(), c.shape, abs.dataSync().slice()] as const;
    });
    expect(shape).toEqual(wshape);
    const k = ta ? a[a.length - 2] : a[a.length - 1];
    for (let i = 0; i < wasm.length; i++) expect(Math.abs(native[i] - wasm[i])).toBeLessThanOrEqual(2 * k * 2 ** -24 * bound[i] * 1.01 + 1e-30);
  });

  it('fused matMul with bias and relu agrees with the cpu kernel, and its gradients with wasm', async () => {
    const x = values(32 * 20, 3);
    const w = values(20 * 10, 4);
    const bias = values(10, 5);
    const fused = async (backend: string) =>
      on(backend, () => {
        const X = tf.tensor2d(x, [32, 20]);
        const W = tf.tensor2d(w, [20, 10]);
        const B = tf.tensor1d(bias);
        const y = tf.fused.matMul({ a: X, b: W, bias: B, activation: 'relu' });
        const grads = tf.grads((wt: tf.Tensor, bt: tf.Tensor) => tf.sum(tf.square(tf.fused.matMul({ a: X, b: wt as tf.Tensor2D, bias: bt, activation: 'relu' }))))([W, B]);
        return [y.dataSync().slice(), ...grads.map((g) => g.dataSync().slice())];
      });
    const before = kernelCalls._FusedMatMul?.native ?? 0;
    const n = await fused(NATIVE);
    expect(kernelCalls._FusedMatMul.native).toBeGreaterThan(before);
    const c = await fused('cpu');
    const wv = await fused('wasm');
    n[0].forEach((v, i) => expect(v).toBeCloseTo(c[0][i], 5));
    for (let j = 1; j < n.length; j++) n[j].forEach((v, i) => expect(v).toBeCloseTo(wv[j][i], 3));
    expect(n[0].some((v) => v === 0) && n[0].some((v) => v > 0)).toBe(true);
  });

  const epilogues: { a: number[]; b: number[]; bias: number[]; activation: tf.fused.Activation; why: string }[] = [
    { a: [8, 16, 24], b: [8, 24, 12], bias: [8, 1, 12], activation: 'relu', why: 'per-replica bias of a stacked MLP layer' },
    { a: [8, 16, 24], b: [8, 24, 12], bias: [8, 1, 12], activation: 'linear', why: 'per-replica bias, no activation' },
    { a: [3, 16, 24], b: [24, 12], bias: [12], activation: 'relu6', why: 'shared bias vector' },
    { a: [16, 24], b: [24, 12], bias: [16, 1], activation: 'leakyrelu', why: 'a bias per row' },
    { a: [2, 3, 16, 24], b: [2, 3, 24, 12], bias: [], activation: 'sigmoid', why: 'scalar bias, rank 4' },
    { a: [4, 16, 24], b: [4, 24, 12], bias: [4, 16, 12], activation: 'elu', why: 'full bias' },
    { a: [4, 16, 0], b: [4, 0, 12], bias: [4, 1, 12], activation: 'relu', why: 'empty sum (k = 0)' },
  ];
  it.each(epilogues)('fused matMul epilogue: $why ($activation) agrees with the cpu kernel', async ({ a, b, bias, activation }) => {
    const av = values(a.reduce((s, d) => s * d, 1), 21);
    const bv = values(b.reduce((s, d) => s * d, 1), 22);
    const cv = values(bias.reduce((s, d) => s * d, 1), 23);
    const run = (backend: string) =>
      on(backend, () => {
        const y = tf.fused.matMul({ a: tf.tensor(av, a) as tf.Tensor3D, b: tf.tensor(bv, b) as tf.Tensor3D, bias: tf.tensor(cv, bias), activation, leakyreluAlpha: 0.1 });
        return [y.dataSync().slice(), y.shape] as const;
      });
    const before = kernelCalls._FusedMatMul?.native ?? 0;
    const [n, ns] = await run(NATIVE);
    expect(kernelCalls._FusedMatMul.native).toBe(before + 1);
    const [c, cs] = await run('cpu');
    expect(ns).toEqual(cs);
    // Products of length k = 24 of values in [-1, 1): the float32 bound 2 k u k plus the bias' rounding.
    const k = a[a.length - 1];
    n.forEach((v, i) => expect(Math.abs(v - c[i])).toBeLessThanOrEqual(2 * k * k * 2 ** -24 + 2 ** -22));
    if (activation === 'relu') expect(n.every((v) => v >= 0)).toBe(true);
  });

  it('leaves a bias it cannot read as broadcast to the cpu kernel, which names the shapes', async () => {
    const before = kernelCalls._FusedMatMul?.fallback ?? 0;
    // tf.fused.matMul flattens the batch axes of a and b but not of the bias.
    const run = (backend: string) => on(backend, () => tf.fused.matMul({ a: tf.tensor(values(2 * 3 * 4 * 5, 24), [2, 3, 4, 5]) as tf.Tensor3D, b: tf.tensor(values(2 * 3 * 5 * 6, 25), [2, 3, 5, 6]) as tf.Tensor3D, bias: tf.tensor(values(3 * 6, 26), [1, 3, 1, 6]) }));
    await expect(run(NATIVE)).rejects.toThrow(/could not be broadcast/);
    expect(kernelCalls._FusedMatMul.fallback).toBe(before + 1);
    await expect(run('cpu')).rejects.toThrow(/could not be broadcast/);
  });

  it('falls back to the cpu kernel for what it does not cover, with the same result', async () => {
    const av = Int32Array.from([1, 2, 3, 4]);
    const before = kernelCalls.BatchMatMul.fallback;
    const r = await on(NATIVE, () => tf.matMul(tf.tensor2d(av, [2, 2], 'int32'), tf.tensor2d(av, [2, 2], 'int32')).dataSync().slice());
    expect(Array.from(r)).toEqual([7, 10, 15, 22]);
    expect(kernelCalls.BatchMatMul.fallback).toBe(before + 1);
    // Batch dimensions that broadcast by more than 1 are left to the cpu kernel.
    expect(planMatMul([2, 3, 4, 5], [3, 1, 5, 6], false, false)).toBeUndefined();
    expect(() => planMatMul([2, 3], [4, 5], false, false)).toThrow(/inner dimensions differ/);
  });

  it('gives the same results on its thread pool across thread counts, including a pool started by the first call', () => {
    const { addon } = loadAddon() as Extract<ReturnType<typeof loadAddon>, { ok: true }>;
    const threads = addon.getThreads();
    const n = 300_000;
    const x = values(n, 50);
    const expected = Float32Array.from(x, (v) => (v < 0 ? 0 : v));
    const out = new Float32Array(n);
    try {
      for (const t of [2, 1, 3, 2, 4, 1, 2]) {
        addon.setThreads(t);
        for (let i = 0; i < 50; i++) {
          out.fill(-1);
          addon.unary(0, x, out, 0);
          let wrong = 0;
          for (let j = 0; j < n; j++) if (out[j] !== expected[j]) wrong++;
          expect(wrong).toBe(0);
        }
      }
    } finally {
      addon.setThreads(threads);
    }
  });

  it('ADAMW clips per group (per replica of a stacked block) as separate calls on each slice would', async () => {
    const [C, r, c] = [3, 4, 5];
    const n = r * c;
    const ins = ['w', 'g', 'm', 'v'].map((_, i) => values(C * n, 10 + i).map((x) => (i === 3 ? Math.abs(x) : i === 1 ? 4 * x : x)));
    const h = { lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, c1: 0.1, c2: 0.002, decay: 0.01, clip: 1 };
    const [grouped, sliced] = await on(NATIVE, () => {
      const t = (a: Float32Array, shape: number[]) => tf.tensor(a, shape);
      const [w, g, m, v] = ins.map((a) => t(a, [C, r, c]));
      const all = (tf.engine().runKernel(ADAMW, { w, g, m, v }, { ...h, groups: C }) as tf.Tensor[]).map((x) => x.dataSync().slice());
      const parts = Array.from({ length: C }, (_, k) => {
        const [wk, gk, mk, vk] = ins.map((a) => t(a.slice(k * n, (k + 1) * n), [r, c]));
        return (tf.engine().runKernel(ADAMW, { w: wk, g: gk, m: mk, v: vk }, h) as tf.Tensor[]).map((x) => x.dataSync().slice());
      });
      return [all, [0, 1, 2].map((j) => Float32Array.from(parts.flatMap((p) => Array.from(p[j]))))] as const;
    });
    // The same arithmetic on the same elements: equal to the bit.
    for (let j = 0; j < 3; j++) expect(Array.from(grouped[j])).toEqual(Array.from(sliced[j]));
  });

  it('rejects arrays too short for the sizes it is given, instead of reading past them', () => {
    const load = loadAddon();
    if (!load.ok) throw new Error(load.reason);
    const z = new Float32Array(4);
    expect(() => load.addon.gemmBatched(z, z, z, 2, 2, 2, 2, false, false, 4, 4, 4, 1, 0)).toThrow(/a is too short/);
    expect(() => load.addon.gemmBatched(new Float64Array(4) as unknown as Float32Array, z, z, 1, 2, 2, 2, false, false, 4, 4, 4, 1, 0)).toThrow(/a must be a Float32Array/);
    expect(() => load.addon.setThreads(0)).toThrow(/threads must be >= 1/);
  });

  it('sets OpenBLAS threads', () => {
    const load = loadAddon();
    if (!load.ok) throw new Error(load.reason);
    load.addon.setThreads(1);
    expect(load.addon.getThreads()).toBe(1);
    load.addon.setThreads(2);
    expect(load.addon.getThreads()).toBe(2);
  });
});

describe('when the addon is missing or broken', () => {
  it('says why, with the build failure and what to install', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { loadAddonFrom } = await import('./addon.js');
    const dir = mkdtempSync(join(tmpdir(), 'sgd-native-'));
    const status = join(dir, 'status.json');
    const missing = loadAddonFrom(join(dir, 'sgd_native.node'), status);
    expect(missing.ok).toBe(false);
    if (!missing.ok) expect(missing.reason).toMatch(/sgd_native\.node is missing \(it was not built\); install a C\+\+ compiler and OpenBLAS \(Debian\/Ubuntu: apt-get install g\+\+ make python3 libopenblas-dev\)/);
    writeFileSync(status, JSON.stringify({ ok: false, reason: 'OpenBLAS headers (cblas.h) not found' }));
    const failed = loadAddonFrom(join(dir, 'sgd_native.node'), status);
    if (!failed.ok) expect(failed.reason).toMatch(/its build failed: OpenBLAS headers \(cblas\.h\) not found/);
    else expect.fail('a missing addon loaded');
    writeFileSync(join(dir, 'broken.node'), 'not a shared object');
    const broken = loadAddonFrom(join(dir, 'broken.node'), status);
    if (!broken.ok) expect(broken.reason).toMatch(/broken\.node does not load \(.+\); install a C\+\+ compiler/);
    else expect.fail('a broken addon loaded');
  });
});
