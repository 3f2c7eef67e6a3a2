/**
 * yelp-xlnet: an XLNet-style encoder classifier fine-tuned with Adam(W) on Yelp review polarity
 * (paper App. A.1.4, Fig. 6): replicas from one initial point for b in {32, 64}, the per-step
 * gradient variance across runs, training and validation loss and error per epoch.
 */
import { join } from 'node:path';
import { DataError, Tokens, readDataFile, studyPath, atEqualEpochsAndSteps, checkBatchSizesFit, definePlugin, epochMean, referenceEpochLength, type EpochClaimSpec, type JSONSchemaType, type PresetConfig, withCost } from '@sgd-lab/core';
import type { FigureSpec } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeFor, chunkSizeOn, useBackend, describeAdapter } from '@sgd-lab/tensor';
import { HOW_TO_GET_YELP, UCI_DIR, UCI_FILE, hasPolarity, loadPolarity, loadUci, type YelpData } from './data.js';
import { decays, parameterCount, xlnetBytesPerReplica, xlnetLargestTensorPerReplica, xlnetProgram, xlnetStrategy, type XlnetSize } from './model.js';
import { xlnetOptimizer, type XlnetOptimizerOptions } from './optimizer.js';
import { encodeSet, textEpochSampler } from './sampler.js';
import { Tokenizer, type TokenizerJson } from './tokenizer.js';
import { XlnetModel } from './xlnet-model.js';

const FIG6 = 'Figure 6 shows the similar phenomenon that the variance of stochastic estimators and the expected loss and error on both training and validation sets are decreasing functions of b even if we train XLNet using Adam.';
const HYPOTHESIS_LOSS = 'We hypothesize that, given the same initial point, smaller sizes lead to lower training loss';
const HYPOTHESIS_PREDICTION = 'The increased variance as the mini-batch size decreases should also intuitively imply convergence to lower training loss values and in turn better prediction and generalization ability';
/** Why each loss and error claim exists in two readings. */
const TWO_READINGS =
  'The paper says both: App. A.2 reads Fig. 6 as "loss and error decrease in b" (larger b, lower loss), while its hypothesis (Sec. 1) is that smaller b give lower training loss. ' +
  'Each reading is tested as its own claim, at equal epochs and at equal steps (the two axes order b differently), and the verdicts say which one these runs support.';

export * from './data.js';
export * from './model.js';
export * from './optimizer.js';
export * from './sampler.js';
export * from './tokenizer.js';
export * from './xlnet-model.js';
export { fetchYelp, tarExtractor, YELP_POLARITY_URL } from './commands.js';

/** The paper's count (App. A.1.4). */
export const PAPER_PARAMETERS = 35_493_122;

export interface XlnetOptions {
  /** "auto": Yelp Review Polarity when <data-dir>/yelp_review_polarity_csv has it, else the UCI file. */
  data: 'auto' | 'polarity' | 'uci';
  /** The UCI file (default <data-dir>/yelp_labelled_uci/yelp_labelled.txt). */
  uciFile: string;
  /** Validation share of the UCI sentences (stratified, keyed by the seed). */
  validationFraction: number;
  /** Training and validation examples used (0: all; polarity: the first rows of train.csv / test.csv). */
  trainSamples: number;
  validationSamples: number;
  /** Training examples in each training-loss evaluation (0: all). */
  evalTrainSamples: number;
  /** A saved tokenizer.json to reuse; empty: train one on the training split. */
  tokenizer: string;
  vocabSize: number;
  lowercase: boolean;
  size: Omit<XlnetSize, 'vocab'>;
  optimizer: XlnetOptimizerOptions;
  evaluateEvery: number;
  evalBatch: number;
}

const configSchema: JSONSchemaType<XlnetOptions> = {
  type: 'object',
  description: 'Options of yelp-xlnet.',
  properties: {
    data: { type: 'string', enum: ['auto', 'polarity', 'uci'], default: 'auto', description: 'Yelp Review Polarity CSVs, the UCI sentences, or auto.' },
    uciFile: { type: 'string', default: '', description: `The UCI file; default <data-dir>/${UCI_DIR}/${UCI_FILE}.` },
    validationFraction: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.2, description: 'Validation share of the UCI sentences.' },
    trainSamples: { type: 'integer', minimum: 0, default: 10000, description: 'Training examples (0: all).' },
    validationSamples: { type: 'integer', minimum: 0, default: 1000, description: 'Validation examples (0: all).' },
    evalTrainSamples: { type: 'integer', minimum: 0, default: 1000, description: 'Training examples in each training-loss evaluation (0: all).' },
    tokenizer: { type: 'string', default: '', description: 'A tokenizer.json saved by an earlier study; empty: train on the training split.' },
    vocabSize: { type: 'integer', minimum: 8, default: 32000, description: 'Tokenizer vocabulary (specials, characters and merges); merges stop early when no pair occurs twice.' },
    lowercase: { type: 'boolean', default: true, description: 'Lower-case text before tokenizing.' },
    size: {
      type: 'object',
      description: 'Encoder size.',
      properties: {
        layers: { type: 'integer', minimum: 1, default: 6, description: 'Layers.' },
        dModel: { type: 'integer', minimum: 2, default: 384, description: 'Hidden size (even; a multiple of heads).' },
        heads: { type: 'integer', minimum: 1, default: 12, description: 'Attention heads.' },
        inner: { type: 'integer', minimum: 1, default: 4096, description: 'Feed-forward inner size.' },
        length: { type: 'integer', minimum: 3, default: 128, description: 'Tokens per example, <sep> and <cls> included.' },
      },
      required: [],
      additionalProperties: false,
      default: { layers: 6, dModel: 384, heads: 12, inner: 4096, length: 128 },
    },
    optimizer: {
      type: 'object',
      description: 'Adam with decoupled weight decay, linear warm-up then linear decay, per-matrix gradient clipping.',
      properties: {
        weightDecay: { type: 'number', minimum: 0, default: 0.01, description: 'Decoupled weight decay (weight matrices and embeddings).' },
        warmup: { type: 'number', minimum: 0, maximum: 1, default: 0.1, description: 'Share of the steps spent warming up.' },
        clip: { type: 'number', minimum: 0, default: 1, description: "Each parameter matrix's gradient is clipped to this norm (0: off)." },
        beta1: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9, description: 'Adam beta1.' },
        beta2: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.999, description: 'Adam beta2.' },
        epsilon: { type: 'number', exclusiveMinimum: 0, default: 1e-8, description: 'Adam epsilon.' },
      },
      required: [],
      additionalProperties: false,
      default: { weightDecay: 0.01, warmup: 0.1, clip: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    },
    evaluateEvery: { type: 'integer', minimum: 1, default: 1, description: 'Epochs between evaluations.' },
    evalBatch: { type: 'integer', minimum: 1, default: 64, description: 'Examples per forward pass when evaluating.' },
  },
  required: [],
  additionalProperties: false,
};

/** The paper's encoder. */
export const PAPER_SIZE: Omit<XlnetSize, 'vocab'> = { layers: 6, dModel: 384, heads: 12, inner: 4096, length: 128 };

const presets: Record<string, PresetConfig<XlnetOptions>> = {
  smoke: {
    description: 'seconds: a 1-layer, 16-wide encoder on 96 UCI sentences, b in {8, 16}, 2 epochs, 4 runs',
    seed: 1,
    batchSizes: [8, 16],
    epochs: 2,
    runs: 4,
    initPoints: 1,
    learningRate: { type: 'constant', value: 1e-3 },
    options: { data: 'uci', trainSamples: 96, validationSamples: 48, evalTrainSamples: 48, vocabSize: 200, size: { layers: 1, dModel: 16, heads: 2, inner: 32, length: 24 }, evalBatch: 48 },
  },
  cpu: {
    description:
      '1 min 54 s on native, 2 cores: a 2-layer, 32-wide encoder (4 heads, inner 128, 32 tokens) on 400 of the UCI sentences and their 200 held-out ones for validation, ' +
      'losses and errors on all of them, b in {32, 64}, 8 epochs of Adam(W) at 3e-3 (training error about 1% at both b), 16 runs',
    seed: 2021,
    batchSizes: [32, 64],
    epochs: 8,
    runs: 16,
    initPoints: 1,
    recordEvery: 2,
    learningRate: { type: 'constant', value: 3e-3 },
    options: { data: 'uci', trainSamples: 400, validationSamples: 0, evalTrainSamples: 0, vocabSize: 2000, size: { layers: 2, dModel: 32, heads: 4, inner: 128, length: 32 }, evalBatch: 100 },
  },
  paper: {
    description: 'App. A.1.4, Fig. 6: 10,000 / 1,000 Yelp polarity reviews, 6 layers, hidden 384, 12 heads, inner 4,096, 128 tokens, vocabulary 32,000, b in {32, 64}, 20 epochs, 100 runs, Adam(W) 4e-5 (GPU scale)',
    seed: 2021,
    batchSizes: [32, 64],
    epochs: 20,
    runs: 100,
    initPoints: 1,
    recordEvery: 1,
    learningRate: { type: 'constant', value: 4e-5 },
    options: { data: 'polarity', trainSamples: 10000, validationSamples: 1000, evalTrainSamples: 1000, vocabSize: 32000, size: PAPER_SIZE },
  },
};

function loadData(o: XlnetOptions, seed: number, dataDir: string, log: (s: string) => void): YelpData {
  if (o.data === 'polarity' || (o.data === 'auto' && hasPolarity(dataDir))) return loadPolarity(dataDir, o.trainSamples, o.validationSamples);
  if (o.data === 'auto') log(`Yelp Review Polarity not found in ${dataDir}: using the UCI sentences (${HOW_TO_GET_YELP})`);
  const data = loadUci(o.uciFile || join(dataDir, UCI_DIR, UCI_FILE), o.validationFraction, seed);
  const cap = (s: YelpData['train'], n: number) => (n > 0 && s.texts.length > n ? { texts: s.texts.slice(0, n), labels: s.labels.slice(0, n) } : s);
  return { ...data, train: cap(data.train, o.trainSamples), validation: cap(data.validation, o.validationSamples) };
}

function loadTokenizer(path: string): Tokenizer {
  try {
    return new Tokenizer(JSON.parse(readDataFile(path).toString('utf8')) as TokenizerJson);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(path, `cannot read the tokenizer (${(e as Error).message})`);
  }
}

/** Our parameter count, and for the paper's encoder how it compares with the paper's count. */
export function countNote(size: XlnetSize): string {
  const ours = parameterCount(size);
  const paperLayout = (Object.keys(PAPER_SIZE) as (keyof typeof PAPER_SIZE)[]).every((k) => k === 'length' || size[k] === PAPER_SIZE[k]);
  const head = `${ours.toLocaleString('en-US')} parameters (vocabulary ${size.vocab.toLocaleString('en-US')})`;
  if (!paperLayout) return head;
  const diff = ours - PAPER_PARAMETERS;
  if (diff === 0) return `${head}, the paper's count`;
  const v = size.vocab - diff / size.dModel;
  const same = Number.isInteger(v) && v > 0 ? `; the paper's count is this layout with a ${v.toLocaleString('en-US')}-token vocabulary` : '';
  return `${head}; the paper reports ${PAPER_PARAMETERS.toLocaleString('en-US')}, ${Math.abs(diff).toLocaleString('en-US')} ${diff > 0 ? 'fewer' : 'more'}${same}`;
}

/** Fig. 6, declared beside the metrics. */
export const XLNET_FIGURES: FigureSpec[] = [
  { kind: 'series', id: 'grad_variance_epoch', metrics: ['grad_variance_epoch'], labels: ['Var(g_t|F0), per-epoch mean'], x: ['epoch'], overInitPoints: 'median-band', paperRef: 'Fig. 6 (left)', caption: 'The per-epoch mean of the variance of the raw stochastic gradient (before clipping and Adam), one colour per b.' },
  { kind: 'series', id: 'grad_variance', metrics: ['grad_variance'], labels: ['Var(g_t|F0)'], x: ['step'], paperRef: 'Fig. 6 (left), per step', caption: 'The same variance at every recorded step.' },
  { kind: 'series', id: 'loss', metrics: ['loss'], labels: ['loss'], x: ['epoch', 'step'], splits: true, paperRef: 'Fig. 6 (middle)', caption: 'Training and validation loss at equal epochs, and at equal steps.' },
  { kind: 'series', id: 'error', metrics: ['error'], labels: ['error'], x: ['epoch', 'step'], splits: true, paperRef: 'Fig. 6 (right)', caption: 'Training and validation error at equal epochs, and at equal steps.' },
];

export default definePlugin<XlnetOptions>({
  name: 'yelp-xlnet',
  description: 'XLNet-style encoder on Yelp review polarity with Adam(W) (App. A.1.4, Fig. 6): per-epoch variance, losses, errors',
  configSchema,
  presets,
  metrics: ['grad_variance', 'grad_variance_epoch', 'loss', 'error'],
  figures: XLNET_FIGURES,
  checkStudy(study, fail) {
    const s = study.options.size;
    if (s.dModel % s.heads !== 0) fail('/options/size/dModel', `must be a multiple of heads (${s.heads})`);
    else if ((s.dModel / s.heads) % 1 !== 0 || s.dModel % 2 !== 0) fail('/options/size/dModel', 'must be even');
    if (study.epochs === undefined && study.steps === undefined) fail('/epochs', 'give "epochs" (or "steps")');
  },
  resources(study, { dataDir }) {
    const o = study.options;
    // The vocabulary is at most vocabSize (merges stop early); 560,000 polarity reviews or about
    // 1,000 UCI sentences, capped by trainSamples.
    const size: XlnetSize = { ...o.size, vocab: o.vocabSize };
    const polarity = o.data === 'polarity' || (o.data === 'auto' && hasPolarity(dataDir));
    const all = polarity ? 560_000 : Math.round(1000 * (1 - o.validationFraction));
    const n = o.trainSamples > 0 ? Math.min(o.trainSamples, all) : all;
    const params = parameterCount(size);
    const forwardPerExample = 2 * size.length * (params - size.vocab * size.dModel) + size.layers * 6 * size.length * size.length * size.dModel;
    return {
      fixed: {
        'token ids of the training and evaluation sets': 4 * size.length * (n + o.evalTrainSamples + o.validationSamples),
        'θ0 (float64)': 8 * params * study.initPoints,
      },
      bytesPerReplica: (b) => xlnetBytesPerReplica(size, b),
      chunked: true,
      flopsPerStep: (b) => 3 * b * forwardPerExample,
      steps: (b) => (study.epochs !== undefined ? study.epochs * Math.max(1, Math.floor(n / b)) : (study.steps ?? 0)),
      recordsPerStep: 8,
    };
  },
  async register(container, study, ctx) {
    const o = study.options;
    const backend = await useBackend(study.backend, (m) => ctx.logger.warn(m));
    if (backend.adapter) ctx.logger.info(describeAdapter(backend.adapter));
    ctx.recordFact('backend', backend);
    const data = loadData({ ...o, uciFile: o.uciFile && studyPath(ctx, o.uciFile, '/options/uciFile') }, study.seed, ctx.dataDir, (s) => ctx.logger.warn(s));
    for (const f of data.files) ctx.recordDataFile(f.path, f.sha256, data.source === 'polarity' ? 'Yelp Review Polarity' : 'UCI Yelp sentences');
    const tokenizer = o.tokenizer ? loadTokenizer(studyPath(ctx, o.tokenizer, '/options/tokenizer')) : Tokenizer.train(data.train.texts, o.vocabSize, { lowercase: o.lowercase });
    ctx.writeArtifact?.('tokenizer.json', JSON.stringify(tokenizer.toJSON()));
    const size: XlnetSize = { ...o.size, vocab: tokenizer.vocabSize };
    const train = encodeSet(data.train, tokenizer, size.length);
    checkBatchSizesFit(study, train.count, 'the Yelp training split (options.trainSamples)');
    const evalTrain = encodeSet(data.train, tokenizer, size.length, o.evalTrainSamples);
    const validation = encodeSet(data.validation, tokenizer, size.length);
    const note = countNote(size);
    ctx.logger.info(`yelp-xlnet: ${size.layers} layers, hidden ${size.dModel}, ${size.heads} heads, inner ${size.inner}, ${size.length} tokens: ${note}`);
    ctx.recordFact('model', { ...size, parameters: parameterCount(size), paperParameters: PAPER_PARAMETERS, note, requestedVocab: o.vocabSize });
    ctx.recordFact('data', { source: data.source, train: train.count, validation: validation.count, evaluatedOn: { train: evalTrain.count, validation: validation.count }, truncated: { train: train.truncated, validation: validation.truncated }, meanTokens: Number(train.meanTokens.toFixed(1)) });
    const program = xlnetProgram(size);
    const maxB = Math.max(...study.batchSizes);
    const byMemory = chunkSizeFor(study.memoryBudgetMiB * 2 ** 20, xlnetBytesPerReplica(size, maxB), study.runsPerShard ?? study.runs, study.runBlock);
    // Evaluation calls of evalBatch rows are batches too.
    const chunkSize = chunkSizeOn(backend, byMemory, xlnetLargestTensorPerReplica(size, Math.max(maxB, o.evalBatch)), study.runBlock);
    const strategy = xlnetStrategy(backend.tfjsBackend);
    const engine = new ReplicaEngine(program, { strategy, chunkSize, runBlock: study.runBlock });
    ctx.recordFact('engine', { strategy, chunkSize, parameters: parameterCount(size) });
    const model = new XlnetModel(size, engine, train, { train: evalTrain, validation, every: o.evaluateEvery, rowsPerCall: o.evalBatch }, study);
    const blocks = program.blocks;
    // Per token: 2 FLOPs per non-embedding weight forward, 4 backward; attention adds the content,
    // position and value products (3 of L x L x d per layer forward, twice that backward).
    const weights = parameterCount(size) - size.vocab * size.dModel;
    const forwardPerExample = 2 * size.length * weights + size.layers * 6 * size.length * size.length * size.dModel;
    withCost(model, (b) => ({
      flopsPerStep: 3 * b * forwardPerExample,
      flopsPerEvaluation: (evalTrain.count + validation.count) * forwardPerExample,
      bytesPerReplica: xlnetBytesPerReplica(size, b),
      replicasPerChunk: chunkSize,
    }));
    container.register(Tokens.Model, { useValue: model });
    container.register(Tokens.SamplerFactory, { useValue: textEpochSampler(train) });
    container.register(Tokens.Optimizer, { useValue: xlnetOptimizer(engine, o.optimizer, (k) => decays(blocks[k].name), () => model.totalSteps) });
    container.register(Tokens.Analysis, { useValue: epochMean({ id: 'xlnet-epoch-mean-variance', metric: 'grad_variance', as: 'grad_variance_epoch' }) });
    const referenceLength = referenceEpochLength(train.count, study);
    const claims = (spec: Omit<EpochClaimSpec, 'referenceLength' | 'estimators'>) => {
      for (const c of atEqualEpochsAndSteps({ ...spec, referenceLength, estimators: ['monte_carlo'] })) container.register(Tokens.Claim, { useValue: c });
    };
    claims({ id: 'grad-variance-decreasing-in-b', statement: 'Var(g_t|F0) decreases in b (per-epoch means at equal epochs, per step at equal steps), even with Adam', paperRef: 'Fig. 6', quote: FIG6, metric: 'grad_variance_epoch', stepMetric: 'grad_variance', layers: ['all'] });
    for (const [id, what, metric, split] of [
      ['train-loss', 'training loss', 'loss', 'train'],
      ['validation-loss', 'validation loss', 'loss', 'validation'],
      ['train-error', 'training error', 'error', 'train'],
      ['validation-error', 'validation error', 'error', 'validation'],
    ] as const) {
      claims({ id: `${id}-decreasing-in-b`, statement: `The expected ${what} decreases in b (larger b, lower ${what})`, paperRef: 'App. A.2, Fig. 6', quote: FIG6, note: TWO_READINGS, metric, split, fromEpoch: 1 });
      claims({ id: `${id}-increasing-in-b`, statement: `The expected ${what} increases in b (smaller b, lower ${what})`, paperRef: 'Sec. 1 (hypothesis)', quote: metric === 'loss' && split === 'train' ? HYPOTHESIS_LOSS : HYPOTHESIS_PREDICTION, note: TWO_READINGS, metric, split, fromEpoch: 1, direction: 'increasing' });
    }
  },
});
