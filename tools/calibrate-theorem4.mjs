#!/usr/bin/env node
/**
 * `npm run calibrate:theorem4`: size and power of the Theorem 4 test (no constant term in 1/b) on
 * synthetic variances and on deep-linear Monte Carlo. Writes docs/calibration-theorem4.md. Needs
 * `npm run build` first. Seeded: the report is reproducible.
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { RandomStream } from '@sgd-lab/core';
import { collectStudy } from '@sgd-lab/core/testing';
import plugin, { DEFAULT_CONSTANT_TEST, T99_BATCH_SIZES, constantTermAt, drawT99, judgeConstant } from '@sgd-lab/plugin-deeplinear';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const draws = Number(process.env.CALIBRATE_DRAWS ?? 4000);
const studies = Number(process.env.CALIBRATE_STUDIES ?? 100);
const alpha = 0.05;
const started = performance.now();

function synthetic(ratio, batchSizes, options) {
  const rng = new RandomStream([2021, 4, Math.round(ratio * 1e4), batchSizes.length, options.minDegree, options.maxDegree]);
  const out = { holds: 0, fails: 0, inconclusive: 0 };
  for (let i = 0; i < draws; i++) {
    const step = { ...constantTermAt(drawT99(rng, ratio, batchSizes), alpha, options), step: 99, initPoint: 0 };
    out[judgeConstant([step], alpha, options, 128).verdict]++;
  }
  return out;
}

const designs = [
  { name: '7 b (1..64), degree 5 (the rule)', bs: T99_BATCH_SIZES, o: DEFAULT_CONSTANT_TEST },
  { name: '7 b, degree 3 (the old rule)', bs: T99_BATCH_SIZES, o: { ...DEFAULT_CONSTANT_TEST, maxDegree: 3 } },
  { name: '5 b (1, 2, 4, 16, 64), degree 3', bs: [1, 2, 4, 16, 64], o: DEFAULT_CONSTANT_TEST },
];
const ratios = [0, 0.001, 0.003, 0.01, 0.1];
const rows = [];
for (const d of designs) for (const r of ratios) {
  const v = synthetic(r, d.bs, d.o);
  rows.push({ design: d.name, ratio: r, ...v });
  process.stderr.write(`${d.name} c0/c1=${r}: ${JSON.stringify(v)}\n`);
}

const mc = { holds: 0, fails: 0, inconclusive: 0 };
for (let seed = 1; seed <= studies; seed++) {
  const { claims } = await collectStudy(plugin, { preset: 'smoke', seed: 1000 + seed, runs: 128 });
  mc[claims.find((c) => c.id === 'grad-variance-no-constant-term').verdict]++;
}
process.stderr.write(`deep-linear MC: ${JSON.stringify(mc)}\n`);
const seconds = (performance.now() - started) / 1000;

const share = (k, n) => (k / n).toFixed(3);
const se = (n) => Math.sqrt((alpha * (1 - alpha)) / n).toFixed(3);
const lines = [
  '# Calibration of the Theorem 4 test',
  '',
  `Written by \`npm run calibrate:theorem4\` (tools/calibrate-theorem4.mjs) on ${new Date().toISOString().slice(0, 10)}, fixed seeds, ${seconds.toFixed(0)} s, alpha = ${alpha}, margin delta = ${DEFAULT_CONSTANT_TEST.margin}. The test is described in [statistics.md](statistics.md#theorem-4-no-constant-term).`,
  '',
  '## Synthetic variances',
  '',
  `${draws.toLocaleString('en')} draws per row of the seven records of the deep-linear \`cpu\` preset at t = 99 (the degree-4 no-constant fit of a 128-run study and its records' log standard errors, which are themselves redrawn with 119 df), with a constant c0 = ratio x c1 added. At ratio 0 the share of \`fails\` is the size (its binomial standard error at 5% is ${se(draws)}); above 0 it is the power.`,
  '',
  '| design | c0 / c1 | fails | holds (inside +/- delta) | inconclusive |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.design} | ${r.ratio} | ${share(r.fails, draws)} | ${share(r.holds, draws)} | ${share(r.inconclusive, draws)} |`),
  '',
  '## Deep-linear Monte Carlo (the theorem is true)',
  '',
  `${studies} studies of the \`smoke\` preset (widths [8, 16, 4], b = 1..64, 30 steps, 128 runs, seeds 1001..${1000 + studies}), each testing 5 steps with Bonferroni: fails ${share(mc.fails, studies)}, holds ${share(mc.holds, studies)}, inconclusive ${share(mc.inconclusive, studies)}.`,
  '',
  '## Reading',
  '',
  `- The degree is the highest the batch sizes allow (n - 2 beside the constant). At degree 3 on 7 values of b the truncated b^-4 term leaks into c0: size ${share(rows[5].fails, draws)} against ${share(rows[0].fails, draws)} at degree 5. With only 5 values of b degree 3 is all there is (size ${share(rows[10].fails, draws)}); the cpu preset therefore has 7.`,
  `- A constant of 10% of the leading coefficient is rejected with power ${share(rows[4].fails, draws)} (>= 0.8); the other draws are \`inconclusive\` (no adequate fit), never \`holds\`. Even 0.3% is found ${share(rows[2].fails, draws)} of the time at the cpu preset's precision.`,
  '- `holds` is an equivalence verdict: the interval of c0 / c1 is inside +/- delta at every tested step. About fitLevel = 10% of correct fits are rejected as inadequate at each try, so some steps end `inconclusive`; in the deep-linear smoke studies (5 steps each, small widths, so noisier records) that happens at one step or more in about half of them, and no study fails.',
  '',
];
writeFileSync(join(repo, 'docs', 'calibration-theorem4.md'), lines.join('\n'));
process.stderr.write(`wrote docs/calibration-theorem4.md in ${seconds.toFixed(0)} s\n`);
