import { describe, expect, it } from 'vitest';
import { polyfit, polyval, realRootsIn } from './polyfit.js';

describe('polyfit', () => {
  it('recovers an exact polynomial in 1/b', () => {
    const c = [0.3, -2, 40, 7];
    const bs = [2, 4, 8, 16, 32, 64, 128, 256];
    const x = bs.map((b) => 1 / b);
    const fit = polyfit(x, x.map((v) => polyval(c, v)), { degree: 3 });
    fit.coefficients.forEach((v, k) => expect(v).toBeCloseTo(c[k], 8));
    expect(fit.rss).toBeLessThan(1e-20);
  });

  it('fits without a constant term', () => {
    const c = [0, 5, -3];
    const x = [0.1, 0.2, 0.5, 1];
    const fit = polyfit(x, x.map((v) => polyval(c, v)), { degree: 2, minPower: 1 });
    expect(fit.coefficients[0]).toBe(0);
    expect(fit.coefficients[1]).toBeCloseTo(5, 10);
    expect(fit.coefficients[2]).toBeCloseTo(-3, 10);
  });

  it('rejects underdetermined fits', () => {
    expect(() => polyfit([1, 2], [1, 2], { degree: 3 })).toThrow(/cannot determine/);
  });

  it('finds real roots', () => {
    // (x - 0.25)(x - 2)
    expect(realRootsIn([0.5, -2.25, 1], 0, 3).map((r) => +r.toFixed(10))).toEqual([0.25, 2]);
  });
});
