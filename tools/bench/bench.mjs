#!/usr/bin/env node
/**
 * npm run bench: measures the settings side by side with their peers in one run and writes
 * BENCHMARKS.md at the repository root. Ratios are what to read: this machine is shared and noisy.
 *
 *   node tools/bench/bench.mjs [--repeats k] [--out BENCHMARKS.md]
 *
 * Commands that call OpenBLAS (the numpy and PyTorch peers, and sgd-lab's `native` backend) run
 * with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that command only (they halve OpenBLAS
 * speed here); tests and CI leave the environment alone. PyTorch runs on Debian's OpenMP build of
 * OpenBLAS (it parallelises with OpenMP itself), the native addon on the pthreads build it links.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { lastValueFrom } from 'rxjs';
import { container } from 'tsyringe';
import { createLogger, learningRateAt, resolveStudy, runStudy, RandomStream, StreamPurpose } from '@sgd-lab/core';
import linreg, { ADMISSION_DIR, ADMISSION_FILE, FIG2B_BATCH_SIZES, LinearRegressionModel, MomentOracle, loadAdmission, samplingFactor } from '@sgd-lab/plugin-linreg';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values } = parseArgs({
  options: {
    repeats: { type: 'string', default: '3' },
    out: { type: 'string', default: join(root, 'BENCHMARKS.md') },
    only: { type: 'string', multiple: true, default: [] },
  },
});
const only = new Set(values.only);
const wanted = (section) => only.size === 0 || only.has(section);
const repeats = Number(values.repeats);
const dataDir = [process.env.SGD_LAB_DATA_DIR, join(root, 'data'), join(root, '..', 'shared', 'data')].find((d) => d && existsSync(d));
const logger = createLogger({ quiet: true, level: 'error' });

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const fmt = (s) => (s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);
const say = (line) => process.stdout.write(line + '\n');

function time(fn) {
  const t0 = performance.now();
  const out = fn();
  return { seconds: (performance.now() - t0) / 1000, out };
}

/** The environment for a command that calls OpenBLAS: its tuning variables removed for it alone. */
function peerEnv() {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

const OPENMP_BLAS = '/usr/lib/x86_64-linux-gnu/openblas-openmp';
/** PyTorch's environment: peerEnv on Debian's OpenMP OpenBLAS, whatever the system alternative. */
function torchEnv() {
  const env = peerEnv();
  if (existsSync(join(OPENMP_BLAS, 'libblas.so.3'))) env.LD_LIBRARY_PATH = [OPENMP_BLAS, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

/** The environment of an sgd-lab step or study on a backend (native calls OpenBLAS). */
function backendEnv(backend) {
  return backend === 'native' ? peerEnv() : process.env;
}

/** Steps per backend: the JavaScript cpu backend is slow, so it gets fewer. */
function stepsFor(backend, many) {
  return backend === 'cpu' ? 1 : many;
}

/**
 * Runs a backend's step script and the PyTorch peer alternately, `count` rounds (who goes first
 * alternates too): the machine's noise then hits both alike. Returns each one's median per round,
 * and the ratio per round.
 */
function pairedRounds(runOurs, runTorch, count = repeats) {
  const rounds = [];
  for (let i = 0; i < Math.max(1, count); i++) {
    const torchFirst = i % 2 === 1;
    const early = torchFirst ? runTorch() : undefined;
    const ours = runOurs();
    if (!ours) break;
    const torch = torchFirst ? early : runTorch();
    rounds.push({ ours: median(ours.seconds), torch: torch ? median(torch.seconds) : undefined, oursInfo: ours, torchInfo: torch });
    if (!torch) break; // no peer: one round of ours
  }
  return { rounds, timed: rounds.filter((x) => x.torch !== undefined) };
}

/**
 * Rounds for the short steps (a preset step takes well under a second per side): more of them, so
 * that one noisy round moves the median ratio less; the paper-size steps keep `repeats`.
 */
const shortRounds = Math.max(repeats, 5);

/**
 * "0.97, 1.01, 0.99 (median 0.99)": the per-round ratios of PyTorch's time to ours. Where the peer
 * measured the GEMM peak in each round, the rounds whose peak fell below 80% of the run's best
 * are named, with the median of the others: the machine was busy while the peer ran, which slows
 * the peer and flatters the ratio.
 */
function roundRatios(rounds) {
  const timed = rounds.filter((x) => x.torch !== undefined);
  const r = timed.map((x) => x.torch / x.ours);
  const text = `${r.map((v) => v.toFixed(2)).join(', ')} (median ${median(r).toFixed(2)})`;
  const peaks = timed.map((x) => x.torchInfo?.sgemmGflops);
  if (!peaks.every((v) => Number.isFinite(v))) return text;
  const best = Math.max(...peaks);
  const busy = peaks.map((v, i) => (v < 0.8 * best ? i : -1)).filter((i) => i >= 0);
  if (busy.length === 0 || busy.length === r.length) return text;
  // Of an even count, the lower middle: this line must not flatter either.
  const quiet = r.filter((_, i) => !busy.includes(i)).sort((a, b) => a - b);
  return `${text}; round${busy.length > 1 ? 's' : ''} ${busy.map((i) => i + 1).join(', ')} ran with the machine busy during the peer (its GEMM peak below 80% of the run's best), median of the others ${quiet[(quiet.length - 1) >> 1].toFixed(2)}`;
}

/** Runs `sgd-lab run <setting> --preset cpu` on a backend: seconds, peak RSS, exit code. */
function endToEnd(setting, backend) {
  const r = spawnSync(process.execPath, [join(root, 'tools', 'bench', 'rss.mjs'), 'run', setting, '--preset', 'cpu', '--backend', backend, '--out', join(root, 'results', `bench-${setting}-${backend}`), '--force', '--quiet'], { encoding: 'utf8', maxBuffer: 1 << 26, env: backendEnv(backend) });
  try {
    return JSON.parse(r.stderr.trim().split('\n').at(-1));
  } catch {
    return { code: r.status ?? -1, seconds: NaN, maxRssMiB: NaN };
  }
}

/**
 * The CPU backends to time here, fastest first. webgpu is left out: on this machine its adapter
 * is llvmpipe (a software rasterizer, for tests); GPU numbers come from the device check
 * (tools/device), whose section the bench keeps.
 */
async function cpuBackends() {
  const { availableBackends } = await import('@sgd-lab/tensor');
  return availableBackends().filter((b) => b !== 'webgpu');
}

/** OpenBLAS build line and thread count of the native backend, for the report. */
async function nativeInfo() {
  const { availableBackends } = await import('@sgd-lab/tensor');
  if (!availableBackends().includes('native')) return undefined;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const { useBackend } = await import('@sgd-lab/tensor'); const i = await useBackend('native'); console.log(JSON.stringify(i));"], { encoding: 'utf8', env: peerEnv(), cwd: join(root, 'tools') });
  return r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').at(-1)) : undefined;
}

function machine() {
  const model = cpus()[0]?.model ?? 'unknown';
  return `${cpus().length} cores (${model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

async function benchLinreg(sections) {
  const file = dataDir && join(dataDir, ADMISSION_DIR, ADMISSION_FILE);
  if (!file || !existsSync(file)) {
    sections.push(`## admission-linreg\n\nSkipped: ${ADMISSION_FILE} not found (set SGD_LAB_DATA_DIR).\n`);
    return;
  }
  say('admission-linreg: paper-fig2a');
  const study = resolveStudy({ setting: 'admission-linreg', preset: 'paper-fig2a', reporters: [], options: { estimators: ['monte_carlo'] } }, linreg, 'bench');
  const data = loadAdmission(file, { standardizeTarget: false });
  const model = new LinearRegressionModel(data, study.options.init);
  const w0 = model.initialParameters(new RandomStream([study.seed, StreamPurpose.init, 0]));
  const oracle = new MomentOracle(data, model.moments);
  const rate = (t) => learningRateAt(study.learningRate, t);

  const exactRuns = (bs, steps) => bs.forEach((b) => oracle.curves(w0, samplingFactor('without-replacement', data.n, b), steps, rate));
  exactRuns([4], 10); // warm-up
  const exact4 = median(Array.from({ length: 5 }, () => time(() => exactRuns(study.batchSizes, study.steps)).seconds));
  const exact20 = median(Array.from({ length: 5 }, () => time(() => exactRuns(FIG2B_BATCH_SIZES, study.steps)).seconds));
  const poly40 = median(Array.from({ length: 5 }, () => time(() => oracle.polynomialsInC(w0, 40, rate)).seconds));
  say(`  exact: 4 b x ${study.steps} steps ${fmt(exact4)}; 20 b x ${study.steps} steps ${fmt(exact20)}; polynomials in 1/b up to t = 40 ${fmt(poly40)}`);

  const mcSeconds = [];
  for (let i = 0; i < repeats; i++) {
    const child = container.createChildContainer();
    await linreg.register(child, study, { dataDir, logger, recordDataFile: () => {}, recordFact: () => {} });
    const t0 = performance.now();
    await lastValueFrom(runStudy({ container: child, study }), { defaultValue: undefined });
    mcSeconds.push((performance.now() - t0) / 1000);
    say(`  sgd-lab Monte Carlo repeat ${i + 1}: ${fmt(mcSeconds.at(-1))}`);
  }

  const peer = spawnSync('python3', [join(root, 'tools', 'bench', 'linreg_numpy.py')], {
    input: JSON.stringify({ data: file, w0: Array.from(w0), batchSizes: study.batchSizes, steps: study.steps, runs: study.runs, alpha0: study.learningRate.alpha0, offset: study.learningRate.offset, seed: 1, repeats }),
    env: peerEnv(),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  let numpy;
  if (peer.status === 0) {
    numpy = JSON.parse(peer.stdout);
    say(`  numpy ${numpy.numpy} Monte Carlo: ${numpy.seconds.map(fmt).join(", ")}; loaded ${(numpy.runtime?.libraries ?? []).join(", ")}`);
    loaded.set(`numpy ${numpy.numpy}`, numpy.runtime?.libraries ?? []);
  } else say(`  numpy peer unavailable: ${(peer.stderr || peer.error?.message || '').trim().split('\n').at(-1)}`);

  // The peer must compute the same thing: its last-step variances against the exact oracle.
  const check = study.batchSizes
    .map((b) => {
      const ex = oracle.curves(w0, samplingFactor('without-replacement', data.n, b), study.steps, rate);
      const v = numpy?.last?.[String(b)]?.grad_variance;
      return `| ${b} | ${ex.gradVariance[study.steps - 1].toExponential(4)} | ${v === undefined ? '-' : v.toExponential(4)} |`;
    })
    .join('\n');

  const ours = median(mcSeconds);
  const theirs = numpy ? median(numpy.seconds) : undefined;
  const replicaSteps = study.runs * study.steps * study.batchSizes.length;
  sections.push(`## admission-linreg (Fig. 2(a): b in {${study.batchSizes.join(', ')}}, ${study.steps} steps, ${study.runs} runs, every step recorded)

| what | time (median of ${repeats}) | per replica-step |
|---|---|---|
| sgd-lab Monte Carlo (Float64Array, one process) | ${fmt(ours)} | ${((ours / replicaSteps) * 1e9).toFixed(0)} ns |
| numpy ${numpy?.numpy ?? '(absent)'} Monte Carlo, same run | ${theirs === undefined ? '-' : fmt(theirs)} | ${theirs === undefined ? '-' : `${((theirs / replicaSteps) * 1e9).toFixed(0)} ns`} |
| **ratio numpy / sgd-lab** | **${theirs === undefined ? '-' : (theirs / ours).toFixed(2)}x** | target >= 1 |

| exact oracle (median of 5) | time | target |
|---|---|---|
| the 4 curves of Fig. 2(a), 2,000 steps | ${fmt(exact4)} | |
| all 20 b of Fig. 2(b), 2,000 steps | ${fmt(exact20)} | < 1 s |
| exact polynomials in 1/b, t = 0..40 | ${fmt(poly40)} | |

Same computation check, Var(g_t|F0) at the last step (exact oracle vs the numpy peer's Monte Carlo):

| b | exact | numpy |
|---|---|---|
${check}

Both Monte Carlo codes do the same work per step: draw a uniform b-subset per run without
replacement, the mini-batch gradient, the full gradient, both trace variances across runs, and the
mean loss. sgd-lab draws subsets by a partial Fisher-Yates shuffle (O(b) per run) where numpy
sorts random keys (argpartition, O(n) per run); its gradient kernel is generated for p = 8.
`);
}

/**
 * Debian's PyTorch for the peer with the BLAS it is built for: the OpenMP OpenBLAS (its own
 * OpenMP threads then share the cores with OpenBLAS's instead of fighting the pthreads build's).
 * Both are installed when absent (root on these machines), each on its own.
 */
function ensureTorch() {
  const haveTorch = () => spawnSync('/usr/bin/python3', ['-c', 'import torch'], { env: peerEnv() }).status === 0;
  const haveBlas = () => existsSync(join(OPENMP_BLAS, 'libblas.so.3'));
  if (haveTorch() && haveBlas()) return true;
  // SGD_LAB_BENCH_NO_INSTALL=1: use what is there (no root, no network); a wrong BLAS is then reported.
  if (process.env.SGD_LAB_BENCH_NO_INSTALL === '1') return haveTorch();
  const missing = [...(haveTorch() ? [] : ['python3-torch']), ...(haveBlas() ? [] : ['libopenblas0-openmp'])];
  say(`  installing ${missing.join(' and ')} (apt-get) for the PyTorch peer`);
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'ignore' });
  return haveTorch() && haveBlas();
}

/** Why a peer's ratio is withheld, per peer ("PyTorch": ...), for the report's header. */
const withheld = new Map();
/** What each peer loaded, for the report's header. */
const loaded = new Map();

/**
 * Whether the PyTorch peer ran on the OpenMP OpenBLAS, from the libraries its process mapped:
 * undefined when it did, else the reason (then no ratio is printed against it).
 */
function torchBlasProblem(out) {
  const libs = out.runtime?.libraries ?? [];
  const blas = libs.filter((l) => /blas|lapack/.test(l));
  if (blas.some((l) => l.includes('openblas-openmp')) && !blas.some((l) => l.includes('openblas-pthread'))) return undefined;
  return `PyTorch loaded ${blas.join(', ') || 'no BLAS library we know'}, not the OpenMP OpenBLAS (${OPENMP_BLAS})`;
}

/** Runs a PyTorch peer script with JSON on stdin; its JSON result, or undefined (said why). */
function torchPeer(script, input) {
  if (!ensureTorch()) {
    say('  PyTorch peer unavailable (python3-torch could not be installed)');
    return undefined;
  }
  const r = spawnSync('/usr/bin/python3', [join(root, 'tools', 'bench', script)], { input: JSON.stringify(input), env: torchEnv(), encoding: 'utf8' });
  if (r.status !== 0) {
    say(`  PyTorch peer failed: ${r.stderr.trim().split('\n').at(-1)}`);
    return undefined;
  }
  const out = JSON.parse(r.stdout);
  loaded.set(`PyTorch ${out.torch}`, [...(out.runtime?.libraries ?? []), ...(out.runtime?.parallel ?? [])]);
  const problem = torchBlasProblem(out);
  if (problem) {
    // A peer on the wrong BLAS runs 2-4x slower: its ratio would flatter us. Withheld, said why.
    say(`  PyTorch peer withheld: ${problem}`);
    withheld.set('PyTorch', problem);
    return undefined;
  }
  say(`  PyTorch ${out.torch}: ${fmt(median(out.seconds))} per step${out.sgemmGflops ? `; sgemm 1024^3 ${out.sgemmGflops.toFixed(0)} GFLOP/s` : ''}; loaded ${(out.runtime?.libraries ?? []).join(', ')}`);
  return out;
}

/** The rows of an end-to-end table: backend, time, peak RSS, exit code. */
function e2eRows(e2e) {
  return Object.entries(e2e)
    .map(([k, v]) => `| ${k} | ${fmt(v.seconds)} | ${v.maxRssMiB.toFixed(0)} MiB | ${v.code} |`)
    .join('\n');
}

/** Floating-point operations of one deep linear replica-step (stochastic and full gradients). */
function deepLinearFlops(widths, b) {
  const [p, h, o] = widths;
  return 2 * (5 * o * h * p + b * p * p + p * p * o);
}

/**
 * The asynchronous read path on a CPU backend: since WebGPU, gradients() may return a Promise;
 * on native it returns plain values and studies never await. This times the native step with its
 * default synchronous reads against the same step forced through the asynchronous path (one joined
 * read per step, awaited), in alternating rounds: what the Promise path would cost if it were taken.
 */
async function benchReads(sections) {
  const { availableBackends } = await import('@sgd-lab/tensor');
  const backend = availableBackends().includes('native') ? 'native' : 'wasm';
  const cases = [
    { name: `gaussian-deeplinear step (R = 256, b = 64) on ${backend}`, script: 'deeplinear-step.mjs', args: ['256', '64', '10', '2'] },
    { name: `mnist-mlp cpu preset step (R = 8, b = 128) on ${backend}`, script: 'mnist-step.mjs', args: ['8', '128', '30', '3'] },
  ];
  say(`reads: synchronous against asynchronous reads on ${backend}`);
  const rows = [];
  for (const c of cases) {
    const run = (reads) => {
      const r = spawnSync(process.execPath, [join(root, 'tools', 'bench', c.script), backend, ...c.args], { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...backendEnv(backend), SGD_LAB_READS: reads } });
      if (r.status !== 0) return undefined;
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
      return out.reads === reads ? median(out.seconds) : undefined;
    };
    const per = [];
    for (let i = 0; i < Math.max(1, repeats); i++) {
      const sync = run('sync');
      const async_ = run('async');
      if (sync === undefined || async_ === undefined) break;
      per.push({ sync, async: async_ });
    }
    if (!per.length) {
      say(`  ${c.name}: failed`);
      continue;
    }
    const ratios = per.map((x) => x.async / x.sync);
    say(`  ${c.name}: sync ${fmt(median(per.map((x) => x.sync)))}, async ${fmt(median(per.map((x) => x.async)))}, async/sync ${ratios.map((x) => x.toFixed(3)).join(', ')}`);
    rows.push(`| ${c.name} | ${fmt(median(per.map((x) => x.sync)))} | ${fmt(median(per.map((x) => x.async)))} | ${ratios.map((x) => x.toFixed(3)).join(', ')} (median ${median(ratios).toFixed(3)}) |`);
  }
  sections.push(`## reads (the asynchronous read path on ${backend}: no slowdown)

Since the WebGPU backend, \`Model.gradients\` may return a Promise (WebGPU reads only
asynchronously). On the CPU backends the engine reads synchronously and returns plain values, and
studies await nothing. Here the same step is timed with those synchronous reads and forced through
the asynchronous path (every chunk computed, then one joined read, awaited), in alternating rounds;
a ratio near 1 means the Promise path costs nothing measurable even where it is not needed.

| step | synchronous reads (default) | asynchronous reads (forced) | async / sync per round |
|---|---|---|---|
${rows.join('\n')}
`);
}

async function benchDeepLinear(sections) {
  const R = 256;
  const b = 64;
  const widths = [64, 256, 128];
  const flops = deepLinearFlops(widths, b);
  say(`gaussian-deeplinear: R = ${R}, b = ${b}, widths ${widths.join('-')}`);
  const stepScript = join(root, 'tools', 'bench', 'deeplinear-step.mjs');
  const rows = [];
  const step = (backend) => {
    const r = spawnSync(process.execPath, [stepScript, backend, String(R), String(b), String(stepsFor(backend, 10)), '2'], { encoding: 'utf8', maxBuffer: 1 << 24, env: backendEnv(backend) });
    if (r.status !== 0) {
      say(`  ${backend}: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    say(`  ${out.backend}: ${fmt(median(out.seconds))} per step`);
    return out;
  };
  const backends = await cpuBackends();
  // The fastest backend against PyTorch in alternating rounds; the others once.
  const { rounds, timed } = pairedRounds(() => step(backends[0]), () => torchPeer('deeplinear_torch.py', { R, b, widths, steps: 10, warmup: 2 }), shortRounds);
  for (const backend of backends) {
    const out = backend === backends[0] ? rounds[0]?.oursInfo : step(backend);
    if (!out) continue;
    const sec = backend === backends[0] ? median(rounds.map((x) => x.ours)) : median(out.seconds);
    rows.push({ backend: out.backend, name: `sgd-lab ${out.backend} (${out.strategy}${out.simd ? ', SIMD' : ''})`, sec });
  }
  const torch = timed[0]?.torchInfo;

  // Where the native (else wasm) step spends its time.
  const profiled = rows.some((r) => r.backend === 'native') ? 'native' : 'wasm';
  const profDir = join(root, 'results', 'bench-profile');
  spawnSync('rm', ['-rf', profDir]);
  spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, stepScript, profiled, String(R), String(b), '12', '1'], { encoding: 'utf8', env: backendEnv(profiled) });
  const { readdirSync } = await import('node:fs');
  const profFile = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  const prof = profFile ? JSON.parse(spawnSync('python3', [join(root, 'tools', 'bench', 'profile-summary.py'), join(profDir, profFile)], { encoding: 'utf8' }).stdout) : undefined;

  // End-to-end cpu preset on each fast backend, with peak memory.
  const e2e = {};
  for (const backend of rows.map((r) => r.backend).filter((x) => x === 'native' || x === 'wasm')) {
    say(`  cpu preset end to end on ${backend} (peak RSS)...`);
    e2e[backend] = endToEnd('gaussian-deeplinear', backend);
    say(`  ${backend}: ${fmt(e2e[backend].seconds)}, peak RSS ${e2e[backend].maxRssMiB.toFixed(0)} MiB, exit ${e2e[backend].code}`);
  }

  const torchSec = timed.length ? median(timed.map((x) => x.torch)) : undefined;
  const line = (name, sec) =>
    `| ${name} | ${fmt(sec)} | ${(R / sec).toFixed(0)} | ${((flops * R) / sec / 1e9).toFixed(1)} | ${torchSec ? (torchSec / sec).toFixed(2) : '-'} |`;
  const table = [...rows.map((r) => line(r.name, r.sec)), ...(torchSec ? [line(`PyTorch ${torch.torch} CPU, bmm into reused buffers, ${torch.threads} threads`, torchSec)] : [])].join('\n');
  const pct = (x) => `${(x * 100).toFixed(1)}%`;
  const peakShares = (ts) => {
    const shares = ts.map((x) => (flops * R) / x.ours / 1e9 / x.torchInfo.sgemmGflops);
    return `${shares.map(pct).join(', ')} (median ${pct(median(shares))})`;
  };
  const e2eTable = e2eRows(e2e);
  const speedup = e2e.native && e2e.wasm ? e2e.wasm.seconds / e2e.native.seconds : undefined;
  sections.push(`## gaussian-deeplinear (R = ${R} replicas, b = ${b}, widths ${widths.join('-')})

One step = fresh Gaussian batches for every replica, stochastic and full gradients of both layers,
their across-run moments (and those of g - grad L), the population loss, and the SGD update:
${(flops / 1e6).toFixed(1)} MFLOP per replica-step (the products of both codes are the same).

| code | time per step (median) | replica-steps/s | GFLOP/s | ratio to PyTorch |
|---|---|---|---|---|
${table}

${timed.length ? `sgd-lab ${rows[0]?.backend} and PyTorch ran alternately (each first in every other round), ${timed.length} rounds of 10 steps each (medians of the
round medians above); ratio per round: ${roundRatios(timed)}.
` : ''}
Machine float32 GEMM peak, measured the same way (torch.mm 1024^3 on ${torch?.threads ?? '?'} threads, OpenMP OpenBLAS), in each round:
${timed.map((x) => x.torchInfo.sgemmGflops.toFixed(0)).join(', ')} GFLOP/s (**${torch ? median(timed.map((x) => x.torchInfo.sgemmGflops)).toFixed(0) : '?'} GFLOP/s** median).
${timed.length ? `The ${rows[0]?.backend} step's share of that peak, per round (its GFLOP/s over the peak measured in the same round):
${peakShares(timed)}. Target: >= 50%.` : ''} Targets: wasm ratio >= 0.15; native ratio >= 0.9.

On native the Gaussian batches are drawn in the addon, 8 runs' streams at a time in SIMD lanes
(equal to the bit to the JavaScript streams), and the step is one fused call (\`DEEP_LINEAR_STEP\`,
a replica at a time in cache) that also computes the run-block moments of g, grad L and g - grad L,
each run block's right after its replicas, and then, told the learning rate by the loop as a study
is, that block's SGD update, so the gradients never leave the addon. \`SGD_LAB_FUSED_STEP=0\` runs
the composed TensorFlow.js ops instead (with the moments as a separate kernel, \`RUN_BLOCK_MOMENTS\`,
and the update as \`AXPY\`).

Where the ${profiled} step spends its time (V8 CPU profile of 13 steps, self time; addon calls are
inside the kernel functions of kernels.js):

| TensorFlow.js kernel (wasm time by caller) | share |
|---|---|
${prof && prof.kernels.length ? prof.kernels.map(([k, v]) => `| ${k} | ${pct(v)} |`).join('\n') : '| (none: native kernels are listed below) | |'}

| function | share |
|---|---|
${prof ? prof.functions.map(([k, v]) => `| ${k.replace(/\|/g, '/')} | ${pct(v)} |`).join('\n') : ''}

End to end, \`sgd-lab run gaussian-deeplinear --preset cpu\` (target: peak RSS < 2 GiB; native at
least 3x faster than wasm):

| backend | time | peak RSS | exit |
|---|---|---|---|
${e2eTable}
${speedup ? `\nnative is **${speedup.toFixed(1)}x** faster than wasm end to end.\n` : ''}`);
}

async function benchMnist(sections) {
  const R = 8;
  const b = 128;
  const widths = [784, 256, 128, 10];
  say(`mnist-mlp: cpu preset step, R = ${R}, b = ${b}, widths ${widths.join('-')}`);
  const script = join(root, 'tools', 'bench', 'mnist-step.mjs');
  const rows = [];
  const step = (backend) => {
    const r = spawnSync(process.execPath, [script, backend, String(R), String(b), String(stepsFor(backend, 60)), '5', widths.join('-')], { encoding: 'utf8', env: backendEnv(backend) });
    if (r.status !== 0) {
      say(`  ${backend}: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    say(`  ${out.backend}: ${fmt(median(out.seconds))} per step`);
    return out;
  };
  const backends = await cpuBackends();
  // The fastest backend against PyTorch in alternating rounds; the others once.
  const paired = pairedRounds(() => step(backends[0]), () => torchPeer('mnist_torch.py', { R, b, widths, steps: 60, warmup: 5 }), shortRounds);
  const { rounds, timed } = paired;
  for (const backend of backends) {
    const out = backend === backends[0] ? rounds[0]?.oursInfo : step(backend);
    if (!out) continue;
    const sec = backend === backends[0] ? median(rounds.map((x) => x.ours)) : median(out.seconds);
    rows.push({ backend: out.backend, name: `sgd-lab ${out.backend} (${out.strategy}${out.simd ? ', SIMD' : ''})`, sec });
  }
  const torch = timed[0]?.torchInfo;
  // The paper's replica (784-1024-512-10, R = 50, b = 128: one arm of Fig. 5 per chunk), native
  // against PyTorch in alternating rounds.
  const paperWidths = [784, 1024, 512, 10];
  const paperR = 50;
  say(`mnist-mlp: paper-size step, R = ${paperR}, b = ${b}, widths ${paperWidths.join('-')}`);
  const paperStep = () => {
    const r = spawnSync(process.execPath, [script, backends[0], String(paperR), String(b), '8', '2', paperWidths.join('-')], { encoding: 'utf8', env: backendEnv(backends[0]) });
    if (r.status !== 0) {
      say(`  ${backends[0]} paper step: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    say(`  ${out.backend} paper step: ${fmt(median(out.seconds))} per step, peak RSS ${out.maxRssMiB.toFixed(0)} MiB`);
    return out;
  };
  const paper = pairedRounds(paperStep, () => torchPeer('mnist_torch.py', { R: paperR, b, widths: paperWidths, steps: 8, warmup: 2 }));
  // Forward and weight-gradient products of every layer, and the backward products of all but the first.
  const layerMacs = paperWidths.slice(1).map((w, i) => paperWidths[i] * w);
  const paperFlops = 2 * b * (2 * layerMacs.reduce((s, x) => s + x, 0) + layerMacs.slice(1).reduce((s, x) => s + x, 0)) * paperR;
  const paperRows = paper.rounds.length
    ? [
        `| sgd-lab ${paper.rounds[0].oursInfo.backend} (${paper.rounds[0].oursInfo.strategy}) | ${fmt(median(paper.rounds.map((x) => x.ours)))} | ${((b * paperR) / median(paper.rounds.map((x) => x.ours))).toFixed(0)} | ${(paperFlops / median(paper.rounds.map((x) => x.ours)) / 1e9).toFixed(1)} | ${paper.timed.length ? (median(paper.timed.map((x) => x.torch)) / median(paper.timed.map((x) => x.ours))).toFixed(2) : '-'} |`,
        ...(paper.timed.length ? [`| PyTorch ${paper.timed[0].torchInfo.torch} CPU, bmm/baddbmm, ${paper.timed[0].torchInfo.threads} threads | ${fmt(median(paper.timed.map((x) => x.torch)))} | ${((b * paperR) / median(paper.timed.map((x) => x.torch))).toFixed(0)} | ${(paperFlops / median(paper.timed.map((x) => x.torch)) / 1e9).toFixed(1)} | 1.00 |`] : []),
      ].join('\n')
    : '';
  const e2e = {};
  for (const backend of rows.map((r) => r.backend).filter((x) => x === 'native' || x === 'wasm')) {
    say(`  cpu preset end to end on ${backend}...`);
    e2e[backend] = endToEnd('mnist-mlp', backend);
    say(`  ${backend}: ${fmt(e2e[backend].seconds)}, peak RSS ${e2e[backend].maxRssMiB.toFixed(0)} MiB, exit ${e2e[backend].code}`);
  }
  const torchSec = timed.length ? median(timed.map((x) => x.torch)) : undefined;
  // The products of forward and backward (as for the paper size below), against the GEMM peak
  // the PyTorch peer measured in the same round.
  const cpuMacs = widths.slice(1).map((w, i) => widths[i] * w);
  const cpuFlops = 2 * b * (2 * cpuMacs.reduce((s, x) => s + x, 0) + cpuMacs.slice(1).reduce((s, x) => s + x, 0)) * R;
  const peaks = timed.map((x) => x.torchInfo.sgemmGflops).filter((x) => Number.isFinite(x));
  const peakLine = peaks.length
    ? `Machine float32 GEMM peak in each round (torch.mm 1024^3 on ${torch.threads} threads, measured by the PyTorch peer): ${peaks.map((x) => x.toFixed(0)).join(', ')} GFLOP/s. Share of it per round, sgd-lab ${rows[0]?.backend}: ${timed.map((x) => `${((100 * cpuFlops) / x.ours / 1e9 / x.torchInfo.sgemmGflops).toFixed(0)}%`).join(', ')}; PyTorch: ${timed.map((x) => `${((100 * cpuFlops) / x.torch / 1e9 / x.torchInfo.sgemmGflops).toFixed(0)}%`).join(', ')}.`
    : '';
  const line = (name, sec) => `| ${name} | ${fmt(sec)} | ${(b / sec).toFixed(0)} | ${(cpuFlops / sec / 1e9).toFixed(1)} | ${torchSec ? (torchSec / sec).toFixed(2) : '-'} |`;
  const table = [...rows.map((r) => line(r.name, r.sec)), ...(torchSec ? [line(`PyTorch ${torch.torch} CPU, bmm/baddbmm, ${torch.threads} threads`, torchSec)] : [])].join('\n');
  const e2eTable = e2eRows(e2e);
  const speedup = e2e.native && e2e.wasm ? e2e.wasm.seconds / e2e.native.seconds : undefined;
  sections.push(`## mnist-mlp (cpu preset step: R = ${R} replicas, b = ${b}, widths ${widths.join('-')})

One step = the epoch-shuffled batch of every replica, forward and hand-written backward of the
MLP, the across-run moments of all six gradient blocks, and the SGD update: ${(cpuFlops / R / 1e6).toFixed(0)} MFLOP of products
per replica-step. On native the forward and backward passes are one call (\`MLP_STEP\`), a replica
at a time on each thread from its first product to its last weight gradient, which also computes
the run-block moments and, told the learning rate by the loop as a study is, the SGD update
(\`SGD_LAB_FUSED_STEP=0\`: the composed kernels, each split over the threads).

| code | time per step (median) | samples/s per replica | GFLOP/s | ratio to PyTorch |
|---|---|---|---|---|
${table}

${timed.length ? `sgd-lab ${rows[0]?.backend} and PyTorch ran alternately (each first in every other round), ${timed.length} rounds of 60 steps each (medians of the
round medians above); ratio per round: ${roundRatios(timed)}. Target: native ratio >= 1.3.
${peakLine}
` : ''}
${paperRows ? `The paper's replica step (widths ${paperWidths.join('-')}, R = ${paperR}, b = ${b}; ${(paperFlops / paperR / 1e6).toFixed(0)} MFLOP per replica-step, the
products of forward and backward):

| code | time per step (median) | samples/s (all replicas) | GFLOP/s | ratio to PyTorch |
|---|---|---|---|---|
${paperRows}

${paper.timed.length ? `Alternating rounds of 8 steps; ratio per round: ${roundRatios(paper.timed)}. Peak RSS of the sgd-lab step: ${paper.rounds[0].oursInfo.maxRssMiB.toFixed(0)} MiB.` : ''}
` : ''}
End to end, \`sgd-lab run mnist-mlp --preset cpu\` (embedded MNIST subset when the IDX files are absent):

| backend | time | peak RSS | exit |
|---|---|---|---|
${e2eTable}
${speedup ? `\nnative is **${speedup.toFixed(1)}x** faster than wasm end to end.\n` : ''}`);
}

async function benchXlnet(sections) {
  const R = 4;
  const b = 32;
  const size = { layers: 2, dModel: 64, heads: 4, inner: 256, length: 32, vocab: 2000 };
  const sizeArg = [size.layers, size.dModel, size.heads, size.inner, size.length, size.vocab].join('-');
  say(`yelp-xlnet: cpu preset encoder step, R = ${R}, b = ${b}, ${sizeArg}`);
  const script = join(root, 'tools', 'bench', 'xlnet-step.mjs');
  const rows = [];
  const step = (backend) => {
    const r = spawnSync(process.execPath, [script, backend, String(R), String(b), backend === 'native' ? '8' : '3', '1', sizeArg], { encoding: 'utf8', env: backendEnv(backend) });
    if (r.status !== 0) {
      say(`  ${backend}: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    say(`  ${out.backend}: ${fmt(median(out.seconds))} per step`);
    return out;
  };
  const backends = (await cpuBackends()).filter((x) => x !== 'cpu');
  // The fastest backend against PyTorch in alternating rounds, as the other settings; the others once.
  const { rounds, timed } = pairedRounds(() => step(backends[0]), () => torchPeer('xlnet_torch.py', { R, b, size, steps: 8, warmup: 2 }), shortRounds);
  for (const backend of backends) {
    const out = backend === backends[0] ? rounds[0]?.oursInfo : step(backend);
    if (!out) continue;
    const sec = backend === backends[0] ? median(rounds.map((x) => x.ours)) : median(out.seconds);
    rows.push({ backend: out.backend, name: `sgd-lab ${out.backend} (${out.strategy === 'stacked' ? 'stacked' : 'per replica'}, ${out.backend === 'native' ? 'fused kernels' : 'autodiff'})`, sec, kernels: out.kernels, computeKernels: out.computeKernels });
  }
  const torch = timed[0]?.torchInfo;
  // One paper-size layer (hidden 384, 12 heads, inner 4,096, 128 tokens; a 2,000-token vocabulary
  // so that the layer, not the embedding's update, is timed), native against PyTorch in rounds.
  const paperSize = { layers: 1, dModel: 384, heads: 12, inner: 4096, length: 128, vocab: 2000 };
  const paperR = 2;
  const paperB = 8;
  const paperArg = [paperSize.layers, paperSize.dModel, paperSize.heads, paperSize.inner, paperSize.length, paperSize.vocab].join('-');
  say(`yelp-xlnet: one paper-size layer, R = ${paperR}, b = ${paperB}, ${paperArg}`);
  const paperStep = () => {
    const r = spawnSync(process.execPath, [script, backends[0], String(paperR), String(paperB), '4', '1', paperArg], { encoding: 'utf8', env: backendEnv(backends[0]) });
    if (r.status !== 0) {
      say(`  ${backends[0]} paper layer: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    say(`  ${out.backend} paper layer: ${fmt(median(out.seconds))} per step`);
    return out;
  };
  const paper = pairedRounds(paperStep, () => torchPeer('xlnet_torch.py', { R: paperR, b: paperB, size: paperSize, steps: 4, warmup: 1 }));
  const paperTokens = paperB * paperSize.length;
  const paperOurs = paper.rounds.length ? median(paper.rounds.map((x) => x.ours)) : undefined;
  const paperTorch = paper.timed.length ? median(paper.timed.map((x) => x.torch)) : undefined;
  const paperTable = paperOurs
    ? [
        `| sgd-lab ${paper.rounds[0].oursInfo.backend} (${paper.rounds[0].oursInfo.strategy}) | ${fmt(paperOurs)} | ${(paperTokens / paperOurs).toFixed(0)} | ${paperTorch ? (paperTorch / paperOurs).toFixed(2) : '-'} |`,
        ...(paperTorch ? [`| PyTorch ${paper.timed[0].torchInfo.torch} CPU, autograd, AdamW, ${paper.timed[0].torchInfo.threads} threads | ${fmt(paperTorch)} | ${(paperTokens / paperTorch).toFixed(0)} | 1.00 |`] : []),
      ].join('\n')
    : '';
  const e2e = {};
  const uci = dataDir && existsSync(join(dataDir, 'yelp_labelled_uci', 'yelp_labelled.txt'));
  // End to end on native only: on wasm the cpu preset takes over ten minutes (the step ratio shows why).
  for (const backend of uci ? rows.map((r) => r.backend).filter((x) => x === 'native') : []) {
    say(`  cpu preset end to end on ${backend}...`);
    const r = spawnSync(process.execPath, [join(root, 'tools', 'bench', 'rss.mjs'), 'run', 'yelp-xlnet', '--preset', 'cpu', '--backend', backend, '--data-dir', dataDir, '--out', join(root, 'results', `bench-yelp-xlnet-${backend}`), '--force', '--quiet'], { encoding: 'utf8', maxBuffer: 1 << 26, env: backendEnv(backend) });
    try {
      e2e[backend] = JSON.parse(r.stderr.trim().split('\n').at(-1));
    } catch {
      e2e[backend] = { code: r.status ?? -1, seconds: NaN, maxRssMiB: NaN };
    }
    say(`  ${backend}: ${fmt(e2e[backend].seconds)}, peak RSS ${e2e[backend].maxRssMiB.toFixed(0)} MiB, exit ${e2e[backend].code}`);
  }
  const tokens = b * size.length;
  const torchSec = timed.length ? median(timed.map((x) => x.torch)) : undefined;
  const line = (name, sec, k) => `| ${name} | ${fmt(sec)} | ${(tokens / sec).toFixed(0)} | ${torchSec ? (torchSec / sec).toFixed(2) : '-'} | ${k ? `${k.kernels.toFixed(0)} (${k.computeKernels.toFixed(0)})` : '-'} |`;
  const table = [...rows.map((r) => line(r.name, r.sec, r)), ...(torchSec ? [line(`PyTorch ${torch.torch} CPU, autograd, AdamW, ${torch.threads} threads`, torchSec)] : [])].join('\n');
  const e2eTable = e2eRows(e2e);
  const stepOf = (name) => rows.find((r) => r.backend === name)?.sec;
  const speedup = stepOf('native') && stepOf('wasm') ? stepOf('wasm') / stepOf('native') : undefined;
  sections.push(`## yelp-xlnet (cpu preset encoder: ${size.layers} layers, hidden ${size.dModel}, ${size.heads} heads, inner ${size.inner}, ${size.length} tokens; R = ${R}, b = ${b})

One step = every replica's forward and backward pass on its own batch of ${b} sequences of
${size.length} tokens (a quarter of them left padding), the across-run moments of all 63 blocks,
and the AdamW update with per-matrix clipping. Tokens per second are per replica: ${tokens} tokens
per replica-step, divided by the time of the whole step of ${R} replicas.

| code | time per step (median) | tokens/s per replica | ratio to PyTorch | kernels per replica-step (computing) |
|---|---|---|---|---|
${table}

${timed.length ? `sgd-lab ${rows[0]?.backend} and PyTorch ran alternately (each first in every other round), ${timed.length} rounds of 8 steps each (medians of the
round medians above); ratio per round: ${roundRatios(timed)}. Target: native ratio >= 1.0.
` : ''}
Kernels: the TensorFlow.js kernels of one gradient call (forward and backward of every replica,
by \`tf.profile\`) divided by R; in brackets those that compute (Reshape and Identity move no data).
On native the step is a program of fused kernels with its backward pass written out (no autodiff
tape): between the batched products, the whole attention is one kernel each way (content,
position and segment terms with their biases, relative shift, mask, softmax and the product with
the values, every head, in token-major layout: no head transposes); residual + layer norm; bias +
GELU; the embedding gradient as a scatter-add; the engine's run-block moments are one kernel per
block. (\`SGD_LAB_FUSED_STEP=0\` composes TensorFlow.js ops under autodiff instead, for comparison.)

${paperTable ? `One paper-size layer (hidden ${paperSize.dModel}, ${paperSize.heads} heads, inner ${paperSize.inner}, ${paperSize.length} tokens, vocabulary ${paperSize.vocab}; R = ${paperR}, b = ${paperB}):

| code | time per step (median) | tokens/s per replica | ratio to PyTorch |
|---|---|---|---|
${paperTable}
${paper.timed.length ? `\nAlternately, ${paper.timed.length} rounds of 4 steps; ratio per round: ${roundRatios(paper.timed)}. Target: >= 1.0.\n` : ''}` : ''}
${e2eTable ? `End to end, \`sgd-lab run yelp-xlnet --preset cpu\` on the UCI sentences:

| backend | time | peak RSS | exit |
|---|---|---|---|
${e2eTable}
` : '(UCI sentences not found: no end-to-end run.)'}
${speedup ? `\nPer step, native is **${speedup.toFixed(1)}x** faster than wasm (the wasm end-to-end run, over ten minutes, is left out).\n` : ''}
`);
}

/** Least-squares slope and intercept of log(y) on log(x): the exponent of y ~ x^k. */
function powerFit(points) {
  const xs = points.map((p) => Math.log(p.x));
  const ys = points.map((p) => Math.log(p.y));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  xs.forEach((x, i) => ((sxy += (x - mx) * (ys[i] - my)), (sxx += (x - mx) ** 2)));
  return { k: sxy / sxx, c: my - (sxy / sxx) * mx };
}

/** A log-log line chart as SVG text: one polyline with points per series. */
function logLogSvg(title, xLabel, yLabel, series) {
  const W = 560;
  const H = 360;
  const m = { l: 70, r: 150, t: 30, b: 50 };
  const all = series.flatMap((s) => s.points);
  const lx = all.map((p) => Math.log10(p.x));
  const ly = all.map((p) => Math.log10(p.y));
  const [x0, x1] = [Math.floor(Math.min(...lx)), Math.ceil(Math.max(...lx))];
  const [y0, y1] = [Math.floor(Math.min(...ly)), Math.ceil(Math.max(...ly))];
  const X = (v) => m.l + ((Math.log10(v) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - ((Math.log10(v) - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const ticks = [];
  for (let e = x0; e <= x1; e++) ticks.push(`<line x1="${X(10 ** e)}" x2="${X(10 ** e)}" y1="${H - m.b}" y2="${m.t}" stroke="#ddd"/><text x="${X(10 ** e)}" y="${H - m.b + 16}" font-size="11" text-anchor="middle">1e${e}</text>`);
  for (let e = y0; e <= y1; e++) ticks.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(10 ** e)}" y2="${Y(10 ** e)}" stroke="#ddd"/><text x="${m.l - 6}" y="${Y(10 ** e) + 4}" font-size="11" text-anchor="end">1e${e}</text>`);
  const lines = series.map((s, i) => {
    const pts = s.points.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ');
    const dots = s.points.map((p) => `<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3" fill="${colors[i % 4]}"/>`).join('');
    const last = s.points.at(-1);
    return `<polyline fill="none" stroke="${colors[i % 4]}" stroke-width="2" points="${pts}"/>${dots}<text x="${X(last.x) + 8}" y="${Y(last.y) + 4}" font-size="12" fill="${colors[i % 4]}">${s.name}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="${m.l}" y="18" font-size="14">${title}</text>${ticks.join('')}<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/><text x="${(m.l + W - m.r) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">${xLabel}</text><text x="16" y="${(m.t + H - m.b) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">${yLabel}</text>${lines.join('')}</svg>\n`;
}

/**
 * How cost grows: the per-step time and the peak RSS of the deep-linear and MNIST steps against R
 * (b fixed) and against b (R fixed), each point its own process, with the fitted exponents.
 */
async function benchScaling(sections) {
  const backend = (await cpuBackends())[0];
  const Rs = [8, 16, 32, 64, 128, 256, 512, 1024];
  const bs = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
  const settings = [
    { name: 'gaussian-deeplinear', script: 'deeplinear-step.mjs', fixedB: 64, fixedR: 64, args: () => [] },
    { name: 'mnist-mlp', script: 'mnist-step.mjs', fixedB: 128, fixedR: 64, args: () => ['784-256-128-10'] },
  ];
  say(`scaling: per-step time and peak RSS against R and b on ${backend}`);
  const measure = (s, R, b) => {
    const steps = R * b >= 32768 ? 3 : 6;
    const r = spawnSync(process.execPath, [join(root, 'tools', 'bench', s.script), backend, String(R), String(b), String(steps), '1', ...s.args()], { encoding: 'utf8', maxBuffer: 1 << 24, env: backendEnv(backend) });
    if (r.status !== 0) {
      say(`  ${s.name} R = ${R}, b = ${b}: failed: ${r.stderr.trim().split('\n').at(-1)}`);
      return undefined;
    }
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
    const point = { R, b, seconds: median(out.seconds), rss: out.maxRssMiB };
    say(`  ${s.name} R = ${R}, b = ${b}: ${fmt(point.seconds)} per step, peak RSS ${point.rss.toFixed(0)} MiB`);
    return point;
  };
  // Two passes over the whole grid, minutes apart; each point keeps the faster of its two medians
  // (a burst of load from elsewhere only ever slows a step down) and the larger of its peak RSS.
  const pass = () => settings.map((s) => ({ overR: Rs.map((R) => measure(s, R, s.fixedB)), overB: bs.map((b) => measure(s, s.fixedR, b)) }));
  const passes = [pass(), pass()];
  const better = (a, b) => (a && b ? { ...a, seconds: Math.min(a.seconds, b.seconds), rss: Math.max(a.rss, b.rss) } : (a ?? b));
  const results = settings.map((s, i) => ({
    ...s,
    overR: Rs.map((_, j) => better(passes[0][i].overR[j], passes[1][i].overR[j])).filter(Boolean),
    overB: bs.map((_, j) => better(passes[0][i].overB[j], passes[1][i].overB[j])).filter(Boolean),
  }));
  const fit = (pts, key) => powerFit(pts.map((p) => ({ x: p[key], y: p.seconds })));
  const upper = (pts, key) => pts.filter((p) => p[key] >= 64);
  const svgR = logLogSvg(`seconds per step against R (${backend})`, 'replicas R', 'seconds per step', results.map((r) => ({ name: `${r.name.split('-')[1]} b=${r.fixedB}`, points: r.overR.map((p) => ({ x: p.R, y: p.seconds })) })));
  const svgB = logLogSvg(`seconds per step against b (${backend})`, 'batch size b', 'seconds per step', results.map((r) => ({ name: `${r.name.split('-')[1]} R=${r.fixedR}`, points: r.overB.map((p) => ({ x: p.b, y: p.seconds })) })));
  const memR = logLogSvg(`peak RSS against R (${backend})`, 'replicas R', 'peak RSS, MiB', results.map((r) => ({ name: `${r.name.split('-')[1]} b=${r.fixedB}`, points: r.overR.map((p) => ({ x: p.R, y: p.rss })) })));
  const memB = logLogSvg(`peak RSS against b (${backend})`, 'batch size b', 'peak RSS, MiB', results.map((r) => ({ name: `${r.name.split('-')[1]} R=${r.fixedR}`, points: r.overB.map((p) => ({ x: p.b, y: p.rss })) })));
  mkdirSync(join(root, 'docs', 'bench'), { recursive: true });
  writeFileSync(join(root, 'docs', 'bench', 'scaling-R.svg'), svgR);
  writeFileSync(join(root, 'docs', 'bench', 'scaling-b.svg'), svgB);
  writeFileSync(join(root, 'docs', 'bench', 'memory-R.svg'), memR);
  writeFileSync(join(root, 'docs', 'bench', 'memory-b.svg'), memB);
  const table = (r, pts, key) =>
    [`| ${key} | ${pts.map((p) => p[key]).join(' | ')} |`, `|---|${pts.map(() => '---').join('|')}|`, `| s/step | ${pts.map((p) => fmt(p.seconds)).join(' | ')} |`, `| per replica-step | ${pts.map((p) => `${((p.seconds / p.R) * 1e3).toFixed(2)} ms`).join(' | ')} |`, `| peak RSS | ${pts.map((p) => `${p.rss.toFixed(0)} MiB`).join(' | ')} |`].join('\n');
  const exps = results.map((r) => {
    const all = fit(r.overR, 'R');
    const hi = fit(upper(r.overR, 'R'), 'R');
    const bAll = fit(r.overB, 'b');
    const bHi = fit(upper(r.overB, 'b'), 'b');
    const mem = powerFit(upper(r.overR, 'R').map((p) => ({ x: p.R, y: p.rss - r.overR[0].rss + 1 })));
    return `| ${r.name} | ${all.k.toFixed(2)} | ${hi.k.toFixed(2)} | ${bAll.k.toFixed(2)} | ${bHi.k.toFixed(2)} | ${mem.k.toFixed(2)} |`;
  });
  sections.push(`## scaling (how cost grows with R and b, on ${backend})

Each point is its own process: the setting's step (as in the sections above) at R replicas and
batch size b, the median of 3 to 6 steps after one warm-up, and the peak RSS of that process;
measured in two passes over the grid, each point the faster of its two medians (load from
elsewhere only slows a step down).
Deep linear: widths 64-256-128; MNIST: 784-256-128-10 on the embedded digits.

${results.map((r) => `### ${r.name}: against R (b = ${r.fixedB})

${table(r, r.overR, 'R')}

### ${r.name}: against b (R = ${r.fixedR})

${table(r, r.overB, 'b')}`).join('\n\n')}

Fitted exponents k of seconds per step ~ x^k (least squares on log-log; "from 64": the points with
x >= 64, where per-call overheads no longer dominate):

| setting | k in R, all | k in R, from 64 | k in b, all | k in b, from 64 | memory above R = 8, k in R from 64 |
|---|---|---|---|---|---|
${exps.join('\n')}

![seconds per step against R](docs/bench/scaling-R.svg)
![seconds per step against b](docs/bench/scaling-b.svg)
![peak RSS against R](docs/bench/memory-R.svg)
![peak RSS against b](docs/bench/memory-b.svg)
`);
}

/** `npm start` (every cpu preset and Fig. 2(b)) on this machine: each study's time and the total. */
async function benchStart(sections) {
  say('npm start: every cpu preset and Fig. 2(b) (tools/start.mjs, the build already done)...');
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(root, 'tools', 'start.mjs')], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...peerEnv(), SGD_LAB_PROGRESS_SECONDS: '60' }, cwd: root });
  const total = (performance.now() - t0) / 1000;
  const studies = [...r.stderr.matchAll(/^(\S+): (completed|exit \d+) in (.+)$/gm)].map((m) => `| ${m[1]} | ${m[2]} | ${m[3]} |`);
  say(`  npm start: exit ${r.status}, ${fmt(total)} (${studies.length} studies)`);
  const min = Math.floor(total / 60);
  sections.push(`## npm-start (the main job: every setting at its cpu preset, and Fig. 2(b))

\`tools/start.mjs\` as \`npm start\` runs it (after its build), with the default backend (\`auto\`:
native here): exit ${r.status}, **${min} min ${String(Math.round(total - 60 * min)).padStart(2, '0')} s** in total (target: <= 10 min on 2 cores).

| study | status | time |
|---|---|---|
${studies.join('\n')}
`);
}

const sections = [];
if (wanted('linreg')) await benchLinreg(sections);
if (wanted('mnist')) await benchMnist(sections);
if (wanted('deeplinear')) await benchDeepLinear(sections);
if (wanted('xlnet')) await benchXlnet(sections);
if (wanted('reads')) await benchReads(sections);
if (wanted('scaling')) await benchScaling(sections);
if (wanted('start')) await benchStart(sections);
// With --only, the other sections of the existing file stay as they were (their own earlier run).
const keyOf = (section) => /^## (\S+)/.exec(section)?.[1];
const kept = [];
let keptFrom = '';
// The gpu section comes from the device check (tools/device), never from this machine: always kept.
const measuredElsewhere = (key) => key === 'gpu';
if ((only.size > 0 || /^## gpu\b/m.test(existsSync(values.out) ? readFileSync(values.out, 'utf8') : '')) && existsSync(values.out)) {
  const fresh = new Set(sections.map(keyOf));
  const previous = readFileSync(values.out, 'utf8');
  const old = previous.split(/^(?=## )/m).slice(1).filter((sec) => only.size > 0 || measuredElsewhere(keyOf(sec)));
  // Where a kept section was measured: its own line, else the previous file's header.
  keptFrom = /^Written by `npm run bench` on (.+?)\.?\n?Peers/ms.exec(previous)?.[1]?.replace(/\n/g, ' ') ?? 'an earlier run';
  for (const sec of old) {
    if (fresh.has(keyOf(sec))) continue;
    const text = sec.trimEnd() + '\n';
    kept.push(/^_Measured on /m.test(text) ? text : text.replace(/^(## .*\n)/, `$1\n_Measured on ${keptFrom}._\n`));
  }
}
// Every section says where it was measured, so that --only runs can mix sections honestly.
const stamp = `_Measured on ${new Date().toISOString().slice(0, 10)}; machine: ${machine()}._`;
for (let i = 0; i < sections.length; i++) sections[i] = sections[i].replace(/^(## .*\n)/, `$1\n${stamp}\n`);
const order = ['admission-linreg', 'mnist-mlp', 'gaussian-deeplinear', 'yelp-xlnet', 'reads', 'scaling', 'npm-start', 'gpu'];
const allSections = [...sections, ...kept].sort((a, b) => order.indexOf(keyOf(a)) - order.indexOf(keyOf(b)));
const native = await nativeInfo();
const text = `# Benchmarks

Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}; machine: ${machine()}.
Peers run in the same invocation, one after the other. Every command that calls OpenBLAS (the
numpy and PyTorch peers and sgd-lab's \`native\` backend) runs with \`OPENBLAS_CORETYPE\` and
\`OPENBLAS_L2_SIZE\` unset for that command only; PyTorch on Debian's OpenMP build of OpenBLAS,
the native addon on the pthreads build it links${native ? ` (${native.blas}, ${native.blasThreads} threads)` : ''}.
Read the ratios: absolute times on this shared machine move by 20% or more between runs.

What each peer process loaded (BLAS, LAPACK and OpenMP libraries from its \`/proc/self/maps\`;
a ratio is printed only against a peer on the BLAS it is meant to use):

${[...loaded].map(([peer, libs]) => `- ${peer}: ${libs.join('; ') || 'none found'}`).join('\n') || '- (no peer ran)'}
${[...withheld].map(([peer, why]) => `\n**${peer} ratios withheld:** ${why}. Install \`libopenblas0-openmp\` (the bench does, as root) and run it again.`).join('')}

${only.size > 0 && kept.length ? `This run (\`--only ${[...only].join(' --only ')}\`) rewrote ${sections.map(keyOf).join(', ')}; the sections ${kept.map(keyOf).join(', ')} are kept from earlier runs (each says where it was measured; their peers' library lines are in the file's git history).\n\n` : ''}${allSections.join('\n')}`;
writeFileSync(values.out, text);
say(`wrote ${values.out}`);
