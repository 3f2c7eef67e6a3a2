import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ConfigError } from '../errors.js';
import { REQUIRED_STUDY_FIELDS, coreStudySchema, shardSizeProblem, type StudyConfig } from './study-config.js';
import type { AnyPlugin } from '../plugin.js';

/** Formats ajv errors as "<json path>: <what was expected>" lines. */
export function formatAjvErrors(errors: readonly ErrorObject[] | null | undefined, prefix = ''): string[] {
  if (!errors) return [];
  const lines = new Set<string>();
  for (const e of errors) {
    // oneOf branches repeat their own errors; the branch errors are more useful than the summary.
    if (e.keyword === 'oneOf' || e.keyword === 'if') continue;
    const path = (prefix + e.instancePath) || '/';
    let detail = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') detail = `unknown property "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    else if (e.keyword === 'enum') {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
      detail = e.data !== undefined && typeof e.data !== 'object' ? `${JSON.stringify(e.data)} is not one of ${allowed}` : `must be one of ${allowed}`;
    }
    else if (e.keyword === 'const') detail = `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    else if (e.keyword === 'discriminator') {
      const { tag, tagValue } = e.params as { tag: string; tagValue: unknown };
      const branches = ((e.parentSchema as { oneOf?: { properties?: Record<string, { const?: unknown }> }[] })?.oneOf ?? [])
        .map((b) => JSON.stringify(b.properties?.[tag]?.const))
        .join(', ');
      lines.add(`${path}/${tag}: ${JSON.stringify(tagValue)} is not one of ${branches}`);
      continue;
    } else if (e.keyword === 'required') detail = `missing required property "${(e.params as { missingProperty: string }).missingProperty}"`;
    lines.add(`${path}: ${detail}`);
  }
  return [...lines];
}

/**
 * A schema in plain JSON Schema: drops ajv's own keywords (`nullable`, `discriminator`), which
 * other validators reject or ignore. Optional fields are simply optional; `null` is not a value.
 */
export function standardSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(standardSchema);
  if (!isPlainObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'nullable' || k === 'discriminator') continue;
    // `properties`, `default`, `const` and `enum` hold data or names, not schemas to walk.
    out[k] = k === 'default' || k === 'const' || k === 'enum' || k === 'examples' ? v : standardSchema(v);
  }
  return out;
}

/** What a preset (or each preset of a group) leaves a study file to give. */
function missingWithPreset(plugin: AnyPlugin, name: string): string[] {
  const parts = plugin.presetGroups?.[name] ?? [name];
  const missing = new Set<string>();
  for (const part of parts) {
    const preset = (plugin.presets[part] ?? {}) as Record<string, unknown>;
    for (const f of REQUIRED_STUDY_FIELDS) if (f !== 'name' && f !== 'setting' && !(f in preset) && !(f === 'initPoints')) missing.add(f);
    if (!('steps' in preset) && !('epochs' in preset)) missing.add('steps|epochs');
  }
  return [...missing];
}

/** Preset names a study may give: each plugin preset and each preset group. */
export function presetNames(plugin: AnyPlugin): string[] {
  return [...Object.keys(plugin.presets), ...Object.keys(plugin.presetGroups ?? {})];
}

/**
 * The JSON Schema of a study file of one plugin (published as schema/<setting>.schema.json and by
 * `sgd-lab schema`), in plain JSON Schema: a file without a preset gives every required field; a
 * file naming a preset gives only what that preset does not (one if/then per preset and group).
 * `kind: 'resolved'` is the schema of a study after its preset is merged (what the engine runs).
 */
export function studySchemaFor(plugin: AnyPlugin, kind: 'file' | 'resolved' = 'file'): Record<string, unknown> {
  const base = {
    ...coreStudySchema,
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://sgd-batch-lab.dev/schema/${plugin.name}.json`,
    title: `sgd-batch-lab study: ${plugin.name}`,
    properties: {
      ...coreStudySchema.properties,
      setting: { type: 'string', const: plugin.name, description: 'Plugin id.' },
      preset: { type: 'string', enum: presetNames(plugin), description: 'Preset (or group of presets) merged under this file.' },
      options: { ...plugin.configSchema, default: {} },
    },
  };
  if (kind === 'resolved') return standardSchema(base) as Record<string, unknown>;
  const needSteps = { anyOf: [{ required: ['steps'] }, { required: ['epochs'] }] };
  const fieldsOf = (missing: string[]) => ({
    required: missing.filter((f) => f !== 'steps|epochs'),
    ...(missing.includes('steps|epochs') ? needSteps : {}),
  });
  const byPreset = presetNames(plugin).map((name) => ({
    if: { type: 'object', properties: { preset: { const: name } }, required: ['preset'] },
    then: { type: 'object', ...fieldsOf(missingWithPreset(plugin, name)) },
  }));
  const schema = {
    ...base,
    required: ['setting'],
    allOf: [
      {
        if: { type: 'object', not: { required: ['preset'] } },
        then: { type: 'object', required: REQUIRED_STUDY_FIELDS.filter((f) => f !== 'name' && f !== 'initPoints'), ...needSteps },
      },
      ...byPreset,
    ],
  };
  return standardSchema(schema) as Record<string, unknown>;
}

const ajvCache = new WeakMap<object, ValidateFunction>();

function compiled(plugin: AnyPlugin): ValidateFunction {
  let v = ajvCache.get(plugin);
  if (!v) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true, verbose: true });
    v = ajv.compile(studySchemaFor(plugin, 'resolved'));
    ajvCache.set(plugin, v);
  }
  return v;
}

const fileSchemas = new WeakMap<object, ValidateFunction>();

/**
 * Checks a study file against its published schema with a plain validator (no defaults, no ajv
 * extensions): what editors and other tools see must agree with what the CLI accepts.
 */
export function checkStudyFile(raw: Record<string, unknown>, plugin: AnyPlugin, source: string): void {
  let v = fileSchemas.get(plugin);
  if (!v) {
    v = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(studySchemaFor(plugin, 'file'));
    fileSchemas.set(plugin, v);
  }
  if (!v(raw)) throw new ConfigError(source, formatAjvErrors(v.errors));
}

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const keep = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = keep;
    }
  }
  return d[b.length];
}

/** ` (did you mean "x"?)` for the closest known word, or nothing when none is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dd = distance(word.toLowerCase(), k.toLowerCase());
    if (dd < bestD) [best, bestD] = [k, dd];
  }
  return best !== undefined && (bestD <= Math.max(2, Math.floor(best.length / 3)) || best.startsWith(word) || word.startsWith(best)) ? ` (did you mean "${best}"?)` : '';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Deep merge where `over` wins; arrays are replaced, not concatenated, and so is an object whose
 * `type` tag differs (a constant learning rate replaces an inverse-time one instead of mixing).
 */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  if ('type' in over && over.type !== base.type) return over as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out as T;
}

/**
 * Resolves a study: the plugin's preset (named by `preset` in the file, or `presetOverride`) is
 * merged under the file, then the result is validated against the core and plugin schemas, with
 * defaults filled in. Throws ConfigError naming every bad JSON path.
 */
export function resolveStudy(raw: unknown, plugin: AnyPlugin, source: string, presetOverride?: string): StudyConfig {
  if (!isPlainObject(raw)) throw new ConfigError(source, ['/: must be a JSON object']);
  const presetName = presetOverride ?? (raw.preset as string | undefined);
  let merged: Record<string, unknown> = { ...raw };
  if (presetName !== undefined) {
    const preset = plugin.presets[presetName];
    if (!preset) {
      throw new ConfigError(source, [
        `/preset: unknown preset "${presetName}" for ${plugin.name}${didYouMean(presetName, presetNames(plugin))}; known: ${presetNames(plugin).join(', ')}`,
      ]);
    }
    const { description: _description, ...presetFields } = preset;
    merged = deepMerge({ ...presetFields, setting: plugin.name, preset: presetName }, raw);
    merged.preset = presetName;
  }
  if (merged.name === undefined) merged.name = presetName ? `${plugin.name}-${presetName}` : plugin.name;
  const validate = compiled(plugin);
  if (!validate(merged)) throw new ConfigError(source, formatAjvErrors(validate.errors));
  const study = merged as unknown as StudyConfig;
  if (study.steps === undefined && study.epochs === undefined) {
    throw new ConfigError(source, ['/steps: one of "steps" or "epochs" is required']);
  }
  if (study.runsPerShard !== undefined && study.runsPerShard > study.runs) {
    throw new ConfigError(source, [`/runsPerShard: must be <= runs (${study.runs})`]);
  }
  const shardSize = shardSizeProblem(study);
  if (shardSize) throw new ConfigError(source, [shardSize]);
  // A metric the setting never emits would give no records, silently.
  const unknownMetrics = study.metrics.map((m, i) => [m, i] as const).filter(([m]) => !plugin.metrics.includes(m));
  if (unknownMetrics.length) {
    throw new ConfigError(source, unknownMetrics.map(([m, i]) => `/metrics/${i}: "${m}" is not a metric of ${plugin.name}; it has ${plugin.metrics.join(', ')}`));
  }
  plugin.checkStudy?.(study, (path, message) => {
    throw new ConfigError(source, [`${path}: ${message}`]);
  });
  return study;
}

/** One study a study file or preset stands for; `part` names the preset of a group it came from. */
export interface ResolvedStudy {
  study: StudyConfig;
  part?: string;
}

/**
 * Resolves a study file or a setting's preset into the studies it stands for: one, or one per
 * preset of a preset group (each named `<name>-<part>`, into its own sub-folder). The single code
 * path behind `run`, `plan` and `validate`, so a preset group is accepted by all three alike.
 */
export function resolveStudies(raw: Record<string, unknown>, plugin: AnyPlugin, source: string, presetOverride?: string): ResolvedStudy[] {
  const presetName = presetOverride ?? (raw.preset as string | undefined);
  const parts = presetName !== undefined ? plugin.presetGroups?.[presetName] : undefined;
  if (!parts) return [{ study: resolveStudy(raw, plugin, source, presetOverride) }];
  return parts.map((part) => ({
    study: resolveStudy({ ...raw, preset: part, name: typeof raw.name === 'string' ? `${raw.name}-${part}` : undefined }, plugin, `${source} (preset ${presetName}: ${part})`, part),
    part,
  }));
}
