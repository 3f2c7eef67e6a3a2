/**
 * Values that are there now or later. Backends whose reads are synchronous (native, wasm, cpu)
 * return plain values, so their steps pay for no Promise and no microtask; backends that can only
 * read asynchronously (WebGPU in Node: `await tensor.data()`) return Promises. Code that handles
 * both is written once with `andThen` and `whenAll`, which stay synchronous when nothing is pending.
 */
export type MaybePromise<T> = T | Promise<T>;

// Not named `then`: a module exporting `then` is itself a thenable, and `await import()` of it
// would call that function instead of giving the module.

/** Whether `v` is a Promise (or another thenable). */
export function isPending<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** f(v), at once when v is there, after it resolves when it is a Promise. */
export function andThen<T, U>(v: MaybePromise<T>, f: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return isPending(v) ? v.then(f) : f(v);
}

/** f(values), synchronous when no value is pending. */
export function whenAll<T extends readonly unknown[], U>(values: { [K in keyof T]: MaybePromise<T[K]> }, f: (values: T) => MaybePromise<U>): MaybePromise<U> {
  if (values.some(isPending)) return Promise.all(values).then((v) => f(v as unknown as T));
  return f(values as unknown as T);
}
