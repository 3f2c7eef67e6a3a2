/**
 * The regression data: the Graduate Admission CSV in its original format, or a synthetic set
 * drawn from the seed when the file is not there (the tour's embedded default).
 */
import { existsSync } from 'node:fs';
import { DataError, RandomStream, StreamPurpose, readDataFile, sha256 } from '@sgd-lab/core';

/** The file name and folder a data directory holds the admission data under. */
export const ADMISSION_DIR = 'graduate_admission';
export const ADMISSION_FILE = 'Admission_Predict_Ver1.1.csv';
/** Column names exactly as in the original header (two end in a space). */
export const ID_COLUMN = 'Serial No.';
export const TARGET_COLUMN = 'Chance of Admit ';

export const HOW_TO_GET_ADMISSION =
  `download "${ADMISSION_FILE}" from the Kaggle dataset mohansacharya/graduate-admissions ` +
  `(Acharya et al. 2019) into <data-dir>/${ADMISSION_DIR}/, or set options.data to its path`;

/** A design matrix with intercept (last column) and targets, in float64. */
export interface RegressionData {
  /** n x p, row-major. */
  x: Float64Array;
  y: Float64Array;
  n: number;
  p: number;
  features: string[];
  /** Where it came from: a path or "synthetic". */
  source: string;
  sha256?: string;
}

export interface LoadOptions {
  standardizeTarget: boolean;
}

/** Parses the admission CSV; every problem names the file and line. */
export function parseAdmissionCsv(text: string, file: string, opts: LoadOptions): RegressionData {
  // A UTF-8 byte-order mark (Excel writes one) is not part of the first column's name.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length < 2) throw new DataError(file, 'no data rows (expected a header line and at least one row)');
  const header = lines[0].split(',');
  const target = header.indexOf(TARGET_COLUMN);
  if (target < 0) {
    throw new DataError(file, `header has no column "${TARGET_COLUMN}" (with its trailing space, as in the original file); got ${JSON.stringify(header)}`);
  }
  const featureCols = header.map((_, j) => j).filter((j) => j !== target && header[j] !== ID_COLUMN);
  const n = lines.length - 1;
  const p = featureCols.length + 1;
  const x = new Float64Array(n * p);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const lineNo = i + 2;
    const fields = lines[i + 1].split(',');
    if (fields.length !== header.length) throw new DataError(file, `line ${lineNo}: expected ${header.length} fields, found ${fields.length}`);
    const num = (j: number) => {
      const s = fields[j].trim();
      const v = s === '' ? NaN : Number(s);
      if (!Number.isFinite(v)) throw new DataError(file, `line ${lineNo}, column "${header[j]}": "${fields[j]}" is not a number`);
      return v;
    };
    featureCols.forEach((j, k) => (x[i * p + k] = num(j)));
    x[i * p + p - 1] = 1;
    y[i] = num(target);
  }
  const names = featureCols.map((j) => header[j]);
  standardize(x, n, p, p - 1, file, names);
  if (opts.standardizeTarget) standardize(y, n, 1, 1, file, [header[target]]);
  return { x, y, n, p, features: [...featureCols.map((j) => header[j]), '(intercept)'], source: file, sha256: sha256(text) };
}

/**
 * Centres and scales the first `cols` columns to mean 0 and population std 1. Each column is
 * first divided by its largest magnitude, so that values near the float limits (1e308) neither
 * overflow the sums nor collapse to zeros.
 */
function standardize(x: Float64Array, n: number, p: number, cols: number, file: string, names: readonly string[]): void {
  for (let j = 0; j < cols; j++) {
    let scale = 0;
    for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(x[i * p + j]));
    const name = names[j] ?? `column ${j + 1}`;
    if (!(scale > 0)) throw new DataError(file, `column "${name}" is constant (all 0) and cannot be standardised`);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[i * p + j] / scale;
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[i * p + j] / scale - mean) ** 2;
    const sd = Math.sqrt(v / n);
    if (!(sd > 0)) throw new DataError(file, `column "${name}" is constant and cannot be standardised`);
    for (let i = 0; i < n; i++) x[i * p + j] = (x[i * p + j] / scale - mean) / sd;
  }
}

export function loadAdmission(file: string, opts: LoadOptions): RegressionData {
  if (!existsSync(file)) throw new DataError(file, `not found; ${HOW_TO_GET_ADMISSION}`);
  return parseAdmissionCsv(readDataFile(file).toString('latin1'), file, opts);
}

export interface SyntheticOptions {
  rows: number;
  features: number;
  noise: number;
}

/**
 * A synthetic regression set with correlated Gaussian features (like the admission scores, which
 * are strongly correlated) and a linear target plus noise, drawn from (seed, data stream).
 */
export function syntheticData(seed: number, o: SyntheticOptions, standardizeTarget: boolean): RegressionData {
  const rng = new RandomStream([seed, StreamPurpose.data, 0]);
  const n = o.rows;
  const p = o.features + 1;
  const x = new Float64Array(n * p);
  const y = new Float64Array(n);
  const beta = Array.from({ length: o.features }, () => rng.nextNormal());
  for (let i = 0; i < n; i++) {
    const common = rng.nextNormal();
    let t = 0;
    for (let j = 0; j < o.features; j++) {
      const v = 0.7 * common + 0.7 * rng.nextNormal();
      x[i * p + j] = v;
      t += beta[j] * v;
    }
    x[i * p + p - 1] = 1;
    y[i] = 0.1 * t + 0.7 + o.noise * rng.nextNormal();
  }
  standardize(x, n, p, p - 1, 'synthetic data', []);
  if (standardizeTarget) standardize(y, n, 1, 1, 'synthetic data', ['target']);
  return { x, y, n, p, features: [...beta.map((_, j) => `x${j + 1}`), '(intercept)'], source: 'synthetic' };
}
