// The whole stochastic-gradient step of a stacked ReLU MLP with softmax cross-entropy (the MNIST
// setting) in one call: a replica at a time on each of the pool's threads, so that a replica's
// weights, batch and activations stay in that core's cache from the forward pass to the last
// weight gradient, and no thread waits for another between the layers (the composed step is a
// dozen kernels, each split over the threads and joined again).
//
// Included by sgd_native.cc inside its anonymous namespace, after Gemm, Parallel, F32 and Int.

// mlpStep(x, y, weights[], biases[], widths[], b, gradW[], gradB[], lossOut): for every replica r
// (lossOut's length R) of the MLP widths[0] -> ... -> widths[L], ReLU between the layers:
//   A_0 = x_r [b, w_0], A_{k+1} = relu(A_k W_k + b_k) (no ReLU on the last: the logits),
//   lossOut[r] = the mean over the b rows of -sum_j y_ij log softmax(logits)_ij,
//   D = (softmax(logits) - y_r) / b, then from the top layer down:
//   gradW_k = A_k^T D, gradB_k = the column sums of D, D <- (D W_k^T) step(A_k).
// weights[k], gradW[k]: [R, w_k, w_(k+1)]; biases[k], gradB[k]: [R, 1, w_(k+1)]; x: [R, b, w_0];
// y: [R, b, w_L] (one-hot rows).
Napi::Value MlpStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9) throw Napi::TypeError::New(env, "mlpStep takes 9 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), y = F32(info, 1, "y"), loss = F32(info, 8, "lossOut");
  const std::vector<int64_t> widths = Ints(info, 4, "widths");
  const int64_t b = Int(info, 5, "b");
  if (widths.size() < 2) throw Napi::RangeError::New(env, "widths needs an input and an output width");
  for (int64_t w : widths)
    if (w <= 0 || w > INT32_MAX) throw Napi::RangeError::New(env, "widths must be positive");
  if (b == 0 || b > INT32_MAX) throw Napi::RangeError::New(env, "b must be >= 1");
  const size_t L = widths.size() - 1;
  const int64_t runs = static_cast<int64_t>(loss.ElementLength());
  const int64_t p = widths[0], o = widths[L];
  if (static_cast<int64_t>(x.ElementLength()) < runs * b * p) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(y.ElementLength()) < runs * b * o) throw Napi::RangeError::New(env, "y is too short");
  std::vector<int64_t> wSize(L), bSize(L);
  for (size_t k = 0; k < L; ++k) {
    wSize[k] = runs * widths[k] * widths[k + 1];
    bSize[k] = runs * widths[k + 1];
  }
  const std::vector<float*> W = LayerArrays(info, 2, "weights", wSize), B = LayerArrays(info, 3, "biases", bSize);
  const std::vector<float*> GW = LayerArrays(info, 6, "gradW", wSize), GB = LayerArrays(info, 7, "gradB", bSize);
  const float* px = x.Data();
  const float* py = y.Data();
  float* pl = loss.Data();
  // Activations A_1 .. A_L (A_L: the logits, then D) at aOff[k]; two buffers for D.
  std::vector<int64_t> aOff(L + 1, 0);
  for (size_t k = 1; k <= L; ++k) aOff[k] = aOff[k - 1] + b * widths[k];
  int64_t widest = 0;
  double flops = 0;
  for (size_t k = 0; k < L; ++k) {
    widest = std::max(widest, widths[k + 1]);
    flops += 2.0 * b * widths[k] * widths[k + 1] * (k == 0 ? 2 : 3);
  }
  for (int64_t w : widths) widest = std::max(widest, w);
  const float bf = static_cast<float>(b);
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g_threads, runs)));
  const int nparts = threads > 1 && flops * runs > 2e6 ? threads : 1;
  const std::function<void(int)> job = [&](int part) {
    std::vector<float> acts(static_cast<size_t>(aOff[L])), d0(static_cast<size_t>(b * widest)), d1(static_cast<size_t>(b * widest));
    std::vector<double> colSum(static_cast<size_t>(widest)), expRow(static_cast<size_t>(o));
    double* e = expRow.data();
    for (int64_t r = runs * part / nparts; r < runs * (part + 1) / nparts; ++r) {
      // Forward.
      const float* in = px + r * b * p;
      for (size_t k = 0; k < L; ++k) {
        const int64_t nIn = widths[k], nOut = widths[k + 1];
        float* z = acts.data() + aOff[k];  // A_(k+1) lives at aOff[k]
        Gemm(false, false, b, nOut, nIn, 1.0f, in, static_cast<int>(nIn), W[k] + r * nIn * nOut, static_cast<int>(nOut), 0.0f, z, static_cast<int>(nOut));
        const float* bias = B[k] + r * nOut;
        const bool relu = k + 1 < L;
        for (int64_t i = 0; i < b; ++i) {
          float* row = z + i * nOut;
          for (int64_t j = 0; j < nOut; ++j) {
            const float v = row[j] + bias[j];
            row[j] = relu ? (v > 0 ? v : 0.0f) : v;
          }
        }
        in = z;
      }
      // Softmax cross-entropy and D = (softmax - y) / b.
      const float* logits = acts.data() + aOff[L - 1];
      const float* yr = py + r * b * o;
      float* d = d0.data();
      double total = 0;
      for (int64_t i = 0; i < b; ++i) {
        const float* l = logits + i * o;
        float top = l[0];
        for (int64_t j = 1; j < o; ++j) top = std::max(top, l[j]);
        double sum = 0;
        for (int64_t j = 0; j < o; ++j) {
          e[j] = std::exp(static_cast<double>(l[j] - top));
          sum += e[j];
        }
        const double logSum = std::log(sum);
        double ce = 0;
        for (int64_t j = 0; j < o; ++j) {
          ce -= static_cast<double>(yr[i * o + j]) * (static_cast<double>(l[j] - top) - logSum);
          const float prob = static_cast<float>(e[j] / sum);
          d[i * o + j] = (prob - yr[i * o + j]) / bf;
        }
        total += ce;
      }
      pl[r] = static_cast<float>(total / static_cast<double>(b));
      // Backward, from the top layer down.
      float* spare = d1.data();
      for (size_t kk = L; kk-- > 0;) {
        const int64_t nIn = widths[kk], nOut = widths[kk + 1];
        const float* a = kk == 0 ? px + r * b * p : acts.data() + aOff[kk - 1];  // A_kk
        Gemm(true, false, nIn, nOut, b, 1.0f, a, static_cast<int>(nIn), d, static_cast<int>(nOut), 0.0f, GW[kk] + r * nIn * nOut, static_cast<int>(nOut));
        float* gb = GB[kk] + r * nOut;
        std::fill(colSum.begin(), colSum.begin() + nOut, 0.0);
        for (int64_t i = 0; i < b; ++i)
          for (int64_t j = 0; j < nOut; ++j) colSum[j] += d[i * nOut + j];
        for (int64_t j = 0; j < nOut; ++j) gb[j] = static_cast<float>(colSum[j]);
        if (kk == 0) break;
        Gemm(false, true, b, nIn, nOut, 1.0f, d, static_cast<int>(nOut), W[kk] + r * nIn * nOut, static_cast<int>(nOut), 0.0f, spare, static_cast<int>(nIn));
        // Through the ReLU: A_kk > 0 exactly where its input was (the product kept, times 0 or 1).
        for (int64_t i = 0; i < b * nIn; ++i) spare[i] *= a[i] > 0 ? 1.0f : 0.0f;
        std::swap(d, spare);
      }
    }
  };
  if (nparts > 1) ThePool().Run(nparts, job);
  else job(0);
  return env.Undefined();
}
