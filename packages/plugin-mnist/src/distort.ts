/**
 * Elastic distortion (Simard, Steinkraus and Platt 2003): a random displacement field, uniform in
 * [-1, 1] per pixel, smoothed by a Gaussian of std sigma and scaled by alpha, moves every pixel;
 * the image is resampled bilinearly (background outside). Image i's field comes from the stream
 * (seed, data, 2, i), so the distorted set is the same for every run and study with that seed.
 */
import { RandomStream, StreamPurpose } from '@sgd-lab/core';
import { PIXELS, SIDE, type ImageSet } from './data.js';

/** Value of the background in the [-1, 1] pixel range. */
const BACKGROUND = -1;

function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Separable Gaussian smoothing with zeros outside the image. */
function smooth(field: Float64Array, kernel: Float64Array): Float64Array {
  const r = (kernel.length - 1) / 2;
  const tmp = new Float64Array(PIXELS);
  const out = new Float64Array(PIXELS);
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      let s = 0;
      for (let k = -r; k <= r; k++) {
        const xx = x + k;
        if (xx >= 0 && xx < SIDE) s += kernel[k + r] * field[y * SIDE + xx];
      }
      tmp[y * SIDE + x] = s;
    }
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      let s = 0;
      for (let k = -r; k <= r; k++) {
        const yy = y + k;
        if (yy >= 0 && yy < SIDE) s += kernel[k + r] * tmp[yy * SIDE + x];
      }
      out[y * SIDE + x] = s;
    }
  return out;
}

function pixel(img: Float32Array, o: number, x: number, y: number): number {
  return x >= 0 && x < SIDE && y >= 0 && y < SIDE ? img[o + y * SIDE + x] : BACKGROUND;
}

/** Distorts one image (784 floats at `offset`) into `out`. */
export function distortImage(img: Float32Array, offset: number, out: Float32Array, outOffset: number, rng: RandomStream, alpha: number, kernel: Float64Array): void {
  const dx = new Float64Array(PIXELS);
  const dy = new Float64Array(PIXELS);
  for (let i = 0; i < PIXELS; i++) dx[i] = rng.nextDouble() * 2 - 1;
  for (let i = 0; i < PIXELS; i++) dy[i] = rng.nextDouble() * 2 - 1;
  const sx = smooth(dx, kernel);
  const sy = smooth(dy, kernel);
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      const fx = x + alpha * sx[y * SIDE + x];
      const fy = y + alpha * sy[y * SIDE + x];
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const wx = fx - x0;
      const wy = fy - y0;
      out[outOffset + y * SIDE + x] =
        (1 - wx) * (1 - wy) * pixel(img, offset, x0, y0) +
        wx * (1 - wy) * pixel(img, offset, x0 + 1, y0) +
        (1 - wx) * wy * pixel(img, offset, x0, y0 + 1) +
        wx * wy * pixel(img, offset, x0 + 1, y0 + 1);
    }
}

/** The elastically distorted copy of a set (labels unchanged). */
export function distortSet(set: ImageSet, seed: number, alpha: number, sigma: number): ImageSet {
  const kernel = gaussianKernel(sigma);
  const images = new Float32Array(set.images.length);
  for (let i = 0; i < set.count; i++) distortImage(set.images, i * PIXELS, images, i * PIXELS, new RandomStream([seed, StreamPurpose.data, 2, i]), alpha, kernel);
  return { images, labels: set.labels, count: set.count };
}
