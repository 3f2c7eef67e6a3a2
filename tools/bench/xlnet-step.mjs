#!/usr/bin/env node
/**
 * Times the yelp-xlnet step on one backend: R replicas of the cpu preset's encoder, each on its
 * own batch of b sequences of L tokens (a quarter of them left padding, like short reviews):
 * forward, autodiff backward, the across-run moments of every block, and the AdamW update with
 * per-matrix clipping, as a study runs it. Prints JSON {backend, strategy, seconds[], tokensPerStep,
 * kernels, computeKernels}: the TensorFlow.js kernels of one replica-step (one gradient call's,
 * divided by R), all of them and those that compute (not Reshape or Identity, which move no data).
 *
 *   node xlnet-step.mjs <backend> <R> <b> <steps> [warmup] [layers-dModel-heads-inner-length-vocab]
 */
import * as tf from '@tensorflow/tfjs-core';
import { RandomStream } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeOn, useBackend } from '@sgd-lab/tensor';
import { decays, initXlnet, xlnetLargestTensorPerReplica, xlnetOptimizer, xlnetProgram, xlnetStrategy } from '@sgd-lab/plugin-xlnet';

const [backendName = 'native', rArg = '4', bArg = '32', stepsArg = '5', warmArg = '1', sizeArg = '2-64-4-256-32-2000'] = process.argv.slice(2);
const [layers, dModel, heads, inner, length, vocab] = sizeArg.split('-').map(Number);
const size = { layers, dModel, heads, inner, length, vocab };
const R = Number(rArg);
const b = Number(bArg);
const backend = await useBackend(backendName);
const program = xlnetProgram(size);
// The plugin's choice (xlnetStrategy), or SGD_LAB_STRATEGY=per-replica|stacked to compare them.
const strategy = process.env.SGD_LAB_STRATEGY === 'stacked' || process.env.SGD_LAB_STRATEGY === 'per-replica' ? process.env.SGD_LAB_STRATEGY : xlnetStrategy(backend.tfjsBackend);
// Chunks whose stacked tensors fit the adapter's binding limit (webgpu), in run blocks of up to 16.
const fit = chunkSizeOn(backend, R, xlnetLargestTensorPerReplica(size, b), 1);
const runBlock = Math.min(16, fit);
const chunkSize = fit < R ? fit - (fit % runBlock) : R;
const engine = new ReplicaEngine(program, { strategy, chunkSize, runBlock });
const state = engine.replicate(initXlnet(new RandomStream([1]), size), R);
const total = Number(stepsArg) + Number(warmArg);
const opt = xlnetOptimizer(engine, { weightDecay: 0.01, warmup: 0.1, clip: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }, (k) => decays(program.blocks[k].name), () => total);
const rng = new RandomStream([2]);
const x = new Float32Array(R * b * length);
const y = new Float32Array(R * b * 2);
for (let i = 0; i < R * b; i++) {
  for (let j = 0; j < length; j++) x[i * length + j] = j < length / 4 ? 0 : 4 + Math.floor(rng.nextDouble() * (vocab - 4));
  y[i * 2 + (rng.nextDouble() < 0.5 ? 0 : 1)] = 1;
}
const seconds = [];
for (let t = 0; t < total; t++) {
  const t0 = performance.now();
  await engine.gradients(state, [{ data: x, shape: [b, length] }, { data: y, shape: [b, 2] }], false);
  opt.step(state, 1e-3, t);
  if (t >= Number(warmArg)) seconds.push((performance.now() - t0) / 1000);
}
// The kernels of one gradient call (forward and backward of every replica), by the profiler.
const profile = await tf.profile(() => engine.gradients(state, [{ data: x, shape: [b, length] }, { data: y, shape: [b, 2] }], false));
const moving = profile.kernels.filter((k) => k.name === 'Reshape' || k.name === 'Identity').length;
engine.dispose(state);
process.stdout.write(JSON.stringify({ backend: backend.name, strategy, seconds, tokensPerStep: b * length, kernels: profile.kernels.length / R, computeKernels: (profile.kernels.length - moving) / R }) + '\n');
