/** The XLNet setting's Model: replicas on the tensor engine, per-epoch evaluations. */
import { epochSchedule, whenAll, type MaybePromise, type GradientReport, type Model, type ParamBlock, type RandomStream, type ShardSchedule, type ShardSpec, type StudyConfig } from '@sgd-lab/core';
import type { ReplicaEngine, TensorReplicaState } from '@sgd-lab/tensor';
import { CLASSES, initXlnet, type XlnetSize } from './model.js';
import type { EncodedSet, TextBatch } from './sampler.js';

export interface XlnetEvaluation {
  train: EncodedSet;
  validation: EncodedSet;
  /** Evaluate every this many epochs. */
  every: number;
  /** Examples per forward pass when evaluating (bounds memory). */
  rowsPerCall: number;
}

const asInputs = (s: EncodedSet) => [
  { data: s.ids, shape: [s.count, s.length] as [number, number] },
  { data: s.labels, shape: [s.count, CLASSES] as [number, number] },
];

export class XlnetModel implements Model<TensorReplicaState, TextBatch> {
  readonly id = 'xlnet';
  readonly blocks: readonly ParamBlock[];
  readonly rows: number;
  /** Steps of the shard being run (the optimizer's schedule needs them). */
  totalSteps = 1;
  private readonly inputs: { train: ReturnType<typeof asInputs>; validation: ReturnType<typeof asInputs> };

  constructor(
    readonly size: XlnetSize,
    readonly engine: ReplicaEngine,
    private readonly train: EncodedSet,
    private readonly evaluation: XlnetEvaluation,
    private readonly study: Pick<StudyConfig, 'batchSizes' | 'epochs' | 'steps'>,
  ) {
    this.blocks = engine.program.blocks.map((b) => ({ name: b.name, size: b.shape[0] * b.shape[1] }));
    this.rows = train.count;
    this.inputs = { train: asInputs(evaluation.train), validation: asInputs(evaluation.validation) };
  }

  schedule(shard: ShardSpec, study: StudyConfig): ShardSchedule {
    // Equal epochs and equal steps across b (core's epochSchedule).
    return epochSchedule(this.train.count, shard, study, this.evaluation.every);
  }

  initialParameters(rng: RandomStream): Float64Array {
    return initXlnet(rng, this.size);
  }

  replicate(theta0: Float64Array, shard: ShardSpec): TensorReplicaState {
    this.totalSteps = this.schedule(shard, this.study as StudyConfig).steps;
    return this.engine.replicate(theta0, shard.runCount);
  }

  gradients(state: TensorReplicaState, batch: TextBatch): MaybePromise<GradientReport> {
    return this.engine.gradients(state, [
      { data: batch.x, shape: [batch.b, this.size.length] },
      { data: batch.y, shape: [batch.b, CLASSES] },
    ], false);
  }

  scalars(state: TensorReplicaState): MaybePromise<Record<string, Float64Array>> {
    return whenAll(
      [this.engine.evaluate(state, this.inputs.train, this.evaluation.rowsPerCall), this.engine.evaluate(state, this.inputs.validation, this.evaluation.rowsPerCall)] as const,
      ([train, val]) => ({ 'loss@train': train.loss, 'error@train': train.error, 'loss@validation': val.loss, 'error@validation': val.error }),
    );
  }

  dispose(state: TensorReplicaState): void {
    this.engine.dispose(state);
  }
}
