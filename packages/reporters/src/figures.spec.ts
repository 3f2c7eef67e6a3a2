import { describe, expect, it } from 'vitest';
import type { MetricRecord } from '@sgd-lab/core';
import { figuresFor, toCsv } from './figures.js';
import { renderSvg, svgToPng } from './render.js';

const base = { study: 's', setting: 'x-y', initPoint: 0 };
function series(metric: string, estimator: 'monte_carlo' | 'exact', extra: Partial<MetricRecord> = {}): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const b of [4, 16]) for (let t = 0; t < 5; t++) out.push({ ...base, metric, estimator, batchSize: b, step: t, value: (t + 1) / b, ciLow: 0.9 / b, ciHigh: 1.1 / b, runs: 10, ...extra });
  return out;
}

describe('figuresFor', () => {
  it('picks the figures the records support', () => {
    const ids = (rs: MetricRecord[], initPoints = 1) => figuresFor(rs, { initPoints }).map((f) => f.id);
    expect(ids(series('grad_variance', 'monte_carlo'))).toEqual(['grad_variance']);
    expect(ids([...series('grad_variance', 'monte_carlo'), ...series('full_grad_variance', 'exact')])).toEqual(['grad_variance']);
    expect(ids([...series('grad_variance', 'monte_carlo', { layer: 'W1' }), ...series('grad_variance', 'monte_carlo', { layer: 'all' })])).toEqual(['grad_variance', 'grad_variance_by_layer']);
    const poly: MetricRecord[] = [0, 1, 2].map((power) => ({ ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 2, power, value: 1 }));
    expect(ids([...series('grad_variance', 'monte_carlo'), ...poly])).toContain('grad_variance_vs_b');
    const twoInits = [...series('grad_variance', 'monte_carlo'), ...series('grad_variance', 'monte_carlo').map((r) => ({ ...r, initPoint: 1, value: r.value * 2 }))];
    expect(ids(twoInits, 2)).toContain('grad_variance_over_init_points');
    expect(ids(series('loss', 'monte_carlo', { split: 'train' }))).toEqual(['loss']);
    expect(ids(series('accuracy_gap', 'monte_carlo', { epoch: 1 }))).toEqual(['accuracy_gap']);
  });

  it('computes median and min-max over initial points', () => {
    const rs = [1, 2, 3].flatMap((ip) => series('grad_variance', 'monte_carlo').map((r) => ({ ...r, initPoint: ip - 1, value: r.value * ip })));
    const fig = figuresFor(rs, { initPoints: 3 }).find((f) => f.id === 'grad_variance_over_init_points')!;
    const row = fig.rows.find((r) => r.b === 4 && r.x === 0)!;
    expect(row).toMatchObject({ median: 0.5, min: 0.25, max: 0.75, initPoints: 3 });
  });

  it('evaluates the polynomials on a grid of b', () => {
    const poly: MetricRecord[] = [
      { ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 1, power: 0, value: 0 },
      { ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 1, power: 1, value: 2 },
    ];
    const fig = figuresFor([...series('grad_variance', 'monte_carlo'), ...poly], { initPoints: 1 }).find((f) => f.id === 'grad_variance_vs_b')!;
    const curve = fig.rows.filter((r) => r.kind === 'exact polynomial') as { b: number; value: number }[];
    expect(curve.length).toBe(60);
    for (const p of curve) expect(p.value).toBeCloseTo(2 / p.b, 12);
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
