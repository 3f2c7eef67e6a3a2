/** @sgd-lab/tensor: the replica-batched tensor engine shared by tensor-based settings. */
export * from './backends.js';
export * from './program.js';
export * from './engine.js';
export * from './optimizers.js';
export * from './reads.js';
export * from './webgpu.js';
export * from './webgpu-kernels.js';
export * from './webgpu-agreement.js';
/** The native addon's fused deep-linear step and the run-block moments it fuses (registered on `native` only; plugin-deeplinear uses them). */
export { DEEP_LINEAR_STEP, RUN_BLOCK_MOMENTS } from '@sgd-lab/native';
/** The native addon's fused MLP step (registered on `native` only; plugin-mnist uses it). */
export { MLP_STEP } from '@sgd-lab/native';
/** The native addon's fused transformer pieces (registered on `native` only; plugin-xlnet uses them). */
export { SCATTER_ADD_ROWS, BIAS_GELU, BIAS_GELU_GRAD, ADD_LAYER_NORM, LAYER_NORM_GRAD, REL_ATTENTION_BLOCK, REL_ATTENTION_BLOCK_GRAD } from '@sgd-lab/native';
