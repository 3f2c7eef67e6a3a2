/**
 * XLNet's fine-tuning optimiser: Adam with decoupled weight decay (epsilon 1e-8), the learning
 * rate warmed up linearly from 0 over the first `warmup` share of the steps and then decayed
 * linearly to 0 at the last step, and every parameter matrix's gradient clipped to norm `clip`.
 */
import type { Optimizer } from '@sgd-lab/core';
import { engineAdam, type ReplicaEngine, type TensorReplicaState } from '@sgd-lab/tensor';

export interface XlnetOptimizerOptions {
  weightDecay: number;
  warmup: number;
  clip: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** The multiplier of the peak rate at step t (0-based) of `total`: linear warm-up, then linear decay. */
export function warmupLinear(t: number, total: number, warmup: number): number {
  const w = Math.max(0, Math.round(warmup * total));
  if (t < w) return (t + 1) / (w + 1);
  return Math.max(0, (total - t) / Math.max(1, total - w));
}

export function xlnetOptimizer(
  engine: ReplicaEngine,
  o: XlnetOptimizerOptions,
  decay: (block: number) => boolean,
  totalSteps: () => number,
): Optimizer<TensorReplicaState> & { dispose(): void } {
  const adam = engineAdam(engine, { beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay, clipNorm: o.clip, decay });
  return {
    id: 'xlnet-adamw',
    step(state, lr, t) {
      adam.step(state, lr * warmupLinear(t, totalSteps(), o.warmup), t);
    },
    dispose: () => adam.dispose(),
  };
}
