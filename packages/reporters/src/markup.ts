/**
 * HTML by a tagged template that escapes every interpolated value: `html\`<td>${x}</td>\``. Only
 * markup this package produced itself passes unescaped, as `Markup` (from `html` or `trusted`), so
 * no string from a results folder (claim fields, study names, manifests, figure captions) is ever
 * parsed as HTML.
 */
export class Markup {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** A value as markup: Markup as is, arrays joined, anything else escaped as text. */
function part(v: unknown): string {
  if (v instanceof Markup) return v.value;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Markup {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1];
  return new Markup(out);
}

/**
 * Markup this package made by other means: the SVG vega renders (vega escapes the text it draws)
 * and the fixed style sheet. Never call it on a string from a results folder.
 */
export function trusted(s: string): Markup {
  return new Markup(s);
}
