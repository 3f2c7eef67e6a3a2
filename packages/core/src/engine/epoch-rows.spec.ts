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

  it('copies the columns with the gather it is given, to the same batches', () => {
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
    // Every column goes through it, once per step each.
    expect(calls).toEqual(Array.from({ length: 6 }, () => [40, 1]).flat());
  });

  it('hands out the rows of every step, and gathers columns at them to the same batches as next', () => {
    const plain = epochRows(table(), shard, 7);
    const split = epochRows(table(), shard, 7);
    const { columns } = table();
    for (let t = 0; t < 7; t++) {
      const rows = split.rows(t);
      expect(rows.length).toBe(3 * 4);
      const [wide, narrow] = plain.next(t);
      // Row k of the batch is table row rows[k], in every column.
      expect(Array.from(narrow)).toEqual(Array.from(rows, (i) => columns[1].data[i]));
      expect(Array.from(split.gather(0, rows))).toEqual(Array.from(wide));
      // Each call's rows are its own: a later step does not overwrite them.
      const kept = Array.from(rows);
      split.rows(t + 100);
      expect(Array.from(rows)).toEqual(kept);
      plain.next(t + 100);
    }
    expect(() => split.gather(0, new Int32Array(5))).toThrow(/expected the 12 rows of one step, got 5/);
  });

  it('names the problem when a batch is larger than the training set', () => {
    expect(() => epochRows(table(), { ...shard, batchSize: 11 }, 7)).toThrow(/batch size 11 exceeds the 10 training rows/);
  });
});
