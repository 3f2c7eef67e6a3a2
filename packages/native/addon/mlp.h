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
// With (runBlock, devOut, sqOut) also the run-block moments of every parameter block (W_1, b_1,
// W_2, ... in that order) as runBlockMoments(.., runBlock, mode 0) gives them: block i's at
// devOut[R i ..] and sqOut[B i ..] (B run blocks). When there are at least as many run blocks as
// threads, threads take whole run blocks and each run block's moments follow its last replica
// while the gradients are in cache; else the replicas split and the moments follow in a second pass.
// With (lr, nextW[], nextB[]) as well, the SGD step: next = param - lr grad (as axpy computes it,
// p + (-lr) g in float32), each replica's right after its gradients (in the second pass: each
// tile's right after its moments); gradW and gradB may then be null (the gradients then stay in
// the addon's scratch).
// With a 16th argument, rows (an Int32Array of R b indices), x is instead a table [n, w_0] and
// replica r's batch is its rows rows[r b ..(r + 1) b), gathered by the thread that runs the
// replica right before its forward pass: the batch is never copied out whole, and its rows are in
// that core's cache for both products that read them. lr, nextW and nextB may then be null (no
// SGD step).
Napi::Value MlpStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9 && info.Length() != 12 && info.Length() != 15 && info.Length() != 16)
    throw Napi::TypeError::New(env, "mlpStep takes 9 arguments, 12 with the moments, 15 with the moments and the SGD step or 16 with the batch's rows");
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
  const bool withRows = info.Length() == 16;
  const auto absent = [&](size_t i) { return info[i].IsNull() || info[i].IsUndefined(); };
  const int32_t* rowAt = nullptr;
  if (withRows) {
    if (static_cast<int64_t>(x.ElementLength()) % p != 0) throw Napi::RangeError::New(env, "the table x is not whole rows of widths[0] values");
    int64_t nRows;
    rowAt = TableRows(info, 15, static_cast<int64_t>(x.ElementLength()) / p, &nRows);
    if (nRows != runs * b) throw Napi::RangeError::New(env, "rows must hold R b = " + std::to_string(runs * b) + " indices, got " + std::to_string(nRows));
  } else if (static_cast<int64_t>(x.ElementLength()) < runs * b * p) {
    throw Napi::RangeError::New(env, "x is too short");
  }
  if (static_cast<int64_t>(y.ElementLength()) < runs * b * o) throw Napi::RangeError::New(env, "y is too short");
  const bool withMoments = info.Length() >= 12, withStep = info.Length() >= 15 && !absent(12);
  const bool gradsGiven = !withStep || !absent(6);
  // Parameter block i: W_(i/2) for even i, b_(i/2) for odd i; cols[i] values per replica.
  std::vector<int64_t> wSize(L), bSize(L), cols(2 * L);
  for (size_t k = 0; k < L; ++k) {
    cols[2 * k] = widths[k] * widths[k + 1];
    cols[2 * k + 1] = widths[k + 1];
    wSize[k] = runs * cols[2 * k];
    bSize[k] = runs * cols[2 * k + 1];
  }
  const std::vector<float*> Wk = LayerArrays(info, 2, "weights", wSize), Bk = LayerArrays(info, 3, "biases", bSize);
  std::vector<float*> P(2 * L), G(2 * L, nullptr), N;
  for (size_t k = 0; k < L; ++k) {
    P[2 * k] = Wk[k];
    P[2 * k + 1] = Bk[k];
  }
  if (gradsGiven) {
    const std::vector<float*> GW = LayerArrays(info, 6, "gradW", wSize), GB = LayerArrays(info, 7, "gradB", bSize);
    for (size_t k = 0; k < L; ++k) {
      G[2 * k] = GW[k];
      G[2 * k + 1] = GB[k];
    }
  }
  const int64_t block = withMoments ? Int(info, 9, "runBlock") : 0;
  if (withMoments && block == 0) throw Napi::RangeError::New(env, "runBlock must be >= 1");
  const int64_t nBlocks = withMoments ? (runs + block - 1) / block : 0;
  Napi::Float32Array devOut = withMoments ? F32(info, 10, "devOut") : Napi::Float32Array();
  Napi::Float32Array sqOut = withMoments ? F32(info, 11, "sqOut") : Napi::Float32Array();
  if (withMoments && static_cast<int64_t>(devOut.ElementLength()) < runs * static_cast<int64_t>(2 * L)) throw Napi::RangeError::New(env, "devOut is too short");
  if (withMoments && static_cast<int64_t>(sqOut.ElementLength()) < nBlocks * static_cast<int64_t>(2 * L)) throw Napi::RangeError::New(env, "sqOut is too short");
  if (withStep && !info[12].IsNumber()) throw Napi::TypeError::New(env, "lr must be a number");
  const float alpha = withStep ? -info[12].As<Napi::Number>().FloatValue() : 0.0f;
  if (withStep) {
    const std::vector<float*> NW = LayerArrays(info, 13, "nextW", wSize), NB = LayerArrays(info, 14, "nextB", bSize);
    N.resize(2 * L);
    for (size_t k = 0; k < L; ++k) {
      N[2 * k] = NW[k];
      N[2 * k + 1] = NB[k];
    }
  }
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
  // Whole run blocks per thread only when there are enough of them to keep every thread busy.
  const bool fuseMoments = withMoments && nBlocks >= std::min<int64_t>(g_threads, runs);
  const int64_t units = fuseMoments ? nBlocks : runs;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g_threads, units)));
  const int nparts = threads > 1 && flops * runs > 2e6 ? threads : 1;
  std::vector<double> devAcc(fuseMoments ? static_cast<size_t>(runs * 2 * L) : 0, 0.0), sqAcc(fuseMoments ? static_cast<size_t>(nBlocks * 2 * L) : 0, 0.0);
  // Gradients nobody asked to keep live in scratch: with the moments fused, one run block of them
  // per thread (block i's at rows * the sizes before it); else all runs, for the second pass.
  const int64_t rows = fuseMoments ? std::min(block, runs) : runs;
  std::vector<int64_t> lOff(2 * L + 1, 0);
  for (size_t i = 0; i < 2 * L; ++i) lOff[i + 1] = lOff[i] + rows * cols[i];
  const bool localG = !gradsGiven && fuseMoments;
  static std::vector<float> spare;  // this runs on the JavaScript thread only
  if (!gradsGiven && !fuseMoments) {
    spare.resize(static_cast<size_t>(lOff[2 * L]));
    for (size_t i = 0; i < 2 * L; ++i) G[i] = spare.data() + lOff[i];
  }
  std::atomic<int64_t> claimed{0};
  const std::function<void(int)> job = [&](int) {
    // The activations, two buffers for D and the gathered batch, in one scratch kept by the thread
    // between calls: fresh vectors would be cleared (about 1.4 MB at the MNIST widths) every step.
    thread_local std::vector<float> scratch;
    const size_t actsLen = static_cast<size_t>(aOff[L]), dLen = static_cast<size_t>(b * widest), batchLen = withRows ? static_cast<size_t>(b * p) : 0;
    if (scratch.size() < actsLen + 2 * dLen + batchLen) scratch.resize(actsLen + 2 * dLen + batchLen);
    float* const acts = scratch.data();
    float* const d0 = acts + actsLen;
    float* const d1 = d0 + dLen;
    float* const batch = d1 + dLen;
    std::vector<double> colSum(static_cast<size_t>(widest)), expRow(static_cast<size_t>(o));
    thread_local std::vector<float> blockG;
    if (localG && blockG.size() < static_cast<size_t>(lOff[2 * L])) blockG.resize(static_cast<size_t>(lOff[2 * L]));
    // Parameter block i's gradient of run r: in the caller's (or the spare) arrays, or in this thread's run block.
    const auto gAt = [&](size_t i, int64_t r) { return localG ? blockG.data() + lOff[i] + (r % block) * cols[i] : G[i] + r * cols[i]; };
    const int64_t width = fuseMoments ? MomentTileWidth(std::min(block, runs), false) : 0;
    std::vector<double> tileSum(static_cast<size_t>(width)), tileMean(static_cast<size_t>(width));
    double* e = expRow.data();
    // Replicas (or whole run blocks) go to the threads as they come free: a thread slowed by
    // other work on its core holds up the step by one unit at most.
    for (int64_t u; (u = claimed.fetch_add(1, std::memory_order_relaxed)) < units;) {
      const int64_t rBegin = fuseMoments ? u * block : u, rEnd = fuseMoments ? std::min(runs, (u + 1) * block) : u + 1;
      for (int64_t r = rBegin; r < rEnd; ++r) {
        // Forward, from the replica's batch (gathered here from the table's rows).
        if (withRows) GatherAhead(px, p, rowAt + r * b, b, batch);
        const float* xr = withRows ? batch : px + r * b * p;
        const float* in = xr;
        for (size_t k = 0; k < L; ++k) {
          const int64_t nIn = widths[k], nOut = widths[k + 1];
          float* z = acts + aOff[k];  // A_(k+1) lives at aOff[k]
          Gemm(false, false, b, nOut, nIn, 1.0f, in, static_cast<int>(nIn), Wk[k] + r * nIn * nOut, static_cast<int>(nOut), 0.0f, z, static_cast<int>(nOut));
          const float* bias = Bk[k] + r * nOut;
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
        const float* logits = acts + aOff[L - 1];
        const float* yr = py + r * b * o;
        float* d = d0;
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
        float* spareD = d1;
        for (size_t kk = L; kk-- > 0;) {
          const int64_t nIn = widths[kk], nOut = widths[kk + 1];
          const float* a = kk == 0 ? xr : acts + aOff[kk - 1];  // A_kk
          Gemm(true, false, nIn, nOut, b, 1.0f, a, static_cast<int>(nIn), d, static_cast<int>(nOut), 0.0f, gAt(2 * kk, r), static_cast<int>(nOut));
          float* gb = gAt(2 * kk + 1, r);
          std::fill(colSum.begin(), colSum.begin() + nOut, 0.0);
          for (int64_t i = 0; i < b; ++i)
            for (int64_t j = 0; j < nOut; ++j) colSum[j] += d[i * nOut + j];
          for (int64_t j = 0; j < nOut; ++j) gb[j] = static_cast<float>(colSum[j]);
          if (kk == 0) break;
          Gemm(false, true, b, nIn, nOut, 1.0f, d, static_cast<int>(nOut), Wk[kk] + r * nIn * nOut, static_cast<int>(nOut), 0.0f, spareD, static_cast<int>(nIn));
          // Through the ReLU: A_kk > 0 exactly where its input was (the product kept, times 0 or 1).
          for (int64_t i = 0; i < b * nIn; ++i) spareD[i] *= a[i] > 0 ? 1.0f : 0.0f;
          std::swap(d, spareD);
        }
        // The replica's SGD step while its gradients are in cache; a run block complete: its moments.
        if (fuseMoments) ReplicaSgd(cols, gAt, r, P, N, alpha);
        if (fuseMoments && ((r + 1) % block == 0 || r + 1 == runs)) {
          const int64_t k = r / block, r0 = k * block;
          RunBlockEpilogue(cols, gAt, gAt, 0, k, r0, r + 1 - r0, runs, nBlocks, width, tileSum.data(), tileMean.data(), devAcc.data(), sqAcc.data());
        }
      }
    }
  };
  if (nparts > 1) ThePool().Run(nparts, job);
  else job(0);
  if (withMoments) FinishMoments(fuseMoments, devAcc, sqAcc, cols, G, G, 0, runs, block, P, N, alpha, devOut.Data(), sqOut.Data());
  return env.Undefined();
}
