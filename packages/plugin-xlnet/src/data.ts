/**
 * Yelp review sentiment data in its original formats:
 * - Yelp Review Polarity (Zhang, Zhao and LeCun 2015; the paper's dataset): `train.csv` and
 *   `test.csv`, rows `"label","text"` with label 1 (negative) or 2 (positive), RFC 4180 quoting
 *   (`""` inside quotes), newlines inside reviews written as the two characters `\n`;
 * - the UCI "Sentiment Labelled Sentences" Yelp file `yelp_labelled.txt`: `sentence<TAB>label`
 *   with label 0 or 1, split on the last tab.
 * Malformed rows are reported with their file and line number.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, PackedStreams, StreamPurpose, readDataFile } from '@sgd-lab/core';

export const POLARITY_DIR = 'yelp_review_polarity_csv';
export const UCI_DIR = 'yelp_labelled_uci';
export const UCI_FILE = 'yelp_labelled.txt';
export const HOW_TO_GET_YELP = `run \`sgd-lab data fetch yelp\` (Yelp Review Polarity into <data-dir>/${POLARITY_DIR}), or put the UCI file at <data-dir>/${UCI_DIR}/${UCI_FILE}`;

/** Reviews with labels 0 (negative) and 1 (positive). */
export interface TextSet {
  texts: string[];
  labels: Uint8Array;
}

export interface YelpData {
  train: TextSet;
  validation: TextSet;
  source: 'polarity' | 'uci';
  files: { path: string; sha256: string }[];
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Parses the UCI file: one `sentence<TAB>0|1` per line; blank trailing lines are ignored. */
export function parseUci(text: string, file: string): TextSet {
  const texts: string[] = [];
  const labels: number[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const tab = line.lastIndexOf('\t');
    if (tab < 0) throw new DataError(file, `line ${i + 1}: expected "sentence<TAB>label", found no tab`);
    const label = line.slice(tab + 1).trim();
    if (label !== '0' && label !== '1') throw new DataError(file, `line ${i + 1}: label must be 0 or 1, got "${label}"`);
    const sentence = line.slice(0, tab);
    if (sentence.trim() === '') throw new DataError(file, `line ${i + 1}: empty sentence`);
    texts.push(sentence);
    labels.push(Number(label));
  });
  if (texts.length === 0) throw new DataError(file, 'no rows');
  return { texts, labels: Uint8Array.from(labels) };
}

/**
 * Parses Yelp Review Polarity CSV: two quoted fields per row, label "1" or "2" (mapped to 0 and 1).
 * Reads at most `limit` rows (0: all).
 */
export function parsePolarityCsv(text: string, file: string, limit = 0): TextSet {
  const texts: string[] = [];
  const labels: number[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  const fail = (at: number, what: string): never => {
    throw new DataError(file, `line ${at}: ${what}`);
  };
  while (i < n && (limit === 0 || texts.length < limit)) {
    if (text[i] === '\n' || text[i] === '\r') {
      if (text[i] === '\n') line++;
      i++;
      continue;
    }
    const rowLine = line;
    const fields: string[] = [];
    while (true) {
      let value = '';
      if (text[i] === '"') {
        i++;
        while (true) {
          if (i >= n) fail(rowLine, 'unterminated quoted field');
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
            } else {
              i++;
              break;
            }
          } else {
            if (c === '\n') line++;
            value += c;
            i++;
          }
        }
      } else {
        const start = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') i++;
        value = text.slice(start, i);
        if (value.includes('"')) fail(rowLine, 'a quote inside an unquoted field');
      }
      fields.push(value);
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (i < n && text[i] !== '\n' && text[i] !== '\r') fail(rowLine, `unexpected "${text[i]}" after a field`);
      break;
    }
    if (fields.length !== 2) fail(rowLine, `expected 2 fields ("label","text"), got ${fields.length}`);
    const [label, review] = fields;
    if (label !== '1' && label !== '2') fail(rowLine, `label must be 1 or 2, got "${label}"`);
    texts.push(review.replace(/\\n/g, '\n'));
    labels.push(label === '2' ? 1 : 0);
  }
  if (texts.length === 0) throw new DataError(file, 'no rows');
  return { texts, labels: Uint8Array.from(labels) };
}

/** Splits a set into train and validation, stratified by label, with a shuffle keyed by seed. */
export function splitSet(set: TextSet, validationFraction: number, seed: number): { train: TextSet; validation: TextSet } {
  const rng = new PackedStreams([[seed, StreamPurpose.data, 0]]);
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (const cls of [0, 1]) {
    const idx = Int32Array.from([...set.labels.keys()].filter((i) => set.labels[i] === cls));
    rng.partialShuffle(0, idx, 0, idx.length, idx.length);
    const nVal = Math.round(idx.length * validationFraction);
    valIdx.push(...idx.subarray(0, nVal));
    trainIdx.push(...idx.subarray(nVal));
  }
  const pick = (ids: number[]): TextSet => {
    ids.sort((a, b) => a - b);
    return { texts: ids.map((i) => set.texts[i]), labels: Uint8Array.from(ids.map((i) => set.labels[i])) };
  };
  return { train: pick(trainIdx), validation: pick(valIdx) };
}

export function hasPolarity(dataDir: string): boolean {
  return existsSync(join(dataDir, POLARITY_DIR, 'train.csv')) && existsSync(join(dataDir, POLARITY_DIR, 'test.csv'));
}

export function hasUci(dataDir: string): boolean {
  return existsSync(join(dataDir, UCI_DIR, UCI_FILE));
}

/** The paper's sets: the first `trainSamples` rows of train.csv and `validationSamples` of test.csv. */
export function loadPolarity(dataDir: string, trainSamples: number, validationSamples: number): YelpData {
  const files: YelpData['files'] = [];
  const read = (name: string, limit: number) => {
    const path = join(dataDir, POLARITY_DIR, name);
    if (!existsSync(path)) throw new DataError(path, `missing; ${HOW_TO_GET_YELP}`);
    const buf = readDataFile(path);
    files.push({ path, sha256: sha256(buf) });
    return parsePolarityCsv(buf.toString('utf8'), path, limit);
  };
  return { train: read('train.csv', trainSamples), validation: read('test.csv', validationSamples), source: 'polarity', files };
}

/** The UCI sentences, split into train and validation by a stratified keyed shuffle. */
export function loadUci(path: string, validationFraction: number, seed: number): YelpData {
  if (!existsSync(path)) throw new DataError(path, `missing; ${HOW_TO_GET_YELP}`);
  const buf = readDataFile(path);
  const set = parseUci(buf.toString('utf8'), path);
  return { ...splitSet(set, validationFraction, seed), source: 'uci', files: [{ path, sha256: sha256(buf) }] };
}
