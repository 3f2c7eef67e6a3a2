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

}  // namespace sgdlab_normals
