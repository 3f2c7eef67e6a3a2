/**
 * Reading tensors back from a backend. The cpu-side backends (native, wasm, cpu) read
 * synchronously; WebGPU in Node has no synchronous read (its `dataSync` goes through
 * OffscreenCanvas, which Node lacks), so there every read is `await data()`, and the tensors of
 * one step are joined into one buffer and read with a single `await`: each read waits for the
 * device to finish the work queued so far, so reading twice per step would wait twice.
 */
import * as tf from '@tensorflow/tfjs-core';
import { andThen, type MaybePromise } from '@sgd-lab/core';
import { takeWebGpuErrors, webGpuRejected } from './webgpu.js';

export type ReadMode = 'sync' | 'async';

/** Backends (tfjs names) without synchronous reads. */
const ASYNC_BACKENDS = new Set(['webgpu']);

export function readModeFor(tfjsBackend: string): ReadMode {
  return ASYNC_BACKENDS.has(tfjsBackend) ? 'async' : 'sync';
}

/**
 * The values of `tensors` (float32, each flattened), disposing them unless `keep`: one
 * synchronous read each (`sync`; the values may be the tensors' own arrays, so copy them before
 * the tensors change), or one asynchronous read of all of them joined (`async`).
 */
export function readAll(tensors: readonly tf.Tensor[], mode: ReadMode, keep = false): MaybePromise<Float32Array[]> {
  if (tensors.length === 0) return [];
  if (mode === 'sync') {
    return tensors.map((t) => {
      const v = t.dataSync() as Float32Array;
      if (!keep) t.dispose();
      return v;
    });
  }
  const sizes = tensors.map((t) => t.size);
  const joined = tf.tidy(() => (tensors.length === 1 ? tf.reshape(tensors[0], [-1]) : tf.concat(tensors.map((t) => tf.reshape(t, [-1])))));
  if (!keep) tf.dispose(tensors as tf.Tensor[]);
  const pending = joined.data() as Promise<Float32Array>;
  return andThen(pending, (all) => {
    joined.dispose();
    // The read waited for the step's kernels: any the GPU rejected gave zeros, not results.
    const rejected = takeWebGpuErrors();
    if (rejected.length > 0) throw webGpuRejected(rejected);
    const out: Float32Array[] = [];
    let o = 0;
    for (const n of sizes) {
      out.push(all.subarray(o, (o += n)));
    }
    return out;
  });
}
