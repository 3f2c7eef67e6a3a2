import { describe, expect, it } from 'vitest';
import { andThen, isPending, whenAll } from './maybe.js';

describe('maybe-promises', () => {
  it('stay synchronous when nothing is pending', () => {
    const v = andThen(2, (x) => x + 1);
    expect(isPending(v)).toBe(false);
    expect(v).toBe(3);
    const w = whenAll([1, 'a', undefined] as const, ([a, b, c]) => `${a}${b}${c}`);
    expect(w).toBe('1aundefined');
  });

  it('become Promises when a value is pending', async () => {
    const v = andThen(Promise.resolve(2), (x) => x + 1);
    expect(isPending(v)).toBe(true);
    expect(await v).toBe(3);
    const w = whenAll([1, Promise.resolve(2)] as const, ([a, b]) => a + b);
    expect(isPending(w)).toBe(true);
    expect(await w).toBe(3);
  });

  it('leave the package importable with await import() (no export named then)', async () => {
    const core = await import('../index.js');
    expect('then' in core).toBe(false);
    expect(typeof core.andThen).toBe('function');
  });
});
