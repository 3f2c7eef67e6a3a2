import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ConfigError } from '../errors.js';
import { coreStudySchema, type StudyConfig } from './study-config.js';
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
    else if (e.keyword === 'enum') detail = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
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

/** The full JSON Schema of a study for one plugin: the core schema with `options` replaced. */
export function studySchemaFor(plugin: AnyPlugin): Record<string, unknown> {
  const presets = Object.keys(plugin.presets);
  return {
    ...coreStudySchema,
    $id: `https://sgd-batch-lab.dev/schema/${plugin.name}.json`,
    title: `sgd-batch-lab study: ${plugin.name}`,
    properties: {
      ...coreStudySchema.properties,
      setting: { type: 'string', const: plugin.name, description: 'Plugin id.' },
      preset: { type: 'string', enum: presets, nullable: true, description: 'Preset merged under this file.' },
      options: { ...plugin.configSchema, default: {} },
    },
  };
}

const ajvCache = new WeakMap<object, ValidateFunction>();

function compiled(plugin: AnyPlugin): ValidateFunction {
  let v = ajvCache.get(plugin);
  if (!v) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true, discriminator: true, verbose: true });
    v = ajv.compile(studySchemaFor(plugin));
    ajvCache.set(plugin, v);
  }
  return v;
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
        `/preset: unknown preset "${presetName}" for ${plugin.name}; known: ${Object.keys(plugin.presets).join(', ')}`,
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
  plugin.checkStudy?.(study, (path, message) => {
    throw new ConfigError(source, [`${path}: ${message}`]);
  });
  return study;
}
