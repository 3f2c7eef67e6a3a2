#!/usr/bin/env node
/**
 * Puts the device check's section (gpu-section.md, fetched from the device) into BENCHMARKS.md:
 * it replaces the "## gpu" section, or goes at the end when there is none. `npm run bench` keeps
 * that section as it is, since this machine cannot measure it.
 *
 *   node tools/device/merge.mjs <gpu-section.md> [BENCHMARKS.md]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [sectionFile, target = join(root, 'BENCHMARKS.md')] = process.argv.slice(2);
if (!sectionFile || !existsSync(sectionFile)) {
  process.stderr.write(`usage: node tools/device/merge.mjs <gpu-section.md> [BENCHMARKS.md]${sectionFile ? ` (${sectionFile}: no such file)` : ''}\n`);
  process.exit(64);
}
const section = readFileSync(sectionFile, 'utf8').trimEnd() + '\n';
if (!/^## gpu\b/.test(section)) {
  process.stderr.write(`${sectionFile}: not a gpu section (it must start with "## gpu")\n`);
  process.exit(65);
}
const text = existsSync(target) ? readFileSync(target, 'utf8') : '# Benchmarks\n';
const parts = text.split(/^(?=## )/m);
const at = parts.findIndex((p) => /^## gpu\b/.test(p));
if (at >= 0) parts[at] = section + (at < parts.length - 1 ? '\n' : '');
else parts.push((parts.at(-1).endsWith('\n\n') ? '' : '\n') + section);
writeFileSync(target, parts.join(''));
process.stdout.write(`${target}: ${at >= 0 ? 'replaced' : 'added'} the gpu section\n`);
