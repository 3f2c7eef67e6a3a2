import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@sgd-lab/core';
import { availableBackends, useBackend } from './backends.js';

describe('backends', () => {
  it('always has wasm and cpu, wasm with SIMD', async () => {
    expect(availableBackends()).toEqual(expect.arrayContaining(['wasm', 'cpu']));
    const info = await useBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.simd).toBe(true);
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    expect(Array.from(tf.matMul(x, x).dataSync())).toEqual([7, 10, 15, 22]);
    await useBackend('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('explains how to install a native backend that is absent', async () => {
    if (availableBackends().includes('tensorflow')) return;
    await expect(useBackend('tensorflow')).rejects.toThrow(ConfigError);
    await expect(useBackend('tensorflow')).rejects.toThrow(/needs @tensorflow\/tfjs-node, which is not installed\. Install it with `npm install @tensorflow\/tfjs-node`/);
  });

  it('rejects unknown names, listing the known ones', async () => {
    await expect(useBackend('webgpu')).rejects.toThrow(/unknown backend "webgpu"; known: auto, tensorflow-gpu, tensorflow, wasm, cpu/);
  });
});
