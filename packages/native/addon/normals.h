// Standard normal deviates from the project's keyed xoshiro128** streams, equal to the bit to
// what RandomStream.nextNormal gives in JavaScript (packages/core/src/random/stream.ts).
//
// The JavaScript stream is Box-Muller over two 53-bit uniforms, with log, sin and cos from
// core's fdlibm.ts: the same arithmetic as fdlibm 5.3 (the algorithm V8 uses for Math.log,
// Math.sin and Math.cos), written out with basic IEEE operations only, so that every engine and
// this file give the same bits. The constants below are fdlibm's (given as bit patterns); the
// order of every operation follows fdlibm's, since a reordering changes the last bit. Compile
// with -ffp-contract=off (no fused multiply-add).
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>

namespace sgdlab_normals {

inline double FromBits(uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}
inline uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}
inline int32_t High(double d) { return static_cast<int32_t>(Bits(d) >> 32); }
inline double WithHigh(double d, uint32_t high) { return FromBits((Bits(d) & 0xffffffffull) | (static_cast<uint64_t>(high) << 32)); }

// Natural logarithm of a positive finite normal double (the uniforms here are at least 2^-53):
// x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)); log(1 + f) = 2s + s R(s^2), s = f / (2 + f).
inline double Log(double x) {
  const double ln2Hi = FromBits(0x3fe62e42fee00000ull), ln2Lo = FromBits(0x3dea39ef35793c76ull);
  const double lg1 = FromBits(0x3fe5555555555593ull), lg2 = FromBits(0x3fd999999997fa04ull), lg3 = FromBits(0x3fd2492494229359ull),
               lg4 = FromBits(0x3fcc71c51d8e78afull), lg5 = FromBits(0x3fc7466496cb03deull), lg6 = FromBits(0x3fc39a09d078c69full),
               lg7 = FromBits(0x3fc2f112df3e5244ull);
  int32_t hx = High(x);
  int32_t k = 0;
  if (hx < 0x00100000) {
    // Subnormal (never a uniform of 53 bits): scale by 2^54 first.
    k -= 54;
    x *= FromBits(0x4350000000000000ull);
    hx = High(x);
  }
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const int32_t i = (hx + 0x95f64) & 0x100000;
  x = WithHigh(x, static_cast<uint32_t>(hx | (i ^ 0x3ff00000)));  // x or x / 2, into [sqrt(2)/2, sqrt(2))
  k += i >> 20;
  const double f = x - 1.0;
  const double dk = static_cast<double>(k);
  if ((0x000fffff & (2 + hx)) < 3) {
    // |f| < 2^-20: a short series.
    if (f == 0.0) return k == 0 ? 0.0 : dk * ln2Hi + dk * ln2Lo;
    const double r = f * f * (0.5 - 0.33333333333333333 * f);
    return k == 0 ? f - r : dk * ln2Hi - ((r - dk * ln2Lo) - f);
  }
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double w = z * z;
  const int32_t above = (hx - 0x6147a) | (0x6b851 - hx);
  const double t1 = w * (lg2 + w * (lg4 + w * lg6));
  const double t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
  const double r = t2 + t1;
  if (above > 0) {
    const double hfsq = 0.5 * f * f;
    return k == 0 ? f - (hfsq - s * (hfsq + r)) : dk * ln2Hi - ((hfsq - (s * (hfsq + r) + dk * ln2Lo)) - f);
  }
  return k == 0 ? f - s * (f - r) : dk * ln2Hi - ((s * (f - r) - dk * ln2Lo) - f);
}

// sin on [-pi/4, pi/4] of x + y (y the tail of a reduced argument; hasTail = y is not 0).
inline double KernelSin(double x, double y, bool hasTail) {
  const double s1 = FromBits(0xbfc5555555555549ull), s2 = FromBits(0x3f8111111110f8a6ull), s3 = FromBits(0xbf2a01a019c161d5ull),
               s4 = FromBits(0x3ec71de357b1fe7dull), s5 = FromBits(0xbe5ae5e68a2b9cebull), s6 = FromBits(0x3de5d93a5acfd57cull);
  if ((High(x) & 0x7fffffff) < 0x3e400000 && static_cast<int>(x) == 0) return x;
  const double z = x * x;
  const double v = z * x;
  const double r = s2 + z * (s3 + z * (s4 + z * (s5 + z * s6)));
  if (!hasTail) return x + v * (s1 + z * r);
  return x - ((z * (0.5 * y - v * r) - y) - v * s1);
}

// cos on [-pi/4, pi/4] of x + y.
inline double KernelCos(double x, double y) {
  const double c1 = FromBits(0x3fa555555555554cull), c2 = FromBits(0xbf56c16c16c15177ull), c3 = FromBits(0x3efa01a019cb1590ull),
               c4 = FromBits(0xbe927e4f809c52adull), c5 = FromBits(0x3e21ee9ebdb4b1c4ull), c6 = FromBits(0xbda8fae9be8838d4ull);
  const int32_t ix = High(x) & 0x7fffffff;
  if (ix < 0x3e400000 && static_cast<int>(x) == 0) return 1.0;
  const double z = x * x;
  const double r = z * (c1 + z * (c2 + z * (c3 + z * (c4 + z * (c5 + z * c6)))));
  if (ix < 0x3fd33333) return 1.0 - (0.5 * z - (z * r - x * y));
  // Past 0.3, 1 - qx is exact for a qx near x^2 / 8 and the rest is small.
  const double qx = ix > 0x3fe90000 ? 0.28125 : FromBits(static_cast<uint64_t>(static_cast<uint32_t>(ix - 0x00200000)) << 32);
  const double hz = 0.5 * z - qx;
  const double a = 1.0 - qx;
  return a - (hz - (z * r - x * y));
}

// x = n pi/2 + (y0 + y1) with |y0 + y1| <= pi/4, for 0 <= x < 2^19 pi/2 (Cody-Waite with pi/2 in
// three pieces of 33 bits and their tails, a second and third piece only on cancellation).
inline int32_t ReducePiOver2(double x, double& y0, double& y1) {
  const double invPio2 = FromBits(0x3fe45f306dc9c883ull);
  const double pio2_1 = FromBits(0x3ff921fb54400000ull), pio2_1t = FromBits(0x3dd0b4611a626331ull);
  const double pio2_2 = FromBits(0x3dd0b4611a600000ull), pio2_2t = FromBits(0x3ba3198a2e037073ull);
  const double pio2_3 = FromBits(0x3ba3198a2e000000ull), pio2_3t = FromBits(0x397b839a252049c1ull);
  const int32_t ix = High(x) & 0x7fffffff;
  if (ix <= 0x3fe921fb) {
    y0 = x;
    y1 = 0;
    return 0;
  }
  if (ix < 0x4002d97c) {
    // Below 3 pi / 4: n = 1.
    double z = x - pio2_1;
    if (ix != 0x3ff921fb) {
      y0 = z - pio2_1t;
      y1 = (z - y0) - pio2_1t;
    } else {
      z -= pio2_2;
      y0 = z - pio2_2t;
      y1 = (z - y0) - pio2_2t;
    }
    return 1;
  }
  // High words of n pi / 2 for n = 1 .. 8: near them the first piece cancels.
  static const int32_t multiplesHigh[8] = {0x3ff921fb, 0x400921fb, 0x4012d97c, 0x401921fb, 0x401f6a7a, 0x4022d97c, 0x4025fdbb, 0x402921fb};
  const double t = x;
  const int32_t n = static_cast<int32_t>(t * invPio2 + 0.5);
  const double fn = static_cast<double>(n);
  double r = t - fn * pio2_1;
  double w = fn * pio2_1t;
  if (n <= 8 && ix != multiplesHigh[n - 1]) {
    y0 = r - w;
  } else {
    const int32_t j = ix >> 20;
    y0 = r - w;
    int32_t lost = j - ((High(y0) >> 20) & 0x7ff);
    if (lost > 16) {
      double u = r;
      w = fn * pio2_2;
      r = u - w;
      w = fn * pio2_2t - ((u - r) - w);
      y0 = r - w;
      lost = j - ((High(y0) >> 20) & 0x7ff);
      if (lost > 49) {
        u = r;
        w = fn * pio2_3;
        r = u - w;
        w = fn * pio2_3t - ((u - r) - w);
        y0 = r - w;
      }
    }
  }
  y1 = (r - y0) - w;
  return n;
}

// sin x and cos x for 0 <= x < 2^19 pi / 2 (one reduction for both).
inline void SinCos(double x, double& s, double& c) {
  double y0, y1;
  const int32_t n = ReducePiOver2(x, y0, y1);
  const bool tail = n != 0;
  const double ks = KernelSin(y0, y1, tail), kc = KernelCos(y0, y1);
  switch (n & 3) {
    case 0: s = ks; c = kc; break;
    case 1: s = kc; c = -ks; break;
    case 2: s = -ks; c = -kc; break;
    default: s = -kc; c = ks; break;
  }
}

// One xoshiro128** stream's state and its spare deviate (Box-Muller makes two).
struct Stream {
  uint32_t s[4];
  inline uint32_t Next() {
    const uint32_t x = s[1] * 5u;
    const uint32_t result = ((x << 7) | (x >> 25)) * 9u;
    const uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >> 21);
    return result;
  }
  // Uniform in [0, 1) from 27 + 26 bits, as nextDouble.
  inline double NextDouble() {
    const uint32_t hi = Next() >> 5, lo = Next() >> 6;
    return (static_cast<double>(hi) * 67108864.0 + static_cast<double>(lo)) * (1.0 / 9007199254740992.0);
  }
};

// Fills out[0..count) with std * N(0, 1) deviates as RandomStream.fillNormal does, spare included
// (hasSpare / spare carry the second value of a pair across calls).
template <typename T>
void FillNormal(Stream& st, uint8_t& hasSpare, double& spare, T* out, int64_t count, double std) {
  const double twoPi = 2 * 3.141592653589793;
  int64_t i = 0;
  if (count > 0 && hasSpare) {
    out[i++] = static_cast<T>(std * spare);
    hasSpare = 0;
  }
  for (; i < count; i += 2) {
    double u = 0;
    while (u == 0) u = st.NextDouble();
    const double v = st.NextDouble();
    const double r = std::sqrt(-2 * Log(u));
    double s, c;
    SinCos(twoPi * v, s, c);
    out[i] = static_cast<T>(std * (r * c));
    if (i + 1 < count) {
      out[i + 1] = static_cast<T>(std * (r * s));
    } else {
      spare = r * s;
      hasSpare = 1;
    }
  }
}


// ---- Eight streams at once ----------------------------------------------------------------------
// The same arithmetic in lanes, one stream per lane: xoshiro128** in 8 uint32 lanes, log and
// sin/cos in 8 double lanes. Every branch of the scalar code above is either computed in every
// lane and selected (bit for bit what the scalar branch computes: the n = 0 and n = 1 reductions
// are the general one with n fixed, exactly), or it is a rare case (u = 0, |f| < 2^-20 in log,
// an argument within 2^-20 of a multiple of pi / 2 on the high word, |y0| < 2^-27 in sin and cos:
// each a few in a million pairs) for which the whole pair of all 8 lanes is undone and drawn again
// by the scalar code. So the lanes give the scalar bits, which are JavaScript's.

typedef uint32_t U8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef double D8 __attribute__((vector_size(64)));
typedef int64_t L8 __attribute__((vector_size(64)));
typedef uint64_t Q8 __attribute__((vector_size(64)));

#define SGDLAB_LANE __attribute__((always_inline)) inline

SGDLAB_LANE D8 Splat(double v) { return D8{} + v; }
SGDLAB_LANE D8 AsDouble(Q8 b) { return (D8)b; }
SGDLAB_LANE Q8 AsBits(D8 d) { return (Q8)d; }
// Integers of magnitude < 2^51 as doubles, exactly (1.5 2^52 + k has k in its mantissa).
SGDLAB_LANE D8 IntToDouble(L8 k) { return AsDouble((Q8)k + 0x4338000000000000ull) - 6755399441055744.0; }
SGDLAB_LANE L8 HighWord(D8 d) { return (L8)(AsBits(d) >> 32); }

struct Lanes {
  U8 s0, s1, s2, s3;
  SGDLAB_LANE U8 Next() {
    const U8 x = s1 * 5u;
    const U8 result = ((x << 7) | (x >> 25)) * 9u;
    const U8 t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >> 21);
    return result;
  }
  SGDLAB_LANE D8 NextDouble() {
    const I8 hi = (I8)(Next() >> 5);
    const I8 lo = (I8)(Next() >> 6);
    return (__builtin_convertvector(hi, D8) * 67108864.0 + __builtin_convertvector(lo, D8)) * (1.0 / 9007199254740992.0);
  }
};

// Log of 8 uniforms in (0, 1) (never subnormal); rare |= the lanes of the short series (and u = 0).
SGDLAB_LANE D8 LogLanes(D8 x, L8& rare) {
  const double ln2Hi = FromBits(0x3fe62e42fee00000ull), ln2Lo = FromBits(0x3dea39ef35793c76ull);
  const double lg1 = FromBits(0x3fe5555555555593ull), lg2 = FromBits(0x3fd999999997fa04ull), lg3 = FromBits(0x3fd2492494229359ull),
               lg4 = FromBits(0x3fcc71c51d8e78afull), lg5 = FromBits(0x3fc7466496cb03deull), lg6 = FromBits(0x3fc39a09d078c69full),
               lg7 = FromBits(0x3fc2f112df3e5244ull);
  rare |= (x < 2.2250738585072014e-308);  // 0 or subnormal: never from 53-bit uniforms but u = 0
  L8 hx = HighWord(x);
  L8 k = (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const L8 i = (hx + 0x95f64) & 0x100000;
  const L8 high = hx | (i ^ 0x3ff00000);
  x = AsDouble((AsBits(x) & 0xffffffffull) | ((Q8)high << 32));
  k += i >> 20;
  const D8 f = x - 1.0;
  const D8 dk = IntToDouble(k);
  rare |= ((0x000fffff & (2 + hx)) < 3);
  const D8 s = f / (2.0 + f);
  const D8 z = s * s;
  const D8 w = z * z;
  const L8 above = (hx - 0x6147a) | (0x6b851 - hx);
  const D8 t1 = w * (lg2 + w * (lg4 + w * lg6));
  const D8 t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
  const D8 r = t2 + t1;
  const D8 hfsq = 0.5 * f * f;
  const D8 aboveK0 = f - (hfsq - s * (hfsq + r));
  const D8 aboveK = dk * ln2Hi - ((hfsq - (s * (hfsq + r) + dk * ln2Lo)) - f);
  const D8 belowK0 = f - s * (f - r);
  const D8 belowK = dk * ln2Hi - ((s * (f - r) - dk * ln2Lo) - f);
  const L8 k0 = k == 0;
  return above > 0 ? (k0 ? aboveK0 : aboveK) : (k0 ? belowK0 : belowK);
}

// sin and cos of 8 arguments in [0, 2 pi); rare |= the lanes the lanes do not cover.
SGDLAB_LANE void SinCosLanes(D8 x, D8& sOut, D8& cOut, L8& rare) {
  const double invPio2 = FromBits(0x3fe45f306dc9c883ull);
  const double pio2_1 = FromBits(0x3ff921fb54400000ull), pio2_1t = FromBits(0x3dd0b4611a626331ull);
  const double s1 = FromBits(0xbfc5555555555549ull), s2 = FromBits(0x3f8111111110f8a6ull), s3 = FromBits(0xbf2a01a019c161d5ull),
               s4 = FromBits(0x3ec71de357b1fe7dull), s5 = FromBits(0xbe5ae5e68a2b9cebull), s6 = FromBits(0x3de5d93a5acfd57cull);
  const double c1 = FromBits(0x3fa555555555554cull), c2 = FromBits(0xbf56c16c16c15177ull), c3 = FromBits(0x3efa01a019cb1590ull),
               c4 = FromBits(0xbe927e4f809c52adull), c5 = FromBits(0x3e21ee9ebdb4b1c4ull), c6 = FromBits(0xbda8fae9be8838d4ull);
  const L8 ix = HighWord(x) & 0x7fffffff;
  // n: 0 up to pi / 4, 1 below 3 pi / 4 (on the high word), else rounded x / (pi / 2).
  const L8 nGeneral = __builtin_convertvector(__builtin_convertvector(x * invPio2 + 0.5, I8), L8);
  const L8 n = ix <= 0x3fe921fb ? L8{} : (ix < 0x4002d97c ? L8{} + 1 : nGeneral);
  // Near a multiple of pi / 2 (on the high word) the scalar code cancels in more pieces.
  const L8 near = n == 1 ? L8{} + 0x3ff921fb : n == 2 ? L8{} + 0x400921fb : n == 3 ? L8{} + 0x4012d97c : L8{} + 0x401921fb;
  rare |= (n >= 1) & (ix == near);
  rare |= n > 4;
  const D8 fn = IntToDouble(n);
  const D8 r = x - fn * pio2_1;
  const D8 w = fn * pio2_1t;
  const D8 y0 = r - w;
  const D8 y1 = (r - y0) - w;
  const L8 iy = HighWord(y0) & 0x7fffffff;
  rare |= iy < 0x3e400000;
  const D8 z = y0 * y0;
  // sin
  const D8 v = z * y0;
  const D8 rs = s2 + z * (s3 + z * (s4 + z * (s5 + z * s6)));
  const D8 sinNoTail = y0 + v * (s1 + z * rs);
  const D8 sinTail = y0 - ((z * (0.5 * y1 - v * rs) - y1) - v * s1);
  const D8 ks = n != 0 ? sinTail : sinNoTail;
  // cos
  const D8 rc = z * (c1 + z * (c2 + z * (c3 + z * (c4 + z * (c5 + z * c6)))));
  const D8 cosSmall = 1.0 - (0.5 * z - (z * rc - y0 * y1));
  const L8 qBits = ((iy - 0x00200000) & 0xffffffff) << 32;
  const D8 qx = iy > 0x3fe90000 ? Splat(0.28125) : AsDouble((Q8)qBits);
  const D8 hz = 0.5 * z - qx;
  const D8 a = 1.0 - qx;
  const D8 cosLarge = a - (hz - (z * rc - y0 * y1));
  const D8 kc = iy < 0x3fd33333 ? cosSmall : cosLarge;
  const L8 q = n & 3;
  sOut = q == 0 ? ks : q == 1 ? kc : q == 2 ? -ks : -kc;
  cOut = q == 0 ? kc : q == 1 ? -ks : q == 2 ? -kc : ks;
}

SGDLAB_LANE D8 SqrtLanes(D8 x) {
  D8 r;
  for (int l = 0; l < 8; ++l) r[l] = __builtin_sqrt(x[l]);
  return r;
}

// Streams st[0..8), each with its spare, filled as FillNormal fills each: out[l] gets stream l's
// `count` deviates times std. Returns how many pairs the scalar code drew for rare lanes. Inlined
// into its caller, so that the lanes get the caller's instruction set (a target_clones function).
template <typename T>
SGDLAB_LANE int64_t FillNormal8(Stream* st, uint8_t* hasSpare, double* spare, T* const* out, int64_t count, double std) {
  int64_t start[8], pairs = INT64_MAX;
  for (int l = 0; l < 8; ++l) {
    start[l] = 0;
    if (count > 0 && hasSpare[l]) {
      out[l][0] = static_cast<T>(std * spare[l]);
      hasSpare[l] = 0;
      start[l] = 1;
    }
    pairs = std::min(pairs, (count - start[l]) / 2);
  }
  Lanes g;
  for (int l = 0; l < 8; ++l) {
    g.s0[l] = st[l].s[0];
    g.s1[l] = st[l].s[1];
    g.s2[l] = st[l].s[2];
    g.s3[l] = st[l].s[3];
  }
  const double twoPi = 2 * 3.141592653589793;
  int64_t scalarPairs = 0;
  for (int64_t p = 0; p < pairs; ++p) {
    const Lanes before = g;
    L8 rare = {};
    const D8 u = g.NextDouble();
    const D8 v = g.NextDouble();
    const D8 r = SqrtLanes(-2 * LogLanes(u, rare));
    D8 s, c;
    SinCosLanes(twoPi * v, s, c, rare);
    bool any = false;
    for (int l = 0; l < 8; ++l) any |= rare[l] != 0;
    if (__builtin_expect(any, 0)) {
      // Undo the pair in every lane and draw it with the scalar code.
      g = before;
      for (int l = 0; l < 8; ++l) {
        Stream one{{g.s0[l], g.s1[l], g.s2[l], g.s3[l]}};
        uint8_t none = 0;
        double unused = 0;
        FillNormal(one, none, unused, out[l] + start[l] + 2 * p, 2, std);
        g.s0[l] = one.s[0];
        g.s1[l] = one.s[1];
        g.s2[l] = one.s[2];
        g.s3[l] = one.s[3];
      }
      ++scalarPairs;
      continue;
    }
    const D8 first = std * (r * c), second = std * (r * s);
    for (int l = 0; l < 8; ++l) {
      T* o = out[l] + start[l] + 2 * p;
      o[0] = static_cast<T>(first[l]);
      o[1] = static_cast<T>(second[l]);
    }
  }
  for (int l = 0; l < 8; ++l) {
    st[l].s[0] = g.s0[l];
    st[l].s[1] = g.s1[l];
    st[l].s[2] = g.s2[l];
    st[l].s[3] = g.s3[l];
    // What is left (one value, or two for the lanes that had no spare): the scalar code.
    const int64_t done = start[l] + 2 * pairs;
    FillNormal(st[l], hasSpare[l], spare[l], out[l] + done, count - done, std);
  }
  return scalarPairs;
}
#undef SGDLAB_LANE

}  // namespace sgdlab_normals
