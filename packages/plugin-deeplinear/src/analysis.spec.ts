import { describe, expect, it } from 'vitest';
import { b0Estimate } from './analysis.js';

describe('b0Estimate', () => {
  it('is the largest b where the fitted variance turns, with the sign of the leading coefficient', () => {
    // V = x - x^2 (x = 1/b): dV/dx = 1 - 2x = 0 at x = 1/2, so V decreases in b for b > 2.
    expect(b0Estimate([0, 1, -1])).toBeCloseTo(2, 10);
    // V = x + x^2: decreasing for every b > 0.
    expect(b0Estimate([0, 1, 1])).toBe(0);
    // A negative leading coefficient: V grows with b for large b, no b0 exists (it used to be 0).
    expect(b0Estimate([0, -1, 1])).toBe(Infinity);
    expect(b0Estimate([0, 0])).toBe(Infinity);
    // A turn at b < 1 is found too (the paper: "b0 is smaller than 1 in many experiments").
    expect(b0Estimate([0, 1, -0.25])).toBeCloseTo(0.5, 10);
  });
});
