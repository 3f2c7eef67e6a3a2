/**
 * Reuse of output arrays on the `native` backend. A fresh Float32Array of many megabytes costs its
 * page faults on first write (on 2 threads, more than the arithmetic of an element-wise op), so
 * arrays that native kernels allocated go back to a pool, by length, when their tensor is freed,
 * and the next output of that length takes one: what PyTorch gets from its allocator.
 *
 * Only arrays that nothing outside the backend can still see are reused: an array is dropped
 * from the pool's care ("escapes") when it is read out (dataSync, data, buffer), or when a kernel
 * returns a view of it under another tensor (a contiguous slice), which the kernel wrapper in
 * backend.ts detects by comparing buffers.
 */
export class ArrayPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owned = new WeakSet<Float32Array>();
  private bytes = 0;
  /** Counters for tests and benchmarks. */
  readonly stats = { reused: 0, allocated: 0, returned: 0, escaped: 0, evicted: 0 };

  constructor(readonly maxBytes: number) {}

  /** An array of n floats with unspecified contents (the caller overwrites all of it). */
  take(n: number): Float32Array {
    const list = this.free.get(n);
    if (list) {
      // Most recently used length last: eviction takes the lengths unused the longest first.
      this.free.delete(n);
      this.free.set(n, list);
    }
    const a = list?.pop();
    if (a) {
      this.bytes -= a.byteLength;
      this.stats.reused++;
    } else this.stats.allocated++;
    const out = a ?? new Float32Array(n);
    this.owned.add(out);
    return out;
  }

  /** Called when the backend frees a tensor's values: keeps the array if it was pooled and unseen. */
  give(values: unknown): void {
    if (!(values instanceof Float32Array) || !this.owned.has(values)) return;
    this.owned.delete(values);
    if (values.length === 0 || values.byteLength > this.maxBytes) return;
    // Full: arrays of the lengths unused the longest make room (a study's shapes change between
    // shards and phases; keeping stale lengths would turn every new one into a fresh allocation).
    for (const [len, stale] of this.free) {
      if (this.bytes + values.byteLength <= this.maxBytes) break;
      if (len === values.length) continue;
      while (stale.length > 0 && this.bytes + values.byteLength > this.maxBytes) {
        this.bytes -= stale.pop()!.byteLength;
        this.stats.evicted++;
      }
      if (stale.length === 0) this.free.delete(len);
    }
    if (this.bytes + values.byteLength > this.maxBytes) return;
    let list = this.free.get(values.length);
    if (!list) this.free.set(values.length, (list = []));
    list.push(values);
    this.bytes += values.byteLength;
    this.stats.returned++;
  }

  /** The array may be seen from outside: never reuse it. */
  escape(values: unknown): void {
    if (values instanceof Float32Array && this.owned.delete(values)) this.stats.escaped++;
  }

  owns(values: unknown): boolean {
    return values instanceof Float32Array && this.owned.has(values);
  }

  /** Frees every pooled array. */
  clear(): void {
    this.free.clear();
    this.bytes = 0;
  }

  get pooledBytes(): number {
    return this.bytes;
  }
}
