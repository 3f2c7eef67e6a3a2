/**
 * The `native` TensorFlow.js backend: a MathBackendCPU (tensors in JS TypedArrays) with every cpu
 * kernel, whose matrix products are replaced by the addon's OpenBLAS calls.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { loadAddon, type NativeAddon } from './addon.js';
import { NATIVE, nativeKernels } from './kernels.js';

export interface NativeInfo {
  /** OpenBLAS threads in use. */
  threads: number;
  /** OpenBLAS's build line with the core type it picked (OPENBLAS_CORETYPE forces one). */
  blas: string;
  addon: string;
}

let registered: NativeInfo | undefined;

/**
 * Threads for OpenBLAS: SGD_LAB_THREADS, else OPENBLAS_NUM_THREADS, else the machine's cores.
 */
export function defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
  for (const key of ['SGD_LAB_THREADS', 'OPENBLAS_NUM_THREADS'] as const) {
    const v = env[key];
    if (v !== undefined && v !== '') {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${key}=${v}: expected a whole number of threads >= 1`);
      return n;
    }
  }
  return availableParallelism();
}

/**
 * Registers the `native` backend (idempotent). Throws with the reason (and what to install) when
 * the addon is not available; callers fall back to wasm.
 */
export async function registerNative(threads = defaultThreads()): Promise<NativeInfo> {
  const load = loadAddon();
  if (!load.ok) throw new Error(load.reason);
  const addon: NativeAddon = load.addon;
  if (!registered) {
    const { MathBackendCPU } = await import('@tensorflow/tfjs-backend-cpu');
    tf.registerBackend(
      NATIVE,
      () => {
        const backend = new MathBackendCPU();
        // Its first write tells Node users to install tfjs-node; on this backend that advice is wrong.
        (backend as unknown as { firstUse: boolean }).firstUse = false;
        return backend;
      },
      0,
    );
    for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({ ...k, backendName: NATIVE });
    for (const k of nativeKernels(addon)) {
      tf.unregisterKernel(k.kernelName, NATIVE);
      tf.registerKernel(k);
    }
    // Gradients are backend-independent; nothing else to register.
  }
  setThreads(threads);
  registered = { threads: addon.getThreads(), blas: addon.getConfig(), addon: load.path };
  return registered;
}

/** Sets OpenBLAS's thread count. */
export function setThreads(threads: number): void {
  const load = loadAddon();
  if (!load.ok) throw new Error(load.reason);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads: expected a whole number >= 1, got ${threads}`);
  load.addon.setThreads(threads);
  if (registered) registered.threads = load.addon.getThreads();
}
