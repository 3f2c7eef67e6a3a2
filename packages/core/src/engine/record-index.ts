import type { Estimator, MetricRecord } from './records.js';

/** Records grouped by series, for claims and reporters. */
export class RecordIndex {
  private readonly series = new Map<string, MetricRecord[]>();

  static key(metric: string, estimator: Estimator, batchSize: number | undefined, initPoint: number, layer?: string, split?: string): string {
    return `${metric}|${estimator}|${batchSize ?? '-'}|${initPoint}|${layer ?? '-'}|${split ?? '-'}`;
  }

  add(r: MetricRecord): void {
    const k = RecordIndex.key(r.metric, r.estimator, r.batchSize, r.initPoint, r.layer, r.split);
    let list = this.series.get(k);
    if (!list) this.series.set(k, (list = []));
    list.push(r);
  }

  /** The records of one series, in insertion (step) order. */
  get(metric: string, estimator: Estimator, batchSize: number | undefined, initPoint: number, layer?: string, split?: string): MetricRecord[] {
    return this.series.get(RecordIndex.key(metric, estimator, batchSize, initPoint, layer, split)) ?? [];
  }

  /** Every record. */
  *all(): Iterable<MetricRecord> {
    for (const list of this.series.values()) yield* list;
  }

  get size(): number {
    let n = 0;
    for (const list of this.series.values()) n += list.length;
    return n;
  }
}
