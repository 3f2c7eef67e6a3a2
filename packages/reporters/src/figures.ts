/**
 * Figures as vega-lite specs, built from records and the figure specs a setting declares
 * (FigureSpec in core, written into manifest.json). Nothing here knows a metric by name: what is
 * drawn, against which axis, with which paper reference and caption, comes from the specs; a
 * metric nobody declared gets core's default figure.
 */
import { CORE_FIGURES, defaultFigure, polyval, type AgainstBatchSizeFigureSpec, type FigureSpec, type MetricRecord, type SeriesFigureSpec } from '@sgd-lab/core';

/** One figure: a vega-lite spec with its data inlined, and the rows behind it for CSV. */
export interface Figure {
  id: string;
  title: string;
  /** The paper's figure it corresponds to (the setting's own). */
  paperRef: string;
  caption: string;
  spec: Record<string, unknown>;
  rows: Record<string, unknown>[];
  /** What the rendered figure must show (the browser test checks the SVG against it). */
  expect: {
    /** Line paths: one per (facet, b, estimator, study) series. */
    lines: number;
    /** Entries of the b legend (0 for a gradient legend) and of the estimator legend. */
    bLegend: number;
    estimatorLegend: string[];
    /** Whether b has a continuous (gradient) legend. */
    gradient: boolean;
  };
}

/** Inputs besides the records. */
export interface FigureContext {
  initPoints: number;
  /** Overlay several studies: each study gets its own marker shape and a legend with its full name. */
  compare?: boolean;
  /** The figure specs (manifest.figures); default: core's. */
  specs?: readonly FigureSpec[];
}

/** The report page's width: no figure may be wider. */
export const PAGE_WIDTH = 1400;
/** At most this many values of b get categorical colours and labels at the line ends; more get a sequential scale. */
export const DIRECT_LABELS_MAX = 6;
const WIDTH = 560;
const HEIGHT = 300;
/** Values below this fraction of a series' largest value are round-off and left off log plots. */
const ROUND_OFF_FLOOR = 1e-9;
const CURVE_POINTS = 60;

/** Each estimator's style: Monte Carlo solid with its band, exact dashed, fitted dotted. */
export const ESTIMATOR_STYLE = {
  monte_carlo: { name: 'Monte Carlo', dash: [1, 0] },
  exact: { name: 'exact', dash: [6, 3] },
  fitted: { name: 'fitted', dash: [2, 2] },
} as const;
const MC = ESTIMATOR_STYLE.monte_carlo.name;

const isTotal = (r: MetricRecord) => r.layer === undefined || r.layer === 'all';
const axisTitle = (x: string) => (x === 'epoch' ? 'epoch' : 'iteration t');

/** The colour channel of b: categorical with line swatches up to DIRECT_LABELS_MAX values, else sequential with a gradient. */
function colourOfB(bs: number[]) {
  return bs.length <= DIRECT_LABELS_MAX
    ? { field: 'b', type: 'ordinal', title: 'batch size b', sort: 'ascending', scale: { scheme: 'viridis', domain: bs }, legend: { symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1 } }
    : { field: 'b', type: 'quantitative', title: 'batch size b', scale: { type: 'log', scheme: 'viridis', domain: [bs[0], bs[bs.length - 1]] }, legend: { type: 'gradient', gradientLength: 180 } };
}

/**
 * The colour of b as a fill without a legend, for bands, labels and markers: the one legend of b
 * belongs to the lines' stroke colour, with line swatches (a shared colour channel would merge
 * the band's opacity and fill into it).
 */
function fillOf(c: ReturnType<typeof colourOfB>) {
  return { ...c, legend: null };
}

function estimatorDash(present: string[]) {
  const styles = Object.values(ESTIMATOR_STYLE).filter((s) => present.includes(s.name));
  return {
    field: 'estimator',
    type: 'nominal',
    title: 'estimator',
    scale: { domain: styles.map((s) => s.name), range: styles.map((s) => s.dash) },
    legend: { symbolType: 'stroke', symbolStrokeColor: '#333', symbolStrokeWidth: 2, symbolOpacity: 1 },
  };
}

/**
 * Facet layout that fits the page: at most 4 columns, each cell's plot narrowed by room for its
 * y axis (tick labels such as 0.000001) and the legend on the right.
 */
function cells(count: number): { width: number; columns: number } {
  const legend = 240;
  const axis = 120;
  const columns = Math.min(count, 4);
  const width = Math.max(140, Math.min(320, Math.floor((PAGE_WIDTH - legend) / columns) - axis));
  return { width, columns };
}

function median(sorted: number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[n >> 1] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** One series figure on one x axis, or undefined when the records do not support it. */
function seriesFigure(records: MetricRecord[], spec: SeriesFigureSpec, x: 'step' | 'epoch', ctx: FigureContext, idSuffix: string): Figure | undefined {
  const log = (spec.yScale ?? 'log') === 'log';
  const label = new Map(spec.metrics.map((m, i) => [m, spec.labels[i] ?? m]));
  const rs = records.filter(
    (r) => label.has(r.metric) && r.batchSize !== undefined && r[x] !== undefined && Number.isFinite(r.value) && ((spec.layers ?? 'total') === 'each' ? r.layer !== undefined : isTotal(r)),
  );
  if (!rs.some((r) => r.estimator === 'monte_carlo' || r.estimator === 'fitted')) return undefined;
  const key = (r: MetricRecord) => [r.study, r.metric, r.layer ?? '', r.split ?? '', r.estimator, r.batchSize].join('|');
  // Per-step records at their integer epoch would draw spikes: an axis needs one record per x.
  const seen = new Set<string>();
  for (const r of rs.filter((q) => q.initPoint === 0)) {
    const k = `${key(r)}|${r[x]}`;
    if (seen.has(k)) return undefined;
    seen.add(k);
  }
  const floor = log ? ROUND_OFF_FLOOR * Math.max(0, ...rs.map((r) => r.value)) : -Infinity;
  const initPoints = new Set(rs.map((r) => r.initPoint)).size;
  const band = (spec.overInitPoints ?? 'first') === 'median-band' && initPoints > 1;
  const groups = new Map<string, MetricRecord[]>();
  for (const r of rs) {
    if (!band && r.initPoint !== 0) continue;
    const k = `${key(r)}|${r[x]}`;
    const g = groups.get(k) ?? [];
    groups.set(k, g);
    g.push(r);
  }
  const rows: Record<string, unknown>[] = [];
  for (const g of groups.values()) {
    const r = g[0];
    const common = { study: r.study, metric: label.get(r.metric), layer: r.layer ?? 'all', split: r.split ?? '', estimator: ESTIMATOR_STYLE[r.estimator].name, b: r.batchSize, x: r[x] };
    if (band) {
      const vs = g.map((q) => q.value).sort((p, q) => p - q);
      if (log && !(vs[0] > floor)) continue;
      rows.push({ ...common, value: median(vs), lo: vs[0], hi: vs[vs.length - 1], initPoints: vs.length, band: 'min-max over initial points' });
    } else {
      if (!(r.value > floor)) continue;
      rows.push({ ...common, value: r.value, lo: r.ciLow, hi: r.ciHigh, band: r.ciLow !== undefined ? 'confidence interval' : undefined });
    }
  }
  if (rows.length === 0) return undefined;
  const bs = [...new Set(rows.map((r) => r.b as number))].sort((a, b) => a - b);
  // In the order of ESTIMATOR_STYLE, as the dash scale and its legend list them.
  const present = new Set(rows.map((r) => r.estimator as string));
  const estimators = Object.values(ESTIMATOR_STYLE).map((e) => e.name as string).filter((n) => present.has(n));
  const facetFields = [spec.metrics.length > 1 ? 'metric' : undefined, (spec.layers ?? 'total') === 'each' ? 'layer' : undefined, spec.splits ? 'split' : undefined].filter((f): f is string => f !== undefined);
  const facetValues = (f: string) => [...new Set(rows.map((r) => String(r[f])))];
  const colour = colourOfB(bs);
  const xEnc = { field: 'x', type: 'quantitative', title: axisTitle(x) };
  const yTitle = spec.metrics.length > 1 ? 'value' : (spec.labels[0] ?? spec.metrics[0]);
  const yEnc = { field: 'value', type: 'quantitative', scale: { type: log ? 'log' : 'linear' }, title: yTitle };
  const groupBy = ['b', 'estimator', 'study', ...facetFields];
  // The line layer first: the shared legend takes its swatches from it (a band first would make them pale).
  const layers: Record<string, unknown>[] = [
    {
      mark: { type: 'line', strokeWidth: 1.6 },
      encoding: { x: xEnc, y: yEnc, stroke: colour, strokeDash: estimatorDash(estimators), detail: { field: 'study' } },
    },
    {
      transform: [{ filter: `datum.estimator === '${MC}' && isValid(datum.lo) && isValid(datum.hi)${log ? ' && datum.lo > 0' : ''}` }],
      mark: { type: 'area', opacity: 0.15 },
      encoding: { x: xEnc, y: { field: 'lo', type: 'quantitative', scale: { type: log ? 'log' : 'linear' }, title: yTitle }, y2: { field: 'hi' }, fill: fillOf(colour), detail: { field: 'study' } },
    },
  ];
  if (ctx.compare) {
    // The study is its own channel: a marker shape on every tenth point, with the full name in the legend.
    layers.push({
      transform: [{ window: [{ op: 'row_number', as: 'i' }], groupby: groupBy }, { filter: 'datum.i % 10 === 1' }],
      mark: { type: 'point', filled: true, size: 36 },
      encoding: { x: xEnc, y: yEnc, fill: fillOf(colour), shape: { field: 'study', type: 'nominal', title: 'study', legend: { labelLimit: 0 } } },
    });
  }
  // Labels at the line ends for a few b (in a comparison the lines of two studies would share them).
  if (bs.length <= DIRECT_LABELS_MAX && !ctx.compare) {
    layers.push({
      transform: [{ filter: `datum.estimator === '${estimators.includes(MC) ? MC : estimators[0]}'` }, { joinaggregate: [{ op: 'max', field: 'x', as: 'xEnd' }], groupby: groupBy }, { filter: 'datum.x === datum.xEnd' }],
      mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 },
      encoding: { x: xEnc, y: yEnc, text: { field: 'b', type: 'nominal' }, fill: fillOf(colour) },
    });
  }
  const lines = new Set(rows.map((r) => groupBy.map((f) => String(r[f])).join('|'))).size;
  const title = `${spec.labels.join(' and ')} against ${x === 'epoch' ? 'epochs' : 't'}${band ? ': median and min-max over initial points' : ''}`;
  let vl: Record<string, unknown>;
  const top = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, data: { values: rows }, config: { font: 'sans-serif', legend: { orient: 'right', offset: 40 } } };
  // Bands, labels and markers fill with their own copy of the b scale (same domain and scheme), so
  // that the lines' stroke owns the one legend of b.
  const own = { scale: { fill: 'independent' }, legend: { fill: 'independent' } };
  if (facetFields.length === 0) {
    vl = { ...top, width: WIDTH, height: HEIGHT, layer: layers, resolve: own };
  } else if (facetFields.length === 1) {
    const { width, columns } = cells(facetValues(facetFields[0]).length);
    vl = { ...top, facet: { field: facetFields[0], type: 'nominal', title: null, sort: facetValues(facetFields[0]) }, columns, spec: { width, height: 200, layer: layers, resolve: own }, resolve: { scale: { y: 'independent' } } };
  } else {
    const [row, ...cols] = facetFields;
    const column = cols[cols.length - 1];
    const { width } = cells(facetValues(column).length);
    vl = { ...top, facet: { row: { field: row, type: 'nominal', title: null }, column: { field: column, type: 'nominal', title: null, sort: facetValues(column) } }, spec: { width, height: 180, layer: layers, resolve: own }, resolve: { scale: { y: 'independent' } } };
  }
  return {
    id: `${spec.id}${idSuffix}`,
    title,
    paperRef: spec.paperRef,
    caption: spec.caption,
    rows,
    spec: vl,
    expect: { lines, bLegend: bs.length <= DIRECT_LABELS_MAX ? bs.length : 0, estimatorLegend: estimators, gradient: bs.length > DIRECT_LABELS_MAX },
  };
}

/** A metric against b at the steps with polynomial coefficients (Fig. 2(b)). */
function againstBatchSizeFigure(records: MetricRecord[], spec: AgainstBatchSizeFigureSpec): Figure | undefined {
  const poly = records.filter((r) => r.metric === spec.polynomial && r.initPoint === 0 && isTotal(r) && r.step !== undefined);
  if (poly.length === 0) return undefined;
  const steps = [...new Set(poly.map((r) => r.step!))].sort((a, b) => a - b);
  const bs = [...new Set(records.filter((r) => r.metric === spec.metric && r.batchSize !== undefined).map((r) => r.batchSize!))].sort((a, b) => a - b);
  if (bs.length === 0) return undefined;
  const rows: Record<string, unknown>[] = [];
  const lo = Math.log(bs[0]);
  const hi = Math.log(bs[bs.length - 1]);
  for (const t of steps) {
    for (const r of records) {
      if (r.metric === spec.metric && r.estimator === 'monte_carlo' && r.step === t && isTotal(r) && r.initPoint === 0 && r.value > 0) {
        rows.push({ step: `t = ${t}`, b: r.batchSize, value: r.value, lo: r.ciLow, hi: r.ciHigh, estimator: MC });
      }
    }
    for (const estimator of ['exact', 'fitted'] as const) {
      const c: number[] = [];
      for (const r of poly) if (r.step === t && r.estimator === estimator) c[r.power ?? 0] = r.value;
      if (c.length === 0) continue;
      const coef = Array.from(c, (v) => v ?? 0);
      for (let i = 0; i < CURVE_POINTS; i++) {
        const b = Math.exp(lo + ((hi - lo) * i) / (CURVE_POINTS - 1));
        const v = polyval(coef, 1 / b);
        if (v > 0) rows.push({ step: `t = ${t}`, b, value: v, estimator: `${ESTIMATOR_STYLE[estimator].name} polynomial` });
      }
    }
  }
  const curves = [...new Set(rows.map((r) => r.estimator as string))].filter((e) => e !== MC);
  const x = { field: 'b', type: 'quantitative', scale: { type: 'log' }, title: 'batch size b' };
  const y = { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: spec.label };
  const { width, columns } = cells(steps.length);
  const dashOf = (name: string) => (name.startsWith('exact') ? ESTIMATOR_STYLE.exact.dash : ESTIMATOR_STYLE.fitted.dash);
  return {
    id: spec.id,
    title: `${spec.label} against b`,
    paperRef: spec.paperRef,
    caption: spec.caption,
    rows,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: `${spec.label} against b`,
      data: { values: rows },
      config: { font: 'sans-serif', legend: { orient: 'right' } },
      facet: { field: 'step', type: 'nominal', title: null, sort: steps.map((t) => `t = ${t}`) },
      columns,
      resolve: { scale: { y: 'independent' } },
      spec: {
        width,
        height: 220,
        layer: [
          {
            transform: [{ filter: `datum.estimator !== '${MC}'` }],
            mark: { type: 'line', color: '#333', strokeWidth: 1.4 },
            encoding: { x, y, strokeDash: { field: 'estimator', type: 'nominal', title: 'curve', scale: { domain: curves, range: curves.map(dashOf) }, legend: { symbolType: 'stroke', symbolStrokeColor: '#333', symbolStrokeWidth: 2 } } },
          },
          { transform: [{ filter: `datum.estimator === '${MC}' && datum.lo > 0` }], mark: { type: 'rule', color: '#333' }, encoding: { x, y: { field: 'lo', type: 'quantitative', scale: { type: 'log' } }, y2: { field: 'hi' } } },
          { transform: [{ filter: `datum.estimator === '${MC}'` }], mark: { type: 'point', filled: true, size: 30 }, encoding: { x, y, shape: { field: 'estimator', type: 'nominal', title: null }, color: { value: '#333' } } },
        ],
      },
    },
    expect: { lines: curves.length * steps.length, bLegend: 0, estimatorLegend: curves, gradient: false },
  };
}

/** Every figure the specs and records support; metrics without a spec get the default figure. */
export function figuresFor(records: MetricRecord[], ctx: FigureContext): Figure[] {
  const specs = [...(ctx.specs ?? CORE_FIGURES)];
  // A figure against b does not draw its metric against t: only its coefficients are covered.
  const covered = new Set(specs.flatMap((s) => (s.kind === 'series' ? s.metrics : [s.polynomial])));
  for (const m of new Set(records.filter((r) => r.batchSize !== undefined && (r.step !== undefined || r.epoch !== undefined)).map((r) => r.metric))) {
    if (!covered.has(m)) specs.push(defaultFigure(m));
  }
  const out: Figure[] = [];
  for (const spec of specs) {
    if (spec.kind === 'against-b') {
      const f = againstBatchSizeFigure(records, spec);
      if (f) out.push(f);
      continue;
    }
    let first = true;
    for (const x of spec.x) {
      const f = seriesFigure(records, spec, x, ctx, first ? '' : `-by-${x}`);
      if (f) {
        out.push(f);
        first = false;
      }
    }
  }
  return out;
}

/** The rows of a figure as CSV (columns: the union of the rows' keys). */
export function toCsv(rows: Record<string, unknown>[]): string {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v));
  return [cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
}
