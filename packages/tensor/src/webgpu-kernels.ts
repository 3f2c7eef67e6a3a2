/**
 * The engine's fused kernels on the webgpu backend, as WGSL programs: the same kernel names and
 * contracts as the native ones (packages/native/src/kernels.ts), so the engine and the optimizers
 * take them without knowing the backend.
 *
 * - RUN_MOMENTS { x: [C, ...] } -> [mean, deviations]: the across-run mean per element (one pass
 *   over x, each thread walking the run axis), then each run's squared deviation from it (a
 *   workgroup per run and span of elements, tree-reduced in workgroup memory, then one sum per run).
 *   tfjs's composite (mean over axis 0, squared difference, sum) transposes x first and writes two
 *   full-size temporaries.
 * - AXPY { x, y } -> x + alpha y: the SGD update in one pass instead of two.
 * - ADAMW { w, g, m, v } -> [w', m', v']: three passes instead of about twelve; the gradient is
 *   clipped per group of `groups` equal leading slices (per replica when stacked), from one
 *   sum-of-squares pass.
 *
 * Each program is one output (the tfjs WebGPU backend binds one); intermediates are freed here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { ADAMW, AXPY, RUN_MOMENTS } from '@sgd-lab/native';

/** The parts of tfjs's WebGPUProgram these programs fill in (the backend adds bindings and uniforms). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms?: string;
  getUserCode(): string;
}
/** One uniform each (an entry with several values is a vector, aligned as one). */
type Uniform = { type: 'int32' | 'float32'; data: number[] };
interface WebGpuBackend {
  runWebGPUProgram(program: Program, inputs: TensorInfo[], dtype: 'float32', uniforms?: Uniform[]): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

const WG = 256;
/** Elements one workgroup reduces in the deviation pass: 8 per thread. */
const SPAN = WG * 8;

/** A flat program over `n` outputs, one thread each (tfjs reshapes a dispatch beyond 65,535). */
function flat(key: string, n: number, inputs: string[], uniforms: string, body: string): Program {
  return {
    outputShape: [n],
    shaderKey: `sgdlab_${key}`,
    dispatchLayout: { x: [0] },
    dispatch: [Math.ceil(n / WG), 1, 1],
    variableNames: inputs,
    workgroupSize: [WG, 1, 1],
    size: true,
    uniforms,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${body}
        }
      }`,
  };
}

/**
 * Sums of (x - mean)^2 (or of x^2 without `mean`) over spans of SPAN elements of each of `groups`
 * equal slices: [groups * parts] partial sums, one workgroup each.
 */
function partialSquares(groups: number, elems: number, centred: boolean): Program {
  const parts = Math.ceil(elems / SPAN);
  const term = centred ? 'x[base + e] - mean[e]' : 'x[base + e]';
  return {
    outputShape: [groups * parts],
    shaderKey: `sgdlab_partial_squares_${centred}`,
    dispatchLayout: { x: [0] },
    // One workgroup per output: the flat index is workgroup * WG + local index.
    dispatch: [groups * parts, 1, 1],
    variableNames: centred ? ['x', 'mean'] : ['x'],
    workgroupSize: [WG, 1, 1],
    size: true,
    uniforms: 'elems : i32, parts : i32,',
    getUserCode: () => `
      var<workgroup> acc : array<f32, ${WG}>;
      fn main(index : i32) {
        let slot = index / ${WG};
        var s = 0.0;
        if (slot < uniforms.size) {
          let grp = slot / uniforms.parts;
          let start = (slot - grp * uniforms.parts) * ${SPAN};
          let stop = min(start + ${SPAN}, uniforms.elems);
          let base = grp * uniforms.elems;
          for (var e = start + i32(localId.x); e < stop; e = e + ${WG}) {
            let d = ${term};
            s = s + d * d;
          }
        }
        acc[localId.x] = s;
        workgroupBarrier();
        for (var width = ${WG / 2}u; width > 0u; width = width / 2u) {
          if (localId.x < width) {
            acc[localId.x] = acc[localId.x] + acc[localId.x + width];
          }
          workgroupBarrier();
        }
        if (localId.x == 0u && slot < uniforms.size) {
          setOutputAtIndex(slot, acc[0]);
        }
      }`,
  };
}

/** [groups] sums of squares (centred on `mean` when given) of x viewed as [groups, elems]. */
function groupSquares(backend: WebGpuBackend, x: TensorInfo, groups: number, mean?: TensorInfo): TensorInfo {
  const elems = tf.util.sizeFromShape(x.shape) / groups;
  const parts = Math.ceil(elems / SPAN);
  const partial = backend.runWebGPUProgram(partialSquares(groups, elems, mean !== undefined), mean ? [x, mean] : [x], 'float32', [
    { type: 'int32', data: [elems] },
    { type: 'int32', data: [parts] },
  ]);
  if (parts === 1) return partial;
  const sum = backend.runWebGPUProgram(
    flat('row_sum', groups, ['p'], 'parts : i32,', `
          var s = 0.0;
          for (var j = 0; j < uniforms.parts; j = j + 1) { s = s + p[index * uniforms.parts + j]; }
          setOutputAtIndex(index, s);`),
    [partial],
    'float32',
    [{ type: 'int32', data: [parts] }],
  );
  backend.disposeData(partial.dataId);
  return sum;
}

const runMoments: KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: TensorInfo };
  const gpu = backend as unknown as WebGpuBackend;
  const runs = x.shape[0];
  const elems = tf.util.sizeFromShape(x.shape.slice(1));
  const meanFlat = gpu.runWebGPUProgram(
    flat('run_mean', elems, ['x'], 'runs : i32,', `
          var s = 0.0;
          for (var c = 0; c < uniforms.runs; c = c + 1) { s = s + x[c * uniforms.size + index]; }
          setOutputAtIndex(index, s / f32(uniforms.runs));`),
    [x],
    'float32',
    [{ type: 'int32', data: [runs] }],
  );
  const dev = groupSquares(gpu, x, runs, meanFlat);
  // The mean in x's trailing shape: the same buffer under another shape.
  const mean = { ...meanFlat, shape: x.shape.slice(1) };
  return [mean, dev];
};

const axpy: KernelFunc = ({ inputs, attrs, backend }) => {
  const { x, y } = inputs as { x: TensorInfo; y: TensorInfo };
  const { alpha } = attrs as unknown as { alpha: number };
  const n = tf.util.sizeFromShape(x.shape);
  const out = (backend as unknown as WebGpuBackend).runWebGPUProgram(flat('axpy', n, ['x', 'y'], 'alpha : f32,', 'setOutputAtIndex(index, x[index] + uniforms.alpha * y[index]);'), [x, y], 'float32', [
    { type: 'float32', data: [alpha] },
  ]);
  return { ...out, shape: x.shape };
};

/**
 * AdamW: attrs as native's ADAMW, plus `groups` (default 1): the clipping norm is taken per group of
 * size/groups consecutive elements (per replica for a stacked [C, m, n] block).
 */
const adamw: KernelFunc = ({ inputs, attrs, backend }) => {
  const { w, g, m, v } = inputs as { w: TensorInfo; g: TensorInfo; m: TensorInfo; v: TensorInfo };
  const a = attrs as unknown as { lr: number; beta1: number; beta2: number; epsilon: number; c1: number; c2: number; decay: number; clip: number; groups?: number };
  const gpu = backend as unknown as WebGpuBackend;
  const n = tf.util.sizeFromShape(w.shape);
  const groups = a.groups ?? 1;
  if (n % groups !== 0) throw new Error(`${ADAMW}: ${groups} clipping groups do not divide ${n} elements`);
  const clip = a.clip > 0;
  // The scaled gradient, inline: g * min(1, clip / (||g_group|| + 1e-30)).
  const ss = clip ? groupSquares(gpu, g, groups) : undefined;
  const gi = clip ? 'g[index] * min(1.0, uniforms.clip / (sqrt(ss[index / uniforms.groupSize]) + 1e-30))' : 'g[index]';
  const names = (extra: string[]) => [...extra, ...(clip ? ['ss'] : [])];
  const common: Uniform[] = [
    { type: 'float32', data: [a.clip] },
    { type: 'int32', data: [n / groups] },
  ];
  const withSs = (xs: TensorInfo[]) => (ss ? [...xs, ss] : xs);
  const header = 'clip : f32, groupSize : i32,';
  // 1 - beta in float64 then rounded, as native: in float32, 1 - f32(0.999) is off by 1.3e-5.
  const m1 = gpu.runWebGPUProgram(
    flat(`adamw_m_${clip}`, n, names(['g', 'm']), header + ' beta : f32, rest : f32,', `let gi = ${gi}; setOutputAtIndex(index, uniforms.beta * m[index] + uniforms.rest * gi);`),
    withSs([g, m]),
    'float32',
    [...common, { type: 'float32', data: [a.beta1] }, { type: 'float32', data: [1 - a.beta1] }],
  );
  const v1 = gpu.runWebGPUProgram(
    flat(`adamw_v_${clip}`, n, names(['g', 'v']), header + ' beta : f32, rest : f32,', `let gi = ${gi}; setOutputAtIndex(index, uniforms.beta * v[index] + uniforms.rest * gi * gi);`),
    withSs([g, v]),
    'float32',
    [...common, { type: 'float32', data: [a.beta2] }, { type: 'float32', data: [1 - a.beta2] }],
  );
  if (ss) gpu.disposeData(ss.dataId);
  const w1 = gpu.runWebGPUProgram(
    flat('adamw_w', n, ['w', 'm', 'v'], 'keep : f32, lr : f32, c1 : f32, c2 : f32, eps : f32,', `
          let stepDir = (m[index] / uniforms.c1) / (sqrt(v[index] / uniforms.c2) + uniforms.eps);
          setOutputAtIndex(index, w[index] * uniforms.keep - uniforms.lr * stepDir);`),
    [w, m1, v1],
    'float32',
    [1 - a.lr * a.decay, a.lr, a.c1, a.c2, a.epsilon].map((x) => ({ type: 'float32', data: [x] })),
  );
  return [w1, m1, v1].map((t) => ({ ...t, shape: w.shape }));
};

const KERNELS: KernelConfig[] = [
  { kernelName: RUN_MOMENTS, backendName: 'webgpu', kernelFunc: runMoments },
  { kernelName: AXPY, backendName: 'webgpu', kernelFunc: axpy },
  { kernelName: ADAMW, backendName: 'webgpu', kernelFunc: adamw },
];

/** Whether the engine's fused kernels are registered for webgpu now. */
export function webGpuKernelsOn(): boolean {
  return tf.getKernel(RUN_MOMENTS, 'webgpu') !== undefined;
}

/**
 * Registers (or removes) the WGSL kernels for the webgpu backend. `installWebGpu` registers them
 * unless SGD_LAB_WEBGPU_KERNELS=0, so a run can measure what they bring.
 */
export function useWebGpuKernels(on: boolean): void {
  if (on === webGpuKernelsOn()) return;
  for (const k of KERNELS) {
    if (on) tf.registerKernel(k);
    else tf.unregisterKernel(k.kernelName, k.backendName);
  }
}
