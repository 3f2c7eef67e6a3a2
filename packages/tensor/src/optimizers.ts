/**
 * Optimizers for models on the replica engine, offered to every setting as components:
 * `sgd` and `adam` (Adam with decoupled weight decay, Loshchilov and Hutter), each replica with
 * its own moment estimates.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, type ComponentContext, type ComponentFactories, type Optimizer } from '@sgd-lab/core';
import { ADAMW } from '@sgd-lab/native';
import type { ReplicaEngine, TensorReplicaState } from './engine.js';

export function engineSgd(engine: ReplicaEngine): Optimizer<TensorReplicaState> {
  return { id: 'sgd', plainSgd: true, step: (state, lr) => engine.sgd(state, lr) };
}

export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay: w <- w - lr * weightDecay * w. */
  weightDecay: number;
  /** Clip each block's gradient to this Euclidean norm before the moments (0 or absent: no clipping). */
  clipNorm?: number;
  /** Which blocks (by index) weight decay applies to; all when absent. */
  decay?: (block: number) => boolean;
}

export const ADAM_DEFAULTS: AdamOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };

/** Adam(W) per replica; moment tensors live on the backend and are freed by `dispose`. */
export function engineAdam(engine: ReplicaEngine, o: AdamOptions = ADAM_DEFAULTS): Optimizer<TensorReplicaState> & { dispose(): void } {
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  let seen: TensorReplicaState | undefined;
  let t = 0;
  const reset = () => {
    for (const x of [...m.values(), ...v.values()]) x.dispose();
    m.clear();
    v.clear();
    t = 0;
  };
  return {
    id: 'adam',
    step(state, lr) {
      // A new shard starts from θ0 with fresh moments.
      if (seen !== state) {
        reset();
        seen = state;
        // Freed with the shard's replicas, so nothing outlives the study.
        (state.cleanups ??= []).push(() => {
          if (seen === state) {
            reset();
            seen = undefined;
          }
        });
      }
      t++;
      const c1 = 1 - o.beta1 ** t;
      const c2 = 1 - o.beta2 ** t;
      const fused = tf.getKernel(ADAMW, tf.getBackend()) !== undefined;
      engine.update(state, (w, gRaw, slot) => {
        const block = Number(slot.slice(slot.lastIndexOf('/') + 1));
        const decay = o.weightDecay && (o.decay?.(block) ?? true) ? o.weightDecay : 0;
        // Clipping per replica: one group per leading slice of a stacked block.
        const groups = w.rank === 3 ? w.shape[0] : 1;
        if (fused) {
          const [w1, m1, v1] = tf.engine().runKernel(ADAMW, { w, g: gRaw, m: m.get(slot) ?? tf.zerosLike(w), v: v.get(slot) ?? tf.zerosLike(w) }, { lr, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, c1, c2, decay, clip: o.clipNorm ?? 0, groups }) as tf.Tensor[];
          m.get(slot)?.dispose();
          v.get(slot)?.dispose();
          m.set(slot, tf.keep(m1));
          v.set(slot, tf.keep(v1));
          return w1;
        }
        // Per-block clipping, g * min(1, clip / ||g||), with the norm per replica (last two axes).
        const norm = () => tf.sqrt(tf.sum(tf.square(gRaw), [-2, -1], true));
        const g = o.clipNorm ? tf.mul(gRaw, tf.minimum(1, tf.div(o.clipNorm, tf.add(norm(), 1e-30)))) : gRaw;
        const m1 = tf.add(tf.mul(m.get(slot) ?? tf.zerosLike(g), o.beta1), tf.mul(g, 1 - o.beta1));
        const v1 = tf.add(tf.mul(v.get(slot) ?? tf.zerosLike(g), o.beta2), tf.mul(tf.square(g), 1 - o.beta2));
        m.get(slot)?.dispose();
        v.get(slot)?.dispose();
        m.set(slot, tf.keep(m1));
        v.set(slot, tf.keep(v1));
        const stepDir = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), o.epsilon));
        const decayed = decay ? tf.mul(w, 1 - lr * decay) : w;
        return tf.sub(decayed, tf.mul(stepDir, lr));
      });
    },
    dispose: reset,
  };
}

function engineOf(ctx: ComponentContext, id: string): ReplicaEngine {
  const engine = (ctx.model as { engine?: ReplicaEngine }).engine;
  if (!engine) throw new ConfigError(ctx.study.name, [`/components/optimizer: "${id}" works on tensor-engine models; ${ctx.study.setting}'s model is not one`]);
  return engine;
}

export const components: ComponentFactories = {
  optimizers: {
    adam: { description: 'Adam (beta 0.9/0.999, eps 1e-8) per replica, for tensor-engine models', create: (ctx) => engineAdam(engineOf(ctx, 'adam')) },
    'tensor-sgd': { description: 'plain SGD for tensor-engine models', create: (ctx) => engineSgd(engineOf(ctx, 'tensor-sgd')) },
  },
};

export default components;
