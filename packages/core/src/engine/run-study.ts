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
import type { Analysis, BlockMoments, Claim, GradientReport, Model, Optimizer, Oracle, SamplerFactory, ShardSpec } from './contracts.js';
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
interface StepStats {
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
  const shards = model ? planShards(study, model) : [];
  const level = study.confidenceLevel;

  const put = (r: MetricRecord) => {
    if (!wants(r.metric)) return;
    index.add(r);
    emit({ type: 'metric', record: r });
  };
  const base = { study: study.name, setting: study.setting };

  emit({ type: 'studyStart', ...base, plannedShards: shards.length, plannedSteps: shards.reduce((n, s) => n + s.steps, 0) });

  const thetas = new Map<number, Float64Array>();
  for (let initPoint = 0; initPoint < study.initPoints; initPoint++) {
    const theta0 = initModel.initialParameters(new RandomStream([study.seed, StreamPurpose.init, initPoint]), initPoint);
    thetas.set(initPoint, theta0);
    opts.onInitialPoint?.({
      initPoint,
      size: theta0.length,
      sha256: hashTheta(theta0),
      values: theta0.length <= MAX_THETA0_IN_MANIFEST ? Array.from(theta0) : undefined,
    });
    for (const oracle of oracles) for (const r of oracle.compute(study, initPoint, theta0)) put(r);
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
  // Shards of the same (b, initPoint) are adjacent in the plan; merge their per-step statistics.
  let group: { key: string; shards: ShardSpec[]; stats: StepStats[]; epochLength?: number } | undefined;
  const flushGroup = () => {
    if (!group || group.shards.length < 2) return;
    const s0 = group.shards[0];
    const merged: ShardSpec = { ...s0, runCount: group.shards.reduce((n, s) => n + s.runCount, 0) };
    group.stats.forEach((s, t) => s && emitStep(merged, t, s, group!.epochLength));
  };

  for (const shard of shards) {
    const key = `${shard.batchSize}|${shard.initPoint}`;
    const shardsInGroup = Math.ceil(study.runs / (study.runsPerShard ?? study.runs));
    if (!group || group.key !== key) {
      flushGroup();
      group = { key, shards: [], stats: [] };
    }
    group.shards.push(shard);
    const streaming = shardsInGroup === 1;
    if (!model) break;
    const schedule = model.schedule?.(shard, study) ?? { steps: study.steps ?? 0 };
    const steps = schedule.steps;
    group.epochLength = schedule.epochLength;
    const recorded = (t: number) => t % study.recordEvery === 0 || t === steps - 1;
    const evaluate = (t: number) => (schedule.evaluateAt ? schedule.evaluateAt(t) : recorded(t) || t === steps);
    emit({ type: 'shardStart', ...shard });
    const t0 = performance.now();
    const state = model.replicate(thetas.get(shard.initPoint)!, shard);
    const sampler = container.resolve<SamplerFactory>(Tokens.SamplerFactory).create(shard, study.seed);
    try {
      for (let t = 0; t <= steps; t++) {
        if (signal.aborted) throw new CancelledError();
        const record = t < steps && recorded(t);
        // Gradients first: a model may compute the loss in the same pass and reuse it.
        let report: GradientReport | undefined;
        if (t < steps) report = model.gradients(state, sampler.next(t), record);
        const scalars = evaluate(t) ? model.scalars(state, t) : undefined;
        if (scalars) {
          const loss = scalars.loss ?? scalars['loss@train'];
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
        }
        if (record || scalars) {
          const s: StepStats = {
            grad: record ? report?.stochastic : undefined,
            full: record ? report?.full : undefined,
            difference: record ? report?.difference : undefined,
            scalars: Object.fromEntries(Object.entries(scalars ?? {}).map(([k, v]) => [k, scalarMoments(v)])),
          };
          if (streaming) emitStep(shard, t, s, schedule.epochLength);
          else {
            const prev = group.stats[t];
            group.stats[t] = prev
              ? {
                  grad: mergeBlock(prev.grad, s.grad),
                  full: mergeBlock(prev.full, s.full),
                  difference: mergeBlock(prev.difference, s.difference),
                  scalars: Object.fromEntries(Object.entries(s.scalars).map(([k, v]) => [k, prev.scalars[k] ? mergeMoments(prev.scalars[k], v) : v])),
                }
              : s;
          }
        }
        if (t < steps) optimizer.step(state, learningRateAt(study.learningRate, t), t);
        if (performance.now() - lastYield > YIELD_EVERY_MS) {
          emit({ type: 'progress', batchSize: shard.batchSize, initPoint: shard.initPoint, step: t, steps, runCount: shard.runCount });
          await new Promise<void>((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
    } finally {
      model.dispose?.(state);
    }
    emit({ type: 'shardEnd', batchSize: shard.batchSize, initPoint: shard.initPoint, runStart: shard.runStart, runCount: shard.runCount, seconds: (performance.now() - t0) / 1000 });
  }
  flushGroup();

  for (const analysis of analyses) for (const r of analysis.analyze(index, study)) put(r);
  for (const claim of claims) for (const c of claim.evaluate(index, study)) emit({ type: 'claim', claim: c });
}
