import type { Estimator, MetricRecord } from './records.js';

/** Records grouped by series, for claims and reporters. */
export class RecordIndex {
  private readonly series = new Map<string, MetricRecord[]>();
  private readonly order: MetricRecord[] = [];

  static key(metric: string, estimator: Estimator, batchSize: number | undefined, initPoint: number, layer?: string, split?: string): string {
    return `${metric}|${estimator}|${batchSize ?? '-'}|${initPoint}|${layer ?? '-'}|${split ?? '-'}`;
  }

  add(r: MetricRecord): void {
    const k = RecordIndex.key(r.metric, r.estimator, r.batchSize, r.initPoint, r.layer, r.split);
    let list = this.series.get(k);
    if (!list) this.series.set(k, (list = []));
    list.push(r);
    this.order.push(r);
  }

  /** The records of one series, in insertion (step) order. */
  get(metric: string, estimator: Estimator, batchSize: number | undefined, initPoint: number, layer?: string, split?: string): MetricRecord[] {
    return this.series.get(RecordIndex.key(metric, estimator, batchSize, initPoint, layer, split)) ?? [];
  }

  /** The Monte Carlo records of one shard's (b, initial point), in the order they were added. */
  recordsOfShard(shard: { batchSize: number; initPoint: number }): MetricRecord[] {
    const out: MetricRecord[] = [];
    for (const r of this.order) if (r.estimator === 'monte_carlo' && r.batchSize === shard.batchSize && r.initPoint === shard.initPoint) out.push(r);
    return out;
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
