/**
 * Linear regression with R replicas in run-major Float64Arrays. L(w) = 1/(2n) sum (w.x_i - y_i)^2;
 * the full gradient and the loss use the precomputed H = X^T X / n, h = X^T y / n, so each costs
 * O(p^2) per run instead of O(n p).
 */
import { denseBlockMoments, type DenseReplicaState, type GradientReport, type Model, type ParamBlock, type RandomStream, type ShardSpec } from '@sgd-lab/core';
import type { RegressionData } from './data.js';

/** Second moments of the data. */
export interface DataMoments {
  /** X^T X / n, p x p. */
  H: Float64Array;
  /** X^T y / n. */
  h: Float64Array;
  /** mean of y^2. */
  yy: number;
}

export function dataMoments(d: RegressionData): DataMoments {
  const { x, y, n, p } = d;
  const H = new Float64Array(p * p);
  const h = new Float64Array(p);
  let yy = 0;
  for (let i = 0; i < n; i++) {
    const o = i * p;
    for (let a = 0; a < p; a++) {
      const xa = x[o + a];
      h[a] += y[i] * xa;
      for (let b = 0; b < p; b++) H[a * p + b] += xa * x[o + b];
    }
    yy += y[i] * y[i];
  }
  for (let k = 0; k < p * p; k++) H[k] /= n;
  for (let a = 0; a < p; a++) h[a] /= n;
  return { H, h, yy: yy / n };
}

/** Row indices of a mini-batch per run: run r uses indices[r*stride .. r*stride+size). */
export interface IndexBatch {
  indices: Int32Array;
  stride: number;
  size: number;
}

/** Initial weights: N(0, std^2) per coordinate, or fixed values. */
export type InitSpec = { type: 'normal'; std: number } | { type: 'values'; values: number[] };

export interface LinRegState extends DenseReplicaState {
  /** Full gradient per run (R x p), filled when asked for. */
  full: Float64Array;
  /** g - full gradient per run. */
  diff: Float64Array;
}

/** g_r = (1/b) sum_{i in batch_r} x_i (x_i.w_r - y_i) for every run r. */
export type GradientKernel = (
  runs: number,
  x: Float64Array,
  y: Float64Array,
  params: Float64Array,
  grad: Float64Array,
  indices: Int32Array,
  size: number,
  stride: number,
) => void;

const kernels = new Map<number, GradientKernel>();

/**
 * The mini-batch gradient kernel specialised for p: with p fixed in the source, V8 keeps the
 * weights and the gradient accumulators of a run in registers, which is about 2x faster at p = 8
 * than the loop over a runtime p (measured in the benchmark's notes).
 */
export function gradientKernel(p: number): GradientKernel {
  let k = kernels.get(p);
  if (k) return k;
  const js = Array.from({ length: p }, (_, a) => a);
  const body = `
    const inv = 1 / size;
    for (let r = 0; r < runs; r++) {
      const wo = r * ${p};
      ${js.map((a) => `const w${a} = params[wo + ${a}]; let g${a} = 0;`).join(' ')}
      const io = r * stride;
      for (let k = 0; k < size; k++) {
        const i = indices[io + k];
        const xo = i * ${p};
        const res = (${js.map((a) => `x[xo + ${a}] * w${a}`).join(' + ')} - y[i]) * inv;
        ${js.map((a) => `g${a} += res * x[xo + ${a}];`).join(' ')}
      }
      ${js.map((a) => `grad[wo + ${a}] = g${a};`).join(' ')}
    }`;
  k = new Function('runs', 'x', 'y', 'params', 'grad', 'indices', 'size', 'stride', body) as GradientKernel;
  kernels.set(p, k);
  return k;
}

export class LinearRegressionModel implements Model<LinRegState, IndexBatch> {
  readonly id = 'linear-regression';
  readonly blocks: readonly ParamBlock[];
  readonly rows: number;
  private readonly mom: DataMoments;
  private readonly kernel: GradientKernel;

  constructor(
    readonly data: RegressionData,
    private readonly init: InitSpec,
  ) {
    this.blocks = [{ name: 'w', size: data.p }];
    this.rows = data.n;
    this.mom = dataMoments(data);
    this.kernel = gradientKernel(data.p);
  }

  get moments(): DataMoments {
    return this.mom;
  }

  initialParameters(rng: RandomStream): Float64Array {
    const w = new Float64Array(this.data.p);
    if (this.init.type === 'values') w.set(this.init.values);
    else rng.fillNormal(w, this.init.std);
    return w;
  }

  replicate(theta0: Float64Array, shard: ShardSpec): LinRegState {
    const runs = shard.runCount;
    const p = this.data.p;
    const params = new Float64Array(runs * p);
    for (let r = 0; r < runs; r++) params.set(theta0, r * p);
    return { runs, runBlock: shard.runBlock, dim: p, params, grad: new Float64Array(runs * p), full: new Float64Array(runs * p), diff: new Float64Array(runs * p) };
  }

  gradients(state: LinRegState, batch: IndexBatch, wantFull: boolean): GradientReport {
    const { runs, grad } = state;
    this.kernel(runs, this.data.x, this.data.y, state.params, grad, batch.indices, batch.size, batch.stride);
    const report: GradientReport = { stochastic: denseBlockMoments(grad, runs, this.blocks, state.runBlock) };
    if (wantFull) {
      this.fullGradients(state);
      report.full = denseBlockMoments(state.full, runs, this.blocks, state.runBlock);
      const { full, diff } = state;
      for (let i = 0; i < diff.length; i++) diff[i] = grad[i] - full[i];
      report.difference = denseBlockMoments(diff, runs, this.blocks, state.runBlock);
    }
    return report;
  }

  /** grad L(w) = H w - h for every run, into state.full. */
  fullGradients(state: LinRegState): void {
    const { H, h } = this.mom;
    const p = this.data.p;
    const { runs, params, full } = state;
    for (let r = 0; r < runs; r++) {
      const o = r * p;
      for (let a = 0; a < p; a++) {
        let s = -h[a];
        for (let b = 0; b < p; b++) s += H[a * p + b] * params[o + b];
        full[o + a] = s;
      }
    }
  }

  scalars(state: LinRegState): Record<string, Float64Array> {
    const { H, h, yy } = this.mom;
    const p = this.data.p;
    const loss = new Float64Array(state.runs);
    const w = state.params;
    for (let r = 0; r < state.runs; r++) {
      const o = r * p;
      let quad = 0;
      let lin = 0;
      for (let a = 0; a < p; a++) {
        let s = 0;
        for (let b = 0; b < p; b++) s += H[a * p + b] * w[o + b];
        quad += w[o + a] * s;
        lin += h[a] * w[o + a];
      }
      loss[r] = 0.5 * (quad - 2 * lin + yy);
    }
    return { loss };
  }
}
