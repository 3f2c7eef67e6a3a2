/** The reporters this package adds to every study by default: `html` (figures + report.html). */
import { defineReporter, type ClaimResult, type MetricRecord, type Reporter } from '@sgd-lab/core';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeStudyReport } from './report.js';

export const htmlReporter: Reporter = defineReporter({
  name: 'html',
  description: 'Figures (SVG, PNG) of the paper plots and a self-contained report.html with the claims and CSV data.',
  enabledByDefault: true,
  create({ outDir, study, logger }) {
    const records: MetricRecord[] = [];
    const claims: ClaimResult[] = [];
    let status = 'running';
    return {
      metric({ record }) {
        records.push(record);
      },
      claim({ claim }) {
        claims.push(claim);
      },
      studyEnd(e) {
        status = e.status;
      },
      async close() {
        const manifestFile = join(outDir, 'manifest.json');
        const manifest = existsSync(manifestFile) ? { ...JSON.parse(readFileSync(manifestFile, 'utf8')), status } : undefined;
        const built = await writeStudyReport({ outDir, name: study.name, setting: study.setting, initPoints: study.initPoints, records, claims, manifest });
        logger.info(`report: ${built.html} (${built.figures.length} figures)`);
      },
    };
  },
});

export default [htmlReporter];
