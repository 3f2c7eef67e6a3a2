import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs-core';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, RandomStream, type GradientReport } from '@sgd-lab/core';
import { collectStudy, testDataDir, testDataFile } from '@sgd-lab/core/testing';
import { loadAddon } from '@sgd-lab/native';
import { ReplicaEngine, useBackend, type StepInput } from '@sgd-lab/tensor';
import plugin from './index.js';
import { PIXELS, loadEmbedded, head } from './data.js';
import { distortSet } from './distort.js';
import { epochSampler, initMlp, mlpBlocks, mlpInputs, mlpProgram } from './model.js';
import { fetchMnist, MNIST_SHA256 } from './commands.js';

beforeAll(async () => {
  await useBackend('wasm');
});

/** Float64 mean cross-entropy of an MLP (layout of mlpBlocks) on a batch. */
function ceLoss(theta: Float64Array, widths: number[], x: Float64Array, labels: number[]): number {
  const blocks = mlpBlocks(widths);
  let off = 0;
  const ps = blocks.map((b) => {
    const v = theta.subarray(off, off + b.shape[0] * b.shape[1]);
    off += b.shape[0] * b.shape[1];
    return v;
  });
  let loss = 0;
  for (let i = 0; i < labels.length; i++) {
    let h = Array.from(x.subarray(i * widths[0], (i + 1) * widths[0]));
    for (let k = 0; k < widths.length - 1; k++) {
      const [nin, nout] = [widths[k], widths[k + 1]];
      const z = Array.from({ length: nout }, (_, j) => ps[2 * k + 1][j] + h.reduce((s, v, a) => s + v * ps[2 * k][a * nout + j], 0));
      h = k < widths.length - 2 ? z.map((v) => Math.max(0, v)) : z;
      void nin;
    }
    const m = Math.max(...h);
    const lse = m + Math.log(h.reduce((s, v) => s + Math.exp(v - m), 0));
    loss += lse - h[labels[i]];
  }
  return loss / labels.length;
}

/** wasm (2-D, per replica), and native (stacked [C, ...], its fused kernels) when its addon is built. */
const programBackends = [
  { backend: 'wasm', stacked: 0 },
  ...(loadAddon().ok ? [{ backend: 'native', stacked: 2 }] : []),
];

describe('MLP program', () => {
  it.each(programBackends)('backpropagates the mean cross-entropy on $backend (finite differences, float64 reference)', async ({ backend, stacked }) => {
    await useBackend(backend);
    const widths = [6, 5, 4, 3];
    const rng = new RandomStream([3]);
    const theta = initMlp(rng, widths);
    const b = 4;
    const x = rng.fillNormal(new Float64Array(b * 6)) as Float64Array;
    const labels = [0, 2, 1, 2];
    const y = new Float32Array(b * 3);
    labels.forEach((l, i) => (y[i * 3 + l] = 1));
    const prog = mlpProgram(widths);
    // Stacked: C copies of the same replica, each of whose gradients must match.
    const lead = (shape: number[]) => (stacked ? [stacked, ...shape] : shape);
    const copies = <T extends Float32Array>(v: T) => (stacked ? Float32Array.from({ length: stacked * v.length }, (_, i) => v[i % v.length]) : v);
    let off = 0;
    const params = prog.blocks.map((bl) => {
      const t = tf.tensor(copies(Float32Array.from(theta.subarray(off, off + bl.shape[0] * bl.shape[1]))), lead(bl.shape));
      off += bl.shape[0] * bl.shape[1];
      return t;
    });
    const out = prog.step(params, [tf.tensor(copies(Float32Array.from(x)), lead([b, 6])), tf.tensor(copies(y), lead([b, 3]))], false);
    const losses = out.loss.dataSync();
    expect(losses.length).toBe(stacked || 1);
    for (const l of losses) expect(l).toBeCloseTo(ceLoss(theta, widths, x, labels), 5);
    const perBlock = out.grads.map((g) => g.dataSync());
    for (let c = 0; c < (stacked || 1); c++) {
      const grads = perBlock.flatMap((g) => Array.from(g.subarray((c * g.length) / (stacked || 1), ((c + 1) * g.length) / (stacked || 1))));
      const h = 1e-6;
      for (let i = 0; i < theta.length; i++) {
        const up = Float64Array.from(theta);
        const down = Float64Array.from(theta);
        up[i] += h;
        down[i] -= h;
        const fd = (ceLoss(up, widths, x, labels) - ceLoss(down, widths, x, labels)) / (2 * h);
        expect(Math.abs(grads[i] - fd)).toBeLessThan(1e-4 + 1e-3 * Math.abs(fd));
      }
    }
    tf.dispose([...params, ...out.grads, out.loss]);
    await useBackend('wasm');
  });

  it.each([
    [[6, 5, 4, 3], 3, 4],
    [[20, 9, 4], 5, 7],
    [[784, 64, 32, 10], 4, 32],
  ])('fused on native (MLP_STEP) equals the composed program, stacked (widths %j, R = %i, b = %i)', async (widths, runs, b) => {
    if (!loadAddon().ok) return;
    await useBackend('native');
    try {
      const rng = new RandomStream([5, widths.length, runs]);
      const prog = mlpProgram(widths);
      // Every replica its own parameters and batch; ReLUs both on and off.
      const params = prog.blocks.map((bl) => tf.tensor3d(Float32Array.from({ length: runs * bl.shape[0] * bl.shape[1] }, () => rng.nextNormal() / Math.sqrt(bl.shape[0])), [runs, ...bl.shape]));
      const o = widths[widths.length - 1];
      const x = tf.tensor3d(Float32Array.from({ length: runs * b * widths[0] }, () => rng.nextNormal()), [runs, b, widths[0]]);
      const y = tf.tensor3d(Float32Array.from({ length: runs * b * o }, (_, i) => (Math.floor(i / o) * 7) % o === i % o ? 1 : 0), [runs, b, o]);
      const before = tf.memory().numTensors;
      const fused = prog.step(params, [x, y], false);
      // One call: its outputs are the only new tensors.
      expect(tf.memory().numTensors - before).toBe(params.length + 1);
      process.env.SGD_LAB_FUSED_STEP = '0';
      const composed = prog.step(params, [x, y], false);
      delete process.env.SGD_LAB_FUSED_STEP;
      const pairs: [tf.Tensor, tf.Tensor][] = [...fused.grads.map((g, k) => [g, composed.grads[k]] as [tf.Tensor, tf.Tensor]), [fused.loss, composed.loss]];
      for (const [a, c] of pairs) {
        expect(a.shape).toEqual(c.shape);
        const av = a.dataSync();
        const cv = c.dataSync();
        // The same float32 products; sums (bias gradients, softmax) in another order or in double.
        const scale = cv.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale).toBeGreaterThan(0);
        let worst = 0;
        for (let i = 0; i < av.length; i++) worst = Math.max(worst, Math.abs(av[i] - cv[i]));
        expect(worst).toBeLessThanOrEqual(1e-5 * scale);
      }
      tf.dispose([...fused.grads, fused.loss, ...composed.grads, composed.loss]);
      // A wrong shape names the input.
      const named = Object.fromEntries(params.map((t, i) => [`${i % 2 ? 'b' : 'w'}${i >> 1}`, t]));
      expect(() => tf.engine().runKernel('SgdLabMlpStep', { x, y: x, ...named }, { widths })).toThrow(/SgdLabMlpStep: expected a float32 y/);
      // Given as rows of a table: the same gradients to the bit, and a row outside the table is named.
      const table = tf.reshape(x, [runs * b, widths[0]]);
      const order = Int32Array.from({ length: runs * b }, (_, i) => runs * b - 1 - i);
      const flipped = tf.gather(table, tf.tensor1d(order, 'int32'));
      const rows = tf.tensor2d(order, [runs, b], 'int32');
      for (const attrs of [{ widths }, { widths, runBlock: runs }]) {
        const direct = tf.engine().runKernel('SgdLabMlpStep', { x, y, ...named }, attrs) as tf.Tensor[];
        const viaRows = tf.engine().runKernel('SgdLabMlpStep', { x: flipped, y, rows, ...named }, attrs) as tf.Tensor[];
        expect(viaRows.length).toBe(direct.length);
        viaRows.forEach((t, i) => expect(Array.from(t.dataSync())).toEqual(Array.from(direct[i].dataSync())));
        tf.dispose([...direct, ...viaRows]);
      }
      const outside = tf.tensor2d(Int32Array.from({ length: runs * b }, (_, i) => (i === 1 ? runs * b : 0)), [runs, b], 'int32');
      expect(() => tf.engine().runKernel('SgdLabMlpStep', { x: flipped, y, rows: outside, ...named }, { widths, runBlock: runs })).toThrow(new RegExp(`row ${runs * b} is outside the table's ${runs * b} rows`));
      expect(() => tf.engine().runKernel('SgdLabMlpStep', { x, y, rows, ...named }, { widths, runBlock: runs })).toThrow(/SgdLabMlpStep: expected a float32 table x/);
      tf.dispose([table, flipped, rows, outside]);
      tf.dispose([x, y, ...params]);
    } finally {
      await useBackend('wasm');
    }
  });
});

/** The first index where two lists of arrays differ (bit for bit), or undefined. */
function firstDifference(a: readonly Float64Array[], b: readonly Float64Array[]): string | undefined {
  if (a.length !== b.length) return `${a.length} arrays against ${b.length}`;
  for (let r = 0; r < a.length; r++) {
    const i = a[r].findIndex((v, j) => !Object.is(v, b[r][j]));
    if (a[r].length !== b[r].length || i >= 0) return `array ${r}, element ${i}: ${a[r][i]} against ${b[r][i]}`;
  }
  return undefined;
}

describe('the epoch sampler', () => {
  it('hands out the rows of each batch with its table, the images gathered from them only when read, and the labels', async () => {
    const set = loadEmbedded(1, 0.2).train;
    const shard = { batchSize: 16, initPoint: 0, runStart: 3, runCount: 5, steps: 4 };
    const a = epochSampler(set).create(shard, 9);
    const b = epochSampler(set).create(shard, 9);
    for (let t = 0; t < 4; t++) {
      const batch = a.next(t);
      const other = b.next(t);
      expect(batch.images).toBe(set.images);
      expect(Array.from(batch.rows!)).toEqual(Array.from(other.rows!));
      const x = batch.x;
      expect(x.length).toBe(5 * 16 * PIXELS);
      batch.rows!.forEach((row, i) => {
        expect(Array.from(x.subarray(i * PIXELS, (i + 1) * PIXELS))).toEqual(Array.from(set.images.subarray(row * PIXELS, (row + 1) * PIXELS)));
        expect(batch.y[i * 10 + set.labels[row]]).toBe(1);
      });
    }
    // The engine's inputs: the table rows where the fused step on native runs stacked, else the images.
    const batch = a.next(4);
    const engineOn = (strategy: 'stacked' | 'per-replica') => new ReplicaEngine(mlpProgram([PIXELS, 8, 10]), { strategy, chunkSize: 5, runBlock: 5 });
    expect('data' in mlpInputs(batch, engineOn('per-replica'))[0]).toBe(true);
    if (loadAddon().ok) {
      await useBackend('native');
      try {
        const [images] = mlpInputs(batch, engineOn('stacked'));
        expect('rows' in images && images.rows === batch.rows && images.table === set.images).toBe(true);
      } finally {
        await useBackend('wasm');
      }
    }
  });
});

describe('the engine with the fused MLP step on native', () => {
  it.each([
    // [widths, runs, b, runBlock]: several run blocks, the threads taking whole ones; a single run
    // block (the replicas split over the threads, the moments in a second pass); a short last block.
    [[20, 9, 4], 12, 5, 4],
    [[784, 64, 32, 10], 8, 16, 8],
    [[6, 5, 3], 11, 3, 4],
  ] as [number[], number, number, number][])(
    'computes the run-block moments in the step and takes the SGD step in it when told its rate: reports and parameters equal to the bit to the separate kernels (widths %j, R = %i, b = %i, run block %i)',
    async (widths, runs, b, runBlock) => {
      if (!loadAddon().ok) return;
      await useBackend('native');
      try {
        const rng = new RandomStream([8, widths.length, runs]);
        const o = widths[widths.length - 1];
        const prog = mlpProgram(widths);
        // The same program without the step's context: the engine then computes the moments itself.
        // (It does not take rows either: given table rows, the engine gathers them for it.)
        const plain = { ...prog, takesRows: false, step: (params: tf.Tensor[], inputs: tf.Tensor[], wantFull: boolean) => prog.step(params, inputs, wantFull) };
        const theta0 = initMlp(rng, widths);
        const batches = [0, 1, 2].map(() => ({
          x: Float32Array.from({ length: runs * b * widths[0] }, () => rng.nextNormal()),
          y: Float32Array.from({ length: runs * b * o }, (_, i) => (Math.floor(i / o) * 7 + 3) % o === i % o ? 1 : 0),
        }));
        const rates = [0.3, 0.2, 0.1];
        // The same batches as rows of one table (every step's rows in turn, in a shuffled order).
        const n = 3 * runs * b;
        const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => ((i * 7919) % n) - ((j * 7919) % n));
        const table = new Float32Array(n * widths[0]);
        const rowsOf = [0, 1, 2].map((t) => Int32Array.from({ length: runs * b }, (_, i) => order[t * runs * b + i]));
        rowsOf.forEach((rows, t) => rows.forEach((row, i) => table.set(batches[t].x.subarray(i * widths[0], (i + 1) * widths[0]), row * widths[0])));
        const before = tf.memory().numTensors;
        const run = (program: typeof prog, inPass: boolean, asRows = false) => {
          const engine = new ReplicaEngine(program, { strategy: 'stacked', chunkSize: runs, runBlock });
          const state = engine.replicate(theta0, runs);
          const reports = [];
          const params = [];
          for (let t = 0; t < 3; t++) {
            const images: StepInput = asRows ? { table, rows: rowsOf[t], shape: [b, widths[0]] } : { data: batches[t].x, shape: [b, widths[0]] };
            const inputs = [images, { data: batches[t].y, shape: [b, o] as [number, number] }];
            reports.push(engine.gradients(state, inputs, false, inPass ? { sgd: rates[t] } : undefined));
            if (inPass) expect(state.pending!.flat(2)).toHaveLength(0);
            engine.sgd(state, rates[t]);
            params.push(engine.readParams(state) as Float64Array[]);
          }
          engine.dispose(state);
          return { reports, params };
        };
        const separate = run(plain, false);
        const fused = run(prog, false);
        const inPass = run(prog, true);
        // The images as table rows: each thread gathers its replica's batch in the step; a program
        // that does not take rows gets them gathered by the engine.
        const rowsInPass = run(prog, true, true);
        const rowsFused = run(prog, false, true);
        const rowsGathered = run(plain, false, true);
        expect(tf.memory().numTensors).toBe(before);
        for (const other of [fused, inPass, rowsInPass, rowsFused, rowsGathered]) {
          expect(other.reports).toEqual(separate.reports);
          separate.params.forEach((ps, t) => expect(firstDifference(other.params[t], ps), `step ${t}`).toBeUndefined());
        }
        // The replicas moved, and apart.
        expect(firstDifference([inPass.params[2][0]], [inPass.params[2][1]])).toBeDefined();
        // One entry per run block, each with a positive spread (the runs differ) and every block's own.
        const report = separate.reports[0] as GradientReport;
        expect(report.stochastic.all.map((s) => s.n)).toEqual(Array.from({ length: Math.ceil(runs / runBlock) }, (_, k) => Math.min(runBlock, runs - k * runBlock)));
        for (const s of report.stochastic.all) expect(s.n === 1 || s.m2 > 0).toBe(true);
        expect(Object.keys(report.stochastic.blocks!)).toEqual(prog.blocks.map((bl) => bl.name));
      } finally {
        await useBackend('wasm');
      }
    },
  );
});

describe('elastic distortion', () => {
  const digits = head(loadEmbedded(1, 0.2).validation, 20);
  it('is the identity at alpha = 0 and deterministic otherwise', () => {
    const same = distortSet(digits, 1, 0, 2);
    for (let i = 0; i < same.images.length; i++) expect(same.images[i]).toBeCloseTo(digits.images[i], 6);
    const a = distortSet(digits, 1, 8, 2);
    const b = distortSet(digits, 1, 8, 2);
    expect(Array.from(a.images)).toEqual(Array.from(b.images));
    const c = distortSet(digits, 2, 8, 2);
    expect(Array.from(c.images)).not.toEqual(Array.from(a.images));
  });

  it('moves strokes without changing the range, more with larger alpha', () => {
    const diff = (alpha: number) => {
      const d = distortSet(digits, 1, alpha, 2);
      let s = 0;
      for (let i = 0; i < d.images.length; i++) s += Math.abs(d.images[i] - digits.images[i]);
      for (const v of d.images) expect(v >= -1 - 1e-6 && v <= 1 + 1e-6).toBe(true);
      return s / (digits.count * PIXELS);
    };
    const small = diff(2);
    const large = diff(8);
    expect(small).toBeGreaterThan(0.01);
    expect(large).toBeGreaterThan(small);
  });
});

async function run(raw: Record<string, unknown>) {
  let before = 0;
  const out = await collectStudy(plugin, { preset: 'smoke', ...raw }, { dataDir: testDataDir(), afterRegister: () => (before = tf.memory().numTensors) });
  return { ...out, leaked: tf.memory().numTensors - before };
}

describe('mnist-mlp study', () => {
  it('runs the smoke preset: epochs, splits, gap, per-epoch variance, no tensor leak', async () => {
    const { records, claims, leaked } = await run({});
    expect(leaked).toBe(0);
    const ev = records.filter((r) => r.metric === 'error' && r.batchSize === 32 && r.initPoint === 1);
    // Every epoch of b = 32 and every reference epoch (the 8 steps of an epoch of b = 64, the
    // largest b): equal epochs and equal steps.
    expect(ev.map((r) => `${r.split}@${r.epoch}`).sort()).toEqual(['train@0', 'train@0.5', 'train@1', 'train@1.5', 'train@2', 'validation@0', 'validation@0.5', 'validation@1', 'validation@1.5', 'validation@2']);
    const stepsOf = (b: number) => records.filter((r) => r.metric === 'loss' && r.split === 'train' && r.batchSize === b && r.initPoint === 0).map((r) => r.step);
    expect(stepsOf(64)).toEqual([0, 8, 16]);
    expect(stepsOf(32)).toEqual([0, 8, 16, 24, 32]);
    expect(records.filter((r) => r.metric === 'accuracy_gap' && r.batchSize === 64 && r.initPoint === 0).map((r) => r.epoch)).toEqual([1, 2]);
    const epochVar = records.filter((r) => r.metric === 'grad_variance_epoch' && r.batchSize === 64);
    expect(epochVar.map((r) => `${r.initPoint}:${r.epoch}`).sort()).toEqual(['0:1', '0:2', '1:1', '1:2']);
    // The training loss goes down from its initial value.
    const loss = records.filter((r) => r.metric === 'loss' && r.split === 'train' && r.batchSize === 32 && r.initPoint === 0);
    expect(loss.at(-1)!.value).toBeLessThan(loss[0].value);
    // Both readings on both axes, each with the sentence it tests.
    const ids = claims.map((c) => c.id);
    for (const base of ['train-loss', 'train-error', 'validation-error']) {
      for (const dir of ['decreasing', 'increasing']) for (const axis of ['epochs', 'steps']) expect(ids).toContain(`${base}-${dir}-in-b-at-equal-${axis}`);
    }
    expect(ids).toEqual(expect.arrayContaining(['grad-variance-decreasing-in-b-at-equal-epochs[all]', 'grad-variance-decreasing-in-b-at-equal-steps[all]', 'accuracy-gap-increasing-in-b-at-equal-epochs', 'accuracy-gap-increasing-in-b-at-equal-steps']));
    expect(claims.find((c) => c.id === 'train-loss-increasing-in-b-at-equal-steps')!.quote).toMatch(/smaller sizes lead to lower training loss/);
    expect(claims.find((c) => c.id === 'train-loss-decreasing-in-b-at-equal-epochs')!.quote).toMatch(/on the training set is a decreasing function of b/);
    // At equal steps the variance claim compares per-step records; at equal epochs per-epoch means.
    const stepClaim = claims.find((c) => c.id === 'grad-variance-decreasing-in-b-at-equal-steps[all]')!;
    expect((stepClaim.evidence.comparisons as number)).toBe(2 * records.filter((r) => r.metric === 'grad_variance' && r.layer === 'all' && r.batchSize === 64 && r.initPoint === 0).length);
  });

  it('refuses a batch size larger than its training set, naming the field (exit 2)', async () => {
    const e = await run({ batchSizes: [32, 4096] }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    expect((e as ConfigError).problems[0]).toMatch(/^\/batchSizes\/1: b = 4096 exceeds the 512 training rows of /);
  });

  it('gives the same records per replica on wasm and stacked on cpu (float32 tolerance)', async () => {
    const a = await run({ backend: 'wasm', epochs: 1, initPoints: 1 });
    const b = await run({ backend: 'cpu', epochs: 1, initPoints: 1 });
    expect(b.records.length).toBe(a.records.length);
    a.records.forEach((r, i) => {
      const o = b.records[i];
      expect([o.metric, o.step, o.split]).toEqual([r.metric, r.step, r.split]);
      if (r.value !== 0) expect(o.value / r.value).toBeCloseTo(1, 2);
    });
    await useBackend('wasm');
  });
});

describe('sgd-lab data fetch mnist', () => {
  it.runIf(!!testDataFile('mnist', 't10k-labels-idx1-ubyte.gz'))('downloads from a mirror and verifies every sha256', async () => {
    const src = join(testDataDir()!, 'mnist');
    let corrupt = false;
    const server = createServer((req, res) => {
      const name = (req.url ?? '').split('/').pop()!;
      const file = join(src, name);
      if (!existsSync(file)) return void res.writeHead(404).end();
      const body = readFileSync(file);
      if (corrupt && name.startsWith('t10k-labels')) body[100] ^= 0xff;
      res.writeHead(200).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const mirror = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'fetch-'));
      const files = await fetchMnist(dir, mirror);
      expect(files).toHaveLength(4);
      const d2 = mkdtempSync(join(tmpdir(), 'fetch-'));
      corrupt = true;
      await expect(fetchMnist(d2, mirror)).rejects.toThrow(/t10k-labels-idx1-ubyte\.gz: sha256 mismatch: expected f7ae60f9/);
      expect(existsSync(join(d2, 'mnist', 't10k-labels-idx1-ubyte.gz'))).toBe(false);
      expect(Object.keys(MNIST_SHA256)).toHaveLength(4);
    } finally {
      server.close();
    }
  });
});
