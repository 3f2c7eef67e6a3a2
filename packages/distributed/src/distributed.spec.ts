/**
 * Distributed execution against a real redis-server on loopback: two worker processes give the
 * same metrics as one process, a worker killed mid-shard loses nothing (BullMQ hands the stalled
 * job to another worker), and a Redis that goes away stops the study with a clear error while the
 * finished shards stay on disk.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, spawnCli } from '@sgd-lab/core/testing';

const CLI = join(repoRoot(), 'packages', 'core', 'dist', 'cli', 'main.js');
const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(existsSync);
if (!REDIS) process.stderr.write('SKIPPED (no redis-server): apt-get install redis-server, as .ci/run does\n');

const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

async function startRedis(extra: string[] = []): Promise<{ url: string; proc: ChildProcess }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const proc = spawn(REDIS!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(proc);
    const ready = await new Promise<boolean>((resolve) => {
      let out = '';
      proc.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('Ready to accept connections')) resolve(true);
      });
      proc.on('exit', () => resolve(false));
      setTimeout(() => resolve(false), 120_000); // a hang guard only: readiness is the event
    });
    if (ready) return { url: `redis://127.0.0.1:${port}`, proc };
  }
  throw new Error('could not start redis-server');
}

function worker(url: string, extra: string[] = []): ChildProcess & { log: () => string } {
  let log = '';
  const proc = spawn(process.execPath, [CLI, 'worker', '--redis', url, '--lock-ms', '2000', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & { log: () => string };
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  proc.log = () => log;
  children.push(proc);
  return proc;
}

function studyFile(dir: string, extra: Record<string, unknown>): string {
  const file = join(dir, 'study.json');
  writeFileSync(file, JSON.stringify({ setting: 'admission-linreg', preset: 'smoke', name: 'dist', runs: 600, runsPerShard: 208, steps: 150, batchSizes: [4, 16, 64], reporters: ['jsonl', 'claims'], options: { source: 'synthetic' }, ...extra }));
  return file;
}

const runSync = (args: string[]) => spawnSync(process.execPath, [CLI, 'run', ...args, '--quiet'], { encoding: 'utf8' });
function runAsync(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, 'run', ...args, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stderr })));
}
/** Waits for a condition on what the processes printed; a hang guard, not a time budget. */
const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 300_000) => {
  for (const t0 = Date.now(); !(await cond()); ) {
    if (Date.now() - t0 > ms) throw new Error(`still waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe.skipIf(!REDIS)('distributed shards over BullMQ', () => {
  it('two workers give byte-identical metrics and claims to one process', async () => {
    const { url } = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    // 39 shards: more jobs in flight than Node's default of 10 listeners per emitter.
    const file = studyFile(dir, { runsPerShard: 48 });
    expect(runSync([file, '--out', join(dir, 'local')]).status).toBe(0);
    const [a, b] = [worker(url), worker(url)];
    await until(() => a.log().includes('ready') && b.log().includes('ready'), 'both workers');
    const r = await runAsync([file, '--out', join(dir, 'dist'), '--redis', url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/MaxListenersExceededWarning|Warning:/);
    expect(readFileSync(join(dir, 'dist', 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'local', 'metrics.jsonl'), 'utf8'));
    expect(readFileSync(join(dir, 'dist', 'claims.json'), 'utf8')).toBe(readFileSync(join(dir, 'local', 'claims.json'), 'utf8'));
    // And to one process with one shard per (b, initial point): the split does not matter.
    expect(runSync([studyFile(join(dir), { runsPerShard: 600 }), '--out', join(dir, 'whole')]).status).toBe(0);
    expect(readFileSync(join(dir, 'whole', 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'local', 'metrics.jsonl'), 'utf8'));
    expect(readFileSync(join(dir, 'whole', 'claims.json'), 'utf8')).toBe(readFileSync(join(dir, 'local', 'claims.json'), 'utf8'));
    const done = (w: { log: () => string }) => (w.log().match(/done in/g) ?? []).length;
    expect(done(a) + done(b)).toBe(39);
    expect(done(a)).toBeGreaterThan(0);
    expect(done(b)).toBeGreaterThan(0);
  });

  it('a worker killed mid-shard loses nothing: the job is retried elsewhere', async () => {
    const { url } = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    const file = studyFile(dir, { runs: 400, runsPerShard: 208, steps: 3000, batchSizes: [256], name: 'slow' });
    expect(runSync([file, '--out', join(dir, 'local')]).status).toBe(0);
    const first = worker(url);
    await until(() => first.log().includes('ready'), 'the first worker');
    const running = runAsync([file, '--out', join(dir, 'dist'), '--redis', url]);
    await until(() => /shard \S+: admission-linreg/.test(first.log()), 'a shard on the first worker');
    first.kill('SIGKILL');
    const second = worker(url);
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect((second.log().match(/done in/g) ?? []).length).toBe(2);
    expect(readFileSync(join(dir, 'dist', 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'local', 'metrics.jsonl'), 'utf8'));
  });

  it('refuses a worker whose data differ from the coordinator\'s, and never reuses results of other data', async () => {
    const { url } = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    const header = 'Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit ';
    const csv = (k: number) => [header, ...Array.from({ length: 60 }, (_, i) => `${i + 1},${300 + ((i * 7) % 40)},${100 + (i % 20)},${1 + (i % 5)},${1 + (i % 4)},${2 + (i % 3)},${7 + (i % 10) / 10},${i % 2},0.${50 + ((i * k) % 40)}`)].join('\n');
    const dataDir = (name: string, k: number) => {
      const d = join(dir, name);
      mkdirSync(join(d, 'graduate_admission'), { recursive: true });
      writeFileSync(join(d, 'graduate_admission', 'Admission_Predict_Ver1.1.csv'), csv(k));
      return d;
    };
    const [a, b] = [dataDir('a', 3), dataDir('b', 7)];
    const file = studyFile(dir, { runs: 64, runsPerShard: 32, steps: 20, batchSizes: [4], name: 'data', options: {} });
    // Same data on both sides: the run completes and equals a local one.
    const w = worker(url, ['--data-dir', a]);
    await until(() => w.log().includes('ready'), 'the worker');
    const same = await runAsync([file, '--out', join(dir, 'same'), '--redis', url, '--data-dir', a]);
    expect(same.code, same.stderr).toBe(0);
    // The coordinator now reads other data (b): the worker (a) refuses every shard, with both digests.
    const other = await runAsync([file, '--out', join(dir, 'other'), '--redis', url, '--data-dir', b]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/this worker's data differ from the coordinator's: here Graduate Admission CSV [0-9a-f]{12}; there Graduate Admission CSV [0-9a-f]{12}/);
    // A worker on b computes them; nothing of the run on a is reused: the metrics are b's.
    w.kill('SIGKILL');
    const wb = worker(url, ['--data-dir', b]);
    await until(() => wb.log().includes('ready'), 'the worker on b');
    const onB = await runAsync([file, '--out', join(dir, 'b-dist'), '--redis', url, '--data-dir', b, '--force']);
    expect(onB.code, onB.stderr).toBe(0);
    expect(runSync([file, '--out', join(dir, 'b-local'), '--data-dir', b]).status).toBe(0);
    expect(readFileSync(join(dir, 'b-dist', 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'b-local', 'metrics.jsonl'), 'utf8'));
    expect(readFileSync(join(dir, 'b-dist', 'metrics.jsonl'), 'utf8')).not.toBe(readFileSync(join(dir, 'same', 'metrics.jsonl'), 'utf8'));
  });

  it('ends a refused login with exit 5 and a message, never printing the password; a bad URL is a usage error', async () => {
    const { url } = await startRedis(['--requirepass', 'right-one']);
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    const file = studyFile(dir, { runs: 32, runsPerShard: 32, steps: 5, batchSizes: [4] });
    const wrong = url.replace('redis://', 'redis://:S3cr3t-wrong@');
    const r = await runAsync([file, '--out', join(dir, 'o'), '--redis', wrong, '--redis-timeout', '2']);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/refused the login \(WRONGPASS/);
    expect(r.stderr).not.toContain('S3cr3t-wrong');
    expect(r.stderr).toContain('redis://:***@127.0.0.1:');
    const bad = runSync([file, '--out', join(dir, 'p'), '--redis', 'redis://not a url']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--redis: "redis://not a url" is not a URL');
    expect(existsSync(join(dir, 'p'))).toBe(false);
  });

  it('stops with a clear error when Redis goes away, keeping finished shards for --resume', async () => {
    const { url, proc } = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    const file = studyFile(dir, {});
    const w = worker(url);
    await until(() => w.log().includes('ready'), 'the worker');
    w.kill('SIGKILL'); // no worker: nothing finishes until Redis is gone
    // Redis goes away once the coordinator has submitted its shards and waits for the first one.
    const run = spawnCli(['run', file, '--out', join(dir, 'dist'), '--redis', url, '--redis-timeout', '2', '--quiet', '--progress', 'lines']);
    children.push(run.child);
    await run.waitFor(/shard 1\/\d+/);
    proc.kill('SIGKILL');
    const r = await run.exited;
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(new RegExp(`Redis at ${url} did not answer for 2 s .*Finished shards are saved: run the same command with --resume`));
    const manifest = JSON.parse(readFileSync(join(dir, 'dist', 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('failed');
    expect(readdirSync(join(dir, 'dist', 'shards'))).toEqual([]);
  });

  it('stops with exit 5 when Redis restarts without persistence and loses the queued jobs, instead of waiting forever', async () => {
    const { url, proc } = await startRedis();
    const port = new URL(url).port;
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-dist-'));
    const file = studyFile(dir, {});
    const w = worker(url);
    await until(() => w.log().includes('ready'), 'the worker');
    w.kill('SIGKILL'); // no worker: the jobs stay queued
    const run = spawnCli(['run', file, '--out', join(dir, 'dist'), '--redis', url, '--redis-timeout', '60', '--quiet', '--progress', 'lines']);
    children.push(run.child);
    await run.waitFor(/shard 1\/\d+/);
    // Once all 9 jobs wait in Redis (earlier, the coordinator's own adds would be replayed into
    // the new Redis and the jobs would simply wait there for a worker).
    const { Redis } = await import('ioredis');
    const probe = new Redis(url);
    await until(async () => (await probe.llen('bull:sgd-lab-shards:wait')) === 9, 'the 9 jobs in Redis');
    probe.disconnect();
    proc.kill('SIGKILL');
    await new Promise((r) => proc.on('exit', r));
    // The same port, empty (no save, no append-only file).
    const again = spawn(REDIS!, ['--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    children.push(again);
    const r = await run.exited;
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(new RegExp(`Redis at ${url} restarted and lost \\d+ queued shard jobs .*run the same command with --resume`));
    const manifest = JSON.parse(readFileSync(join(dir, 'dist', 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('failed');
  });
});

describe('worker failure reasons', () => {
  it('never carry file contents back through the queue', async () => {
    const { failureReason } = await import('./worker.js');
    const { DataError, ConfigError } = await import('@sgd-lab/core');
    expect(failureReason(new DataError('/etc/passwd', 'line 1, column "a": "root:x:0:0:root:/root:/bin/bash" is not a number'))).toBe(
      "/etc/passwd: the worker's data checks refused this file (the details are in the worker's log)",
    );
    expect(failureReason(new Error('bad value "root:x:0:0" in line 1'))).toBe('bad value "..." in line 1');
    expect(failureReason(new ConfigError('job', ['/runs: must be >= 2']))).toContain('/runs: must be >= 2');
  });

  it('refuse a job whose study fails the CLI schema', async () => {
    const { computeShard } = await import('./worker.js');
    const { createLogger } = await import('@sgd-lab/core');
    const job = { study: { setting: 'admission-linreg', preset: 'smoke', runs: -5, options: { source: 'synthetic' } }, shard: { batchSize: 4, initPoint: 0, runStart: 0, runCount: 16, steps: 1, runBlock: 16 }, data: [] };
    await expect(computeShard(job as never, '.', createLogger({ quiet: true, level: 'error' }))).rejects.toThrow(/\/runs: must be >= 2/);
  });

  const smokeJob = (options: Record<string, unknown>) => ({
    study: { setting: 'admission-linreg', preset: 'smoke', options },
    shard: { batchSize: 4, initPoint: 0, runStart: 0, runCount: 16, steps: 1, runBlock: 16 },
    data: [],
  });

  it("resolve a job's data paths inside the worker's --data-dir only", async () => {
    const { computeShard } = await import('./worker.js');
    const { createLogger } = await import('@sgd-lab/core');
    const logger = createLogger({ quiet: true, level: 'error' });
    const dataDir = mkdtempSync(join(tmpdir(), 'sgd-lab-worker-data-'));
    writeFileSync(join(dataDir, 'mine.csv'), 'Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit \n');
    const outside = mkdtempSync(join(tmpdir(), 'sgd-lab-worker-outside-'));
    writeFileSync(join(outside, 'secret.csv'), 'a,b\n1,2\n');
    symlinkSync(join(outside, 'secret.csv'), join(dataDir, 'link.csv'));
    for (const path of ['/etc/passwd', '../etc/passwd', join(outside, 'secret.csv'), 'link.csv']) {
      await expect(computeShard(smokeJob({ data: path }) as never, dataDir, logger), path).rejects.toThrow(/\/options\/data: "[^"]+" is outside this worker's --data-dir/);
    }
    // Inside it, the path passes, and the file's own checks apply (one header, no rows).
    await expect(computeShard(smokeJob({ data: 'mine.csv' }) as never, dataDir, logger)).rejects.toThrow(/mine\.csv: .*no data rows|mine\.csv: /);
    await expect(computeShard(smokeJob({ data: 'mine.csv' }) as never, dataDir, logger)).rejects.not.toThrow(/outside/);
  });

  it('refuse a job computed for other code or another backend than the worker has', async () => {
    const { computeShard } = await import('./worker.js');
    const { createLogger, codeStamp, resolveStudy, studyFingerprint, discoverExtensions } = await import('@sgd-lab/core');
    const logger = createLogger({ quiet: true, level: 'error' });
    const { plugins } = await discoverExtensions();
    const found = plugins.find((p) => p.value.name === 'admission-linreg')!;
    const job = smokeJob({ source: 'synthetic' });
    const study = resolveStudy(structuredClone(job.study) as never, found.value, 'job');
    const same = { study: studyFingerprint(study), data: [], code: codeStamp(`${found.packageName}@${found.version}`) };
    // The same code: computed, and the result carries the fingerprint.
    const text = await computeShard({ ...job, dependsOn: same } as never, '.', logger);
    expect(JSON.parse(text).fingerprint).toMatch(/^[0-9a-f]{64}$/);
    await expect(computeShard({ ...job, dependsOn: { ...same, code: { ...same.code, core: '9.9.9' } } } as never, '.', logger)).rejects.toThrow(
      /this worker differs from the coordinator in the code \(@sgd-lab\/core 9\.9\.9.* there, @sgd-lab\/core \d+\.\d+\.\d+.* here\)/,
    );
    await expect(computeShard({ ...job, dependsOn: { ...same, backend: 'webgpu' } } as never, '.', logger)).rejects.toThrow(/differs from the coordinator in the backend \(webgpu there, none here\)/);
  });

  it("refuse a job over the worker's resources before loading anything", async () => {
    const { computeShard } = await import('./worker.js');
    const { createLogger } = await import('@sgd-lab/core');
    const machine = { memoryBytes: 2 ** 30, memorySource: "this machine's memory", cores: 2, peakFlopsPerCore: 2.5e11 };
    const job = smokeJob({ source: 'synthetic', synthetic: { rows: 200_000_000, features: 7, noise: 0.1 } });
    await expect(computeShard(job as never, '.', createLogger({ quiet: true, level: 'error' }), machine)).rejects.toThrow(
      /\/limits\/memoryMiB: the study needs about [\d.]+ GiB of memory \(data \(text and float64 rows\)/,
    );
  });
});

describe('Redis security', () => {
  it('refuses a Redis off this machine without a password or without TLS, warns on loopback without a password', async () => {
    const { redisSecurity, checkRedisSecurity } = await import('./queue.js');
    expect(redisSecurity('redis://127.0.0.1:6379')).toEqual({ refuse: [], warn: [expect.stringMatching(/has no password/)] });
    expect(redisSecurity('redis://:pw@localhost:6379')).toEqual({ refuse: [], warn: [] });
    expect(redisSecurity('redis://:pw@[::1]:6379')).toEqual({ refuse: [], warn: [] });
    expect(redisSecurity('rediss://:pw@10.0.0.5:6380')).toEqual({ refuse: [], warn: [] });
    const open = redisSecurity('redis://10.0.0.5:6379');
    expect(open.refuse).toEqual([expect.stringMatching(/10\.0\.0\.5:6379 has no password/), expect.stringMatching(/not TLS \(redis:\/\/\)/)]);
    expect(redisSecurity('redis://:pw@queue.example.org').refuse).toEqual([expect.stringMatching(/queue\.example\.org:6379 is not on this machine and the URL is not TLS/)]);
    const warned: string[] = [];
    expect(() => checkRedisSecurity('redis://10.0.0.5:6379', { warn: (m) => warned.push(m), command: 'run' })).toThrow(/--redis: .*Pass --insecure/);
    checkRedisSecurity('redis://10.0.0.5:6379', { insecure: true, warn: (m) => warned.push(m), command: 'run' });
    expect(warned).toHaveLength(2);
  });

  it('the CLI refuses such a Redis with exit 2 before connecting, for run and for worker', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-insecure-')), 'out');
    const run = spawnSync(process.execPath, [CLI, 'run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source="synthetic"', '--redis', 'redis://:S3cr3t@192.0.2.1:6379', '--out', out], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/192\.0\.2\.1:6379 is not on this machine and the URL is not TLS .*Pass --insecure/);
    expect(run.stderr).not.toContain('S3cr3t');
    expect(existsSync(out)).toBe(false);
    const w = spawnSync(process.execPath, [CLI, 'worker', '--redis', 'redis://192.0.2.1:6379'], { encoding: 'utf8' });
    expect(w.status, w.stderr).toBe(2);
    expect(w.stderr).toMatch(/192\.0\.2\.1:6379 has no password/);
  });
});
