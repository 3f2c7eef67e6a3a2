#!/usr/bin/env node
/**
 * The main job (`npm start`): every installed setting at its `cpu` preset, one results folder each
 * under results/. Data come from $SGD_LAB_DATA_DIR, else ./data, else the workplace's
 * ../shared/data. Where a setting's data file is absent it runs on its embedded default and says
 * how to get the real file.
 */
import { existsSync } from 'node:fs';
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
];

let failed = 0;
for (const { setting, args, note } of tour) {
  if (note) process.stderr.write(`note: ${note}\n`);
  const dirArgs = dataDir ? ['--data-dir', dataDir] : [];
  const r = spawnSync(process.execPath, [cli, 'run', setting, '--preset', 'cpu', '--force', ...dirArgs, ...args], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.stderr.write(`\nresults are in ${join(root, 'results')}\n`);
process.exit(failed ? 1 : 0);
