import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { RandomStream } from '@sgd-lab/core';
import { RUN_BLOCK_MOMENTS, ReplicaEngine, useBackend } from '@sgd-lab/tensor';
import { deepLinearProgram, drawLayers, layerShapes, product } from './model.js';
import { varianceAtZero } from './oracle.js';

/** Float64 stochastic loss (1/2b) sum_i ||(P - M) x_i||^2 of flat layers. */
function stochasticLoss(flat: Float64Array, widths: number[], teacher: Float64Array, x: Float64Array, b: number): number {
  const p = widths[0];
  const o = widths[widths.length - 1];
  const delta = product(flat, widths).map((v, i) => v - teacher[i]);
  let s = 0;
  for (let i = 0; i < b; i++)
    for (let r = 0; r < o; r++) {
      let v = 0;
      for (let c = 0; c < p; c++) v += delta[r * p + c] * x[i * p + c];
      s += v * v;
    }
  return s / (2 * b);
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('deep linear program', () => {
  it.each([[[3, 4, 2]], [[3, 5, 4, 2]]])('matches finite differences of the stochastic loss (widths %j)', (widths) => {
    const rng = new RandomStream([1]);
    const flat = drawLayers(rng, widths, 1);
    const teacher = product(drawLayers(rng, widths, 1), widths);
    const b = 3;
    const x = rng.fillNormal(new Float64Array(b * widths[0])) as Float64Array;
    const shapes = layerShapes(widths);
    const teacherT = tf.transpose(tf.tensor2d(Float32Array.from(teacher), [widths[widths.length - 1], widths[0]])) as tf.Tensor2D;
    const prog = deepLinearProgram(widths, teacherT);
    let off = 0;
    const params = shapes.map(([r, c]) => {
      const t = tf.tensor2d(Float32Array.from(flat.subarray(off, off + r * c)), [r, c]);
      off += r * c;
      return t;
    });
    const out = prog.step(params, [tf.tensor2d(Float32Array.from(x), [b, widths[0]])], true);
    const grads = out.grads.map((g) => Array.from(g.dataSync()));
    const h = 1e-6;
    let k0 = 0;
    shapes.forEach(([r, c], k) => {
      for (let i = 0; i < r * c; i++) {
        const up = Float64Array.from(flat);
        const down = Float64Array.from(flat);
        up[k0 + i] += h;
        down[k0 + i] -= h;
        const fd = (stochasticLoss(up, widths, teacher, x, b) - stochasticLoss(down, widths, teacher, x, b)) / (2 * h);
        expect(Math.abs(grads[k][i] - fd)).toBeLessThan(1e-4 * (1 + Math.abs(fd)));
      }
      k0 += r * c;
    });
    expect(out.loss.dataSync()[0]).toBeCloseTo(0.5 * product(flat, widths).reduce((s, v, i) => s + (v - teacher[i]) ** 2, 0), 4);
    tf.dispose([teacherT, ...params, ...out.grads, ...(out.full ?? []), out.loss]);
  });
});

describe('exact variance at t = 0', () => {
  it('is the closed form of oracles.md for depth 2', () => {
    const widths = [5, 7, 3];
    const rng = new RandomStream([2]);
    const theta = drawLayers(rng, widths, 1);
    const teacher = product(drawLayers(rng, widths, 1), widths);
    const [p, h, o] = widths;
    const w1 = theta.subarray(0, h * p);
    const w2 = theta.subarray(h * p);
    const delta = product(theta, widths).map((v, i) => v - teacher[i]);
    // ||W2^T Delta||^2, ||W1||^2, ||Delta||^2, ||Delta W1^T||^2 by explicit sums.
    let a = 0;
    for (let j = 0; j < h; j++)
      for (let c = 0; c < p; c++) {
        let s = 0;
        for (let r = 0; r < o; r++) s += w2[r * h + j] * delta[r * p + c];
        a += s * s;
      }
    let dw = 0;
    for (let r = 0; r < o; r++)
      for (let j = 0; j < h; j++) {
        let s = 0;
        for (let c = 0; c < p; c++) s += delta[r * p + c] * w1[j * p + c];
        dw += s * s;
      }
    const n2 = (v: ArrayLike<number>) => Array.from(v).reduce((s, x) => s + x * x, 0);
    const { perLayerTimesB, loss } = varianceAtZero(theta, teacher, widths);
    expect(perLayerTimesB[0]).toBeCloseTo((p + 1) * a, 9);
    expect(perLayerTimesB[1]).toBeCloseTo(n2(w1) * n2(delta) + dw, 9);
    expect(loss).toBeCloseTo(0.5 * n2(delta), 12);
  });
});

describe('the fused step on native (DEEP_LINEAR_STEP)', () => {
  it.each([
    [[3, 4, 2], 3, 2],
    [[5, 7, 6, 4], 4, 5],
    [[64, 256, 128], 12, 64],
  ])('equals the composed program, stacked (widths %j, R = %i, b = %i), with and without full gradients', async (widths, runs, b) => {
    if (process.env.SGD_LAB_NATIVE === '0') return;
    await useBackend('native');
    try {
      const rng = new RandomStream([2, widths.length, runs]);
      const teacher = product(drawLayers(rng, widths, 1), widths);
      const o = widths[widths.length - 1];
      const p = widths[0];
      const teacherT = tf.transpose(tf.tensor2d(Float32Array.from(teacher), [o, p])) as tf.Tensor2D;
      const prog = deepLinearProgram(widths, teacherT);
      // Every replica its own weights and batch.
      const params = layerShapes(widths).map(([r, c]) => tf.tensor3d(Float32Array.from({ length: runs * r * c }, () => rng.nextNormal() / Math.sqrt(c)), [runs, r, c]));
      const x = tf.tensor3d(Float32Array.from({ length: runs * b * p }, () => rng.nextNormal()), [runs, b, p]);
      for (const wantFull of [true, false]) {
        const before = tf.memory().numTensors;
        const fused = prog.step(params, [x], wantFull);
        // One call: its outputs are the only new tensors (gradients, full gradients, losses).
        expect(tf.memory().numTensors - before).toBe((wantFull ? 2 : 1) * (widths.length - 1) + 1);
        process.env.SGD_LAB_FUSED_STEP = '0';
        const composed = prog.step(params, [x], wantFull);
        delete process.env.SGD_LAB_FUSED_STEP;
        const pairs: [tf.Tensor, tf.Tensor][] = [...fused.grads.map((g, k) => [g, composed.grads[k]] as [tf.Tensor, tf.Tensor]), [fused.loss, composed.loss]];
        if (wantFull) pairs.push(...fused.full!.map((f, k) => [f, composed.full![k]] as [tf.Tensor, tf.Tensor]));
        else expect(fused.full).toBeUndefined();
        for (const [a, c] of pairs) {
          expect(a.shape).toEqual(c.shape);
          const av = a.dataSync();
          const cv = c.dataSync();
          // float32 products of at most max(width) terms, in another order: bound by the scale.
          const scale = cv.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          let worst = 0;
          for (let i = 0; i < av.length; i++) worst = Math.max(worst, Math.abs(av[i] - cv[i]));
          expect(worst).toBeLessThanOrEqual(1e-5 * scale);
          expect(scale).toBeGreaterThan(0);
        }
        tf.dispose([...fused.grads, ...(fused.full ?? []), fused.loss, ...composed.grads, ...(composed.full ?? []), composed.loss]);
      }
      // With the engine's run block: the run-block moments of its own gradients, as the
      // separate kernel gives them from the same arrays (double sums; the threads group the
      // column tiles differently, so equal to float32 rounding: 2^-22 relative).
      for (const runBlock of [1, 5, 16]) {
        const before = tf.memory().numTensors;
        const out = prog.step(params, [x], true, { runBlock });
        const d = widths.length - 1;
        expect(tf.memory().numTensors - before).toBe(2 * d + 1 + 6 * d);
        expect(out.moments!.grads).toHaveLength(d);
        for (let k = 0; k < d; k++) {
          const separate = (tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x: out.grads[k], y: out.full![k] }, { block: runBlock, all: true }) as tf.Tensor[]).map((t) => t.dataSync());
          const mine = [out.moments!.grads[k], out.moments!.full[k], out.moments!.difference[k]].flatMap((m) => [m.deviations.dataSync(), m.meanSquares.dataSync()]);
          expect(mine.map((v) => v.length)).toEqual(separate.map((v) => v.length));
          expect(mine[1]).toHaveLength(Math.ceil(runs / runBlock));
          mine.forEach((v, i) => v.forEach((value, j) => expect(Math.abs(value - separate[i][j])).toBeLessThanOrEqual(2 ** -22 * Math.abs(separate[i][j]))));
          // Not all zero: the deviations of g within a run block of several runs.
          if (runBlock > 1) expect(Math.max(...mine[0])).toBeGreaterThan(0);
        }
        tf.dispose([...out.grads, ...out.full!, out.loss, ...[out.moments!.grads, out.moments!.full, out.moments!.difference].flatMap((ms) => ms.flatMap((m) => [m.deviations, m.meanSquares]))]);
      }
      const teacherM = tf.transpose(teacherT);
      expect(() => tf.engine().runKernel('SgdLabDeepLinearStep', { x, teacher: teacherM, ...Object.fromEntries(params.map((w, k) => [`w${k}`, w])) }, { widths, wantFull: true, runBlock: 0 })).toThrow(/runBlock must be a positive integer, got 0/);
      teacherM.dispose();
      // A wrong shape names the input.
      expect(() => tf.engine().runKernel('SgdLabDeepLinearStep', { x, teacher: teacherT, w0: params[0] }, { widths, wantFull: true })).toThrow(/expected a float32 teacher/);
      tf.dispose([teacherT, x, ...params]);
    } finally {
      await useBackend('wasm');
    }
  });
});

/** The first index where two lists of arrays differ (bit for bit), or undefined (vitest's deep equality is slow on large arrays). */
function firstDifference(a: readonly Float64Array[], b: readonly Float64Array[]): string | undefined {
  if (a.length !== b.length) return `${a.length} arrays against ${b.length}`;
  for (let r = 0; r < a.length; r++) {
    if (a[r].length !== b[r].length) return `array ${r}: length ${a[r].length} against ${b[r].length}`;
    if (!Buffer.from(a[r].buffer, a[r].byteOffset, a[r].byteLength).equals(Buffer.from(b[r].buffer, b[r].byteOffset, b[r].byteLength))) {
      const i = a[r].findIndex((v, j) => !Object.is(v, b[r][j]));
      return `array ${r}, element ${i}: ${a[r][i]} against ${b[r][i]}`;
    }
  }
  return undefined;
}

/** Walks two reports side by side: every number within `rel` of the other's (relative to the larger). */
function closeReports(a: unknown, b: unknown, rel: number, path = ''): void {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Math.abs(a - b) > rel * Math.max(Math.abs(a), Math.abs(b))) throw new Error(`${path}: ${a} against ${b}`);
    return;
  }
  if (a instanceof Float64Array || a instanceof Float32Array) a = Array.from(a);
  if (b instanceof Float64Array || b instanceof Float32Array) b = Array.from(b);
  expect(typeof a).toBe(typeof b);
  if (a && typeof a === 'object') {
    expect(Object.keys(a as object).sort()).toEqual(Object.keys(b as object).sort());
    for (const key of Object.keys(a as object)) closeReports((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], rel, `${path}.${key}`);
  } else expect(a).toEqual(b);
}

describe('the engine with the fused step on native', () => {
  it('reports the moments the step computed in its run blocks, as the composed program and the separate moments give them', async () => {
    if (process.env.SGD_LAB_NATIVE === '0') return;
    await useBackend('native');
    try {
      const widths = [5, 7, 6, 4];
      const runs = 11;
      const b = 3;
      const rng = new RandomStream([9, 1]);
      const teacher = product(drawLayers(rng, widths, 1), widths);
      const teacherT = tf.transpose(tf.tensor2d(Float32Array.from(teacher), [4, 5])) as tf.Tensor2D;
      const engine = new ReplicaEngine(deepLinearProgram(widths, teacherT), { strategy: 'stacked', chunkSize: runs, runBlock: 4 });
      const theta0 = drawLayers(rng, widths, 1);
      const data = Float32Array.from({ length: runs * b * 5 }, () => rng.nextNormal());
      const report = (fused: boolean) => {
        if (!fused) process.env.SGD_LAB_FUSED_STEP = '0';
        try {
          const state = engine.replicate(theta0, runs);
          // Two steps, so that the replicas differ (the first from one theta0).
          engine.gradients(state, [{ data, shape: [b, 5] }], true);
          engine.sgd(state, 0.05);
          const r = engine.gradients(state, [{ data: data.map((v) => -v * 0.5), shape: [b, 5] }], true);
          engine.dispose(state);
          return r;
        } finally {
          delete process.env.SGD_LAB_FUSED_STEP;
        }
      };
      const before = tf.memory().numTensors;
      const fused = report(true);
      const composed = report(false);
      expect(tf.memory().numTensors).toBe(before);
      expect(fused.full).toBeDefined();
      closeReports(fused, composed, 1e-4);
      teacherT.dispose();
    } finally {
      await useBackend('wasm');
    }
  });

  it.each([
    // [widths, runs, b, runBlock]: one thread and several run blocks; the pool's threads taking
    // whole run blocks; a single run block (the replicas split, the moments in a second pass).
    [[5, 7, 6, 4], 11, 3, 4],
    [[64, 128, 64], 32, 16, 8],
    [[64, 128, 64], 32, 16, 32],
  ] as [number[], number, number, number][])(
    'takes the SGD step in the gradient pass when told its rate: the parameters and moments of the step after it, bit for bit (widths %j, R = %i, b = %i, run block %i)',
    async (widths, runs, b, runBlock) => {
      if (process.env.SGD_LAB_NATIVE === '0') return;
      await useBackend('native');
      try {
        const p = widths[0];
        const o = widths[widths.length - 1];
        const rng = new RandomStream([9, 2, runs]);
        const teacher = product(drawLayers(rng, widths, 1), widths);
        const teacherT = tf.transpose(tf.tensor2d(Float32Array.from(teacher), [o, p])) as tf.Tensor2D;
        const engine = new ReplicaEngine(deepLinearProgram(widths, teacherT), { strategy: 'stacked', chunkSize: runs, runBlock });
        const theta0 = drawLayers(rng, widths, 1);
        const batches = [0, 1, 2].map(() => Float32Array.from({ length: runs * b * p }, () => rng.nextNormal()));
        const rates = [0.05, 0.02, 0.01];
        const before = tf.memory().numTensors;
        const run = (inPass: boolean) => {
          const state = engine.replicate(theta0, runs);
          const reports = [];
          const params = [];
          for (let t = 0; t < 3; t++) {
            const at = engine.readParams(state) as Float64Array[];
            reports.push(engine.gradients(state, [{ data: batches[t], shape: [b, p] }], true, inPass ? { sgd: rates[t] } : undefined));
            // Until the optimizer's step the parameters are W_t.
            expect(firstDifference(engine.readParams(state) as Float64Array[], at)).toBeUndefined();
            if (inPass) expect(state.pending!.flat(2)).toHaveLength(0);
            engine.sgd(state, rates[t]);
            params.push(engine.readParams(state) as Float64Array[]);
          }
          engine.dispose(state);
          return { reports, params };
        };
        const inPass = run(true);
        const after = run(false);
        expect(tf.memory().numTensors).toBe(before);
        inPass.params.forEach((ps, t) => expect(firstDifference(ps, after.params[t]), `step ${t}`).toBeUndefined());
        expect(inPass.reports).toEqual(after.reports);
        // The replicas moved, and apart (their batches differ).
        expect(firstDifference([inPass.params[2][0]], [inPass.params[2][1]])).toBeDefined();
        expect(firstDifference([inPass.params[2][0]], [Float64Array.from(theta0, Math.fround)])).toBeDefined();
        // A step taken in the pass is installed only with its own rate, and by SGD only.
        const state = engine.replicate(theta0, runs);
        engine.gradients(state, [{ data: batches[0], shape: [b, p] }], true, { sgd: 0.05 });
        expect(() => engine.sgd(state, 0.1)).toThrow(/already took the SGD step with learning rate 0.05 .*sgd\(\) was called with 0.1/);
        expect(() => engine.update(state, (w) => w)).toThrow(/an optimizer other than plain SGD must not pass `next`/);
        engine.dispose(state);
        expect(tf.memory().numTensors).toBe(before);
        teacherT.dispose();
      } finally {
        await useBackend('wasm');
      }
    },
  );
});
