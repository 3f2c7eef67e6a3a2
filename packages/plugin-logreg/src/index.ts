/**
 * admission-logreg: logistic regression on the Graduate Admission data (label: chance of admit
 * above the median). The worked example of `nx g @sgd-lab/tools:plugin`: generated, then its model
 * replaced; it reuses admission-linreg's CSV loader and samplers.
 */
import { join } from 'node:path';
import { ConfigError, Tokens, studyPath, decreasingInBatchSize, definePlugin, denseSgd, type JSONSchemaType, type PresetConfig, withCost } from '@sgd-lab/core';
import type { FigureSpec } from '@sgd-lab/core';
import { ADMISSION_DIR, ADMISSION_FILE, loadAdmission, regressionResources, withReplacement, withoutReplacement } from '@sgd-lab/plugin-linreg';
import { LogisticRegressionModel, aboveMedian } from './model.js';

export * from './model.js';

export interface LogRegOptions {
  /** Path of the admission CSV; default <data-dir>/graduate_admission/Admission_Predict_Ver1.1.csv. */
  data?: string;
  /** Std of the initial weights. */
  initStd: number;
  sampling: 'without-replacement' | 'with-replacement';
}

const configSchema: JSONSchemaType<LogRegOptions> = {
  type: 'object',
  description: 'Options of admission-logreg.',
  properties: {
    data: { type: 'string', nullable: true, description: `Path of the admission CSV. Default: <data-dir>/${ADMISSION_DIR}/${ADMISSION_FILE}.` },
    initStd: { type: 'number', exclusiveMinimum: 0, default: 1, description: 'Std of the initial weights.' },
    sampling: { type: 'string', enum: ['without-replacement', 'with-replacement'], default: 'without-replacement', description: 'How each mini-batch is drawn.' },
  },
  required: [],
  additionalProperties: false,
};

const RATE = { type: 'inverse-time', alpha0: 2, offset: 1 } as const;

const presets: Record<string, PresetConfig<LogRegOptions>> = {
  smoke: { description: 'seconds: 3 batch sizes, 30 steps, 300 runs', seed: 1, batchSizes: [4, 16, 64], steps: 30, runs: 300, initPoints: 1, learningRate: RATE },
  cpu: { description: '4 batch sizes, 500 steps, 1,000 runs; 70 s on 2 cores', seed: 2021, batchSizes: [4, 16, 64, 256], steps: 500, runs: 1000, initPoints: 1, recordEvery: 5, learningRate: RATE },
  paper: { description: 'as Fig. 2(a) for linear regression: 2,000 steps, 1,000 runs', seed: 2021, batchSizes: [4, 16, 64, 256], steps: 2000, runs: 1000, initPoints: 1, learningRate: RATE },
};

/** As Fig. 2(a), for logistic regression. */
export const LOGREG_FIGURES: FigureSpec[] = [
  { kind: 'series', id: 'grad_variance', metrics: ['grad_variance', 'full_grad_variance'], labels: ['Var(g_t|F0)', 'Var(grad L(w_t)|F0)'], x: ['step'], paperRef: 'beyond the paper (as Fig. 2(a))', caption: 'The stochastic (top) and full (bottom) gradient variance of logistic regression against t, one colour per b.' },
  { kind: 'series', id: 'loss', metrics: ['loss', 'error'], labels: ['loss', 'error'], x: ['step'], paperRef: 'beyond the paper', caption: 'Expected loss (top) and error (bottom) against t.' },
];

export default definePlugin<LogRegOptions>({
  name: 'admission-logreg',
  description: 'Logistic regression on Graduate Admission, chance of admit above the median (generated example)',
  configSchema,
  presets,
  metrics: ['grad_variance', 'full_grad_variance', 'loss', 'error', 'grad_bias_ratio', 'noise_scale'],
  figures: LOGREG_FIGURES,
  resources(study, { dataDir }) {
    return regressionResources({ file: study.options.data ?? join(dataDir, ADMISSION_DIR, ADMISSION_FILE) });
  },
  register(container, study, ctx) {
    const o = study.options;
    const regression = loadAdmission(o.data ? studyPath(ctx, o.data, '/options/data') : join(ctx.dataDir, ADMISSION_DIR, ADMISSION_FILE), { standardizeTarget: false });
    if (regression.sha256) ctx.recordDataFile(regression.source, regression.sha256, 'Graduate Admission CSV');
    const data = aboveMedian(regression);
    ctx.recordFact('labels', { threshold: data.threshold, positives: data.labels.reduce((s, v) => s + v, 0), rows: data.n });
    study.batchSizes.forEach((b, i) => {
      if (o.sampling === 'without-replacement' && b > data.n) throw new ConfigError(study.name, [`/batchSizes/${i}: b = ${b} exceeds the ${data.n} rows`]);
    });
    const model = withCost(new LogisticRegressionModel(data, o.initStd), (b) => ({ flopsPerStep: 4 * b * data.p, flopsPerEvaluation: 2 * data.n * data.p, bytesPerReplica: 8 * 2 * data.p }));
    container.register(Tokens.Model, { useValue: model });
    container.register(Tokens.SamplerFactory, { useValue: o.sampling === 'with-replacement' ? withReplacement(data.n) : withoutReplacement(data.n) });
    container.register(Tokens.Optimizer, { useValue: denseSgd });
    container.register(Tokens.Claim, {
      useValue: decreasingInBatchSize({ id: 'grad-variance-decreasing-in-b', statement: 'Var(g_t|F0) decreases in b at every t', paperRef: 'Theorem 2 (beyond linear models)', metric: 'grad_variance' }),
    });
    container.register(Tokens.Claim, {
      useValue: decreasingInBatchSize({ id: 'full-grad-variance-decreasing-in-b', statement: 'Var(grad L(w_t)|F0) decreases in b at every t >= 1', paperRef: 'Fig. 2(a) analogue', metric: 'full_grad_variance', fromStep: 1 }),
    });
  },
});
