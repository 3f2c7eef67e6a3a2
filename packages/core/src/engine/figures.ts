/**
 * Figures declared beside the metrics they draw: a plugin lists FigureSpecs in its definition
 * (core lists its own for core metrics), the session writes them into manifest.json, and
 * reporters render them from the records without knowing any metric by name.
 */

/** A metric against iterations or epochs, one line per b. */
export interface SeriesFigureSpec {
  kind: 'series';
  /** File name stem (figures/<id>.svg); a second x axis adds `-by-<axis>`. */
  id: string;
  /** Metrics drawn; several are faceted in rows (stochastic and full gradient, Fig. 3). */
  metrics: string[];
  /** y-axis title of each metric, in order. */
  labels: string[];
  /** x axes in order: a figure for each one the records carry (`step`: iteration t, `epoch`). */
  x: ('step' | 'epoch')[];
  /** @default 'log' */
  yScale?: 'log' | 'linear';
  /** `total` (layer `all` or none) or `each` (a facet per layer, total included). @default 'total' */
  layers?: 'total' | 'each';
  /** A facet per data split (train, validation). @default false */
  splits?: boolean;
  /**
   * `first`: initial point 0 with each estimate's interval as its band; `median-band`: the median
   * over initial points with their min-max as the band (Figs. 1(a), 4(a)), when there are several.
   * @default 'first'
   */
  overInitPoints?: 'first' | 'median-band';
  /** The setting's own figure in the paper, or what it is beyond the paper. */
  paperRef: string;
  caption: string;
}

/** A metric against b at the steps where a polynomial in 1/b is given (Fig. 2(b)). */
export interface AgainstBatchSizeFigureSpec {
  kind: 'against-b';
  id: string;
  metric: string;
  label: string;
  /** Coefficient records (`power` k multiplies b^-k), drawn as curves per estimator. */
  polynomial: string;
  paperRef: string;
  caption: string;
}

export type FigureSpec = SeriesFigureSpec | AgainstBatchSizeFigureSpec;

/** Figures of the metrics core itself computes, for every setting that has them. */
export const CORE_FIGURES: readonly FigureSpec[] = [
  {
    kind: 'series',
    id: 'noise_scale',
    metrics: ['noise_scale'],
    labels: ['B_simple(t)'],
    x: ['step', 'epoch'],
    paperRef: 'beyond the paper: McCandlish et al. 2018 (docs/noise-scale.md)',
    caption: 'The gradient noise scale B_simple(t) = E[tr Sigma(w_t)] / E[||grad L(w_t)||^2], from the two variances of the paper; above it a larger b buys little.',
  },
  {
    kind: 'series',
    id: 'grad_bias_ratio',
    metrics: ['grad_bias_ratio'],
    labels: ['bias ratio'],
    x: ['step', 'epoch'],
    yScale: 'linear',
    paperRef: 'framework check (unbiasedness of g_t)',
    caption: 'The block average of n_k ||mean_k(g_t - grad L(w_t))||^2 / tr Var(g_t - grad L(w_t)): about 1 when E[g_t] = E[grad L(w_t)].',
  },
];

/**
 * A plain figure for a metric nobody declared: against the first axis its records carry, log
 * scale, initial point 0. Reporters use it so that a new plugin's metrics are drawn anyway.
 */
export function defaultFigure(metric: string): SeriesFigureSpec {
  return { kind: 'series', id: metric, metrics: [metric], labels: [metric], x: ['step', 'epoch'], paperRef: 'not declared by the setting', caption: `${metric} against iterations, one line per b.` };
}
