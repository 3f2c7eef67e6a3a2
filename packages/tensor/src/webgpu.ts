/**
 * The WebGPU backend: TensorFlow.js's WebGPU backend over Dawn's Node binding (the `webgpu` npm
 * package, whose prebuilt `dawn.node` ships inside it). Both packages are optional dependencies,
 * loaded by name. The adapter is chosen here, before the tfjs backend asks for one:
 *
 * 1. a hardware adapter, high-performance first (Vulkan on Linux, Metal on macOS, D3D12 on Windows);
 * 2. else Dawn's OpenGL ES backend in compatibility mode, which on a machine without a GPU is
 *    Mesa's llvmpipe (Debian: libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri), with
 *    `EGL_PLATFORM=surfaceless` so that no display is needed. It is a software rasterizer: correct
 *    and slow (about 2 GFLOP/s), for tests; `auto` never picks it over `native`.
 */
import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useWebGpuKernels } from './webgpu-kernels.js';

const require = createRequire(import.meta.url);

/** The two packages the backend needs. */
export const WEBGPU_PACKAGES = ['webgpu', '@tensorflow/tfjs-backend-webgpu'] as const;

/** What the manifest and the log say about the adapter. */
export interface GpuAdapterInfo {
  /** e.g. "NVIDIA H200" or "llvmpipe-llvm-15-0-6-256-bits-". */
  device: string;
  description: string;
  vendor: string;
  architecture: string;
  /** The Dawn backend: `default` (Vulkan, Metal, D3D12: whichever the platform has) or `opengles`. */
  dawnBackend: 'default' | 'opengles';
  featureLevel: 'core' | 'compatibility';
  /** A software rasterizer (llvmpipe, lavapipe, SwiftShader, WARP): correct, far slower than the CPU backends. */
  software: boolean;
  /** Largest storage buffer one kernel may bind (bytes): tensors above it cannot be used. */
  maxStorageBufferBindingSize: number;
}

interface WebGpuAdapter {
  readonly info: { vendor: string; architecture: string; device: string; description: string };
  readonly isFallbackAdapter?: boolean;
  readonly limits: Record<string, number>;
}
interface WebGpuModule {
  create(flags: string[]): { requestAdapter(o?: Record<string, unknown>): Promise<WebGpuAdapter | null> };
  globals: Record<string, unknown>;
}

export type WebGpuProbe = { ok: true; adapter: WebGpuAdapter; info: GpuAdapterInfo; module: WebGpuModule } | { ok: false; reason: string };

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i;

/** Whether an npm package resolves from here (optional packages are loaded by name). */
export function isInstalled(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** The missing packages, or an empty list. */
export function missingWebGpuPackages(): string[] {
  return WEBGPU_PACKAGES.filter((p) => !isInstalled(p));
}

function describe(adapter: WebGpuAdapter, dawnBackend: GpuAdapterInfo['dawnBackend'], featureLevel: GpuAdapterInfo['featureLevel']): GpuAdapterInfo {
  const { vendor, architecture, device, description } = adapter.info;
  return {
    device,
    description,
    vendor,
    architecture,
    dawnBackend,
    featureLevel,
    software: Boolean(adapter.isFallbackAdapter) || SOFTWARE.test(`${device} ${description}`),
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
  };
}

let probed: Promise<WebGpuProbe> | undefined;
/**
 * Every Dawn instance made here, alive for the whole process: an adapter does not keep its
 * instance alive, and a collected instance crashes the next event poll (a segmentation fault in
 * InstanceBase::ProcessEvents, seen after a few steps of 40 replicas on llvmpipe).
 */
const instances: unknown[] = [];

/** Finds the adapter (once per process): hardware first, then OpenGL ES (llvmpipe on CPU-only machines). */
export function probeWebGpu(): Promise<WebGpuProbe> {
  return (probed ??= probe());
}

async function probe(): Promise<WebGpuProbe> {
  const missing = missingWebGpuPackages();
  if (missing.length > 0) {
    return { ok: false, reason: `it needs ${missing.join(' and ')}, not installed here (\`npm install ${WEBGPU_PACKAGES.join(' ')}\`; both ship their binaries, no install script runs)` };
  }
  let module: WebGpuModule;
  try {
    module = (await import('webgpu')) as unknown as WebGpuModule;
  } catch (err) {
    return { ok: false, reason: `the webgpu package did not load (${(err as Error).message.split('\n')[0]}); its dawn.node has builds for linux-x64, linux-arm64, macOS and Windows` };
  }
  const tried: string[] = [];
  try {
    const gpu = module.create([]);
    instances.push(gpu);
    const hw = (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ?? (await gpu.requestAdapter());
    if (hw) return { ok: true, adapter: hw, info: describe(hw, 'default', 'core'), module };
    tried.push('no Vulkan/Metal/D3D12 adapter (on Linux: libvulkan1 and the GPU driver\'s ICD, e.g. VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json)');
  } catch (err) {
    tried.push(`the default Dawn backend failed: ${(err as Error).message.split('\n')[0]}`);
  }
  // OpenGL ES through EGL without a display; Mesa reads these when the backend starts.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'sgd-lab-xdg-'));
  try {
    const gpu = module.create(['backend=opengles']);
    instances.push(gpu);
    const gl = await gpu.requestAdapter({ featureLevel: 'compatibility' });
    if (gl) return { ok: true, adapter: gl, info: describe(gl, 'opengles', 'compatibility'), module };
    tried.push('no OpenGL ES adapter (on Debian: apt-get install libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri)');
  } catch (err) {
    tried.push(`Dawn's OpenGL ES backend failed: ${(err as Error).message.split('\n')[0]}`);
  }
  return { ok: false, reason: `no WebGPU adapter: ${tried.join('; ')}` };
}

/**
 * Makes the probed adapter the one the tfjs WebGPU backend gets, then imports that backend (it
 * registers itself only where `navigator.gpu` exists).
 */
let installed_ = false;

export async function installWebGpu(p: Extract<WebGpuProbe, { ok: true }>): Promise<void> {
  if (installed_) return;
  installed_ = true;
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(p.module.globals)) if (!(k in g)) g[k] = v;
  const gpu = { requestAdapter: async () => p.adapter, getPreferredCanvasFormat: () => 'rgba8unorm' };
  const nav = (g.navigator ?? {}) as Record<string, unknown>;
  if (g.navigator === undefined) Object.defineProperty(g, 'navigator', { value: nav, configurable: true, writable: true });
  Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  useWebGpuKernels(process.env.SGD_LAB_WEBGPU_KERNELS !== '0');
}

/** One line for the log: which device the webgpu backend runs on. */
export function describeAdapter(a: GpuAdapterInfo): string {
  return `backend webgpu on ${a.device} (${a.description}; Dawn ${a.dawnBackend}, ${a.featureLevel}, ${a.software ? 'software' : 'hardware'} adapter)`;
}

/**
 * What the GPU rejected since the last look. WebGPU reports an invalid kernel (a tensor over the
 * binding limit, say) as an uncaptured error event and the results are zeros: without this the
 * step would go on with garbage. The engine's reads look here after every read (reads.ts).
 */
const deviceErrors: string[] = [];
const watched = new WeakSet<object>();

interface WatchableDevice {
  onuncapturederror: ((e: { error?: { message?: string } }) => void) | null;
  limits?: { maxStorageBufferBindingSize?: number };
}

/** Starts collecting the active tfjs WebGPU device's errors (once per device). */
export function watchWebGpuDevice(): void {
  const device = (tf.backend() as unknown as { device?: WatchableDevice }).device;
  if (!device || watched.has(device)) return;
  watched.add(device);
  device.onuncapturederror = (e) => {
    // Kept short: one rejected kernel is followed by the invalid bind group and command buffer.
    if (deviceErrors.length < 20) deviceErrors.push(String(e.error?.message ?? e).split('\n')[0]);
  };
}

/** The errors collected since the last call, and clears them. */
export function takeWebGpuErrors(): string[] {
  return deviceErrors.splice(0, deviceErrors.length);
}

/** The error a read throws when the GPU rejected work: what it said, and what to change. */
export function webGpuRejected(errors: string[]): Error {
  const binding = errors.find((e) => /binding size/i.test(e));
  const hint = binding
    ? 'a tensor is larger than the adapter\'s maxStorageBufferBindingSize: use fewer replicas per chunk (lower memoryBudgetMiB or runBlock) or a smaller evaluation batch'
    : 'the results of this step are not valid';
  return new Error(`WebGPU rejected work of this step (${errors[0]}${errors.length > 1 ? `; ${errors.length - 1} more` : ''}): ${hint}`);
}
