/**
 * What a study will cost, before it runs: its shards, replica-steps, evaluations, FLOPs and memory
 * where the model can say, and the wall time estimated from a short calibration on the chosen
 * backend (a few real steps of one chunk of replicas per batch size). `sgd-lab plan` and
 * `sgd-lab run --dry-run` print it; nothing is written.
 *
 * The estimate: per shard, recorded steps x their time + other steps x theirs + evaluations x
 * theirs, each timed at `replicas` replicas and scaled linearly to the shard's runs. Linear in R
 * holds from one chunk on (replicas beyond a chunk run chunk after chunk); below a chunk the
 * per-replica cost of stacked kernels falls with R, so the estimate errs high for small runs.
 */
import type { DependencyContainer } from 'tsyringe';
import { learningRateAt, shardSizeProblem, type StudyConfig } from '../config/study-config.js';
import { ConfigError } from '../errors.js';
import { RandomStream, StreamPurpose } from '../random/stream.js';
import { Tokens } from '../tokens.js';
import type { Model, ModelCost, Optimizer, SamplerFactory, ShardSchedule, ShardSpec } from './contracts.js';
import { denseSgd } from './dense.js';
import { isPending } from './maybe.js';

/**
 * The planned shards of a study, in the order they run: initial point, then b, then runs (steps
 * from the model's schedule when it has one). Every shard holds whole run blocks.
 */
export function planShards(study: StudyConfig, model?: Pick<Model, 'schedule'>): ShardSpec[] {
  const steps = study.steps ?? 0;
  const runBlock = study.runBlock;
  const per = study.runsPerShard ?? study.runs;
  // Resolved studies were checked already; this guards studies built in code (workers, tests).
  const problem = shardSizeProblem(study);
  if (problem) throw new ConfigError(`study ${study.name}`, [problem]);
  const shards: ShardSpec[] = [];
  for (let initPoint = 0; initPoint < study.initPoints; initPoint++) {
    for (const batchSize of study.batchSizes) {
      for (let runStart = 0; runStart < study.runs; runStart += per) {
        const shard: ShardSpec = { batchSize, initPoint, runStart, runCount: Math.min(per, study.runs - runStart), steps, runBlock };
        shard.steps = model?.schedule?.(shard, study).steps ?? steps;
        shards.push(shard);
      }
    }
  }
  return shards;
}

/** Seconds of one kind of work, timed at `replicas` replicas. */
export interface Timing {
  replicas: number;
  /** A step whose statistics are recorded (full gradients, moments). */
  recordedStep: number;
  /** A step whose statistics are not recorded. */
  step: number;
  /** One evaluation of the scalars (losses, errors) of all `replicas`. */
  evaluation: number;
  /** How `evaluation` was obtained: timed once, or priced from the model's FLOPs at the step rate. */
  evaluationFrom: 'timed' | 'flops';
  /** Steps timed after one warm-up step. */
  stepsTimed: number;
}

export interface BatchPlan {
  batchSize: number;
  shards: number;
  replicaSteps: number;
  recordedSteps: number;
  evaluations: number;
  cost?: ModelCost;
  timing?: Timing;
  /** Estimated seconds of every shard of this b. */
  seconds?: number;
}

export interface StudyPlan {
  study: string;
  setting: string;
  shards: number;
  runs: number;
  initPoints: number;
  replicaSteps: number;
  /** FLOPs of the SGD steps (and evaluations) where the model says. */
  flops?: number;
  /** Bytes of one chunk of replicas at the largest b, where the model says. */
  bytesPerChunk?: number;
  replicasPerChunk?: number;
  perBatchSize: BatchPlan[];
  /** Estimated wall time; absent without calibration. */
  seconds?: number;
  calibrated: boolean;
  /** Seconds the calibration itself took. */
  calibrationSeconds?: number;
}

/** Which steps of a shard are recorded and which evaluate scalars: the same rules as the engine. */
export function countWork(schedule: ShardSchedule, recordEvery: number): { recorded: number; evaluations: number } {
  let recorded = 0;
  let evaluations = 0;
  const steps = schedule.steps;
  const isRecorded = (t: number) => t % recordEvery === 0 || t === steps - 1;
  for (let t = 0; t <= steps; t++) {
    if (t < steps && isRecorded(t)) recorded++;
    if (schedule.evaluateAt ? schedule.evaluateAt(t) : (t < steps && isRecorded(t)) || t === steps) evaluations++;
  }
  return { recorded, evaluations };
}

export interface CalibrationOptions {
  /** Most replicas timed (a chunk, at most); default 16. */
  maxReplicas?: number;
  /** Time spent on each kind of step per b before stopping (ms); default 600. */
  budgetMs?: number;
  /** Skip the timing: counts, FLOPs and memory only. */
  calibrate?: boolean;
}

/** Times a few steps of one shard of `shard.runCount` replicas (a chunk at most). */
async function time(container: DependencyContainer, study: StudyConfig, model: Model, shard: ShardSpec, schedule: ShardSchedule, budgetMs: number, cost: ModelCost | undefined): Promise<Timing> {
  const optimizer = container.isRegistered(Tokens.Optimizer, true) ? container.resolve<Optimizer>(Tokens.Optimizer) : (denseSgd as Optimizer);
  const theta0 = model.initialParameters(new RandomStream([study.seed, StreamPurpose.init, shard.initPoint]), shard.initPoint);
  const state = model.replicate(theta0, shard);
  const sampler = container.resolve<SamplerFactory>(Tokens.SamplerFactory).create(shard, study.seed);
  const steps = Math.max(1, schedule.steps);
  let t = 0;
  // A step ends when its statistics are read back: on an asynchronous backend (WebGPU) that is
  // when the device has finished it, so the time is the device's, not the queueing's.
  const step = async (record: boolean) => {
    const start = performance.now();
    const lr = learningRateAt(study.learningRate, t, shard.batchSize);
    const r = model.gradients(state, sampler.next(t % steps), record, optimizer.plainSgd ? { sgd: lr } : undefined);
    if (isPending(r)) await r;
    optimizer.step(state, lr, t);
    t++;
    return (performance.now() - start) / 1000;
  };
  const repeat = async (record: boolean) => {
    const times: number[] = [];
    const start = performance.now();
    do times.push(await step(record));
    while (performance.now() - start < budgetMs && times.length < 50);
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(times.length / 2)], n: times.length };
  };
  try {
    await step(true); // warm-up: first kernels, allocations, JIT
    const recorded = await repeat(true);
    const plain = await repeat(false);
    // An evaluation over a large training set can take longer than the whole calibration; when the
    // model states both FLOP counts, it is priced at the rate its steps ran (an upper bound:
    // forward passes over large batches run at least as fast per FLOP).
    if (cost?.flopsPerEvaluation !== undefined && cost.flopsPerStep) {
      const evaluation = (plain.median * cost.flopsPerEvaluation) / cost.flopsPerStep;
      return { replicas: shard.runCount, recordedStep: recorded.median, step: plain.median, evaluation, evaluationFrom: 'flops', stepsTimed: recorded.n + plain.n };
    }
    const e0 = performance.now();
    const s = model.scalars(state, t);
    if (isPending(s)) await s;
    const evaluation = (performance.now() - e0) / 1000;
    return { replicas: shard.runCount, recordedStep: recorded.median, step: plain.median, evaluation, evaluationFrom: 'timed', stepsTimed: recorded.n + plain.n };
  } finally {
    model.dispose?.(state);
  }
}

/** The plan of a study whose plugin has registered into `container` (data loaded). */
export async function planStudy(container: DependencyContainer, study: StudyConfig, opts: CalibrationOptions = {}): Promise<StudyPlan> {
  const model = container.isRegistered(Tokens.Model, true) ? container.resolve<Model>(Tokens.Model) : undefined;
  const shards = model ? planShards(study, model) : [];
  const perBatchSize: BatchPlan[] = [];
  const calibrationStart = performance.now();
  const calibrate = opts.calibrate !== false && model !== undefined;
  for (const b of study.batchSizes) {
    const mine = shards.filter((s) => s.batchSize === b);
    const plan: BatchPlan = { batchSize: b, shards: mine.length, replicaSteps: 0, recordedSteps: 0, evaluations: 0, cost: model?.cost?.(b) };
    let seconds = 0;
    for (const s of mine) {
      const schedule = model!.schedule?.(s, study) ?? { steps: study.steps ?? 0 };
      const work = countWork(schedule, study.recordEvery);
      plan.replicaSteps += s.steps * s.runCount;
      plan.recordedSteps += work.recorded * s.runCount;
      plan.evaluations += work.evaluations * s.runCount;
      if (calibrate) {
        if (!plan.timing) {
          const replicas = Math.max(2, Math.min(s.runCount, plan.cost?.replicasPerChunk ?? Infinity, opts.maxReplicas ?? 16));
          plan.timing = await time(container, study, model!, { ...s, runStart: 0, runCount: replicas }, schedule, opts.budgetMs ?? 600, plan.cost);
        }
        const tm = plan.timing;
        seconds += ((work.recorded * tm.recordedStep + (s.steps - work.recorded) * tm.step + work.evaluations * tm.evaluation) * s.runCount) / tm.replicas;
      }
    }
    if (calibrate && mine.length > 0) plan.seconds = seconds;
    perBatchSize.push(plan);
  }
  const sum = (f: (p: BatchPlan) => number | undefined) => perBatchSize.reduce((n, p) => n + (f(p) ?? NaN), 0);
  const flops = sum((p) => (p.cost?.flopsPerStep !== undefined ? p.cost.flopsPerStep * p.replicaSteps + (p.cost.flopsPerEvaluation ?? 0) * p.evaluations : undefined));
  const maxB = Math.max(...study.batchSizes);
  const top = model?.cost?.(maxB);
  const perChunk = Math.min(top?.replicasPerChunk ?? Infinity, study.runsPerShard ?? study.runs);
  const seconds = sum((p) => p.seconds ?? (p.shards === 0 ? 0 : undefined));
  return {
    study: study.name,
    setting: study.setting,
    shards: shards.length,
    runs: study.runs,
    initPoints: study.initPoints,
    replicaSteps: sum((p) => p.replicaSteps),
    flops: Number.isFinite(flops) ? flops : undefined,
    bytesPerChunk: top?.bytesPerReplica !== undefined ? top.bytesPerReplica * perChunk : undefined,
    replicasPerChunk: model ? perChunk : undefined,
    perBatchSize,
    seconds: calibrate && Number.isFinite(seconds) ? seconds : undefined,
    calibrated: calibrate,
    calibrationSeconds: calibrate ? (performance.now() - calibrationStart) / 1000 : undefined,
  };
}
