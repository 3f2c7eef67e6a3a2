export { loadAddon, ADDON_PATH, type AddonLoad, type NativeAddon } from './addon.js';
export { registerNative, setThreads, defaultThreads, type NativeInfo } from './backend.js';
export { NATIVE, kernelCalls, planMatMul, nativeKernels } from './kernels.js';
