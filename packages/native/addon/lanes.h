// Explicit SIMD lanes for the hot loops, as GCC vector types of 4 floats and 4 doubles (one
// float -> double conversion is then one instruction on AVX; the baseline clone splits it in two).
// GCC's own vectorizer packs loops with several double accumulators lane by lane, through scalar
// loads and inserts, at a fraction of the speed; these loops say what the lanes are. A sum keeps
// 8 lanes (two halves of 4) or 16 (four quarters, where one add per lane would wait on the last):
// lane l sums the elements j = l mod 8 (or 16) in order, and the lanes are added last in order, so
// every clone (AVX-512, AVX2, baseline) gives the same bits.
#pragma once

#include <cstdint>
#include <cstring>

namespace sgdlab_lanes {

typedef float F4 __attribute__((vector_size(16)));
typedef double D4 __attribute__((vector_size(32)));

#define SGDLAB_LANE __attribute__((always_inline)) inline
SGDLAB_LANE F4 LoadF(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SGDLAB_LANE D4 LoadD(const double* p) {
  D4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SGDLAB_LANE void Store(double* p, D4 v) { std::memcpy(p, &v, sizeof v); }
SGDLAB_LANE D4 Widen(F4 v) { return __builtin_convertvector(v, D4); }
// s + lo[0] + ... + lo[3] + hi[0] + ... + hi[3], in that order.
SGDLAB_LANE double AddLanes(double s, D4 lo, D4 hi) {
  for (int l = 0; l < 4; ++l) s += lo[l];
  for (int l = 0; l < 4; ++l) s += hi[l];
  return s;
}
#undef SGDLAB_LANE

}  // namespace sgdlab_lanes
