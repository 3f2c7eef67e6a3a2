/** Commands this package adds to the sgd-lab CLI: `report` and `compare`. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, type CliCommand } from '@sgd-lab/core';
import { compareReports, rebuildReport } from './report.js';

export const commands: Record<string, CliCommand> = {
  report: {
    usage: 'sgd-lab report <results-dir>           rebuild figures/ and report.html from a results folder',
    async run(args) {
      if (args.length !== 1) throw new ConfigError('command line', ['report takes one results folder']);
      const built = await rebuildReport(resolve(args[0]));
      process.stdout.write(`${built.html} (${built.figures.length} figures)\n`);
      return 0;
    },
  },
  compare: {
    usage: 'sgd-lab compare <dir-a> <dir-b> [...] [--out dir]   overlay studies in one report',
    async run(args) {
      const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' } } });
      if (positionals.length < 2) throw new ConfigError('command line', ['compare takes at least two results folders']);
      const out = resolve(values.out ?? `results/compare-${positionals.map((p) => p.split('/').filter(Boolean).at(-1)).join('-vs-')}`);
      const built = await compareReports(positionals.map((p) => resolve(p)), out);
      process.stdout.write(`${built.html} (${built.figures.length} figures)\n`);
      return 0;
    },
  },
};

export default commands;
