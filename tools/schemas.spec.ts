/**
 * The published study schemas are plain JSON Schema and agree with the CLI: every file in
 * studies/ and every study of a suite validates against its schema with a plain validator
 * (no ajv extensions, no defaults) and with `sgd-lab validate`; what one rejects the other
 * rejects, preset groups included.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');
const settings: Record<string, string> = {
  'admission-linreg': 'plugin-linreg',
  'admission-logreg': 'plugin-logreg',
  'gaussian-deeplinear': 'plugin-deeplinear',
  'mnist-mlp': 'plugin-mnist',
  'yelp-xlnet': 'plugin-xlnet',
};
const schemaFile = (setting: string) => join(repo, 'packages', settings[setting], 'schema', `${setting}.schema.json`);
const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

/** A validator that knows standard keywords only: anything ajv-specific makes compile throw. */
const plain = (schema: object) => new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, useDefaults: false }).compile(schema);

const sgdLab = (args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((done) =>
    execFile(process.execPath, [cli, ...args], { cwd: repo }, (err, stdout, stderr) => done({ status: err ? Number(err.code) : 0, stdout, stderr })),
  );

function keys(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) v.forEach((x) => keys(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      keys(x, out);
    }
  }
  return out;
}

describe('published study schemas', () => {
  it.each(Object.keys(settings))('%s: plain JSON Schema, no ajv-only keywords', (setting) => {
    const schema = readJson(schemaFile(setting));
    const used = keys(schema);
    expect(used.has('nullable')).toBe(false);
    expect(used.has('discriminator')).toBe(false);
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(() => plain(schema)).not.toThrow();
    expect(schema.properties.backend.enum).toEqual(['auto', 'native', 'wasm', 'cpu', 'webgpu', 'tensorflow', 'tensorflow-gpu']);
  });

  it('every file in studies/ validates against its $schema and with sgd-lab validate', async () => {
    const dir = join(repo, 'studies');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) {
      const study = readJson(join(dir, f));
      const validate = plain(readJson(resolve(dir, study.$schema)));
      expect(validate(study), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
      const r = await sgdLab(['validate', join(dir, f)]);
      expect(r.status, r.stderr).toBe(0);
    }
  });

  it('every study of every suite validates against its setting schema and with sgd-lab validate', async () => {
    for (const f of readdirSync(join(repo, 'suites')).filter((x) => x.endsWith('.json'))) {
      const suite = readJson(join(repo, 'suites', f));
      for (const [i, entry] of suite.studies.entries()) {
        const study = entry.study ?? readJson(resolve(dirname(join(repo, 'suites', f)), entry.file));
        const validate = plain(readJson(schemaFile(study.setting)));
        expect(validate(study), `${f} /studies/${i}: ${JSON.stringify(validate.errors)}`).toBe(true);
      }
      const r = await sgdLab(['validate', join(repo, 'suites', f)]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`valid suite, ${suite.studies.length} studies`));
    }
  });

  // [study, accepted by both?]
  const cases: [Record<string, unknown>, boolean][] = [
    [{ setting: 'admission-linreg', preset: 'smoke' }, true],
    [{ setting: 'admission-linreg', preset: 'paper' }, true],
    [{ setting: 'mnist-mlp', preset: 'paper', runs: 10 }, true],
    [{ setting: 'admission-linreg', preset: 'cpu', batchSizes: [2, 4], steps: 10 }, true],
    [{ setting: 'admission-linreg', seed: 1, batchSizes: [4], steps: 3, runs: 10, learningRate: { type: 'constant', value: 0.1 } }, true],
    [{ setting: 'admission-linreg' }, false],
    [{ setting: 'admission-linreg', seed: 1, batchSizes: [4], runs: 10, learningRate: { type: 'constant', value: 0.1 } }, false],
    [{ setting: 'admission-linreg', preset: 'smoke', backend: 'gpu' }, false],
    [{ setting: 'admission-linreg', preset: 'smoke', steps: null }, false],
    [{ setting: 'admission-linreg', preset: 'smoke', learningRate: { type: 'cosine' } }, false],
    [{ setting: 'admission-linreg', preset: 'smoke', learningRate: { type: 'constant', value: 1, alpha0: 2 } }, false],
    [{ setting: 'admission-linreg', preset: 'huge' }, false],
    [{ setting: 'gaussian-deeplinear', preset: 'smoke', backend: 'native' }, true],
  ];
  it.each(cases)('%j: schema and CLI agree (accepted: %s)', async (study, accepted) => {
    const validate = plain(readJson(schemaFile(study.setting as string)));
    expect(validate(structuredClone(study))).toBe(accepted);
    const file = join(mkdtempSync(join(tmpdir(), 'sgd-lab-schema-')), 'study.json');
    writeFileSync(file, JSON.stringify(study));
    const r = await sgdLab(['validate', file]);
    expect(r.status, r.stderr).toBe(accepted ? 0 : 2);
  });

  it('sgd-lab schema prints the published schema', async () => {
    const r = await sgdLab(['schema', 'mnist-mlp']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(readJson(schemaFile('mnist-mlp')));
  });
});
