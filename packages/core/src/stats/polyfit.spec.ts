import { describe, expect, it } from 'vitest';
import { polyfit, polyval, realRootsIn, weightedPolyfit } from './polyfit.js';
import { chiSquareSf } from './chi-square.js';

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

describe('weightedPolyfit', () => {
  it('recovers a polynomial with its covariance and chi-square (matches the normal equations)', () => {
    const x = [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64];
    const sigma = x.map((v) => 0.1 * v + 0.01);
    const c = [0.02, 3, -1, 0.5];
    const noise = [0.3, -1.1, 0.7, 0.2, -0.4, 1.3, -0.6];
    const y = x.map((v, i) => polyval(c, v) + noise[i] * sigma[i]);
    const fit = weightedPolyfit(x, y, sigma, [0, 1, 2, 3]);
    // Normal equations by hand (well conditioned enough here): M = X'WX, c = M^-1 X'Wy.
    const m = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => x.reduce((s, v, k) => s + (v ** i * v ** j) / sigma[k] ** 2, 0)));
    const rhs = [0, 1, 2, 3].map((i) => x.reduce((s, v, k) => s + (v ** i * y[k]) / sigma[k] ** 2, 0));
    // M * coefficients = rhs and M * covariance = I.
    for (let i = 0; i < 4; i++) {
      expect(m[i].reduce((s, v, j) => s + v * fit.coefficients[j], 0) / rhs[i]).toBeCloseTo(1, 8);
      for (let j = 0; j < 4; j++) expect(m[i].reduce((s, v, k) => s + v * fit.covariance[k][j], 0)).toBeCloseTo(i === j ? 1 : 0, 6);
    }
    const chi = y.reduce((s, v, i) => s + ((v - polyval(fit.coefficients, x[i])) / sigma[i]) ** 2, 0);
    expect(fit.chiSquare).toBeCloseTo(chi, 10);
    expect(fit.df).toBe(3);
  });
});

describe('chiSquareSf', () => {
  it('matches known quantiles', () => {
    // chi-square quantiles: 95% with 1, 3, 10 df; 99% with 5 df.
    expect(chiSquareSf(3.841458820694124, 1)).toBeCloseTo(0.05, 10);
    expect(chiSquareSf(7.814727903251178, 3)).toBeCloseTo(0.05, 10);
    expect(chiSquareSf(18.307038053275146, 10)).toBeCloseTo(0.05, 10);
    expect(chiSquareSf(15.08627246938899, 5)).toBeCloseTo(0.01, 10);
    expect(chiSquareSf(0, 4)).toBe(1);
    // 2 df: exp(-x / 2) exactly.
    expect(chiSquareSf(7, 2)).toBeCloseTo(Math.exp(-3.5), 12);
  });
});
