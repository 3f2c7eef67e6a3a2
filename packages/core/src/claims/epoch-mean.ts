/**
 * Per-epoch means of a per-step metric (what the paper's per-epoch figures plot, e.g. Figs. 1(a),
 * 4(a), 6). The standard error of a mean is that of perfectly correlated steps (an upper bound,
 * so the interval is conservative).
 */
import type { Analysis } from '../engine/contracts.js';
import type { Estimator, MetricRecord } from '../engine/records.js';
import type { RecordIndex } from '../engine/record-index.js';
import type { StudyConfig } from '../config/study-config.js';
import { normalQuantile } from '../stats/normal.js';
import { studentQuantile } from '../stats/student-t.js';
import { logStdError } from './monotone.js';

export interface EpochMeanOptions {
  id: string;
  /** The per-step metric, e.g. grad_variance. */
  metric: string;
  /** The metric the means are written as, e.g. grad_variance_epoch. */
  as: string;
  layer?: string;
  estimator?: Estimator;
}

export function epochMean(o: EpochMeanOptions): Analysis {
  const layer = o.layer ?? 'all';
  const estimator: Estimator = o.estimator ?? 'monte_carlo';
  return {
    id: o.id,
    *analyze(index: RecordIndex, study: StudyConfig): Iterable<MetricRecord> {
      const z = normalQuantile(0.5 + study.confidenceLevel / 2);
      for (let ip = 0; ip < study.initPoints; ip++) {
        for (const b of study.batchSizes) {
          const byEpoch = new Map<number, MetricRecord[]>();
          for (const r of index.get(o.metric, estimator, b, ip, layer)) {
            if (r.epoch === undefined || !(r.value > 0)) continue;
            let list = byEpoch.get(r.epoch);
            if (!list) byEpoch.set(r.epoch, (list = []));
            list.push(r);
          }
          for (const [epoch, rs] of byEpoch) {
            const value = rs.reduce((s, r) => s + r.value, 0) / rs.length;
            // Log standard error of the mean of positive values, bounded by that of perfectly
            // correlated steps: the value-weighted mean of the steps' log standard errors.
            const se = rs.reduce((s, r) => s + logStdError(r) * r.value, 0) / rs.length / value;
            const df = Math.min(...rs.map((r) => r.df ?? Infinity));
            const q = Number.isFinite(df) ? studentQuantile(0.5 + study.confidenceLevel / 2, df) : z;
            const f = Math.exp(q * se);
            yield {
              study: study.name,
              setting: study.setting,
              batchSize: b,
              initPoint: ip,
              epoch,
              layer,
              metric: o.as,
              estimator,
              value,
              runs: rs[0].runs,
              ciLow: value / f,
              ciHigh: value * f,
              stdError: se,
              scale: 'log',
              df,
              seMethod: 'epoch-mean-correlated-bound',
            };
          }
        }
      }
    },
  };
}
