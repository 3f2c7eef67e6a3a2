/** Builds figures/ and report.html for one results folder, or a comparison of several. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORE_FIGURES, type ClaimResult, type FigureSpec, type MetricRecord } from '@sgd-lab/core';
import { figuresFor } from './figures.js';
import { manifestSection, reportHtml, type RenderedFigure } from './html.js';
import { renderSvg, svgToPng } from './render.js';
import { readResults } from './results.js';

/** File names the report writes. */
export const ReportFiles = { html: 'report.html', figures: 'figures' } as const;

export interface BuiltReport {
  html: string;
  figures: string[];
}

/** A figure id as a file name inside figures/: letters, digits, `_`, `-` and inner dots only. */
export function fileStem(id: string): string {
  const stem = id.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_').slice(0, 120);
  return stem || '_';
}

/** The figure specs a results folder declares (manifest.figures), else core's. */
function specsOf(manifests: (Record<string, unknown> | undefined)[]): FigureSpec[] {
  const byId = new Map<string, FigureSpec>();
  for (const m of manifests) for (const s of (Array.isArray(m?.figures) ? m.figures : CORE_FIGURES) as FigureSpec[]) if (!byId.has(s.id)) byId.set(s.id, s);
  return [...byId.values()];
}

async function render(records: MetricRecord[], initPoints: number, outDir: string, compare: boolean, specs: FigureSpec[]): Promise<RenderedFigure[]> {
  const figDir = join(outDir, ReportFiles.figures);
  mkdirSync(figDir, { recursive: true });
  // figures/ is the report's own: a rebuilt report leaves no figure of an older one behind.
  for (const f of readdirSync(figDir)) if (/\.(svg|png)$/.test(f)) rmSync(join(figDir, f));
  const out: RenderedFigure[] = [];
  for (const figure of figuresFor(records, { initPoints, compare, specs })) {
    const svg = await renderSvg(figure.spec);
    // Figure ids come from the manifest: as file names they are confined to figures/.
    const file = fileStem(figure.id);
    writeFileSync(join(figDir, `${file}.svg`), svg);
    writeFileSync(join(figDir, `${file}.png`), svgToPng(svg));
    out.push({ figure, svg });
  }
  return out;
}

/** Writes the figures and report.html of a study from its records. */
export async function writeStudyReport(opts: {
  outDir: string;
  name: string;
  setting: string;
  initPoints: number;
  records: MetricRecord[];
  claims: ClaimResult[];
  manifest?: Record<string, unknown>;
}): Promise<BuiltReport> {
  const figures = await render(opts.records, opts.initPoints, opts.outDir, false, specsOf([opts.manifest]));
  const status = (opts.manifest?.status as string | undefined) ?? 'unknown';
  const html = reportHtml({
    title: `${opts.name} (${opts.setting})`,
    subtitle: `${opts.records.length.toLocaleString('en-US')} records; status ${status}; written by sgd-batch-lab`,
    claims: opts.claims,
    figures,
    manifest: opts.manifest,
  });
  const file = join(opts.outDir, ReportFiles.html);
  writeFileSync(file, html);
  return { html: file, figures: figures.map((f) => f.figure.id) };
}

/** `sgd-lab report <dir>`: rebuilds the report of a results folder from its files. */
export async function rebuildReport(dir: string): Promise<BuiltReport> {
  const r = readResults(dir);
  return writeStudyReport({ outDir: dir, name: r.name, setting: r.setting, initPoints: r.initPoints, records: r.records, claims: r.claims, manifest: r.manifest });
}

/** `sgd-lab compare <a> <b> ...`: overlays studies in one report (lines dashed by study). */
export async function compareReports(dirs: string[], outDir: string): Promise<BuiltReport> {
  const studies = dirs.map(readResults);
  const names = studies.map((s) => s.name);
  if (new Set(names).size !== names.length) {
    // Same study name twice (two runs of one config): tell them apart by folder.
    studies.forEach((s, i) => s.records.forEach((r) => (r.study = `${s.name} (${dirs[i]})`)));
  }
  const records = studies.flatMap((s) => s.records);
  const figures = await render(records, Math.max(...studies.map((s) => s.initPoints)), outDir, true, specsOf(studies.map((s) => s.manifest)));
  const claims = studies.flatMap((s) => s.claims.map((c) => ({ ...c, id: `${s.name}: ${c.id}` })));
  const html = reportHtml({
    title: `compare: ${names.join(' vs ')}`,
    subtitle: `${studies.length} studies overlaid: colour is b, the dash is the estimator, the marker shape is the study`,
    claims,
    figures,
    sections: studies.map((s) => manifestSection(`Manifest of ${s.name}`, s.dir, s.manifest)),
  });
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, ReportFiles.html);
  writeFileSync(file, html);
  return { html: file, figures: figures.map((f) => f.figure.id) };
}
