/**
 * Every setting's smoke report in headless Chromium, checked on the rendered SVG's DOM (not on
 * pixels): each figure has the line series its data call for, a legend of b whose swatches are
 * the colours of those lines (or a gradient for many b), an estimator legend whose dash patterns
 * are the lines' own, and nothing wider than the page. Screenshots go to test-artifacts/.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { testDataDir } from '@sgd-lab/core/testing';
import { PAGE_WIDTH } from './figures.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');
const artifacts = join(repo, 'packages', 'reporters', 'test-artifacts');
const dataDir = testDataDir();
const has = (...p: string[]) => dataDir !== undefined && existsSync(join(dataDir, ...p));

/** Settings and the extra arguments of their smoke run (a synthetic source where the data are absent). */
const settings: [string, string[]][] = [
  ['admission-linreg', has('graduate_admission', 'Admission_Predict_Ver1.1.csv') ? [] : ['--set', 'options.source=synthetic']],
  ['gaussian-deeplinear', []],
  ['mnist-mlp', []],
  ...(has('yelp_labelled_uci', 'yelp_labelled.txt') ? ([['yelp-xlnet', []]] as [string, string[]][]) : []),
  ...(has('graduate_admission', 'Admission_Predict_Ver1.1.csv') ? ([['admission-logreg', []]] as [string, string[]][]) : []),
];

interface FigureDom {
  id: string;
  expected: { lines: number; bLegend: number; gradient: boolean; estimators: string[] };
  width: number;
  lines: { stroke: string; dash: string }[];
  legends: { title: string; labels: string[]; symbols: { stroke: string; dash: string }[]; gradient: boolean }[];
}

/** "1,0" and "" (no dash attribute) are both solid. */
const solid = (d: string) => (d === '' || d === 'none' || /^1,\s*0$/.test(d) ? 'solid' : d.replace(/\s+/g, ''));

describe.skipIf(!hasChromium)('smoke reports in headless Chromium (SVG DOM)', () => {
  it.each(settings)('%s: series, legends and widths match the data', async (setting, extra) => {
    const out = mkdtempSync(join(tmpdir(), `sgd-lab-${setting}-`));
    const r = spawnSync(process.execPath, [cli, 'run', setting, '--preset', 'smoke', '--out', out, '--force', '--progress', 'off', '--quiet', ...(dataDir ? ['--data-dir', dataDir] : []), ...extra], { cwd: repo, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    try {
      const page = await browser.newPage({ viewport: { width: PAGE_WIDTH + 100, height: 900 } });
      await page.goto(pathToFileURL(join(out, 'report.html')).href);
      const figures: FigureDom[] = await page.$$eval('figure.figure', (els) =>
        els.map((el) => {
          const svg = el.querySelector('svg')!;
          const attr = (e: Element, a: string) => e.getAttribute(a) ?? '';
          const lines = [...svg.querySelectorAll('g.mark-line path')].map((p) => ({ stroke: attr(p, 'stroke'), dash: attr(p, 'stroke-dasharray') }));
          const legends = [...svg.querySelectorAll('g.role-legend')].map((g) => ({
            title: g.querySelector('.role-legend-title text')?.textContent ?? '',
            labels: [...g.querySelectorAll('.role-legend-label text')].map((t) => t.textContent ?? ''),
            symbols: [...g.querySelectorAll('.role-legend-symbol path')].map((p) => ({ stroke: attr(p, 'stroke'), dash: attr(p, 'stroke-dasharray') })),
            gradient: g.querySelector('.role-legend-gradient') !== null,
          }));
          return {
            id: attr(el, 'data-figure'),
            expected: { lines: Number(attr(el, 'data-lines')), bLegend: Number(attr(el, 'data-b-legend')), gradient: attr(el, 'data-gradient') === 'true', estimators: attr(el, 'data-estimators').split('|').filter(Boolean) },
            width: svg.getBoundingClientRect().width,
            lines,
            legends,
          };
        }),
      );
      expect(figures.length).toBeGreaterThan(2);
      for (const f of figures) {
        const where = `${setting} ${f.id}`;
        expect(f.width, `${where}: wider than the page`).toBeLessThanOrEqual(PAGE_WIDTH);
        expect(f.lines.length, `${where}: line series`).toBe(f.expected.lines);
        const strokes = new Set(f.lines.map((l) => l.stroke));
        const dashes = new Set(f.lines.map((l) => solid(l.dash)));
        const bLegend = f.legends.find((l) => l.title === 'batch size b');
        if (f.expected.gradient) expect(bLegend?.gradient, `${where}: gradient legend of b`).toBe(true);
        else if (f.expected.bLegend > 0) {
          expect(bLegend?.symbols.length, `${where}: entries of the b legend`).toBe(f.expected.bLegend);
          // Line swatches in the lines' own colours (not pale band swatches).
          for (const s of bLegend!.symbols) expect(strokes.has(s.stroke), `${where}: legend colour ${s.stroke} is no line's`).toBe(true);
        }
        const estimatorLegend = f.legends.find((l) => l.title === 'estimator' || l.title === 'curve');
        expect(estimatorLegend?.labels, `${where}: estimator legend`).toEqual(f.expected.estimators);
        for (const s of estimatorLegend!.symbols) expect(dashes.has(solid(s.dash)), `${where}: legend dash ${s.dash} is no line's`).toBe(true);
      }
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, `${setting}-smoke-report.png`), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 180_000);
});
