/**
 * The encoder: its parameter count against the paper's, the relative shift, and its autodiff
 * gradients against central finite differences in float64-free float32 tolerance.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { RandomStream } from '@sgd-lab/core';
import { useBackend } from '@sgd-lab/tensor';
import { PAPER_PARAMETERS, PAPER_SIZE, countNote } from './index.js';
import { fusedXlnet } from './fused.js';
import { initXlnet, parameterCount, relShift, replicaGroups, xlnetBlocks, xlnetProgram, type XlnetSize } from './model.js';

beforeAll(async () => {
  await useBackend('auto', () => {});
});

describe('XLNet encoder', () => {
  it("counts the paper preset's parameters and states the difference from the paper's", () => {
    const paper = { ...PAPER_SIZE, vocab: 32000 };
    // word embeddings 12,288,000 + mask_emb 384 + 6 x 3,890,944 per layer + summary 147,840 + head 770
    expect(parameterCount(paper)).toBe(12_288_000 + 384 + 6 * 3_890_944 + 147_840 + 770);
    expect(parameterCount(paper)).toBe(35_782_658);
    expect(parameterCount({ ...paper, vocab: 31_246 })).toBe(PAPER_PARAMETERS);
    expect(countNote(paper)).toBe("35,782,658 parameters (vocabulary 32,000); the paper reports 35,493,122, 289,536 fewer; the paper's count is this layout with a 31,246-token vocabulary");
  });

  it('relative shift: entry (i, j) reads relative position i - j', () => {
    const L = 4;
    // Scores against positions L, L-1, ..., 1-L: column c holds distance L - c.
    const x = tf.tensor4d(Array.from({ length: L * 2 * L }, (_, k) => L - (k % (2 * L))), [1, 1, L, 2 * L]);
    const y = relShift(x, L).arraySync()[0][0];
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) expect(y[i][j]).toBe(i - j);
  });

  it('gives autodiff gradients equal to finite differences', async () => {
    const size: XlnetSize = { vocab: 12, layers: 1, dModel: 8, heads: 2, inner: 16, length: 6 };
    const program = xlnetProgram(size);
    const theta = initXlnet(new RandomStream([3]), size);
    // Larger weights than the 0.02 init, so every term matters.
    for (let i = 0; i < theta.length; i++) theta[i] *= 20;
    const blocks = xlnetBlocks(size);
    const ids = tf.tensor2d([0, 0, 5, 7, 2, 3, 0, 4, 6, 8, 2, 3, 9, 10, 11, 5, 2, 3], [3, 6]);
    const y = tf.tensor2d([1, 0, 0, 1, 1, 0], [3, 2]);
    const paramsOf = (t: Float64Array) => {
      let o = 0;
      return blocks.map((b) => {
        const n = b.shape[0] * b.shape[1];
        const p = tf.tensor2d(Float32Array.from(t.subarray(o, o + n)), b.shape);
        o += n;
        return p;
      });
    };
    const { grads, loss } = tf.tidy(() => {
      const out = program.step(paramsOf(theta), [ids, y], false);
      return { grads: out.grads.map((g) => g.dataSync().slice()), loss: out.loss.dataSync()[0] };
    });
    expect(Number.isFinite(loss)).toBe(true);
    const lossAt = (t: Float64Array) => tf.tidy(() => program.evaluate!(paramsOf(t), [ids, y]).loss.dataSync()[0]);
    // One coordinate in each block whose gradient is not ~0 (mask_emb's is exactly 0).
    let checked = 0;
    let o = 0;
    blocks.forEach((b, k) => {
      const n = b.shape[0] * b.shape[1];
      if (b.name === 'mask_emb') expect(grads[k].every((v) => v === 0)).toBe(true);
      let best = 0;
      for (let i = 1; i < n; i++) if (Math.abs(grads[k][i]) > Math.abs(grads[k][best])) best = i;
      if (Math.abs(grads[k][best]) > 1e-3) {
        const h = 2e-3;
        const plus = Float64Array.from(theta);
        const minus = Float64Array.from(theta);
        plus[o + best] += h;
        minus[o + best] -= h;
        const fd = (lossAt(plus) - lossAt(minus)) / (2 * h);
        // Central differences: O(h^2) truncation plus float32 round-off of the loss (~1e-7) / h.
        expect(Math.abs(fd - grads[k][best]), b.name).toBeLessThanOrEqual(0.02 * Math.abs(grads[k][best]) + 5e-4);
        checked++;
      }
      o += n;
    });
    expect(checked).toBeGreaterThan(15);
    program.dispose();
  });

  it.each([undefined, 2, 4])('stacked (a chunk of replicas on a leading run axis) gives each replica its per-replica loss, gradient and evaluation (groups of at most %s sequences)', (limit) => {
    const size: XlnetSize = { vocab: 12, layers: 2, dModel: 8, heads: 2, inner: 16, length: 6 };
    // 2 and 4 sequences: the chunk of 3 replicas of 2 runs in groups of 1 and of 2 (+ 1).
    const program = xlnetProgram(size, { stackedSequences: limit });
    const blocks = xlnetBlocks(size);
    const C = 3;
    const B = 2;
    // Each replica its own parameters and its own batch.
    const thetas = Array.from({ length: C }, (_, c) => initXlnet(new RandomStream([10 + c]), size).map((v) => v * 20));
    const split = (t: Float64Array) => {
      let o = 0;
      return blocks.map((b) => {
        const n = b.shape[0] * b.shape[1];
        o += n;
        return t.subarray(o - n, o);
      });
    };
    const parts = thetas.map(split);
    const ids = Array.from({ length: C * B * size.length }, (_, i) => (i % 6 < 2 ? 0 : 2 + ((i * 7) % 10)));
    const labels = Array.from({ length: C * B }, (_, i) => (i % 3 === 0 ? [1, 0] : [0, 1])).flat();
    const perReplica = Array.from({ length: C }, (_, c) =>
      tf.tidy(() => {
        const ps = parts[c].map((v, k) => tf.tensor2d(Float32Array.from(v), blocks[k].shape));
        const x = tf.tensor2d(ids.slice(c * B * size.length, (c + 1) * B * size.length), [B, size.length]);
        const y = tf.tensor2d(labels.slice(c * B * 2, (c + 1) * B * 2), [B, 2]);
        const out = program.step(ps, [x, y], false);
        const ev = program.evaluate!(ps, [x, y]);
        return { grads: out.grads.map((g) => g.dataSync().slice()), loss: out.loss.dataSync()[0], evalLoss: ev.loss.dataSync()[0], error: ev.error.dataSync()[0] };
      }),
    );
    const before = tf.memory().numTensors;
    const stacked = tf.tidy(() => {
      const ps = blocks.map((b, k) => tf.tensor3d(Float32Array.from(parts.flatMap((p) => Array.from(p[k]))), [C, ...b.shape]));
      const out = program.step(ps, [tf.tensor3d(ids, [C, B, size.length]), tf.tensor3d(labels, [C, B, 2])], false);
      expect(out.loss.shape).toEqual([C]);
      const loss = Array.from(out.loss.dataSync());
      // Kept past the gradient's scope (the engine reads and frees it): nothing else is left.
      out.loss.dispose();
      return { grads: out.grads.map((g) => g.dataSync().slice()), loss };
    });
    expect(tf.memory().numTensors).toBe(before);
    for (let c = 0; c < C; c++) {
      expect(stacked.loss[c]).toBeCloseTo(perReplica[c].loss, 5);
      blocks.forEach((b, k) => {
        const n = b.shape[0] * b.shape[1];
        const got = stacked.grads[k].subarray(c * n, (c + 1) * n);
        const want = perReplica[c].grads[k];
        const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
        for (let i = 0; i < n; i++) expect(Math.abs(got[i] - want[i]), `${b.name} replica ${c}`).toBeLessThanOrEqual(1e-4 * scale);
      });
    }
    // Evaluation: inputs shared by the chunk, one loss and error per replica.
    tf.tidy(() => {
      const ps = blocks.map((b, k) => tf.tensor3d(Float32Array.from(parts.flatMap((p) => Array.from(p[k]))), [C, ...b.shape]));
      for (let c = 0; c < C; c++) {
        const x = tf.tensor2d(ids.slice(c * B * size.length, (c + 1) * B * size.length), [B, size.length]);
        const y = tf.tensor2d(labels.slice(c * B * 2, (c + 1) * B * 2), [B, 2]);
        const ev = program.evaluate!(ps, [x, y]);
        expect(ev.loss.shape).toEqual([C]);
        expect(ev.loss.dataSync()[c]).toBeCloseTo(perReplica[c].evalLoss, 5);
        expect(ev.error.dataSync()[c]).toBeCloseTo(perReplica[c].error, 6);
      }
    });
    program.dispose();
  });
});

describe('the fused step on native (attention block, layer norm, bias + GELU, embedding scatter-add; backward written out)', () => {
  it.each([
    ['per replica', 1],
    ['stacked', 3],
  ])('gives the loss and every gradient of the composed TensorFlow.js ops under autodiff (%s), in a fifth of the kernels or fewer', async (_, C) => {
    const backend = await useBackend('native', () => {});
    if (backend.name !== 'native') return; // no addon here: the composed ops are all there is
    expect(fusedXlnet()).toBe(true);
    const size: XlnetSize = { vocab: 40, layers: 2, dModel: 16, heads: 2, inner: 48, length: 9 };
    const program = xlnetProgram(size);
    const blocks = xlnetBlocks(size);
    const B = 4;
    const stacked = C > 1;
    const thetas = Array.from({ length: C }, (_, c) => initXlnet(new RandomStream([30 + c]), size).map((v) => v * 6));
    // Left padding of 0 to 4 tokens, then ids; repeated ids sum in the embedding gradient.
    const ids = Array.from({ length: C * B }, (_, r) => Array.from({ length: size.length }, (_, j) => (j < r % 5 ? 0 : 2 + ((r * 5 + j * 3) % 11)))).flat();
    const labels = Array.from({ length: C * B }, (_, i) => (i % 3 === 0 ? [1, 0] : [0, 1])).flat();
    const run = async (fused: boolean) => {
      if (!fused) process.env.SGD_LAB_FUSED_STEP = '0';
      try {
        let result: { grads: Float32Array[]; loss: number[] } | undefined;
        // The profiler lists every kernel the step runs, forward and backward.
        const profile = await tf.profile(() => {
          result = tf.tidy(() => {
            const ps = blocks.map((b, k) => {
              let o = 0;
              for (let j = 0; j < k; j++) o += blocks[j].shape[0] * blocks[j].shape[1];
              const n = b.shape[0] * b.shape[1];
              const v = Float32Array.from(thetas.flatMap((t) => Array.from(t.subarray(o, o + n))));
              return stacked ? tf.tensor3d(v, [C, ...b.shape]) : tf.tensor2d(v, b.shape);
            });
            const x = stacked ? tf.tensor3d(ids, [C, B, size.length]) : tf.tensor2d(ids, [B, size.length]);
            const y = stacked ? tf.tensor3d(labels, [C, B, 2]) : tf.tensor2d(labels, [B, 2]);
            const out = program.step(ps, [x, y], false);
            const r = { grads: out.grads.map((g) => g.dataSync().slice() as Float32Array), loss: Array.from(out.loss.dataSync()) };
            if (stacked) out.loss.dispose();
            return r;
          });
        });
        return { ...result!, kernels: profile.kernels.length };
      } finally {
        delete process.env.SGD_LAB_FUSED_STEP;
      }
    };
    const fused = await run(true);
    const composed = await run(false);
    for (let c = 0; c < C; c++) expect(fused.loss[c]).toBeCloseTo(composed.loss[c], 5);
    blocks.forEach((b, k) => {
      const want = composed.grads[k];
      const got = fused.grads[k];
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // mask_emb takes no part in the loss; every other block has a gradient.
      if (b.name !== 'mask_emb') expect(scale, b.name).toBeGreaterThan(1e-5);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      // float32 sums in other orders (double inside the fused kernels): relative to the block's
      // scale (measured: at most 4e-6 of it).
      expect(worst, b.name).toBeLessThanOrEqual(2e-5 * scale + 1e-7);
    });
    // Measured: 178 against 916 per replica (its blocks reshaped to a chunk of one and back), 98
    // against 944 stacked; no autodiff tape, no head transposes.
    expect(fused.kernels).toBeLessThan(0.2 * composed.kernels);
    program.dispose();
  });

  it('names a token id outside the vocabulary, and labels that do not match the batch', async () => {
    const backend = await useBackend('native', () => {});
    if (backend.name !== 'native') return;
    const size: XlnetSize = { vocab: 12, layers: 1, dModel: 8, heads: 2, inner: 16, length: 4 };
    const program = xlnetProgram(size);
    tf.tidy(() => {
      const ps = xlnetBlocks(size).map((b) => tf.zeros([2, ...b.shape]));
      const y = tf.zeros([2, 3, 2]);
      expect(() => program.step(ps, [tf.tensor3d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 11], [2, 3, 4]), y], false)).toThrow(
        /xlnet: token id 12 \(replica 1, sequence 2, position 2\) is not in the vocabulary \[0, 12\)/,
      );
      expect(() => program.step(ps, [tf.zeros([2, 3, 4]), tf.zeros([2, 2, 2])], false)).toThrow(/xlnet: expected labels \[2, 3, 2\], got \[2,2,2\]/);
    });
    program.dispose();
  });
});

describe('replicaGroups', () => {
  it('splits a chunk into groups of at most `limit` sequences, whole replicas, at least one each', () => {
    expect(replicaGroups(16, 64)).toEqual([[0, 8], [8, 8]]);
    expect(replicaGroups(16, 32)).toEqual([[0, 16]]);
    expect(replicaGroups(5, 100)).toEqual([[0, 5]]);
    expect(replicaGroups(6, 100)).toEqual([[0, 5], [5, 1]]);
    expect(replicaGroups(3, 1000)).toEqual([[0, 1], [1, 1], [2, 1]]);
  });
});
