// Fused pieces of a transformer encoder layer (the XLNet setting), forward and backward, on the
// TypedArrays of TensorFlow.js's cpu data store. Each replaces a chain of a dozen or more
// element-wise kernels and their autodiff counterparts with one pass over the data.
//
// Tensors of a stacked block carry `groups` replicas: a [groups, rows, n] activation with a
// [groups, n] parameter row (bias, gamma, beta) per replica; per replica, groups = 1.
//
// Included by sgd_native.cc inside its anonymous namespace, after Parallel, F32 and Int.

// Throws unless `a` holds at least n floats.
inline void AtLeast(const Napi::Env& env, const Napi::Float32Array& a, int64_t n, const char* name) {
  if (static_cast<int64_t>(a.ElementLength()) < n) throw Napi::RangeError::New(env, std::string(name) + " is too short: " + std::to_string(a.ElementLength()) + " < " + std::to_string(n));
}

// Columns per unit of work in the column reductions (a cache line of accumulators or four).
constexpr int64_t kColumnBlock = 64;

// For each group g and column j: out[g n + j] = sum over the group's rows of f(r, j), in double,
// one unit of work per group and block of columns (deterministic: rows in order).
template <typename F>
void ColumnReduce(int64_t groups, int64_t rows, int64_t n, float* out, F f) {
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  Parallel(groups * blocks, groups * rows * n, [&](int64_t u0, int64_t u1, int) {
    double acc[kColumnBlock];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t g = u / blocks, j0 = (u % blocks) * kColumnBlock, w = std::min(kColumnBlock, n - j0);
      std::fill(acc, acc + w, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t base = (g * rows + r) * n + j0;
        for (int64_t j = 0; j < w; ++j) acc[j] += f(base + j, g * n + j0 + j);
      }
      for (int64_t j = 0; j < w; ++j) out[g * n + j0 + j] = static_cast<float>(acc[j]);
    }
  });
}

// scatterAddRows(src, width, rows, dst): dst = 0, then dst row rows[i] += src row i for every i
// (an embedding table's gradient; repeated ids sum, in index order). Threads own row ranges of dst.
Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "scatterAddRows takes 4 arguments");
  Napi::Float32Array src = F32(info, 0, "src");
  const int64_t width = Int(info, 1, "width");
  Napi::Float32Array dst = F32(info, 3, "dst");
  const int64_t count = width == 0 ? 0 : static_cast<int64_t>(dst.ElementLength()) / width;
  int64_t n;
  const int32_t* pr = TableRows(info, 2, count, &n);
  AtLeast(env, src, n * width, "src");
  const float* ps = src.Data();
  float* pd = dst.Data();
  Parallel(count, count * width + n * width, [&](int64_t r0, int64_t r1, int) {
    std::memset(pd + r0 * width, 0, static_cast<size_t>((r1 - r0) * width) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = pr[i];
      if (r < r0 || r >= r1) continue;
      float* __restrict d = pd + r * width;
      const float* __restrict s = ps + i * width;
      for (int64_t j = 0; j < width; ++j) d[j] += s[j];
    }
  });
  return env.Undefined();
}

// exp(x) for x <= 0 without a branch or a library call, so that the loops around it vectorize:
// x = n ln2 + r with |r| <= ln2 / 2, the reduction in double (so that an argument such as
// -v^2 / 2, formed in double from a float v, keeps its precision: in float its rounding alone
// would cost 8e-6 relative at v = 12), exp(r) by its Taylor polynomial to r^7 in float
// (truncation below 6e-9 relative), 2^n put into the exponent bits. Below -87 (where exp(x) <
// 2^-125) it is 0, as a masked score's weight must be.
inline float ExpNonPositive(double x) {
  const bool under = x < -87.0;
  x = under ? -87.0 : x;
  const double n = std::floor(x * 1.4426950408889634 + 0.5);
  const float r = static_cast<float>(x - n * 0.6931471805599453);
  const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f + r * (8.33333377e-3f + r * (1.38888892e-3f + r * 1.98412701e-4f))))));
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return under ? 0.0f : p * scale;
}

// The standard normal CDF Phi(v) and exp(-v^2 / 2), from erfc(a) = exp(-a^2) R(t), a = |v| / sqrt 2,
// t = 1 / (1 + a / 2): R is a degree-10 polynomial in t fitted here to erfc(a) exp(a^2) on
// [0, 9] (relative error 8e-8 with these float coefficients; about 3e-7 evaluated in float).
// Phi(v) = erfc(a) / 2 for v < 0, so the lower tail keeps its relative precision (1 + erf(v / sqrt 2)
// in float loses it).
inline void NormalCdf(float v, float* cdf, float* gauss) {
  float a = std::fabs(v) * 0.707106781f;
  a = a > 9.0f ? 9.0f : a;
  const float t = 1.0f / (1.0f + 0.5f * a);
  float r = 2.879779666e-02f;
  r = r * t - 2.166445232e-01f;
  r = r * t + 6.594192013e-01f;
  r = r * t - 9.961514881e-01f;
  r = r * t + 7.135040347e-01f;
  r = r * t - 2.711583849e-01f;
  r = r * t + 2.937174163e-01f;
  r = r * t + 2.209722941e-01f;
  r = r * t + 2.857339883e-01f;
  r = r * t + 2.817991125e-01f;
  r = r * t + 1.053479139e-05f;
  const float g = ExpNonPositive(-0.5 * static_cast<double>(v) * v);
  const float half = 0.5f * g * r;
  *cdf = v < 0 ? half : 1.0f - half;
  *gauss = g;
}

// Rows of GELU (exact: v Phi(v)) of a + bias.
HOT void GeluRow(const float* __restrict a, const float* __restrict b, float* __restrict o, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float v = a[j] + b[j];
    float cdf, g;
    NormalCdf(v, &cdf, &g);
    o[j] = v * cdf;
  }
}

// dx = dy gelu'(a + bias) = dy (Phi(v) + v phi(v)) over a row piece; acc += dx.
HOT void GeluGradRow(const float* __restrict dy, const float* __restrict a, const float* __restrict b, float* __restrict dx, double* __restrict acc, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float v = a[j] + b[j];
    float cdf, g;
    NormalCdf(v, &cdf, &g);
    const float d = dy[j] * (cdf + v * (0.398942280f * g));
    dx[j] = d;
    acc[j] += d;
  }
}

// Reads groups, rows, n from the sizes of x and of the per-group row (bias): n given.
void GroupShape(const Napi::Env& env, int64_t xSize, int64_t rowSize, int64_t n, int64_t* groups, int64_t* rows) {
  if (n <= 0 || rowSize % n != 0 || rowSize == 0) throw Napi::RangeError::New(env, "the parameter row's size is not a multiple of n");
  *groups = rowSize / n;
  if (xSize % (*groups * n) != 0) throw Napi::RangeError::New(env, "x's size is not groups x rows x n");
  *rows = xSize / (*groups * n);
}

// biasGelu(x, bias, out, n): out = gelu(x + bias), x [groups, rows, n], bias [groups, n].
Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "biasGelu takes 4 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), bias = F32(info, 1, "bias"), out = F32(info, 2, "out");
  const int64_t n = Int(info, 3, "n");
  int64_t groups, rows;
  GroupShape(env, static_cast<int64_t>(x.ElementLength()), static_cast<int64_t>(bias.ElementLength()), n, &groups, &rows);
  AtLeast(env, out, groups * rows * n, "out");
  const float* px = x.Data();
  const float* pb = bias.Data();
  float* po = out.Data();
  Parallel(groups * rows, groups * rows * n * 8, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q) GeluRow(px + q * n, pb + (q / rows) * n, po + q * n, n);
  });
  return env.Undefined();
}

// biasGeluGrad(dy, x, bias, dx, dbias, n): dx = dy gelu'(x + bias) and dbias = dx summed over
// each group's rows.
Napi::Value BiasGeluGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 6) throw Napi::TypeError::New(env, "biasGeluGrad takes 6 arguments");
  Napi::Float32Array dy = F32(info, 0, "dy"), x = F32(info, 1, "x"), bias = F32(info, 2, "bias"), dx = F32(info, 3, "dx"), dbias = F32(info, 4, "dbias");
  const int64_t n = Int(info, 5, "n");
  int64_t groups, rows;
  GroupShape(env, static_cast<int64_t>(x.ElementLength()), static_cast<int64_t>(bias.ElementLength()), n, &groups, &rows);
  const int64_t size = groups * rows * n;
  AtLeast(env, dy, size, "dy");
  AtLeast(env, dx, size, "dx");
  AtLeast(env, dbias, groups * n, "dbias");
  const float* pdy = dy.Data();
  const float* px = x.Data();
  const float* pb = bias.Data();
  float* pdx = dx.Data();
  // dx and the bias sums in one pass: a unit of work walks the rows of a group's column block.
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
  float* pdb = dbias.Data();
  Parallel(groups * blocks, size * 8, [&](int64_t u0, int64_t u1, int) {
    double acc[kColumnBlock];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t g = u / blocks, j0 = (u % blocks) * kColumnBlock, w = std::min(kColumnBlock, n - j0);
      std::fill(acc, acc + w, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t base = (g * rows + r) * n + j0;
        GeluGradRow(pdy + base, px + base, pb + g * n + j0, pdx + base, acc, w);
      }
      for (int64_t j = 0; j < w; ++j) pdb[g * n + j0 + j] = static_cast<float>(acc[j]);
    }
  });
  return env.Undefined();
}

// addLayerNorm(a, b, bias|null, gamma, beta, y, xhat, rstd, n, eps): per row of n,
// x = (a + bias) + b, xhat = (x - mean) / sqrt(var + eps) (float32 mean, double sums), y = xhat
// gamma + beta; rstd[row] = 1 / sqrt(var + eps). a, b [groups, rows, n]; bias, gamma, beta
// [groups, n]. The residual sum and the feed-forward's output bias enter in the same pass.
Napi::Value AddLayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 10) throw Napi::TypeError::New(env, "addLayerNorm takes 10 arguments");
  Napi::Float32Array a = F32(info, 0, "a"), b = F32(info, 1, "b"), gamma = F32(info, 3, "gamma"), beta = F32(info, 4, "beta");
  Napi::Float32Array y = F32(info, 5, "y"), xhat = F32(info, 6, "xhat"), rstd = F32(info, 7, "rstd");
  const bool withBias = !info[2].IsNull();
  Napi::Float32Array bias = withBias ? F32(info, 2, "bias") : gamma;
  const int64_t n = Int(info, 8, "n");
  const float eps = info[9].As<Napi::Number>().FloatValue();
  int64_t groups, rows;
  GroupShape(env, static_cast<int64_t>(a.ElementLength()), static_cast<int64_t>(gamma.ElementLength()), n, &groups, &rows);
  const int64_t size = groups * rows * n;
  for (auto* t : {&b, &y, &xhat}) AtLeast(env, *t, size, "b, y or xhat");
  AtLeast(env, beta, groups * n, "beta");
  AtLeast(env, bias, groups * n, "bias");
  AtLeast(env, rstd, groups * rows, "rstd");
  const float* pa = a.Data();
  const float* pb = b.Data();
  const float* pc = withBias ? bias.Data() : nullptr;
  const float* pg = gamma.Data();
  const float* pbe = beta.Data();
  float* py = y.Data();
  float* ph = xhat.Data();
  float* pr = rstd.Data();
  Parallel(groups * rows, size * 4, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t g = (q / rows) * n;
      const float* __restrict ar = pa + q * n;
      const float* __restrict br = pb + q * n;
      float* __restrict yr = py + q * n;
      float* __restrict hr = ph + q * n;
      double sum = 0;
      if (pc) {
        const float* __restrict cr = pc + g;
        for (int64_t j = 0; j < n; ++j) yr[j] = (ar[j] + cr[j]) + br[j];
      } else {
        for (int64_t j = 0; j < n; ++j) yr[j] = ar[j] + br[j];
      }
      for (int64_t j = 0; j < n; ++j) sum += yr[j];
      const float mean = static_cast<float>(sum / n);
      double ss = 0;
      for (int64_t j = 0; j < n; ++j) {
        const float d = yr[j] - mean;
        ss += static_cast<double>(d) * d;
      }
      const float r = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
      pr[q] = r;
      const float* __restrict gr = pg + g;
      const float* __restrict er = pbe + g;
      for (int64_t j = 0; j < n; ++j) {
        const float h = (yr[j] - mean) * r;
        hr[j] = h;
        yr[j] = h * gr[j] + er[j];
      }
    }
  });
  return env.Undefined();
}

// layerNormGrad(dy, xhat, rstd, gamma, dx, dgamma, dbeta, dbias|null, n): the backward pass of
// addLayerNorm. dx = rstd (dy gamma - mean(dy gamma) - xhat mean(dy gamma xhat)) per row (the
// gradient of a, of b and of x); per group, dgamma = sum of dy xhat, dbeta = sum of dy and
// dbias = sum of dx over its rows.
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "layerNormGrad takes 9 arguments");
  Napi::Float32Array dy = F32(info, 0, "dy"), xhat = F32(info, 1, "xhat"), rstd = F32(info, 2, "rstd"), gamma = F32(info, 3, "gamma");
  Napi::Float32Array dx = F32(info, 4, "dx"), dgamma = F32(info, 5, "dgamma"), dbeta = F32(info, 6, "dbeta");
  const bool withBias = !info[7].IsNull();
  Napi::Float32Array dbias = withBias ? F32(info, 7, "dbias") : dbeta;
  const int64_t n = Int(info, 8, "n");
  int64_t groups, rows;
  GroupShape(env, static_cast<int64_t>(dy.ElementLength()), static_cast<int64_t>(gamma.ElementLength()), n, &groups, &rows);
  const int64_t size = groups * rows * n;
  AtLeast(env, xhat, size, "xhat");
  AtLeast(env, dx, size, "dx");
  AtLeast(env, rstd, groups * rows, "rstd");
  for (auto* t : {&dgamma, &dbeta, &dbias}) AtLeast(env, *t, groups * n, "dgamma, dbeta or dbias");
  const float* pdy = dy.Data();
  const float* ph = xhat.Data();
  const float* pr = rstd.Data();
  const float* pg = gamma.Data();
  float* pdx = dx.Data();
  Parallel(groups * rows, size * 4, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q) {
      const float* __restrict gr = pg + (q / rows) * n;
      const float* __restrict d = pdy + q * n;
      const float* __restrict h = ph + q * n;
      float* __restrict o = pdx + q * n;
      double s1 = 0, s2 = 0;
      for (int64_t j = 0; j < n; ++j) {
        const float t = d[j] * gr[j];
        s1 += t;
        s2 += static_cast<double>(t) * h[j];
      }
      const float m1 = static_cast<float>(s1 / n), m2 = static_cast<float>(s2 / n), r = pr[q];
      for (int64_t j = 0; j < n; ++j) o[j] = r * ((d[j] * gr[j] - m1) - h[j] * m2);
    }
  });
  ColumnReduce(groups, rows, n, dgamma.Data(), [&](int64_t i, int64_t) { return static_cast<double>(pdy[i]) * ph[i]; });
  ColumnReduce(groups, rows, n, dbeta.Data(), [&](int64_t i, int64_t) { return static_cast<double>(pdy[i]); });
  if (withBias) ColumnReduce(groups, rows, n, dbias.Data(), [&](int64_t i, int64_t) { return static_cast<double>(pdx[i]); });
  return env.Undefined();
}

// o = exp(o - top) / sum, top = max(o) (so every argument is <= 0).
HOT void SoftmaxTail(float* __restrict o, float top, int64_t n) {
  for (int64_t j = 0; j < n; ++j) o[j] = ExpNonPositive(o[j] - top);
  // The sum over independent lanes (a single float accumulator would not vectorize), then in double.
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) lane[k] += o[j + k];
  double sum = 0;
  for (int k = 0; k < 8; ++k) sum += lane[k];
  for (; j < n; ++j) sum += o[j];
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) o[j] *= inv;
}

// relAttention(ac, bd, ef, seg, mask, prob, heads, L, scale): XLNet's attention probabilities
// from its three score terms, for N sequences of L tokens and `heads` heads:
//   score[n,h,i,j] = ((ac[n,h,i,j] + bd[n,h,i,L-i+j]) + (ef0 + (ef1 - ef0) seg[i,j])) scale + mask[n,j]
// (bd against the 2L relative positions, read through the relative shift; ef [N,H,L,2] the
// segment term for the same and the other segment; mask additive, -1e30 on padding), then the
// softmax over j. ac, prob [N,H,L,L]; bd [N,H,L,2L]; seg [L,L]; mask [N,L].
Napi::Value RelAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "relAttention takes 9 arguments");
  Napi::Float32Array ac = F32(info, 0, "ac"), bd = F32(info, 1, "bd"), ef = F32(info, 2, "ef"), seg = F32(info, 3, "seg"), mask = F32(info, 4, "mask"), prob = F32(info, 5, "prob");
  const int64_t H = Int(info, 6, "heads"), L = Int(info, 7, "L");
  const float scale = info[8].As<Napi::Number>().FloatValue();
  if (H == 0 || L == 0) return env.Undefined();
  const int64_t N = static_cast<int64_t>(mask.ElementLength()) / L;
  const int64_t R = N * H * L;
  AtLeast(env, ac, R * L, "ac");
  AtLeast(env, bd, R * 2 * L, "bd");
  AtLeast(env, ef, R * 2, "ef");
  AtLeast(env, seg, L * L, "seg");
  AtLeast(env, prob, R * L, "prob");
  const float* pa = ac.Data();
  const float* pbd = bd.Data();
  const float* pe = ef.Data();
  const float* ps = seg.Data();
  const float* pm = mask.Data();
  float* pp = prob.Data();
  Parallel(R, R * L * 8, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i = q % L, n = q / (H * L);
      const float* __restrict a = pa + q * L;
      const float* __restrict b = pbd + q * 2 * L + (L - i);
      const float* __restrict s = ps + i * L;
      const float* __restrict m = pm + n * L;
      float* __restrict o = pp + q * L;
      const float e0 = pe[2 * q], de = pe[2 * q + 1] - e0;
      float top = -INFINITY;
      for (int64_t j = 0; j < L; ++j) {
        const float v = ((a[j] + b[j]) + (e0 + de * s[j])) * scale + m[j];
        o[j] = v;
        top = v > top ? v : top;
      }
      SoftmaxTail(o, top, L);
    }
  });
  return env.Undefined();
}

// relAttentionGrad(dprob, prob, seg, dac, dbd, def, heads, L, scale): the backward pass of
// relAttention: ds = prob (dprob - sum_j dprob prob) scale; dac = ds; dbd = ds at the shifted
// positions L-i+j and 0 elsewhere; def = (sum_j ds (1 - seg), sum_j ds seg).
Napi::Value RelAttentionGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "relAttentionGrad takes 9 arguments");
  Napi::Float32Array dprob = F32(info, 0, "dprob"), prob = F32(info, 1, "prob"), seg = F32(info, 2, "seg"), dac = F32(info, 3, "dac"), dbd = F32(info, 4, "dbd"), def = F32(info, 5, "def");
  const int64_t H = Int(info, 6, "heads"), L = Int(info, 7, "L");
  const float scale = info[8].As<Napi::Number>().FloatValue();
  if (H == 0 || L == 0) return env.Undefined();
  const int64_t R = static_cast<int64_t>(prob.ElementLength()) / L;
  AtLeast(env, dprob, R * L, "dprob");
  AtLeast(env, seg, L * L, "seg");
  AtLeast(env, dac, R * L, "dac");
  AtLeast(env, dbd, R * 2 * L, "dbd");
  AtLeast(env, def, R * 2, "def");
  const float* pd = dprob.Data();
  const float* pp = prob.Data();
  const float* ps = seg.Data();
  float* pa = dac.Data();
  float* pb = dbd.Data();
  float* pe = def.Data();
  Parallel(R, R * L * 6, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i = q % L;
      const float* __restrict d = pd + q * L;
      const float* __restrict p = pp + q * L;
      const float* __restrict s = ps + i * L;
      float* __restrict a = pa + q * L;
      float* __restrict b = pb + q * 2 * L;
      double dot = 0;
      for (int64_t j = 0; j < L; ++j) dot += static_cast<double>(d[j]) * p[j];
      const float c = static_cast<float>(dot);
      std::memset(b, 0, static_cast<size_t>(2 * L) * sizeof(float));
      double same = 0, other = 0;
      for (int64_t j = 0; j < L; ++j) {
        const float g = (p[j] * (d[j] - c)) * scale;
        a[j] = g;
        b[L - i + j] = g;
        same += static_cast<double>(g) * (1.0f - s[j]);
        other += static_cast<double>(g) * s[j];
      }
      pe[2 * q] = static_cast<float>(same);
      pe[2 * q + 1] = static_cast<float>(other);
    }
  });
  return env.Undefined();
}
