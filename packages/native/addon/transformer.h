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

// The shapes of a whole attention block: C replicas of B sequences of L tokens, H heads of dh.
struct AttentionShape {
  int64_t C, B, L, H, dh, d;
};

// The inputs both directions of the attention block read.
struct AttentionInputs {
  const float *q, *k, *v, *kr, *se, *rw, *rr, *rs, *seg;
};

// Both directions' shared arguments at info[first ..]: q, k, v, kr, segEmbed, rw, rr, rs, seg, with
// heads, L and replicas given; d = heads dh from rw [C, d], and B from `sized`, which holds
// L values (the mask) or heads L L values (the probabilities) for each of the C B sequences.
// Checks every shared input's length against the shape and points *in at them.
AttentionShape ReadAttention(const Napi::CallbackInfo& info, size_t first, const Napi::Float32Array& sized, bool sizedIsProb, int64_t H, int64_t L, int64_t C,
                             AttentionInputs* in) {
  Napi::Env env = info.Env();
  const char* names[] = {"q", "k", "v", "kr", "segEmbed", "rw", "rr", "rs", "seg"};
  std::vector<Napi::Float32Array> a;
  for (size_t i = 0; i < 9; ++i) a.push_back(F32(info, first + i, names[i]));
  if (H <= 0 || L <= 0 || C <= 0) throw Napi::RangeError::New(env, "heads, L and replicas must be >= 1");
  const int64_t rowSize = static_cast<int64_t>(a[5].ElementLength());
  if (rowSize == 0 || rowSize % C != 0 || (rowSize / C) % H != 0) throw Napi::RangeError::New(env, "rw is not a row of heads x dHead per replica");
  const int64_t d = rowSize / C;
  const int64_t perSequence = sizedIsProb ? H * L * L : L, sizedLength = static_cast<int64_t>(sized.ElementLength());
  if (sizedLength == 0 || sizedLength % (C * perSequence) != 0)
    throw Napi::RangeError::New(env, sizedIsProb ? "prob is not [replicas x B, heads, L, L]" : "mask is not [replicas x B, L]");
  const int64_t B = sizedLength / (C * perSequence);
  for (size_t i = 0; i < 3; ++i) AtLeast(env, a[i], C * B * L * d, names[i]);
  AtLeast(env, a[3], C * 2 * L * d, "kr");
  AtLeast(env, a[4], C * 2 * d, "segEmbed");
  for (size_t i = 6; i < 8; ++i) AtLeast(env, a[i], C * d, names[i]);
  AtLeast(env, a[8], L * L, "seg");
  *in = {a[0].Data(), a[1].Data(), a[2].Data(), a[3].Data(), a[4].Data(), a[5].Data(), a[6].Data(), a[7].Data(), a[8].Data()};
  return {C, B, L, H, d / H, d};
}

// Per sequence n and head h, the queries with the three head biases: Qw = q + r_w_bias, Qr = q +
// r_r_bias, Qs = q + r_s_bias ([L, dh] each, rows of dh), from q [.., L, d] at column h dh.
HOT void BiasedQueries(const float* __restrict q, const float* __restrict rw, const float* __restrict rr, const float* __restrict rs, float* __restrict qw,
                       float* __restrict qr, float* __restrict qs, int64_t L, int64_t dh, int64_t d) {
  for (int64_t i = 0; i < L; ++i) {
    const float* __restrict row = q + i * d;
    for (int64_t e = 0; e < dh; ++e) {
      qw[i * dh + e] = row[e] + rw[e];
      qr[i * dh + e] = row[e] + rr[e];
      qs[i * dh + e] = row[e] + rs[e];
    }
  }
}

// relAttentionBlock(q, k, v, kr, segEmbed, rw, rr, rs, seg, mask, out, prob, heads, L, replicas, scale):
// the whole relative-position attention of XLNet's content stream for C replicas of B sequences,
// every head, from the projections in token-major layout (no head transposes): for sequence n
// (replica c = n / B) and head h, with Q, K, V its [L, dh] slices of q, k, v [C, B L, d] (d = H dh),
// KR the head's [2L, dh] slice of kr [C, 2L, d] (the relative encodings' projection) and SE that of
// segEmbed [C, 2, d]:
//   AC = (Q + r_w_bias) K^T, BD = (Q + r_r_bias) KR^T [L, 2L], EF = (Q + r_s_bias) SE^T [L, 2],
//   score[i,j] = ((AC[i,j] + BD[i,L-i+j]) + (EF[i,0] + (EF[i,1] - EF[i,0]) seg[i,j])) scale + mask[n,j],
//   prob = softmax_j(score) (kept for the backward pass, [C B, H, L, L]), out = prob V, written
//   into out [C, B L, d] at the head's columns. rw, rr, rs: [C, d]. Threads take (n, h) pairs.
Napi::Value RelAttentionBlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 16) throw Napi::TypeError::New(env, "relAttentionBlock takes 16 arguments");
  Napi::Float32Array mask = F32(info, 9, "mask"), out = F32(info, 10, "out"), prob = F32(info, 11, "prob");
  AttentionInputs in;
  const AttentionShape s = ReadAttention(info, 0, mask, false, Int(info, 12, "heads"), Int(info, 13, "L"), Int(info, 14, "replicas"), &in);
  const float scale = info[15].As<Napi::Number>().FloatValue();
  const int64_t N = s.C * s.B, L = s.L, H = s.H, dh = s.dh, d = s.d;
  AtLeast(env, out, N * L * d, "out");
  AtLeast(env, prob, N * H * L * L, "prob");
  const float* pm = mask.Data();
  float* po = out.Data();
  float* pp = prob.Data();
  const double flops = 2.0 * L * dh * (4.0 * L + 2);
  Parallel(N * H, static_cast<int64_t>(flops * N * H / 4), [&](int64_t u0, int64_t u1, int) {
    std::vector<float> qw(static_cast<size_t>(3 * L * dh)), bd(static_cast<size_t>(L * 2 * L));
    float* qr = qw.data() + L * dh;
    float* qs = qr + L * dh;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / H, h = u % H, c = n / s.B;
      const int64_t tok = n * L * d + h * dh, row = c * d + h * dh;
      BiasedQueries(in.q + tok, in.rw + row, in.rr + row, in.rs + row, qw.data(), qr, qs, L, dh, d);
      float* P = pp + u * L * L;
      Gemm(false, true, L, L, dh, 1.0f, qw.data(), static_cast<int>(dh), in.k + tok, static_cast<int>(d), 0.0f, P, static_cast<int>(L));
      Gemm(false, true, L, 2 * L, dh, 1.0f, qr, static_cast<int>(dh), in.kr + c * 2 * L * d + h * dh, static_cast<int>(d), 0.0f, bd.data(), static_cast<int>(2 * L));
      const float* se0 = in.se + c * 2 * d + h * dh;
      const float* se1 = se0 + d;
      const float* m = pm + n * L;
      for (int64_t i = 0; i < L; ++i) {
        const float* __restrict qi = qs + i * dh;
        float e0 = 0, e1 = 0;
        for (int64_t e = 0; e < dh; ++e) {
          e0 += qi[e] * se0[e];
          e1 += qi[e] * se1[e];
        }
        const float de = e1 - e0;
        float* __restrict o = P + i * L;
        const float* __restrict b = bd.data() + i * 2 * L + (L - i);
        const float* __restrict sg = in.seg + i * L;
        float top = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          const float val = ((o[j] + b[j]) + (e0 + de * sg[j])) * scale + m[j];
          o[j] = val;
          top = val > top ? val : top;
        }
        SoftmaxTail(o, top, L);
      }
      Gemm(false, false, L, dh, L, 1.0f, P, static_cast<int>(L), in.v + tok, static_cast<int>(d), 0.0f, po + tok, static_cast<int>(d));
    }
  });
  return env.Undefined();
}

// relAttentionBlockGrad(dout, q, k, v, kr, segEmbed, rw, rr, rs, seg, prob, dq, dk, dv, dkr, dsegEmbed,
//                       drw, drr, drs, heads, L, replicas, scale): the backward pass of
// relAttentionBlock from the gradient of out, for every input but seg and mask. Per (n, h):
//   dP = dO V^T, dV = P^T dO, dS = P (dP - rowsum(dP P)) scale (the score's gradient),
//   dQw = dS K, dK = dS^T (Q + r_w_bias); dBD = dS at the shifted positions [L, 2L]:
//   dQr = dBD KR, dKR += dBD^T (Q + r_r_bias); dEF = (sum_j dS (1 - seg), sum_j dS seg):
//   dQs = dEF SE, dSE += dEF^T (Q + r_s_bias); dQ = (dQw + dQr) + dQs, and each bias's gradient
//   the sum of its dQ term over the replica's tokens. Threads take (replica, head) pairs, which
//   own their dKR, dSE and bias sums (in double), so the sums over sequences are in order.
Napi::Value RelAttentionBlockGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 23) throw Napi::TypeError::New(env, "relAttentionBlockGrad takes 23 arguments");
  Napi::Float32Array dout = F32(info, 0, "dout"), prob = F32(info, 10, "prob");
  Napi::Float32Array dq = F32(info, 11, "dq"), dk = F32(info, 12, "dk"), dv = F32(info, 13, "dv"), dkr = F32(info, 14, "dkr"), dse = F32(info, 15, "dsegEmbed");
  Napi::Float32Array drw = F32(info, 16, "drw"), drr = F32(info, 17, "drr"), drs = F32(info, 18, "drs");
  AttentionInputs in;
  const AttentionShape s = ReadAttention(info, 1, prob, true, Int(info, 19, "heads"), Int(info, 20, "L"), Int(info, 21, "replicas"), &in);
  const float scale = info[22].As<Napi::Number>().FloatValue();
  const int64_t C = s.C, B = s.B, N = C * B, L = s.L, H = s.H, dh = s.dh, d = s.d;
  for (auto* t : {&dout, &dq, &dk, &dv}) AtLeast(env, *t, N * L * d, "dout, dq, dk or dv");
  AtLeast(env, dkr, C * 2 * L * d, "dkr");
  AtLeast(env, dse, C * 2 * d, "dsegEmbed");
  for (auto* t : {&drw, &drr, &drs}) AtLeast(env, *t, C * d, "drw, drr or drs");
  const float* pdo = dout.Data();
  const float* pp = prob.Data();
  float* pdq = dq.Data();
  float* pdk = dk.Data();
  float* pdv = dv.Data();
  float* pdkr = dkr.Data();
  float* pdse = dse.Data();
  float* pdrw = drw.Data();
  float* pdrr = drr.Data();
  float* pdrs = drs.Data();
  const double flops = 2.0 * L * dh * (9.0 * L + 4);
  Parallel(C * H, static_cast<int64_t>(flops * N * H / 4), [&](int64_t u0, int64_t u1, int) {
    const size_t ld = static_cast<size_t>(L * dh);
    std::vector<float> buf(5 * ld + static_cast<size_t>(3 * L * L + 2 * L * dh + 2 * L));
    float* qw = buf.data();
    float* qr = qw + ld;
    float* qs = qr + ld;
    float* gw = qs + ld;  // dQw
    float* gr = gw + ld;  // dQr
    float* dP = gr + ld;  // [L, L]: dP, then dS
    float* dB = dP + L * L;  // [L, 2L]
    float* gkr = dB + 2 * L * L;  // [2L, dh]
    float* def = gkr + 2 * L * dh;  // [L, 2]
    std::vector<double> sums(static_cast<size_t>(5 * dh));  // dSE rows 0 and 1, drw, drr, drs
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t c = u / H, h = u % H, row = c * d + h * dh;
      const float* KR = in.kr + c * 2 * L * d + h * dh;
      const float* se0 = in.se + c * 2 * d + h * dh;
      const float* se1 = se0 + d;
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t n = c * B + bi, tok = n * L * d + h * dh;
        const float* P = pp + (n * H + h) * L * L;
        BiasedQueries(in.q + tok, in.rw + row, in.rr + row, in.rs + row, qw, qr, qs, L, dh, d);
        Gemm(false, true, L, L, dh, 1.0f, pdo + tok, static_cast<int>(d), in.v + tok, static_cast<int>(d), 0.0f, dP, static_cast<int>(L));
        Gemm(true, false, L, dh, L, 1.0f, P, static_cast<int>(L), pdo + tok, static_cast<int>(d), 0.0f, pdv + tok, static_cast<int>(d));
        std::memset(dB, 0, static_cast<size_t>(2 * L * L) * sizeof(float));
        for (int64_t i = 0; i < L; ++i) {
          float* __restrict g = dP + i * L;
          const float* __restrict p = P + i * L;
          const float* __restrict sg = in.seg + i * L;
          float* __restrict b = dB + i * 2 * L + (L - i);
          double dot = 0;
          for (int64_t j = 0; j < L; ++j) dot += static_cast<double>(g[j]) * p[j];
          const float cc = static_cast<float>(dot);
          double same = 0, other = 0;
          for (int64_t j = 0; j < L; ++j) {
            const float val = (p[j] * (g[j] - cc)) * scale;
            g[j] = val;
            b[j] = val;
            same += static_cast<double>(val) * (1.0f - sg[j]);
            other += static_cast<double>(val) * sg[j];
          }
          def[2 * i] = static_cast<float>(same);
          def[2 * i + 1] = static_cast<float>(other);
        }
        Gemm(false, false, L, dh, L, 1.0f, dP, static_cast<int>(L), in.k + tok, static_cast<int>(d), 0.0f, gw, static_cast<int>(dh));
        Gemm(true, false, L, dh, L, 1.0f, dP, static_cast<int>(L), qw, static_cast<int>(dh), 0.0f, pdk + tok, static_cast<int>(d));
        Gemm(false, false, L, dh, 2 * L, 1.0f, dB, static_cast<int>(2 * L), KR, static_cast<int>(d), 0.0f, gr, static_cast<int>(dh));
        Gemm(true, false, 2 * L, dh, L, 1.0f, dB, static_cast<int>(2 * L), qr, static_cast<int>(dh), bi == 0 ? 0.0f : 1.0f, gkr, static_cast<int>(dh));
        double* sse0 = sums.data();
        double* sse1 = sse0 + dh;
        double* srw = sse1 + dh;
        double* srr = srw + dh;
        double* srs = srr + dh;
        for (int64_t i = 0; i < L; ++i) {
          const float f0 = def[2 * i], f1 = def[2 * i + 1];
          float* __restrict out = pdq + tok + i * d;
          for (int64_t e = 0; e < dh; ++e) {
            const int64_t at = i * dh + e;
            const float gsv = f0 * se0[e] + f1 * se1[e];
            out[e] = (gw[at] + gr[at]) + gsv;
            sse0[e] += static_cast<double>(f0) * qs[at];
            sse1[e] += static_cast<double>(f1) * qs[at];
            srw[e] += gw[at];
            srr[e] += gr[at];
            srs[e] += gsv;
          }
        }
      }
      float* okr = pdkr + c * 2 * L * d + h * dh;
      for (int64_t p = 0; p < 2 * L; ++p) std::memcpy(okr + p * d, gkr + p * dh, static_cast<size_t>(dh) * sizeof(float));
      for (int64_t e = 0; e < dh; ++e) {
        pdse[c * 2 * d + h * dh + e] = static_cast<float>(sums[e]);
        pdse[c * 2 * d + d + h * dh + e] = static_cast<float>(sums[dh + e]);
        pdrw[row + e] = static_cast<float>(sums[2 * dh + e]);
        pdrr[row + e] = static_cast<float>(sums[3 * dh + e]);
        pdrs[row + e] = static_cast<float>(sums[4 * dh + e]);
      }
    }
  });
  return env.Undefined();
}
