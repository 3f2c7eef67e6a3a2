import type { JSONSchemaType } from 'ajv';

/** alpha_t = value for every t. */
export interface ConstantRate {
  type: 'constant';
  /** The step size. */
  value: number;
}

/** alpha_t = alpha0 / (t + offset), t = 0, 1, ... */
export interface InverseTimeRate {
  type: 'inverse-time';
  alpha0: number;
  offset: number;
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
  /** Replace the setting's sampler or optimizer by a component of any installed package, by id. */
  components?: { sampler?: string; optimizer?: string };
  options: Options;
}

const learningRateSchema = {
  description: 'Step-size schedule.',
  type: 'object',
  discriminator: { propertyName: 'type' },
  oneOf: [
    {
      type: 'object',
      description: 'alpha_t = value.',
      properties: {
        type: { type: 'string', const: 'constant' },
        value: { type: 'number', exclusiveMinimum: 0, description: 'Step size.' },
      },
      required: ['type', 'value'],
      additionalProperties: false,
    },
    {
      type: 'object',
      description: 'alpha_t = alpha0 / (t + offset), t = 0, 1, ...',
      properties: {
        type: { type: 'string', const: 'inverse-time' },
        alpha0: { type: 'number', exclusiveMinimum: 0, description: 'Numerator.' },
        offset: { type: 'number', exclusiveMinimum: 0, description: 'Added to t; must be > 0 so alpha_0 is finite.' },
      },
      required: ['type', 'alpha0', 'offset'],
      additionalProperties: false,
    },
  ],
} as const;

/** Largest seed: streams hash seeds as safe integers, but a uint32 keeps them portable to other tools. */
export const MAX_SEED = 4294967295;

/**
 * The core part of the study schema. `options` is replaced by the plugin's schema when a study is
 * validated; `required` is applied after the preset is merged.
 */
export const coreStudySchema: JSONSchemaType<StudyConfig> = {
  $id: 'https://sgd-batch-lab.dev/schema/study.json',
  title: 'sgd-batch-lab study',
  type: 'object',
  properties: {
    $schema: { type: 'string', nullable: true, description: 'JSON Schema of this file, for editors.' },
    name: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9._-]+$', description: 'Study name; names the results folder.' },
    setting: { type: 'string', minLength: 1, description: 'Plugin id, e.g. "admission-linreg".' },
    preset: { type: 'string', nullable: true, description: 'Plugin preset merged under this file (smoke, cpu, paper, ...).' },
    seed: { type: 'integer', minimum: 0, maximum: MAX_SEED, description: 'Root seed of every random stream.' },
    batchSizes: {
      type: 'array',
      items: { type: 'integer', minimum: 1 },
      minItems: 1,
      uniqueItems: true,
      description: 'Mini-batch sizes b to compare.',
    },
    steps: { type: 'integer', minimum: 0, nullable: true, description: 'SGD iterations per run.' },
    epochs: { type: 'integer', minimum: 1, nullable: true, description: 'Epochs per run (epoch-based settings).' },
    runs: { type: 'integer', minimum: 2, description: 'Runs per (batch size, initial point), all from the same initial point.' },
    runsPerShard: {
      type: 'integer',
      minimum: 2,
      nullable: true,
      description: 'Runs per shard. Shards merge exactly; smaller shards bound memory. Default: all runs in one shard.',
    },
    initPoints: { type: 'integer', minimum: 1, description: 'Number of initial points.', default: 1 },
    learningRate: learningRateSchema as unknown as JSONSchemaType<LearningRate>,
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
    backend: { type: 'string', nullable: true, description: 'Tensor backend: wasm, cpu, tensorflow, tensorflow-gpu.' },
    memoryBudgetMiB: { type: 'integer', minimum: 16, default: 2048, description: 'Memory budget of one batched computation, MiB.' },
    components: {
      type: 'object',
      nullable: true,
      description: 'Components from any installed package, by id, replacing the setting\'s own (see `sgd-lab list`).',
      properties: {
        sampler: { type: 'string', nullable: true, description: 'Sampler id, e.g. "with-replacement".' },
        optimizer: { type: 'string', nullable: true, description: 'Optimizer id, e.g. "adam".' },
      },
      required: [],
      additionalProperties: false,
    },
    options: { type: 'object', description: "The setting's own options.", required: [], additionalProperties: true, default: {} },
  },
  required: ['name', 'setting', 'seed', 'batchSizes', 'runs', 'initPoints', 'learningRate'],
  additionalProperties: false,
};

/** The learning rate at step t. */
export function learningRateAt(rate: LearningRate, t: number): number {
  return rate.type === 'constant' ? rate.value : rate.alpha0 / (t + rate.offset);
}
