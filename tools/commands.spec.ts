/**
 * Commands several packages add under one name: `sgd-lab data fetch <dataset>` reaches the
 * package that fetches that dataset, and an unknown dataset lists the ones installed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');

const sgdLab = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
    execFile(process.execPath, [cli, ...args], { cwd: repo }, (err, stdout, stderr) => done({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });

describe('sgd-lab data fetch', () => {
  it('extracts a Yelp polarity archive given as a file', async () => {
    const src = mkdtempSync(join(tmpdir(), 'yelp-'));
    mkdirSync(join(src, 'yelp_review_polarity_csv'));
    for (const f of ['train.csv', 'test.csv']) writeFileSync(join(src, 'yelp_review_polarity_csv', f), '"1","slow"\n"2","tasty"\n');
    execFileSync('tar', ['-czf', join(src, 'y.tgz'), '-C', src, 'yelp_review_polarity_csv']);
    const data = join(src, 'data');
    const r = await sgdLab(['data', 'fetch', 'yelp', '--file', join(src, 'y.tgz'), '--data-dir', data]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 files in .*yelp_review_polarity_csv/);
    expect(existsSync(join(data, 'yelp_review_polarity_csv', 'train.csv'))).toBe(true);
  });

  it('sends mnist to the MNIST package (a dead mirror fails there, naming the file)', async () => {
    const r = await sgdLab(['data', 'fetch', 'mnist', '--mirror', 'http://127.0.0.1:9/', '--data-dir', mkdtempSync(join(tmpdir(), 'mn-'))]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/train-images-idx3-ubyte\.gz: download from http:\/\/127\.0\.0\.1:9\/train-images-idx3-ubyte\.gz failed/);
  });

  it('lists the installed datasets for one it does not know', async () => {
    const r = await sgdLab(['data', 'fetch', 'imagenet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^usage error: unknown command 'imagenet'/);
    expect(r.stderr).toMatch(/Usage: sgd-lab data fetch/);
    expect(r.stderr).toMatch(/ {2}mnist \[options\] +download the four MNIST IDX files[\s\S]*\(@sgd-lab\/plugin-mnist\)/);
    expect(r.stderr).toMatch(/ {2}yelp \[options\] +download Yelp Review Polarity/);
  });

  it('suggests the dataset that was probably meant', async () => {
    const r = await sgdLab(['data', 'fetch', 'mnits']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'mnits'\n\(Did you mean mnist\?\)/);
  });
});
