/**
 * What a result depends on, as one fingerprint: the resolved study (its own fingerprint), the
 * sha256 of every data file read, the code (core's and the setting's package versions, and the git
 * commit of the checkout they run from) and the tensor backend. The manifest records it with its
 * parts, every shard file carries it, and distributed job ids are made from it: `--resume`, the
 * shard store and the coordinator reuse nothing whose fingerprint differs.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StudyConfig } from '../config/study-config.js';
import { gitCommit, sha256 } from '../io/files.js';

/**
 * Content hash of a resolved study: what must match for a results folder to be resumed. `limits`
 * say what a machine may spend, not what is computed, and are left out.
 */
export function studyFingerprint(study: StudyConfig): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().filter((k) => k !== '$schema' && !(v === study && k === 'limits')).map((k) => [k, canonical((v as Record<string, unknown>)[k])])) : v;
  return sha256(JSON.stringify(canonical(study)));
}

export interface CodeStamp {
  /** @sgd-lab/core's version. */
  core: string;
  /** The setting's package and version, e.g. `@sgd-lab/plugin-linreg@0.1.0`. */
  plugin?: string;
  /** The git commit of the checkout core runs from (`+dirty` with uncommitted changes); absent outside one. */
  commit?: string;
}

export interface ResultDependencies {
  study: string;
  /** sha256 of each data file, sorted. */
  data: string[];
  code: CodeStamp;
  /** The tensor backend the setting runs on (absent for array settings). */
  backend?: string;
}

const coreDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** @sgd-lab/core's package name and version. */
export function corePackage(): { name: string; version: string } {
  return JSON.parse(readFileSync(join(coreDir, 'package.json'), 'utf8')) as { name: string; version: string };
}

let commitOnce: string | null | undefined;

/** The code a result is computed with; `plugin` is the setting's `name@version` where known. */
export function codeStamp(plugin?: string): CodeStamp {
  if (commitOnce === undefined) {
    const g = gitCommit(coreDir);
    commitOnce = g ? `${g.commit}${g.dirty ? '+dirty' : ''}` : null;
  }
  return { core: corePackage().version, ...(plugin ? { plugin } : {}), ...(commitOnce ? { commit: commitOnce } : {}) };
}

/**
 * What a result computed here depends on: the study, the sha256 of the data files read, this code
 * (with the setting's `name@version`) and the backend the setting recorded as its `backend` fact.
 */
export function resultDependencies(study: StudyConfig, dataSha256: readonly string[], pluginPackage: string | undefined, facts: Record<string, unknown>): ResultDependencies {
  return { study: studyFingerprint(study), data: [...dataSha256].sort(), code: codeStamp(pluginPackage), backend: (facts.backend as { name?: string } | undefined)?.name };
}

export function resultFingerprint(d: ResultDependencies): string {
  return sha256(JSON.stringify({ study: d.study, data: [...d.data].sort(), code: { core: d.code.core, plugin: d.code.plugin ?? null, commit: d.code.commit ?? null }, backend: d.backend ?? null }));
}

/** What differs between two sets of dependencies, one line per part, for errors; `labels` name the two sides. */
export function dependencyChanges(before: ResultDependencies, now: ResultDependencies, labels: [string, string] = ['then', 'now']): string[] {
  const [a, b] = labels;
  const out: string[] = [];
  const code = (c: CodeStamp) => `@sgd-lab/core ${c.core}${c.plugin ? `, ${c.plugin}` : ''}${c.commit ? ` at ${c.commit.slice(0, 12)}${c.commit.endsWith('+dirty') ? '+dirty' : ''}` : ''}`;
  if (before.study !== now.study) out.push(`the study (fingerprint ${before.study.slice(0, 12)} ${a}, ${now.study.slice(0, 12)} ${b})`);
  if ([...before.data].sort().join() !== [...now.data].sort().join()) out.push('the data files (their sha256)');
  if (code(before.code) !== code(now.code)) out.push(`the code (${code(before.code)} ${a}, ${code(now.code)} ${b})`);
  if ((before.backend ?? '') !== (now.backend ?? '')) out.push(`the backend (${before.backend ?? 'none'} ${a}, ${now.backend ?? 'none'} ${b})`);
  return out;
}
