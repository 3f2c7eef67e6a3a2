/** Commands this package adds to the sgd-lab CLI: `report` and `compare`. */
import { resolve } from 'node:path';
import { UsageError, type CliCommand } from '@sgd-lab/core';
import { compareReports, rebuildReport } from './report.js';

export const commands: Record<string, CliCommand> = {
  report: {
    description: 'rebuild figures/ and report.html from a results folder',
    arguments: '<results-dir>',
    async run([dir]) {
      const built = await rebuildReport(resolve(dir));
      process.stdout.write(`${built.html} (${built.figures.length} figures)\n`);
      return 0;
    },
  },
  compare: {
    description: 'overlay the figures of several results folders in one report',
    arguments: '<results-dirs...>',
    options: [{ flags: '--out <dir>', description: 'where to write the comparison (default: results/compare-<a>-vs-<b>...)' }],
    help: 'Example:\n  sgd-lab compare results/admission-linreg-cpu results/admission-with-replacement',
    async run(dirs, o) {
      if (dirs.length < 2) throw new UsageError('compare takes at least two results folders', 'compare');
      const out = resolve((o.out as string | undefined) ?? `results/compare-${dirs.map((p) => p.split('/').filter(Boolean).at(-1)).join('-vs-')}`);
      const built = await compareReports(dirs.map((p) => resolve(p)), out);
      process.stdout.write(`${built.html} (${built.figures.length} figures)\n`);
      return 0;
    },
  },
};

export default commands;
