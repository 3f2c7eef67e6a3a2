#!/usr/bin/env node
/**
 * The GPU check: on a machine with a GPU (the lent H200, run by tools/device/check.sh from the
 * kit tools/device/pack.mjs builds), in one go and side by side with PyTorch on the same GPU:
 *
 * 1. the webgpu backend's adapter, and the kernel agreement checks (each WGSL kernel and the
 *    batched product against float64 references, within float32 error bounds);
 * 2. the deep-linear paper step (R = 1,000, b = 64, 64-256-128), the MNIST paper-size replica
 *    step (784-1024-512-10, R = 50, b = 128) and one paper-size XLNet layer (hidden 384, 12 heads,
 *    inner 4,096, 128 tokens), each on webgpu and in its PyTorch peer (tools/bench/*_torch.py with
 *    device "cuda"), in alternating rounds, with the ratio per round; and webgpu without the WGSL
 *    kernels once, to show what they bring;
 * 3. `sgd-lab plan` of Fig. 5's b = 128 arm (paper-loss: 100 runs x 1,000 epochs) on webgpu;
 *
 * and writes OUT/gpu.json (everything) and OUT/gpu-section.md (the "gpu" section of
 * BENCHMARKS.md; `node tools/device/merge.mjs OUT/gpu-section.md` puts it there).
 *
 *   node tools/device/gpu-check.mjs --out DIR [--smoke] [--python python3] [--device cuda|cpu]
 *        [--rounds 3] [--steps N] [--budget-s 420] [--data-dir DIR]
 *
 * --smoke: the same sequence at the smallest sizes and one step (what npm test runs on llvmpipe,
 * with the peers on the CPU). --steps N times N steps per round instead of 10 (5 for XLNet), e.g. a
 * paper-size dry run on a slow adapter. Exit code: 0 when the agreement checks pass and every part ran, 1
 * when a check failed, 2 when no WebGPU adapter was found, 3 when a part was skipped or failed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    python: { type: 'string', default: 'python3' },
    device: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string' },
    'budget-s': { type: 'string', default: '420' },
    'data-dir': { type: 'string', default: process.env.SGD_LAB_DATA_DIR ?? join(root, 'data') },
  },
});
if (!values.out) {
  process.stderr.write('usage: node tools/device/gpu-check.mjs --out DIR [--smoke] [--python python3] [--device cuda|cpu] [--rounds 3] [--steps N] [--budget-s 420] [--data-dir DIR]\n');
  process.exit(64);
}
const out = resolve(values.out);
mkdirSync(out, { recursive: true });
const smoke = values.smoke;
const rounds = smoke ? 1 : Math.max(1, Number(values.rounds));
const deadline = Date.now() + Number(values['budget-s']) * 1000;
const started = Date.now();
const say = (s) => process.stdout.write(`${s}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ms = (s) => (s === undefined ? '-' : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);
const report = { date: new Date().toISOString(), smoke, machine: `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`, parts: {}, problems: [] };
const problem = (s) => {
  report.problems.push(s);
  say(`  problem: ${s}`);
};
const save = () => writeFileSync(join(out, 'gpu.json'), JSON.stringify(report, null, 2) + '\n');

/** Last JSON line of a child's stdout, or an error naming the command and its last stderr line. */
function runJson(cmd, args, { input, env, timeoutS }) {
  const left = Math.max(5, Math.min(timeoutS, (deadline - Date.now()) / 1000));
  const r = spawnSync(cmd, args, { input, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26, timeout: left * 1000, cwd: root });
  if (r.status === 0) {
    // One JSON document (the planner prints it indented) or JSON on the last line.
    for (const text of [r.stdout, r.stdout.trim().split('\n').at(-1)]) {
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch {
        /* the next reading */
      }
    }
  }
  const why = r.error?.code === 'ETIMEDOUT' ? `timed out after ${left.toFixed(0)} s` : r.error?.message ?? (r.signal ? `killed by ${r.signal} after ${left.toFixed(0)} s` : (r.stderr || r.stdout || '').trim().split('\n').filter((l) => !/^Warning:|^\s*$/.test(l)).at(-1) ?? `exit ${r.status}`);
  const label = [cmd, ...args.slice(0, 2)].map((a) => (a.length > 60 ? `${a.slice(0, 40)}...` : a)).join(' ');
  return { ok: false, why: `${label}: ${why}` };
}

// 1. The adapter, in this process, and the agreement checks on it.
const { probeWebGpu, useBackend, kernelAgreement, describeAdapter } = await import('@sgd-lab/tensor');
const probe = await probeWebGpu();
if (!probe.ok) {
  report.parts.adapter = { ok: false, reason: probe.reason };
  problem(`no WebGPU adapter: ${probe.reason}`);
  save();
  writeFileSync(join(out, 'gpu-section.md'), section());
  process.exit(2);
}
await useBackend('webgpu', (m) => say(`  ${m}`));
report.parts.adapter = { ok: true, ...probe.info };
say(describeAdapter(probe.info));
if (probe.info.software && !smoke) problem(`the adapter is a software rasterizer (${probe.info.device}): these are not GPU numbers`);
const checks = await kernelAgreement();
report.parts.agreement = checks;
const failed = checks.filter((c) => !c.ok);
say(`agreement: ${checks.length - failed.length}/${checks.length} within their float32 bounds (worst ${Math.max(...checks.map((c) => c.worstOverBound)).toFixed(3)} of its bound)`);
for (const c of failed) problem(`agreement check failed: ${c.name} (error ${c.maxAbsError.toExponential(2)}, ${c.worstOverBound.toFixed(2)}x its bound)`);

// The PyTorch peer's device: CUDA where torch sees it, else the CPU (and the table says so).
const torchProbe = runJson(values.python, ['-c', 'import json, torch; c = torch.cuda.is_available(); print(json.dumps({"torch": torch.__version__, "cuda": c, "device": torch.cuda.get_device_name() if c else None, "cudaVersion": torch.version.cuda}))'], { timeoutS: 120 });
const peerDevice = values.device ?? (torchProbe.ok && torchProbe.value.cuda ? 'cuda' : 'cpu');
report.parts.torch = torchProbe.ok ? { ...torchProbe.value, peerDevice } : { unavailable: torchProbe.why };
if (!torchProbe.ok) problem(`PyTorch peer unavailable: ${torchProbe.why}`);
else say(`PyTorch ${torchProbe.value.torch} on ${peerDevice}${torchProbe.value.device ? ` (${torchProbe.value.device})` : ''}`);
if (!smoke && peerDevice !== 'cuda') problem('PyTorch runs on the CPU here: the ratios are not GPU against GPU');

// 2. The steps.
const CASES = [
  {
    id: 'deeplinear',
    what: smoke ? 'deep-linear step (R = 8, b = 4, 64-256-128)' : 'deep-linear paper step (R = 1,000, b = 64, 64-256-128)',
    ours: (steps) => ['tools/bench/deeplinear-step.mjs', 'webgpu', smoke ? '8' : '1000', smoke ? '4' : '64', String(steps), '1'],
    peer: 'tools/bench/deeplinear_torch.py',
    peerInput: (steps) => ({ R: smoke ? 8 : 1000, b: smoke ? 4 : 64, widths: [64, 256, 128], steps, warmup: 1 }),
    steps: smoke ? 1 : 10,
  },
  {
    id: 'mnist',
    what: smoke ? 'MNIST step (R = 4, b = 16, 784-32-10)' : 'MNIST paper-size replica step (R = 50, b = 128, 784-1024-512-10)',
    ours: (steps) => ['tools/bench/mnist-step.mjs', 'webgpu', smoke ? '4' : '50', smoke ? '16' : '128', String(steps), '1', smoke ? '784-32-10' : '784-1024-512-10'],
    peer: 'tools/bench/mnist_torch.py',
    peerInput: (steps) => ({ R: smoke ? 4 : 50, b: smoke ? 16 : 128, widths: smoke ? [784, 32, 10] : [784, 1024, 512, 10], steps, warmup: 1 }),
    steps: smoke ? 1 : 10,
  },
  {
    id: 'xlnet',
    what: smoke ? 'XLNet layer (R = 2, b = 2, hidden 32, 2 heads, inner 64, 16 tokens)' : 'XLNet paper-size layer (R = 4, b = 32, hidden 384, 12 heads, inner 4,096, 128 tokens, 32,000 words)',
    size: smoke ? { layers: 1, dModel: 32, heads: 2, inner: 64, length: 16, vocab: 500 } : { layers: 1, dModel: 384, heads: 12, inner: 4096, length: 128, vocab: 32000 },
    ours(steps) {
      const s = this.size;
      return ['tools/bench/xlnet-step.mjs', 'webgpu', smoke ? '2' : '4', smoke ? '2' : '32', String(steps), '1', [s.layers, s.dModel, s.heads, s.inner, s.length, s.vocab].join('-')];
    },
    peer: 'tools/bench/xlnet_torch.py',
    peerInput(steps) {
      return { R: smoke ? 2 : 4, b: smoke ? 2 : 32, size: this.size, steps, warmup: 1 };
    },
    steps: smoke ? 1 : 5,
  },
];

report.parts.steps = [];
for (const c of CASES) {
  if (values.steps) c.steps = Math.max(1, Number(values.steps));
  if (Date.now() > deadline) {
    problem(`${c.what}: skipped, the time budget was spent`);
    continue;
  }
  say(c.what);
  const entry = { id: c.id, what: c.what, rounds: [] };
  report.parts.steps.push(entry);
  for (let i = 0; i < rounds && Date.now() < deadline; i++) {
    const ours = runJson(process.execPath, c.ours(c.steps), { timeoutS: 240 });
    const peer = torchProbe.ok ? runJson(values.python, [c.peer], { input: JSON.stringify({ ...c.peerInput(c.steps), device: peerDevice }), env: { PYTHONPATH: join(root, 'tools', 'bench') }, timeoutS: 240 }) : undefined;
    const round = { webgpu: ours.ok ? median(ours.value.seconds) : undefined, torch: peer?.ok ? median(peer.value.seconds) : undefined };
    if (!ours.ok) problem(`${c.id} on webgpu: ${ours.why}`);
    if (peer && !peer.ok) problem(`${c.id} in PyTorch: ${peer.why}`);
    if (peer?.ok) entry.torchInfo = { device: peer.value.device, torch: peer.value.torch, cuda: peer.value.runtime?.cuda, sgemmGflops: peer.value.sgemmGflops };
    round.ratio = round.webgpu && round.torch ? round.torch / round.webgpu : undefined;
    entry.rounds.push(round);
    say(`  round ${i + 1}: webgpu ${ms(round.webgpu)}, PyTorch ${ms(round.torch)}${round.ratio ? `, PyTorch/webgpu ${round.ratio.toFixed(2)}` : ''}`);
    if (!ours.ok) break;
  }
  if (c.id !== 'xlnet' && Date.now() < deadline) {
    const plain = runJson(process.execPath, c.ours(c.steps), { env: { SGD_LAB_WEBGPU_KERNELS: '0' }, timeoutS: 240 });
    if (plain.ok) {
      entry.withoutKernels = median(plain.value.seconds);
      say(`  without the WGSL kernels: ${ms(entry.withoutKernels)}`);
    } else problem(`${c.id} on webgpu without the WGSL kernels: ${plain.why}`);
  }
  save();
}

// 3. What Fig. 5's b = 128 arm costs on this GPU, by the planner's own calibration.
if (Date.now() < deadline) {
  const args = smoke
    ? ['plan', 'mnist-mlp', '--preset', 'smoke', '--set', 'batchSizes=[32]']
    : ['plan', 'mnist-mlp', '--preset', 'paper-loss', '--set', 'batchSizes=[128]', '--data-dir', values['data-dir']];
  say(`sgd-lab ${args.join(' ')} --backend webgpu`);
  const plan = runJson(process.execPath, [join(root, 'packages', 'core', 'bin', 'sgd-lab.js'), ...args, '--backend', 'webgpu', '--json'], { timeoutS: 300 });
  if (plan.ok) {
    const p = plan.value;
    const arm = p.perBatchSize?.[0];
    report.parts.plan = { study: p.study, runs: p.runs, replicaSteps: p.replicaSteps, seconds: p.seconds, hours: p.seconds / 3600, step: arm?.timing?.step, replicas: arm?.timing?.replicas, chunkSize: p.chunkSize };
    say(`  projected ${(p.seconds / 3600).toFixed(2)} h (${p.replicaSteps.toLocaleString('en-US')} replica-steps; a step of ${arm?.timing?.replicas} replicas ${ms(arm?.timing?.step)})`);
  } else problem(`sgd-lab plan: ${plan.why}`);
} else problem('sgd-lab plan: skipped, the time budget was spent');

report.seconds = (Date.now() - started) / 1000;
save();
writeFileSync(join(out, 'gpu-section.md'), section());
say(`wrote ${join(out, 'gpu-section.md')} and gpu.json in ${report.seconds.toFixed(0)} s`);
process.exit(failed.length > 0 ? 1 : report.problems.length > 0 && !smoke ? 3 : 0);

/** The "gpu" section of BENCHMARKS.md from what was measured. */
function section() {
  const a = report.parts.adapter;
  const lines = [`## gpu (the device check, tools/device: webgpu against PyTorch on the same machine${smoke ? '; smoke sizes' : ''})`, ''];
  lines.push(`_Measured on ${report.date.slice(0, 10)}; machine: ${report.machine}, by tools/device/check.sh._`, '');
  if (!a?.ok) {
    lines.push('', `No WebGPU adapter: ${a?.reason ?? 'not probed'}.`, '');
    return lines.join('\n') + '\n';
  }
  const t = report.parts.torch;
  lines.push(`WebGPU adapter: ${a.device} (${a.description}; ${a.vendor ? `vendor ${a.vendor}, ` : ''}Dawn ${a.dawnBackend}, ${a.featureLevel}, ${a.software ? 'software' : 'hardware'}). PyTorch: ${t?.unavailable ? `unavailable (${t.unavailable})` : `${t.torch} on ${t.peerDevice}${t.device ? ` (${t.device}, CUDA ${t.cudaVersion})` : ''}`}.`, '');
  const ag = report.parts.agreement ?? [];
  lines.push(`Kernel agreement (float32 on the device against float64 references; a check passes when every element is within its error bound): ${ag.filter((c) => c.ok).length} of ${ag.length} pass.`, '');
  lines.push('| check | elements | largest error | worst error / bound |', '|---|---|---|---|');
  for (const c of ag) lines.push(`| ${c.name} | ${c.elements.toLocaleString('en-US')} | ${c.maxAbsError.toExponential(2)} | ${c.worstOverBound.toFixed(3)}${c.ok ? '' : ' **fails**'} |`);
  lines.push('', 'Steps (median seconds per step of each round; ratio = PyTorch time / webgpu time, above 1 means webgpu is faster):', '');
  lines.push('| step | webgpu | PyTorch | ratio per round | webgpu without the WGSL kernels |', '|---|---|---|---|---|');
  for (const s of report.parts.steps ?? []) {
    const w = s.rounds.map((r) => r.webgpu).filter((x) => x !== undefined);
    const p = s.rounds.map((r) => r.torch).filter((x) => x !== undefined);
    const r = s.rounds.map((x) => x.ratio).filter((x) => x !== undefined);
    lines.push(`| ${s.what} | ${w.length ? ms(median(w)) : 'failed'} | ${p.length ? ms(median(p)) : '-'} | ${r.length ? `${r.map((x) => x.toFixed(2)).join(', ')} (median ${median(r).toFixed(2)})` : '-'} | ${s.withoutKernels === undefined ? '-' : ms(s.withoutKernels)} |`);
  }
  const p = report.parts.plan;
  if (p) lines.push('', `\`sgd-lab plan\` of ${smoke ? 'the smoke preset (b = 32)' : "Fig. 5's b = 128 arm (paper-loss, 100 runs x 1,000 epochs)"} on webgpu: ${p.replicaSteps.toLocaleString('en-US')} replica-steps, projected **${p.hours.toFixed(2)} GPU-hours** (a step of ${p.replicas} replicas took ${ms(p.step)} in its calibration).`);
  if (report.problems.length) lines.push('', 'Problems:', '', ...report.problems.map((x) => `- ${x}`));
  lines.push('', `The check took ${(report.seconds ?? (Date.now() - started) / 1000).toFixed(0)} s.`, '');
  return lines.join('\n') + '\n';
}
