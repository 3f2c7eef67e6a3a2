/**
 * sgd-lab: run, validate and list studies.
 *
 *   sgd-lab run <study.json | setting-id> [--preset p] [--out dir] [--data-dir d] [--backend b] [--force] [--quiet]
 *   sgd-lab validate <study.json>
 *   sgd-lab list
 *   sgd-lab schema <setting-id>
  sgd-lab suite <suite.json> [--out dir] [--data-dir d]   check claim verdicts against a suite
  sgd-lab verify <results-dir> [--data-dir d]             re-run and compare metrics byte for byte
 *
 * Exit codes: 0 done, 1 internal error, 2 invalid config or arguments, 3 data error,
 * 4 diverged run, 130 interrupted. Results go to the results folder and a summary to stdout;
 * logs and progress go to stderr.
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { resolveStudy, studySchemaFor } from '../config/validate.js';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError, UserError } from '../errors.js';
import { runSession } from '../engine/session.js';
import { closeLogger, createLogger } from '../log/logger.js';
import { builtinReporters, ResultFiles } from '../io/builtin-reporters.js';
import { discoverExtensions, type Found } from './discover.js';
import { progressObserver } from './progress.js';
import { cmdSuite, cmdVerify } from './suite.js';
import type { AnyPlugin } from '../plugin.js';
import type { RemoteShards } from '../engine/run-study.js';

const USAGE = `usage:
  sgd-lab run <study.json | setting-id> [--preset p] [--out dir] [--data-dir d] [--backend b]
              [--set field.path=json]... [--resume | --force] [--quiet]
              [--redis <url> [--redis-timeout seconds]]   shards computed by \`sgd-lab worker\`s
  sgd-lab validate <study.json>
  sgd-lab list
  sgd-lab schema <setting-id>
  sgd-lab suite <suite.json> [--out dir] [--data-dir d]    check claim verdicts against a suite
  sgd-lab verify <results-dir> [--data-dir d]              re-run, compare metrics byte for byte

The data directory holds one folder per dataset with the original file names
(default: $SGD_LAB_DATA_DIR, else ./data).`;

/** Package that computes shards on workers; loaded by name only when --redis is given. */
export const DISTRIBUTED_PACKAGE = '@sgd-lab/distributed';

async function distributedRemote(url: string, study: StudyConfig, unreachableMs: number): Promise<RemoteShards & { close(): Promise<void> }> {
  let mod: { createRemote(o: { url: string; study: StudyConfig; unreachableMs: number }): Promise<RemoteShards & { close(): Promise<void> }> };
  try {
    mod = await import(DISTRIBUTED_PACKAGE);
  } catch {
    throw new ConfigError('command line', [`--redis: needs ${DISTRIBUTED_PACKAGE}; install it with \`npm install ${DISTRIBUTED_PACKAGE}\``]);
  }
  return mod.createRemote({ url, study, unreachableMs });
}

/** The usage text, with the commands installed packages add. */
async function usage(): Promise<string> {
  const { commands } = await discoverExtensions();
  const extra = commands.flatMap((c) => Object.values(c.value).map((cmd) => `  ${cmd.usage}`));
  return extra.length ? USAGE.replace('\n\nThe data directory', `\n${extra.join('\n')}\n\nThe data directory`) : USAGE;
}

/** Preset used when `run` is given a setting id without --preset. */
export const DEFAULT_PRESET = 'cpu';

function corePackage(): { name: string; version: string } {
  const here = fileURLToPath(new URL('../../package.json', import.meta.url));
  return JSON.parse(readFileSync(here, 'utf8'));
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

async function findPlugin(setting: unknown, source: string): Promise<Found<AnyPlugin>> {
  const { plugins, unbuilt } = await discoverExtensions();
  const ids = plugins.map((p) => p.value.name);
  if (typeof setting !== 'string') throw new ConfigError(source, [`/setting: missing; one of ${ids.join(', ') || '(no plugin installed)'}`]);
  const found = plugins.find((p) => p.value.name === setting);
  if (!found) {
    const notBuilt = [...unbuilt].map(([pkg, file]) => `${pkg} (${file} is missing: run npm run build)`);
    throw new ConfigError(source, [
      `/setting: unknown setting "${setting}"; installed: ${ids.join(', ') || '(none)'}${notBuilt.length ? `; not built: ${notBuilt.join(', ')}` : ''}`,
    ]);
  }
  return found;
}

interface Target {
  raw: Record<string, unknown>;
  source: string;
  plugin: Found<AnyPlugin>;
}

async function loadTarget(arg: string, preset: string | undefined): Promise<Target> {
  if (arg.endsWith('.json') || existsSync(arg)) {
    const raw = readJson(arg) as Record<string, unknown>;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(arg, ['/: must be a JSON object']);
    return { raw, source: arg, plugin: await findPlugin(raw.setting, arg) };
  }
  const plugin = await findPlugin(arg, 'command line');
  return { raw: { setting: arg, preset: preset ?? DEFAULT_PRESET }, source: `${arg} --preset ${preset ?? DEFAULT_PRESET}`, plugin };
}

/**
 * Applies `--set a.b.c=value` to a raw study: value is JSON when it parses, else a string.
 * Lets a run change any field of a study or preset without writing a file.
 */
export function applySet(raw: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError('command line', [`--set ${assignment}: expected path=value, e.g. --set runs=100`]);
  const path = assignment.slice(0, eq).split('.');
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  let o: Record<string, unknown> = raw;
  for (const key of path.slice(0, -1)) {
    if (typeof o[key] !== 'object' || o[key] === null) o[key] = {};
    o = o[key] as Record<string, unknown>;
  }
  o[path[path.length - 1]] = value;
}

function dataDirFrom(flag: string | undefined): string {
  return resolve(flag ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
}

async function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      preset: { type: 'string' },
      out: { type: 'string' },
      'data-dir': { type: 'string' },
      backend: { type: 'string' },
      force: { type: 'boolean', default: false },
      resume: { type: 'boolean', default: false },
      redis: { type: 'string' },
      'redis-timeout': { type: 'string', default: '20' },
      quiet: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
    },
  });
  if (positionals.length !== 1) throw new ConfigError('command line', ['run takes one study file or setting id']);
  const target = await loadTarget(positionals[0], values.preset);
  for (const assignment of values.set ?? []) applySet(target.raw, assignment);
  const plugin = target.plugin.value;
  const presetName = values.preset ?? (target.raw.preset as string | undefined);
  const parts = presetName && plugin.presetGroups?.[presetName];
  const runs: { study: StudyConfig; sub?: string }[] = parts
    ? parts.map((p) => ({ study: resolveStudy({ ...target.raw, preset: p, name: target.raw.name ? `${target.raw.name}-${p}` : undefined }, plugin, target.source, p), sub: p }))
    : [{ study: resolveStudy(target.raw, plugin, target.source, values.preset) }];
  const { reporters, components } = await discoverExtensions();
  const packages: Record<string, string> = {
    [corePackage().name]: corePackage().version,
    [target.plugin.packageName]: target.plugin.version,
    ...Object.fromEntries(reporters.map((r) => [r.packageName, r.version])),
  };
  const baseOut = resolve(values.out ?? join('results', parts ? `${plugin.name}-${presetName}` : runs[0].study.name));
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\ninterrupted: finishing the current step and writing results (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  let code = 0;
  try {
    for (const { study, sub } of runs) {
      if (values.backend) study.backend = values.backend;
      const outDir = sub ? join(baseOut, sub) : baseOut;
      if (existsSync(join(outDir, ResultFiles.manifest)) && !values.force && !values.resume) {
        throw new ConfigError('command line', [`--out: ${outDir} already holds results; pass --resume to finish them, --force to replace them, or choose another --out`]);
      }
      const logger = createLogger({ file: join(outDir, ResultFiles.log), quiet: values.quiet });
      try {
        logger.info(`study ${study.name}: ${plugin.name}, b in {${study.batchSizes.join(', ')}}, ${study.runs} runs, ${study.steps ?? study.epochs} ${study.steps !== undefined ? 'steps' : 'epochs'} -> ${outDir}`);
        const observers = process.stderr.isTTY && !values.quiet ? [progressObserver()] : [];
        const remote = values.redis ? await distributedRemote(values.redis, study, Number(values['redis-timeout']) * 1000) : undefined;
        const result = await runSession({
          study,
          plugin,
          packages,
          outDir,
          dataDir: dataDirFrom(values['data-dir']),
          logger,
          reporters: reporters.map((r) => r.value),
          components,
          observers,
          resume: values.resume,
          remote,
          signal: controller.signal,
        }).finally(() => remote?.close());
        if (result.error !== undefined) {
          const err = result.error;
          logger.error(err instanceof UserError ? err.message : `internal error: ${(err as Error)?.stack ?? String(err)}`);
          code = err instanceof UserError ? err.exitCode : 1;
          break;
        }
        logger.info(`results: ${outDir}`);
      } finally {
        await closeLogger(logger);
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
  return code;
}

async function cmdValidate(args: string[]): Promise<number> {
  if (args.length !== 1) throw new ConfigError('command line', ['validate takes one study file']);
  const target = await loadTarget(args[0], undefined);
  const study = resolveStudy(target.raw, target.plugin.value, target.source);
  process.stdout.write(`${args[0]}: valid ${study.setting} study "${study.name}"\n`);
  return 0;
}

async function cmdList(): Promise<number> {
  const { plugins, reporters } = await discoverExtensions();
  const lines = ['settings:'];
  for (const p of plugins) {
    lines.push(`  ${p.value.name.padEnd(22)} ${p.value.description}  (${p.packageName}@${p.version})`);
    for (const [name, preset] of Object.entries(p.value.presets)) lines.push(`    preset ${name.padEnd(14)} ${preset.description ?? ''}`);
    for (const [name, parts] of Object.entries(p.value.presetGroups ?? {})) lines.push(`    preset ${name.padEnd(14)} runs ${parts.join(' + ')}`);
  }
  lines.push('components (use in a study as "components": { "sampler" | "optimizer": id }):');
  for (const c of (await discoverExtensions()).components.describe()) lines.push(`  ${c.kind.slice(0, -1).padEnd(10)} ${c.id.padEnd(22)} ${c.description}  (${c.from})`);
  lines.push('reporters:');
  for (const r of [...builtinReporters, ...reporters.map((x) => x.value)]) lines.push(`  ${r.name.padEnd(22)} ${r.description}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function cmdSchema(args: string[]): Promise<number> {
  const plugin = await findPlugin(args[0], 'command line');
  process.stdout.write(JSON.stringify(studySchemaFor(plugin.value), null, 2) + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await cmdRun(rest);
      case 'validate':
        return await cmdValidate(rest);
      case 'list':
        return await cmdList();
      case 'schema':
        return await cmdSchema(rest);
      case 'suite':
        return await cmdSuite(rest);
      case 'verify':
        return await cmdVerify(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write((await usage()) + '\n');
        return command === undefined ? 2 : 0;
      default: {
        const { commands } = await discoverExtensions();
        // Several packages may add one command (\`data fetch mnist\`, \`data fetch yelp\`): the first
        // that says it handles these arguments runs, else the first without a \`handles\`.
        const candidates = commands.map((c) => c.value[command]).filter((c) => c !== undefined);
        const found = candidates.find((c) => c.handles?.(rest)) ?? candidates.find((c) => !c.handles);
        if (found) return await found.run(rest);
        if (candidates.length > 0) {
          process.stderr.write(`error: ${command} ${rest.join(' ')}: no installed package handles this; known:\n${candidates.map((c) => `  ${c.usage}`).join('\n')}\n`);
          return 2;
        }
        process.stderr.write(`unknown command "${command}"\n${await usage()}\n`);
        return 2;
      }
    }
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`error: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
