import 'reflect-metadata';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError, DataError } from '../errors.js';
import { confinedPath, readDataFile } from '../io/files.js';
import { checkResources, estimateResources, type MachineResources, type ResourceNeeds } from './resources.js';
import { studyFingerprint } from './fingerprint.js';

const MiB = 2 ** 20;
const machine: MachineResources = { memoryBytes: 1024 * MiB, memorySource: "this machine's memory", cores: 2, peakFlopsPerCore: 1e9 };

function study(extra: Partial<StudyConfig> = {}): StudyConfig {
  return {
    name: 's',
    setting: 'toy-setting',
    seed: 1,
    batchSizes: [4, 16],
    runs: 64,
    runBlock: 16,
    initPoints: 1,
    steps: 10,
    learningRate: { type: 'constant', value: 0.1 },
    metrics: [],
    reporters: [],
    recordEvery: 1,
    confidenceLevel: 0.95,
    significance: 0.01,
    memoryBudgetMiB: 64,
    divergenceFactor: 1e6,
    limits: { hours: 720 },
    options: {},
    ...extra,
  };
}

const needs = (perReplica: number, extra: Partial<ResourceNeeds> = {}): ResourceNeeds => ({ fixed: { data: 10 * MiB }, bytesPerReplica: () => perReplica, chunked: true, flopsPerStep: (b) => 1e6 * b, ...extra });

describe('resource estimate', () => {
  it('sizes the chunk as the engine does (whole run blocks within memoryBudgetMiB) and adds the parts', () => {
    // 64 MiB / 3 MiB = 21 replicas: one block of 16 fits.
    const e = estimateResources(study(), needs(3 * MiB), machine);
    expect(e.memoryParts['one chunk of 16 replicas at b = 16']).toBe(48 * MiB);
    expect(e.memoryParts.data).toBe(10 * MiB);
    expect(e.replicaSteps).toBe(2 * 64 * 10);
    expect(e.shards).toBe(2);
    // 11 recorded steps x 1 record x 2 b, and 4 blocks per shard.
    expect(e.records).toBe(22);
    expect(e.memoryBytes).toBe(Object.values(e.memoryParts).reduce((a, b) => a + b, 0));
    // Without chunks, a whole shard of replicas is held.
    expect(estimateResources(study(), needs(MiB, { chunked: false }), machine).memoryParts['64 replicas of a shard at b = 16']).toBe(64 * MiB);
  });

  it('prices replica-steps at the peak rate, with a floor per replica-step', () => {
    const e = estimateResources(study(), needs(MiB), machine);
    // (4 + 16) x 1e6 FLOPs x 640 replica-steps / (2 cores x 1e9 FLOP/s)
    expect(e.secondsAtLeast).toBeCloseTo((20e6 * 640) / 2e9, 9);
    expect(estimateResources(study(), needs(MiB, { flopsPerStep: undefined }), machine).secondsAtLeast).toBeCloseTo((1280 * 1e-7) / 2, 12);
  });

  it('refuses a run block over memoryBudgetMiB, a study over the memory limit and over limits.hours, each by name', () => {
    const over = (s: StudyConfig, n: ResourceNeeds) => {
      try {
        checkResources(s, n, machine);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).problems;
      }
      return [];
    };
    expect(over(study(), needs(MiB))).toEqual([]);
    expect(over(study(), needs(5 * MiB))).toEqual([expect.stringMatching(/^\/memoryBudgetMiB: one run block of 16 replicas at b = 16 needs 80\.0 MiB, above the budget of 64 MiB/)]);
    expect(over(study(), needs(MiB, { fixed: { 'the data': 2048 * MiB } }))).toEqual([
      expect.stringMatching(/^\/limits\/memoryMiB: the study needs about 2\.\d+ GiB of memory \(the data: 2\.00 GiB; .*\), more than this machine's memory \(1\.00 GiB\)/),
    ]);
    expect(over(study({ limits: { hours: 720, memoryMiB: 32 } }), needs(MiB))).toEqual([expect.stringMatching(/^\/limits\/memoryMiB: .* more than the limit 32 MiB/)]);
    expect(over(study({ steps: 1e9 }), needs(MiB, { fixed: {} }))).toEqual(expect.arrayContaining([expect.stringMatching(/^\/limits\/hours: 1\.28e\+11 replica-steps take at least .* above the limit of 720 h/)]));
    // A limit above the machine's memory does not raise it.
    expect(estimateResources(study({ limits: { hours: 1, memoryMiB: 1e6 } }), needs(MiB), machine).memoryLimitBytes).toBe(machine.memoryBytes);
  });

  it('leaves limits out of the fingerprint: raising a limit keeps --resume', () => {
    expect(studyFingerprint(study({ limits: { hours: 1, memoryMiB: 100 } }))).toBe(studyFingerprint(study()));
    expect(studyFingerprint(study({ runs: 65 }))).not.toBe(studyFingerprint(study()));
  });
});

describe('data files and paths', () => {
  it('reads regular files only, of bounded size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sgd-lab-data-'));
    writeFileSync(join(dir, 'a.csv'), 'x\n1\n');
    expect(readDataFile(join(dir, 'a.csv')).toString()).toBe('x\n1\n');
    expect(() => readDataFile('/dev/zero')).toThrow(DataError);
    expect(() => readDataFile('/dev/zero')).toThrow(/\/dev\/zero: is not a regular file/);
    expect(() => readDataFile(dir)).toThrow(/is not a regular file/);
    expect(() => readDataFile(join(dir, 'a.csv'), 3)).toThrow(/a\.csv: is 4 bytes, above the 3 bytes one data file may have/);
    expect(() => readDataFile(join(dir, 'none.csv'))).toThrow(/none\.csv: cannot be read \(ENOENT\)/);
  });

  it('confines paths to a root, through symbolic links', () => {
    const root = mkdtempSync(join(tmpdir(), 'sgd-lab-root-'));
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'in.csv'), '');
    symlinkSync('/etc/passwd', join(root, 'out.csv'));
    expect(confinedPath(root, 'sub/in.csv', '/options/data')).toMatch(/sub\/in\.csv$/);
    expect(confinedPath(root, join(root, 'sub', 'in.csv'), '/options/data')).toMatch(/sub\/in\.csv$/);
    for (const p of ['/etc/passwd', '../x', 'sub/../../x', 'out.csv', '.']) {
      expect(() => confinedPath(root, p, '/options/data'), p).toThrow(/\/options\/data: ".*" is outside this worker's --data-dir/);
    }
  });
});
