import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveStudy, runSession } from '@sgd-lab/core';
import { repoRoot, toyPlugin } from '@sgd-lab/core/testing';

const CLI = join(repoRoot(), 'packages', 'core', 'dist', 'cli', 'main.js');
const logger = createLogger({ quiet: true, level: 'error' });

async function study(seed: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-rep-'));
  const s = resolveStudy({ setting: 'toy-mean', preset: 'smoke', seed, name: `toy-${seed}`, reporters: ['jsonl', 'claims'] }, toyPlugin, 'test');
  const r = await runSession({ study: s, plugin: toyPlugin, packages: {}, outDir: dir, dataDir: '.', logger });
  expect(r.status).toBe('completed');
  return dir;
}

describe('report and compare commands', () => {
  it('rebuild a report from a results folder', async () => {
    const dir = await study(1);
    expect(existsSync(join(dir, 'report.html'))).toBe(false);
    // A figure an older report left behind is removed; files that are not figures stay.
    mkdirSync(join(dir, 'figures'), { recursive: true });
    writeFileSync(join(dir, 'figures', 'stale.svg'), '<svg/>');
    writeFileSync(join(dir, 'figures', 'notes.txt'), 'mine');
    const r = spawnSync(process.execPath, [CLI, 'report', dir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/report\.html \(\d+ figures\)/);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('toy-decreasing');
    expect(existsSync(join(dir, 'figures', 'grad_variance.png'))).toBe(true);
    expect([existsSync(join(dir, 'figures', 'stale.svg')), existsSync(join(dir, 'figures', 'notes.txt'))]).toEqual([false, true]);
  });

  it('overlay two studies', async () => {
    const [a, b] = [await study(1), await study(2)];
    const out = mkdtempSync(join(tmpdir(), 'sgd-lab-cmp-'));
    const r = spawnSync(process.execPath, [CLI, 'compare', a, b, '--out', out], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('compare: toy-1 vs toy-2');
    expect(html).toContain('toy-1: toy-decreasing');
    expect(html).toContain('toy-2: toy-decreasing');
  });

  it('names a folder that is not a results folder', () => {
    const r = spawnSync(process.execPath, [CLI, 'report', tmpdir()], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/not a results folder: manifest\.json is missing/);
  });
});
