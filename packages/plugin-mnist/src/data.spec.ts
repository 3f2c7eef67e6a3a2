import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DataError, sha256 } from '@sgd-lab/core';
import { testDataDir, testDataFile } from '@sgd-lab/core/testing';
import { MNIST_FILES, hasIdx, loadEmbedded, loadIdx, parseIdxImages, parseIdxLabels } from './data.js';
import { MNIST_SHA256 } from './commands.js';

const real = testDataFile('mnist', `${MNIST_FILES.trainImages}.gz`) ? testDataDir() : undefined;

describe.skipIf(!real)('the original IDX files', () => {
  it('load as 60,000 training and 10,000 validation images in [-1, 1] with the published label counts', () => {
    const d = loadIdx(real!);
    expect(d.train.count).toBe(60000);
    expect(d.validation.count).toBe(10000);
    const counts = new Array(10).fill(0);
    d.train.labels.forEach((l) => counts[l]++);
    expect(counts).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let min = Infinity;
    let max = -Infinity;
    for (const v of d.validation.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect([min, max]).toEqual([-1, 1]);
    for (const f of d.files) expect(f.sha256).toBe(MNIST_SHA256[f.path.split('/').at(-1)!]);
  });
});

function idxImages(count: number, rows = 28, magic = 0x803): Buffer {
  const b = Buffer.alloc(16 + count * rows * 28);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(count, 4);
  b.writeUInt32BE(rows, 8);
  b.writeUInt32BE(28, 12);
  for (let i = 16; i < b.length; i++) b[i] = i % 256;
  return b;
}
function idxLabels(labels: number[]): Buffer {
  const b = Buffer.alloc(8 + labels.length);
  b.writeUInt32BE(0x801, 0);
  b.writeUInt32BE(labels.length, 4);
  labels.forEach((l, i) => (b[8 + i] = l));
  return b;
}

describe('IDX validation', () => {
  it('names the file and what is wrong', () => {
    expect(() => parseIdxImages(idxImages(2, 28, 0x801), 'x')).toThrowError(new DataError('x', 'bad magic number 0x00000801; an IDX image file starts with 0x00000803'));
    expect(() => parseIdxImages(idxImages(2, 27), 'x')).toThrow(/images are 27x28; MNIST images are 28x28/);
    expect(() => parseIdxImages(idxImages(3).subarray(0, 16 + 2 * 784), 'x')).toThrow(/truncated or padded: header says 3 images \(2368 bytes\), file has 1584 bytes/);
    expect(() => parseIdxLabels(idxLabels([1, 12]), 'y')).toThrow(/label 1 is 12; labels are 0-9/);
    expect(() => parseIdxLabels(Buffer.from([0, 0]), 'y')).toThrow(/too short/);
  });

  it('reads gzipped and plain files, and rejects corrupt gzip and count mismatches', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mnist-'));
    mkdirSync(join(dir, 'mnist'));
    const w = (name: string, data: Buffer) => writeFileSync(join(dir, 'mnist', name), data);
    w(`${MNIST_FILES.trainImages}.gz`, gzipSync(idxImages(3)));
    w(MNIST_FILES.trainLabels, idxLabels([0, 1, 2]));
    w(MNIST_FILES.testImages, idxImages(2));
    w(`${MNIST_FILES.testLabels}.gz`, gzipSync(idxLabels([3, 4])));
    expect(hasIdx(dir)).toBe(true);
    const d = loadIdx(dir);
    expect([d.train.count, d.validation.count]).toEqual([3, 2]);
    expect(d.train.images[0]).toBeCloseTo(16 / 127.5 - 1, 6);
    w(MNIST_FILES.trainLabels, idxLabels([0, 1]));
    expect(() => loadIdx(dir)).toThrow(/2 labels for 3 images/);
    w(MNIST_FILES.trainLabels, idxLabels([0, 1, 2]));
    const gz = gzipSync(idxImages(3));
    w(`${MNIST_FILES.trainImages}.gz`, gz.subarray(0, gz.length - 20));
    expect(() => loadIdx(dir)).toThrow(/train-images-idx3-ubyte\.gz: corrupt gzip stream/);
  });

  it('says how to get missing files', () => {
    expect(() => loadIdx(tmpdir())).toThrow(/train-images-idx3-ubyte: not found \(nor train-images-idx3-ubyte\.gz\); run `sgd-lab data fetch mnist/);
  });
});

describe('embedded digits', () => {
  it('split deterministically per class, balanced and in [-1, 1]', () => {
    const a = loadEmbedded(1, 0.2);
    const b = loadEmbedded(1, 0.2);
    expect(a.train.count + a.validation.count).toBeGreaterThan(9900);
    expect(Math.abs(a.validation.count / (a.train.count + a.validation.count) - 0.2)).toBeLessThan(0.01);
    expect(sha256(Buffer.from(a.train.images.buffer))).toBe(sha256(Buffer.from(b.train.images.buffer)));
    expect(Array.from(a.train.labels.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const c = loadEmbedded(2, 0.2);
    expect(sha256(Buffer.from(c.train.images.buffer))).not.toBe(sha256(Buffer.from(a.train.images.buffer)));
    expect(Math.min(...a.train.images.subarray(0, 7840))).toBe(-1);
  });
});
