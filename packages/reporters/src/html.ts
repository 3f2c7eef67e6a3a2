/**
 * report.html: one self-contained file (no network needed to open it): the claims table, every
 * figure as inline SVG with the numbers behind it as a CSV download (a data: URI), and the
 * manifest.
 */
import { verdictLabel, type ClaimResult } from '@sgd-lab/core';
import type { Figure } from './figures.js';
import { toCsv } from './figures.js';
import { html, trusted, type Markup } from './markup.js';

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
  /** Extra sections (compare: one manifest per study), built with `html` or `manifestSection`. */
  sections?: Markup[];
}

function num(v: unknown): string {
  if (typeof v !== 'number') return v === undefined || v === null ? '-' : String(v);
  if (Number.isNaN(v)) return '-';
  if (v === 0) return '0';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toPrecision(3);
}

/** The report's own style sheet (a constant of this module). */
const STYLE = trusted(`
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #555; margin-top: 0; } blockquote.quote { margin: 0.3rem 0 0 0.8rem; color: #555; font-style: italic; font-size: 0.9em; } ul.claim-notes { color: #333; max-width: 70rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }
tr.holds td.verdict { color: #11703a; font-weight: 600; } tr.fails td.verdict { color: #b00020; font-weight: 600; }
tr.inconclusive td.verdict { color: #8a6d00; font-weight: 600; }
figure { margin: 1.5rem 0; } figcaption { margin-bottom: 0.5rem; max-width: 70rem; }
figcaption .ref { font-weight: 400; color: #666; } figcaption a.csv { font-weight: 400; margin-left: 1rem; font-size: 0.85rem; }
pre { background: #f6f6f6; padding: 1rem; overflow: auto; font-size: 0.8rem; }
`);

/** A verdict as a class name: only the three verdicts; anything else is "unknown". */
const verdictClass = (v: unknown) => (v === 'holds' || v === 'fails' || v === 'inconclusive' ? v : 'unknown');

/** Each distinct claim note once, above the table. */
function claimNotes(claims: readonly ClaimResult[]): Markup {
  const notes = [...new Set(claims.map((c) => c.note).filter((n): n is string => typeof n === 'string' && n.length > 0))];
  return notes.length ? html`<ul class="claim-notes">${notes.map((n) => html`<li>${n}</li>`)}</ul>` : html``;
}

function claimRow(c: ClaimResult): Markup {
  const stat = c.pValue !== undefined && c.pValue !== null ? `p = ${num(c.pValue)}` : c.margin !== undefined && c.margin !== null ? `margin = ${num(c.margin)}` : '-';
  const evidence = (c.evidence ?? {}) as Record<string, unknown>;
  const weakest = (evidence.weakest ?? evidence.worst) as Record<string, unknown> | undefined;
  const where = weakest && typeof weakest === 'object' ? Object.entries(weakest).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${typeof v === 'number' ? num(v) : String(v)}`).join(', ') : '';
  const n = evidence.comparisons !== undefined ? `${String(evidence.comparisons)} comparisons` : '';
  return html`<tr class="${verdictClass(c.verdict)}"><td><code>${c.id}</code></td><td>${c.statement}${c.quote ? html`<blockquote class="quote">${c.quote}</blockquote>` : ''}</td><td>${c.paperRef}</td><td>${c.estimator}</td>
<td class="verdict">${verdictLabel(c)}</td><td>${stat}</td><td>${[n, where].filter(Boolean).join('; ')}</td></tr>`;
}

function figureBlock({ figure, svg }: RenderedFigure): Markup {
  const csv = Buffer.from(toCsv(figure.rows)).toString('base64');
  // What the figure must show, for the browser tests (smoke-reports.spec.ts).
  const e = figure.expect;
  return html`<figure id="fig-${figure.id}" class="figure" data-figure="${figure.id}" data-lines="${e.lines}" data-b-legend="${e.bLegend}" data-gradient="${e.gradient}" data-estimators="${e.estimatorLegend.join('|')}">
<figcaption><b>${figure.title}</b> <span class="ref">(${figure.paperRef})</span>. ${figure.caption}
<a class="csv" download="${figure.id}.csv" href="data:text/csv;base64,${csv}">data (CSV, ${figure.rows.length} rows)</a></figcaption>
${trusted(svg)}
</figure>`;
}

/** A section of the report: a heading and the manifest of one study, collapsed. */
export function manifestSection(heading: string, summary: string, manifest: Record<string, unknown>): Markup {
  return html`<h2>${heading}</h2>
<details><summary>${summary}</summary><pre>${JSON.stringify(manifest, null, 2)}</pre></details>`;
}

export function reportHtml(input: ReportInput): string {
  const counts = ['holds', 'fails', 'inconclusive'].map((v) => `${input.claims.filter((c) => c.verdict === v).length} ${v}`).join(', ');
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${input.title}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${input.title}</h1>
<p class="sub">${input.subtitle}</p>
<h2>Claims <small>(${counts})</small></h2>
${claimNotes(input.claims)}
<table id="claims"><thead><tr><th>claim</th><th>statement</th><th>paper</th><th>estimator</th><th>verdict</th><th>p-value or exact margin</th><th>evidence</th></tr></thead>
<tbody>
${input.claims.map((c) => [claimRow(c), '\n'])}
</tbody></table>
<h2>Figures</h2>
${input.figures.map((f) => [figureBlock(f), '\n'])}
${input.sections ?? []}
${input.manifest ? manifestSection('Manifest', 'manifest.json', input.manifest) : ''}
</body>
</html>
`.value;
}
