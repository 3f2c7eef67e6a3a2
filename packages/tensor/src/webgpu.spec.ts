/**
 * The WebGPU backend on this machine's adapter: on CI and the 2-core machines that is Mesa's
 * llvmpipe through Dawn's OpenGL ES backend (.ci/run installs the Mesa packages), a software
 * adapter, which `auto` must never pick over the CPU backends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { isPending } from '@sgd-lab/core';
import { autoBackend, availableBackends, useBackend } from './backends.js';
import { readAll } from './reads.js';
import { probeWebGpu } from './webgpu.js';

describe('webgpu backend', () => {
  it('finds an adapter, says which, and flags a software one', async () => {
    const p = await probeWebGpu();
    expect(p.ok, p.ok ? '' : p.reason).toBe(true);
    if (!p.ok) return;
    expect(p.info.device.length).toBeGreaterThan(0);
    expect(p.info.maxStorageBufferBindingSize).toBeGreaterThan(0);
    if (/llvmpipe/.test(p.info.device)) expect(p.info).toMatchObject({ software: true, dawnBackend: 'opengles', featureLevel: 'compatibility' });
  });

  it('is listed, recorded with its adapter, and never picked by auto on a software adapter', async () => {
    expect(availableBackends()).toContain('webgpu');
    const warnings: string[] = [];
    const info = await useBackend('webgpu', (m) => warnings.push(m));
    expect(info.tfjsBackend).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    const p = await probeWebGpu();
    expect(info.adapter).toEqual(p.ok ? p.info : undefined);
    if (info.adapter?.software) {
      expect(warnings.join('\n')).toMatch(/software rasterizer/);
      expect(await autoBackend()).not.toBe('webgpu');
    } else expect(await autoBackend()).toBe('webgpu');
  });

  it('reads asynchronously, all tensors of a step in one read, with the values a sync backend gives', async () => {
    await useBackend('webgpu', () => {});
    const make = () => [tf.tensor1d([1, 2, 3]), tf.tensor2d([[4, 5], [6, 7]]), tf.scalar(8)];
    const before = tf.memory().numTensors;
    const pending = readAll(make(), 'async');
    expect(isPending(pending)).toBe(true);
    const values = await pending;
    expect(values.map((v) => Array.from(v))).toEqual([[1, 2, 3], [4, 5, 6, 7], [8]]);
    // What was read is disposed, the joined buffer too.
    expect(tf.memory().numTensors).toBe(before);
    // The sync path on the webgpu backend is the one Node cannot take (OffscreenCanvas), for a
    // result computed on the device (tiny ones are computed on the CPU side and would read).
    const t = tf.matMul(tf.ones([32, 32]), tf.ones([32, 32]));
    expect(() => t.dataSync()).toThrow(/OffscreenCanvas/);
    t.dispose();
  });
});
