#!/usr/bin/env node
/**
 * Times the mnist-mlp step on one backend: R replicas, batch b, the cpu preset's widths; per step
 * the epoch-shuffled batches of every run (on native gathered by the fused step from the table's
 * rows), forward and backward, the across-run moments of every gradient block, and the SGD
 * update, as a study runs it. Prints JSON {backend, strategy, seconds[]}.
 *
 *   node mnist-step.mjs <backend> <R> <b> <steps> [warmup] [widths as 784-256-128-10]
 *
 * As in a study, the gradient pass is told the SGD step that follows (SGD_LAB_SGD_IN_PASS=0: not,
 * to measure the separate update).
 */
import { RandomStream, StreamPurpose } from '@sgd-lab/core';
import { ReplicaEngine, chunkSizeOn, strategyFor, useBackend } from '@sgd-lab/tensor';
import { epochSampler, initMlp, loadEmbedded, mlpInputs, mlpLargestTensorPerReplica, mlpProgram } from '@sgd-lab/plugin-mnist';

const [backendName = 'wasm', rArg = '8', bArg = '128', stepsArg = '10', warmArg = '2', widthsArg = '784-256-128-10'] = process.argv.slice(2);
const R = Number(rArg);
const b = Number(bArg);
const widths = widthsArg.split('-').map(Number);
const backend = await useBackend(backendName);
// SGD_LAB_READS=async forces the one-read-per-step asynchronous path on a CPU backend (the bench's reads section).
const readMode = process.env.SGD_LAB_READS === 'async' || process.env.SGD_LAB_READS === 'sync' ? process.env.SGD_LAB_READS : undefined;
const data = loadEmbedded(1, 0.2);
// Chunks whose stacked tensors fit the adapter's binding limit (webgpu), in run blocks of up to 16.
const fit = chunkSizeOn(backend, R, mlpLargestTensorPerReplica(widths, b), 1);
const runBlock = Math.min(16, fit);
const chunkSize = fit < R ? fit - (fit % runBlock) : R;
const engine = new ReplicaEngine(mlpProgram(widths), { strategy: strategyFor(backend.tfjsBackend), chunkSize, runBlock, reads: readMode });
const state = engine.replicate(initMlp(new RandomStream([1, StreamPurpose.init, 0]), widths), R);
const sampler = epochSampler(data.train).create({ batchSize: b, initPoint: 0, runStart: 0, runCount: R, steps: 1 }, 1);
const seconds = [];
const total = Number(stepsArg) + Number(warmArg);
for (let t = 0; t < total; t++) {
  const t0 = performance.now();
  const batch = sampler.next(t);
  // As a study runs it: the loop tells the gradient pass the plain SGD step that follows.
  // The model's inputs: on native the fused step gathers each replica's images from the table rows.
  await engine.gradients(state, mlpInputs(batch, engine), false, process.env.SGD_LAB_SGD_IN_PASS === '0' ? undefined : { sgd: 3e-3 });
  engine.sgd(state, 3e-3);
  if (t >= Number(warmArg)) seconds.push((performance.now() - t0) / 1000);
}
engine.dispose(state);
process.stdout.write(JSON.stringify({ backend: backend.name, strategy: engine.options.strategy, reads: engine.reads, chunkSize: engine.options.chunkSize, simd: backend.simd, seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
