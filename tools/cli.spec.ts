/**
 * The command line as a new user meets it: help for every command (packages' too), the version,
 * usage errors with exit 2 and a suggestion, the committed bin entry, plans of every preset
 * (nothing runs, nothing is written), progress off a terminal and in the log, and SIGINT/SIGTERM
 * at several moments of a run, each ending with the manifest `cancelled`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { spawnCli, testDataDir } from '@sgd-lab/core/testing';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');
const dataDir = testDataDir();

const sgdLab = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((done) => {
    execFile(process.execPath, [cli, ...args], { cwd: repo, env: { ...process.env, ...env }, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      done({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });

/** Every command path `sgd-lab --help` and the groups under it list. */
async function commandPaths(prefix: string[] = []): Promise<string[][]> {
  const r = await sgdLab([...prefix, '--help']);
  expect(r.status, r.stderr).toBe(0);
  // The command list ends at the first blank line (the examples after it are not commands).
  const section = (r.stdout.split(/^Commands:$/m)[1] ?? '').split(/\n\s*\n/)[0];
  const names = [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1]).filter((n) => n !== 'help');
  const out: string[][] = [];
  for (const n of names) {
    out.push([...prefix, n]);
    out.push(...(await commandPaths([...prefix, n])));
  }
  return out;
}

describe('sgd-lab --help and --version', () => {
  it('gives help for the program and every command, those of packages included', async () => {
    const paths = await commandPaths();
    const flat = paths.map((p) => p.join(' '));
    for (const expected of ['run', 'plan', 'validate', 'list', 'schema', 'suite', 'verify', 'report', 'compare', 'worker', 'data', 'data fetch', 'data fetch mnist', 'data fetch yelp']) {
      expect(flat).toContain(expected);
    }
    for (const p of paths) {
      const r = await sgdLab([...p, '--help']);
      expect(r.status, `${p.join(' ')} --help`).toBe(0);
      expect(r.stdout).toContain(`Usage: sgd-lab ${p.join(' ')}`);
    }
    const run = await sgdLab(['run', '--help']);
    for (const flag of ['--preset', '--out', '--data-dir', '--backend', '--set', '--resume', '--force', '--dry-run', '--redis', '--redis-timeout', '--progress', '--quiet']) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout.replace(/\s+/g, ' ')).toMatch(/choices: "auto", "native", "wasm", "cpu", "webgpu", "tensorflow", "tensorflow-gpu"/);
    const top = await sgdLab(['--help']);
    expect(top.stdout.replace(/\s+/g, ' ')).toMatch(/Exit codes: 0 done; 1 [^;]+; 2 usage or config error; 3 missing or corrupt data; 4 a run diverged; 5 Redis lost; 130 interrupted/);
  });

  it('prints the version of @sgd-lab/core', async () => {
    const version = JSON.parse(readFileSync(join(repo, 'packages', 'core', 'package.json'), 'utf8')).version;
    for (const flag of ['--version', '-V']) {
      const r = await sgdLab([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout.trim()).toBe(version);
    }
  });
});

describe('usage errors', () => {
  const cases: [string[], RegExp][] = [
    [['runn'], /^usage error: unknown command 'runn'\n\(Did you mean run\?\)/],
    [['run', 'admission-linreg', '--forse'], /^usage error: unknown option '--forse'\n\(Did you mean --force\?\)/],
    [['list', '--bogus'], /^usage error: unknown option '--bogus'/],
    [['validate', '--help-me'], /^usage error: unknown option '--help-me'/],
    [['run'], /^usage error: missing required argument 'study'/],
    [['run', 'admission-linreg', 'extra'], /^usage error: too many arguments for 'run'/],
    [['run', 'admission-linreg', '--resume', '--force'], /^usage error: option '--resume' cannot be used with option '--force'/],
    [['run', 'admission-linreg', '--redis-timeout', 'abc'], /^usage error: option '--redis-timeout <seconds>' argument 'abc' is invalid\. expected a positive number, got "abc"/],
    [['run', 'admission-linreg', '--backend', 'gpu'], /^usage error: option '--backend <name>' argument 'gpu' is invalid\. Allowed choices are auto, native/],
    [['run', 'admision-linreg'], /^usage error: run: unknown setting "admision-linreg" \(did you mean "admission-linreg"\?\)/],
    [['plan', 'admission-linreg', '--preset', 'papr'], /^usage error: plan: --preset papr: admission-linreg has no such preset \(did you mean "paper"\?\)/],
    [['run', 'admission-linreg', '--set', '__proto__.x=1'], /^usage error: --set __proto__\.x=1: "__proto__" is not a field name/],
    [['worker', '--concurrency', '0'], /^usage error: option '--concurrency <n>' argument '0' is invalid\. expected a positive integer/],
    [['data', 'fetch', 'imagenet'], /^usage error: unknown command 'imagenet'[\s\S]*mnist \[options\][\s\S]*yelp \[options\]/],
    [['data'], /Usage: sgd-lab data \[options\] \[command\][\s\S]*fetch/],
  ];
  it.each(cases)('sgd-lab %j exits 2 and says what was wrong', async (args, message) => {
    const r = await sgdLab(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });

  it('points to the help of the command that was misused', async () => {
    expect((await sgdLab(['run', 'admission-linreg', '--forse'])).stderr).toContain('(see `sgd-lab run --help`)');
    expect((await sgdLab(['report'])).stderr).toContain('(see `sgd-lab report --help`)');
  });
});

describe('the committed bin entry', () => {
  it('is what npm links as sgd-lab, and runs the built CLI', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'packages', 'core', 'package.json'), 'utf8'));
    expect(pkg.bin['sgd-lab']).toBe('./bin/sgd-lab.js');
    const r = spawnSync(process.execPath, [join(repo, 'packages', 'core', 'bin', 'sgd-lab.js'), '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(existsSync(join(repo, 'node_modules', '.bin', 'sgd-lab'))).toBe(true);
  });

  it('says to run npm run build, with exit 1, when the CLI is not built', () => {
    const pkg = join(mkdtempSync(join(tmpdir(), 'sgd-lab-bin-')), 'core');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    cpSync(join(repo, 'packages', 'core', 'bin', 'sgd-lab.js'), join(pkg, 'bin', 'sgd-lab.js'));
    writeFileSync(join(pkg, 'package.json'), '{"type": "module"}');
    const r = spawnSync(process.execPath, [join(pkg, 'bin', 'sgd-lab.js'), 'list'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sgd-lab is not built yet \(.*dist\/cli\/main\.js is missing\): run `npm run build`/);
  });
});

describe('sgd-lab plan and run --dry-run', () => {
  // Every preset of every setting, the paper ones included: planned and calibrated, never run.
  const presets: [string, string][] = [
    ['admission-linreg', 'smoke'],
    ['admission-linreg', 'cpu'],
    ['admission-linreg', 'paper'],
    ['admission-logreg', 'smoke'],
    ['admission-logreg', 'cpu'],
    ['admission-logreg', 'paper'],
    ['gaussian-deeplinear', 'smoke'],
    ['gaussian-deeplinear', 'cpu'],
    ['gaussian-deeplinear', 'paper'],
    ['mnist-mlp', 'smoke'],
    ['mnist-mlp', 'cpu'],
    ['mnist-mlp', 'paper'],
    ['yelp-xlnet', 'smoke'],
    ['yelp-xlnet', 'cpu'],
  ];
  it.runIf(!!dataDir).each(presets)('plans %s --preset %s without running it', async (setting, preset) => {
    const cwd = mkdtempSync(join(tmpdir(), 'sgd-lab-plan-'));
    symlinkSync(join(repo, 'node_modules'), join(cwd, 'node_modules'));
    const r = await new Promise<{ status: number; stdout: string; stderr: string }>((done) =>
      execFile(process.execPath, [cli, 'plan', setting, '--preset', preset, '--data-dir', dataDir!, '--json'], { cwd, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
        done({ status: err ? Number(err.code) : 0, stdout, stderr }),
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    const parsed = JSON.parse(r.stdout);
    const plans = Array.isArray(parsed) ? parsed : [parsed];
    for (const p of plans) {
      expect(p.setting).toBe(setting);
      expect(p.calibrated).toBe(true);
      expect(p.shards).toBe(p.perBatchSize.reduce((n: number, b: { shards: number }) => n + b.shards, 0));
      expect(p.replicaSteps).toBeGreaterThan(0);
      expect(p.seconds).toBeGreaterThan(0);
      expect(p.flops).toBeGreaterThan(0);
      expect(p.bytesPerChunk).toBeGreaterThan(0);
      for (const b of p.perBatchSize) expect(b.timing.step).toBeGreaterThan(0);
    }
    // Nothing was written: no results folder, no log.
    expect(readdirSync(cwd)).toEqual(['node_modules']);
  });

  it.runIf(!!dataDir)('prints shards, replica-steps, FLOPs, memory and the estimate as a table', async () => {
    const r = await sgdLab(['plan', 'mnist-mlp', '--preset', 'paper', '--data-dir', dataDir!]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/plan: mnist-mlp-paper-variance \(mnist-mlp\), backend \w+\n {2}10 shards: 2 batch sizes x 5 initial points, 50 runs each/);
    expect(r.stdout).toMatch(/plan: mnist-mlp-paper-loss/);
    expect(r.stdout).toMatch(/total: [\d.e]+ replica-steps, [\d.e]+ FLOPs; memory per chunk [\d.]+ GiB \(\d+ replicas\)/);
    expect(r.stdout).toMatch(/estimated wall time: \d+d \d\dh on \w+ \(s\/step timed at \d+ replicas/);
  });

  it('run --dry-run plans and writes nothing', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-dry-')), 'out');
    const r = await sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', out, '--dry-run']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^plan: admission-linreg-smoke \(admission-linreg\)/);
    expect(r.stdout).toMatch(/estimated wall time: [\d.]+s/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('resource limits, checked before any work', () => {
  // Each of these used to allocate until a RangeError, or run for days: now exit 2 (3 for a file
  // that is not data) naming the limit, and no results folder.
  const cases: [string, string[], number, RegExp][] = [
    ['1e9 runs', ['admission-linreg', '--set', 'runs=1000000000'], 2, /\/limits\/memoryMiB: the study needs about [\d.]+ TiB of memory \(.*replicas of a shard/],
    ['b = 1e9', ['gaussian-deeplinear', '--set', 'batchSizes=[1000000000]'], 2, /\/memoryBudgetMiB: one run block of 16 replicas at b = 1000000000 needs [\d.]+ GiB, above the budget of 2048 MiB/],
    ['1e9 synthetic rows', ['admission-linreg', '--set', 'options.source="synthetic"', '--set', 'options.synthetic.rows=1000000000'], 2, /\/limits\/memoryMiB: .*data \(text and float64 rows\): [\d.]+ GiB/],
    ['MNIST width 1e7', ['mnist-mlp', '--set', 'options.widths=[784,10000000,10]'], 2, /\/memoryBudgetMiB: one run block of 6 replicas at b = 64 needs/],
    ['1e4 XLNet layers', ['yelp-xlnet', '--set', 'options.size.layers=10000'], 2, /\/memoryBudgetMiB: one run block of 4 replicas at b = 16 needs [\d.]+ GiB/],
    ['1e7 initial points', ['admission-linreg', '--set', 'initPoints=10000000'], 2, /\/limits\/memoryMiB: .*records kept for the claims: [\d.]+ TiB/],
    ['MNIST width 1e5 in a 64 MiB budget', ['mnist-mlp', '--set', 'options.widths=[784,100000,10]', '--set', 'memoryBudgetMiB=64'], 2, /\/memoryBudgetMiB: .* above the budget of 64 MiB/],
    ['1e12 steps', ['gaussian-deeplinear', '--set', 'steps=1000000000000'], 2, /\/limits\/hours: [\d.e+]+ replica-steps take at least .* above the limit of 720 h/],
    ['a study over limits.hours', ['gaussian-deeplinear', '--set', 'steps=1000000000', '--set', 'recordEvery=1000000000', '--set', 'limits.hours=1'], 2, /\/limits\/hours: .* above the limit of 1 h/],
    ['a study over limits.memoryMiB', ['admission-linreg', '--set', 'options.source="synthetic"', '--set', 'options.synthetic.rows=300000', '--set', 'limits.memoryMiB=16'], 2, /\/limits\/memoryMiB: the study needs about [\d.]+ MiB .* more than the limit 16 MiB/],
    ['/dev/zero as the data file', ['admission-linreg', '--set', 'options.data="/dev/zero"'], 3, /\/dev\/zero: is not a regular file/],
  ];
  it.each(cases)('%s', async (_what, args, code, message) => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-limits-')), 'out');
    const [setting, ...rest] = args;
    const r = await sgdLab(['run', setting, '--preset', 'smoke', ...rest, '--out', out, '--data-dir', dataDir ?? join(out, 'no-data')]);
    expect(r.status, r.stderr).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(existsSync(out)).toBe(false);
  });

  it('plan prints the memory estimate and the limits, and refuses a study over them the same way', async () => {
    const ok = await sgdLab(['plan', 'gaussian-deeplinear', '--preset', 'smoke', '--no-calibrate']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/limits: memory about [\d.]+ MiB of [\d.]+ GiB \((this machine's memory|this process's cgroup memory limit)\); compute at least \S+ at peak, of limits.hours = 720 h/);
    const over = await sgdLab(['plan', 'gaussian-deeplinear', '--preset', 'smoke', '--no-calibrate', '--set', 'batchSizes=[1000000000]']);
    expect(over.status).toBe(2);
    expect(over.stderr).toMatch(/\/memoryBudgetMiB: one run block/);
  });
});

describe('progress', () => {
  it('off a terminal prints lines on stderr, and the same lines go to sgd-lab.log', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-progress-')), 'out');
    const r = await sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', out], { SGD_LAB_PROGRESS_SECONDS: '0' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('[admission-linreg-smoke] '));
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines[0]).toMatch(/^\[admission-linreg-smoke\] 0\.0% \| shard 1\/3 \(b=\d+, init 0\) step 0\/30 \| elapsed [\d.]+s \| ETA \S+ \| \S+ replica-steps\/s$/);
    expect(lines.some((l) => /\] 100\.0% \| shard 3\/3/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/completed in [\d.]+s: 27,000 replica-steps in 3 shards/);
    const log = readFileSync(join(out, 'sgd-lab.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { message: string });
    const logged = log.map((l) => l.message).filter((m) => m.startsWith('[admission-linreg-smoke] '));
    expect(logged).toEqual(lines);
  });

  it('--quiet prints no progress on stderr but still logs it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-progress-')), 'out');
    const r = await sgdLab(['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--out', out, '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(readFileSync(join(out, 'sgd-lab.log'), 'utf8')).toMatch(/completed in/);
  });
});

describe('SIGINT and SIGTERM', () => {
  // A study long enough that every moment below comes before its end.
  const args = (out: string) => ['run', 'admission-linreg', '--preset', 'smoke', '--set', 'options.source=synthetic', '--set', 'runs=4000', '--set', 'steps=3000', '--out', out, '--progress', 'lines'];
  const moments: [string, RegExp | undefined][] = [
    ['as soon as the process starts', undefined],
    ['once the study is announced', /study admission-linreg-smoke: /],
    ['in the first shard', /shard 1\/3 \(b=\d+, init 0\) step [1-9]/],
    ['in the second shard', /shard 2\/3 \(b=\d+, init 0\) step [1-9]/],
  ];
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it.each(moments)(`${signal} %s ends with exit 130 and nothing half-written`, async (_when, moment) => {
      const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-signal-')), 'out');
      const run = spawnCli(args(out), { env: { SGD_LAB_PROGRESS_SECONDS: '0' } });
      if (moment) await run.waitFor(moment);
      run.child.kill(signal);
      const r = await run.exited;
      // Killed before node ran any of our code, the signal's default action ends it: the only
      // exit that is not 130, and then nothing was written at all.
      if (r.signal === signal) expect(existsSync(out)).toBe(false);
      else expect(r.code, r.stderr).toBe(130);
      if (existsSync(join(out, 'manifest.json'))) {
        const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
        expect(manifest.status).toBe('cancelled');
        const text = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
        expect(manifest.outputs['metrics.jsonl'].records).toBe(text === '' ? 0 : text.trim().split('\n').length);
      } else expect(moment).toBeUndefined();
    });
  }

  it('a second signal quits at once and still leaves the manifest cancelled', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sgd-lab-signal-')), 'out');
    const run = spawnCli(args(out), { env: { SGD_LAB_PROGRESS_SECONDS: '0' } });
    await run.waitFor(/shard 1\/3 \(b=\d+, init 0\) step [1-9]/);
    run.child.kill('SIGTERM');
    await run.waitFor(/terminated: finishing the current step/);
    run.child.kill('SIGTERM');
    const r = await run.exited;
    expect(r.code).toBe(130);
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).status).toBe('cancelled');
  });
});
