/**
 * Merging shards and turning statistics into records. Shards of one (b, initial point) hold
 * consecutive run ranges made of whole run blocks; their statistics merge by concatenating the
 * block lists in run order, and every estimate is a function of that list alone. So a group's
 * records are the same floating-point numbers whether it ran as one shard or many, in one process
 * or on several workers, in one go or resumed.
 */
import type { StudyConfig } from '../config/study-config.js';
import { biasRatio, interval, meanEstimate, noiseScaleEstimate, varianceEstimate, type Estimate, type RunBlockStats } from '../stats/across-runs.js';
import type { BlockMoments, ShardSpec } from './contracts.js';
import type { MetricRecord } from './records.js';
import type { ShardResult, StepStats } from './shard.js';

function concatBlock(parts: (BlockMoments | undefined)[]): BlockMoments | undefined {
  const present = parts.filter((p): p is BlockMoments => p !== undefined);
  if (present.length === 0) return undefined;
  if (present.length !== parts.length) throw new Error('shards disagree on which statistics a step has');
  const names = present[0].blocks ? Object.keys(present[0].blocks) : undefined;
  return {
    all: present.flatMap((p) => p.all),
    blocks: names && Object.fromEntries(names.map((n) => [n, present.flatMap((p) => p.blocks![n])])),
  };
}

/** The statistics of consecutive run ranges (shards in run order) as those of their union. */
export function mergeShardResults(parts: readonly ShardResult[]): ShardResult {
  if (parts.length === 1) return parts[0];
  const steps = parts[0].steps.map(([t], i): [number, StepStats] => {
    const at = parts.map((p) => {
      const s = p.steps[i];
      if (!s || s[0] !== t) throw new Error(`shards of one group recorded different steps (${t} vs ${s?.[0]})`);
      return s[1];
    });
    const keys = Object.keys(at[0].scalars);
    return [
      t,
      {
        grad: concatBlock(at.map((s) => s.grad)),
        full: concatBlock(at.map((s) => s.full)),
        difference: concatBlock(at.map((s) => s.difference)),
        scalars: Object.fromEntries(keys.map((k) => [k, at.flatMap((s) => s.scalars[k] ?? [])])),
      },
    ];
  });
  for (const p of parts) if (p.steps.length !== parts[0].steps.length) throw new Error('shards of one group recorded different numbers of steps');
  return { epochLength: parts[0].epochLength, steps };
}

/** The fields every Monte Carlo record takes from its estimate. */
function estimateFields(e: Estimate, level: number): Pick<MetricRecord, 'value' | 'runs' | 'ciLow' | 'ciHigh' | 'stdError' | 'scale' | 'df' | 'seMethod' | 'dispersion'> {
  const ci = interval(e, level);
  const fields = { value: e.value, runs: e.runs, ciLow: ci.low, ciHigh: ci.high, stdError: e.stdError, scale: e.scale, df: e.df, seMethod: e.method };
  return e.dispersion !== undefined && Number.isFinite(e.dispersion) ? { ...fields, dispersion: e.dispersion } : fields;
}

/** What records need to know about a group beyond its statistics. */
export interface RecordLayout {
  /** Steps per epoch (epoch-based settings): records then carry `epoch`. */
  epochLength?: number;
  /** C_b of the model (`Model.samplingFactor`): with it, steps with both gradients give `noise_scale`. */
  samplingFactor?: number;
}

/** The records of one recorded step of a (b, initial point) from the statistics of all its runs. */
export function stepRecords(study: StudyConfig, group: Pick<ShardSpec, 'batchSize' | 'initPoint'>, t: number, s: StepStats, layout: RecordLayout = {}): MetricRecord[] {
  const { epochLength, samplingFactor } = layout;
  const out: MetricRecord[] = [];
  const level = study.confidenceLevel;
  const common = { study: study.name, setting: study.setting, batchSize: group.batchSize, initPoint: group.initPoint, step: t, estimator: 'monte_carlo' as const };
  // Gradients at step t belong to the epoch being run (1-based); scalars evaluated before step t
  // describe the parameters after t / L epochs: e at an epoch boundary t = e * L, a fraction at
  // the equal-steps grid between boundaries (epochSchedule), so that every scalar record carries
  // both its epoch (samples seen / n) and its step (updates).
  const gradEpoch = epochLength ? { epoch: Math.floor(t / epochLength) + 1 } : {};
  const scalarEpoch = epochLength ? { epoch: t / epochLength } : {};
  const variance = (metric: string, m: BlockMoments | undefined) => {
    if (!m) return;
    const one = (blocks: RunBlockStats[], layer?: string) => out.push({ ...common, ...gradEpoch, metric, layer, ...estimateFields(varianceEstimate(blocks), level) });
    if (m.blocks) {
      for (const [name, blocks] of Object.entries(m.blocks)) one(blocks, name);
      one(m.all, 'all');
    } else one(m.all);
  };
  variance('grad_variance', s.grad);
  variance('full_grad_variance', s.full);
  if (s.grad && s.full && samplingFactor !== undefined && samplingFactor > 0) {
    out.push({ ...common, ...gradEpoch, metric: 'noise_scale', layer: s.grad.blocks ? 'all' : undefined, ...estimateFields(noiseScaleEstimate(s.grad.all, s.full.all, samplingFactor), level) });
  }
  if (s.difference && s.grad) {
    // About 1 when E[g_t] = E[grad L(w_t)] (see biasRatio).
    const runs = s.difference.all.reduce((n, b) => n + b.n, 0);
    out.push({ ...common, ...gradEpoch, metric: 'grad_bias_ratio', value: biasRatio(s.difference.all), runs });
  }
  for (const [key, blocks] of Object.entries(s.scalars)) {
    const [metric, split] = key.split('@');
    out.push({ ...common, ...scalarEpoch, metric, split, ...estimateFields(meanEstimate(blocks), level) });
  }
  return out;
}

/** Every record of a group's merged statistics, step by step. */
export function groupRecords(study: StudyConfig, group: Pick<ShardSpec, 'batchSize' | 'initPoint'>, result: ShardResult, samplingFactor?: number): MetricRecord[] {
  return result.steps.flatMap(([t, s]) => stepRecords(study, group, t, s, { epochLength: result.epochLength, samplingFactor }));
}
