export { loadAddon, ADDON_PATH, type AddonLoad, type NativeAddon } from './addon.js';
export { registerNative, setThreads, defaultThreads, type NativeInfo } from './backend.js';
export { NATIVE, ADAMW, AXPY, SQUARED_DEVIATION_SUM, RUN_MOMENTS, RUN_BLOCK_MOMENTS, DEEP_LINEAR_STEP, MLP_STEP, MUL_STEP, SCATTER_ADD_ROWS, BIAS_GELU, BIAS_GELU_GRAD, ADD_LAYER_NORM, LAYER_NORM_GRAD, REL_ATTENTION_BLOCK, REL_ATTENTION_BLOCK_GRAD, ACTIVATIONS, biasStrides, kernelCalls, planMatMul, nativeKernels, broadcastStrides } from './kernels.js';
export { ArrayPool } from './pool.js';
