import { describe, expect, it } from 'vitest';
import { PackedStreams, RandomStream, stateForKey } from './stream.js';
import { normalQuantile } from '../stats/normal.js';

/** Upper quantile of chi-square with k dof (Wilson-Hilferty), for goodness-of-fit bounds. */
function chi2Upper(k: number, p: number): number {
  const z = normalQuantile(1 - p);
  return k * (1 - 2 / (9 * k) + z * Math.sqrt(2 / (9 * k))) ** 3;
}

describe('RandomStream', () => {
  it('depends on the key only', () => {
    const a = new RandomStream([7, 2, 0, 16, 3]);
    const b = new RandomStream([7, 2, 0, 16, 3]);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs);
    const c = new RandomStream([7, 2, 0, 16, 4]);
    expect(Array.from({ length: 100 }, () => c.nextU32())).not.toEqual(xs);
  });

  it('separates keys that differ only in length or in high words', () => {
    const keys = [[1], [1, 0], [1, 0, 0], [2 ** 32 + 1], [1, 1]];
    const states = keys.map((k) => Array.from(stateForKey(k)).join(','));
    expect(new Set(states).size).toBe(keys.length);
  });

  it('draws integers uniformly (chi-square at level 1e-6)', () => {
    const rng = new RandomStream([42]);
    const k = 37;
    const draws = 370_000;
    const counts = new Array<number>(k).fill(0);
    for (let i = 0; i < draws; i++) counts[rng.nextInt(k)]++;
    const e = draws / k;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    expect(chi2).toBeLessThan(chi2Upper(k - 1, 1e-6));
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it('gives standard normals (moments within 5 standard errors)', () => {
    const rng = new RandomStream([3]);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = rng.nextNormal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(5 / Math.sqrt(n));
    // Var of the sample second moment is 2 for N(0, 1).
    expect(Math.abs(s2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
  });

  it('nextDouble stays in [0, 1)', () => {
    const rng = new RandomStream([5]);
    for (let i = 0; i < 10_000; i++) {
      const u = rng.nextDouble();
      expect(u >= 0 && u < 1).toBe(true);
    }
  });
});

describe('PackedStreams', () => {
  it('reproduces RandomStream for the same keys', () => {
    const keys = [[1, 2, 3], [9, 9], [0]];
    const packed = new PackedStreams(keys);
    keys.forEach((key, i) => {
      const single = new RandomStream(key);
      for (let j = 0; j < 50; j++) expect(packed.nextInt(i, 1000 + j)).toBe(single.nextInt(1000 + j));
    });
  });

  it('partialShuffle draws what nextInt would, and yields a uniform subset', () => {
    const n = 10;
    const a = new PackedStreams([[11]]);
    const b = new PackedStreams([[11]]);
    const perm = Int32Array.from({ length: n }, (_, i) => i);
    const ref = Int32Array.from({ length: n }, (_, i) => i);
    const inclusion = new Array<number>(n).fill(0);
    const trials = 50_000;
    const size = 3;
    for (let t = 0; t < trials; t++) {
      a.partialShuffle(0, perm, 0, n, size);
      for (let j = 0; j < size; j++) {
        const k = j + b.nextInt(0, n - j);
        [ref[j], ref[k]] = [ref[k], ref[j]];
      }
      expect(Array.from(perm.subarray(0, size))).toEqual(Array.from(ref.subarray(0, size)));
      for (let j = 0; j < size; j++) inclusion[perm[j]]++;
      expect(new Set(perm.subarray(0, size)).size).toBe(size);
    }
    // Each index is included with probability size/n.
    const e = (trials * size) / n;
    const sd = Math.sqrt(trials * (size / n) * (1 - size / n));
    for (const c of inclusion) expect(Math.abs(c - e)).toBeLessThan(5 * sd);
  });
});
