/**
 * The sgd-lab command line end to end: a real process, real files, real exit codes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { repoRoot, spawnCli, testDataDir, testDataFile } from '@sgd-lab/core/testing';
import { LOCK_FILE } from '@sgd-lab/core';
import { ADMISSION_DIR, ADMISSION_FILE } from './data.js';

const CLI = join(repoRoot(), 'packages', 'core', 'dist', 'cli', 'main.js');
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const realFile = testDataFile(ADMISSION_DIR, ADMISSION_FILE);

function sgdLab(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, cwd: repoRoot() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'sgd-lab-cli-'));
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe('sgd-lab CLI', () => {
  it('lists the setting and its presets', () => {
    const r = sgdLab(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/admission-linreg/);
    expect(r.stdout).toMatch(/preset smoke/);
    expect(r.stdout).toMatch(/preset paper +runs paper-fig2a \+ paper-fig2b/);
  });

  it('rejects an invalid config with exit 2 and every bad JSON path', () => {
    const r = sgdLab(['validate', fixture('bad-config.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/runs: must be >= 2');
    expect(r.stderr).toContain('/learningRate: missing required property "value"');
    expect(r.stderr).toContain('/options/sampling: "sometimes" is not one of "without-replacement", "with-replacement"');
    noStack(r.stderr);
    expect(sgdLab(['run', fixture('bad-config.json')]).code).toBe(2);
  });

  it('rejects malformed JSON, an unknown setting and an unknown preset', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'x.json'), '{"setting": "admission-linreg",');
    const bad = sgdLab(['validate', join(dir, 'x.json')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/x\.json:\n\s+- \/: not valid JSON/);
    const unknown = sgdLab(['run', 'mnist-linreg']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^usage error: run: unknown setting "mnist-linreg"[^;\n]*; installed: .*admission-linreg/);
    const preset = sgdLab(['run', 'admission-linreg', '--preset', 'huge']);
    expect(preset.code).toBe(2);
    expect(preset.stderr).toMatch(/^usage error: run: --preset huge: admission-linreg has no such preset; known: smoke, cpu/);
    const near = sgdLab(['run', 'admission-linreg', '--preset', 'smok']);
    expect(near.code).toBe(2);
    expect(near.stderr).toMatch(/no such preset \(did you mean "smoke"\?\)/);
  });

  it('names a missing data file, says how to get it, and exits 3 without creating results', () => {
    const out = join(tmp(), 'out');
    const r = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--data-dir', '/nonexistent', '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`/nonexistent/${ADMISSION_DIR}/${ADMISSION_FILE}: not found; download`);
    noStack(r.stderr);
    // A refused run leaves no folder behind.
    expect(existsSync(out)).toBe(false);
    // --out at a file: a usage error, not a stack trace.
    const file = join(tmp(), 'a-file');
    writeFileSync(file, 'x');
    const f = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', file]);
    expect(f.code).toBe(2);
    expect(f.stderr).toContain(`--out: ${file} cannot be a results folder (a file is in the way)`);
    noStack(f.stderr);
    // A folder the kernel will not create (Node's recursive mkdir spins forever on /proc/x).
    if (existsSync('/proc/self')) {
      const p = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', '/proc/sgd-lab-x/out']);
      expect(p.code).toBe(2);
      expect(p.stderr).toContain('--out: /proc/sgd-lab-x/out cannot be a results folder (no folder can be created there: ENOENT)');
    }
  });

  it('names the line of a bad CSV row and exits 3', () => {
    const dir = tmp();
    mkdirSync(join(dir, ADMISSION_DIR));
    const rows = ['Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit '];
    for (let i = 1; i <= 20; i++) rows.push(`${i},${300 + i},${100 + (i % 7)},${1 + (i % 5)},3,${2 + (i % 3)},${7 + (i % 4) / 2},${i % 2},0.${50 + i}`);
    rows[12] = '12,310,101,2,3,2,8.5,1';
    writeFileSync(join(dir, ADMISSION_DIR, ADMISSION_FILE), rows.join('\r\n'));
    const r = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--data-dir', dir, '--out', join(dir, 'out')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('line 13: expected 9 fields, found 8');
    noStack(r.stderr);
  });

  it('rejects a batch size larger than the data set, naming the field', () => {
    const dir = tmp();
    writeFileSync(join(dir, 's.json'), JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', batchSizes: [4, 900], options: { source: 'synthetic' } }));
    const r = sgdLab(['run', join(dir, 's.json'), '--out', join(dir, 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('/batchSizes/1: b = 900 exceeds the 500 rows of synthetic');
  });

  it('stops a run whose loss passes the divergence bound with exit 4, the oracle and Monte Carlo alike', () => {
    // A rate of 10 makes the loss grow by orders of magnitude per step while staying finite for a while.
    const base = ['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--set', 'learningRate={"type":"constant","value":10}'];
    const exact = sgdLab([...base, '--out', join(tmp(), 'a')]);
    expect(exact.code).toBe(4);
    expect(exact.stderr).toMatch(/the exact oracle diverges at step \d+ \(b = 4, initial point 0\): E\[L\(w_t\)\] = [0-9.e+]+, above \/divergenceFactor \(1000000\)/);
    const out = join(tmp(), 'b');
    const mc = sgdLab([...base, '--set', 'options.estimators=["monte_carlo"]', '--out', out]);
    expect(mc.code).toBe(4);
    expect(mc.stderr).toMatch(/run \d+ diverged at step \d+ \(b = \d+, initial point 0\): loss is [0-9.e+]+, above \/divergenceFactor/);
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).status).toBe('failed');
    noStack(mc.stderr);
  });

  it('locks the results folder: a second run into it gets exit 2 naming the holder, a stale lock is taken over', async () => {
    const out = join(tmp(), 'locked');
    const args = ['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--set', 'steps=3000', '--set', 'runs=4000', '--out', out];
    const first = spawnCli([...args, '--progress', 'lines'], { env: { SGD_LAB_PROGRESS_SECONDS: '0' } });
    await first.waitFor(/shard 1\//);
    const second = sgdLab([...args, '--force']);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`in use by process ${first.child.pid} on `));
    noStack(second.stderr);
    first.child.kill('SIGINT');
    expect((await first.exited).code).toBe(130);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
    // A lock left by a process that no longer exists is taken over, with a warning in the log.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: dead, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z' }));
    const third = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', out, '--force']);
    expect(third.code).toBe(0);
    expect(readFileSync(join(out, 'sgd-lab.log'), 'utf8')).toContain(`took over the stale lock of process ${dead}`);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it('refuses study names that are not safe folder names ("..", ".", a path)', () => {
    for (const name of ['..', '.', '../x', '.hidden', 'a/b']) {
      const r = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', `name=${name}`, '--set', 'options.source=synthetic', '--dry-run']);
      expect([name, r.code]).toEqual([name, 2]);
      expect(r.stderr).toContain('/name: must match pattern');
    }
  });

  it.runIf(!!realFile)('runs the smoke preset on the real file into a complete results folder', () => {
    const out = join(tmp(), 'smoke');
    const r = sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--data-dir', testDataDir()!, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/grad_variance monte_carlo/);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('completed');
    expect(manifest.data[0].sha256).toBe('4d46ee6b89402ed92c37120672cef85379876ccb72ecb80f58120d7202645dc9');
    expect(manifest.initialPoints[0].values).toHaveLength(8);
    expect(manifest.packages['@sgd-lab/plugin-linreg']).toBe('0.1.0');
    expect(manifest.study.learningRate).toEqual({ type: 'inverse-time', alpha0: 0.5, offset: 1 });
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(manifest.outputs['metrics.jsonl'].records).toBe(lines.length);
    const mc = lines.find((l) => l.estimator === 'monte_carlo' && l.metric === 'grad_variance');
    expect(Object.keys(mc)).toEqual(expect.arrayContaining(['setting', 'batchSize', 'initPoint', 'step', 'metric', 'estimator', 'value', 'runs', 'ciLow', 'ciHigh']));
    expect(lines.some((l) => l.metric === 'grad_variance_poly' && l.estimator === 'exact' && l.step === 20 && l.power === 21)).toBe(true);
    const claims = JSON.parse(readFileSync(join(out, 'claims.json'), 'utf8')).claims;
    expect(claims.length).toBeGreaterThanOrEqual(6);
    for (const c of claims) expect([c.id, c.estimator, c.verdict]).toEqual([c.id, c.estimator, 'holds']);
  });

  it.runIf(!!realFile)('flushes results and exits 130 when interrupted', async () => {
    const dir = tmp();
    const out = join(dir, 'long');
    writeFileSync(join(dir, 'long.json'), JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', runs: 5000, steps: 1000000, recordEvery: 1000, options: { estimators: ['monte_carlo'] } }));
    // Progress lines at every engine progress event: the second one says steps are being run.
    const run = spawnCli(['run', join(dir, 'long.json'), '--data-dir', testDataDir()!, '--out', out, '--progress', 'lines'], { env: { SGD_LAB_PROGRESS_SECONDS: '0' } });
    await run.waitFor(/shard 1\/\d+ \(b=\d+, init 0\) step [1-9]\d*\//);
    run.child.kill('SIGINT');
    const { code, stderr } = await run.exited;
    const metrics = join(out, 'metrics.jsonl');
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancelled: results computed so far were written/);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('cancelled');
    const text = readFileSync(metrics, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(manifest.outputs['metrics.jsonl'].records).toBe(text.trim().split('\n').length);
  });

  it('refuses to overwrite results without --force', () => {
    const dir = tmp();
    const out = join(dir, 'o');
    writeFileSync(join(dir, 's.json'), JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', runs: 10, steps: 3, options: { source: 'synthetic' } }));
    expect(sgdLab(['run', join(dir, 's.json'), '--out', out, '--quiet']).code).toBe(0);
    const again = sgdLab(['run', join(dir, 's.json'), '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds results; pass --resume to finish them, --force to replace them/);
    expect(sgdLab(['run', join(dir, 's.json'), '--out', out, '--force', '--quiet']).code).toBe(0);
  });
});
