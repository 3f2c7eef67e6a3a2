/**
 * The `native` TensorFlow.js backend: a MathBackendCPU (tensors in JS TypedArrays) with every cpu
 * kernel, whose matrix products are replaced by the addon's OpenBLAS calls.
 */
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadAddon, type NativeAddon } from './addon.js';
import { NATIVE, nativeKernels } from './kernels.js';
import { ArrayPool } from './pool.js';

/** The backend object: a MathBackendCPU with a pool of reusable output arrays. */
export type NativeBackend = MathBackendCPU & { pool: ArrayPool };

/** Bytes of freed arrays kept for reuse: SGD_LAB_NATIVE_POOL_MIB (default 1024). */
export function poolBytes(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.SGD_LAB_NATIVE_POOL_MIB;
  if (v === undefined || v === '') return 1024 * 2 ** 20;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`SGD_LAB_NATIVE_POOL_MIB=${v}: expected a number of MiB >= 0`);
  return n * 2 ** 20;
}

/**
 * A cpu kernel run on the native backend: when it returns a view of an input's pooled array
 * under another tensor (a contiguous slice), that array must never be reused.
 */
function guarded(k: tf.KernelConfig): tf.KernelConfig {
  return {
    ...k,
    backendName: NATIVE,
    kernelFunc: (args) => {
      const out = k.kernelFunc(args);
      const backend = args.backend as NativeBackend;
      const outs = Array.isArray(out) ? out : [out];
      for (const input of Object.values(args.inputs)) {
        if (!input) continue;
        const v = backend.data.get(input.dataId)?.values;
        if (!backend.pool.owns(v)) continue;
        for (const o of outs) {
          if (o.dataId === input.dataId) continue;
          const ov = backend.data.get(o.dataId)?.values as ArrayBufferView | undefined;
          if (ov && ov.buffer === (v as Float32Array).buffer) backend.pool.escape(v);
        }
      }
      return out;
    },
  };
}

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
    const maxBytes = poolBytes();
    class Native extends MathBackendCPU {
      readonly pool = new ArrayPool(maxBytes);
      constructor() {
        super();
        // Its first write tells Node users to install tfjs-node; on this backend that advice is wrong.
        (this as unknown as { firstUse: boolean }).firstUse = false;
      }
      override readSync(dataId: object): tf.BackendValues {
        this.pool.escape(this.data.get(dataId)?.values);
        return super.readSync(dataId);
      }
      override disposeData(dataId: object, force = false): boolean {
        const values = this.data.get(dataId)?.values;
        const freed = super.disposeData(dataId, force);
        if (freed) this.pool.give(values);
        return freed;
      }
      override dispose(): void {
        this.pool.clear();
        super.dispose();
      }
    }
    tf.registerBackend(NATIVE, () => new Native(), 0);
    for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel(guarded(k));
    for (const k of nativeKernels(addon)) {
      if (tf.getKernel(k.kernelName, NATIVE)) tf.unregisterKernel(k.kernelName, NATIVE);
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
