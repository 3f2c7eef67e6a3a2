/**
 * The reporters every results folder gets: metrics.jsonl, claims.json and a console summary.
 * Figures and the HTML report live in @sgd-lab/reporters.
 */
import { createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { defineReporter, type Reporter } from '../plugin.js';
import { verdictLabel, type ClaimResult, type MetricRecord } from '../engine/records.js';
import { replaceWith, sha256, writeFileAtomic } from './files.js';

/** File names inside a results folder. */
export const ResultFiles = {
  manifest: 'manifest.json',
  metrics: 'metrics.jsonl',
  claims: 'claims.json',
  log: 'sgd-lab.log',
} as const;

/** The suffix of metrics.jsonl while a study writes it. */
export const PARTIAL_SUFFIX = '.partial';

/** Serialises a record with a fixed key order, so equal runs give byte-identical files. */
export function recordLine(r: MetricRecord): string {
  return JSON.stringify(r) + '\n';
}

export const jsonlReporter: Reporter = defineReporter({
  name: 'jsonl',
  description: 'Every record as one JSON line in metrics.jsonl (written as it is produced into metrics.jsonl.partial, which replaces metrics.jsonl when the study ends).',
  create({ outDir }) {
    // Records stream into a sibling that replaces metrics.jsonl only once complete and on disk:
    // a crash leaves the old complete file (and the partial one), never a half-written one.
    const final = join(outDir, ResultFiles.metrics);
    const partial = `${final}${PARTIAL_SUFFIX}`;
    const out = createWriteStream(partial);
    const hash = createHash('sha256');
    let records = 0;
    let digest = '';
    return {
      metric({ record }: { record: MetricRecord }) {
        const line = recordLine(record);
        hash.update(line);
        records++;
        out.write(line);
      },
      async close() {
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        await replaceWith(partial, final);
        digest = hash.digest('hex');
      },
      outputs: () => ({ [ResultFiles.metrics]: { sha256: digest, records } }),
    };
  },
});

export const claimsReporter: Reporter = defineReporter({
  name: 'claims',
  description: 'Verdicts and evidence of the paper claims in claims.json.',
  create({ outDir, study }) {
    const claims: ClaimResult[] = [];
    let digest = '';
    return {
      claim({ claim }) {
        claims.push(claim);
      },
      async close() {
        const text = JSON.stringify({ study: study.name, setting: study.setting, claims }, null, 2) + '\n';
        digest = sha256(text);
        await writeFileAtomic(join(outDir, ResultFiles.claims), text);
      },
      outputs: () => ({ [ResultFiles.claims]: { sha256: digest, claims: claims.length } }),
    };
  },
});

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}

/** A plain-text summary of a study on stdout: last-step values per b and the claims. */
export const consoleReporter: Reporter = defineReporter({
  name: 'console',
  description: 'Summary table on stdout at the end of the study.',
  create({ study }) {
    const last = new Map<string, MetricRecord>();
    const claims: ClaimResult[] = [];
    let status = 'running';
    return {
      metric({ record: r }) {
        if (r.step === undefined || r.batchSize === undefined || r.initPoint !== 0 || (r.layer && r.layer !== 'all')) return;
        last.set(`${r.metric}|${r.estimator}|${r.batchSize}|${r.split ?? ''}`, r);
      },
      claim({ claim }) {
        claims.push(claim);
      },
      studyEnd(e) {
        status = e.status;
      },
      close() {
        const lines: string[] = [];
        lines.push(`\n== ${study.name} (${study.setting}) ${status}`);
        const metrics = [...new Set([...last.values()].map((r) => `${r.metric}|${r.estimator}|${r.split ?? ''}`))].sort();
        lines.push(['metric (initial point 0, last step)'.padEnd(44), ...study.batchSizes.map((b) => `b=${b}`.padStart(11))].join(''));
        for (const m of metrics) {
          const [metric, estimator, split] = m.split('|');
          const row = study.batchSizes.map((b) => fmt(last.get(`${metric}|${estimator}|${b}|${split}`)?.value).padStart(11));
          const step = last.get(`${metric}|${estimator}|${study.batchSizes[0]}|${split}`)?.step;
          lines.push([`${metric}${split ? `[${split}]` : ''} ${estimator} t=${step ?? '?'}`.padEnd(44), ...row].join(''));
        }
        if (claims.length) {
          lines.push('claims:');
          for (const c of claims) {
            const stat = c.pValue !== undefined ? `p=${fmt(c.pValue)}` : c.margin !== undefined ? `margin=${fmt(c.margin)}` : '';
            lines.push(`  ${verdictLabel(c).toUpperCase().padEnd(13)} ${c.id} (${c.estimator}) ${stat}`);
          }
        }
        process.stdout.write(lines.join('\n') + '\n');
      },
    };
  },
});

export const builtinReporters: readonly Reporter[] = [jsonlReporter, claimsReporter, consoleReporter];
