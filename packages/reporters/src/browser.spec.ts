/**
 * report.html in a real browser: Debian's Chromium driven by playwright-core. Every figure must be
 * drawn, the page must log no error, and a screenshot is saved next to the report.
 */
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ClaimResult, FigureSpec, MetricRecord } from '@sgd-lab/core';
import { writeStudyReport } from './report.js';

/** Where Debian puts Chromium; .ci/run installs it when absent. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) process.stderr.write(`SKIPPED (no browser): ${CHROMIUM} not found; apt-get install chromium (as .ci/run does)\n`);

function records(): MetricRecord[] {
  const out: MetricRecord[] = [];
  const base = { study: 'demo', setting: 'demo-setting', initPoint: 0 };
  for (const b of [4, 16, 64])
    for (let t = 0; t < 40; t++) {
      const v = (1 + 5 / (t + 1)) / b;
      out.push({ ...base, metric: 'grad_variance', estimator: 'monte_carlo', batchSize: b, step: t, value: v * 1.02, ciLow: v * 0.9, ciHigh: v * 1.1, runs: 100 });
      out.push({ ...base, metric: 'grad_variance', estimator: 'exact', batchSize: b, step: t, value: v });
      out.push({ ...base, metric: 'full_grad_variance', estimator: 'monte_carlo', batchSize: b, step: t, value: v / 3, ciLow: v / 3.3, ciHigh: v / 2.7, runs: 100 });
      out.push({ ...base, metric: 'loss', estimator: 'monte_carlo', batchSize: b, step: t, value: 1 / (t + 1) + 0.1 / b, runs: 100 });
    }
  for (const power of [0, 1, 2]) out.push({ ...base, metric: 'grad_variance_poly', estimator: 'exact', step: 20, power, value: [0.01, 1.2, 0.5][power] });
  return out;
}

const claims: ClaimResult[] = [
  { id: 'demo-claim', statement: 'Var decreases in b', paperRef: 'Theorem 2', estimator: 'monte_carlo', verdict: 'holds', pValue: 1e-9, evidence: { comparisons: 78 } },
  { id: 'demo-exact', statement: 'exact margin', paperRef: 'Theorem 2', estimator: 'exact', verdict: 'fails', margin: -0.01, evidence: { comparisons: 78 } },
];

describe.skipIf(!hasChromium)('report.html in headless Chromium', () => {
  it('draws every figure, logs no error, and is screenshotted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-report-'));
    // The figures a setting declares travel in the manifest; undeclared metrics get default figures.
    const figures: FigureSpec[] = [{ kind: 'against-b', id: 'grad_variance_vs_b', metric: 'grad_variance', label: 'Var(g_t|F0)', polynomial: 'grad_variance_poly', paperRef: 'Fig. 2(b)', caption: 'against b' }];
    const built = await writeStudyReport({ outDir: dir, name: 'demo', setting: 'demo-setting', initPoints: 1, records: records(), claims, manifest: { status: 'completed', figures } });
    expect(built.figures).toEqual(['grad_variance_vs_b', 'grad_variance', 'full_grad_variance', 'loss']);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(String(e)));
      // Any request leaving the file is a failure of "self-contained".
      page.on('request', (r) => !r.url().startsWith('file:') && !r.url().startsWith('data:') && problems.push(`network request: ${r.url()}`));
      await page.goto(pathToFileURL(built.html).href);
      const figures = await page.$$eval('figure.figure', (els) =>
        els.map((el) => {
          const svg = el.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          return { id: el.getAttribute('data-figure'), width: box?.width ?? 0, height: box?.height ?? 0, marks: svg?.querySelectorAll('path').length ?? 0 };
        }),
      );
      expect(figures.map((f) => f.id)).toEqual(built.figures);
      for (const f of figures) {
        expect(f.width).toBeGreaterThan(200);
        expect(f.height).toBeGreaterThan(150);
        expect(f.marks).toBeGreaterThan(3);
      }
      expect(await page.$$eval('#claims tbody tr', (rows) => rows.map((r) => r.className))).toEqual(['holds', 'fails']);
      const csvLinks = await page.$$eval('a.csv', (as) => as.map((a) => (a as HTMLAnchorElement).href.slice(0, 21)));
      expect(csvLinks).toEqual(built.figures.map(() => 'data:text/csv;base64,'));
      const shot = join(dir, 'report-screenshot.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(20_000);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
