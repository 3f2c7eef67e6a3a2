/**
 * One study from a validated config to a results folder: registers the plugin in a child
 * container, writes the manifest first, streams events to the reporters, and on any ending
 * (completed, cancelled, diverged, failed) closes every reporter so nothing computed is lost,
 * then writes the manifest again with its status and the digests of what was written.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { Logger } from 'winston';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError, UserError } from '../errors.js';
import { gitCommit, writeFileAtomic } from '../io/files.js';
import { DirectoryShardStore } from '../io/shard-store.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ResultFiles, builtinReporters } from '../io/builtin-reporters.js';
import type { AnyPlugin, PluginContext, Reporter } from '../plugin.js';
import { Tokens } from '../tokens.js';
import type { MetricObserver, StudyEvent } from './records.js';
import { runStudy, type InitialPointInfo, type RemoteShards } from './run-study.js';
import { ComponentRegistry } from './components.js';
import type { Model } from './contracts.js';
import { CORE_FIGURES } from './figures.js';
import { checkPluginResources, formatBytes, type MachineResources } from './resources.js';
import { dependencyChanges, resultDependencies, resultFingerprint, type ResultDependencies } from './fingerprint.js';
import { redactSecrets } from '../log/logger.js';

export interface SessionOptions {
  study: StudyConfig;
  plugin: AnyPlugin;
  /** Versions of the packages involved, for the manifest. */
  packages: Record<string, string>;
  outDir: string;
  dataDir: string;
  logger: Logger;
  /** Reporters found besides the built-in ones. */
  reporters?: readonly Reporter[];
  /** Components of every installed package (the study's plugin's own are always included). */
  components?: ComponentRegistry;
  /** Extra observers (progress display, tests). */
  observers?: readonly MetricObserver[];
  signal?: AbortSignal;
  container?: DependencyContainer;
  /** Reuse the finished shards of an interrupted run of the same study in `outDir`. */
  resume?: boolean;
  /** Compute shards on distributed workers. */
  remote?: RemoteShards;
  /** The setting's `package@version`, part of the result fingerprint (engine/fingerprint.ts). */
  pluginPackage?: string;
  /** The machine the limits are checked against; default this one. */
  machine?: MachineResources;
}

export interface SessionResult {
  status: 'completed' | 'cancelled' | 'failed';
  outDir: string;
  error?: unknown;
  manifest: Record<string, unknown>;
}

/**
 * Resolves reporter ids, with an error listing the known ones. No ids: the built-in reporters and
 * every installed one that is enabled by default.
 */
export function pickReporters(ids: readonly string[], extra: readonly Reporter[] = []): Reporter[] {
  if (ids.length === 0) return [...builtinReporters, ...extra.filter((r) => r.enabledByDefault)];
  const known = new Map([...builtinReporters, ...extra].map((r) => [r.name, r]));
  return ids.map((id, i) => {
    const r = known.get(id);
    if (!r) throw new ConfigError('study', [`/reporters/${i}: unknown reporter "${id}"; known: ${[...known.keys()].join(', ')}`]);
    return r;
  });
}

/** Overrides the study's sampler and optimizer by the components it names. */
export function applyComponents(child: DependencyContainer, study: StudyConfig, plugin: AnyPlugin, registry = new ComponentRegistry()): void {
  const wanted = study.components;
  if (!wanted?.sampler && !wanted?.optimizer) return;
  if (plugin.components) registry.add(plugin.name, plugin.components);
  if (!child.isRegistered(Tokens.Model, true)) throw new ConfigError(study.name, ['/components: this study runs no Monte Carlo model to give components to']);
  const ctx = { study, model: child.resolve<Model>(Tokens.Model), container: child };
  if (wanted.sampler) child.register(Tokens.SamplerFactory, { useValue: registry.sampler(wanted.sampler, ctx) });
  if (wanted.optimizer) child.register(Tokens.Optimizer, { useValue: registry.optimizer(wanted.optimizer, ctx) });
}

export async function runSession(opts: SessionOptions): Promise<SessionResult> {
  const { study, plugin, logger, outDir } = opts;
  const reporters = pickReporters(study.reporters, opts.reporters);
  const child = (opts.container ?? rootContainer).createChildContainer();
  const dataFiles: { path: string; sha256: string; description?: string }[] = [];
  const facts: Record<string, unknown> = {};
  const artifacts = new Map<string, string>();
  const context: PluginContext = {
    dataDir: opts.dataDir,
    logger,
    recordDataFile: (path, sha256, description) => dataFiles.push({ path, sha256, description }),
    recordFact: (k, v) => (facts[k] = v),
    writeArtifact: (name, content) => {
      if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) throw new Error(`artifact name "${name}": use letters, digits, '.', '_' and '-'`);
      artifacts.set(name, content);
    },
  };
  child.register(Tokens.Study, { useValue: study });
  child.register(Tokens.Context, { useValue: context });
  child.register(Tokens.Logger, { useValue: logger });
  // Limits first: from the study and the setting's sizes alone, before data is loaded or anything
  // allocated (engine/resources.ts). Distributed studies are timed on their workers, not here.
  const estimate = checkPluginResources(plugin, study, opts.dataDir, opts.machine, { checkTime: !opts.remote });
  logger.verbose(`resources: about ${formatBytes(estimate.memoryBytes)} of memory (limit ${formatBytes(estimate.memoryLimitBytes)}), ${estimate.replicaSteps} replica-steps`);
  // Data is loaded here: a missing or corrupt file fails before the results folder is touched.
  await plugin.register(child, study, context);
  applyComponents(child, study, plugin, opts.components);

  // Everything a result depends on: shards and jobs of any other study, data, code or backend
  // are never reused (engine/fingerprint.ts).
  const dependsOn = resultDependencies(study, dataFiles.map((d) => d.sha256), opts.pluginPackage, facts);
  const fingerprint = dependsOn.study;
  const resultFp = resultFingerprint(dependsOn);
  const manifestFile = join(outDir, ResultFiles.manifest);
  if (opts.resume && existsSync(manifestFile)) {
    const previous = JSON.parse(readFileSync(manifestFile, 'utf8')) as { fingerprint?: string; study?: { name?: string }; data?: { path: string; sha256: string }[]; resultFingerprint?: string; dependsOn?: ResultDependencies };
    if (previous.fingerprint !== fingerprint) {
      throw new ConfigError('--resume', [
        `${outDir} holds results of another study (${previous.study?.name ?? 'unknown'}, fingerprint ${String(previous.fingerprint).slice(0, 12)}); ` +
          `this one is ${fingerprint.slice(0, 12)}. Resume with the same config, or choose another --out`,
      ]);
    }
    // The same config on other data would mix results of two data sets: every data file must be
    // the one the saved shards were computed from.
    const before = new Map((previous.data ?? []).map((d) => [d.path, d.sha256]));
    const now = new Map(dataFiles.map((d) => [d.path, d.sha256]));
    const changed = [...new Set([...before.keys(), ...now.keys()])].filter((f) => before.get(f) !== now.get(f));
    if (changed.length) {
      throw new ConfigError('--resume', changed.map((f) => `${f}: the data changed since the saved shards were computed (sha256 ${before.get(f)?.slice(0, 12) ?? 'absent'} then, ${now.get(f)?.slice(0, 12) ?? 'absent'} now); run with --force to start again`));
    }
    if (previous.dependsOn && previous.resultFingerprint !== resultFp) {
      throw new ConfigError('--resume', dependencyChanges(previous.dependsOn, dependsOn).map((c) => `${c} changed since the saved shards were computed: their results would not be this code's; run with --force to start again`));
    }
  }
  await fs.mkdir(outDir, { recursive: true });
  const shardStore = new DirectoryShardStore(outDir, logger, resultFp);
  if (!opts.resume) shardStore.clear();
  const initialPoints: InitialPointInfo[] = [];
  const started = new Date();
  const manifest: Record<string, unknown> = {
    tool: 'sgd-batch-lab',
    status: 'running',
    fingerprint,
    resultFingerprint: resultFp,
    dependsOn,
    study,
    setting: plugin.name,
    seeds: {
      root: study.seed,
      streams: 'xoshiro128** keyed by (seed, purpose, initPoint[, batchSize, run]); purposes: init=1, batch=2, data=3, model=4, analysis=5 (bootstrap)',
    },
    packages: opts.packages,
    runtime: { node: process.version, platform: `${process.platform}-${process.arch}` },
    git: gitCommit(),
    data: dataFiles,
    facts,
    initialPoints,
    // How reporters draw the records: the setting's figures, then core's (engine/figures.ts).
    figures: [...(plugin.figures ?? []), ...CORE_FIGURES],
    startedAt: started.toISOString(),
  };
  const writeManifest = () => writeFileAtomic(join(outDir, ResultFiles.manifest), JSON.stringify(manifest, null, 2) + '\n');
  await writeManifest();
  // A process that exits before the study ends (a second Ctrl-C, process.exit anywhere) still
  // leaves a manifest that says so, written synchronously from the exit hook.
  const onExit = () => {
    Object.assign(manifest, { status: 'cancelled', error: 'the process exited before the study ended', finishedAt: new Date().toISOString() });
    try {
      writeFileSync(join(outDir, ResultFiles.manifest), JSON.stringify(manifest, null, 2) + '\n');
    } catch {
      /* nothing more can be done while exiting */
    }
  };
  process.once('exit', onExit);
  const artifactOutputs: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, content] of artifacts) {
    await writeFileAtomic(join(outDir, name), content);
    artifactOutputs[name] = { sha256: createHash('sha256').update(content).digest('hex'), bytes: Buffer.byteLength(content) };
  }

  const observers: MetricObserver[] = [
    ...reporters.map((r) => r.create({ outDir, study, logger })),
    ...(child.isRegistered(Tokens.MetricObserver, true) ? child.resolveAll<MetricObserver>(Tokens.MetricObserver) : []),
    ...(opts.observers ?? []),
  ];
  // Hooks may be async; a promise chain keeps them in stream order.
  let chain: Promise<void> = Promise.resolve();
  const dispatch = (e: StudyEvent) => {
    for (const o of observers) {
      const hook = o[e.type] as ((ev: StudyEvent) => void | Promise<void>) | undefined;
      if (!hook) continue;
      chain = chain.then(() => hook.call(o, e));
    }
  };

  let status: SessionResult['status'] = 'completed';
  let error: unknown;
  await new Promise<void>((resolve) => {
    runStudy({
      container: child,
      study,
      signal: opts.signal,
      onInitialPoint: (info) => initialPoints.push(info),
      shardStore,
      remote: opts.remote,
      data: dataFiles,
      dependsOn,
    }).subscribe({
      next: (e) => {
        if (e.type === 'studyEnd') status = e.status;
        dispatch(e);
      },
      error: (err: unknown) => {
        error = err;
        if (status === 'completed') status = 'failed';
        resolve();
      },
      complete: () => resolve(),
    });
  });
  await chain.catch((err: unknown) => {
    error ??= err;
    status = 'failed';
  });
  for (const o of observers) {
    try {
      if (error !== undefined) await o.error?.(error);
      await o.close?.();
    } catch (err) {
      logger.error(`a reporter failed while closing: ${String(err)}`);
    }
  }
  const outputs: Record<string, unknown> = { ...artifactOutputs };
  for (const o of observers) Object.assign(outputs, o.outputs?.());
  Object.assign(manifest, {
    status,
    error: error === undefined ? undefined : redactSecrets(error instanceof UserError ? error.message : String(error)),
    finishedAt: new Date().toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    resumedShards: shardStore.reused,
    outputs,
  });
  process.off('exit', onExit);
  await writeManifest();
  return { status, outDir, error, manifest };
}
