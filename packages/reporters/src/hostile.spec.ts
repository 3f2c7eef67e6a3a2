/**
 * Reports of hostile results folders: every string a results folder holds (claims, record fields,
 * manifest, figure specs, folder names) is text in the report, never markup. Checked in Chromium
 * on the DOM: no element or attribute the values tried to inject exists.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ClaimResult, FigureSpec, MetricRecord } from '@sgd-lab/core';
import { compareReports, fileStem, writeStudyReport } from './report.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const X = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>' onmouseover='window.__pwned=1' "><svg onload="window.__pwned=1">`;

function hostileRecords(): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const b of [4, 16]) for (let t = 0; t < 6; t++) {
    out.push({ study: X, setting: X, metric: 'grad_variance', estimator: 'monte_carlo', batchSize: b, initPoint: 0, step: t, layer: X, value: 1 / b + t, ciLow: 0.5 / b, ciHigh: 2 / b + t, runs: 16 });
    out.push({ study: X, setting: X, metric: X, estimator: 'monte_carlo', batchSize: b, initPoint: 0, step: t, split: X, value: 1 + t / b, runs: 16 });
  }
  return out;
}
const hostileClaims = [
  { id: X, statement: X, paperRef: X, quote: X, note: X, estimator: X, verdict: X, pValue: X, margin: X, equivalenceMargin: X, evidence: { comparisons: X, weakest: { [X]: X, step: X } } },
  { id: 'ok', statement: 's', paperRef: 'p', estimator: 'monte_carlo', verdict: 'holds', evidence: { worst: X } },
] as unknown as ClaimResult[];
const hostileSpecs = [
  { kind: 'series', id: `../../${X}`, metrics: ['grad_variance'], labels: [X], x: ['step'], layers: 'each', paperRef: X, caption: X },
  { kind: 'series', id: X, metrics: [X], labels: [X], x: ['step'], splits: true, paperRef: X, caption: X },
] as unknown as FigureSpec[];

async function injected(html: string): Promise<{ elements: number; handlers: number; pwned: unknown; text: string }> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    await page.goto(pathToFileURL(html).href);
    const r = await page.evaluate(() => ({
      elements: document.querySelectorAll('script, img, iframe, object, embed').length,
      handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      pwned: (window as unknown as { __pwned?: unknown }).__pwned,
      text: document.body.textContent ?? '',
    }));
    expect(dialogs).toBe(0);
    return r;
  } finally {
    await browser.close();
  }
}

describe('hostile results folders', () => {
  it('keep figure files inside figures/', () => {
    expect(fileStem('../../etc/passwd')).toBe('__.._etc_passwd');
    expect(fileStem('..')).toBe('_');
    expect(fileStem('grad_variance-by-step')).toBe('grad_variance-by-step');
  });

  it.skipIf(!existsSync(CHROMIUM))('render every field as text in report.html and in a comparison', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-hostile-'));
    const built = await writeStudyReport({ outDir: dir, name: X, setting: X, initPoints: 1, records: hostileRecords(), claims: hostileClaims, manifest: { status: X, figures: hostileSpecs, study: { name: X } } });
    // No file escaped figures/.
    expect(readdirSync(join(dir, 'figures')).every((f) => /^[A-Za-z0-9_.-]+$/.test(f))).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['figures', 'report.html']);
    const page = await injected(built.html);
    expect(page).toMatchObject({ elements: 0, handlers: 0, pwned: undefined });
    // The values are there, as text.
    expect(page.text).toContain('<script>window.__pwned=1</script>');

    // A comparison of folders whose names and manifests are hostile.
    const root = mkdtempSync(join(tmpdir(), 'sgd-lab-hostile-cmp-'));
    const dirs = ['a', 'b'].map((k) => {
      const d = join(root, `${k}<img src=x onerror=alert(1)>`);
      mkdirSync(d);
      const manifest = { status: 'completed', study: { name: X, setting: X, initPoints: 1 }, figures: hostileSpecs };
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(manifest));
      writeFileSync(join(d, 'metrics.jsonl'), hostileRecords().map((r) => JSON.stringify(r)).join('\n') + '\n');
      writeFileSync(join(d, 'claims.json'), JSON.stringify({ claims: hostileClaims }));
      return d;
    });
    const cmp = await compareReports(dirs, join(root, 'cmp'));
    expect(await injected(cmp.html)).toMatchObject({ elements: 0, handlers: 0, pwned: undefined });
  }, 120_000);
});
