/** Per-epoch mean of the across-run gradient variance (what Figs. 1(a) and 4(a) plot). */
import { normalQuantile, type Analysis, type MetricRecord, type RecordIndex, type StudyConfig } from '@sgd-lab/core';
import { logStdError } from '@sgd-lab/core';

/**
 * grad_variance_epoch: the mean over an epoch's recorded steps of Var(g_t|F0). Its interval uses
 * the mean of the steps' log standard errors, the bound for perfectly correlated steps, so it is
 * conservative.
 */
export const epochMeanVariance: Analysis = {
  id: 'mnist-epoch-mean-variance',
  *analyze(index: RecordIndex, study: StudyConfig): Iterable<MetricRecord> {
    const z = normalQuantile(0.5 + study.confidenceLevel / 2);
    for (let ip = 0; ip < study.initPoints; ip++) {
      for (const b of study.batchSizes) {
        const byEpoch = new Map<number, MetricRecord[]>();
        for (const r of index.get('grad_variance', 'monte_carlo', b, ip, 'all')) {
          if (r.epoch === undefined || !(r.value > 0)) continue;
          let list = byEpoch.get(r.epoch);
          if (!list) byEpoch.set(r.epoch, (list = []));
          list.push(r);
        }
        for (const [epoch, rs] of byEpoch) {
          const value = rs.reduce((s, r) => s + r.value, 0) / rs.length;
          const se = rs.reduce((s, r) => s + logStdError(r, study.confidenceLevel), 0) / rs.length;
          const f = Math.exp(z * se);
          yield { study: study.name, setting: study.setting, batchSize: b, initPoint: ip, epoch, layer: 'all', metric: 'grad_variance_epoch', estimator: 'monte_carlo', value, runs: rs[0].runs, ciLow: value / f, ciHigh: value * f };
        }
      }
    }
  },
};
