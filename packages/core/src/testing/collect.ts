import 'reflect-metadata';
import { lastValueFrom, toArray } from 'rxjs';
import { container } from 'tsyringe';
import { resolveStudy } from '../config/validate.js';
import type { StudyConfig } from '../config/study-config.js';
import type { ClaimResult, MetricRecord } from '../engine/records.js';
import { runStudy } from '../engine/run-study.js';
import { createLogger } from '../log/logger.js';
import type { AnyPlugin } from '../plugin.js';

export interface CollectOptions {
  dataDir?: string;
  /** Called once the plugin has registered (for example to count live tensors from there on). */
  afterRegister?: () => void;
}

/** Runs a study of `plugin` in this process (no files) and returns its records and claims. */
export async function collectStudy(plugin: AnyPlugin, raw: Record<string, unknown>, o: CollectOptions = {}): Promise<{ study: StudyConfig; records: MetricRecord[]; claims: ClaimResult[] }> {
  const study = resolveStudy({ setting: plugin.name, ...raw }, plugin, 'test');
  const child = container.createChildContainer();
  const ctx = { dataDir: o.dataDir ?? '.', logger: createLogger({ quiet: true, level: 'error' }), recordDataFile: () => {}, recordFact: () => {} };
  await plugin.register(child, study, ctx);
  o.afterRegister?.();
  const events = await lastValueFrom(runStudy({ container: child, study }).pipe(toArray()));
  return {
    study,
    records: events.flatMap((e) => (e.type === 'metric' ? [e.record] : [])),
    claims: events.flatMap((e) => (e.type === 'claim' ? [e.claim] : [])),
  };
}
