/**
 * TensorFlow.js kernels for the `native` backend. The backend is a MathBackendCPU, so tensors are
 * plain TypedArrays in its data store and the addon reads and writes them in place. Cases the
 * native path does not cover (non-float32 dtypes, batch dimensions that broadcast other than by
 * 1, PReLU) run the cpu backend's own kernel, so every op stays correct.
 */
import {
  BatchMatMul,
  _FusedMatMul,
  getKernel,
  util,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
  type _FusedMatMulAttrs,
} from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';

export const NATIVE = 'native';

interface Plan {
  outShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
}

/** Shapes of a (batched) product, or undefined when the native path does not cover them. */
export function planMatMul(aShape: readonly number[], bShape: readonly number[], transA: boolean, transB: boolean): Plan | undefined {
  if (aShape.length < 2 || bShape.length < 2) return undefined;
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new Error(`matMul: inner dimensions differ (${aShape} x ${bShape}, transposeA=${transA}, transposeB=${transB})`);
  const outerA = aShape.slice(0, -2);
  const outerB = bShape.slice(0, -2);
  const batchA = util.sizeFromShape(outerA);
  const batchB = util.sizeFromShape(outerB);
  let outer: number[];
  if (batchA === batchB && outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i])) outer = outerA;
  else if (batchB === 1) outer = outerA.length >= outerB.length ? outerA : [...outerB.map(() => 1).slice(outerA.length), ...outerA];
  else if (batchA === 1) outer = outerB.length >= outerA.length ? outerB : [...outerA.map(() => 1).slice(outerB.length), ...outerB];
  else return undefined;
  const batch = util.sizeFromShape(outer);
  return {
    outShape: [...outer, m, n],
    batch,
    m,
    n,
    k,
    strideA: batchA === 1 ? 0 : m * k,
    strideB: batchB === 1 ? 0 : k * n,
  };
}

function values(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

/** The product itself: a new float32 tensor in the backend's store. */
function product(addon: NativeAddon, backend: MathBackendCPU, a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean): { info: TensorInfo; out: Float32Array; plan: Plan } | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const plan = planMatMul(a.shape, b.shape, transA, transB);
  if (!plan) return undefined;
  const out = new Float32Array(plan.batch * plan.m * plan.n);
  if (plan.k > 0 && out.length > 0) {
    addon.gemmBatched(values(backend, a), values(backend, b), out, plan.batch, plan.m, plan.n, plan.k, transA, transB, plan.strideA, plan.strideB, plan.m * plan.n, 1, 0);
  }
  return { info: backend.makeTensorInfo(plan.outShape, 'float32', out), out, plan };
}

function cpuKernel(name: string): KernelFunc {
  const k = getKernel(name, 'cpu');
  if (!k) throw new Error(`the cpu backend has no ${name} kernel to fall back on`);
  return k.kernelFunc;
}

/** Counts of calls that took the native path and the fallback, per kernel (tests, benchmarks). */
export const kernelCalls: Record<string, { native: number; fallback: number }> = {};
function count(name: string, native: boolean): void {
  const c = (kernelCalls[name] ??= { native: 0, fallback: 0 });
  if (native) c.native++;
  else c.fallback++;
}

export function nativeKernels(addon: NativeAddon): KernelConfig[] {
  const batchMatMul: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    const r = product(addon, args.backend as MathBackendCPU, a, b, transposeA, transposeB);
    count(BatchMatMul, r !== undefined);
    return r ? r.info : cpuKernel(BatchMatMul)(args);
  };

  const fusedMatMul: KernelFunc = (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as _FusedMatMulAttrs;
    const backend = args.backend as MathBackendCPU;
    const act = activate(activation, leakyreluAlpha);
    const biasValues = bias && bias.dtype === 'float32' ? values(backend, bias) : undefined;
    const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
    const biasOk = !bias || (biasValues !== undefined && plan !== undefined && (biasValues.length === 1 || biasValues.length === plan.n) && bias.shape.length <= 1 + plan.outShape.length);
    if (!act || preluActivationWeights || !biasOk) {
      count(_FusedMatMul, false);
      return cpuKernel(_FusedMatMul)(args);
    }
    const r = product(addon, backend, a, b, transposeA, transposeB);
    if (!r) {
      count(_FusedMatMul, false);
      return cpuKernel(_FusedMatMul)(args);
    }
    count(_FusedMatMul, true);
    const { out, plan: p } = r;
    if (biasValues) {
      if (biasValues.length === 1) for (let i = 0; i < out.length; i++) out[i] += biasValues[0];
      else for (let i = 0; i < out.length; i += p.n) for (let j = 0; j < p.n; j++) out[i + j] += biasValues[j];
    }
    act(out);
    return r.info;
  };

  return [
    { kernelName: BatchMatMul, backendName: NATIVE, kernelFunc: batchMatMul },
    { kernelName: _FusedMatMul, backendName: NATIVE, kernelFunc: fusedMatMul },
  ];
}

/** In-place activations of _FusedMatMul; undefined for those left to the cpu kernel. */
function activate(name: NamedAttrMap[string] | undefined, alpha: number | undefined): ((x: Float32Array) => void) | undefined {
  switch (name ?? 'linear') {
    case 'linear':
      return () => {};
    case 'relu':
      return (x) => {
        for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = 0;
      };
    case 'relu6':
      return (x) => {
        for (let i = 0; i < x.length; i++) x[i] = x[i] < 0 ? 0 : x[i] > 6 ? 6 : x[i];
      };
    case 'leakyrelu': {
      const s = alpha ?? 0.2;
      return (x) => {
        for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] *= s;
      };
    }
    case 'sigmoid':
      return (x) => {
        for (let i = 0; i < x.length; i++) x[i] = 1 / (1 + Math.exp(-x[i]));
      };
    case 'elu':
      return (x) => {
        for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = Math.exp(x[i]) - 1;
      };
    default:
      return undefined;
  }
}
