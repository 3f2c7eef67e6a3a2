/**
 * admission-linreg: linear regression on the Graduate Admission data (paper Sec. 3.1, Fig. 2).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { JSONSchemaType } from 'ajv';
import {
  ConfigError,
  Tokens,
  agreesWithExact,
  decreasingInBatchSize,
  definePlugin,
  denseSgd,
  studyPath,
  type PluginContext,
  type PresetConfig,
  type ResourceNeeds,
  withCost,
} from '@sgd-lab/core';
import type { FigureSpec } from '@sgd-lab/core';
import { ADMISSION_DIR, ADMISSION_FILE, loadAdmission, syntheticData, type RegressionData } from './data.js';
import { LinearRegressionModel, type InitSpec } from './model.js';
import { exactOracle } from './oracle.js';
import { samplerComponents, withReplacement, withoutReplacement, type SamplingScheme } from './sampler.js';
import { fittedPolynomial, polynomialClaim } from './analysis.js';

export * from './data.js';
export * from './model.js';
export * from './oracle.js';
export * from './sampler.js';
export * from './analysis.js';

export interface LinRegOptions {
  /** Path of the admission CSV; default <data-dir>/graduate_admission/Admission_Predict_Ver1.1.csv. */
  data?: string;
  /** "admission" reads the CSV; "synthetic" draws a data set from the seed. */
  source: 'admission' | 'synthetic';
  synthetic: { rows: number; features: number; noise: number };
  standardizeTarget: boolean;
  init: InitSpec;
  sampling: SamplingScheme;
  estimators: ('exact' | 'monte_carlo')[];
  /** Steps at which Var(g_t|F0) is given as a polynomial in 1/b (exact, and fitted to Monte Carlo). */
  polynomialSteps: number[];
  /** Degree of the polynomial fitted to Monte Carlo variances (the paper used 6). */
  fitDegree: number;
}

const configSchema = {
  type: 'object',
  description: 'Options of admission-linreg.',
  properties: {
    data: { type: 'string', nullable: true, description: `Path of the admission CSV. Default: <data-dir>/${ADMISSION_DIR}/${ADMISSION_FILE}.` },
    source: { type: 'string', enum: ['admission', 'synthetic'], default: 'admission', description: 'Data source.' },
    synthetic: {
      type: 'object',
      description: 'Size of the synthetic data set (source = "synthetic").',
      properties: {
        rows: { type: 'integer', minimum: 2, default: 500, description: 'Rows n.' },
        features: { type: 'integer', minimum: 1, default: 7, description: 'Features before the intercept.' },
        noise: { type: 'number', minimum: 0, default: 0.05, description: 'Std of the target noise.' },
      },
      required: [],
      additionalProperties: false,
      default: {},
    },
    standardizeTarget: { type: 'boolean', default: false, description: 'Standardise the target too.' },
    init: {
      type: 'object',
      description: 'Initial weights w0 (one draw per initial point; the same for every b).',
      discriminator: { propertyName: 'type' },
      oneOf: [
        {
          type: 'object',
          properties: { type: { type: 'string', const: 'normal' }, std: { type: 'number', exclusiveMinimum: 0, description: 'Std of each coordinate.' } },
          required: ['type', 'std'],
          additionalProperties: false,
        },
        {
          type: 'object',
          properties: { type: { type: 'string', const: 'values' }, values: { type: 'array', items: { type: 'number' }, minItems: 1, description: 'w0, intercept last.' } },
          required: ['type', 'values'],
          additionalProperties: false,
        },
      ],
      default: { type: 'normal', std: 1 },
    },
    sampling: { type: 'string', enum: ['without-replacement', 'with-replacement'], default: 'without-replacement', description: 'How each mini-batch is drawn.' },
    estimators: {
      type: 'array',
      items: { type: 'string', enum: ['exact', 'monte_carlo'] },
      minItems: 1,
      uniqueItems: true,
      default: ['exact', 'monte_carlo'],
      description: 'Exact oracle, Monte Carlo runs, or both.',
    },
    polynomialSteps: { type: 'array', items: { type: 'integer', minimum: 0 }, default: [], description: 'Steps t with Var(g_t|F0) as a polynomial in 1/b.' },
    fitDegree: { type: 'integer', minimum: 1, maximum: 12, default: 6, description: 'Degree of the polynomial in 1/b fitted to Monte Carlo.' },
  },
  required: [],
  additionalProperties: false,
} as unknown as JSONSchemaType<LinRegOptions>;

/** The paper's schedule reading: alpha_t = 1 / (2 (t + 1)). */
const PAPER_RATE = { type: 'inverse-time', alpha0: 0.5, offset: 1 } as const;
/** Fig. 2(b): powers of 2 and multiples of 40 in [2, 500]. */
export const FIG2B_BATCH_SIZES = [2, 4, 8, 16, 32, 40, 64, 80, 120, 128, 160, 200, 240, 256, 280, 320, 360, 400, 440, 480];

const presets: Record<string, PresetConfig<LinRegOptions>> = {
  smoke: {
    description: 'seconds: 3 batch sizes, 30 steps, 300 runs',
    seed: 1,
    batchSizes: [4, 16, 64],
    steps: 30,
    runs: 300,
    initPoints: 1,
    learningRate: PAPER_RATE,
    options: { polynomialSteps: [10, 20] },
  },
  cpu: {
    description: 'Fig. 2(a) (1,000 runs), recording every 5th step; 24 s on native, 2 cores',
    seed: 2021,
    batchSizes: [4, 16, 64, 256],
    steps: 2000,
    runs: 1000,
    initPoints: 1,
    recordEvery: 5,
    learningRate: PAPER_RATE,
  },
  'paper-fig2a': {
    description: 'Fig. 2(a): b in {4, 16, 64, 256}, 2,000 steps, 1,000 runs',
    seed: 2021,
    batchSizes: [4, 16, 64, 256],
    steps: 2000,
    runs: 1000,
    initPoints: 1,
    learningRate: PAPER_RATE,
  },
  'paper-fig2b': {
    description: 'Fig. 2(b): 20 batch sizes, 40 steps, 10,000 runs each (200,000 in total); polynomials at t = 10, 20, 30, 40',
    seed: 2021,
    batchSizes: FIG2B_BATCH_SIZES,
    steps: 41,
    runs: 10000,
    initPoints: 1,
    learningRate: PAPER_RATE,
    options: { polynomialSteps: [10, 20, 30, 40], fitDegree: 6 },
  },
};

function loadData(o: LinRegOptions, seed: number, ctx: Pick<PluginContext, 'dataDir' | 'dataPath'>): RegressionData {
  if (o.source === 'synthetic') return syntheticData(seed, o.synthetic, o.standardizeTarget);
  return loadAdmission(o.data ? studyPath(ctx, o.data, '/options/data') : join(ctx.dataDir, ADMISSION_DIR, ADMISSION_FILE), { standardizeTarget: o.standardizeTarget });
}

/**
 * What a regression study holds, from the data file's size (or the synthetic sizes) alone: the
 * text and its parsed rows, a few vectors per replica, and for the exact oracle its fourth-moment
 * tensor (p^4) and moment matrices. Shared with admission-logreg.
 */
export function regressionResources(data: { file?: string; synthetic?: { rows: number; features: number } }, exactSteps?: number): ResourceNeeds {
  let bytes = 0;
  try {
    bytes = data.file ? statSync(data.file).size : 0;
  } catch {
    /* missing: the loader names the file */
  }
  // A CSV row takes at least 16 characters; the admission file has 8 columns (p = 8 with the intercept).
  const rows = data.synthetic ? data.synthetic.rows : Math.ceil(bytes / 16);
  const p = data.synthetic ? data.synthetic.features + 1 : 8;
  const fixed: Record<string, number> = { 'data (text and float64 rows)': 2 * bytes + 8 * 2 * rows * (p + 1) };
  if (exactSteps !== undefined) fixed['exact oracle (fourth moments, p^4, and moment matrices)'] = 8 * (p ** 4 + p ** 3 + (16 + exactSteps) * p * p);
  return { fixed, bytesPerReplica: (b) => 8 * (4 * p + b), flopsPerStep: (b) => 4 * b * p, recordsPerStep: 12 };
}

/** The figures of Fig. 2, declared here so that reporters need not know the metrics. */
export const LINREG_FIGURES: FigureSpec[] = [
  { kind: 'series', id: 'grad_variance', metrics: ['grad_variance'], labels: ['Var(g_t|F0)'], x: ['step'], paperRef: 'Fig. 2(a), left', caption: 'log Var of the stochastic gradient against t, one colour per b; Monte Carlo solid with its interval band, the exact oracle dashed.' },
  { kind: 'series', id: 'full_grad_variance', metrics: ['full_grad_variance'], labels: ['Var(grad L(w_t)|F0)'], x: ['step'], paperRef: 'Fig. 2(a), right', caption: 'log Var of the full gradient against t (exactly 0 at t = 0, left off the log axis); Monte Carlo solid, exact dashed.' },
  { kind: 'against-b', id: 'grad_variance_vs_b', metric: 'grad_variance', label: 'Var(g_t|F0)', polynomial: 'grad_variance_poly', paperRef: 'Fig. 2(b)', caption: 'Var(g_t|F0) against b at the chosen t: Monte Carlo points with intervals, the exact polynomial in 1/b dashed and the fitted one dotted.' },
  { kind: 'series', id: 'loss', metrics: ['loss'], labels: ['E[L(w_t)|F0]'], x: ['step'], paperRef: 'not a figure of the paper (the oracle gives it)', caption: 'The expected loss against t; Monte Carlo solid, exact dashed.' },
];

export default definePlugin<LinRegOptions>({
  name: 'admission-linreg',
  description: 'Linear regression on Graduate Admission (Sec. 3.1, Fig. 2), exact moment oracle',
  configSchema,
  presets,
  presetGroups: { paper: ['paper-fig2a', 'paper-fig2b'] },
  metrics: ['grad_variance', 'full_grad_variance', 'loss', 'grad_bias_ratio', 'grad_variance_poly', 'noise_scale'],
  figures: LINREG_FIGURES,
  components: samplerComponents,
  checkStudy(study, fail) {
    if (study.learningRate.scaleWith && study.options.polynomialSteps.length > 0) {
      fail('/options/polynomialSteps', 'Var(g_t|F0) is a polynomial in 1/b only when the rate does not depend on b: with /learningRate/scaleWith, set polynomialSteps to []');
    }
  },
  resources(study, { dataDir }) {
    const o = study.options;
    const file = o.source === 'synthetic' ? undefined : (o.data ?? join(dataDir, ADMISSION_DIR, ADMISSION_FILE));
    const exact = o.estimators.includes('exact') ? Math.max(0, ...o.polynomialSteps) : undefined;
    return regressionResources({ file, synthetic: o.source === 'synthetic' ? o.synthetic : undefined }, exact);
  },
  register(container, study, ctx) {
    const o = study.options;
    const data = loadData(o, study.seed, ctx);
    if (data.sha256) ctx.recordDataFile(data.source, data.sha256, 'Graduate Admission CSV');
    ctx.recordFact('data', { source: data.source, rows: data.n, features: data.features });
    const problems: string[] = [];
    study.batchSizes.forEach((b, i) => {
      if (o.sampling === 'without-replacement' && b > data.n) problems.push(`/batchSizes/${i}: b = ${b} exceeds the ${data.n} rows of ${data.source}`);
    });
    if (o.init.type === 'values' && o.init.values.length !== data.p) {
      problems.push(`/options/init/values: needs ${data.p} values (${data.features.join(', ')}), got ${o.init.values.length}`);
    }
    if (problems.length) throw new ConfigError(study.name, problems);

    // A step: predictions and the gradient over b rows (2 b p each); an evaluation: the loss on all n.
    const model = withCost(new LinearRegressionModel(data, o.init), (b) => ({ flopsPerStep: 4 * b * data.p, flopsPerEvaluation: 2 * data.n * data.p, bytesPerReplica: 8 * 2 * data.p }));
    container.register(Tokens.Initializer, { useValue: model });
    if (o.estimators.includes('monte_carlo')) {
      container.register(Tokens.Model, { useValue: model });
      container.register(Tokens.SamplerFactory, { useValue: o.sampling === 'with-replacement' ? withReplacement(data.n) : withoutReplacement(data.n) });
      container.register(Tokens.Optimizer, { useValue: denseSgd });
      container.register(Tokens.Analysis, { useValue: fittedPolynomial(o.polynomialSteps, o.fitDegree) });
    }
    if (o.estimators.includes('exact')) {
      container.register(Tokens.Oracle, { useValue: exactOracle(data, model.moments, { sampling: o.sampling, polynomialSteps: o.polynomialSteps }) });
      container.register(Tokens.Claim, { useValue: polynomialClaim });
    }
    container.register(Tokens.Claim, {
      useValue: decreasingInBatchSize({
        id: 'grad-variance-decreasing-in-b',
        statement: 'Var(g_t|F0) decreases strictly in b at every t',
        paperRef: 'Theorem 2, Fig. 2(a)',
        metric: 'grad_variance',
      }),
    });
    container.register(Tokens.Claim, {
      useValue: decreasingInBatchSize({
        id: 'full-grad-variance-decreasing-in-b',
        statement: 'Var(grad L(w_t)|F0) decreases strictly in b at every t >= 1 (it is 0 at t = 0)',
        paperRef: 'Theorem 2, Fig. 2(a)',
        metric: 'full_grad_variance',
        fromStep: 1,
      }),
    });
    if (o.estimators.length === 2) {
      container.register(Tokens.Claim, {
        useValue: agreesWithExact({
          id: 'monte-carlo-matches-exact',
          statement: 'Monte Carlo estimates of Var(g_t), Var(grad L(w_t)), E[L(w_t)] and the noise scale B_simple agree with the exact oracle',
          paperRef: 'oracles.md (framework check), docs/noise-scale.md',
          metrics: [
            { metric: 'grad_variance', scale: 'log' },
            { metric: 'full_grad_variance', scale: 'log' },
            { metric: 'loss', scale: 'linear' },
            { metric: 'noise_scale', scale: 'linear' },
          ],
        }),
      });
    }
  },
});
