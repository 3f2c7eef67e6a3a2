import { describe, expect, it } from 'vitest';
import { epochRows, type RowGather } from './epoch-rows.js';

const shard = { batchSize: 4, initPoint: 1, runStart: 2, runCount: 3, steps: 20 };

/** 10 rows: a wide column whose row i holds 100 i + j, and a narrow one holding -i. */
function table() {
  const wide = Float32Array.from({ length: 10 * 40 }, (_, k) => 100 * Math.floor(k / 40) + (k % 40));
  const narrow = Float32Array.from({ length: 10 }, (_, i) => -i);
  return { count: 10, columns: [{ data: wide, width: 40 }, { data: narrow, width: 1 }] };
}

describe('epochRows', () => {
  it('gives every run a permutation per epoch, each row once, and consecutive batches', () => {
    const rows = epochRows(table(), shard, 7);
    // 10 rows, b = 4: 2 steps per epoch (the last partial batch is dropped).
    for (const epoch of [0, 1, 2]) {
      const seen = Array.from({ length: 3 }, () => new Set<number>());
      for (const t of [2 * epoch, 2 * epoch + 1]) {
        const [wide, narrow] = rows.next(t);
        for (let r = 0; r < 3; r++) {
          for (let k = 0; k < 4; k++) {
            const row = -narrow[r * 4 + k];
            // The columns stay aligned: the wide row is the same row.
            expect(Array.from(wide.subarray((r * 4 + k) * 40, (r * 4 + k + 1) * 40))).toEqual(Array.from({ length: 40 }, (_, j) => 100 * row + j));
            seen[r].add(row);
          }
        }
      }
      for (const s of seen) expect(s.size).toBe(8);
    }
  });

  it('copies wide columns with the gather it is given, to the same batches', () => {
    const calls: number[] = [];
    const gather: RowGather = (src, width, idx, dst) => {
      calls.push(width);
      for (let i = 0; i < idx.length; i++) dst.set(src.subarray(idx[i] * width, (idx[i] + 1) * width), i * width);
    };
    const plain = epochRows(table(), shard, 7);
    const gathered = epochRows(table(), shard, 7, { gather });
    for (let t = 0; t < 6; t++) {
      const a = plain.next(t).map((c) => Array.from(c));
      const b = gathered.next(t).map((c) => Array.from(c));
      expect(b).toEqual(a);
    }
    // Only the wide column goes through it, once per step.
    expect(calls).toEqual(Array.from({ length: 6 }, () => 40));
  });

  it('names the problem when a batch is larger than the training set', () => {
    expect(() => epochRows(table(), { ...shard, batchSize: 11 }, 7)).toThrow(/batch size 11 exceeds the 10 training rows/);
  });
});
