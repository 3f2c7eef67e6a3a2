/**
 * The replica engine: holds the parameters of R runs on the backend, runs a ReplicaProgram over
 * them in chunks that fit a memory budget, reduces gradients across runs on the backend (only the
 * across-run mean and one scalar per run are read back), and applies SGD.
 *
 * Two kernel strategies, chosen per backend without the program knowing:
 * - `per-replica`: each replica's blocks are 2-D tensors and every product is a 2-D matMul. On the
 *   wasm backend that is XNNPACK's fast path (about 20-30 GFLOP/s here), where rank-3 matMul and
 *   transpose flags fall back to about 2 GFLOP/s.
 * - `stacked`: a chunk's blocks are [C, m, n] tensors with the run axis leading and products are
 *   batched matMuls: one op per product, for backends with a real BatchMatMul kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { blockStatsFromDeviations, chunkSizeFor, andThen, type BlockMoments, type GradientReport, type MaybePromise, type NextStep, type RunBlockStats } from '@sgd-lab/core';
import { AXPY, RUN_BLOCK_MOMENTS, RUN_MOMENTS, SQUARED_DEVIATION_SUM } from '@sgd-lab/native';
import type { ReplicaInput, ReplicaProgram, RunBlockMoments, StepInput, StepOutput } from './program.js';
import { readAll, readModeFor, type ReadMode } from './reads.js';

/** Whether the active backend registers a kernel (the fused ones exist on `native` only). */
function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

export type KernelStrategy = 'per-replica' | 'stacked';

/** The strategy that is fastest on a tfjs backend. */
export function strategyFor(tfjsBackend: string): KernelStrategy {
  // native: the cpu backend with OpenBLAS BatchMatMul, so stacked products are one call each.
  return tfjsBackend === 'wasm' || tfjsBackend === 'cpu' ? 'per-replica' : 'stacked';
}

/** Parameters of R replicas: chunks of runs, each with one tensor per block. */
export interface TensorReplicaState {
  runs: number;
  strategy: KernelStrategy;
  /** chunk -> block -> tensor ([C, m, n] stacked) or chunk -> replica*blocks (per-replica). */
  chunks: ChunkState[];
  /** Gradients of the last step, per chunk, until the optimizer consumes them. */
  pending?: tf.Tensor[][][];
  /**
   * Per chunk, the parameters after the SGD step that the gradient pass already took (asked for
   * by `gradients`' `next`), installed by `sgd` with that learning rate; undefined for a chunk
   * whose program returned gradients instead.
   */
  prepared?: { lr: number; chunks: (tf.Tensor[] | undefined)[] };
  /** Per-run loss at the current parameters, when the last gradient pass computed it. */
  loss?: Float64Array;
  /** Run by `dispose`: optimizers free their per-state tensors (Adam's moments) here. */
  cleanups?: (() => void)[];
}

export interface ChunkState {
  /** First run of the chunk within the shard. */
  start: number;
  count: number;
  /** per-replica: params[r][k]; stacked: params[0][k] with the run axis leading. */
  params: tf.Tensor[][];
}

export interface EngineOptions {
  strategy: KernelStrategy;
  /** Replicas per chunk (memory budget / bytes per replica), a multiple of `runBlock`. */
  chunkSize: number;
  /** Runs per run block (`study.runBlock`): statistics are reduced per block, never across chunks. */
  runBlock: number;
  /** How results are read back; default: the active backend's way (`readModeFor`). */
  reads?: ReadMode;
}

/** Replicas per chunk: core's rule, which the resource check before a study uses too. */
export { chunkSizeFor };

/** [start, count] of the run blocks of `count` runs. */
function runBlockRanges(count: number, runBlock: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < count; s += runBlock) out.push([s, Math.min(runBlock, count - s)]);
  return out;
}

/** Throws, naming the input, when a step input does not hold a [b, width] block for each of `runs` runs. */
function checkInput(inp: StepInput, i: number, runs: number): void {
  const [rows, cols] = inp.shape;
  if ('rows' in inp) {
    if (inp.table.length % cols !== 0) throw new RangeError(`input ${i}: its table of ${inp.table.length} values is not whole rows of ${cols}`);
    if (inp.rows.length !== runs * rows) throw new RangeError(`input ${i}: expected ${runs} runs x ${rows} row indices, got ${inp.rows.length}`);
    const n = inp.table.length / cols;
    for (const r of inp.rows) if (!(r >= 0 && r < n)) throw new RangeError(`input ${i}: row index ${r} is outside its table's ${n} rows`);
  } else if (inp.data.length < runs * rows * cols) {
    throw new RangeError(`input ${i}: expected ${runs} runs x [${rows}, ${cols}] values, got ${inp.data.length}`);
  }
}

export class ReplicaEngine {
  constructor(
    readonly program: ReplicaProgram,
    readonly options: EngineOptions,
  ) {}

  /** R replicas at θ0 (a flat Float64Array over the blocks, in block order). */
  replicate(theta0: Float64Array, runs: number): TensorReplicaState {
    const blocks = this.program.blocks.map((b, k) => {
      const offset = this.program.blocks.slice(0, k).reduce((s, x) => s + x.shape[0] * x.shape[1], 0);
      return { shape: b.shape, values: Float32Array.from(theta0.subarray(offset, offset + b.shape[0] * b.shape[1])) };
    });
    const chunks: ChunkState[] = [];
    if (this.options.chunkSize % this.options.runBlock !== 0 && this.options.chunkSize < runs) {
      throw new RangeError(`chunk size ${this.options.chunkSize} is not a multiple of the run block ${this.options.runBlock}`);
    }
    for (let start = 0; start < runs; start += this.options.chunkSize) {
      const count = Math.min(this.options.chunkSize, runs - start);
      const params =
        this.options.strategy === 'stacked'
          ? [blocks.map((b) => tf.keep(tf.tidy(() => tf.tile(tf.tensor3d(b.values, [1, ...b.shape]), [count, 1, 1]))))]
          : Array.from({ length: count }, () => blocks.map((b) => tf.keep(tf.tensor2d(b.values, b.shape))));
      chunks.push({ start, count, params });
    }
    return { runs, strategy: this.options.strategy, chunks };
  }

  /**
   * Runs the program on every chunk with the mini-batches in `inputs` (run r's block of each input
   * at r * rows * cols), keeps the stochastic gradients for the optimizer, and returns the
   * across-run moments per block and in total. Every chunk is computed before anything is read,
   * and what is read (one loss per run, the run blocks' squared deviations and mean norms) is read
   * in one go: synchronously where the backend can (a plain value), as one Promise where it
   * cannot (WebGPU: one asynchronous read per step).
   */
  gradients(state: TensorReplicaState, inputs: readonly StepInput[], wantFull: boolean, next?: NextStep): MaybePromise<GradientReport> {
    // Bad input is refused before anything of the last step is let go.
    inputs.forEach((inp, i) => checkInput(inp, i, state.runs));
    this.releasePending(state);
    // Inputs given as table rows: the stacked programs that take them get the indices and the
    // table; every other gets the rows gathered.
    const byRows = state.strategy === 'stacked' && this.program.takesRows === true;
    const slice = (start: number, count: number, tables: (tf.Tensor2D | undefined)[]) =>
      inputs.map((inp, i) => {
        const [rows, cols] = inp.shape;
        const single = count === 1 && state.strategy === 'per-replica';
        if ('rows' in inp) {
          const idx = inp.rows.subarray(start * rows, (start + count) * rows);
          if (byRows) return tf.tensor2d(idx, [count, rows], 'int32');
          const gathered = tf.gather(tables[i]!, tf.tensor1d(idx, 'int32'));
          return single ? gathered : tf.reshape(gathered, [count, rows, cols]);
        }
        const view = inp.data.subarray(start * rows * cols, (start + count) * rows * cols);
        return single ? tf.tensor2d(view, inp.shape) : tf.tensor3d(view, [count, ...inp.shape]);
      });
    const tablesOf = () => inputs.map((inp) => ('rows' in inp ? tf.tensor2d(inp.table, [inp.table.length / inp.shape[1], inp.shape[1]]) : undefined));
    const nb = this.program.blocks.length;
    const outs: { g: Deviations; f?: Deviations; d?: Deviations; l: tf.Tensor }[] = [];
    state.pending = [];
    const prepared: (tf.Tensor[] | undefined)[] = [];
    // Stacked programs may take the SGD step in the same pass; per replica there is nothing to gain.
    const sgd = state.strategy === 'stacked' && next?.sgd !== undefined && Number.isFinite(next.sgd) ? next.sgd : undefined;
    for (const chunk of state.chunks) {
      let out!: { grads: tf.Tensor[][]; next?: tf.Tensor[]; g: Deviations; f?: Deviations; d?: Deviations; l: tf.Tensor };
      // Everything made in the scope is freed at its end except what is kept explicitly.
      tf.tidy(() => {
        const results: StepOutput[] = [];
        const tables = tablesOf();
        if (state.strategy === 'stacked') {
          const context = { runBlock: this.options.runBlock, ...(sgd !== undefined ? { sgd } : {}), ...(byRows && tables.some((t) => t) ? { tables } : {}) };
          results.push(this.program.step(chunk.params[0], slice(chunk.start, chunk.count, tables), wantFull, context));
        } else {
          // A scope per replica: its intermediates are freed before the next replica runs.
          chunk.params.forEach((p, r) => results.push(tf.tidy(() => this.program.step(p, slice(chunk.start + r, 1, tables), wantFull) as unknown as tf.TensorContainer) as unknown as StepOutput));
        }
        const grads = results.map((r) => r.grads);
        const rb = this.options.runBlock;
        let g: Deviations;
        let f: Deviations | undefined;
        let d: Deviations | undefined;
        const stepped = state.strategy === 'stacked' ? results[0].next : undefined;
        const offered = state.strategy === 'stacked' ? results[0].moments : undefined;
        const complete = offered && (!wantFull || (offered.full && offered.difference));
        if (stepped && (stepped.length !== nb || !complete))
          throw new Error(`the program's step returned ${stepped.length} next parameter blocks (of ${nb}) ${complete ? 'with' : 'without'} the moments${wantFull ? ' of g, grad L and g - grad L' : ' of g'}: a step that takes the SGD step must return all of them`);
        if (offered && complete) {
          // The step computed them itself (in its run blocks, while its gradients were in cache).
          const ranges = runBlockRanges(chunk.count, rb);
          const take = (m: RunBlockMoments[]): Deviations => {
            if (m.length !== nb || m.some((x) => x.deviations.size !== chunk.count || x.meanSquares.size !== ranges.length))
              throw new Error(`the program's step returned moments for ${m.length} blocks, not ${nb} blocks of ${chunk.count} runs in ${ranges.length} run blocks`);
            return { d: m.map((x) => tf.keep(x.deviations)), meanSq: m.map((x) => tf.keep(x.meanSquares)), count: chunk.count, ranges };
          };
          g = take(offered.grads);
          if (wantFull) [f, d] = [take(offered.full!), take(offered.difference!)];
        } else if (wantFull && state.strategy === 'stacked' && hasKernel(RUN_BLOCK_MOMENTS)) {
          // On native: the moments of g, grad L and g - grad L from one read of g and grad L.
          [g, f, d] = blockDeviations3(grads[0], results[0].full!, nb, rb);
        } else {
          g = blockDeviations(grads, state.strategy, nb, rb);
          f = wantFull ? blockDeviations(results.map((r) => r.full!), state.strategy, nb, rb) : undefined;
          d = wantFull ? blockDeviations(results.map((r, i) => r.full!.map((fk, k) => tf.sub(grads[i][k], fk))), state.strategy, nb, rb) : undefined;
        }
        const l = state.strategy === 'stacked' ? results[0].loss : tf.stack(results.map((r) => r.loss));
        out = { grads: stepped ? [] : grads.map((gs) => gs.map((t) => tf.keep(t))), next: stepped?.map((t) => tf.keep(t)), g, f, d, l: tf.keep(l) };
      });
      state.pending.push(out.grads);
      prepared.push(out.next);
      outs.push(out);
    }
    if (sgd !== undefined && prepared.some((p) => p)) state.prepared = { lr: sgd, chunks: prepared };
    // The read list: per chunk its losses, then the deviations of g, of grad L and of their difference.
    const reads: tf.Tensor[] = [];
    for (const o of outs) reads.push(o.l, ...[o.g, o.f, o.d].flatMap((m) => (m ? deviationTensors(m) : [])));
    return andThen(readAll(reads, this.reads), (values) => {
      const loss = new Float64Array(state.runs);
      let grad: ChunkMoments | undefined;
      let full: ChunkMoments | undefined;
      let diff: ChunkMoments | undefined;
      let i = 0;
      state.chunks.forEach((chunk, c) => {
        const lossValues = values[i++];
        for (let r = 0; r < chunk.count; r++) loss[chunk.start + r] = lossValues[r];
        const o = outs[c];
        grad = mergeChunk(grad, momentsOf(o.g, values.slice(i, (i += 2 * nb))));
        if (o.f) full = mergeChunk(full, momentsOf(o.f, values.slice(i, (i += 2 * nb))));
        if (o.d) diff = mergeChunk(diff, momentsOf(o.d, values.slice(i, (i += 2 * nb))));
      });
      state.loss = loss;
      const names = this.program.blocks.map((b) => b.name);
      return {
        stochastic: toBlockMoments(grad!, names),
        full: full && toBlockMoments(full, names),
        difference: diff && toBlockMoments(diff, names),
      };
    });
  }

  /** How this engine reads from the backend: `async` on backends without synchronous reads. */
  get reads(): ReadMode {
    return this.options.reads ?? readModeFor(tf.getBackend());
  }

  /** Per-run loss at the current parameters (reuses the last gradient pass when it is current). */
  losses(state: TensorReplicaState): MaybePromise<Float64Array> {
    if (state.loss) return state.loss;
    const lossFn = this.program.loss;
    if (!lossFn) throw new Error('this program has no batch-free loss; use evaluate()');
    const reads = state.chunks.map((chunk) =>
      tf.tidy(() => (state.strategy === 'stacked' ? lossFn(chunk.params[0]) : tf.stack(chunk.params.map((p) => lossFn(p))))),
    );
    return andThen(readAll(reads, this.reads), (values) => {
      const loss = new Float64Array(state.runs);
      state.chunks.forEach((chunk, c) => {
        for (let i = 0; i < chunk.count; i++) loss[chunk.start + i] = values[c][i];
      });
      state.loss = loss;
      return loss;
    });
  }

  /**
   * Scalars per run on inputs every replica shares (an evaluation set, uploaded once per call),
   * e.g. { loss, error }; batches of `rowsPerCall` rows keep memory bounded and are averaged.
   * Read in one go, like `gradients`.
   */
  evaluate(state: TensorReplicaState, inputs: readonly ReplicaInput[], rowsPerCall = 1000): MaybePromise<Record<string, Float64Array>> {
    const evaluate = this.program.evaluate;
    if (!evaluate) throw new Error('this program has no evaluate()');
    const rows = inputs[0].shape[0];
    const parts: { key: string; chunk: ChunkState; weight: number }[] = [];
    const reads: tf.Tensor[] = [];
    for (let start = 0; start < rows; start += rowsPerCall) {
      const n = Math.min(rowsPerCall, rows - start);
      const shared = inputs.map((inp) => tf.tensor2d(inp.data.subarray(start * inp.shape[1], (start + n) * inp.shape[1]), [n, inp.shape[1]]));
      for (const chunk of state.chunks) {
        tf.tidy(() => {
          const out: Record<string, tf.Tensor> = {};
          if (state.strategy === 'stacked') Object.assign(out, evaluate(chunk.params[0], shared));
          else {
            const per = chunk.params.map((p) => tf.tidy(() => evaluate(p, shared) as unknown as tf.TensorContainer) as unknown as Record<string, tf.Tensor>);
            for (const k of Object.keys(per[0])) out[k] = tf.stack(per.map((o) => o[k]));
          }
          for (const [key, t] of Object.entries(out)) {
            parts.push({ key, chunk, weight: n / rows });
            reads.push(tf.keep(t));
          }
        });
      }
      // Disposing after the ops were queued is safe: the backend frees the memory when they ran.
      tf.dispose(shared);
    }
    return andThen(readAll(reads, this.reads), (values) => {
      const sums: Record<string, Float64Array> = {};
      parts.forEach(({ key, chunk, weight }, j) => {
        const acc = (sums[key] ??= new Float64Array(state.runs));
        for (let i = 0; i < chunk.count; i++) acc[chunk.start + i] += values[j][i] * weight;
      });
      return sums;
    });
  }

  /**
   * SGD on every replica with the pending gradients: W <- W - lr g. Where the gradient pass
   * already took this step (`gradients`' `next` with the same rate), its result is installed.
   */
  sgd(state: TensorReplicaState, lr: number): void {
    // One pass (w + (-lr) g) where the backend has the fused kernel.
    // update() disposes w right after, so the kernel may write w's own array.
    if (hasKernel(AXPY)) this.applyUpdate(state, (w, g) => tf.engine().runKernel(AXPY, { x: w, y: g }, { alpha: -lr, inPlace: true }) as tf.Tensor, lr);
    else this.applyUpdate(state, (w, g) => tf.sub(w, tf.mul(g, lr)), lr);
  }

  /**
   * Replaces every parameter tensor by `rule(w, g, slot)` with its pending gradient, inside a tidy
   * scope; `slot` names the (chunk, replica, block) so optimizers can keep per-parameter state.
   */
  update(state: TensorReplicaState, rule: (w: tf.Tensor, g: tf.Tensor, slot: string) => tf.Tensor): void {
    this.applyUpdate(state, rule);
  }

  /** `update`, installing the chunks whose SGD step the gradient pass took when `sgdLr` is its rate. */
  private applyUpdate(state: TensorReplicaState, rule: (w: tf.Tensor, g: tf.Tensor, slot: string) => tf.Tensor, sgdLr?: number): void {
    if (!state.pending) throw new Error('update: no gradients computed for this step');
    const prepared = state.prepared;
    if (prepared && sgdLr !== prepared.lr) {
      throw new Error(
        `update: the gradient pass already took the SGD step with learning rate ${prepared.lr} (gradients() was told { sgd: ${prepared.lr} }) and kept no gradients; ` +
          (sgdLr === undefined ? 'an optimizer other than plain SGD must not pass `next`' : `sgd() was called with ${sgdLr}`),
      );
    }
    state.chunks.forEach((chunk, c) => {
      const ready = prepared?.chunks[c];
      if (ready) {
        chunk.params[0].forEach((w) => w.dispose());
        chunk.params = [ready];
        prepared!.chunks[c] = undefined;
        return;
      }
      const grads = state.pending![c];
      chunk.params = chunk.params.map((blocks, r) =>
        blocks.map((w, k) => {
          const next = tf.keep(tf.tidy(() => rule(w, grads[r][k], `${c}/${r}/${k}`)));
          w.dispose();
          return next;
        }),
      );
    });
    this.releasePending(state);
    state.loss = undefined;
  }

  /** Frees the pending gradients (and the parameters of an SGD step taken but not installed). */
  releasePending(state: TensorReplicaState): void {
    state.pending?.forEach((c) => c.forEach((gs) => gs.forEach((g) => g.dispose())));
    state.pending = undefined;
    state.prepared?.chunks.forEach((ts) => ts?.forEach((t) => t.dispose()));
    state.prepared = undefined;
  }

  dispose(state: TensorReplicaState): void {
    for (const f of state.cleanups ?? []) f();
    state.cleanups = undefined;
    this.releasePending(state);
    state.chunks.forEach((c) => c.params.forEach((bs) => bs.forEach((t) => t.dispose())));
    state.chunks = [];
  }

  /** Current parameters of every run as flat Float64Arrays (tests, checkpoints); a Promise on async backends. */
  readParams(state: TensorReplicaState): MaybePromise<Float64Array[]> {
    const tensors = state.chunks.flatMap((chunk) => chunk.params.flat());
    // Copied into new arrays before anything can update the parameters.
    return andThen(readAll(tensors, this.reads, true), (values) => {
      const out: Float64Array[] = [];
      let j = 0;
      for (const chunk of state.chunks) {
        if (state.strategy === 'stacked') {
          const blockValues = chunk.params[0].map(() => values[j++]);
          for (let i = 0; i < chunk.count; i++) {
            const parts = blockValues.map((v, k) => {
              const size = this.program.blocks[k].shape[0] * this.program.blocks[k].shape[1];
              return v.subarray(i * size, (i + 1) * size);
            });
            out.push(concat(parts));
          }
        } else for (const blocks of chunk.params) out.push(concat(blocks.map(() => values[j++])));
      }
      return out;
    });
  }
}

function concat(parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p as ArrayLike<number>, o);
    o += p.length;
  }
  return out;
}

/**
 * Per parameter block: each run's squared deviation from the mean of its run block, and each run
 * block's squared mean norm, still on the backend (only these scalars are read back).
 */
interface Deviations {
  /** [count] per parameter block. */
  d: tf.Tensor[];
  /** [run blocks] per parameter block. */
  meanSq: tf.Tensor[];
  count: number;
  ranges: [number, number][];
}

/** The mean over the run axis of [n, ...] and the squared deviation of every run from it. */
function meanAndDeviations(g: tf.Tensor): { mean: tf.Tensor; dev: tf.Tensor } {
  if (hasKernel(RUN_MOMENTS)) {
    // The mean and the deviations from it in one read of the gradients.
    const [mean, dev] = tf.engine().runKernel(RUN_MOMENTS, { x: g }, {}) as tf.Tensor[];
    return { mean, dev };
  }
  const mean = tf.mean(g, 0);
  const dev = hasKernel(SQUARED_DEVIATION_SUM)
    ? (tf.engine().runKernel(SQUARED_DEVIATION_SUM, { x: g, mean }, {}) as tf.Tensor)
    : tf.sum(tf.squaredDifference(g, mean), g.shape.slice(1).map((_, i) => i + 1));
  return { mean, dev };
}

/** The deviations of stacked g, of grad L and of g - grad L, per block, in one read each (RUN_BLOCK_MOMENTS). */
function blockDeviations3(g: tf.Tensor[], full: tf.Tensor[], nb: number, runBlock: number): [Deviations, Deviations, Deviations] {
  const count = g[0].shape[0];
  const ranges = runBlockRanges(count, runBlock);
  const out = [0, 1, 2].map(() => ({ d: [] as tf.Tensor[], meanSq: [] as tf.Tensor[], count, ranges }));
  for (let k = 0; k < nb; k++) {
    const t = tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x: g[k], y: full[k] }, { block: runBlock, all: true }) as tf.Tensor[];
    out.forEach((o, i) => {
      o.d.push(tf.keep(t[2 * i]));
      o.meanSq.push(tf.keep(t[2 * i + 1]));
    });
  }
  return out as [Deviations, Deviations, Deviations];
}

function blockDeviations(perResult: tf.Tensor[][], strategy: KernelStrategy, nb: number, runBlock: number): Deviations {
  const d: tf.Tensor[] = [];
  const meanSq: tf.Tensor[] = [];
  const count = strategy === 'stacked' ? perResult[0][0].shape[0] : perResult.length;
  const ranges = runBlockRanges(count, runBlock);
  if (strategy === 'stacked' && hasKernel(RUN_BLOCK_MOMENTS)) {
    // Every run block of a parameter block in one read, without slicing it out.
    for (let k = 0; k < nb; k++) {
      const [dev, sq] = tf.engine().runKernel(RUN_BLOCK_MOMENTS, { x: perResult[0][k] }, { block: runBlock }) as tf.Tensor[];
      d.push(tf.keep(dev));
      meanSq.push(tf.keep(sq));
    }
    return { d, meanSq, count, ranges };
  }
  for (let k = 0; k < nb; k++) {
    const devs: tf.Tensor[] = [];
    const sq: tf.Tensor[] = [];
    for (const [start, n] of ranges) {
      if (strategy === 'stacked') {
        const g = perResult[0][k];
        const part = ranges.length === 1 ? g : tf.slice(g, start, n);
        const { mean, dev } = meanAndDeviations(part);
        devs.push(dev);
        sq.push(tf.sum(tf.square(mean)));
      } else {
        const gs = perResult.slice(start, start + n).map((r) => r[k]);
        const mean = tf.div(tf.addN(gs), n);
        const fused = hasKernel(SQUARED_DEVIATION_SUM);
        const size = mean.size;
        const dev = (g: tf.Tensor) => (fused ? tf.reshape(tf.engine().runKernel(SQUARED_DEVIATION_SUM, { x: tf.reshape(g, [1, size]), mean }, {}) as tf.Tensor, []) : tf.sum(tf.squaredDifference(g, mean)));
        devs.push(tf.stack(gs.map(dev)));
        sq.push(tf.sum(tf.square(mean)));
      }
    }
    d.push(tf.keep(devs.length === 1 ? devs[0] : tf.concat(devs)));
    meanSq.push(tf.keep(tf.stack(sq)));
  }
  return { d, meanSq, count, ranges };
}

/** Run-block statistics of one chunk: per parameter block and in total, read back from the backend. */
interface ChunkMoments {
  blocks: RunBlockStats[][];
  all: RunBlockStats[];
}

/** The tensors of a chunk's deviations in read order: per block, the deviations, then the mean norms. */
function deviationTensors(dev: Deviations): tf.Tensor[] {
  return dev.d.flatMap((d, k) => [d, dev.meanSq[k]]);
}

/** Run-block statistics from the values `deviationTensors` listed. */
function momentsOf(dev: Deviations, values: Float32Array[]): ChunkMoments {
  const dAll = new Float64Array(dev.count);
  const sqAll = new Float64Array(dev.ranges.length);
  const blocks: RunBlockStats[][] = [];
  for (let k = 0; k < dev.d.length; k++) {
    const d = values[2 * k];
    const sq = values[2 * k + 1];
    for (let r = 0; r < dev.count; r++) dAll[r] += d[r];
    for (let j = 0; j < sq.length; j++) sqAll[j] += sq[j];
    blocks.push(dev.ranges.map(([start, n], j) => blockStatsFromDeviations(d, start, n, sq[j])));
  }
  return { blocks, all: dev.ranges.map(([start, n], j) => blockStatsFromDeviations(dAll, start, n, sqAll[j])) };
}

function mergeChunk(acc: ChunkMoments | undefined, next: ChunkMoments): ChunkMoments {
  if (!acc) return next;
  return { blocks: acc.blocks.map((b, k) => [...b, ...next.blocks[k]]), all: [...acc.all, ...next.all] };
}

function toBlockMoments(m: ChunkMoments, names: string[]): BlockMoments {
  return names.length === 1 ? { all: m.all } : { all: m.all, blocks: Object.fromEntries(names.map((n, k) => [n, m.blocks[k]])) };
}
