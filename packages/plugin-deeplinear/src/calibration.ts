/**
 * Synthetic variances for calibrating the Theorem 4 test (theorem4.spec.ts, tools/calibrate-theorem4.mjs):
 * the shape of the cpu preset at t = 99 (the no-constant fit of degree 4 of a 128-run study on
 * b = 1..64) with its records' log standard errors, redrawn log-normally, plus a chosen constant.
 */
import { RandomStream } from '@sgd-lab/core';
import type { VariancePoint } from './analysis.js';

export const T99_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64];
/** Coefficients of 1/b^k, k = 0..4 (no constant). */
export const T99_POLYNOMIAL = [0, 3190.4, 9251.7, 6893.7, -808.5];
/** Log standard errors of the 128-run records at b = 1..64. */
export const T99_LOG_SE = [0.037, 0.029, 0.022, 0.012, 0.01, 0.008, 0.005];
const DF = 119;

/**
 * One draw of the seven records with a constant of `constantRatio` times the leading coefficient;
 * each record's standard error is itself estimated (chi-square with the records' df).
 */
export function drawT99(rng: RandomStream, constantRatio: number, batchSizes: readonly number[] = T99_BATCH_SIZES): VariancePoint[] {
  return batchSizes.map((b) => {
    const i = T99_BATCH_SIZES.indexOf(b);
    const v = constantRatio * T99_POLYNOMIAL[1] + T99_POLYNOMIAL.reduce((s, c, k) => s + c * b ** -k, 0);
    let chi = 0;
    for (let j = 0; j < DF; j++) chi += rng.nextNormal() ** 2;
    return { b, v: v * Math.exp(T99_LOG_SE[i] * rng.nextNormal()), logSe: T99_LOG_SE[i] * Math.sqrt(chi / DF), df: DF, runs: 128 };
  });
}
