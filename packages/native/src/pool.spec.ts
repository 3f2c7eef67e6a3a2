import { describe, expect, it } from 'vitest';
import { ArrayPool } from './pool.js';

describe('ArrayPool', () => {
  it('reuses arrays by length, and when full evicts the lengths unused the longest', () => {
    const pool = new ArrayPool(1024); // 256 floats
    const a = pool.take(64);
    const b = pool.take(64);
    const c = pool.take(100);
    pool.give(a);
    pool.give(b);
    pool.give(c);
    expect(pool.pooledBytes).toBe(4 * (64 + 64 + 100));
    // Length 100 used again: now the most recent; 64 is the stalest.
    const c2 = pool.take(100);
    expect(c2).toBe(c);
    pool.give(c2);
    // 120 floats do not fit beside 228: arrays of the stalest length (64) go, both of them.
    const d = pool.take(120);
    expect(pool.stats.allocated).toBe(4);
    pool.give(d);
    expect(pool.stats.evicted).toBe(2);
    expect(pool.pooledBytes).toBe(4 * (100 + 120));
    expect(pool.take(100)).toBe(c);
    expect(pool.take(120)).toBe(d);
    // An array larger than the whole pool is never kept, and evicts nothing.
    const big = pool.take(300);
    pool.give(big);
    expect(pool.stats.evicted).toBe(2);
    // Arrays the pool did not hand out, or that escaped, are not taken in.
    pool.give(new Float32Array(10));
    const e = pool.take(10);
    pool.escape(e);
    pool.give(e);
    expect(pool.take(10)).not.toBe(e);
  });
});
