import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { RandomStream, runBlockStats, varianceEstimate, type RunBlockStats } from '@sgd-lab/core';

const traceVariance = (blocks: RunBlockStats[]) => varianceEstimate(blocks).value;
const RUN_BLOCK = 4;
import { useBackend } from './backends.js';
import { ReplicaEngine, chunkSizeFor, type KernelStrategy } from './engine.js';
import { sumSquaresLast2, swapLast, type ReplicaProgram } from './program.js';

/**
 * A small least-squares program: g = W (x^T x / b) - T, full gradient W - T, loss 1/2 ||W - T||^2
 * (a quadratic whose population Hessian is I), written rank-polymorphically like a real setting.
 */
function program(target: tf.Tensor2D): ReplicaProgram {
  return {
    blocks: [
      { name: 'A', shape: [2, 3] },
      { name: 'B', shape: [3, 3] },
    ],
    step(params, [x], wantFull) {
      const b = x.shape[x.rank - 2];
      const s = tf.div(tf.matMul(swapLast(x), x), b);
      const [a, bb] = params;
      return {
        grads: [tf.sub(tf.matMul(a, s), target), tf.matMul(bb, s)],
        full: wantFull ? [tf.sub(a, target), tf.add(bb, 0)] : undefined,
        loss: tf.mul(sumSquaresLast2(tf.sub(a, target)), 0.5),
      };
    },
    loss(params) {
      return tf.mul(sumSquaresLast2(tf.sub(params[0], target)), 0.5);
    },
  };
}

const runs = 40;
const b = 5;
const theta0 = Float64Array.from({ length: 15 }, (_, i) => Math.cos(i));
function batches(steps: number): Float32Array[] {
  const rng = new RandomStream([9]);
  return Array.from({ length: steps }, () => rng.fillNormal(new Float32Array(runs * b * 3)) as Float32Array);
}

async function trajectory(backend: string, strategy: KernelStrategy, chunkSize: number, steps = 4) {
  await useBackend(backend);
  const target = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
  const engine = new ReplicaEngine(program(target), { strategy, chunkSize, runBlock: RUN_BLOCK });
  const state = engine.replicate(theta0, runs);
  const out: { g: number; f: number; loss: number }[] = [];
  const counts: number[] = [];
  for (const x of batches(steps)) {
    // Plain values on the cpu-side backends, Promises on webgpu.
    const rep = await engine.gradients(state, [{ data: x, shape: [b, 3] }], true);
    const loss = await engine.losses(state);
    out.push({ g: traceVariance(rep.stochastic.all), f: traceVariance(rep.full!.all), loss: loss.reduce((s, v) => s + v, 0) / runs });
    engine.sgd(state, 0.1);
    counts.push(tf.memory().numTensors);
  }
  const params = await engine.readParams(state);
  engine.dispose(state);
  target.dispose();
  return { out, counts, params };
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('ReplicaEngine', () => {
  it('gives the same trajectory per replica, stacked, and in chunks (float32 tolerance)', async () => {
    const ref = await trajectory('wasm', 'per-replica', runs);
    for (const [backend, strategy, chunk] of [['wasm', 'stacked', runs], ['wasm', 'per-replica', 8], ['cpu', 'stacked', 12], ['cpu', 'per-replica', runs], ['native', 'stacked', 12], ['native', 'per-replica', runs], ['webgpu', 'stacked', 12]] as const) {
      const other = await trajectory(backend, strategy, chunk);
      other.out.forEach((o, t) => {
        expect(o.g / ref.out[t].g).toBeCloseTo(1, 4);
        expect(o.loss / ref.out[t].loss).toBeCloseTo(1, 4);
      });
      other.params.forEach((p, r) => p.forEach((v, i) => expect(v).toBeCloseTo(ref.params[r][i], 4)));
    }
  });

  it('gives bit-identical run-block statistics whatever the chunk size (chunks hold whole run blocks)', async () => {
    for (const [backend, strategy] of [['native', 'stacked'], ['wasm', 'per-replica'], ['cpu', 'stacked']] as const) {
      await useBackend(backend);
      const target = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const stats = (chunkSize: number) => {
        const engine = new ReplicaEngine(program(target), { strategy, chunkSize, runBlock: RUN_BLOCK });
        const state = engine.replicate(theta0, runs);
        const out = batches(3).map((x) => {
          const rep = engine.gradients(state, [{ data: x, shape: [b, 3] }], true);
          engine.sgd(state, 0.1);
          return rep;
        });
        engine.dispose(state);
        return JSON.stringify(out);
      };
      const whole = stats(runs);
      for (const chunk of [4, 8, 12]) expect({ backend, chunk, same: stats(chunk) === whole }).toEqual({ backend, chunk, same: true });
      target.dispose();
    }
  });

  it('computes moments that match a float64 computation of the same step', async () => {
    await useBackend('wasm');
    const target = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const engine = new ReplicaEngine(program(target), { strategy: 'per-replica', chunkSize: runs, runBlock: RUN_BLOCK });
    const state = engine.replicate(theta0, runs);
    const [x] = batches(1);
    const rep = await engine.gradients(state, [{ data: x, shape: [b, 3] }], false);
    // Float64 reference of block A's gradient per run.
    const t = [1, 2, 3, 4, 5, 6];
    const per: number[][] = [];
    for (let r = 0; r < runs; r++) {
      const s = Array.from({ length: 9 }, () => 0);
      for (let i = 0; i < b; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) s[j * 3 + k] += (x[(r * b + i) * 3 + j] * x[(r * b + i) * 3 + k]) / b;
      const g: number[] = [];
      for (let i = 0; i < 2; i++) for (let k = 0; k < 3; k++) g.push([0, 1, 2].reduce((acc, j) => acc + theta0[i * 3 + j] * s[j * 3 + k], 0) - t[i * 3 + k]);
      per.push(g);
    }
    // Pooled within run blocks of RUN_BLOCK runs, in float64.
    const v = varianceEstimate(runBlockStats(Float64Array.from(per.flat()), runs, RUN_BLOCK, 6)).value;
    expect(traceVariance(rep.stochastic.blocks!.A) / v).toBeCloseTo(1, 4);
    engine.dispose(state);
    target.dispose();
  });

  it('takes inputs as rows of a table: gathered for programs that do not take rows, the same statistics to the bit', async () => {
    for (const [backend, strategy, chunk] of [['cpu', 'per-replica', runs], ['cpu', 'stacked', 12], ['wasm', 'stacked', runs], ['native', 'stacked', 8]] as const) {
      await useBackend(backend);
      const target = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const xs = batches(3);
      // All steps' rows in one table, each step's in reverse order.
      const table = new Float32Array(3 * runs * b * 3);
      const rowsOf = xs.map((x, t) =>
        Int32Array.from({ length: runs * b }, (_, i) => {
          const row = (3 - t) * runs * b - 1 - i;
          table.set(x.subarray(i * 3, i * 3 + 3), row * 3);
          return row;
        }),
      );
      const stats = (asRows: boolean) => {
        const engine = new ReplicaEngine(program(target), { strategy, chunkSize: chunk, runBlock: RUN_BLOCK });
        const state = engine.replicate(theta0, runs);
        const before = tf.memory().numTensors;
        const out = xs.map((x, t) => {
          const rep = engine.gradients(state, [asRows ? { table, rows: rowsOf[t], shape: [b, 3] } : { data: x, shape: [b, 3] }], true);
          engine.sgd(state, 0.1);
          return rep;
        });
        expect(tf.memory().numTensors).toBe(before);
        engine.dispose(state);
        return JSON.stringify(out);
      };
      expect({ backend, strategy, same: stats(true) === stats(false) }).toEqual({ backend, strategy, same: true });
      // Bad input is named: a row outside the table, too few rows, a table of partial rows, short data.
      const engine = new ReplicaEngine(program(target), { strategy, chunkSize: chunk, runBlock: RUN_BLOCK });
      const state = engine.replicate(theta0, runs);
      const bad = Int32Array.from(rowsOf[0]);
      bad[7] = 3 * runs * b;
      expect(() => engine.gradients(state, [{ table, rows: bad, shape: [b, 3] }], false)).toThrow(`input 0: row index ${3 * runs * b} is outside its table's ${3 * runs * b} rows`);
      expect(() => engine.gradients(state, [{ table, rows: bad.subarray(1), shape: [b, 3] }], false)).toThrow(`input 0: expected ${runs} runs x ${b} row indices, got ${runs * b - 1}`);
      expect(() => engine.gradients(state, [{ table: table.subarray(1), rows: rowsOf[0], shape: [b, 3] }], false)).toThrow(/input 0: its table of \d+ values is not whole rows of 3/);
      expect(() => engine.gradients(state, [{ data: xs[0].subarray(3), shape: [b, 3] }], false)).toThrow(`input 0: expected ${runs} runs x [${b}, 3] values, got ${runs * b * 3 - 3}`);
      engine.dispose(state);
      target.dispose();
    }
  });

  it('leaks no tensors from step to step', async () => {
    for (const [backend, strategy] of [['wasm', 'per-replica'], ['wasm', 'stacked'], ['native', 'stacked'], ['webgpu', 'stacked']] as const) {
      const { counts } = await trajectory(backend, strategy, 12, 6);
      expect(new Set(counts.slice(1)).size).toBe(1);
    }
  });

  it('sizes chunks from the memory budget', () => {
    expect(chunkSizeFor(1000, 100, 50)).toBe(10);
    expect(chunkSizeFor(1e9, 100, 50)).toBe(50);
    expect(chunkSizeFor(10, 100, 50)).toBe(1);
    // Whole run blocks, at least one.
    expect(chunkSizeFor(1000, 100, 50, 4)).toBe(8);
    expect(chunkSizeFor(10, 100, 50, 4)).toBe(4);
  });
});
