/**
 * Resumable runs: a study killed at any moment (SIGKILL, no chance to flush) resumes with
 * --resume, recomputes only unfinished shards, and ends with the same metrics as an
 * uninterrupted run. Uses the synthetic data source, so it needs no data files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@sgd-lab/core/testing';

const CLI = join(repoRoot(), 'packages', 'core', 'dist', 'cli', 'main.js');

function study(dir: string, extra: Record<string, unknown>): string {
  const file = join(dir, 'study.json');
  writeFileSync(file, JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', name: 'resume', runs: 1000, steps: 300, batchSizes: [4, 16, 64, 256], reporters: ['jsonl', 'claims'], options: { source: 'synthetic' }, ...extra }));
  return file;
}

const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'run', ...args, '--quiet'], { encoding: 'utf8' });
const manifest = (out: string) => JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));

/** Finished shard files in `dir`; none while the folder does not exist yet. */
function shardFiles(dir: string): number {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json')).length;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}

/** Starts the study and SIGKILLs it as soon as `shards` shard files are on disk (or it exits). */
async function killAfterShards(file: string, out: string, shards: number, extra: string[] = []): Promise<number> {
  const child = spawn(process.execPath, [CLI, 'run', file, '--out', out, '--quiet', ...extra], { stdio: 'ignore' });
  let exited = false;
  const exit = new Promise((r) => child.on('exit', () => ((exited = true), r(undefined))));
  const dir = join(out, 'shards');
  // Polls until the shards are there; a slow machine only makes this wait longer.
  while (!exited && shardFiles(dir) < shards) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await exit;
  return shardFiles(dir);
}

describe.each([
  ['one shard per (b, initial point)', {}],
  ['two shards per (b, initial point), merged exactly', { runsPerShard: 512 }],
])('resume after SIGKILL: %s', (_name, extra) => {
  it('recomputes only unfinished shards and ends with the same metrics hash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-resume-'));
    const file = study(dir, extra);
    const whole = join(dir, 'whole');
    expect(run([file, '--out', whole]).status).toBe(0);
    const reference = manifest(whole).outputs['metrics.jsonl'].sha256;

    const out = join(dir, 'killed');
    const finished = await killAfterShards(file, out, 2);
    expect(finished).toBeGreaterThanOrEqual(2);
    const total = 'runsPerShard' in extra ? 8 : 4;
    expect(finished).toBeLessThan(total);
    const resumed = run([file, '--out', out, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const m = manifest(out);
    expect(m.resumedShards).toBe(finished);
    expect(m.outputs['metrics.jsonl'].sha256).toBe(reference);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(whole, 'metrics.jsonl'), 'utf8'));
  });
});

describe('metrics.jsonl is replaced whole', () => {
  it('a run killed mid-way leaves the complete metrics.jsonl of before, its own records in metrics.jsonl.partial', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-atomic-'));
    const file = study(dir, {});
    const out = join(dir, 'o');
    expect(run([file, '--out', out]).status).toBe(0);
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(createHash('sha256').update(before).digest('hex')).toBe(manifest(out).outputs['metrics.jsonl'].sha256);
    // The same study again with --force, killed once two shards are saved: the records so far are
    // in the partial file; metrics.jsonl is still the whole file of the first run.
    rmSync(join(out, 'shards'), { recursive: true }); // so that the count below is of the new run's shards
    const finished = await killAfterShards(file, out, 2, ['--force']);
    expect(finished).toBeGreaterThanOrEqual(2);
    expect(finished).toBeLessThan(4);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
    expect(existsSync(join(out, 'metrics.jsonl.partial'))).toBe(true);
    const resumed = run([file, '--out', out, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
    expect(existsSync(join(out, 'metrics.jsonl.partial'))).toBe(false);
  });
});

/** A finished run of `study(dir, extra)` into `<dir>/o`, and its metrics hash. */
function finished(dir: string, extra: Record<string, unknown>) {
  const file = study(dir, extra);
  const out = join(dir, 'o');
  expect(run([file, '--out', out]).status).toBe(0);
  return { file, out, reference: manifest(out).outputs['metrics.jsonl'].sha256 };
}

/** `--resume` with stderr kept (run() passes --quiet). */
const resumeLoud = (file: string, out: string) => spawnSync(process.execPath, [CLI, 'run', file, '--out', out, '--resume'], { encoding: 'utf8' });

describe('resume refuses or repairs bad input', () => {
  it('refuses a results folder from another config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-resume-'));
    const out = join(dir, 'o');
    expect(run([study(dir, { steps: 5 }), '--out', out]).status).toBe(0);
    const other = run([study(dir, { steps: 6 }), '--out', out, '--resume']);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/holds results of another study \(resume, fingerprint [0-9a-f]{12}\); this one is [0-9a-f]{12}/);
  });

  it('recomputes a corrupt shard file, says so, and loses nothing', () => {
    const { file, out, reference } = finished(mkdtempSync(join(tmpdir(), 'sgd-lab-resume-')), { steps: 20 });
    const shard = join(out, 'shards', 'b16-i0-r0-n1000.json');
    writeFileSync(shard, readFileSync(shard, 'utf8').slice(0, 100));
    const r = resumeLoud(file, out);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/b16-i0-r0-n1000\.json: shard file not reused \(.+\); computing that shard again/);
    expect(manifest(out).resumedShards).toBe(3);
    expect(manifest(out).outputs['metrics.jsonl'].sha256).toBe(reference);
  });

  it('finds a shard file with one digit changed (still valid JSON) by its checksum, and recomputes it', () => {
    const { file, out, reference } = finished(mkdtempSync(join(tmpdir(), 'sgd-lab-resume-')), { steps: 20 });
    const shard = join(out, 'shards', 'b4-i0-r0-n1000.json');
    const text = readFileSync(shard, 'utf8');
    const at = text.indexOf('"m2":') + 5;
    const digit = text[at] === '9' ? '8' : String(Number(text[at]) + 1);
    writeFileSync(shard, text.slice(0, at) + digit + text.slice(at + 1));
    JSON.parse(readFileSync(shard, 'utf8'));
    const r = resumeLoud(file, out);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/b4-i0-r0-n1000\.json: shard file not reused \(checksum mismatch: the content was changed after it was written\)/);
    expect(manifest(out).outputs['metrics.jsonl'].sha256).toBe(reference);
  });

  it('recomputes a shard file computed for another study (its fingerprint), whole and with a valid checksum', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-resume-'));
    mkdirSync(join(dir, 'b'));
    const { file, out, reference } = finished(dir, { steps: 20 });
    const other = join(dir, 'other');
    expect(run([study(join(dir, 'b'), { steps: 21 }), '--out', other]).status).toBe(0);
    copyFileSync(join(other, 'shards', 'b4-i0-r0-n1000.json'), join(out, 'shards', 'b4-i0-r0-n1000.json'));
    const r = resumeLoud(file, out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/b4-i0-r0-n1000\.json: shard file not reused \(computed for another study, data, code or backend \(fingerprint [0-9a-f]{12}, this run [0-9a-f]{12}\)\)/);
    expect(manifest(out).resumedShards).toBe(3);
    expect(manifest(out).outputs['metrics.jsonl'].sha256).toBe(reference);
  });

  it('records what the results depend on, and refuses to resume with other code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-resume-'));
    const file = study(dir, { steps: 5 });
    const out = join(dir, 'o');
    expect(run([file, '--out', out]).status).toBe(0);
    const m = manifest(out);
    expect(m.resultFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(m.dependsOn).toMatchObject({ study: m.fingerprint, data: [], code: { core: m.packages['@sgd-lab/core'], plugin: `@sgd-lab/plugin-linreg@${m.packages['@sgd-lab/plugin-linreg']}` } });
    // The saved shards as if computed by another release.
    m.dependsOn.code.core = '0.0.0-other';
    m.resultFingerprint = '0'.repeat(64);
    writeFileSync(join(out, 'manifest.json'), JSON.stringify(m));
    const r = run([file, '--out', out, '--resume']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/the code \(@sgd-lab\/core 0\.0\.0-other, .* then, @sgd-lab\/core \d+\.\d+\.\d+, .* now\) changed since the saved shards were computed: .* run with --force/);
  });

  it('refuses to resume on changed data, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-resume-'));
    const csv = join(dir, 'data.csv');
    const header = 'Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit ';
    const rows = (k: number) => Array.from({ length: 40 }, (_, i) => `${i + 1},${300 + ((i * 7) % 40)},${100 + (i % 20)},${1 + (i % 5)},${1 + (i % 4)},${2 + (i % 3)},${7 + (i % 10) / 10},${i % 2},0.${50 + ((i * k) % 40)}`);
    writeFileSync(csv, [header, ...rows(3)].join('\n'));
    const file = join(dir, 's.json');
    writeFileSync(file, JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', name: 'data', batchSizes: [4, 16], steps: 5, runs: 32, options: { data: csv } }));
    const out = join(dir, 'o');
    expect(run([file, '--out', out]).status).toBe(0);
    writeFileSync(csv, [header, ...rows(7)].join('\n'));
    const r = run([file, '--out', out, '--resume']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${csv}: the data changed since the saved shards were computed`);
  });
});
