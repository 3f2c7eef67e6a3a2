/**
 * The WebGPU backend on this machine's adapter: on CI and the 2-core machines that is Mesa's
 * llvmpipe through Dawn's OpenGL ES backend (.ci/run installs the Mesa packages), a software
 * adapter, which `auto` must never pick over the CPU backends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { isPending } from '@sgd-lab/core';
import { autoBackend, availableBackends, chunkSizeOn, useBackend } from './backends.js';
import { readAll } from './reads.js';
import { probeWebGpu, type GpuAdapterInfo } from './webgpu.js';
import { useWebGpuKernels, webGpuKernelsOn } from './webgpu-kernels.js';
import { kernelAgreement } from './webgpu-agreement.js';
import { engineAdam } from './optimizers.js';
import { ReplicaEngine } from './engine.js';
import { ADAMW, AXPY, RUN_MOMENTS } from '@sgd-lab/native';



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

  /** The WGSL kernels (webgpu-kernels.ts) and the checks the device kit runs on a GPU (webgpu-agreement.ts). */
  describe('WGSL kernels', () => {
    it('are registered by the backend and can be switched off to measure what they bring', async () => {
      await useBackend('webgpu', () => {});
      expect(webGpuKernelsOn()).toBe(true);
      for (const k of [RUN_MOMENTS, AXPY, ADAMW]) expect(tf.getKernel(k, 'webgpu')).toBeDefined();
      useWebGpuKernels(false);
      expect(tf.getKernel(RUN_MOMENTS, 'webgpu')).toBeUndefined();
      useWebGpuKernels(true);
      expect(webGpuKernelsOn()).toBe(true);
    });

    it('agree with float64 references within float32 error bounds, element by element', async () => {
      await useBackend('webgpu', () => {});
      const checks = await kernelAgreement();
      expect(checks.length).toBeGreaterThanOrEqual(12);
      for (const c of checks) expect(c, c.name).toMatchObject({ ok: true });
      // Not vacuous: the clipped AdamW and the reductions carry real rounding.
      expect(Math.max(...checks.map((c) => c.maxAbsError))).toBeGreaterThan(0);
    });

    it('a wrong kernel fails the check (the bounds are tight enough to see a one-ulp-per-term slip)', async () => {
      await useBackend('webgpu', () => {});
      // AXPY registered with alpha rounded the wrong way: relative error 1e-4, far over 3 u.
      const good = tf.getKernel(AXPY, 'webgpu')!;
      tf.unregisterKernel(AXPY, 'webgpu');
      tf.registerKernel({ ...good, kernelFunc: (args) => good.kernelFunc({ ...args, attrs: { ...args.attrs, alpha: (args.attrs!.alpha as number) * (1 + 1e-4) } }) });
      try {
        const axpy = (await kernelAgreement()).find((c) => c.name.startsWith('AXPY'))!;
        expect(axpy.ok).toBe(false);
        expect(axpy.worstOverBound).toBeGreaterThan(10);
      } finally {
        tf.unregisterKernel(AXPY, 'webgpu');
        tf.registerKernel(good);
      }
    });

    it('RUN_MOMENTS leaves only its two results on the device (partial sums freed)', async () => {
      await useBackend('webgpu', () => {});
      const x = tf.randomNormal([50, 97, 301], 0, 1, 'float32', 1);
      const before = tf.memory();
      const out = tf.engine().runKernel(RUN_MOMENTS, { x }, {}) as tf.Tensor[];
      expect(out.map((t) => t.shape)).toEqual([[97, 301], [50]]);
      expect(tf.memory().numTensors).toBe(before.numTensors + 2);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers + 2);
      tf.dispose([x, ...out]);
    });

    it('the engine and Adam take them: one SGD step and one clipped AdamW step match the composite path', async () => {
      await useBackend('webgpu', () => {});
      const program = {
        blocks: [{ name: 'W', shape: [3, 4] as [number, number] }],
        step(params: tf.Tensor[], [x]: tf.Tensor[]) {
          const g = tf.mul(tf.sum(x), params[0]);
          return { grads: [g], loss: tf.sum(tf.square(params[0]), [1, 2]) };
        },
      };
      const theta0 = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
      const runs = 8;
      const x = Float32Array.from({ length: runs * 2 }, (_, i) => 0.1 * (i % 5) - 0.2);
      const once = async (kernels: boolean) => {
        useWebGpuKernels(kernels);
        const engine = new ReplicaEngine(program, { strategy: 'stacked', chunkSize: runs, runBlock: 4 });
        const state = engine.replicate(theta0, runs);
        const adam = engineAdam(engine, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, clipNorm: 0.5 });
        const report = await engine.gradients(state, [{ data: x, shape: [1, 2] }], false);
        engine.sgd(state, 0.1);
        await engine.gradients(state, [{ data: x, shape: [1, 2] }], false);
        adam.step(state, 0.01);
        const params = await engine.readParams(state);
        adam.dispose();
        engine.dispose(state);
        return { report, params };
      };
      const fused = await once(true);
      const composite = await once(false);
      useWebGpuKernels(true);
      const blocks = (r: typeof fused.report) => r.stochastic.all.map((b) => [b.n, b.m2, b.m4, b.meanSq]);
      blocks(fused.report).forEach((b, j) => b.forEach((v, i) => expect(Math.abs(v - blocks(composite.report)[j][i])).toBeLessThanOrEqual(1e-5 * Math.abs(v) + 1e-12)));
      fused.params.forEach((p, r) => p.forEach((v, i) => expect(Math.abs(v - composite.params[r][i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(v)))));
    });
  });

  describe('the binding limit', () => {
    const adapter = (limit: number) => ({ adapter: { maxStorageBufferBindingSize: limit } as GpuAdapterInfo });

    it('caps chunks so that the largest stacked tensor fits, in whole run blocks, and says when one block does not', () => {
      // MNIST's paper widths: the largest tensor per replica is an evaluation call, 1,000 x 1,024 floats.
      const perReplica = 4 * 1000 * 1024;
      expect(chunkSizeOn(adapter(2 ** 27), 50, perReplica, 16)).toBe(32);
      expect(chunkSizeOn(adapter(2 ** 27), 50, perReplica, 10)).toBe(30);
      expect(chunkSizeOn(adapter(2 ** 31), 50, perReplica, 16)).toBe(50);
      // No adapter (the CPU backends): the memory rule alone.
      expect(chunkSizeOn({}, 50, perReplica, 16)).toBe(50);
      expect(() => chunkSizeOn(adapter(2 ** 24), 50, perReplica, 16)).toThrow(/runBlock: a run block of 16 replicas needs tensors of 62\.5 MiB, over this WebGPU adapter's largest binding \(16\.0 MiB\)/);
    });

    it('a kernel the GPU rejects fails the read with what it said, instead of giving zeros', async (ctx) => {
      const info = await useBackend('webgpu', () => {});
      const limit = info.adapter!.maxStorageBufferBindingSize;
      if (limit > 2 ** 29) ctx.skip(); // a hardware adapter's limit: too large to exceed in a test
      const big = tf.ones([Math.ceil(limit / 4 / 1e6) + 1, 1000, 1000]);
      const sum = tf.add(big, 1);
      const read = readAll([tf.slice(sum, [0, 0, 0], [1, 1, 4])], 'async');
      await expect(read).rejects.toThrow(/WebGPU rejected work of this step \(Binding size \(\d+\).*maxStorageBufferBindingSize: use fewer replicas per chunk/);
      tf.dispose([big, sum]);
      // The next step reads cleanly: the errors were taken.
      expect(Array.from(await readAll([tf.ones([2])], 'async').then((v) => v[0]))).toEqual([1, 1]);
    });
  });
});
