/**
 * Keyed random streams.
 *
 * A stream is named by a key path of small integers, e.g. (seed, PURPOSE_BATCH, initPoint,
 * batchSize, run). The path is hashed into the 128-bit state of a xoshiro128** generator, so a
 * stream depends on its key only: never on which other streams exist or the order they are used
 * in. That is what makes every batch size start from the same θ0 and keeps results independent of
 * how runs are scheduled over shards, processes or machines.
 */

/** Purposes are the first key component after the seed, so streams of different roles never collide. */
export const StreamPurpose = {
  init: 1,
  batch: 2,
  data: 3,
  model: 4,
  /** Resampling in analyses (bootstrap intervals). */
  analysis: 5,
} as const;

import { log, sinCos } from './fdlibm.js';

const TWO_32 = 4294967296;
const TWO_NEG_53 = 1 / 9007199254740992;
const TWO_NEG_32 = 1 / TWO_32;

/** MurmurHash3's 32-bit finaliser: a bijection with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a non-negative safe integer into 32-bit words so large keys hash without loss. */
function words(k: number): [number, number] {
  if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`random stream key must be a non-negative safe integer, got ${k}`);
  return [k >>> 0, Math.floor(k / TWO_32) >>> 0];
}

/**
 * Derives the 4-word xoshiro state for a key path. Each state word hashes the whole path with its
 * own lane constant; a zero state (the one xoshiro cannot leave) is replaced deterministically.
 */
export function stateForKey(key: readonly number[], out = new Uint32Array(4)): Uint32Array {
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix32(0x9e3779b9 + Math.imul(lane + 1, 0x632be5ab));
    for (const k of key) {
      const [lo, hi] = words(k);
      h = fmix32((h ^ lo) + 0x7f4a7c15);
      h = fmix32((h ^ hi) + 0x165667b1);
    }
    out[lane] = fmix32(h ^ key.length);
  }
  if ((out[0] | out[1] | out[2] | out[3]) === 0) out[0] = 1;
  return out;
}

const SIN_COS = new Float64Array(2);

/** One random stream: xoshiro128** over a key-derived state. */
export class RandomStream {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | undefined;

  constructor(key: readonly number[]) {
    const s = stateForKey(key);
    this.s0 = s[0];
    this.s1 = s[1];
    this.s2 = s[2];
    this.s3 = s[3];
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * TWO_NEG_53;
  }

  /** Unbiased integer in [0, k) (Lemire's multiply-and-reject), 1 <= k < 2^31. */
  nextInt(k: number): number {
    let x = this.nextU32();
    // Low 32 bits of x * k with an integer multiply; the high part from the exact double product.
    let low = Math.imul(x, k) >>> 0;
    if (low < k) {
      const threshold = (TWO_32 - k) % k;
      while (low < threshold) {
        x = this.nextU32();
        low = Math.imul(x, k) >>> 0;
      }
    }
    return Math.floor(x * k * TWO_NEG_32);
  }

  /** Standard normal deviate (Box-Muller, both values used). */
  nextNormal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.nextDouble();
    const v = this.nextDouble();
    // log, sin and cos in basic IEEE arithmetic (fdlibm.ts): the same bits on every engine and
    // in the native addon's draws; on Node.js 20 equal to Math.log, Math.sin and Math.cos.
    const r = Math.sqrt(-2 * log(u));
    const sc = sinCos(2 * Math.PI * v, SIN_COS);
    this.spareNormal = r * sc[0];
    return r * sc[1];
  }

  /** Fills `out` with N(0, std^2) deviates. */
  fillNormal(out: Float64Array | Float32Array, std = 1): typeof out {
    for (let i = 0; i < out.length; i++) out[i] = std * this.nextNormal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A faster fill of `PackedStreams.fillNormals` (same bits), e.g. on the native addon's threads. */
export type NormalFill = (streams: PackedStreams, out: Float32Array, perStream: number, std: number) => void;

/**
 * The states of many streams packed in one Uint32Array (4 words per stream), for hot loops that
 * step R runs side by side without allocating a RandomStream per run. `next` is xoshiro128** and
 * produces exactly the sequence of `new RandomStream(key)` for the same key.
 */
export class PackedStreams {
  readonly state: Uint32Array;
  readonly count: number;
  /** Per stream: whether it holds the second deviate of a Box-Muller pair, and that deviate. */
  readonly hasSpare: Uint8Array;
  readonly spare: Float64Array;

  constructor(keys: readonly (readonly number[])[]) {
    this.count = keys.length;
    this.state = new Uint32Array(4 * keys.length);
    this.hasSpare = new Uint8Array(keys.length);
    this.spare = new Float64Array(keys.length);
    const tmp = new Uint32Array(4);
    keys.forEach((key, i) => this.state.set(stateForKey(key, tmp), 4 * i));
  }

  /** Uniform double in [0, 1) from stream `i` (as RandomStream.nextDouble). */
  nextDouble(i: number): number {
    const hi = this.nextU32(i) >>> 5;
    const lo = this.nextU32(i) >>> 6;
    return (hi * 67108864 + lo) * TWO_NEG_53;
  }

  /** Standard normal deviate from stream `i` (as RandomStream.nextNormal, spare included). */
  nextNormal(i: number): number {
    if (this.hasSpare[i]) {
      this.hasSpare[i] = 0;
      return this.spare[i];
    }
    let u = 0;
    while (u === 0) u = this.nextDouble(i);
    const v = this.nextDouble(i);
    const r = Math.sqrt(-2 * log(u));
    const sc = sinCos(2 * Math.PI * v, SIN_COS);
    this.spare[i] = r * sc[0];
    this.hasSpare[i] = 1;
    return r * sc[1];
  }

  /**
   * out[i perStream .. (i + 1) perStream) = std * the next `perStream` deviates of stream i, for
   * every stream: what `fillNormal` of a RandomStream with stream i's key gives. `fill`, when given
   * (the native addon's, `normalFill()` of @sgd-lab/tensor), does the same work, to the bit.
   */
  fillNormals(out: Float32Array, perStream: number, std = 1, fill?: NormalFill): Float32Array {
    if (out.length < this.count * perStream) throw new RangeError(`fillNormals: out holds ${out.length} values, ${this.count} streams x ${perStream} need ${this.count * perStream}`);
    if (fill) {
      fill(this, out, perStream, std);
      return out;
    }
    for (let i = 0; i < this.count; i++) {
      const o = i * perStream;
      for (let j = 0; j < perStream; j++) out[o + j] = std * this.nextNormal(i);
    }
    return out;
  }

  /** Next 32-bit output of stream `i`. */
  nextU32(i: number): number {
    const s = this.state;
    const o = 4 * i;
    const s0 = s[o], s1 = s[o + 1];
    let s2 = s[o + 2], s3 = s[o + 3];
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s[o + 1] = s1 ^ s2;
    s[o] = s0 ^ s3;
    s[o + 2] = s2 ^ t;
    s[o + 3] = rotl(s3, 11);
    return result;
  }

  /** Unbiased integer in [0, k) from stream `i` (same method as RandomStream.nextInt). */
  nextInt(i: number, k: number): number {
    let x = this.nextU32(i);
    let low = Math.imul(x, k) >>> 0;
    if (low < k) {
      const threshold = (TWO_32 - k) % k;
      while (low < threshold) {
        x = this.nextU32(i);
        low = Math.imul(x, k) >>> 0;
      }
    }
    return Math.floor(x * k * TWO_NEG_32);
  }

  /**
   * Draws a uniform `size`-subset of the `n` entries of `perm[offset..offset+n)` into its first
   * `size` slots (partial Fisher-Yates) with stream `i`; the generator state stays in registers for
   * the whole loop. Draws exactly what `size` calls of nextInt(i, n - j) would.
   */
  partialShuffle(i: number, perm: Int32Array, offset: number, n: number, size: number): void {
    const s = this.state;
    const o = 4 * i;
    let s0 = s[o] | 0, s1 = s[o + 1] | 0, s2 = s[o + 2] | 0, s3 = s[o + 3] | 0;
    for (let j = 0; j < size; j++) {
      const k = n - j;
      let x = 0;
      let low = 0;
      do {
        x = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 11);
        low = Math.imul(x, k) >>> 0;
      } while (low < k && low < (TWO_32 - k) % k);
      const pick = offset + j + Math.floor(x * k * TWO_NEG_32);
      const tmp = perm[offset + j];
      perm[offset + j] = perm[pick];
      perm[pick] = tmp;
    }
    s[o] = s0;
    s[o + 1] = s1;
    s[o + 2] = s2;
    s[o + 3] = s3;
  }

  /** Fills out[offset..offset+count) with uniform integers in [0, k) from stream `i`. */
  fillInts(i: number, out: Int32Array, offset: number, count: number, k: number): void {
    for (let j = 0; j < count; j++) out[offset + j] = this.nextInt(i, k);
  }
}
