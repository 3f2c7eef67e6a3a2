#!/usr/bin/env node
/**
 * Times the gaussian-deeplinear step on one backend: R replicas, batch b, the paper widths; per
 * step the fresh Gaussian batches, stochastic and full gradients, their across-run moments and
 * the SGD update, exactly as a study runs it. Prints JSON {backend, strategy, seconds[]}.
 *
 *   node deeplinear-step.mjs <backend> <R> <b> <steps> [warmup]
 *
 * The benchmark also runs it under --cpu-prof to show where the time goes.
 * As in a study, the gradient pass is told the SGD step that follows (SGD_LAB_SGD_IN_PASS=0: not,
 * to measure the separate update).
 */
import * as tf from '@tensorflow/tfjs-core';
import { RandomStream, StreamPurpose } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeOn, strategyFor, useBackend } from '@sgd-lab/tensor';
import { deepLinearProgram, drawLayers, gaussianSampler, largestTensorPerReplica, product } from '@sgd-lab/plugin-deeplinear';

const [backendName = 'wasm', rArg = '256', bArg = '64', stepsArg = '3', warmArg = '1'] = process.argv.slice(2);
const R = Number(rArg);
const b = Number(bArg);
const widths = [64, 256, 128];
const backend = await useBackend(backendName);
// SGD_LAB_READS=async forces the one-read-per-step asynchronous path on a CPU backend (the bench's reads section).
const readMode = process.env.SGD_LAB_READS === 'async' || process.env.SGD_LAB_READS === 'sync' ? process.env.SGD_LAB_READS : undefined;
const teacher = product(drawLayers(new RandomStream([1, StreamPurpose.model, 0]), widths, 1), widths);
const teacherT = tf.transpose(tf.tensor2d(Float32Array.from(teacher), [widths[2], widths[0]]));
// Chunks whose stacked tensors fit the adapter's binding limit (webgpu), in run blocks of up to 16.
const fit = chunkSizeOn(backend, R, largestTensorPerReplica(widths, b), 1);
const runBlock = Math.min(16, fit);
const chunkSize = fit < R ? fit - (fit % runBlock) : R;
const engine = new ReplicaEngine(deepLinearProgram(widths, teacherT), { strategy: strategyFor(backend.tfjsBackend), chunkSize, runBlock, reads: readMode });
const theta0 = drawLayers(new RandomStream([1, StreamPurpose.init, 0]), widths, 1);
const shard = { batchSize: b, initPoint: 0, runStart: 0, runCount: R, steps: 1 };
const state = engine.replicate(theta0, R);
const sampler = gaussianSampler(widths[0]).create(shard, 1);
const seconds = [];
const total = Number(stepsArg) + Number(warmArg);
for (let t = 0; t < total; t++) {
  const t0 = performance.now();
  const batch = sampler.next(t);
  // As a study runs it: the loop tells the gradient pass the plain SGD step that follows.
  await engine.gradients(state, [{ data: batch.x, shape: [b, widths[0]] }], true, process.env.SGD_LAB_SGD_IN_PASS === "0" ? undefined : { sgd: 1e-3 });
  await engine.losses(state);
  engine.sgd(state, 1e-3);
  if (t >= Number(warmArg)) seconds.push((performance.now() - t0) / 1000);
}
engine.dispose(state);
process.stdout.write(JSON.stringify({ backend: backend.name, strategy: engine.options.strategy, reads: engine.reads, chunkSize: engine.options.chunkSize, simd: backend.simd, seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
