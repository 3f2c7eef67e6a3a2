import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { resolveStudy, type MetricRecord } from '@sgd-lab/core';
import { collectStudy } from '@sgd-lab/core/testing';
import plugin from './index.js';

async function run(raw: Record<string, unknown>) {
  let before = 0;
  const out = await collectStudy(plugin, { preset: 'smoke', ...raw }, { afterRegister: () => (before = tf.memory().numTensors) });
  return { ...out, leaked: tf.memory().numTensors - before };
}

describe('gaussian-deeplinear', () => {
  it('agrees with the exact t = 0 variance at b = 1, 2, 4, 16 (4,000 runs, both backends)', async () => {
    const byBackend: Record<string, MetricRecord[]> = {};
    for (const backend of ['wasm', 'cpu']) {
      const { claims, records, leaked } = await run({ backend, runs: 4000, steps: 1, batchSizes: [1, 2, 4, 16] });
      expect(leaked).toBe(0);
      const agree = claims.find((c) => c.id === 'monte-carlo-matches-exact-t0')!;
      expect(agree.verdict).toBe('holds');
      // 4 b x (3 layers + loss + noise scale) comparisons at t = 0.
      expect(agree.evidence.comparisons).toBe(20);
      byBackend[backend] = records.filter((r) => r.estimator === 'monte_carlo' && r.metric === 'grad_variance' && r.step === 0);
    }
    // Same streams, same float32 arithmetic up to kernel order: the backends agree closely.
    byBackend.wasm.forEach((r, i) => expect(byBackend.cpu[i].value / r.value).toBeCloseTo(1, 4));
  });

  it('runs the smoke preset with every claim holding and no tensor leak', async () => {
    const { claims, records, leaked } = await run({});
    expect(leaked).toBe(0);
    // b0 with its bootstrap interval; c1 > 0 at every fitted step (the variance falls for large b).
    const b0 = records.filter((r) => r.metric === 'b0_estimate');
    expect(b0.length).toBe(records.filter((r) => r.metric === 'grad_variance_lead').length);
    for (const r of b0) expect([r.ciLow! <= r.value, r.value <= r.ciHigh!, r.value < 1]).toEqual([true, true, true]);
    const t4 = claims.find((c) => c.id === 'grad-variance-no-constant-term')!;
    expect(t4.equivalenceMargin).toBe(0.05);
    expect(t4.evidence.testedSteps).toBe(5);
    expect(records.filter((r) => r.metric === 'grad_variance' && r.estimator === 'monte_carlo' && r.step === 29).map((r) => r.layer)).toEqual(
      expect.arrayContaining(['W1', 'W2', 'all']),
    );
    expect(claims.length).toBeGreaterThanOrEqual(6);
    for (const c of claims) expect([c.id, c.verdict]).toEqual([c.id, 'holds']);
  });

  it('detects a b-dependence that the oracle does not have (the t = 0 check has power)', async () => {
    // Multiplying every Monte Carlo variance by 1.2 must make the agreement claim fail at 4,000 runs.
    const { records } = await run({ runs: 4000, steps: 1, batchSizes: [4] });
    const { agreesWithExact, RecordIndex } = await import('@sgd-lab/core');
    const index = new RecordIndex();
    for (const r of records) {
      const scaled = r.estimator === 'monte_carlo' && r.metric === 'grad_variance' ? { ...r, value: r.value * 1.2, ciLow: r.ciLow! * 1.2, ciHigh: r.ciHigh! * 1.2 } : r;
      index.add(scaled);
    }
    const study = resolveStudy({ setting: 'gaussian-deeplinear', preset: 'smoke', batchSizes: [4] }, plugin, 'test');
    const [c] = agreesWithExact({ id: 'x', statement: '', paperRef: '', metrics: [{ metric: 'grad_variance', scale: 'log', layer: 'all' }] }).evaluate(index, study);
    expect(c.verdict).toBe('fails');
  });
});
