/** Reads a results folder: records, manifest and claims. Reporters know records, never plugins. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, ResultFiles, type ClaimResult, type MetricRecord } from '@sgd-lab/core';

export interface StudyResults {
  dir: string;
  name: string;
  setting: string;
  initPoints: number;
  manifest: Record<string, unknown>;
  records: MetricRecord[];
  claims: ClaimResult[];
}

export function readResults(dir: string): StudyResults {
  const file = (f: string) => join(dir, f);
  if (!existsSync(file(ResultFiles.manifest))) throw new DataError(dir, `not a results folder: ${ResultFiles.manifest} is missing`);
  const manifest = JSON.parse(readFileSync(file(ResultFiles.manifest), 'utf8')) as Record<string, unknown>;
  const records: MetricRecord[] = [];
  if (existsSync(file(ResultFiles.metrics))) {
    readFileSync(file(ResultFiles.metrics), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (!line.trim()) return;
        try {
          records.push(JSON.parse(line) as MetricRecord);
        } catch {
          throw new DataError(file(ResultFiles.metrics), `line ${i + 1} is not valid JSON`);
        }
      });
  }
  const claims = existsSync(file(ResultFiles.claims)) ? (JSON.parse(readFileSync(file(ResultFiles.claims), 'utf8')).claims as ClaimResult[]) : [];
  const study = manifest.study as { name: string; setting: string; initPoints: number };
  return { dir, name: study.name, setting: study.setting, initPoints: study.initPoints, manifest, records, claims };
}
