#!/usr/bin/env node
/**
 * `node tools/docs-figures.mjs <results-dir>... `: copies the figures docs/figures.md shows, as
 * small PNGs (scale 1) rendered from each results folder's SVGs, into docs/figures/ named
 * <study>-<figure>.png. Run it on the cpu presets' results (`npm start` writes them to results/).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { svgToPng } from '@sgd-lab/reporters';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** The figures docs/figures.md discusses, per study. */
const WANTED = {
  'admission-linreg-cpu': ['grad_variance', 'full_grad_variance', 'noise_scale'],
  'admission-linreg-paper-fig2b': ['grad_variance_vs_b'],
  'gaussian-deeplinear-cpu': ['grad_variance_by_layer', 'grad_variance_vs_b'],
  'mnist-mlp-cpu': ['grad_variance_epoch', 'loss', 'loss-by-step', 'error', 'accuracy_gap'],
  'yelp-xlnet-cpu': ['grad_variance_epoch', 'loss', 'error'],
};
const out = join(repo, 'docs', 'figures');
mkdirSync(out, { recursive: true });
for (const dir of process.argv.slice(2)) {
  const study = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).study.name;
  const wanted = WANTED[study] ?? [];
  for (const file of readdirSync(join(dir, 'figures')).filter((f) => f.endsWith('.svg'))) {
    const id = basename(file, '.svg');
    if (!wanted.includes(id)) continue;
    const png = svgToPng(readFileSync(join(dir, 'figures', file), 'utf8'), 1);
    writeFileSync(join(out, `${study}-${id}.png`), png);
    process.stdout.write(`docs/figures/${study}-${id}.png ${(png.length / 1024).toFixed(0)} KiB\n`);
  }
}
