import { describe, expect, it } from 'vitest';
import { studentCdf, studentQuantile, studentSf } from './student-t.js';
import { normalQuantile } from './normal.js';

describe('Student t', () => {
  it('matches tabulated quantiles', () => {
    // Values from standard tables (scipy.stats.t.ppf).
    expect(studentQuantile(0.975, 1)).toBeCloseTo(12.706204736, 7);
    expect(studentQuantile(0.975, 5)).toBeCloseTo(2.570581836, 8);
    expect(studentQuantile(0.99, 30)).toBeCloseTo(2.4572615424, 8);
    expect(studentQuantile(0.995, 7)).toBeCloseTo(3.499483297, 8);
    expect(studentQuantile(0.975, Infinity)).toBeCloseTo(normalQuantile(0.975), 12);
  });

  it('has a distribution function consistent with its quantiles and symmetric', () => {
    for (const df of [1, 2.5, 6, 40, 1000]) {
      for (const p of [0.001, 0.2, 0.5, 0.9, 0.999]) expect(studentCdf(studentQuantile(p, df), df)).toBeCloseTo(p, 10);
      expect(studentSf(1.3, df) + studentSf(-1.3, df)).toBeCloseTo(1, 14);
    }
    // Cauchy: P(T > 1) = 1/4.
    expect(studentSf(1, 1)).toBeCloseTo(0.25, 13);
  });
});
