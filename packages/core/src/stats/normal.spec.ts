import { describe, expect, it } from 'vitest';
import { erfc, normalCdf, normalQuantile, normalSf } from './normal.js';

describe('normal distribution', () => {
  it('matches tabulated values', () => {
    // Values from standard tables (15 significant digits).
    expect(normalCdf(1.96)).toBeCloseTo(0.975002104851780, 13);
    expect(normalCdf(-1)).toBeCloseTo(0.158655253931457, 13);
    expect(erfc(0.5)).toBeCloseTo(0.479500122186953, 13);
    expect(normalSf(5) / 2.86651571879194e-7).toBeCloseTo(1, 10);
    expect(normalSf(10) / 7.61985302416047e-24).toBeCloseTo(1, 8);
  });

  it('inverts the cdf', () => {
    for (const p of [1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999999]) {
      expect(normalCdf(normalQuantile(p)) / p).toBeCloseTo(1, 9);
    }
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
  });
});
