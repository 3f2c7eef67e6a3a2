/**
 * A learning rate that depends on b: alpha_t(b) = alpha_t * (b / referenceBatchSize) (linear, Goyal
 * et al. 2017) or * sqrt(b / referenceBatchSize) (Krizhevsky 2014), so that b can be compared at
 * a matched noise scale rather than at a matched step size.
 */
export interface RateScaling {
  rule: 'linear' | 'sqrt';
  /** The batch size whose rate is the schedule's own. */
  referenceBatchSize: number;
}

/** alpha_t = value for every t. */
export interface ConstantRate {
  type: 'constant';
  /** The step size. */
  value: number;
  scaleWith?: RateScaling;
}

/** alpha_t = alpha0 / (t + offset), t = 0, 1, ... */
export interface InverseTimeRate {
  type: 'inverse-time';
  alpha0: number;
  offset: number;
  scaleWith?: RateScaling;
}

export type LearningRate = ConstantRate | InverseTimeRate;

/**
 * A study: one setting, several batch sizes, many runs per (batch size, initial point).
 * `options` is the setting's own block, validated by the plugin's schema.
 */
export interface StudyConfig<Options = Record<string, unknown>> {
  /** Editor hint, ignored by the runner. */
  $schema?: string;
  /** Names the results folder and every record. */
  name: string;
  /** Plugin id, `<dataset>-<model>`. */
  setting: string;
  /** Preset of the plugin merged under this file. */
  preset?: string;
  /** Root of every random stream. */
  seed: number;
  /** The mini-batch sizes compared. */
  batchSizes: number[];
  /** SGD iterations per run (step-based settings). */
  steps?: number;
  /** Passes over the training data per run (epoch-based settings). */
  epochs?: number;
  /** Independent runs per (batch size, initial point), all from the same initial point. */
  runs: number;
  /** Runs per shard; a shard is the unit of scheduling and of exact merging. */
  runsPerShard?: number;
  /**
   * Runs per run block, the unit of statistics (docs/statistics.md): each block of this many
   * consecutive runs is reduced on its own and blocks are combined in order, so results do not
   * depend on shards, memory chunks, workers or resumes. `runsPerShard` must be a multiple of it.
   */
  runBlock: number;
  /** Number of initial points. */
  initPoints: number;
  learningRate: LearningRate;
  /** Metrics to record; empty means every metric the setting has. */
  metrics: string[];
  /** Reporter ids that consume the metric stream. */
  reporters: string[];
  /** Record every k-th step (step 0 and the last step always). */
  recordEvery: number;
  /** Confidence level of the intervals in the records. */
  confidenceLevel: number;
  /** Significance level of the claim tests. */
  significance: number;
  /** Tensor backend for tensor-based settings (`wasm`, `cpu`, ...); ignored by array settings. */
  backend?: string;
  /** Memory budget in MiB for one batched computation. */
  memoryBudgetMiB: number;
  /**
   * A run has diverged when its loss exceeds this many times the initial loss (or is not finite):
   * the study stops with exit 4, naming the run, step and b.
   */
  divergenceFactor: number;
  /**
   * What the study may use, checked before any work (engine/resources.ts): memory (default: the
   * machine's, or its cgroup's) and hours of compute on this machine at most (a lower bound from
   * the study's FLOPs is compared). Not part of the fingerprint: raising a limit keeps resume.
   */
  limits: { memoryMiB?: number; hours: number };
  /** Replace the setting's sampler or optimizer by a component of any installed package, by id. */
  components?: { sampler?: string; optimizer?: string };
  options: Options;
}

/**
 * Step-size schedule, in plain JSON Schema (draft 2020-12 and 07 alike): the `type` tag picks the
 * branch through if/then, so every validator gives the same answer and ajv names the bad field.
 */
const scaleWithSchema = {
  type: 'object',
  description: 'Scale the rate with b: alpha_t(b) = alpha_t * (b / referenceBatchSize) ("linear", Goyal et al. 2017) or * sqrt(b / referenceBatchSize) ("sqrt", Krizhevsky 2014).',
  properties: {
    rule: { type: 'string', enum: ['linear', 'sqrt'], description: 'linear: proportional to b; sqrt: to the square root of b.' },
    referenceBatchSize: { type: 'integer', minimum: 1, description: 'The batch size that gets the schedule unscaled.' },
  },
  required: ['rule', 'referenceBatchSize'],
  additionalProperties: false,
} as const;

const learningRateSchema = {
  description:
    'Step-size schedule: {"type": "constant", "value": v} or {"type": "inverse-time", "alpha0": a, "offset": o} (alpha_t = a / (t + o)); ' +
    'either may add "scaleWith": {"rule": "linear" | "sqrt", "referenceBatchSize": n}.',
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['constant', 'inverse-time'], description: 'Which schedule.' },
  },
  required: ['type'],
  allOf: [
    {
      if: { type: 'object', properties: { type: { const: 'constant' } }, required: ['type'] },
      then: {
        type: 'object',
        description: 'alpha_t = value.',
        properties: {
          type: { const: 'constant' },
          value: { type: 'number', exclusiveMinimum: 0, description: 'Step size.' },
          scaleWith: scaleWithSchema,
        },
        required: ['type', 'value'],
        additionalProperties: false,
      },
    },
    {
      if: { type: 'object', properties: { type: { const: 'inverse-time' } }, required: ['type'] },
      then: {
        type: 'object',
        description: 'alpha_t = alpha0 / (t + offset), t = 0, 1, ...',
        properties: {
          type: { const: 'inverse-time' },
          alpha0: { type: 'number', exclusiveMinimum: 0, description: 'Numerator.' },
          offset: { type: 'number', exclusiveMinimum: 0, description: 'Added to t; must be > 0 so alpha_0 is finite.' },
          scaleWith: scaleWithSchema,
        },
        required: ['type', 'alpha0', 'offset'],
        additionalProperties: false,
      },
    },
  ],
} as const;

/**
 * Tensor backends a study may name. `auto` picks the fastest one installed; `webgpu`,
 * `tensorflow` and `tensorflow-gpu` load optional packages by name and say what to install.
 */
export const BACKEND_NAMES = ['auto', 'native', 'wasm', 'cpu', 'webgpu', 'tensorflow', 'tensorflow-gpu'] as const;

/** Fields of a study that every resolved study has (after its preset is merged). */
/**
 * Why a study's `runsPerShard` cannot be used, or undefined: a shard holds whole run blocks, so
 * that results do not depend on the split (docs/statistics.md).
 */
export function shardSizeProblem(study: Pick<StudyConfig, 'runs' | 'runsPerShard' | 'runBlock'>): string | undefined {
  const per = study.runsPerShard;
  if (per === undefined || per >= study.runs || per % study.runBlock === 0) return undefined;
  const near = Math.max(study.runBlock, Math.round(per / study.runBlock) * study.runBlock);
  return `/runsPerShard: ${per} is not a multiple of /runBlock (${study.runBlock}); a shard holds whole run blocks so that results do not depend on the split (try ${near}, or set runBlock)`;
}

export const REQUIRED_STUDY_FIELDS = ['name', 'setting', 'seed', 'batchSizes', 'runs', 'initPoints', 'learningRate'] as const;

/** Largest seed: streams hash seeds as safe integers, but a uint32 keeps them portable to other tools. */
export const MAX_SEED = 4294967295;

/**
 * The core part of the study schema. `options` is replaced by the plugin's schema when a study is
 * validated; `required` is applied after the preset is merged.
 */
export const coreStudySchema = {
  $id: 'https://sgd-batch-lab.dev/schema/study.json',
  title: 'sgd-batch-lab study',
  type: 'object',
  properties: {
    $schema: { type: 'string', description: 'JSON Schema of this file, for editors.' },
    name: { type: 'string', minLength: 1, maxLength: 120, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Study name; names the results folder: a letter or digit, then letters, digits, ".", "_" or "-" (so never "." or "..").' },
    setting: { type: 'string', minLength: 1, description: 'Plugin id, e.g. "admission-linreg".' },
    preset: { type: 'string', description: 'Plugin preset merged under this file (smoke, cpu, paper, ...).' },
    seed: { type: 'integer', minimum: 0, maximum: MAX_SEED, description: 'Root seed of every random stream.' },
    batchSizes: {
      type: 'array',
      items: { type: 'integer', minimum: 1 },
      minItems: 1,
      uniqueItems: true,
      description: 'Mini-batch sizes b to compare.',
    },
    steps: { type: 'integer', minimum: 0, description: 'SGD iterations per run.' },
    epochs: { type: 'integer', minimum: 1, description: 'Epochs per run (epoch-based settings).' },
    runs: { type: 'integer', minimum: 2, description: 'Runs per (batch size, initial point), all from the same initial point.' },
    runsPerShard: {
      type: 'integer',
      minimum: 2,
      description: 'Runs per shard, a multiple of runBlock. Results are identical for every value; smaller shards bound memory and spread work over workers. Default: all runs in one shard.',
    },
    runBlock: {
      type: 'integer',
      minimum: 2,
      default: 16,
      description: 'Runs per run block, the unit of statistics: blocks are reduced on their own and combined in order, so results do not depend on how the work is split (docs/statistics.md).',
    },
    initPoints: { type: 'integer', minimum: 1, description: 'Number of initial points.', default: 1 },
    learningRate: learningRateSchema,
    metrics: {
      type: 'array',
      items: { type: 'string' },
      uniqueItems: true,
      description: 'Metrics to record; empty for all the setting offers.',
      default: [],
    },
    reporters: {
      type: 'array',
      items: { type: 'string' },
      uniqueItems: true,
      description: 'Reporters that consume the stream; empty: jsonl, claims, console and every installed reporter enabled by default (html).',
      default: [],
    },
    recordEvery: { type: 'integer', minimum: 1, default: 1, description: 'Record every k-th step (first and last always).' },
    confidenceLevel: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.95, description: 'Level of confidence intervals.' },
    significance: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 0.5, default: 0.01, description: 'Level of the claim tests.' },
    backend: { type: 'string', enum: [...BACKEND_NAMES], description: 'Tensor backend of tensor settings: auto (the fastest installed), native (OpenBLAS addon), wasm, cpu, webgpu, tensorflow, tensorflow-gpu. Array settings ignore it.' },
    memoryBudgetMiB: { type: 'integer', minimum: 16, default: 2048, description: 'Memory budget of one batched computation, MiB.' },
    divergenceFactor: { type: 'number', exclusiveMinimum: 1, default: 1e6, description: 'A run diverged when its loss exceeds this many times the initial loss (or is not finite).' },
    limits: {
      type: 'object',
      description: 'What the study may use, checked before any work: exceeding a limit is a config error naming it (see `sgd-lab plan`).',
      properties: {
        memoryMiB: { type: 'integer', minimum: 16, description: "Memory the study may hold, MiB; default: the machine's (or its cgroup's) memory." },
        hours: { type: 'number', exclusiveMinimum: 0, default: 720, description: 'Hours of compute on this machine the study may take, at least (a lower bound from its FLOPs at a peak rate is compared).' },
      },
      required: [],
      additionalProperties: false,
      default: {},
    },
    components: {
      type: 'object',
      description: 'Components from any installed package, by id, replacing the setting\'s own (see `sgd-lab list`).',
      properties: {
        sampler: { type: 'string', description: 'Sampler id, e.g. "with-replacement".' },
        optimizer: { type: 'string', description: 'Optimizer id, e.g. "adam".' },
      },
      required: [],
      additionalProperties: false,
    },
    options: { type: 'object', description: "The setting's own options.", required: [], additionalProperties: true, default: {} },
  },
  required: [...REQUIRED_STUDY_FIELDS],
  additionalProperties: false,
} as const;

/** The factor `scaleWith` applies at batch size b (1 without it). */
export function rateScale(rate: LearningRate, batchSize: number): number {
  const s = rate.scaleWith;
  if (!s) return 1;
  const r = batchSize / s.referenceBatchSize;
  return s.rule === 'linear' ? r : Math.sqrt(r);
}

/** The learning rate at step t for batch size b. */
export function learningRateAt(rate: LearningRate, t: number, batchSize: number): number {
  return (rate.type === 'constant' ? rate.value : rate.alpha0 / (t + rate.offset)) * rateScale(rate, batchSize);
}
