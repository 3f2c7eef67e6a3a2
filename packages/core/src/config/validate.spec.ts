import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import toy from '../testing/toy-plugin.js';
import { deepMerge, resolveStudy, studySchemaFor } from './validate.js';

function problems(raw: unknown, preset?: string): string[] {
  try {
    resolveStudy(raw, toy, 'test.json', preset);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('resolveStudy', () => {
  it('merges the preset under the file and fills defaults', () => {
    const s = resolveStudy({ setting: 'toy-mean', preset: 'smoke', runs: 50, options: { dim: 2 } }, toy, 'test.json');
    expect(s.runs).toBe(50);
    expect(s.batchSizes).toEqual([2, 8]);
    expect(s.options).toEqual({ dim: 2, points: 40 });
    expect(s.reporters).toEqual([]);
    expect(s.confidenceLevel).toBe(0.95);
    expect(s.name).toBe('toy-mean-smoke');
  });

  it('refuses metrics the setting does not emit, and unsafe study names', () => {
    expect(problems({ setting: 'toy-mean', preset: 'smoke', metrics: ['grad_variance', 'nope'] })).toEqual([`/metrics/1: "nope" is not a metric of toy-mean; it has ${toy.metrics.join(', ')}`]);
    for (const name of ['..', '.', '.x', 'a/b', '']) expect(problems({ setting: 'toy-mean', preset: 'smoke', name })[0]).toMatch(/^\/name: must /);
  });

  it('names the JSON path and what was expected', () => {
    expect(problems({ setting: 'toy-mean', preset: 'smoke', runs: 1 })).toEqual(['/runs: must be >= 2']);
    expect(problems({ setting: 'toy-mean', preset: 'smoke', batchSizes: [4, 'x'] })).toEqual(['/batchSizes/1: must be integer']);
    expect(problems({ setting: 'toy-mean', preset: 'smoke', options: { dims: 3 } })).toEqual(['/options: unknown property "dims"']);
    expect(problems({ setting: 'toy-mean', preset: 'smoke', bogus: 1 })).toEqual(['/: unknown property "bogus"']);
    const lr = problems({ setting: 'toy-mean', preset: 'smoke', learningRate: { type: 'inverse-time', alpha0: 1 } });
    expect(lr).toEqual(['/learningRate: missing required property "offset"']);
    const tag = problems({ setting: 'toy-mean', preset: 'smoke', learningRate: { type: 'cosine' } });
    expect(tag).toEqual(['/learningRate/type: "cosine" is not one of "constant", "inverse-time"']);
  });

  it('reports missing fields without a preset, and unknown presets with the known ones', () => {
    expect(problems({ setting: 'toy-mean' })).toContain('/: missing required property "seed"');
    expect(problems({ setting: 'toy-mean', preset: 'huge' })).toEqual(['/preset: unknown preset "huge" for toy-mean; known: smoke']);
  });

  it('requires steps or epochs', () => {
    const raw = { setting: 'toy-mean', seed: 1, batchSizes: [1], runs: 3, initPoints: 1, learningRate: { type: 'constant', value: 1 } };
    expect(problems(raw)).toEqual(['/steps: one of "steps" or "epochs" is required']);
  });

  it('publishes a schema whose options are the plugin schema', () => {
    const schema = studySchemaFor(toy) as { properties: Record<string, { const?: string; properties?: object }> };
    expect(schema.properties.setting.const).toBe('toy-mean');
    expect(Object.keys(schema.properties.options.properties ?? {})).toEqual(['points', 'dim']);
  });
});

describe('deepMerge', () => {
  it('replaces arrays and merges objects', () => {
    expect(deepMerge({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [3], b: { d: 4 } })).toEqual({ a: [3], b: { c: 1, d: 4 } });
  });
  it('replaces a tagged object whose type changes', () => {
    const base = { lr: { type: 'inverse-time', alpha0: 1, offset: 1 } };
    expect(deepMerge(base, { lr: { type: 'constant', value: 2 } })).toEqual({ lr: { type: 'constant', value: 2 } });
    expect(deepMerge(base, { lr: { alpha0: 2 } })).toEqual({ lr: { type: 'inverse-time', alpha0: 2, offset: 1 } });
  });
});
