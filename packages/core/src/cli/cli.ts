/**
 * sgd-lab: plan, run, validate and list studies; packages add more commands (report, compare,
 * worker, data fetch ...). Built on commander: `sgd-lab --help`, `sgd-lab <command> --help`,
 * `sgd-lab --version`.
 *
 * Exit codes: 0 done, 1 internal error (or a suite regression, a failed verification),
 * 2 usage or config error, 3 data error, 4 diverged run, 5 lost connection to Redis,
 * 130 interrupted (SIGINT or SIGTERM). Results go to the results folder and a summary to stdout;
 * logs and progress go to stderr.
 */
import 'reflect-metadata';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { container as rootContainer } from 'tsyringe';
import { checkStudyFile, didYouMean, presetNames, resolveStudies, studySchemaFor, type ResolvedStudy } from '../config/validate.js';
import { BACKEND_NAMES, type StudyConfig } from '../config/study-config.js';
import { ConfigError, UsageError, UserError } from '../errors.js';
import { runSession } from '../engine/session.js';
import { planStudy, type StudyPlan } from '../engine/plan.js';
import { checkPluginResources, formatBytes, type ResourceEstimate } from '../engine/resources.js';
import { corePackage } from '../engine/fingerprint.js';
import { closeLogger, createLogger, redactSecrets } from '../log/logger.js';
import { builtinReporters, ResultFiles } from '../io/builtin-reporters.js';
import { lockResults } from '../io/lock.js';
import { discoverExtensions, type Extensions, type Found } from './discover.js';
import { formatDuration, progressObserver, type ProgressMode } from './progress.js';
import { addPackageCommand, commanderExit, configure, finishGroups, typedParser } from './program.js';
import { runSuiteCommand, runVerifyCommand, validateSuiteStudies } from './suite.js';
import type { AnyPlugin, PluginContext } from '../plugin.js';
import type { RemoteConnection } from '../engine/run-study.js';
import { Tokens } from '../tokens.js';

/** Preset used when `run` is given a setting id without --preset. */
export const DEFAULT_PRESET = 'cpu';

/**
 * Remote shard execution is an extension: the first installed package whose `sgd-lab.remote`
 * executor takes the URL's scheme.
 */
async function connectRemote(url: string, study: StudyConfig, unreachableMs: number, insecure: boolean | undefined, warn: (m: string) => void): Promise<RemoteConnection> {
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--redis: "${redactSecrets(url)}" is not a URL (e.g. redis://127.0.0.1:6379 or redis://:password@host:6379)`, 'run');
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase() ?? '';
  const { remotes } = await discoverExtensions();
  const found = remotes.find((r) => r.value.schemes.includes(scheme));
  if (!found) {
    const have = remotes.flatMap((r) => r.value.schemes.map((s) => `${s}: (${r.packageName})`));
    throw new UsageError(
      `no installed package runs shards on ${scheme ? `${scheme}:` : 'that'} URLs` +
        (have.length ? ` (installed: ${have.join(', ')})` : '; install one with a "sgd-lab": { "remote": ... } field, e.g. `npm install @sgd-lab/distributed`'),
      'run',
    );
  }
  return found.value.connect({ url, study, unreachableMs, insecure, warn });
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`/: cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`]);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`/: not valid JSON: ${(e as Error).message}`]);
  }
}

function unknownSetting(ext: Extensions, setting: string): string {
  const ids = ext.plugins.map((p) => p.value.name);
  const notBuilt = [...ext.unbuilt].map(([pkg, file]) => `${pkg} (${file} is missing: run npm run build)`);
  return `unknown setting "${setting}"${didYouMean(setting, ids)}; installed: ${ids.join(', ') || '(none)'}${notBuilt.length ? `; not built: ${notBuilt.join(', ')}` : ''}`;
}

async function findPlugin(setting: unknown, source: string, command: string): Promise<Found<AnyPlugin>> {
  const ext = await discoverExtensions();
  if (typeof setting !== 'string') throw new ConfigError(source, [`/setting: missing; one of ${ext.plugins.map((p) => p.value.name).join(', ') || '(no plugin installed)'}`]);
  const found = ext.plugins.find((p) => p.value.name === setting);
  if (!found) {
    if (source === 'command line') throw new UsageError(`${command}: ${unknownSetting(ext, setting)}`, command);
    throw new ConfigError(source, [`/setting: ${unknownSetting(ext, setting)}`]);
  }
  return found;
}

/** A study file, or a setting id with a preset, as the raw object its studies resolve from. */
interface Target {
  raw: Record<string, unknown>;
  source: string;
  plugin: Found<AnyPlugin>;
  /** The preset given on the command line (or the default for a setting id). */
  preset?: string;
}

async function loadTarget(arg: string, preset: string | undefined, command: string): Promise<Target> {
  if (arg.endsWith('.json') || existsSync(arg)) {
    const raw = readJson(arg) as Record<string, unknown>;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(arg, ['/: must be a JSON object']);
    return { raw, source: arg, plugin: await findPlugin(raw.setting, arg, command), preset };
  }
  const plugin = await findPlugin(arg, 'command line', command);
  const p = preset ?? DEFAULT_PRESET;
  const known = presetNames(plugin.value);
  if (!known.includes(p)) throw new UsageError(`${command}: --preset ${p}: ${plugin.value.name} has no such preset${didYouMean(p, known)}; known: ${known.join(', ')}`, command);
  return { raw: { setting: arg, preset: p }, source: `${arg} --preset ${p}`, plugin, preset: p };
}

/** Keys that would reach an object's prototype: never a study field. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Applies `--set a.b.c=value` to a raw study: value is JSON when it parses, else a string.
 * Lets a run change any field of a study or preset without writing a file.
 */
export function applySet(raw: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set ${assignment}: expected path=value, e.g. --set runs=100`);
  const path = assignment.slice(0, eq).split('.');
  const bad = path.find((k) => k === '' || FORBIDDEN_KEYS.has(k));
  if (bad !== undefined) throw new UsageError(`--set ${assignment}: "${bad}" is not a field name`);
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  let o: Record<string, unknown> = raw;
  for (const key of path.slice(0, -1)) {
    if (typeof o[key] !== 'object' || o[key] === null || Array.isArray(o[key])) o[key] = {};
    o = o[key] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
}

/** The studies a target stands for (one, or each preset of a group), validated both ways. */
function studiesOf(target: Target, sets: readonly string[]): ResolvedStudy[] {
  for (const s of sets) applySet(target.raw, s);
  const studies = resolveStudies(structuredClone(target.raw), target.plugin.value, target.source, target.preset);
  checkStudyFile(target.raw, target.plugin.value, target.source);
  return studies;
}

function dataDirFrom(flag: string | undefined): string {
  return resolve(flag ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
}

/** One interrupt controller per process: the first SIGINT/SIGTERM cancels, a second one quits. */
const interrupt = new AbortController();
let interrupts = 0;
/** Stops the progress bar of the running study, so a message is not drawn over it. */
let stopProgress: (() => void) | undefined;
function installSignalHandlers(io: Io, early: readonly NodeJS.Signals[]): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    stopProgress?.();
    io.err(`\n${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}: finishing the current step and writing results (${signal === 'SIGINT' ? 'Ctrl-C' : 'a second signal'} again to quit now)\n`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (const signal of early) onSignal(signal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

interface RunFlags {
  preset?: string;
  out?: string;
  dataDir?: string;
  backend?: string;
  set?: string[];
  force?: boolean;
  resume?: boolean;
  dryRun?: boolean;
  redis?: string;
  redisTimeout: number;
  insecure?: boolean;
  quiet?: boolean;
  progress: 'auto' | ProgressMode;
}

function progressMode(flag: RunFlags['progress'], quiet: boolean | undefined): ProgressMode {
  if (flag !== 'auto') return flag;
  if (quiet) return 'off';
  return process.stderr.isTTY ? 'bar' : 'lines';
}

/** Seconds between progress lines off a terminal: $SGD_LAB_PROGRESS_SECONDS, default 10. */
function progressInterval(): number {
  const v = Number(process.env.SGD_LAB_PROGRESS_SECONDS ?? 10);
  return Number.isFinite(v) && v >= 0 ? v * 1000 : 10_000;
}

async function cmdRun(arg: string, flags: RunFlags, io: Io): Promise<number> {
  const target = await loadTarget(arg, flags.preset, 'run');
  const runs = studiesOf(target, flags.set ?? []);
  if (interrupt.signal.aborted) {
    io.err('cancelled before the study started: nothing was written\n');
    return 130;
  }
  const plugin = target.plugin.value;
  if (flags.dryRun) return cmdPlanResolved(target, runs, { dataDir: flags.dataDir, backend: flags.backend, json: false, calibrate: true }, io);
  const { reporters, components } = await discoverExtensions();
  const packages: Record<string, string> = {
    [corePackage().name]: corePackage().version,
    [target.plugin.packageName]: target.plugin.version,
    ...Object.fromEntries(reporters.map((r) => [r.packageName, r.version])),
  };
  const group = runs[0].part !== undefined;
  const baseOut = resolve(flags.out ?? join('results', group ? `${plugin.name}-${target.preset ?? target.raw.preset}` : runs[0].study.name));
  let code = 0;
  for (const { study, part } of runs) {
    if (interrupt.signal.aborted) return 130;
    if (flags.backend) study.backend = flags.backend;
    const outDir = part ? join(baseOut, part) : baseOut;
    // One run per results folder: the lock is taken before the folder is looked at, so two runs
    // started together cannot both find it empty (io/lock.ts).
    const created = !existsSync(outDir);
    let refused = false;
    const lock = lockResults(outDir);
    if (existsSync(join(outDir, ResultFiles.manifest)) && !flags.force && !flags.resume) {
      lock.release();
      throw new UsageError(`--out: ${outDir} already holds results; pass --resume to finish them, --force to replace them, or choose another --out`, 'run');
    }
    const logger = createLogger({ file: join(outDir, ResultFiles.log), quiet: flags.quiet });
    if (lock.tookOver) logger.warn(`took over the stale lock of process ${lock.tookOver.pid} (started ${lock.tookOver.startedAt}), which is no longer running`);
    try {
      logger.info(`study ${study.name}: ${plugin.name}, b in {${study.batchSizes.join(', ')}}, ${study.runs} runs, ${study.steps ?? study.epochs} ${study.steps !== undefined ? 'steps' : 'epochs'} -> ${outDir}`);
      // The bar or the lines go to stderr, and the same lines to the log file (at verbose, which
      // the log file records and stderr's transport does not repeat).
      const progress = progressObserver({
        mode: progressMode(flags.progress, flags.quiet),
        log: (line) => logger.verbose(line),
        intervalMs: progressInterval(),
      });
      stopProgress = () => progress.close?.();
      const observers = [progress];
      const remote = flags.redis ? await connectRemote(flags.redis, study, flags.redisTimeout * 1000, flags.insecure, (m) => logger.warn(m)) : undefined;
      const result = await runSession({
        study,
        plugin,
        packages,
        outDir,
        dataDir: dataDirFrom(flags.dataDir),
        logger,
        reporters: reporters.map((r) => r.value),
        components,
        observers,
        resume: flags.resume,
        pluginPackage: `${target.plugin.packageName}@${target.plugin.version}`,
        remote,
        signal: interrupt.signal,
      }).finally(() => remote?.close());
      if (result.error !== undefined) {
        const err = result.error;
        logger.error(err instanceof UserError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`);
        code = err instanceof UserError ? err.exitCode : 1;
        break;
      }
      logger.info(`results: ${outDir}`);
    } catch (e) {
      // Refused before anything was written (missing data, a bad batch size for the data): a
      // folder this command created holds only its log, and goes (after the log is closed).
      refused = created && !existsSync(join(outDir, ResultFiles.manifest));
      throw e;
    } finally {
      await closeLogger(logger);
      lock.release();
      if (refused) rmSync(outDir, { recursive: true, force: true });
    }
  }
  return code;
}

interface PlanFlags {
  preset?: string;
  dataDir?: string;
  backend?: string;
  set?: string[];
  json: boolean;
  calibrate: boolean;
}

function human(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (n >= 1e4) return n.toExponential(2).replace('e+', 'e');
  return n.toLocaleString('en-US');
}

function seconds(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toPrecision(3)}us`;
  if (s < 1) return `${(s * 1e3).toPrecision(3)}ms`;
  return `${s.toPrecision(3)}s`;
}

function bytes(n: number | undefined): string {
  if (n === undefined) return '?';
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** The plan of each study of a target, printed as a table (or JSON). Nothing is written. */
async function cmdPlanResolved(target: Target, runs: ResolvedStudy[], flags: PlanFlags, io: Io): Promise<number> {
  const plans: (StudyPlan & { backend?: string; chunkSize?: number; resources: ResourceEstimate; hours: number })[] = [];
  for (const { study } of runs) {
    if (flags.backend) study.backend = flags.backend;
    const child = rootContainer.createChildContainer();
    const facts: Record<string, unknown> = {};
    const logger = createLogger({ quiet: true });
    const context: PluginContext = {
      dataDir: dataDirFrom(flags.dataDir),
      logger,
      recordDataFile: () => undefined,
      recordFact: (k, v) => (facts[k] = v),
      writeArtifact: () => undefined,
    };
    child.register(Tokens.Study, { useValue: study });
    child.register(Tokens.Context, { useValue: context });
    child.register(Tokens.Logger, { useValue: logger });
    try {
      // The limits are checked first, as a run would (nothing is loaded for a study over them).
      const plugin = target.plugin.value;
      const resources = checkPluginResources(plugin, study, context.dataDir);
      await plugin.register(child, study, context);
      const plan = { ...(await planStudy(child, study, { calibrate: flags.calibrate })), resources, hours: study.limits.hours };
      const backend = facts.backend as { name?: string; adapter?: string } | undefined;
      const engine = facts.engine as { chunkSize?: number } | undefined;
      plans.push({ ...plan, backend: backend?.name, chunkSize: engine?.chunkSize, replicasPerChunk: plan.replicasPerChunk ?? engine?.chunkSize });
    } finally {
      await closeLogger(logger);
      child.dispose?.();
    }
  }
  if (flags.json) {
    io.out(JSON.stringify(plans.length === 1 ? plans[0] : plans, null, 2) + '\n');
    return 0;
  }
  for (const p of plans) {
    const lines = [`plan: ${p.study} (${p.setting})${p.backend ? `, backend ${p.backend}` : ''}`];
    lines.push(`  ${p.shards} shards: ${p.perBatchSize.length} batch sizes x ${p.initPoints} initial point${p.initPoints > 1 ? 's' : ''}, ${p.runs} runs each`);
    lines.push(`  ${'b'.padStart(6)} ${'shards'.padStart(7)} ${'replica-steps'.padStart(14)} ${'evaluations'.padStart(12)} ${'GFLOP'.padStart(10)} ${'s/step'.padStart(10)} ${'estimate'.padStart(10)}`);
    for (const b of p.perBatchSize) {
      const gflop = b.cost?.flopsPerStep !== undefined ? (b.cost.flopsPerStep * b.replicaSteps + (b.cost.flopsPerEvaluation ?? 0) * b.evaluations) / 1e9 : NaN;
      const perStep = b.timing ? seconds(b.timing.step) : '-';
      lines.push(
        `  ${String(b.batchSize).padStart(6)} ${String(b.shards).padStart(7)} ${human(b.replicaSteps).padStart(14)} ${human(b.evaluations).padStart(12)} ${(Number.isFinite(gflop) ? gflop.toPrecision(3) : '?').padStart(10)} ${perStep.padStart(10)} ${(b.seconds !== undefined ? formatDuration(b.seconds) : '-').padStart(10)}`,
      );
    }
    const mem = p.bytesPerChunk !== undefined ? `; memory per chunk ${bytes(p.bytesPerChunk)} (${p.replicasPerChunk ?? '?'} replicas)` : p.replicasPerChunk ? `; ${p.replicasPerChunk} replicas per chunk` : '';
    lines.push(`  total: ${human(p.replicaSteps)} replica-steps${p.flops !== undefined ? `, ${human(p.flops)} FLOPs` : ''}${mem}`);
    const r = p.resources;
    const limitName = r.memoryLimitName.startsWith('/') ? 'limits.memoryMiB' : r.memoryLimitName;
    lines.push(`  limits: memory about ${formatBytes(r.memoryBytes)} of ${formatBytes(r.memoryLimitBytes)} (${limitName}); compute at least ${formatDuration(r.secondsAtLeast)} at peak, of limits.hours = ${p.hours} h`);
    if (p.seconds !== undefined) {
      const timed = p.perBatchSize.find((b) => b.timing)?.timing;
      lines.push(`  estimated wall time: ${formatDuration(p.seconds)}${p.backend ? ` on ${p.backend}` : ''} (s/step timed at ${timed?.replicas ?? '?'} replicas, scaled linearly in runs; calibration took ${formatDuration(p.calibrationSeconds ?? 0)})`);
    } else lines.push('  estimated wall time: not calibrated');
    io.out(lines.join('\n') + '\n');
  }
  return 0;
}

async function cmdPlan(arg: string, flags: PlanFlags, io: Io): Promise<number> {
  const target = await loadTarget(arg, flags.preset, 'plan');
  return cmdPlanResolved(target, studiesOf(target, flags.set ?? []), flags, io);
}

async function cmdValidate(args: string[], flags: { preset?: string; set?: string[] }, io: Io): Promise<number> {
  for (const arg of args) {
    const raw = arg.endsWith('.json') || existsSync(arg) ? readJson(arg) : undefined;
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && Array.isArray((raw as { studies?: unknown }).studies) && !('setting' in raw)) {
      const names = await validateSuiteStudies(resolve(arg));
      io.out(`${arg}: valid suite, ${names.length} studies: ${names.join(', ')}\n`);
      continue;
    }
    const target = await loadTarget(arg, flags.preset, 'validate');
    const studies = studiesOf(target, flags.set ?? []);
    const names = studies.map((s) => `"${s.study.name}"`).join(', ');
    io.out(`${arg}: valid ${target.plugin.value.name} stud${studies.length > 1 ? 'ies' : 'y'} ${names}\n`);
  }
  return 0;
}

async function cmdList(io: Io): Promise<number> {
  const { plugins, reporters, components, commands } = await discoverExtensions();
  const lines = ['settings:'];
  for (const p of plugins) {
    lines.push(`  ${p.value.name.padEnd(22)} ${p.value.description}  (${p.packageName}@${p.version})`);
    for (const [name, preset] of Object.entries(p.value.presets)) lines.push(`    preset ${name.padEnd(14)} ${preset.description ?? ''}`);
    for (const [name, parts] of Object.entries(p.value.presetGroups ?? {})) lines.push(`    preset ${name.padEnd(14)} runs ${parts.join(' + ')}`);
  }
  lines.push('components (use in a study as "components": { "sampler" | "optimizer": id }):');
  for (const c of components.describe()) lines.push(`  ${c.kind.slice(0, -1).padEnd(10)} ${c.id.padEnd(22)} ${c.description}  (${c.from})`);
  lines.push('reporters:');
  for (const r of [...builtinReporters, ...reporters.map((x) => x.value)]) lines.push(`  ${r.name.padEnd(22)} ${r.description}`);
  if (commands.length) {
    lines.push('commands added by packages:');
    for (const c of commands) for (const [path, cmd] of Object.entries(c.value)) lines.push(`  ${path.padEnd(22)} ${cmd.description}  (${c.packageName})`);
  }
  lines.push('backends (a study\'s "backend" or run --backend): ' + BACKEND_NAMES.join(', '));
  io.out(lines.join('\n') + '\n');
  return 0;
}

async function cmdSchema(setting: string, io: Io): Promise<number> {
  const plugin = await findPlugin(setting, 'command line', 'schema');
  io.out(JSON.stringify(studySchemaFor(plugin.value), null, 2) + '\n');
  return 0;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The program: core's commands, then every command installed packages add. */
export async function buildProgram(io: Io, setCode: (c: number) => void): Promise<Command> {
  const ext = await discoverExtensions();
  const program = configure(new Command('sgd-lab'), '', io.err, io.out)
    .description('How the mini-batch size shapes the dynamics of SGD: plan, run and check studies.')
    .version(corePackage().version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .addHelpCommand('help [command]', 'show help for a command')
    .addHelpText(
      'after',
      `
A study is a JSON file (see \`sgd-lab schema <setting>\`) or a setting id with a preset:
  sgd-lab plan mnist-mlp --preset paper        what it costs, before it runs
  sgd-lab run admission-linreg                 the cpu preset into results/admission-linreg-cpu
  sgd-lab run studies/admission-fig2a.json --data-dir ../shared/data

The data directory holds one folder per dataset with the original file names
(default: $SGD_LAB_DATA_DIR, else ./data).

Exit codes: 0 done; 1 internal error, suite regression or failed verification; 2 usage or
config error; 3 missing or corrupt data; 4 a run diverged; 5 Redis lost; 130 interrupted.`,
    );
  const settings = ext.plugins.map((p) => p.value.name);
  const settingHelp = `setting id (${settings.join(', ') || 'none installed'}) or study .json file`;
  const presetOption = () => new Option('--preset <name>', `preset of a setting id (default: ${DEFAULT_PRESET}), or a preset group such as paper`);
  const backendOption = () => new Option('--backend <name>', 'tensor backend of tensor settings').choices(BACKEND_NAMES);
  const dataDirOption = () => new Option('--data-dir <dir>', 'data directory (default: $SGD_LAB_DATA_DIR, else ./data)');
  const setOption = () => new Option('--set <path=json>', 'change one field, e.g. --set runs=100 --set options.sampling=with-replacement (repeatable)').argParser(collect);

  const sub = (name: string) => configure(new Command(name), name, io.err, io.out);
  program.addCommand(
    sub('run')
      .description('run a study into a results folder')
      .argument('<study>', settingHelp)
      .addOption(presetOption())
      .option('--out <dir>', 'results folder (default: results/<study name>)')
      .addOption(dataDirOption())
      .addOption(backendOption())
      .addOption(setOption())
      .addOption(new Option('--resume', 'finish an interrupted run in --out, reusing its finished shards').conflicts('force'))
      .addOption(new Option('--force', 'replace the results already in --out').conflicts('resume'))
      .option('--dry-run', 'print the plan (shards, cost, estimated time) and stop; nothing is written')
      .option('--redis <url>', 'compute shards on `sgd-lab worker`s over this Redis')
      .option('--insecure', 'accept a Redis without a password, or off this machine without TLS (refused otherwise)')
      .addOption(new Option('--redis-timeout <seconds>', 'give up when Redis is unreachable this long').argParser(typedParser('positive-number')).default(20))
      .addOption(new Option('--progress <mode>', 'progress on stderr: bar on a terminal, lines elsewhere').choices(['auto', 'bar', 'lines', 'off']).default('auto'))
      .option('--quiet', 'only warnings and errors on stderr')
      .action(async (study: string, o: RunFlags) => setCode(await cmdRun(study, o, io))),
  );
  program.addCommand(
    sub('plan')
      .description('what a study will cost: shards, replica-steps, FLOPs, memory, and the wall time from a short calibration')
      .argument('<study>', settingHelp)
      .addOption(presetOption())
      .addOption(dataDirOption())
      .addOption(backendOption())
      .addOption(setOption())
      .option('--no-calibrate', 'skip the timing: counts, FLOPs and memory only')
      .option('--json', 'print the plan as JSON')
      .action(async (study: string, o: PlanFlags) => setCode(await cmdPlan(study, { ...o, json: o.json === true }, io))),
  );
  program.addCommand(
    sub('validate')
      .description('check study files (or a setting\'s preset) against the schemas, as run would')
      .argument('<studies...>', `study .json files or setting ids`)
      .addOption(presetOption())
      .addOption(setOption())
      .action(async (studies: string[], o: { preset?: string; set?: string[] }) => setCode(await cmdValidate(studies, o, io))),
  );
  program.addCommand(sub('list').description('installed settings with their presets, components, reporters, commands and backends').action(async () => setCode(await cmdList(io))));
  program.addCommand(
    sub('schema')
      .description('print the JSON Schema of a setting\'s study files')
      .argument('<setting>', `setting id (${settings.join(', ')})`)
      .action(async (setting: string) => setCode(await cmdSchema(setting, io))),
  );
  program.addCommand(
    sub('suite')
      .description('run a reproducibility suite and compare every claim\'s verdict with what it expects')
      .argument('<suite>', 'suite .json file')
      .option('--out <dir>', 'where the suite\'s studies go (default: results/suites/<name>)')
      .addOption(dataDirOption())
      .action(async (suite: string, o: { out?: string; dataDir?: string }) => setCode(await runSuiteCommand(suite, o, io))),
  );
  program.addCommand(
    sub('verify')
      .description('run a results folder\'s study again and compare metrics.jsonl byte for byte')
      .argument('<results-dir>', 'results folder')
      .addOption(dataDirOption())
      .action(async (dir: string, o: { dataDir?: string }) => setCode(await runVerifyCommand(dir, o, io))),
  );
  for (const c of ext.commands) {
    for (const [path, cmd] of Object.entries(c.value)) {
      if (typeof cmd?.run !== 'function' || typeof cmd.description !== 'string') {
        io.err(`warning: ${c.packageName} declares command "${path}" without a description and run(args, options); skipped\n`);
        continue;
      }
      addPackageCommand(program, path, cmd, c.packageName, { ...io, setCode });
    }
  }
  finishGroups(program);
  return program;
}

// Everything the CLI prints goes through redaction: no credential reaches a terminal or a CI log.
const stdio: Io = { out: (s) => process.stdout.write(redactSecrets(s)), err: (s) => process.stderr.write(redactSecrets(s)) };

/** Runs the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], io: Io = stdio, earlySignals: readonly NodeJS.Signals[] = []): Promise<number> {
  const uninstall = installSignalHandlers(io, earlySignals);
  let code = 0;
  try {
    const program = await buildProgram(io, (c) => (code = c));
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return commanderExit(err);
    if (err instanceof UsageError) {
      io.err(`usage error: ${err.message}\n(see \`sgd-lab ${err.command ? `${err.command} ` : ''}--help\`)\n`);
      return err.exitCode;
    }
    if (err instanceof UserError) {
      io.err(`error: ${err.message}\n`);
      return err.exitCode;
    }
    io.err(`internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  } finally {
    uninstall();
  }
}
