/**
 * Reproducibility suites and verification.
 *
 * `sgd-lab suite <suite.json>` runs a list of studies and compares every claim's verdict with what
 * the suite expects; any difference is a regression, named with the claim, the expected and the
 * new verdict, and the command exits 1. A study whose data file is absent is skipped and says why.
 *
 * `sgd-lab verify <results-dir>` runs the study of a results folder again (same config, seed and
 * backend) and checks that metrics.jsonl comes out byte-identical (sha256 in the manifest).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { checkStudyFile, formatAjvErrors, resolveStudy } from '../config/validate.js';
import type { AnyPlugin } from '../plugin.js';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError, DataError } from '../errors.js';
import { runSession } from '../engine/session.js';
import { verdictLabel, type ClaimResult } from '../engine/records.js';
import { ResultFiles } from '../io/builtin-reporters.js';
import { sha256 } from '../io/files.js';
import { closeLogger, createLogger } from '../log/logger.js';
import { discoverExtensions } from './discover.js';
import { lockResults } from '../io/lock.js';

/** One study of a suite and the verdicts it must reproduce. */
export interface SuiteEntry {
  /** An inline study, or `file`: a study file relative to the suite. */
  study?: Record<string, unknown>;
  file?: string;
  /** A data file (relative to the data directory) the study needs; absent: skipped, not failed. */
  needs?: string;
  /** Claim key -> verdict; the key is `<claim id>/<estimator>`. */
  expect: Record<string, 'holds' | 'fails' | 'inconclusive'>;
  /** Why a verdict differs from the paper's, in one line, per claim key of `expect`. */
  reasons?: Record<string, string>;
  /** Anything else about the entry. */
  note?: string;
}

export interface Suite {
  $schema?: string;
  name: string;
  description?: string;
  studies: SuiteEntry[];
}

const suiteSchema = {
  type: 'object',
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    studies: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          study: { type: 'object' },
          file: { type: 'string' },
          needs: { type: 'string' },
          note: { type: 'string' },
          expect: { type: 'object', additionalProperties: { enum: ['holds', 'fails', 'inconclusive'] } },
          reasons: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
        },
        required: ['expect'],
        additionalProperties: false,
      },
    },
  },
  required: ['name', 'studies'],
  additionalProperties: false,
};

/** The key of a claim in a suite's expectations. */
export const claimKey = (c: ClaimResult) => `${c.id}/${c.estimator}`;

export interface SuiteOutcome {
  study: string;
  status: 'passed' | 'regressed' | 'skipped' | 'failed';
  problems: string[];
}

function readSuite(file: string): Suite {
  let suite: Suite;
  try {
    suite = JSON.parse(readFileSync(file, 'utf8')) as Suite;
  } catch (e) {
    throw new ConfigError(file, [`/: ${(e as Error).message}`]);
  }
  const validate = new Ajv({ allErrors: true, strict: false }).compile(suiteSchema);
  if (!validate(suite)) throw new ConfigError(file, formatAjvErrors(validate.errors));
  // A reason explains an expected verdict: it must name one.
  const stray = suite.studies.flatMap((e, i) => Object.keys(e.reasons ?? {}).filter((k) => !(k in e.expect)).map((k) => `/studies/${i}/reasons/${k}: no such claim in /studies/${i}/expect`));
  if (stray.length) throw new ConfigError(file, stray);
  return suite;
}

/** Each study of a suite, checked like a study file (published schema and resolution). */
async function suiteStudies(file: string, suite: Suite): Promise<{ entry: SuiteEntry; study: StudyConfig; plugin: AnyPlugin }[]> {
  const { plugins } = await discoverExtensions();
  return suite.studies.map((entry, i) => {
    const source = `${file} /studies/${i}${entry.file ? ` (${entry.file})` : ''}`;
    let raw: Record<string, unknown>;
    try {
      raw = entry.study ?? (JSON.parse(readFileSync(resolve(dirname(file), entry.file ?? ''), 'utf8')) as Record<string, unknown>);
    } catch (e) {
      throw new ConfigError(source, [`/: ${(e as Error).message}`]);
    }
    const plugin = plugins.find((p) => p.value.name === raw.setting);
    if (!plugin) throw new ConfigError(file, [`/studies/${i}/study/setting: unknown setting "${String(raw.setting)}"`]);
    checkStudyFile(raw, plugin.value, source);
    return { entry, plugin: plugin.value, study: resolveStudy({ reporters: ['jsonl', 'claims'], ...structuredClone(raw) }, plugin.value, source) };
  });
}

/** Validates every study of a suite file; resolves to their names. */
export async function validateSuiteStudies(file: string): Promise<string[]> {
  return (await suiteStudies(file, readSuite(file))).map((s) => s.study.name);
}

/** Runs a suite; resolves to one outcome per study. */
export async function runSuite(file: string, outRoot: string, dataDir: string, log: (line: string) => void): Promise<SuiteOutcome[]> {
  const suite = readSuite(file);
  const { reporters, components } = await discoverExtensions();
  const outcomes: SuiteOutcome[] = [];
  for (const { entry, study, plugin } of await suiteStudies(file, suite)) {
    if (entry.needs && !existsSync(join(dataDir, entry.needs))) {
      const reason = `${join(dataDir, entry.needs)} not found`;
      log(`SKIPPED  ${study.name}: ${reason}`);
      outcomes.push({ study: study.name, status: 'skipped', problems: [reason] });
      continue;
    }
    const outDir = join(outRoot, study.name);
    const lock = lockResults(outDir, 'suite');
    const logger = createLogger({ quiet: true, file: join(outDir, ResultFiles.log) });
    const result = await runSession({ study, plugin, packages: {}, outDir, dataDir, logger, reporters: reporters.map((r) => r.value), components }).finally(async () => {
      await closeLogger(logger);
      lock.release();
    });
    if (result.status !== 'completed') {
      const why = result.error instanceof Error ? result.error.message : String(result.error);
      log(`FAILED   ${study.name}: ${why}`);
      outcomes.push({ study: study.name, status: 'failed', problems: [why] });
      continue;
    }
    const claims = (JSON.parse(readFileSync(join(outDir, ResultFiles.claims), 'utf8')) as { claims: ClaimResult[] }).claims;
    const got = new Map(claims.map((c) => [claimKey(c), c]));
    const problems: string[] = [];
    for (const [key, verdict] of Object.entries(entry.expect)) {
      const c = got.get(key);
      if (!c) problems.push(`${key}: expected ${verdict}, but the study no longer produces this claim`);
      else if (c.verdict !== verdict) {
        const stat = c.pValue !== undefined ? `p = ${c.pValue}` : `margin = ${c.margin}`;
        problems.push(`${key}: expected ${verdict}, got ${verdictLabel(c)} (${stat})${entry.reasons?.[key] ? `; expected because: ${entry.reasons[key]}` : ''}`);
      }
    }
    const status = problems.length ? 'regressed' : 'passed';
    // An equivalence claim's "holds" is a different statement (shown inside a margin): say so.
    const equivalences = Object.keys(entry.expect).map((k) => got.get(k)).filter((c): c is ClaimResult => c?.equivalenceMargin !== undefined).map((c) => `${claimKey(c)}: ${verdictLabel(c)}`);
    log(`${status === 'passed' ? 'PASSED ' : 'REGRESSED'} ${study.name}: ${Object.keys(entry.expect).length} claims checked${equivalences.length ? ` (equivalence: ${equivalences.join('; ')})` : ''}${problems.length ? '\n  ' + problems.join('\n  ') : ''}`);
    outcomes.push({ study: study.name, status, problems });
  }
  return outcomes;
}

export async function runSuiteCommand(suiteFile: string, flags: { out?: string; dataDir?: string }, io: { out: (s: string) => void }): Promise<number> {
  const file = resolve(suiteFile);
  let name = 'suite';
  try {
    name = (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name ?? 'suite';
  } catch (e) {
    throw new ConfigError(file, [`/: ${(e as Error).message}`]);
  }
  const out = resolve(flags.out ?? join('results', 'suites', name));
  const dataDir = resolve(flags.dataDir ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
  const outcomes = await runSuite(file, out, dataDir, (l) => io.out(l + '\n'));
  const count = (s: SuiteOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  io.out(`suite ${name}: ${count('passed')} passed, ${count('regressed')} regressed, ${count('failed')} failed, ${count('skipped')} skipped\n`);
  return count('regressed') + count('failed') > 0 ? 1 : 0;
}

/** How one output file of a results folder compares with a fresh run of its study. */
export interface FileCheck {
  file: string;
  /** sha256 of the file on disk now. */
  onDisk?: string;
  /** sha256 the manifest recorded when the study ended. */
  recorded?: string;
  /** sha256 of the fresh run's file. */
  rerun?: string;
  identical: boolean;
  /** First line (1-based) where the file on disk and the fresh run differ. */
  firstDifference?: number;
}

const digestOf = (file: string): string | undefined => (existsSync(file) ? sha256(readFileSync(file)) : undefined);

/**
 * Re-runs a results folder's study and compares metrics.jsonl and claims.json byte for byte: the
 * files on disk (hashed now, not trusted from the manifest) against the fresh run, and against the
 * digests the manifest recorded.
 */
export async function verifyResults(dir: string, dataDir: string): Promise<{ identical: boolean; files: FileCheck[] }> {
  const manifestFile = join(dir, ResultFiles.manifest);
  if (!existsSync(manifestFile)) throw new DataError(dir, `not a results folder: ${ResultFiles.manifest} is missing`);
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { study: StudyConfig; status: string; facts?: { backend?: { name?: string } }; outputs?: Record<string, { sha256: string }> };
  if (!manifest.outputs?.[ResultFiles.metrics]?.sha256 || manifest.status !== 'completed') throw new DataError(manifestFile, `the study did not complete (status ${manifest.status}); nothing to verify`);
  const { plugins, reporters, components } = await discoverExtensions();
  const plugin = plugins.find((p) => p.value.name === manifest.study.setting);
  if (!plugin) throw new ConfigError(manifestFile, [`/study/setting: "${manifest.study.setting}" is not installed`]);
  // Same backend as recorded: float results depend on it.
  const study: StudyConfig = { ...manifest.study, reporters: ['jsonl', 'claims'], backend: manifest.facts?.backend?.name ?? manifest.study.backend };
  const tmp = mkdtempSync(join(tmpdir(), 'sgd-lab-verify-'));
  const logger = createLogger({ quiet: true });
  try {
    const r = await runSession({ study, plugin: plugin.value, packages: {}, outDir: tmp, dataDir, logger, reporters: reporters.map((x) => x.value), components });
    if (r.status !== 'completed') throw r.error;
    // claims.json is checked when the study wrote one (its reporters may leave it out).
    const produced = [ResultFiles.metrics, ResultFiles.claims].filter((f) => f === ResultFiles.metrics || manifest.outputs?.[f] || existsSync(join(dir, f)));
    const files = produced.map((file): FileCheck => {
      const here = join(dir, file);
      const there = join(tmp, file);
      const check: FileCheck = { file, onDisk: digestOf(here), recorded: manifest.outputs?.[file]?.sha256, rerun: digestOf(there), identical: false };
      check.identical = check.onDisk !== undefined && check.onDisk === check.rerun && (check.recorded === undefined || check.recorded === check.onDisk);
      if (check.onDisk !== check.rerun && check.onDisk && check.rerun) {
        const a = readFileSync(here, 'utf8').split('\n');
        const b = readFileSync(there, 'utf8').split('\n');
        const i = a.findIndex((line, k) => line !== b[k]);
        check.firstDifference = (i < 0 ? Math.min(a.length, b.length) : i) + 1;
      }
      return check;
    });
    return { identical: files.every((f) => f.identical), files };
  } finally {
    await closeLogger(logger);
    rmSync(tmp, { recursive: true, force: true });
  }
}

export async function runVerifyCommand(resultsDir: string, flags: { dataDir?: string }, io: { out: (s: string) => void }): Promise<number> {
  const dataDir = resolve(flags.dataDir ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
  const v = await verifyResults(resolve(resultsDir), dataDir);
  for (const f of v.files) {
    if (f.identical) io.out(`verified: ${f.file} reproduced byte for byte (sha256 ${f.onDisk})\n`);
    else if (!f.onDisk) io.out(`NOT reproduced: ${f.file} is missing from ${resultsDir}\n`);
    else if (f.onDisk !== f.rerun) io.out(`NOT reproduced: ${f.file} on disk has sha256 ${f.onDisk}, the re-run ${f.rerun}; first different line ${f.firstDifference}\n`);
    else io.out(`NOT reproduced: ${f.file} matches the re-run but not the sha256 the manifest recorded (${f.recorded}): the file was replaced after the study ended\n`);
  }
  return v.identical ? 0 : 1;
}
