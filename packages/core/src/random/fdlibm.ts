/**
 * log, sin and cos for the normal deviates of the random streams, written with basic IEEE
 * operations only (+, -, *, /, and bit access), so that a stream gives the same bits on every
 * JavaScript engine and in the native addon (packages/native/addon/normals.h, the same arithmetic
 * in C++).
 *
 * Why not Math.log / Math.sin / Math.cos: the standard leaves their last bit to the engine, and
 * engines change them (V8 has used fdlibm 5.3's algorithms; newer V8 builds can take sin and cos
 * from a libm instead). These functions follow fdlibm 5.3's algorithms operation by operation, so
 * on Node.js 20 they equal Math.log, Math.sin and Math.cos to the bit (tested on millions of
 * arguments), and the streams drawn before this file existed are unchanged. The constants are
 * fdlibm's, given as their bit patterns.
 */

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
// Little-endian hosts hold the high word second; checked once.
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const LO = 1 - HI;

function fromWords(hi: number, lo: number): number {
  u32[HI] = hi;
  u32[LO] = lo;
  return f64[0];
}

function highWord(x: number): number {
  f64[0] = x;
  return u32[HI] | 0;
}

const LN2_HI = fromWords(0x3fe62e42, 0xfee00000);
const LN2_LO = fromWords(0x3dea39ef, 0x35793c76);
const LG1 = fromWords(0x3fe55555, 0x55555593);
const LG2 = fromWords(0x3fd99999, 0x9997fa04);
const LG3 = fromWords(0x3fd24924, 0x94229359);
const LG4 = fromWords(0x3fcc71c5, 0x1d8e78af);
const LG5 = fromWords(0x3fc74664, 0x96cb03de);
const LG6 = fromWords(0x3fc39a09, 0xd078c69f);
const LG7 = fromWords(0x3fc2f112, 0xdf3e5244);
const TWO54 = fromWords(0x43500000, 0);
/** The double nearest 1/3 (fdlibm writes it 0.33333333333333333). */
const THIRD = fromWords(0x3fd55555, 0x55555555);

/**
 * Natural logarithm of a positive finite double: x = 2^k (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)),
 * log(1 + f) = 2s + s R(s^2) with s = f / (2 + f) and R a minimax polynomial.
 */
export function log(x: number): number {
  if (!(x > 0) || x === Infinity) return Math.log(x); // 0, negative, NaN, Infinity: no last bit to agree on
  let hx = highWord(x);
  let k = 0;
  if (hx < 0x00100000) {
    k -= 54;
    x *= TWO54;
    hx = highWord(x);
  }
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const i = (hx + 0x95f64) & 0x100000;
  f64[0] = x;
  u32[HI] = hx | (i ^ 0x3ff00000);
  x = f64[0];
  k += i >> 20;
  const f = x - 1.0;
  const dk = k;
  if ((0x000fffff & (2 + hx)) < 3) {
    if (f === 0) return k === 0 ? 0 : dk * LN2_HI + dk * LN2_LO;
    const r = f * f * (0.5 - THIRD * f);
    return k === 0 ? f - r : dk * LN2_HI - ((r - dk * LN2_LO) - f);
  }
  const s = f / (2.0 + f);
  const z = s * s;
  const w = z * z;
  const above = (hx - 0x6147a) | (0x6b851 - hx);
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  const r = t2 + t1;
  if (above > 0) {
    const hfsq = 0.5 * f * f;
    return k === 0 ? f - (hfsq - s * (hfsq + r)) : dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f);
  }
  return k === 0 ? f - s * (f - r) : dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f);
}

const S1 = fromWords(0xbfc55555, 0x55555549);
const S2 = fromWords(0x3f811111, 0x1110f8a6);
const S3 = fromWords(0xbf2a01a0, 0x19c161d5);
const S4 = fromWords(0x3ec71de3, 0x57b1fe7d);
const S5 = fromWords(0xbe5ae5e6, 0x8a2b9ceb);
const S6 = fromWords(0x3de5d93a, 0x5acfd57c);
const C1 = fromWords(0x3fa55555, 0x5555554c);
const C2 = fromWords(0xbf56c16c, 0x16c15177);
const C3 = fromWords(0x3efa01a0, 0x19cb1590);
const C4 = fromWords(0xbe927e4f, 0x809c52ad);
const C5 = fromWords(0x3e21ee9e, 0xbdb4b1c4);
const C6 = fromWords(0xbda8fae9, 0xbe8838d4);

/** sin of x + y on [-pi/4, pi/4] (y the tail of a reduced argument; hasTail: y is not 0). */
function kernelSin(x: number, y: number, hasTail: boolean): number {
  if ((highWord(x) & 0x7fffffff) < 0x3e400000 && Math.trunc(x) === 0) return x;
  const z = x * x;
  const v = z * x;
  const r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  if (!hasTail) return x + v * (S1 + z * r);
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

/** cos of x + y on [-pi/4, pi/4]. */
function kernelCos(x: number, y: number): number {
  const ix = highWord(x) & 0x7fffffff;
  if (ix < 0x3e400000 && Math.trunc(x) === 0) return 1;
  const z = x * x;
  const r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  if (ix < 0x3fd33333) return 1.0 - (0.5 * z - (z * r - x * y));
  // Past 0.3: 1 - qx is exact for a qx near x^2 / 8, and what remains is small.
  const qx = ix > 0x3fe90000 ? 0.28125 : fromWords(ix - 0x00200000, 0);
  const hz = 0.5 * z - qx;
  const a = 1.0 - qx;
  return a - (hz - (z * r - x * y));
}

const INV_PIO2 = fromWords(0x3fe45f30, 0x6dc9c883);
const PIO2_1 = fromWords(0x3ff921fb, 0x54400000);
const PIO2_1T = fromWords(0x3dd0b461, 0x1a626331);
const PIO2_2 = fromWords(0x3dd0b461, 0x1a600000);
const PIO2_2T = fromWords(0x3ba3198a, 0x2e037073);
const PIO2_3 = fromWords(0x3ba3198a, 0x2e000000);
const PIO2_3T = fromWords(0x397b839a, 0x252049c1);
/** High words of n pi / 2, n = 1 .. 8: near them the first piece of pi / 2 cancels. */
const MULTIPLES_HIGH = [0x3ff921fb, 0x400921fb, 0x4012d97c, 0x401921fb, 0x401f6a7a, 0x4022d97c, 0x4025fdbb, 0x402921fb];
/** Where the reduction below holds: 2^19 pi / 2 (the deviates need [0, 2 pi)). */
export const SINCOS_LIMIT = fromWords(0x413921fb, 0);

const reduced = new Float64Array(2);

/**
 * x = n pi/2 + (y0 + y1), |y0 + y1| <= pi/4, for 0 <= x < SINCOS_LIMIT: Cody-Waite with pi/2 in
 * pieces of 33 bits and their tails, the second and third pieces only where the first cancels.
 * y0, y1 go to `reduced`; returns n.
 */
function reducePiOver2(x: number): number {
  const ix = highWord(x) & 0x7fffffff;
  if (ix <= 0x3fe921fb) {
    reduced[0] = x;
    reduced[1] = 0;
    return 0;
  }
  if (ix < 0x4002d97c) {
    let z = x - PIO2_1;
    if (ix !== 0x3ff921fb) {
      const y0 = z - PIO2_1T;
      reduced[0] = y0;
      reduced[1] = (z - y0) - PIO2_1T;
    } else {
      z -= PIO2_2;
      const y0 = z - PIO2_2T;
      reduced[0] = y0;
      reduced[1] = (z - y0) - PIO2_2T;
    }
    return 1;
  }
  const n = Math.trunc(x * INV_PIO2 + 0.5);
  const fn = n;
  let r = x - fn * PIO2_1;
  let w = fn * PIO2_1T;
  let y0: number;
  if (n <= 8 && ix !== MULTIPLES_HIGH[n - 1]) {
    y0 = r - w;
  } else {
    const j = ix >> 20;
    y0 = r - w;
    let lost = j - ((highWord(y0) >> 20) & 0x7ff);
    if (lost > 16) {
      let u = r;
      w = fn * PIO2_2;
      r = u - w;
      w = fn * PIO2_2T - ((u - r) - w);
      y0 = r - w;
      lost = j - ((highWord(y0) >> 20) & 0x7ff);
      if (lost > 49) {
        u = r;
        w = fn * PIO2_3;
        r = u - w;
        w = fn * PIO2_3T - ((u - r) - w);
        y0 = r - w;
      }
    }
  }
  reduced[0] = y0;
  reduced[1] = (r - y0) - w;
  return n;
}

/** [sin x, cos x] into `out` for 0 <= x < SINCOS_LIMIT, from one argument reduction. */
export function sinCos(x: number, out: Float64Array): Float64Array {
  if (!(x >= 0 && x < SINCOS_LIMIT)) {
    out[0] = Math.sin(x);
    out[1] = Math.cos(x);
    return out;
  }
  const n = reducePiOver2(x);
  const y0 = reduced[0];
  const y1 = reduced[1];
  const s = kernelSin(y0, y1, n !== 0);
  const c = kernelCos(y0, y1);
  switch (n & 3) {
    case 0:
      out[0] = s;
      out[1] = c;
      break;
    case 1:
      out[0] = c;
      out[1] = -s;
      break;
    case 2:
      out[0] = -s;
      out[1] = -c;
      break;
    default:
      out[0] = -c;
      out[1] = s;
  }
  return out;
}
