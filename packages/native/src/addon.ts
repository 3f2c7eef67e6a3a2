/**
 * Loads the compiled addon (build/Release/sgd_native.node). When it is absent or cannot load, the
 * reason says what to install: the build step records why it could not build in build/status.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; every array is a Float32Array view, used in place. */
export interface NativeAddon {
  /**
   * For i < batch: C_i = alpha op(A_i) op(B_i) + beta C_i (row-major; op(A_i) is m x k, op(B_i)
   * k x n; A_i starts at i * strideA, a stride of 0 broadcasts one matrix).
   */
  gemmBatched(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    beta: number,
  ): void;
  setThreads(threads: number): void;
  getThreads(): number;
  getProcs(): number;
  /** OpenBLAS's build line, including the core type its kernels were picked for. */
  getConfig(): string;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ADDON_PATH = join(root, 'build', 'Release', 'sgd_native.node');
const INSTALL_HINT = 'install a C++ compiler and OpenBLAS (Debian/Ubuntu: apt-get install g++ make python3 libopenblas-dev), then run `npm run build`';

let cached: AddonLoad | undefined;

/** The addon, or why it is not available (the result is cached). */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  if (process.env.SGD_LAB_NATIVE === '0') return (cached = { ok: false, reason: 'disabled by SGD_LAB_NATIVE=0' });
  if (!existsSync(ADDON_PATH)) {
    const statusFile = join(root, 'build', 'status.json');
    let why = 'it was not built';
    if (existsSync(statusFile)) {
      try {
        why = `its build failed: ${(JSON.parse(readFileSync(statusFile, 'utf8')) as { reason: string }).reason}`;
      } catch {
        why = `its build status ${statusFile} is unreadable`;
      }
    }
    return (cached = { ok: false, reason: `the native addon ${ADDON_PATH} is missing (${why}); ${INSTALL_HINT}` });
  }
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
    return (cached = { ok: true, addon, path: ADDON_PATH });
  } catch (e) {
    return (cached = { ok: false, reason: `the native addon ${ADDON_PATH} does not load (${(e as Error).message}); ${INSTALL_HINT}` });
  }
}
