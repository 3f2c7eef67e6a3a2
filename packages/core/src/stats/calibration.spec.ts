/**
 * The calibration the claims rest on, short version (the long one is `npm run calibrate`, report
 * in docs/calibration.md). Fixed seeds; with n replications a share p has standard error
 * sqrt(p (1 - p) / n): 0.0034 for coverage near 0.95 and 0.0016 for a size near 0.01 at
 * n = 4,000, so the bands [0.93, 0.97] and <= 0.015 are 3-6 standard errors from the nominal
 * values and fail for any real miscalibration of that order.
 */
import { describe, expect, it } from 'vitest';
import { MIN_RUNS_FOR_VERDICT } from '../claims/monotone.js';
import { FAMILIES, calibrate, calibrateAgreement, calibrateMean } from './calibration.js';

const N = 4000;
const family = (id: string) => FAMILIES.find((f) => f.id === id)!;

describe('calibration of the variance interval and test (run blocks of 16)', () => {
  for (const id of ['gaussian', 'rank-1']) {
    for (const runs of [MIN_RUNS_FOR_VERDICT, 32, 128]) {
      it(`${id}, R = ${runs}: 95% coverage in [0.93, 0.97], one-sided 1% size <= 1.5%, power at a 2x ratio`, () => {
        const r = calibrate(family(id), runs, 16, N);
        expect(r.coverage).toBeGreaterThanOrEqual(0.93);
        expect(r.coverage).toBeLessThanOrEqual(0.97);
        expect(r.size).toBeLessThanOrEqual(0.015);
        // A twofold variance is found most of the time at R = 128 (rank-1 is the scalar case, the
        // hardest to tell apart: log s^2 has variance about 2 / (R - 1)).
        if (runs >= 128) expect(r.power).toBeGreaterThan(0.8);
      });
    }
  }

  it('flags heavier tails than any Gaussian by the dispersion of the per-run squared deviations', () => {
    // Gaussian: 2 tr(S^2) / tr(S)^2 = 0.1 for 20 independent coordinates, 2 for rank 1.
    expect(calibrate(family('gaussian'), 64, 16, 500).dispersion).toBeLessThan(0.2);
    const t5 = calibrate(family('student-t5'), 128, 16, 500);
    expect(t5.dispersion).toBeGreaterThan(4);
    expect(t5.flaggedHeavy).toBeGreaterThan(0.9);
  });

  it('is not calibrated for heavy tails at small R, which is why MIN_RUNS_FOR_VERDICT and docs/calibration.md say so', () => {
    // Recorded, not hidden: the scale mixture at R = 16 covers well under 0.93 (docs/calibration.md).
    const r = calibrate(family('scale-mixture'), 16, 16, N);
    expect(r.coverage).toBeLessThan(0.93);
    expect(r.missHigh).toBeGreaterThan(r.missLow);
  });
});

describe('calibration of the interval of a mean (losses, errors)', () => {
  for (const [kind, sizes] of [['gaussian', [16, 32, 128]], ['exponential', [128]]] as const) {
    it(`${kind}, R in {${sizes.join(', ')}}: 95% coverage in [0.93, 0.97]`, () => {
      for (const runs of sizes) {
        const r = calibrateMean(kind, runs, 16, N);
        expect({ runs, ok: r.coverage >= 0.93 && r.coverage <= 0.97 }).toEqual({ runs, ok: true });
      }
    });
  }
});

describe('calibration of the agreement-with-the-oracle claim', () => {
  // 1,000 replications of 3 batch sizes x 20 steps (60 comparisons) with the Monte Carlo right:
  // the share that fails must stay at the 1% level (standard error 0.003 at 0.01).
  for (const id of ['gaussian', 'rank-1']) {
    it(`${id}, R in {16, 32, 128}: fails at most 1.5% of the time when the Monte Carlo is right`, () => {
      for (const runs of [16, 32, 128]) {
        const r = calibrateAgreement(family(id), runs, 16, 20, 3, 1000);
        expect(r.comparisons).toBe(60);
        expect({ runs, size: r.size }).toEqual({ runs, size: expect.toSatisfy((x: number) => x <= 0.015) });
      }
    });
  }
});
