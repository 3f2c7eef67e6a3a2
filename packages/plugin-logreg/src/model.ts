/**
 * Logistic regression on the admission data: label y_i = 1 when the chance of admit is above the
 * median, L(w) = (1/n) sum log(1 + exp(-s_i w.x_i)) with s_i = 2 y_i - 1, gradient
 * (sigma(w.x_i) - y_i) x_i. R replicas in run-major Float64Arrays; the full gradient and the loss
 * are exact sums over the n rows.
 */
import { denseBlockMoments, type DenseReplicaState, type GradientReport, type Model, type ParamBlock, type RandomStream, type ShardSpec } from '@sgd-lab/core';
import type { IndexBatch, RegressionData } from '@sgd-lab/plugin-linreg';

/** The features of a regression data set with the target turned into labels above its median. */
export interface ClassificationData {
  x: Float64Array;
  labels: Float64Array;
  n: number;
  p: number;
  threshold: number;
}

export function aboveMedian(d: RegressionData): ClassificationData {
  const sorted = Float64Array.from(d.y).sort();
  const mid = d.n >> 1;
  const threshold = d.n % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { x: d.x, labels: d.y.map((v) => (v > threshold ? 1 : 0)), n: d.n, p: d.p, threshold };
}

const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));
/** log(1 + exp(z)) without overflow. */
const softplus = (z: number) => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));

export class LogisticRegressionModel implements Model<DenseReplicaState, IndexBatch> {
  readonly id = 'logistic-regression';
  readonly blocks: readonly ParamBlock[];
  readonly rows: number;

  constructor(
    readonly data: ClassificationData,
    private readonly initStd: number,
  ) {
    this.blocks = [{ name: 'w', size: data.p }];
    this.rows = data.n;
  }

  initialParameters(rng: RandomStream): Float64Array {
    return rng.fillNormal(new Float64Array(this.data.p), this.initStd) as Float64Array;
  }

  replicate(theta0: Float64Array, shard: ShardSpec): DenseReplicaState {
    const p = this.data.p;
    const params = new Float64Array(shard.runCount * p);
    for (let r = 0; r < shard.runCount; r++) params.set(theta0, r * p);
    return { runs: shard.runCount, runBlock: shard.runBlock, dim: p, params, grad: new Float64Array(shard.runCount * p) };
  }

  private margin(w: Float64Array, r: number, i: number): number {
    const { x, p } = this.data;
    let z = 0;
    for (let a = 0; a < p; a++) z += x[i * p + a] * w[r * p + a];
    return z;
  }

  gradients(state: DenseReplicaState, batch: IndexBatch, wantFull: boolean): GradientReport {
    const { x, labels, n, p } = this.data;
    const full = wantFull ? new Float64Array(state.runs * p) : undefined;
    for (let r = 0; r < state.runs; r++) {
      for (let a = 0; a < p; a++) state.grad[r * p + a] = 0;
      for (let k = 0; k < batch.size; k++) {
        const i = batch.indices[r * batch.stride + k];
        const e = (sigmoid(this.margin(state.params, r, i)) - labels[i]) / batch.size;
        for (let a = 0; a < p; a++) state.grad[r * p + a] += e * x[i * p + a];
      }
      if (full) {
        for (let i = 0; i < n; i++) {
          const e = (sigmoid(this.margin(state.params, r, i)) - labels[i]) / n;
          for (let a = 0; a < p; a++) full[r * p + a] += e * x[i * p + a];
        }
      }
    }
    const report: GradientReport = { stochastic: denseBlockMoments(state.grad, state.runs, this.blocks, state.runBlock) };
    if (full) {
      report.full = denseBlockMoments(full, state.runs, this.blocks, state.runBlock);
      report.difference = denseBlockMoments(state.grad.map((g, i) => g - full[i]), state.runs, this.blocks, state.runBlock);
    }
    return report;
  }

  scalars(state: DenseReplicaState): Record<string, Float64Array> {
    const { labels, n } = this.data;
    const loss = new Float64Array(state.runs);
    const error = new Float64Array(state.runs);
    for (let r = 0; r < state.runs; r++) {
      for (let i = 0; i < n; i++) {
        const z = this.margin(state.params, r, i);
        loss[r] += softplus(labels[i] ? -z : z) / n;
        if (z > 0 !== labels[i] > 0) error[r] += 1 / n;
      }
    }
    return { loss, error };
  }
}
