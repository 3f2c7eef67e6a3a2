/**
 * The paper's figures as vega-lite specs built from records alone: which figures a study gets
 * follows from which metrics and fields its records carry, never from the setting's name.
 */
import type { MetricRecord } from '@sgd-lab/core';
import { polyval } from '@sgd-lab/core';

/** One figure: a vega-lite spec with its data inlined, and the rows behind it for CSV. */
export interface Figure {
  id: string;
  title: string;
  /** The paper's figure it corresponds to. */
  paperRef: string;
  spec: Record<string, unknown>;
  rows: Record<string, unknown>[];
}

/** Inputs besides the records. */
export interface FigureContext {
  initPoints: number;
  /** Overlay several studies: records carry their study name and lines are dashed by study. */
  compare?: boolean;
}

const WIDTH = 520;
const HEIGHT = 300;
/** Values below this fraction of a series' largest value are round-off (float32 included) and left off log plots. */
const ROUND_OFF_FLOOR = 1e-9;
/** Points per polynomial curve in the variance-against-b figure. */
const CURVE_POINTS = 60;

const axisOf = (rs: MetricRecord[]): 'epoch' | 'step' => (rs.some((r) => r.epoch !== undefined) ? 'epoch' : 'step');
const isTotal = (r: MetricRecord) => r.layer === undefined || r.layer === 'all';

function base(title: string, rows: Record<string, unknown>[]): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    config: { font: 'sans-serif', legend: { orient: 'right' } },
  };
}

const colorB = { field: 'b', type: 'ordinal', title: 'batch size b', sort: 'ascending', scale: { scheme: 'viridis' } };

/** log Var against t, one line per b, Monte Carlo with its band and the exact curve dashed. */
function varianceFigure(records: MetricRecord[], metric: string, label: string, ctx: FigureContext): Figure | undefined {
  const all = records.filter((r) => r.metric === metric && r.batchSize !== undefined && isTotal(r) && r.initPoint === 0);
  // On a log axis, round-off of an exact zero (the full gradient at t = 0) would squash the plot.
  const floor = ROUND_OFF_FLOOR * Math.max(0, ...all.map((r) => r.value));
  const rs = all.filter((r) => r.value > floor);
  if (!rs.some((r) => r.estimator === 'monte_carlo')) return undefined;
  const x = axisOf(rs);
  const rows = rs.map((r) => ({ x: r[x], b: r.batchSize, estimator: r.estimator, value: r.value, ciLow: r.ciLow, ciHigh: r.ciHigh, study: r.study }));
  const dash = ctx.compare ? { strokeDash: { field: 'study', type: 'nominal' } } : {};
  const xEnc = { field: 'x', type: 'quantitative', title: x === 'epoch' ? 'epoch' : 'iteration t' };
  const yEnc = { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: label };
  return {
    id: metric,
    title: `${label} against ${x === 'epoch' ? 'epochs' : 't'}`,
    paperRef: metric === 'grad_variance' ? 'Figs. 2(a), 3, 4(a)' : metric === 'noise_scale' ? 'beyond the paper: McCandlish et al. 2018, docs/noise-scale.md' : 'Figs. 2(a), 3',
    rows,
    spec: {
      ...base(`log ${label}`, rows),
      layer: [
        {
          transform: [{ filter: "datum.estimator === 'monte_carlo' && datum.ciLow > 0" }],
          mark: { type: 'area', opacity: 0.2 },
          encoding: { x: xEnc, y: { field: 'ciLow', type: 'quantitative', scale: { type: 'log' }, title: label }, y2: { field: 'ciHigh' }, color: colorB, ...(ctx.compare ? { detail: { field: 'study' } } : {}) },
        },
        {
          transform: [{ filter: "datum.estimator === 'monte_carlo'" }],
          mark: { type: 'line', strokeWidth: 1.5 },
          encoding: { x: xEnc, y: yEnc, color: colorB, ...dash },
        },
        {
          transform: [{ filter: "datum.estimator === 'exact'" }],
          mark: { type: 'line', strokeWidth: 1.5, strokeDash: [5, 3], color: 'black', opacity: 0.8 },
          encoding: { x: xEnc, y: yEnc, detail: { field: 'b' } },
        },
      ],
    },
  };
}

/** Per-layer variances, faceted by layer. */
function layerFigure(records: MetricRecord[]): Figure | undefined {
  const rs = records.filter((r) => r.metric === 'grad_variance' && r.estimator === 'monte_carlo' && r.layer !== undefined && r.layer !== 'all' && r.initPoint === 0 && r.value > 0);
  if (rs.length === 0) return undefined;
  const x = axisOf(rs);
  const rows = rs.map((r) => ({ x: r[x], b: r.batchSize, layer: r.layer, value: r.value }));
  return {
    id: 'grad_variance_by_layer',
    title: 'Var(g_t|F0) per layer',
    paperRef: 'Fig. 3 (per layer)',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: 'log Var(g_t|F0) per layer',
      data: { values: rows },
      facet: { column: { field: 'layer', type: 'nominal' } },
      spec: {
        width: 260,
        height: 220,
        mark: { type: 'line', strokeWidth: 1.2 },
        encoding: { x: { field: 'x', type: 'quantitative', title: x }, y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'Var(g)' }, color: colorB },
      },
    },
  };
}

/** Variance against b at chosen t: Monte Carlo points and the exact and fitted polynomials in 1/b. */
function polynomialFigure(records: MetricRecord[]): Figure | undefined {
  const poly = records.filter((r) => r.metric === 'grad_variance_poly' && r.initPoint === 0 && isTotal(r));
  if (poly.length === 0) return undefined;
  const steps = [...new Set(poly.map((r) => r.step!))].sort((a, b) => a - b);
  const bs = [...new Set(records.filter((r) => r.metric === 'grad_variance' && r.batchSize !== undefined).map((r) => r.batchSize!))].sort((a, b) => a - b);
  if (bs.length === 0) return undefined;
  const rows: Record<string, unknown>[] = [];
  for (const t of steps) {
    for (const r of records) {
      if (r.metric === 'grad_variance' && r.estimator === 'monte_carlo' && r.step === t && isTotal(r) && r.initPoint === 0) {
        rows.push({ step: `t = ${t}`, b: r.batchSize, value: r.value, ciLow: r.ciLow, ciHigh: r.ciHigh, kind: 'Monte Carlo' });
      }
    }
    for (const estimator of ['exact', 'fitted'] as const) {
      const c: number[] = [];
      for (const r of poly) if (r.step === t && r.estimator === estimator) c[r.power ?? 0] = r.value;
      if (c.length === 0) continue;
      const coef = Array.from(c, (v) => v ?? 0);
      const lo = Math.log(bs[0]);
      const hi = Math.log(bs[bs.length - 1]);
      for (let i = 0; i < CURVE_POINTS; i++) {
        const b = Math.exp(lo + ((hi - lo) * i) / (CURVE_POINTS - 1));
        const v = polyval(coef, 1 / b);
        if (v > 0) rows.push({ step: `t = ${t}`, b, value: v, kind: estimator === 'exact' ? 'exact polynomial' : 'fitted polynomial' });
      }
    }
  }
  const x = { field: 'b', type: 'quantitative', scale: { type: 'log' }, title: 'batch size b' };
  const y = { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'Var(g_t|F0)' };
  return {
    id: 'grad_variance_vs_b',
    title: 'Var(g_t|F0) against b, with the exact and fitted polynomials in 1/b',
    paperRef: 'Fig. 2(b)',
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: 'Var(g_t|F0) against b',
      data: { values: rows },
      facet: { column: { field: 'step', type: 'nominal', title: null, sort: steps.map((t) => `t = ${t}`) } },
      spec: {
        width: 220,
        height: 220,
        layer: [
          { transform: [{ filter: "datum.kind !== 'Monte Carlo'" }], mark: { type: 'line' }, encoding: { x, y, color: { field: 'kind', type: 'nominal', title: null }, strokeDash: { field: 'kind', type: 'nominal' } } },
          { transform: [{ filter: "datum.kind === 'Monte Carlo' && datum.ciLow > 0" }], mark: { type: 'rule' }, encoding: { x, y: { field: 'ciLow', type: 'quantitative', scale: { type: 'log' } }, y2: { field: 'ciHigh' } } },
          { transform: [{ filter: "datum.kind === 'Monte Carlo'" }], mark: { type: 'point', filled: true, size: 30, color: 'black' }, encoding: { x, y } },
        ],
      },
    },
  };
}

/** Median with a min-max band over initial points (Figs. 1(a), 4(a)). */
function initPointFigure(records: MetricRecord[], ctx: FigureContext): Figure | undefined {
  if (ctx.initPoints < 2) return undefined;
  const rs = records.filter((r) => r.metric === 'grad_variance' && r.estimator === 'monte_carlo' && isTotal(r) && r.value > 0);
  const x = axisOf(rs);
  const groups = new Map<string, number[]>();
  for (const r of rs) {
    const k = `${r.batchSize}|${r[x]}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(r.value);
  }
  const rows = [...groups].map(([k, vs]) => {
    const [b, xv] = k.split('|').map(Number);
    const s = [...vs].sort((p, q) => p - q);
    return { b, x: xv, median: s[s.length >> 1], min: s[0], max: s[s.length - 1], initPoints: s.length };
  });
  const xEnc = { field: 'x', type: 'quantitative', title: x };
  return {
    id: 'grad_variance_over_init_points',
    title: 'Var of the stochastic gradient over initial points: median and min-max',
    paperRef: 'Figs. 1(a), 4(a)',
    rows,
    spec: {
      ...base('log Var(g): median and min-max over initial points', rows),
      layer: [
        { mark: { type: 'area', opacity: 0.25 }, encoding: { x: xEnc, y: { field: 'min', type: 'quantitative', scale: { type: 'log' }, title: 'Var(g)' }, y2: { field: 'max' }, color: colorB } },
        { mark: { type: 'line' }, encoding: { x: xEnc, y: { field: 'median', type: 'quantitative', scale: { type: 'log' } }, color: colorB } },
      ],
    },
  };
}

/** Training and validation loss and error against t or epochs (Figs. 5, 6). */
function lossFigure(records: MetricRecord[], metric: 'loss' | 'error', ctx: FigureContext): Figure | undefined {
  const rs = records.filter((r) => r.metric === metric && r.batchSize !== undefined && r.initPoint === 0 && r.value > 0 && r.estimator === 'monte_carlo');
  if (rs.length === 0) return undefined;
  const x = axisOf(rs);
  const rows = rs.map((r) => ({ x: r[x], b: r.batchSize, split: r.split ?? 'population', value: r.value, study: r.study }));
  return {
    id: metric,
    title: `${metric} against ${x === 'epoch' ? 'epochs' : 't'}`,
    paperRef: 'Figs. 1(b, c), 5, 6',
    rows,
    spec: {
      ...base(`log ${metric}`, rows),
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: x },
        y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: metric },
        color: colorB,
        strokeDash: { field: ctx.compare ? 'study' : 'split', type: 'nominal' },
      },
    },
  };
}

/** The accuracy gap (train - distorted test) against epochs (Fig. 4(b)). */
function gapFigure(records: MetricRecord[]): Figure | undefined {
  const rs = records.filter((r) => r.metric === 'accuracy_gap' && r.batchSize !== undefined);
  if (rs.length === 0) return undefined;
  const x = axisOf(rs);
  const rows = rs.map((r) => ({ x: r[x], b: r.batchSize, value: r.value, initPoint: r.initPoint }));
  return {
    id: 'accuracy_gap',
    title: 'Accuracy gap (train - distorted test) against epochs',
    paperRef: 'Figs. 1(d), 4(b)',
    rows,
    spec: {
      ...base('accuracy gap', rows),
      mark: { type: 'line', point: true },
      encoding: { x: { field: 'x', type: 'quantitative', title: x }, y: { field: 'value', type: 'quantitative', title: 'train - test accuracy' }, color: colorB, detail: { field: 'initPoint' } },
    },
  };
}

/** Every figure the records support. */
export function figuresFor(records: MetricRecord[], ctx: FigureContext): Figure[] {
  return [
    varianceFigure(records, 'grad_variance', 'Var(g_t|F0)', ctx),
    varianceFigure(records, 'full_grad_variance', 'Var(grad L(w_t)|F0)', ctx),
    varianceFigure(records, 'noise_scale', 'noise scale B_simple(t)', ctx),
    layerFigure(records),
    polynomialFigure(records),
    initPointFigure(records, ctx),
    lossFigure(records, 'loss', ctx),
    lossFigure(records, 'error', ctx),
    gapFigure(records),
  ].filter((f): f is Figure => f !== undefined);
}

/** The rows of a figure as CSV (columns: the union of the rows' keys). */
export function toCsv(rows: Record<string, unknown>[]): string {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
  return [cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
}
