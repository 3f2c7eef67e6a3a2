import { RandomStream } from '@sgd-lab/core';
import { ReplicaEngine, useBackend } from '@sgd-lab/tensor';
import { initXlnet, xlnetProgram } from '@sgd-lab/plugin-xlnet';
const size = { layers: 2, dModel: 32, heads: 4, inner: 128, length: 32, vocab: 2000 };
await useBackend('native');
const R = 16, rows = 400;
const program = xlnetProgram(size);
const strategy = process.env.SGD_LAB_STRATEGY;
const engine = new ReplicaEngine(program, { strategy, chunkSize: R, runBlock: 16 });
const state = engine.replicate(initXlnet(new RandomStream([1]), size), R);
const rng = new RandomStream([2]);
const x = new Float32Array(rows * 32), y = new Float32Array(rows * 2);
for (let i = 0; i < rows; i++) { for (let j = 0; j < 32; j++) x[i * 32 + j] = j < 8 ? 0 : 4 + Math.floor(rng.nextDouble() * 1996); y[i * 2] = 1; }
for (let r = 0; r < 3; r++) {
  const t = performance.now();
  await engine.evaluate(state, [{ data: x, shape: [rows, 32] }, { data: y, shape: [rows, 2] }], 100);
  console.log(strategy, ((performance.now() - t) / 1000).toFixed(2), 's', (process.resourceUsage().maxRSS / 1024).toFixed(0), 'MiB');
}
