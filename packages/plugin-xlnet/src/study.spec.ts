import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectStudy, testDataDir, testDataFile } from '@sgd-lab/core/testing';
import plugin, { fetchYelp, loadPolarity, warmupLinear } from './index.js';

const uci = testDataFile('yelp_labelled_uci/yelp_labelled.txt');

describe('yelp-xlnet study', () => {
  it.skipIf(!uci)('runs the smoke preset on the UCI sentences: per-epoch variance, losses, errors, claims, no tensor leak', async () => {
    let tensors = 0;
    const { records, claims } = await collectStudy(plugin, { preset: 'smoke' }, { dataDir: testDataDir(), afterRegister: () => (tensors = tf.memory().numTensors) });
    expect(tf.memory().numTensors).toBe(tensors);
    const variance = records.filter((r) => r.metric === 'grad_variance' && r.layer === 'all');
    expect(variance.length).toBeGreaterThan(0);
    expect(variance.every((r) => r.value > 0 && Number.isFinite(r.value))).toBe(true);
    // 96 examples: 12 steps per epoch at b = 8, 6 at b = 16; two epochs each.
    expect(Math.max(...variance.filter((r) => r.batchSize === 8).map((r) => r.step))).toBe(23);
    expect(new Set(records.filter((r) => r.metric === 'grad_variance_epoch').map((r) => `${r.batchSize}:${r.epoch}`))).toEqual(new Set(['8:1', '8:2', '16:1', '16:2']));
    for (const split of ['train', 'validation']) {
      for (const metric of ['loss', 'error']) expect(records.some((r) => r.metric === metric && r.split === split && r.epoch === 2)).toBe(true);
    }
    const loss = records.filter((r) => r.metric === 'loss' && r.split === 'train' && r.batchSize === 8);
    expect(loss.at(-1)!.value).toBeLessThan(loss[0].value);
    expect(claims.map((c) => c.id)).toEqual(
      expect.arrayContaining([
        'grad-variance-decreasing-in-b-at-equal-epochs[all]',
        'grad-variance-decreasing-in-b-at-equal-steps[all]',
        ...['train-loss', 'validation-loss', 'train-error', 'validation-error'].flatMap((m) =>
          ['decreasing', 'increasing'].flatMap((d) => [`${m}-${d}-in-b-at-equal-epochs`, `${m}-${d}-in-b-at-equal-steps`]),
        ),
      ]),
    );
  });

  it('warms the rate up linearly, then decays it linearly to 0 at the last step', () => {
    expect(warmupLinear(0, 100, 0.1)).toBeCloseTo(1 / 11);
    expect(warmupLinear(9, 100, 0.1)).toBeCloseTo(10 / 11);
    expect(warmupLinear(10, 100, 0.1)).toBe(1);
    expect(warmupLinear(55, 100, 0.1)).toBeCloseTo(0.5);
    expect(warmupLinear(100, 100, 0.1)).toBe(0);
    expect(warmupLinear(0, 10, 0)).toBe(1);
  });
});

describe('sgd-lab data fetch yelp', () => {
  it('downloads and extracts the polarity archive, streaming, and the study reads it', async () => {
    const src = mkdtempSync(join(tmpdir(), 'yelp-src-'));
    const inner = join(src, 'yelp_review_polarity_csv');
    mkdirSync(inner);
    const rows = (n: number) => Array.from({ length: n }, (_, i) => `"${1 + (i % 2)}","Review number ${i}, ""quoted"".\\nSecond line."`).join('\n') + '\n';
    writeFileSync(join(inner, 'train.csv'), rows(300));
    writeFileSync(join(inner, 'test.csv'), rows(40));
    writeFileSync(join(inner, 'readme.txt'), 'Yelp polarity (test copy)\n');
    const archive = join(src, 'yelp_review_polarity_csv.tgz');
    execFileSync('tar', ['-czf', archive, '-C', src, 'yelp_review_polarity_csv']);
    const server = createServer((req, res) => (req.url === '/yelp_review_polarity_csv.tgz' ? res.writeHead(200).end(readFileSync(archive)) : res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'yelp-data-'));
      const files = await fetchYelp(dir, { url: `${base}/yelp_review_polarity_csv.tgz` });
      expect(files.map((f) => f.split('/').pop()).sort()).toEqual(['readme.txt', 'test.csv', 'train.csv']);
      const d = loadPolarity(dir, 200, 30);
      expect(d.train.texts).toHaveLength(200);
      expect(d.validation.texts[1]).toBe('Review number 1, "quoted".\nSecond line.');
      await expect(fetchYelp(mkdtempSync(join(tmpdir(), 'yelp-data-')), { url: `${base}/missing.tgz` })).rejects.toThrow(/download from .*missing\.tgz failed \(HTTP 404\); download yelp_review_polarity_csv\.tgz elsewhere/);
      const bad = join(src, 'bad.tgz');
      writeFileSync(bad, 'not gzip at all');
      const d3 = mkdtempSync(join(tmpdir(), 'yelp-data-'));
      await expect(fetchYelp(d3, { file: bad })).rejects.toThrow(/bad\.tgz: not a readable \.tgz of the Yelp polarity CSVs/);
      expect(existsSync(join(d3, 'yelp_review_polarity_csv', 'train.csv'))).toBe(false);
    } finally {
      server.close();
    }
  });
});
