import * as tf from '@tensorflow/tfjs-core';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, PackedStreams } from '@sgd-lab/core';
import { loadAddon } from '@sgd-lab/native';
import { autoBackend, availableBackends, normalFill, rowGather, useBackend } from './backends.js';

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

  it('runs native when its addon is built (the test setup builds it; SGD_LAB_NATIVE=0 opts out)', async () => {
    if (process.env.SGD_LAB_NATIVE === '0') return;
    // webgpu comes first in the list, but auto takes it only on a hardware adapter (this machine has llvmpipe at most).
    expect(availableBackends().filter((b) => b !== 'webgpu')[0]).toBe('native');
    expect(await autoBackend()).toBe('native');
    const info = await useBackend('native');
    expect(tf.getBackend()).toBe('native');
    expect(info.fallback).toBeUndefined();
    expect(info.blasThreads).toBeGreaterThanOrEqual(1);
    expect(info.blas).toMatch(/OpenBLAS/);
    const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    expect(Array.from(tf.matMul(x, x, false, true).dataSync())).toEqual([5, 11, 11, 25, 61, 83, 83, 113]);
  });

  it('gathers rows with the addon when it is built, as a copy per row would, and names a bad row', () => {
    const gather = rowGather();
    if (process.env.SGD_LAB_NATIVE === '0') {
      expect(gather).toBeUndefined();
      return;
    }
    expect(gather).toBeDefined();
    const width = 50;
    const src = Float32Array.from({ length: 300 * width }, (_, i) => Math.sin(i));
    const rows = Int32Array.from({ length: 1000 }, (_, i) => (i * 7919) % 300);
    const dst = new Float32Array(rows.length * width);
    gather!(src, width, rows, dst);
    for (let i = 0; i < rows.length; i++) expect(dst.subarray(i * width, (i + 1) * width)).toEqual(src.subarray(rows[i] * width, (rows[i] + 1) * width));
    expect(() => gather!(src, width, Int32Array.from([3, 300]), dst)).toThrow(/row 300 is outside the table's 300 rows/);
    expect(() => gather!(src, width, rows, new Float32Array(10))).toThrow(/dst is too short/);
  });

  it('draws Gaussian batches in the addon with the bits of the JavaScript streams, spares carried, and checks its arrays', () => {
    const fill = normalFill();
    if (process.env.SGD_LAB_NATIVE === '0') {
      expect(fill).toBeUndefined();
      return;
    }
    expect(fill).toBeDefined();
    // Enough streams and deviates for the addon's threads to split them; odd counts leave spares.
    const keys = Array.from({ length: 67 }, (_, r) => [2026, 2, 0, 64, r]);
    const inAddon = new PackedStreams(keys);
    const inJs = new PackedStreams(keys);
    for (const perStream of [4097, 1, 64 * 64, 3]) {
      const a = inAddon.fillNormals(new Float32Array(keys.length * perStream), perStream, 0.75, fill);
      const b = inJs.fillNormals(new Float32Array(keys.length * perStream), perStream, 0.75);
      let mismatches = 0;
      for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) mismatches++;
      expect(mismatches).toBe(0);
    }
    expect(Array.from(inAddon.state)).toEqual(Array.from(inJs.state));
    expect(Array.from(inAddon.hasSpare)).toEqual(Array.from(inJs.hasSpare));
    const addon = loadAddon();
    if (!addon.ok) throw new Error(addon.reason);
    // The lanes hand their rare cases (log's short series, arguments within 2^-20 of a multiple
    // of pi / 2, ...: a few per million pairs) to the scalar code: 2 million pairs meet some, and
    // still give the JavaScript bits.
    const many = Array.from({ length: 64 }, (_, r) => [7, 2, 1, 32, r]);
    const lanes = new PackedStreams(many);
    const scalar = new PackedStreams(many);
    const drawn = new Float32Array(64 * 65536);
    const scalarPairs = addon.addon.fillNormals(lanes.state, lanes.hasSpare, lanes.spare, drawn, 65536, 1);
    const expected = scalar.fillNormals(new Float32Array(drawn.length), 65536, 1);
    let differ = 0;
    for (let i = 0; i < drawn.length; i++) if (!Object.is(drawn[i], expected[i])) differ++;
    expect(differ).toBe(0);
    expect(scalarPairs).toBeGreaterThan(0);
    expect(Array.from(lanes.state)).toEqual(Array.from(scalar.state));
    expect(() => addon.addon.fillNormals(new Uint32Array(5), new Uint8Array(2), new Float64Array(2), new Float32Array(4), 1, 1)).toThrow(/4 words per stream/);
    expect(() => addon.addon.fillNormals(new Uint32Array(8), new Uint8Array(2), new Float64Array(2), new Float32Array(3), 2, 1)).toThrow(/out is too short/);
    expect(() => addon.addon.fillNormals(new Uint32Array(8), new Uint8Array(1), new Float64Array(2), new Float32Array(4), 2, 1)).toThrow(/one entry per stream/);
  });

  it('without the addon, says once why native is unavailable and uses wasm', async () => {
    const script = [
      `const { useBackend, availableBackends } = await import(${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'index.js'))});`,
      "const a = await useBackend('native'); const b = await useBackend('native');",
      "console.log(JSON.stringify({ a, b, available: availableBackends() }));",
    ].join('\n');
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, SGD_LAB_NATIVE: '0' } });
    const { a, b, available } = JSON.parse(stdout);
    expect(available).not.toContain('native');
    for (const info of [a, b]) expect(info).toMatchObject({ name: 'wasm', tfjsBackend: 'wasm', requested: 'native', fallback: 'disabled by SGD_LAB_NATIVE=0' });
    expect(stderr.match(/backend "native" is not available: disabled by SGD_LAB_NATIVE=0\. Using wasm instead\./g)).toHaveLength(1);
  });

  it('rejects unknown names, listing the known ones', async () => {
    await expect(useBackend('opencl')).rejects.toThrow(/unknown backend "opencl"; known: auto, tensorflow-gpu, webgpu, tensorflow, native, wasm, cpu/);
  });
});
