import type { Optimizer } from '@sgd-lab/core';
import type { ReplicaEngine, TensorReplicaState } from '@sgd-lab/tensor';

/** Plain SGD on the engine's replicas. */
export function tensorSgd(engine: ReplicaEngine): Optimizer<TensorReplicaState> {
  return { id: 'sgd', step: (state, lr) => engine.sgd(state, lr) };
}
