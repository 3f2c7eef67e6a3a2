/**
 * TensorFlow.js backends by name. `webgpu` (webgpu.ts) runs on a GPU through Dawn; its two
 * packages are optional dependencies, and `auto` takes it only on a hardware adapter. `wasm` and `cpu` ship their binaries inside their npm packages
 * and are always there. `native` (@sgd-lab/native) is the cpu backend with its matrix products on
 * the system's OpenBLAS; its addon is built by `npm run build` when a compiler and OpenBLAS are
 * there, and when it is not, asking for `native` says why once and uses wasm. `tensorflow` and
 * `tensorflow-gpu` (@tensorflow/tfjs-node, -gpu) download libtensorflow at install time, so they
 * are optional: loaded by name only when installed, with the install step in the error otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ConfigError, type NormalFill, type RowGather } from '@sgd-lab/core';
import { loadAddon, registerNative, type NativeInfo } from '@sgd-lab/native';
import { installWebGpu, isInstalled, missingWebGpuPackages, probeWebGpu, watchWebGpuDevice, type GpuAdapterInfo } from './webgpu.js';

export type BackendName = 'native' | 'wasm' | 'cpu' | 'tensorflow' | 'tensorflow-gpu' | 'webgpu';

/**
 * Fastest first: the order in which `auto` picks a backend. `webgpu` counts only on a hardware
 * adapter; on a software one (llvmpipe) `auto` goes on to the CPU backends.
 */
export const BACKEND_PREFERENCE: readonly BackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'native', 'wasm', 'cpu'];

const NATIVE_PACKAGES: Record<'tensorflow' | 'tensorflow-gpu', string> = {
  tensorflow: '@tensorflow/tfjs-node',
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
};

/** What was loaded, for the manifest. */
export interface BackendInfo {
  name: BackendName;
  /** The tfjs backend name (tfjs-node registers itself as "tensorflow"). */
  tfjsBackend: string;
  version: string;
  simd?: boolean;
  threads?: boolean;
  /** native: OpenBLAS threads and build line (with the core type it runs). */
  blasThreads?: number;
  blas?: string;
  /** The backend asked for, when another one runs instead, and why. */
  requested?: BackendName;
  fallback?: string;
  /** webgpu: the adapter it runs on. */
  adapter?: GpuAdapterInfo;
}

const require = createRequire(import.meta.url);

/**
 * Backends whose packages are installed here, in preference order (`webgpu` when its packages
 * are; whether it has an adapter, and a hardware one, is known only after `probeWebGpu`).
 */
export function availableBackends(): BackendName[] {
  return BACKEND_PREFERENCE.filter((b) =>
    b === 'native' ? loadAddon().ok : b === 'webgpu' ? missingWebGpuPackages().length === 0 : b === 'wasm' || b === 'cpu' || isInstalled(NATIVE_PACKAGES[b]),
  );
}

/** What `auto` runs on: the first available backend, `webgpu` only on a hardware adapter. */
export async function autoBackend(): Promise<BackendName> {
  for (const b of availableBackends()) {
    if (b !== 'webgpu') return b;
    const p = await probeWebGpu();
    if (p.ok && !p.info.software) return b;
  }
  return 'cpu';
}

let active: BackendInfo | undefined;
const warned = new Set<string>();

/**
 * Loads and activates a backend by name (`auto` or undefined: the fastest installed). Idempotent
 * for the same name; switching backends in one process is allowed (tests compare them).
 */
export async function useBackend(name: string | undefined, warn: (message: string) => void = (m) => console.warn(m)): Promise<BackendInfo> {
  const wanted = name === undefined || name === 'auto' ? await autoBackend() : name;
  if (!BACKEND_PREFERENCE.includes(wanted as BackendName)) {
    throw new ConfigError('study', [`/backend: unknown backend "${name}"; known: auto, ${BACKEND_PREFERENCE.join(', ')}`]);
  }
  if (wanted === 'native') {
    const load = loadAddon();
    if (!load.ok) {
      const message = `backend "native" is not available: ${load.reason}. Using wasm instead.`;
      if (!warned.has(message)) warn(message);
      warned.add(message);
      return { ...(await useBackend('wasm', warn)), requested: 'native', fallback: load.reason };
    }
  }
  const backend = wanted as BackendName;
  if (active?.name === backend && tf.getBackend() === active.tfjsBackend) return active;
  let tfjsBackend: string = backend;
  let nativeInfo: NativeInfo | undefined;
  let adapter: GpuAdapterInfo | undefined;
  if (backend === 'webgpu') {
    const p = await probeWebGpu();
    if (!p.ok) throw new ConfigError('study', [`/backend: "webgpu" is not available: ${p.reason}. Or use --backend native.`]);
    adapter = p.info;
    if (p.info.software) {
      const message = `backend "webgpu" runs on ${p.info.device} (${p.info.description}), a software rasterizer: correct but far slower than --backend native; use it for tests.`;
      if (!warned.has(message)) warn(message);
      warned.add(message);
    }
    await installWebGpu(p);
  } else if (backend === 'native') {
    nativeInfo = await registerNative();
  } else if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The .wasm binaries are read from the package's own dist folder inside node_modules.
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
  } else if (backend === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
  } else {
    const pkg = NATIVE_PACKAGES[backend];
    if (!isInstalled(pkg)) {
      throw new ConfigError('study', [
        `/backend: "${backend}" needs ${pkg}, which is not installed. Install it with \`npm install ${pkg}\` ` +
          '(its install script downloads libtensorflow from storage.googleapis.com, and the GPU build targets CUDA 11), ' +
          'or use --backend wasm.',
      ]);
    }
    await import(pkg);
    tfjsBackend = 'tensorflow';
  }
  const ok = await tf.setBackend(tfjsBackend);
  if (!ok) throw new ConfigError('study', [`/backend: ${backend} failed to initialise`]);
  await tf.ready();
  if (backend === 'webgpu') watchWebGpuDevice();
  const info: BackendInfo = { name: backend, tfjsBackend, version: tf.version_core };
  if (adapter) info.adapter = adapter;
  if (nativeInfo) {
    info.blasThreads = nativeInfo.threads;
    info.blas = nativeInfo.blas;
  }
  if (backend === 'wasm') {
    info.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    info.threads = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  }
  active = info;
  return info;
}

/**
 * The native addon's row copies (on its threads, SGD_LAB_THREADS) for samplers that gather
 * mini-batches from a training set, whatever the tensor backend; undefined without the addon.
 */
export function rowGather(): RowGather | undefined {
  const load = loadAddon();
  if (!load.ok) return undefined;
  const { addon } = load;
  return (src, width, rows, dst) => addon.gatherRows(src, width, rows, dst);
}

/**
 * The native addon's Gaussian draws for `PackedStreams.fillNormals` (the same bits as the
 * JavaScript streams, streams in parallel on its threads), whatever the tensor backend;
 * undefined without the addon.
 */
export function normalFill(): NormalFill | undefined {
  const load = loadAddon();
  if (!load.ok) return undefined;
  const { addon } = load;
  return (streams, out, perStream, std) => addon.fillNormals(streams.state, streams.hasSpare, streams.spare, out, perStream, std);
}

/**
 * Replicas per chunk on `backend`: `chunk` (the memory rule's, `chunkSizeFor`) capped where the
 * backend binds each tensor whole (webgpu: at most the adapter's maxStorageBufferBindingSize per
 * tensor), so that the largest stacked tensor of a chunk, `largestBytesPerReplica` per replica,
 * fits; in whole run blocks. Throws when not even one run block fits.
 */
export function chunkSizeOn(backend: Pick<BackendInfo, 'adapter'>, chunk: number, largestBytesPerReplica: number, runBlock: number): number {
  const limit = backend.adapter?.maxStorageBufferBindingSize;
  if (!limit || chunk * largestBytesPerReplica <= limit) return chunk;
  const fit = Math.floor(limit / largestBytesPerReplica);
  const capped = fit - (fit % runBlock);
  if (capped < 1) {
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new ConfigError('study', [
      `/runBlock: a run block of ${runBlock} replicas needs tensors of ${mib(runBlock * largestBytesPerReplica)}, over this WebGPU adapter's largest binding (${mib(limit)}); use a smaller runBlock`,
    ]);
  }
  return capped;
}
