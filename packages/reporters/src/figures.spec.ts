import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { FigureSpec, MetricRecord } from '@sgd-lab/core';
import { DIRECT_LABELS_MAX, figuresFor, toCsv } from './figures.js';
import { renderSvg, svgToPng } from './render.js';

const base = { study: 's', setting: 'x-y', initPoint: 0 };
function series(metric: string, estimator: 'monte_carlo' | 'exact', extra: Partial<MetricRecord> = {}, bs = [4, 16]): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const b of bs) for (let t = 0; t < 5; t++) out.push({ ...base, metric, estimator, batchSize: b, step: t, value: (t + 1) / b, ciLow: 0.9 / b, ciHigh: 1.1 / b, runs: 10, ...extra });
  return out;
}
const spec = (s: Partial<FigureSpec> & { id: string; metrics: string[] }): FigureSpec => ({ kind: 'series', labels: s.metrics, x: ['step'], paperRef: 'Fig. X', caption: 'c', ...s }) as FigureSpec;

describe('figuresFor', () => {
  it('draws what the specs declare, with their paper reference and caption, and a default figure for undeclared metrics', () => {
    const specs = [spec({ id: 'v', metrics: ['grad_variance'], paperRef: 'Fig. 2(a)', caption: 'the variance' })];
    const figs = figuresFor([...series('grad_variance', 'monte_carlo'), ...series('brand_new_metric', 'monte_carlo')], { initPoints: 1, specs });
    expect(figs.map((f) => [f.id, f.paperRef])).toEqual([
      ['v', 'Fig. 2(a)'],
      ['brand_new_metric', 'not declared by the setting'],
    ]);
    expect(figs[0].caption).toBe('the variance');
  });

  it('draws each declared axis the records carry, and refuses per-step records at their integer epoch (no spikes)', () => {
    const both = series('loss', 'monte_carlo', { split: 'train' }).map((r) => ({ ...r, epoch: r.step! / 2 }));
    const specs = [spec({ id: 'loss', metrics: ['loss'], x: ['epoch', 'step'], splits: true })];
    expect(figuresFor(both, { initPoints: 1, specs }).map((f) => f.id)).toEqual(['loss', 'loss-by-step']);
    // grad_variance per step carries the epoch being run: several records per (b, epoch).
    const perStep = series('grad_variance', 'monte_carlo').map((r) => ({ ...r, epoch: Math.floor(r.step! / 2) + 1 }));
    expect(figuresFor(perStep, { initPoints: 1, specs: [spec({ id: 'g', metrics: ['grad_variance'], x: ['epoch'] })] })).toEqual([]);
  });

  it('gives the median and min-max over initial points as the band', () => {
    const rs = [1, 2, 3].flatMap((ip) => series('grad_variance_epoch', 'monte_carlo').map((r) => ({ ...r, initPoint: ip - 1, value: r.value * ip })));
    const [fig] = figuresFor(rs, { initPoints: 3, specs: [spec({ id: 'e', metrics: ['grad_variance_epoch'], overInitPoints: 'median-band' })] });
    expect(fig.rows.find((r) => r.b === 4 && r.x === 0)).toMatchObject({ value: 0.5, lo: 0.25, hi: 0.75, initPoints: 3, band: 'min-max over initial points' });
    // With one initial point the band is the estimate's interval.
    const [one] = figuresFor(series('grad_variance_epoch', 'monte_carlo'), { initPoints: 1, specs: [spec({ id: 'e', metrics: ['grad_variance_epoch'], overInitPoints: 'median-band' })] });
    expect(one.rows[0]).toMatchObject({ lo: 0.9 / 4, hi: 1.1 / 4, band: 'confidence interval' });
  });

  it('colours up to 6 values of b by category with end labels, more by a sequential scale with a gradient legend', () => {
    const few = figuresFor(series('v', 'monte_carlo', {}, [1, 2, 4, 8, 16, 32]), { initPoints: 1 })[0];
    expect(few.expect).toMatchObject({ bLegend: DIRECT_LABELS_MAX, gradient: false, lines: 6 });
    expect(JSON.stringify(few.spec)).toContain('"type":"text"');
    const many = figuresFor(series('v', 'monte_carlo', {}, [1, 2, 4, 8, 16, 32, 64]), { initPoints: 1 })[0];
    expect(many.expect).toMatchObject({ bLegend: 0, gradient: true, lines: 7 });
    expect(JSON.stringify(many.spec)).not.toContain('"type":"text"');
  });

  it('styles estimators: Monte Carlo solid, exact dashed, fitted dotted, one legend entry each', () => {
    const [fig] = figuresFor([...series('v', 'monte_carlo'), ...series('v', 'exact')], { initPoints: 1 });
    expect(fig.expect.estimatorLegend).toEqual(['Monte Carlo', 'exact']);
    expect(JSON.stringify(fig.spec)).toContain('"range":[[1,0],[6,3]]');
    expect(fig.expect.lines).toBe(4);
  });

  it('evaluates the polynomials on a grid of b', () => {
    const poly: MetricRecord[] = [
      { ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 1, power: 0, value: 0 },
      { ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 1, power: 1, value: 2 },
    ];
    const specs: FigureSpec[] = [{ kind: 'against-b', id: 'vb', metric: 'grad_variance', label: 'Var', polynomial: 'grad_variance_poly', paperRef: 'Fig. 2(b)', caption: 'c' }];
    const fig = figuresFor([...series('grad_variance', 'monte_carlo'), ...poly], { initPoints: 1, specs }).find((f) => f.id === 'vb')!;
    const curve = fig.rows.filter((r) => r.estimator === 'exact polynomial') as { b: number; value: number }[];
    expect(curve.length).toBe(60);
    for (const p of curve) expect(p.value).toBeCloseTo(2 / p.b, 12);
  });

  it('knows no metric by name (everything comes from the specs)', () => {
    const source = readFileSync(new URL('./figures.ts', import.meta.url), 'utf8');
    for (const name of ['grad_variance', 'full_grad_variance', 'loss', 'error', 'accuracy_gap', 'noise_scale']) expect(source).not.toContain(`'${name}'`);
  });
});

describe('rendering', () => {
  it('renders every figure to SVG with marks, and to PNG', async () => {
    const figs = figuresFor([...series('grad_variance', 'monte_carlo'), ...series('grad_variance', 'exact'), ...series('loss', 'monte_carlo')], { initPoints: 1 });
    for (const f of figs) {
      const svg = await renderSvg(f.spec);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toMatch(/<path[^>]+d="M/);
      const png = svgToPng(svg);
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(png.length).toBeGreaterThan(5000);
    }
  });
});

describe('toCsv', () => {
  it('quotes what needs quoting and leaves gaps empty', () => {
    expect(toCsv([{ a: 1, b: 'x,y' }, { a: 2, c: 'say "hi"' }])).toBe('a,b,c\n1,"x,y",\n2,,"say ""hi"""\n');
  });
});
