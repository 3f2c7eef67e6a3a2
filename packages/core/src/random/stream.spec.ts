import { describe, expect, it } from 'vitest';
import { PackedStreams, RandomStream, stateForKey } from './stream.js';
import { SINCOS_LIMIT, log, sinCos } from './fdlibm.js';
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

  it('draws the normals it drew before its log, sin and cos were its own (fixed bits of one key)', () => {
    // Recorded from the stream of Math.log, Math.sin and Math.cos (before fdlibm.ts), Node.js 20.
    const rng = new RandomStream([2026, 2, 0, 64, 7]);
    expect(Array.from({ length: 6 }, () => rng.nextNormal())).toEqual([1.0420610630164349, 0.8541649988366301, -0.6095934495794336, 2.627759034426086, -0.14060551249196, -1.4523355753606852]);
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
  it('fillNormals gives each stream what RandomStream.fillNormal gives, its spare carried across calls', () => {
    const keys = [[1, 2, 3], [9, 9], [0], [5, 2, 0, 7, 1]];
    const packed = new PackedStreams(keys);
    const singles = keys.map((k) => new RandomStream(k));
    // Odd counts leave a spare deviate in every stream between calls.
    for (const perStream of [7, 1, 10, 3]) {
      const out = packed.fillNormals(new Float32Array(keys.length * perStream), perStream, 0.5);
      singles.forEach((single, i) => expect(out.subarray(i * perStream, (i + 1) * perStream)).toEqual(single.fillNormal(new Float32Array(perStream), 0.5)));
    }
    expect(() => packed.fillNormals(new Float32Array(3), 1)).toThrow(/out holds 3 values, 4 streams x 1 need 4/);
  });


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

describe('fdlibm.ts (log, sin and cos of the normal deviates)', () => {
  // The arguments Box-Muller gives them: uniforms of 53 bits, 2 pi times uniforms; and the hard
  // cases: tiny uniforms (subnormal-free but far from 1), uniforms within 2^-20 of 1, and angles
  // within a few ulps of multiples of pi / 4 and pi / 2, where the reduction cancels.
  const rng = new RandomStream([77]);
  const uniforms: number[] = [];
  for (let i = 0; i < 300_000; i++) uniforms.push(rng.nextDouble());
  for (let i = 0; i < 20_000; i++) uniforms.push(rng.nextDouble() * 2 ** -(1 + rng.nextInt(52)), 1 - rng.nextDouble() * 2 ** -(20 + rng.nextInt(30)), 1 + rng.nextDouble() * 2 ** -20);
  const angles = uniforms.map((u) => 2 * Math.PI * u);
  for (let q = 0; q <= 8; q++) for (let d = -64; d <= 64; d++) angles.push(Math.max(0, (q * Math.PI) / 4 + d * 2 ** -50 * Math.max(1, q)));
  // Node.js 20's V8 computes Math.log, Math.sin and Math.cos with fdlibm 5.3's algorithms; a later
  // engine may not, and then only the fixed bits above (and the addon) say the streams stayed.
  const fdlibmEngine = Number(process.versions.v8.split('.')[0]) <= 11;

  it.runIf(fdlibmEngine)('log equals Math.log to the bit on this engine', () => {
    let mismatches = 0;
    for (const u of uniforms) if (log(u) !== Math.log(u)) mismatches++;
    expect(mismatches).toBe(0);
  });

  it.runIf(fdlibmEngine)('sinCos equals Math.sin and Math.cos to the bit on this engine', () => {
    const sc = new Float64Array(2);
    let mismatches = 0;
    for (const a of angles) {
      sinCos(a, sc);
      if (sc[0] !== Math.sin(a) || sc[1] !== Math.cos(a)) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('stays within 2 ulps of Math.log, Math.sin and Math.cos on any engine', () => {
    // Engine-independent: each value within 2 ulps of Math's (both are faithful to within 1 ulp).
    const ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x) || 2 ** -1074)) - 52);
    const sc = new Float64Array(2);
    for (const u of uniforms.slice(0, 20_000)) expect(Math.abs(log(u) - Math.log(u))).toBeLessThanOrEqual(2 * ulp(Math.log(u)) + 2 ** -1074);
    for (const a of angles.slice(0, 20_000)) {
      sinCos(a, sc);
      expect(Math.abs(sc[0] - Math.sin(a))).toBeLessThanOrEqual(2 * ulp(Math.sin(a)) + 2 ** -1074);
      expect(Math.abs(sc[1] - Math.cos(a))).toBeLessThanOrEqual(2 * ulp(Math.cos(a)) + 2 ** -1074);
    }
  });

  it('falls back to Math outside its domain', () => {
    const sc = new Float64Array(2);
    expect(Array.from(sinCos(-1, sc))).toEqual([Math.sin(-1), Math.cos(-1)]);
    expect(Array.from(sinCos(SINCOS_LIMIT * 2, sc))).toEqual([Math.sin(SINCOS_LIMIT * 2), Math.cos(SINCOS_LIMIT * 2)]);
    expect(log(0)).toBe(-Infinity);
    expect(Number.isNaN(log(-1))).toBe(true);
  });
});
