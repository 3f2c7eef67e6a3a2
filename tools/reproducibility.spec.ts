/**
 * Reproducibility: the paper-smoke suite passes (and a changed expectation is reported as a
 * regression), and every setting's smoke preset re-runs to byte-identical metrics (`verify`).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');
const dataDir = [process.env.SGD_LAB_DATA_DIR, join(repo, '..', 'shared', 'data')].find((d) => d && existsSync(d)) ?? join(repo, 'data');
const admission = existsSync(join(dataDir, 'graduate_admission', 'Admission_Predict_Ver1.1.csv'));
const yelp = existsSync(join(dataDir, 'yelp_labelled_uci', 'yelp_labelled.txt'));
if (!admission) process.stderr.write(`SKIPPED (no real data): admission studies need ${dataDir}/graduate_admission\n`);

/** Runs the CLI without blocking this test worker's event loop (vitest reports over it). */
const sgdLab = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args, '--data-dir', dataDir], { cwd: repo, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });

describe('sgd-lab suite', () => {
  it('passes suites/paper-smoke.json', async () => {
    const out = mkdtempSync(join(tmpdir(), 'suite-'));
    const r = await sgdLab(['suite', 'suites/paper-smoke.json', '--out', out]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // Two studies need the admission file, one the UCI Yelp sentences; the rest need no data.
    const needing = (admission ? 0 : 2) + (yelp ? 0 : 1);
    expect(r.stdout).toMatch(new RegExp(`suite paper-smoke: ${6 - needing} passed, 0 regressed, 0 failed, ${needing} skipped`));
  });

  it('exits non-zero and names the claim that moved', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suite-'));
    const suite = JSON.parse(readFileSync(join(repo, 'suites', 'paper-smoke.json'), 'utf8'));
    suite.studies = [suite.studies[1]];
    suite.studies[0].expect['grad-variance-decreasing-in-b/monte_carlo'] = 'fails';
    suite.studies[0].expect['no-such-claim/exact'] = 'holds';
    suite.studies[0].reasons = { 'grad-variance-decreasing-in-b/monte_carlo': 'a reason shown beside the regression' };
    writeFileSync(join(dir, 's.json'), JSON.stringify(suite));
    const r = await sgdLab(['suite', join(dir, 's.json'), '--out', join(dir, 'out')]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/REGRESSED admission-linreg-smoke-synthetic/);
    expect(r.stdout).toMatch(/grad-variance-decreasing-in-b\/monte_carlo: expected fails, got holds \(p = [0-9.e-]+\); expected because: a reason shown beside the regression/);
    expect(r.stdout).toMatch(/no-such-claim\/exact: expected holds, but the study no longer produces this claim/);
  });

  it('names a malformed suite entry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suite-'));
    writeFileSync(join(dir, 's.json'), JSON.stringify({ name: 'x', studies: [{ study: {}, expect: { a: 'maybe' } }] }));
    const r = await sgdLab(['suite', join(dir, 's.json')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\/studies\/0\/expect\/a: must be one of "holds", "fails", "inconclusive"/);
    // A reason must explain a verdict the entry expects.
    writeFileSync(join(dir, 't.json'), JSON.stringify({ name: 'x', studies: [{ study: {}, expect: { a: 'holds' }, reasons: { b: 'why' } }] }));
    const t = await sgdLab(['suite', join(dir, 't.json')]);
    expect(t.status).toBe(2);
    expect(t.stderr).toMatch(/\/studies\/0\/reasons\/b: no such claim in \/studies\/0\/expect/);
  });
});

const settings: [string, string[], boolean][] = [
  ['admission-linreg', ['--set', 'options.source=synthetic'], true],
  ['admission-linreg', [], admission],
  ['admission-logreg', [], admission],
  ['gaussian-deeplinear', [], true],
  ['mnist-mlp', [], true],
  ['yelp-xlnet', [], yelp],
];

describe.each(settings)('determinism of %s %j', (setting, extra, available) => {
  it.runIf(available)('re-runs its smoke preset to byte-identical metrics and claims (sgd-lab verify)', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'verify-')), 'o');
    const run = await sgdLab(['run', setting, '--preset', 'smoke', '--out', out, '--quiet', '--set', 'reporters=["jsonl","claims"]', ...extra]);
    expect(run.status, run.stderr).toBe(0);
    const v = await sgdLab(['verify', out]);
    expect(v.status, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/verified: metrics\.jsonl reproduced byte for byte/);
    expect(v.stdout).toMatch(/verified: claims\.json reproduced byte for byte/);
    // A changed file is caught, with the line, even when the manifest is edited to match it.
    const metrics = join(out, 'metrics.jsonl');
    const original = readFileSync(metrics, 'utf8');
    const lines = original.split('\n');
    const manifestFile = join(out, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    lines[3] = lines[3].replace(/"value":[^,]+/, '"value":1');
    writeFileSync(metrics, lines.join('\n'));
    manifest.outputs['metrics.jsonl'].sha256 = createHash('sha256').update(lines.join('\n')).digest('hex');
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const bad = await sgdLab(['verify', out]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/NOT reproduced: metrics\.jsonl on disk has sha256 .*first different line 4/);
    // A changed verdict in claims.json is caught too.
    writeFileSync(metrics, original);
    const claimsFile = join(out, 'claims.json');
    const claims = readFileSync(claimsFile, 'utf8');
    writeFileSync(claimsFile, claims.replace(/"verdict": "(holds|fails|inconclusive)"/, (_m, v) => `"verdict": "${v === 'holds' ? 'fails' : 'holds'}"`));
    const badClaims = await sgdLab(['verify', out]);
    expect(badClaims.status).toBe(1);
    expect(badClaims.stdout).toMatch(/NOT reproduced: claims\.json on disk has sha256/);
  });
});
