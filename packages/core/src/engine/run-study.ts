/**
 * The run engine: a scheduler over shard sources. Each shard of the plan (engine/plan.ts) comes
 * from the shard store (finished before), from a remote executor (distributed workers) or from
 * this process (engine/shard.ts); the shards of one (b, initial point) are merged in run order
 * (engine/merge.ts) and turned into records, then analyses and claims read the records. Events go
 * out on an RxJS Observable.
 */
import { Observable } from 'rxjs';
import type { DependencyContainer } from 'tsyringe';
import type { StudyConfig } from '../config/study-config.js';
import { CancelledError } from '../errors.js';
import { Tokens } from '../tokens.js';
import type { Analysis, Claim, ShardSpec } from './contracts.js';
import { groupRecords, mergeShardResults, stepRecords } from './merge.js';
import { planShards } from './plan.js';
import { RecordIndex } from './record-index.js';
import type { ResultDependencies } from './fingerprint.js';
import type { MetricRecord, StudyEvent } from './records.js';
import { hashTheta, runShard, scheduleOf, shardContext, shardKey, type ShardResult } from './shard.js';

/** Initial parameters at most this long are written into the manifest verbatim. */
export const MAX_THETA0_IN_MANIFEST = 10_000;

/** The initial point of one study, reported before any run. */
export interface InitialPointInfo {
  initPoint: number;
  size: number;
  sha256: string;
  values?: number[];
}

export interface RunStudyOptions {
  /** The child container the plugin registered into. */
  container: DependencyContainer;
  study: StudyConfig;
  /** Aborting stops after the current step; records emitted so far stay valid. */
  signal?: AbortSignal;
  /** Called once per initial point with θ0 (for the manifest). */
  onInitialPoint?(info: InitialPointInfo): void;
  /** Where finished shards are kept, so a killed study resumes with only the unfinished ones. */
  shardStore?: ShardStore;
  /** Computes shards elsewhere (distributed workers); results are merged in plan order. */
  remote?: RemoteShards;
  /** The data files the study read (for remote shards: workers must read the same). */
  data?: readonly DataFileRecord[];
  /** What the results depend on (for remote shards: job ids, and workers check their code). */
  dependsOn?: ResultDependencies;
}

/** A data file a study read, as the manifest lists it. */
export interface DataFileRecord {
  path: string;
  sha256: string;
  description?: string;
}

/** Shards computed by other processes or machines. */
export interface RemoteShards {
  /**
   * Starts computing a shard. `data` are the coordinator's data files: a worker reading other
   * data (another sha256) refuses the shard, and the job id depends on them, so results computed
   * on other data are never reused.
   */
  submit(shard: ShardSpec, data: readonly DataFileRecord[], dependsOn?: ResultDependencies): Promise<ShardResult>;
}

/** A remote executor's open connection (see `RemoteExecutor` in plugin.ts). */
export interface RemoteConnection extends RemoteShards {
  close(): Promise<void>;
}

/** Persistence of finished shards (see io/shard-store.ts). */
export interface ShardStore {
  load(shard: ShardSpec): ShardResult | undefined;
  save(shard: ShardSpec, result: ShardResult): Promise<void>;
}

/** Runs a study whose plugin has registered into `container`. Subscribing starts it. */
export function runStudy(opts: RunStudyOptions): Observable<StudyEvent> {
  return new Observable<StudyEvent>((subscriber) => {
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    // A signal that fired before the study was subscribed still cancels it.
    if (opts.signal?.aborted) abort.abort();
    opts.signal?.addEventListener('abort', onOuterAbort);
    const started = performance.now();
    execute(opts, abort.signal, (e) => subscriber.next(e))
      .then(() => {
        subscriber.next({ type: 'studyEnd', status: 'completed', seconds: (performance.now() - started) / 1000 });
        subscriber.complete();
      })
      .catch((err: unknown) => {
        const status = err instanceof CancelledError ? 'cancelled' : 'failed';
        subscriber.next({ type: 'studyEnd', status, seconds: (performance.now() - started) / 1000 });
        subscriber.error(err);
      });
    return () => {
      opts.signal?.removeEventListener('abort', onOuterAbort);
      abort.abort();
    };
  });
}

/** Rejects with CancelledError as soon as `signal` fires. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(new CancelledError());
    const onAbort = () => reject(new CancelledError());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The plan's shards grouped by (initial point, b), in plan order. */
function groupsOf(shards: ShardSpec[]): ShardSpec[][] {
  const groups: ShardSpec[][] = [];
  for (const s of shards) {
    const last = groups.at(-1);
    if (last && last[0].batchSize === s.batchSize && last[0].initPoint === s.initPoint) last.push(s);
    else groups.push([s]);
  }
  return groups;
}

async function execute(opts: RunStudyOptions, signal: AbortSignal, emit: (e: StudyEvent) => void): Promise<void> {
  const { study, container } = opts;
  const ctx = shardContext(container, study);
  const claims = container.isRegistered(Tokens.Claim, true) ? container.resolveAll<Claim>(Tokens.Claim) : [];
  const analyses = container.isRegistered(Tokens.Analysis, true) ? container.resolveAll<Analysis>(Tokens.Analysis) : [];
  const wanted = new Set(study.metrics);
  const index = new RecordIndex();
  const shards = ctx.model ? planShards(study, ctx.model) : [];
  const put = (r: MetricRecord) => {
    if (wanted.size > 0 && !wanted.has(r.metric)) return;
    index.add(r);
    emit({ type: 'metric', record: r });
  };

  emit({
    type: 'studyStart',
    study: study.name,
    setting: study.setting,
    plannedShards: shards.length,
    plannedSteps: shards.reduce((n, s) => n + s.steps, 0),
    plannedReplicaSteps: shards.reduce((n, s) => n + s.steps * s.runCount, 0),
  });

  for (let initPoint = 0; initPoint < study.initPoints; initPoint++) {
    const theta0 = ctx.theta0(initPoint);
    opts.onInitialPoint?.({ initPoint, size: theta0.length, sha256: hashTheta(theta0), values: theta0.length <= MAX_THETA0_IN_MANIFEST ? Array.from(theta0) : undefined });
    for (const oracle of ctx.oracles) for (const r of oracle.compute(study, initPoint, theta0)) put(r);
  }

  // Sources: stored first; with a remote executor every other shard is submitted up front.
  const stored = new Map<string, ShardResult>();
  for (const s of shards) {
    const r = opts.shardStore?.load(s);
    if (r) stored.set(shardKey(s), r);
  }
  const pending = new Map<string, Promise<ShardResult>>();
  if (opts.remote) {
    for (const s of shards) {
      if (stored.has(shardKey(s))) continue;
      const p = opts.remote.submit(s, opts.data ?? [], opts.dependsOn);
      p.catch(() => undefined); // awaited in plan order below; keeps early failures from being unhandled
      pending.set(shardKey(s), p);
    }
  }

  for (const group of groupsOf(shards)) {
    const results: ShardResult[] = [];
    // A group of one shard computed here emits its records step by step as they are computed.
    const live = group.length === 1 && !stored.has(shardKey(group[0])) && !pending.has(shardKey(group[0]));
    const layout = { epochLength: scheduleOf(ctx, group[0]).epochLength, samplingFactor: ctx.samplers?.samplingFactor?.(group[0].batchSize) };
    for (const shard of group) {
      if (signal.aborted) throw new CancelledError();
      emit({ type: 'shardStart', batchSize: shard.batchSize, initPoint: shard.initPoint, runStart: shard.runStart, runCount: shard.runCount, steps: shard.steps });
      const t0 = performance.now();
      const key = shardKey(shard);
      let result = stored.get(key);
      const reused = result !== undefined;
      if (!result && pending.has(key)) {
        result = await untilAborted(pending.get(key)!, signal);
        await opts.shardStore?.save(shard, result);
      }
      if (!result) {
        result = await runShard(ctx, shard, {
          signal,
          onStep: live ? (t, st) => stepRecords(study, shard, t, st, layout).forEach(put) : undefined,
          onProgress: (step, steps) => emit({ type: 'progress', batchSize: shard.batchSize, initPoint: shard.initPoint, step, steps, runCount: shard.runCount }),
        });
        await opts.shardStore?.save(shard, result);
      }
      results.push(result);
      emit({ type: 'shardEnd', batchSize: shard.batchSize, initPoint: shard.initPoint, runStart: shard.runStart, runCount: shard.runCount, seconds: (performance.now() - t0) / 1000, reused });
    }
    if (!live) groupRecords(study, group[0], mergeShardResults(results), layout.samplingFactor).forEach(put);
  }

  for (const analysis of analyses) for (const r of analysis.analyze(index, study)) put(r);
  for (const claim of claims) for (const c of claim.evaluate(index, study)) emit({ type: 'claim', claim: c });
}
