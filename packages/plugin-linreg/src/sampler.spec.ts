import { describe, expect, it } from 'vitest';
import { withReplacement, withoutReplacement, samplingFactor } from './sampler.js';

const shard = (runStart: number, runCount: number, batchSize: number) => ({ batchSize, initPoint: 0, runStart, runCount, steps: 10 });

describe('samplers', () => {
  it('draw b distinct rows without replacement', () => {
    const s = withoutReplacement(20).create(shard(0, 5, 7), 1);
    for (let t = 0; t < 50; t++) {
      const { indices, stride, size } = s.next(t);
      for (let r = 0; r < 5; r++) {
        const rows = indices.subarray(r * stride, r * stride + size);
        expect(new Set(rows).size).toBe(7);
        for (const i of rows) expect(i >= 0 && i < 20).toBe(true);
      }
    }
  });

  it('give run r the same stream whatever shard it is in', () => {
    const n = 30;
    const whole = withoutReplacement(n).create(shard(0, 10, 4), 9);
    const part = withoutReplacement(n).create(shard(6, 3, 4), 9);
    for (let t = 0; t < 20; t++) {
      const a = whole.next(t);
      const rowsA = Array.from(a.indices.subarray(7 * a.stride, 7 * a.stride + 4));
      const b = part.next(t);
      const rowsB = Array.from(b.indices.subarray(1 * b.stride, 1 * b.stride + 4));
      expect(rowsB).toEqual(rowsA);
    }
  });

  it('include each row with probability b/n, per draw and across runs', () => {
    const n = 10;
    const b = 3;
    const runs = 200;
    const steps = 100;
    for (const factory of [withoutReplacement(n), withReplacement(n)]) {
      const s = factory.create(shard(0, runs, b), 4);
      const counts = new Array<number>(n).fill(0);
      for (let t = 0; t < steps; t++) {
        const { indices, stride } = s.next(t);
        for (let r = 0; r < runs; r++) for (let j = 0; j < b; j++) counts[indices[r * stride + j]]++;
      }
      const draws = runs * steps * b;
      const e = draws / n;
      // Binomial sd is an upper bound for both schemes (without replacement is less variable).
      const sd = Math.sqrt(draws * (1 / n) * (1 - 1 / n));
      for (const c of counts) expect(Math.abs(c - e)).toBeLessThan(5 * sd);
    }
  });

  it('use the sampling factor of Lemma 1', () => {
    expect(samplingFactor('without-replacement', 500, 500)).toBe(0);
    expect(samplingFactor('without-replacement', 500, 1)).toBe(1);
    expect(samplingFactor('with-replacement', 500, 4)).toBe(0.25);
  });
});
