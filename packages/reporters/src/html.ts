/**
 * report.html: one self-contained file (no network needed to open it): the claims table, every
 * figure as inline SVG with the numbers behind it as a CSV download (a data: URI), and the
 * manifest.
 */
import { verdictLabel, type ClaimResult } from '@sgd-lab/core';
import type { Figure } from './figures.js';
import { toCsv } from './figures.js';

export interface RenderedFigure {
  figure: Figure;
  svg: string;
}

export interface ReportInput {
  title: string;
  subtitle: string;
  claims: ClaimResult[];
  figures: RenderedFigure[];
  manifest?: Record<string, unknown>;
  /** Extra sections (compare: one manifest per study). */
  notes?: string[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function num(v: number | undefined): string {
  if (v === undefined || v === null || Number.isNaN(v)) return '-';
  if (v === 0) return '0';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toPrecision(3);
}

/** Each distinct claim note once, above the table. */
function claimNotes(claims: readonly ClaimResult[]): string {
  const notes = [...new Set(claims.map((c) => c.note).filter((n): n is string => typeof n === 'string' && n.length > 0))];
  return notes.length ? `<ul class="claim-notes">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '';
}

function claimRow(c: ClaimResult): string {
  const stat = c.pValue !== undefined && c.pValue !== null ? `p = ${num(c.pValue)}` : c.margin !== undefined && c.margin !== null ? `margin = ${num(c.margin)}` : '-';
  const weakest = (c.evidence.weakest ?? c.evidence.worst) as Record<string, unknown> | undefined;
  const where = weakest ? Object.entries(weakest).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${typeof v === 'number' ? num(v) : String(v)}`).join(', ') : '';
  const n = c.evidence.comparisons !== undefined ? `${c.evidence.comparisons} comparisons` : '';
  return `<tr class="${c.verdict}"><td><code>${esc(c.id)}</code></td><td>${esc(c.statement)}${c.quote ? `<blockquote class="quote">${esc(c.quote)}</blockquote>` : ''}</td><td>${esc(c.paperRef)}</td><td>${esc(c.estimator)}</td>
<td class="verdict">${esc(verdictLabel(c))}</td><td>${stat}</td><td>${esc([n, where].filter(Boolean).join('; '))}</td></tr>`;
}

function figureBlock({ figure, svg }: RenderedFigure): string {
  const csv = Buffer.from(toCsv(figure.rows)).toString('base64');
  // What the figure must show, for the browser tests (smoke-reports.spec.ts).
  const expects = `data-lines="${figure.expect.lines}" data-b-legend="${figure.expect.bLegend}" data-gradient="${figure.expect.gradient}" data-estimators="${esc(figure.expect.estimatorLegend.join('|'))}"`;
  return `<figure id="fig-${esc(figure.id)}" class="figure" data-figure="${esc(figure.id)}" ${expects}>
<figcaption><b>${esc(figure.title)}</b> <span class="ref">(${esc(figure.paperRef)})</span>. ${esc(figure.caption)}
<a class="csv" download="${esc(figure.id)}.csv" href="data:text/csv;base64,${csv}">data (CSV, ${figure.rows.length} rows)</a></figcaption>
${svg}
</figure>`;
}

export function reportHtml(input: ReportInput): string {
  const counts = ['holds', 'fails', 'inconclusive'].map((v) => `${input.claims.filter((c) => c.verdict === v).length} ${v}`).join(', ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(input.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #555; margin-top: 0; } blockquote.quote { margin: 0.3rem 0 0 0.8rem; color: #555; font-style: italic; font-size: 0.9em; } ul.claim-notes { color: #333; max-width: 70rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }
tr.holds td.verdict { color: #11703a; font-weight: 600; } tr.fails td.verdict { color: #b00020; font-weight: 600; }
tr.inconclusive td.verdict { color: #8a6d00; font-weight: 600; }
figure { margin: 1.5rem 0; } figcaption { margin-bottom: 0.5rem; max-width: 70rem; }
figcaption .ref { font-weight: 400; color: #666; } figcaption a.csv { font-weight: 400; margin-left: 1rem; font-size: 0.85rem; }
pre { background: #f6f6f6; padding: 1rem; overflow: auto; font-size: 0.8rem; }
</style>
</head>
<body>
<h1>${esc(input.title)}</h1>
<p class="sub">${esc(input.subtitle)}</p>
<h2>Claims <small>(${counts})</small></h2>
${claimNotes(input.claims)}
<table id="claims"><thead><tr><th>claim</th><th>statement</th><th>paper</th><th>estimator</th><th>verdict</th><th>p-value or exact margin</th><th>evidence</th></tr></thead>
<tbody>
${input.claims.map(claimRow).join('\n')}
</tbody></table>
<h2>Figures</h2>
${input.figures.map(figureBlock).join('\n')}
${(input.notes ?? []).join('\n')}
${input.manifest ? `<h2>Manifest</h2>\n<details><summary>manifest.json</summary><pre id="manifest">${esc(JSON.stringify(input.manifest, null, 2))}</pre></details>` : ''}
</body>
</html>
`;
}
