/**
 * The run engine: plans shards, steps every replica of a shard together, reduces across runs each
 * step, and emits flat records on an RxJS Observable. Oracles and claims use the same stream.
 */
import { Observable } from 'rxjs';
import type { DependencyContainer } from 'tsyringe';
import { createHash } from 'node:crypto';
import { learningRateAt, type StudyConfig } from '../config/study-config.js';
import { CancelledError, DivergenceError } from '../errors.js';
import { RandomStream, StreamPurpose } from '../random/stream.js';
import {
  mergeMoments,
  meanInterval,
  scalarMoments,
  traceVariance,
  varianceInterval,
  type RunMoments,
} from '../stats/across-runs.js';
import { Tokens } from '../tokens.js';
import type { Analysis, BlockMoments, Claim, GradientReport, Model, Optimizer, Oracle, SamplerFactory, ShardSchedule, ShardSpec } from './contracts.js';
import { denseSgd } from './dense.js';
import { RecordIndex } from './record-index.js';
import type { MetricRecord, StudyEvent } from './records.js';

/** Initial parameters at most this long are written into the manifest verbatim. */
export const MAX_THETA0_IN_MANIFEST = 10_000;

/** How often (ms) a long shard yields to the event loop, so Ctrl-C and progress get through. */
const YIELD_EVERY_MS = 50;

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
  /** Worker mode: run this one shard only; no oracles, analyses or claims. */
  onlyShard?: ShardSpec;
}

/** Shards computed by other processes or machines. */
export interface RemoteShards {
  /** Starts computing a shard; `alone` is whether it is the only shard of its (b, initial point). */
  submit(shard: ShardSpec, alone: boolean): Promise<ShardResult>;
}

/** Identity of a shard within a study. */
export const shardKey = (s: ShardSpec) => `${s.batchSize}|${s.initPoint}|${s.runStart}|${s.runCount}`;

/** What a finished shard leaves: its records (a shard alone in its group) or its per-step moments. */
export type ShardResult =
  | { kind: 'records'; records: MetricRecord[] }
  | { kind: 'stats'; epochLength?: number; steps: [number, StepStats][] };

/** Persistence of finished shards (see io/shard-store.ts). */
export interface ShardStore {
  load(shard: ShardSpec): ShardResult | undefined;
  save(shard: ShardSpec, result: ShardResult): Promise<void>;
}

/** The planned shards of a study, in the order they run (steps from the model's schedule when it has one). */
export function planShards(study: StudyConfig, model?: Pick<Model, 'schedule'>): ShardSpec[] {
  const steps = study.steps ?? 0;
  const per = study.runsPerShard ?? study.runs;
  const shards: ShardSpec[] = [];
  for (let initPoint = 0; initPoint < study.initPoints; initPoint++) {
    for (const batchSize of study.batchSizes) {
      for (let runStart = 0; runStart < study.runs; runStart += per) {
        const shard = { batchSize, initPoint, runStart, runCount: Math.min(per, study.runs - runStart), steps };
        shard.steps = model?.schedule?.(shard, study).steps ?? steps;
        shards.push(shard);
      }
    }
  }
  return shards;
}

function hashTheta(theta: Float64Array): string {
  return createHash('sha256').update(Buffer.from(theta.buffer, theta.byteOffset, theta.byteLength)).digest('hex');
}

/** What an oracle-only study needs of a model: θ0. */
type InitOnly = Pick<Model, 'initialParameters'>;

/** Per-step statistics of one (b, initPoint) while its shards run. */
export interface StepStats {
  grad?: BlockMoments;
  full?: BlockMoments;
  difference?: BlockMoments;
  scalars: Record<string, RunMoments>;
}

function mergeBlock(a: BlockMoments | undefined, b: BlockMoments | undefined): BlockMoments | undefined {
  if (!a) return b;
  if (!b) return a;
  const blocks = a.blocks && b.blocks ? Object.fromEntries(Object.keys(a.blocks).map((k) => [k, mergeMoments(a.blocks![k], b.blocks![k])])) : undefined;
  return { all: mergeMoments(a.all, b.all), blocks };
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

async function execute(opts: RunStudyOptions, signal: AbortSignal, emit: (e: StudyEvent) => void): Promise<void> {
  const { study, container } = opts;
  const model = container.isRegistered(Tokens.Model, true) ? container.resolve<Model>(Tokens.Model) : undefined;
  const optimizer = container.isRegistered(Tokens.Optimizer, true) ? container.resolve<Optimizer>(Tokens.Optimizer) : (denseSgd as Optimizer);
  const oracles = container.isRegistered(Tokens.Oracle, true) ? container.resolveAll<Oracle>(Tokens.Oracle) : [];
  const claims = container.isRegistered(Tokens.Claim, true) ? container.resolveAll<Claim>(Tokens.Claim) : [];
  const analyses = container.isRegistered(Tokens.Analysis, true) ? container.resolveAll<Analysis>(Tokens.Analysis) : [];
  const initModel = model ?? container.resolve<InitOnly>(Tokens.Initializer);
  const wanted = new Set(study.metrics);
  const wants = (metric: string) => wanted.size === 0 || wanted.has(metric);
  const index = new RecordIndex();
  const only = opts.onlyShard;
  const shards = (model ? planShards(study, model) : []).filter((s) => !only || shardKey(s) === shardKey(only));
  if (only && shards.length === 0) throw new Error(`shard ${shardKey(only)} is not part of study ${study.name}`);
  const level = study.confidenceLevel;

  const put = (r: MetricRecord) => {
    if (!wants(r.metric)) return;
    index.add(r);
    emit({ type: 'metric', record: r });
  };
  const base = { study: study.name, setting: study.setting };

  emit({ type: 'studyStart', ...base, plannedShards: shards.length, plannedSteps: shards.reduce((n, s) => n + s.steps, 0), plannedReplicaSteps: shards.reduce((n, s) => n + s.steps * s.runCount, 0) });

  const thetas = new Map<number, Float64Array>();
  for (let initPoint = 0; initPoint < study.initPoints; initPoint++) {
    if (only && initPoint !== only.initPoint) continue;
    const theta0 = initModel.initialParameters(new RandomStream([study.seed, StreamPurpose.init, initPoint]), initPoint);
    thetas.set(initPoint, theta0);
    opts.onInitialPoint?.({
      initPoint,
      size: theta0.length,
      sha256: hashTheta(theta0),
      values: theta0.length <= MAX_THETA0_IN_MANIFEST ? Array.from(theta0) : undefined,
    });
    if (!only) for (const oracle of oracles) for (const r of oracle.compute(study, initPoint, theta0)) put(r);
  }

  const emitStep = (shard: ShardSpec, t: number, s: StepStats, epochLength?: number) => {
    const common = { ...base, batchSize: shard.batchSize, initPoint: shard.initPoint, step: t, estimator: 'monte_carlo' as const };
    // Gradients at step t belong to the epoch being run (1-based); scalars evaluated before step
    // t = e * L describe the parameters after e completed epochs.
    const gradEpoch = epochLength ? { epoch: Math.floor(t / epochLength) + 1 } : {};
    const scalarEpoch = epochLength ? { epoch: Math.floor(t / epochLength) } : {};
    const variance = (metric: string, m: BlockMoments | undefined) => {
      if (!m) return;
      const one = (mm: RunMoments, layer?: string) => {
        const ci = varianceInterval(mm, level);
        put({ ...common, ...gradEpoch, metric, layer, value: traceVariance(mm), runs: mm.n, ciLow: ci.low, ciHigh: ci.high });
      };
      if (m.blocks) {
        for (const [name, mm] of Object.entries(m.blocks)) one(mm, name);
        one(m.all, 'all');
      } else one(m.all);
    };
    variance('grad_variance', s.grad);
    variance('full_grad_variance', s.full);
    if (s.difference && s.grad) {
      // R ||mean(g - grad L)||^2 / tr Var(g - grad L): about 1 when E[g_t] = E[grad L(w_t)].
      const d = s.difference.all;
      let sq = 0;
      for (const v of d.mean) sq += v * v;
      put({ ...common, ...gradEpoch, metric: 'grad_bias_ratio', value: (d.n * sq) / traceVariance(d), runs: d.n });
    }
    for (const [key, m] of Object.entries(s.scalars)) {
      const ci = meanInterval(m, level);
      const [metric, split] = key.split('@');
      put({ ...common, ...scalarEpoch, metric, split, value: m.mean[0], runs: m.n, ciLow: ci.low, ciHigh: ci.high });
    }
  };

  let lastYield = performance.now();
  /** Runs one shard's replicas step by step; `onStep` receives the statistics of every recorded step. */
  const runShard = async (shard: ShardSpec, schedule: ShardSchedule, onStep: (t: number, s: StepStats) => void) => {
    const m = model!;
    const steps = schedule.steps;
    const recorded = (t: number) => t % study.recordEvery === 0 || t === steps - 1;
    const evaluate = (t: number) => (schedule.evaluateAt ? schedule.evaluateAt(t) : recorded(t) || t === steps);
    const state = m.replicate(thetas.get(shard.initPoint)!, shard);
    const sampler = container.resolve<SamplerFactory>(Tokens.SamplerFactory).create(shard, study.seed);
    try {
      for (let t = 0; t <= steps; t++) {
        if (signal.aborted) throw new CancelledError();
        const record = t < steps && recorded(t);
        // Gradients first: a model may compute the loss in the same pass and reuse it.
        let report: GradientReport | undefined;
        if (t < steps) report = m.gradients(state, sampler.next(t), record);
        const scalars = evaluate(t) ? m.scalars(state, t) : undefined;
        const loss = scalars?.loss ?? scalars?.['loss@train'];
        if (loss) {
          for (let r = 0; r < loss.length; r++) {
            if (!Number.isFinite(loss[r])) {
              throw new DivergenceError(
                `run ${shard.runStart + r} diverged at step ${t} (b = ${shard.batchSize}, initial point ${shard.initPoint}): ` +
                  `loss is ${loss[r]}; lower /learningRate. Records up to step ${t - 1} were written.`,
              );
            }
          }
        }
        if (record || scalars) {
          onStep(t, {
            grad: record ? report?.stochastic : undefined,
            full: record ? report?.full : undefined,
            difference: record ? report?.difference : undefined,
            scalars: Object.fromEntries(Object.entries(scalars ?? {}).map(([k, v]) => [k, scalarMoments(v)])),
          });
        }
        if (t < steps) optimizer.step(state, learningRateAt(study.learningRate, t), t);
        if (performance.now() - lastYield > YIELD_EVERY_MS) {
          emit({ type: 'progress', batchSize: shard.batchSize, initPoint: shard.initPoint, step: t, steps, runCount: shard.runCount });
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
    } finally {
      m.dispose?.(state);
    }
  };

  // Shards of the same (b, initPoint) are adjacent in the plan; merge their per-step statistics.
  let group: { key: string; shards: ShardSpec[]; stats: StepStats[]; epochLength?: number } | undefined;
  const flushGroup = () => {
    if (!group || group.shards.length < 2) return;
    const s0 = group.shards[0];
    const merged: ShardSpec = { ...s0, runCount: group.shards.reduce((n, s) => n + s.runCount, 0) };
    group.stats.forEach((s, t) => s && emitStep(merged, t, s, group!.epochLength));
  };

  const mergeInto = (t: number, st: StepStats) => {
    const prev = group!.stats[t];
    group!.stats[t] = prev
      ? {
          grad: mergeBlock(prev.grad, st.grad),
          full: mergeBlock(prev.full, st.full),
          difference: mergeBlock(prev.difference, st.difference),
          scalars: Object.fromEntries(Object.entries(st.scalars).map(([k, v]) => [k, prev.scalars[k] ? mergeMoments(prev.scalars[k], v) : v])),
        }
      : st;
  };

  const shardsInGroup = Math.ceil(study.runs / (study.runsPerShard ?? study.runs));
  // Distributed: every shard not already finished is submitted up front; results merge in plan order.
  const pending = new Map<string, Promise<ShardResult>>();
  if (opts.remote) {
    for (const shard of shards) {
      if (opts.shardStore?.load(shard)) continue;
      const p = opts.remote.submit(shard, shardsInGroup === 1);
      p.catch(() => undefined); // awaited in order below; keeps early failures from being unhandled
      pending.set(shardKey(shard), p);
    }
  }
  const awaitRemote = (p: Promise<ShardResult>) =>
    new Promise<ShardResult>((resolve, reject) => {
      if (signal.aborted) return reject(new CancelledError());
      const onAbort = () => reject(new CancelledError());
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });

  for (const shard of shards) {
    if (signal.aborted) throw new CancelledError();
    const key = `${shard.batchSize}|${shard.initPoint}`;
    if (!group || group.key !== key) {
      flushGroup();
      group = { key, shards: [], stats: [] };
    }
    group.shards.push(shard);
    const alone = shardsInGroup === 1;
    if (!model) break;
    const schedule = model.schedule?.(shard, study) ?? { steps: study.steps ?? 0 };
    group.epochLength = schedule.epochLength;
    emit({ type: 'shardStart', ...shard });
    const t0 = performance.now();
    let stored = opts.shardStore?.load(shard);
    const reused = stored !== undefined;
    const remote = pending.get(shardKey(shard));
    if (!stored && remote) {
      stored = await awaitRemote(remote);
      await opts.shardStore?.save(shard, stored);
    }
    if (stored) {
      // Finished before: replay what it left, exactly as it was first emitted.
      if (stored.kind === 'records') for (const r of stored.records) put(r);
      else for (const [t, st] of stored.steps) mergeInto(t, st);
    } else {
      const stepsDone: [number, StepStats][] = [];
      await runShard(shard, schedule, (t, st) => {
        if (alone) emitStep(shard, t, st, schedule.epochLength);
        else {
          stepsDone.push([t, st]);
          mergeInto(t, st);
        }
      });
      const result: ShardResult = alone
        ? { kind: 'records', records: index.recordsOfShard(shard) }
        : { kind: 'stats', epochLength: schedule.epochLength, steps: stepsDone };
      await opts.shardStore?.save(shard, result);
    }
    emit({ type: 'shardEnd', batchSize: shard.batchSize, initPoint: shard.initPoint, runStart: shard.runStart, runCount: shard.runCount, seconds: (performance.now() - t0) / 1000, reused });
  }
  flushGroup();

  if (only) return;
  for (const analysis of analyses) for (const r of analysis.analyze(index, study)) put(r);
  for (const claim of claims) for (const c of claim.evaluate(index, study)) emit({ type: 'claim', claim: c });
}
