// sgd-lab native kernels: float32 matrix products on the system's OpenBLAS, called on the
// TypedArray views TensorFlow.js's cpu backend keeps its tensors in (no copies), plus thread
// control. Every entry point checks the sizes it is given against the arrays before touching
// memory, so a wrong call from JavaScript throws instead of corrupting the heap.
#include <napi.h>
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif
#include <vector>

#include "lanes.h"
#include "normals.h"

extern "C" {
// OpenBLAS extensions (declared in cblas.h of OpenBLAS; repeated for other cblas.h headers).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
int openblas_get_num_procs(void);
char* openblas_get_config(void);
}

// Hot loops are compiled for AVX-512, AVX2 and baseline x86-64, picked when the addon loads
// (GCC's function multi-versioning), so one build runs everywhere and fast here. Lanes are
// explicit and FP contraction is off (-std=c++17), so every version gives the same bits.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

namespace {

// Threads for the element-wise kernels and batch-parallel products (OpenBLAS's count too).
int g_threads = 1;

// A persistent pool of worker threads: starting a thread per call costs tens of microseconds, more
// than most of the calls themselves. Worker i runs part i + 1 of each job (part 0 runs on the
// calling thread). Between jobs a worker spins for a short while before it sleeps, since a step's
// kernels come tens of microseconds apart and waking a sleeping thread costs about as much; the
// spin is bounded (SpinMicros), so an idle process does not burn a core.
class Pool {
 public:
  ~Pool() { Resize(0); }

  // Runs job(part) for part in [0, parts).
  void Run(int parts, const std::function<void(int)>& job) {
    if (parts <= 1) {
      job(0);
      return;
    }
    // One job at a time (a second JavaScript thread loading the addon would share the pool).
    std::lock_guard<std::mutex> serial(run_mu_);
    if (static_cast<int>(workers_.size()) < parts - 1) Resize(parts - 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      gen_.store(gen_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      if (sleepers_ > 0) cv_.notify_all();
    }
    job(0);
    // The other parts usually end within microseconds of this one: spin, then sleep.
    if (!SpinUntil([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

  void Resize(int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // A worker starts from the generation current now: a job published before it runs is its.
    const uint64_t now = gen_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) workers_.emplace_back([this, i, now] { Loop(i + 1, now); });
  }

 private:
  static constexpr int64_t SpinMicros = 100;

  template <typename Ready>
  static bool SpinUntil(Ready ready) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(SpinMicros);
    for (int i = 0;; ++i) {
      if (ready()) return true;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return false;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  void Loop(int part, uint64_t seen) {
    while (true) {
      if (!SpinUntil([&] { return gen_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed); })) {
        std::unique_lock<std::mutex> lock(mu_);
        ++sleepers_;
        cv_.wait(lock, [&] { return stop_ || gen_.load(std::memory_order_acquire) != seen; });
        --sleepers_;
      }
      const std::function<void(int)>* job;
      int parts;
      {
        // The generation and its job are published together under the mutex.
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        seen = gen_.load(std::memory_order_relaxed);
        job = job_;
        parts = parts_;
      }
      if (part >= parts) continue;  // this job has fewer parts than there are workers
      (*job)(part);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0, sleepers_ = 0;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

Pool& ThePool() {
  static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction order
  return *pool;
}

// Runs f(begin, end, part) over [0, n) split into contiguous parts, one per thread, when the work
// (`cost`, roughly elements touched) is large enough to pay for waking the workers.
template <typename F>
void Parallel(int64_t n, int64_t cost, F f) {
  int parts = static_cast<int>(std::min<int64_t>(g_threads, n));
  // Below about a million elements a memory-bound pass is over before a sleeping worker wakes.
  if (cost < (1 << 18) || parts <= 1) {
    f(0, n, 0);
    return;
  }
  const std::function<void(int)> job = [&](int p) { f(n * p / parts, n * (p + 1) / parts, p); };
  ThePool().Run(parts, job);
}

Napi::Float32Array F32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>();
}

int64_t Int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  int64_t v = info[i].As<Napi::Number>().Int64Value();
  if (v < 0) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be >= 0");
  return v;
}

// Reads a JS array of non-negative integers (shapes, strides, permutations).
std::vector<int64_t> Ints(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an array");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t j = 0; j < arr.Length(); ++j) {
    Napi::Value v = arr.Get(j);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must hold numbers");
    out[j] = v.As<Napi::Number>().Int64Value();
    if (out[j] < 0) throw Napi::RangeError::New(info.Env(), std::string(name) + " must hold numbers >= 0");
  }
  if (out.size() > 8) throw Napi::RangeError::New(info.Env(), std::string(name) + ": rank above 8");
  return out;
}

// Elements needed by `batch` matrices of `rows` x `cols` spaced `stride` apart.
int64_t Needed(int64_t batch, int64_t stride, int64_t rows, int64_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  return (batch - 1) * stride + rows * cols;
}

void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (k == 0) {
    // An empty sum: C = beta C (cblas would reject the leading dimension 0).
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = beta == 0 ? 0.0f : beta * c[r * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, lda, b, ldb, beta, c, ldc);
}

enum Activation { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKY = 3, ACT_SIGMOID = 4, ACT_ELU = 5 };

struct Epilogue {
  const float* bias = nullptr;
  int64_t sb = 0, sm = 0, sn = 0;
  int act = ACT_LINEAR;
  float alpha = 0;
  bool active() const { return bias != nullptr || act != ACT_LINEAR; }

  // Rows [r0, r1) of product i (c points at its row 0).
  void apply(int64_t i, float* c, int64_t r0, int64_t r1, int64_t n) const {
    for (int64_t r = r0; r < r1; ++r) {
      float* __restrict row = c + r * n;
      if (bias != nullptr) {
        const float* __restrict bv = bias + i * sb + r * sm;
        if (sn == 1) {
          for (int64_t j = 0; j < n; ++j) row[j] += bv[j];
        } else {
          const float v = bv[0];
          for (int64_t j = 0; j < n; ++j) row[j] += v;
        }
      }
      const float a = alpha;
      switch (act) {
        case ACT_RELU: for (int64_t j = 0; j < n; ++j) row[j] = row[j] < 0 ? 0.0f : row[j]; break;
        case ACT_RELU6: for (int64_t j = 0; j < n; ++j) row[j] = row[j] < 0 ? 0.0f : row[j] > 6 ? 6.0f : row[j]; break;
        case ACT_LEAKY: for (int64_t j = 0; j < n; ++j) row[j] = row[j] * (row[j] < 0 ? a : 1.0f); break;
        case ACT_SIGMOID: for (int64_t j = 0; j < n; ++j) row[j] = 1.0f / (1.0f + std::exp(-row[j])); break;
        case ACT_ELU: for (int64_t j = 0; j < n; ++j) row[j] = row[j] < 0 ? std::expm1(row[j]) : row[j]; break;
        default: break;
      }
    }
  }
};

// gemmBatched(a, b, c, batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, beta
//             [, bias, biasStrides, activation, actAlpha])
// For i < batch: C_i = alpha op(A_i) op(B_i) + beta C_i, row-major, op(A_i) m x k, op(B_i) k x n.
// A stride of 0 reuses one matrix for every i (broadcasting). With the optional epilogue, each C_i
// then gets C_i[r, j] += bias[i sB + r sM + j sN] (biasStrides [sB, sM, sN], 0 where it broadcasts)
// and the activation (ACT_* codes), while it is still in cache.
Napi::Value GemmBatched(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 14 && info.Length() != 18) throw Napi::TypeError::New(env, "gemmBatched takes 14 arguments, or 18 with an epilogue");
  Napi::Float32Array a = F32(info, 0, "a"), b = F32(info, 1, "b"), c = F32(info, 2, "c");
  const int64_t batch = Int(info, 3, "batch"), m = Int(info, 4, "m"), n = Int(info, 5, "n"), k = Int(info, 6, "k");
  const bool ta = info[7].ToBoolean(), tb = info[8].ToBoolean();
  const int64_t sa = Int(info, 9, "strideA"), sb = Int(info, 10, "strideB"), sc = Int(info, 11, "strideC");
  const float alpha = info[12].As<Napi::Number>().FloatValue(), beta = info[13].As<Napi::Number>().FloatValue();
  if (static_cast<int64_t>(a.ElementLength()) < Needed(batch, sa, m, k)) throw Napi::RangeError::New(env, "a is too short");
  if (static_cast<int64_t>(b.ElementLength()) < Needed(batch, sb, k, n)) throw Napi::RangeError::New(env, "b is too short");
  if (static_cast<int64_t>(c.ElementLength()) < Needed(batch, sc, m, n)) throw Napi::RangeError::New(env, "c is too short");
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) throw Napi::RangeError::New(env, "matrix too large");
  Epilogue epi;
  if (info.Length() == 18) {
    if (!info[14].IsNull() && !info[14].IsUndefined()) {
      Napi::Float32Array bias = F32(info, 14, "bias");
      const std::vector<int64_t> bs = Ints(info, 15, "biasStrides");
      if (bs.size() != 3) throw Napi::RangeError::New(env, "biasStrides takes 3 strides");
      if (bs[2] > 1) throw Napi::RangeError::New(env, "bias must be contiguous along its last axis (stride 0 or 1)");
      if (static_cast<int64_t>(bias.ElementLength()) < (batch - 1) * bs[0] + (m - 1) * bs[1] + (n - 1) * bs[2] + 1) throw Napi::RangeError::New(env, "bias is too short");
      epi.bias = bias.Data();
      epi.sb = bs[0];
      epi.sm = bs[1];
      epi.sn = bs[2];
    }
    epi.act = static_cast<int>(Int(info, 16, "activation"));
    if (epi.act > ACT_ELU) throw Napi::RangeError::New(env, "unknown activation");
    epi.alpha = info[17].As<Napi::Number>().FloatValue();
  }
  const float* pa = a.Data();
  const float* pb = b.Data();
  float* pc = c.Data();
  const int lda = ta ? static_cast<int>(m) : static_cast<int>(k);
  const int ldb = tb ? static_cast<int>(k) : static_cast<int>(n);
  const int ldc = static_cast<int>(n);
  // OpenBLAS itself runs single-threaded (its idle pthreads spin in sched_yield between calls,
  // burning a core the JavaScript thread needs); the addon's own pool, which sleeps, parallelises:
  // a batch of products by slices of the batch, a single large product by blocks of rows of C.
  const double flops = 2.0 * m * n * k;
  const int parts = g_threads;
  if (parts > 1 && batch >= parts && sc != 0 && flops * batch > 2e6) {
    const std::function<void(int)> job = [&](int p) {
      for (int64_t i = batch * p / parts; i < batch * (p + 1) / parts; ++i) {
        Gemm(ta, tb, m, n, k, alpha, pa + i * sa, lda, pb + i * sb, ldb, beta, pc + i * sc, ldc);
        if (epi.active()) epi.apply(i, pc + i * sc, 0, m, n);
      }
    };
    ThePool().Run(parts, job);
  } else if (parts > 1 && m >= 2 * parts && flops > 2e6) {
    // Rows [r0, r1) of C need rows r0.. of op(A): an offset of r0 rows (A) or r0 columns (A^T).
    for (int64_t i = 0; i < batch; ++i) {
      const float* A = pa + i * sa;
      const float* B = pb + i * sb;
      float* C = pc + i * sc;
      const std::function<void(int)> job = [&](int p) {
        const int64_t r0 = m * p / parts, r1 = m * (p + 1) / parts;
        if (r1 > r0) Gemm(ta, tb, r1 - r0, n, k, alpha, A + (ta ? r0 : r0 * lda), lda, B, ldb, beta, C + r0 * ldc, ldc);
        if (r1 > r0 && epi.active()) epi.apply(i, C, r0, r1, n);
      };
      ThePool().Run(parts, job);
    }
  } else {
    for (int64_t i = 0; i < batch; ++i) {
      Gemm(ta, tb, m, n, k, alpha, pa + i * sa, lda, pb + i * sb, ldb, beta, pc + i * sc, ldc);
      if (epi.active()) epi.apply(i, pc + i * sc, 0, m, n);
    }
  }
  return env.Undefined();
}


// Largest element offset + 1 reached by `shape` with `strides` (0 for an empty shape).
int64_t Extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return 0;
    last += (shape[d] - 1) * strides[d];
  }
  return last + 1;
}

int64_t Size(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Calls body(offsetA, offsetB, offsetOut, inner) once per row of the last axis for rows
// [rowBegin, rowEnd) of `shape` in row-major order; each operand moves by its own strides (0 on
// broadcast axes).
template <typename Body>
void Rows(const std::vector<int64_t>& shape, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
          const std::vector<int64_t>& so, int64_t rowBegin, int64_t rowEnd, Body body) {
  const size_t rank = shape.size();
  if (rank == 0) {
    if (rowBegin == 0 && rowEnd > 0) body(0, 0, 0, 1);
    return;
  }
  if (Size(shape) == 0 || rowBegin >= rowEnd) return;
  const int64_t inner = shape[rank - 1];
  int64_t idx[8] = {0};
  int64_t oa = 0, ob = 0, oo = 0;
  int64_t r = rowBegin;
  for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
    idx[d] = r % shape[d];
    r /= shape[d];
    oa += idx[d] * sa[d];
    ob += idx[d] * sb[d];
    oo += idx[d] * so[d];
  }
  for (int64_t row = rowBegin; row < rowEnd; ++row) {
    body(oa, ob, oo, inner);
    for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        oa += sa[d];
        ob += sb[d];
        oo += so[d];
        break;
      }
      oa -= sa[d] * (shape[d] - 1);
      ob -= sb[d] * (shape[d] - 1);
      oo -= so[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

int64_t RowCount(const std::vector<int64_t>& shape) {
  if (shape.empty()) return 1;
  return Size(shape) / std::max<int64_t>(1, shape.back());
}

template <typename Body>
void Rows(const std::vector<int64_t>& shape, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
          const std::vector<int64_t>& so, Body body) {
  if (!shape.empty() && shape.back() == 0) return;
  Rows(shape, sa, sb, so, 0, RowCount(shape), body);
}

template <typename Op>
void BinaryRows(const float* a, const float* b, float* o, const std::vector<int64_t>& shape, const std::vector<int64_t>& sa,
                const std::vector<int64_t>& sb, const std::vector<int64_t>& so, Op op) {
  const size_t r = shape.size();
  const int64_t ia = r ? sa[r - 1] : 0, ib = r ? sb[r - 1] : 0;
  if (!shape.empty() && shape.back() == 0) return;
  const int64_t rows = RowCount(shape);
  Parallel(rows, Size(shape), [&](int64_t r0, int64_t r1, int) {
  Rows(shape, sa, sb, so, r0, r1, [&](int64_t oa, int64_t ob, int64_t oo, int64_t n) {
    const float* pa = a + oa;
    const float* pb = b + ob;
    float* po = o + oo;
    if (ia == 1 && ib == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], pb[i]);
    } else if (ia == 1 && ib == 0) {
      const float vb = pb[0];
      for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], vb);
    } else if (ia == 0 && ib == 1) {
      const float va = pa[0];
      for (int64_t i = 0; i < n; ++i) po[i] = op(va, pb[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i * ia], pb[i * ib]);
    }
  });
  });
}

// binary(op, a, b, out, shape, stridesA, stridesB): out (contiguous, `shape`) = a op b, where a and
// b are read with their strides (0 on broadcast axes). op: 0 add, 1 sub, 2 mul, 3 div,
// 4 squared difference, 5 maximum, 6 minimum, 7 copy of a (broadcasts and tiles), 8 a * step(b).
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 7) throw Napi::TypeError::New(env, "binary takes 7 arguments");
  const int64_t op = Int(info, 0, "op");
  Napi::Float32Array a = F32(info, 1, "a"), b = F32(info, 2, "b"), o = F32(info, 3, "out");
  const std::vector<int64_t> shape = Ints(info, 4, "shape"), sa = Ints(info, 5, "stridesA"), sb = Ints(info, 6, "stridesB");
  if (sa.size() != shape.size() || sb.size() != shape.size()) throw Napi::RangeError::New(env, "strides and shape differ in rank");
  std::vector<int64_t> so(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1, s = 1; d >= 0; --d) {
    so[d] = s;
    s *= static_cast<int>(shape[d]);
  }
  if (static_cast<int64_t>(a.ElementLength()) < Extent(shape, sa)) throw Napi::RangeError::New(env, "a is too short");
  if (static_cast<int64_t>(b.ElementLength()) < Extent(shape, sb)) throw Napi::RangeError::New(env, "b is too short");
  if (static_cast<int64_t>(o.ElementLength()) < Size(shape)) throw Napi::RangeError::New(env, "out is too short");
  const float* pa = a.Data();
  const float* pb = b.Data();
  float* po = o.Data();
  switch (op) {
    case 0: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x + y; }); break;
    case 1: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x - y; }); break;
    case 2: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x * y; }); break;
    case 3: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x / y; }); break;
    case 4: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) {
      const double d = static_cast<double>(x) - y;  // one rounding, as the cpu kernel does
      return static_cast<float>(d * d);
    }); break;
    case 5: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x > y || x != x ? x : y; }); break;
    case 6: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x < y || x != x ? x : y; }); break;
    case 7: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float) { return x; }); break;
    // x * step(y): the backward pass of a ReLU from its output (NaN in y propagates, as in step).
    case 8: BinaryRows(pa, pb, po, shape, sa, sb, so, [](float x, float y) { return x * (y > 0 ? 1.0f : y == y ? 0.0f : y); }); break;
    default: throw Napi::RangeError::New(env, "unknown binary op");
  }
  return env.Undefined();
}

// transpose(x, out, shape, perm): out = x with its axes permuted (out axis d is x axis perm[d]).
// Swapping the last two axes, the common case, goes through cache-sized tiles.
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "transpose takes 4 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), o = F32(info, 1, "out");
  const std::vector<int64_t> shape = Ints(info, 2, "shape"), perm = Ints(info, 3, "perm");
  const size_t r = shape.size();
  if (perm.size() != r) throw Napi::RangeError::New(env, "perm and shape differ in rank");
  std::vector<bool> seen(r, false);
  for (int64_t p : perm) {
    if (p >= static_cast<int64_t>(r) || seen[p]) throw Napi::RangeError::New(env, "perm is not a permutation");
    seen[p] = true;
  }
  const int64_t n = Size(shape);
  if (static_cast<int64_t>(x.ElementLength()) < n || static_cast<int64_t>(o.ElementLength()) < n) throw Napi::RangeError::New(env, "x or out is too short");
  if (n == 0) return env.Undefined();
  const float* px = x.Data();
  float* po = o.Data();
  std::vector<int64_t> xs(r);
  for (int d = static_cast<int>(r) - 1, s = 1; d >= 0; --d) {
    xs[d] = s;
    s *= static_cast<int>(shape[d]);
  }
  bool lastTwo = r >= 2 && perm[r - 2] == static_cast<int64_t>(r - 1) && perm[r - 1] == static_cast<int64_t>(r - 2);
  for (size_t d = 0; lastTwo && d + 2 < r; ++d) lastTwo = perm[d] == static_cast<int64_t>(d);
  if (lastTwo) {
    const int64_t rows = shape[r - 2], cols = shape[r - 1], batch = n / (rows * cols);
    const int64_t T = 32;
    const int64_t tilesPerMatrix = (rows + T - 1) / T;
    Parallel(batch * tilesPerMatrix, n, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bi = t / tilesPerMatrix, i0 = (t % tilesPerMatrix) * T;
        const float* src = px + bi * rows * cols;
        float* dst = po + bi * rows * cols;
        const int64_t i1 = std::min(rows, i0 + T);
        for (int64_t j0 = 0; j0 < cols; j0 += T) {
          const int64_t j1 = std::min(cols, j0 + T);
          for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = j0; j < j1; ++j) dst[j * rows + i] = src[i * cols + j];
        }
      }
    });
    return env.Undefined();
  }
  // General: walk the output in order, reading x with the permuted strides.
  std::vector<int64_t> oshape(r), ostr(r), zero(r, 0), ocont(r);
  for (size_t d = 0; d < r; ++d) {
    oshape[d] = shape[perm[d]];
    ostr[d] = xs[perm[d]];
  }
  for (int d = static_cast<int>(r) - 1, s = 1; d >= 0; --d) {
    ocont[d] = s;
    s *= static_cast<int>(oshape[d]);
  }
  const int64_t step = r ? ostr[r - 1] : 0;
  Parallel(RowCount(oshape), n, [&](int64_t r0, int64_t r1, int) {
    Rows(oshape, ostr, zero, ocont, r0, r1, [&](int64_t ox, int64_t, int64_t oo, int64_t len) {
      for (int64_t i = 0; i < len; ++i) po[oo + i] = px[ox + i * step];
    });
  });
  return env.Undefined();
}

// reduceSum(x, out, shape, outStrides, scale): out[j] = scale * sum of the x elements that map to
// j, where element i of x maps to the dot product of its index with outStrides (0 on reduced axes).
// Accumulates in double precision.
Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) throw Napi::TypeError::New(env, "reduceSum takes 5 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), o = F32(info, 1, "out");
  const std::vector<int64_t> shape = Ints(info, 2, "shape"), so = Ints(info, 3, "outStrides");
  const double scale = info[4].As<Napi::Number>().DoubleValue();
  const size_t r = shape.size();
  if (so.size() != r) throw Napi::RangeError::New(env, "outStrides and shape differ in rank");
  const int64_t n = Size(shape);
  const int64_t outN = std::max<int64_t>(Extent(shape, so), n == 0 ? 0 : 1);
  if (static_cast<int64_t>(x.ElementLength()) < n) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(o.ElementLength()) < outN) throw Napi::RangeError::New(env, "out is too short");
  const size_t outLen = static_cast<size_t>(outN);
  const float* px0 = x.Data();
  float* po0 = o.Data();
  // The two common layouts first: kept axes all after the reduced ones (a column sum of a
  // [rows, cols] view, e.g. the mean over runs), or all before them (row sums).
  int firstKept = -1, lastKept = -1;
  bool prefix = true, suffix = true;
  for (size_t d = 0; d < r; ++d) {
    if (so[d] != 0 || shape[d] == 1) {
      if (firstKept < 0) firstKept = static_cast<int>(d);
      lastKept = static_cast<int>(d);
    }
  }
  for (size_t d = 0; d < r; ++d) {
    const bool kept = so[d] != 0 || shape[d] == 1;
    if (kept && firstKept >= 0 && static_cast<int>(d) > lastKept) suffix = false;
    if (!kept && firstKept >= 0 && static_cast<int>(d) > firstKept && static_cast<int>(d) < lastKept) prefix = suffix = false;
  }
  if (n > 0 && r > 0 && firstKept >= 0) {
    int64_t lead = 1, trail = 1;
    for (int d = 0; d < firstKept; ++d) lead *= shape[d];
    for (size_t d = lastKept + 1; d < r; ++d) trail *= shape[d];
    const int64_t kept = n / (lead * trail);
    if (trail == 1 && suffix) {
      // out[j] = sum_i x[i, j] over a [lead, kept] view: threads take column blocks.
      Parallel((kept + 255) / 256, n, [&](int64_t b0, int64_t b1, int) {
        double acc[256];
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t j0 = blk * 256, j1 = std::min(kept, j0 + 256);
          for (int64_t j = j0; j < j1; ++j) acc[j - j0] = 0;
          for (int64_t i = 0; i < lead; ++i) {
            const float* row = px0 + i * kept;
            for (int64_t j = j0; j < j1; ++j) acc[j - j0] += row[j];
          }
          for (int64_t j = j0; j < j1; ++j) po0[j] = static_cast<float>(acc[j - j0] * scale);
        }
      });
      return env.Undefined();
    }
    if (lead == 1 && prefix) {
      // out[i] = sum_j x[i, j] over a [kept, trail] view: threads take rows.
      Parallel(kept, n, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
          const float* row = px0 + i * trail;
          double acc = 0;
          for (int64_t j = 0; j < trail; ++j) acc += row[j];
          po0[i] = static_cast<float>(acc * scale);
        }
      });
      return env.Undefined();
    }
  }
  std::vector<int64_t> xs(r), zero(r, 0);
  for (int d = static_cast<int>(r) - 1, s = 1; d >= 0; --d) {
    xs[d] = s;
    s *= static_cast<int>(shape[d]);
  }
  const float* px = x.Data();
  const int64_t step = r ? so[r - 1] : 0;
  // One accumulator array per thread (summed at the end), so threads never share a sum.
  const int parts = outLen * g_threads <= (size_t(1) << 24) ? g_threads : 1;
  std::vector<std::vector<double>> acc(parts, std::vector<double>(outLen, 0.0));
  if (n > 0 && !(r > 0 && shape[r - 1] == 0)) {
    const int saved = g_threads;
    g_threads = parts;
    Parallel(RowCount(shape), n, [&](int64_t r0, int64_t r1, int part) {
      std::vector<double>& a = acc[part];
      Rows(shape, xs, zero, so, r0, r1, [&](int64_t ox, int64_t, int64_t oo, int64_t len) {
        if (step == 0) {
          double s = 0;
          for (int64_t i = 0; i < len; ++i) s += px[ox + i];
          a[oo] += s;
        } else {
          for (int64_t i = 0; i < len; ++i) a[oo + i * step] += px[ox + i];
        }
      });
    });
    g_threads = saved;
  }
  float* po = o.Data();
  for (size_t j = 0; j < outLen; ++j) {
    double t = 0;
    for (int p = 0; p < parts; ++p) t += acc[p][j];
    po[j] = static_cast<float>(t * scale);
  }
  return env.Undefined();
}

// unary(op, x, out, alpha): out = f(x) element-wise. op: 0 relu, 1 step (alpha below 0 and for
// NaN input, NaN; 1 above), 2 exp, 3 log, 4 neg, 5 sqrt, 6 rsqrt, 7 tanh, 8 sigmoid, 9 abs, 10 erf,
// 11 leaky relu (alpha slope), 12 elu.
template <typename F>
void Map(const float* x, float* o, int64_t n, int64_t weight, F f) {
  Parallel(n, n * weight, [&](int64_t i0, int64_t i1, int) {
    // Local copies: through the closure's references the compiler must assume that every store to
    // o may change x, o or f's captures, and then it neither vectorizes nor if-converts.
    const float* __restrict xs = x;
    float* __restrict os = o;
    const F g = f;
    for (int64_t i = i0; i < i1; ++i) os[i] = g(xs[i]);
  });
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "unary takes 4 arguments");
  const int64_t op = Int(info, 0, "op");
  Napi::Float32Array x = F32(info, 1, "x"), o = F32(info, 2, "out");
  const float alpha = info[3].As<Napi::Number>().FloatValue();
  const int64_t n = static_cast<int64_t>(x.ElementLength());
  if (static_cast<int64_t>(o.ElementLength()) < n) throw Napi::RangeError::New(env, "out is too short");
  const float* px = x.Data();
  float* po = o.Data();
  switch (op) {
    case 0: Map(px, po, n, 1, [](float v) { return v < 0 ? 0.0f : v; }); break;
    case 1:
      // Written as two selects so that it vectorizes (a nested branch mispredicts on signs).
      Map(px, po, n, 1, [alpha](float v) {
        const float s = v > 0 ? 1.0f : alpha;
        return v == v ? s : v;
      });
      break;
    case 2: Map(px, po, n, 8, [](float v) { return std::exp(v); }); break;
    case 3: Map(px, po, n, 8, [](float v) { return std::log(v); }); break;
    case 4: Map(px, po, n, 1, [](float v) { return -v; }); break;
    case 5: Map(px, po, n, 8, [](float v) { return std::sqrt(v); }); break;
    case 6: Map(px, po, n, 8, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case 7: Map(px, po, n, 8, [](float v) { return std::tanh(v); }); break;
    case 8: Map(px, po, n, 8, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }); break;
    case 9: Map(px, po, n, 1, [](float v) { return std::fabs(v); }); break;
    case 10: Map(px, po, n, 8, [](float v) { return std::erf(v); }); break;
    case 11: Map(px, po, n, 1, [alpha](float v) { return v * (v < 0 ? alpha : 1.0f); }); break;
    case 12: Map(px, po, n, 8, [](float v) { return v < 0 ? std::expm1(v) : v; }); break;
    default: throw Napi::RangeError::New(env, "unknown unary op");
  }
  return env.Undefined();
}

// softmax(x, out, rows, cols): softmax over the last axis of a [rows, cols] view (max-shifted).
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "softmax takes 4 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), o = F32(info, 1, "out");
  const int64_t rows = Int(info, 2, "rows"), cols = Int(info, 3, "cols");
  if (static_cast<int64_t>(x.ElementLength()) < rows * cols || static_cast<int64_t>(o.ElementLength()) < rows * cols) throw Napi::RangeError::New(env, "x or out is too short");
  const float* px = x.Data();
  float* po = o.Data();
  Parallel(rows, rows * cols * 4, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* a = px + r * cols;
      float* b = po + r * cols;
      float m = -INFINITY;
      for (int64_t j = 0; j < cols; ++j) m = a[j] > m ? a[j] : m;
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        b[j] = std::exp(a[j] - m);
        sum += b[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < cols; ++j) b[j] *= inv;
    }
  });
  return env.Undefined();
}

// copyStrided(x, out, shape, xStrides, outStrides): out[idx . outStrides] = x[idx . xStrides] for
// every index of `shape` (x and out are views starting at the first element): slices and pads.
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) throw Napi::TypeError::New(env, "copyStrided takes 5 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), o = F32(info, 1, "out");
  const std::vector<int64_t> shape = Ints(info, 2, "shape"), sx = Ints(info, 3, "xStrides"), so = Ints(info, 4, "outStrides");
  if (sx.size() != shape.size() || so.size() != shape.size()) throw Napi::RangeError::New(env, "strides and shape differ in rank");
  if (static_cast<int64_t>(x.ElementLength()) < Extent(shape, sx)) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(o.ElementLength()) < Extent(shape, so)) throw Napi::RangeError::New(env, "out is too short");
  if (Size(shape) == 0) return env.Undefined();
  const float* px = x.Data();
  float* po = o.Data();
  const size_t r = shape.size();
  const int64_t ix = r ? sx[r - 1] : 0, io = r ? so[r - 1] : 0;
  std::vector<int64_t> zero(r, 0);
  Parallel(RowCount(shape), Size(shape), [&](int64_t r0, int64_t r1, int) {
    Rows(shape, sx, zero, so, r0, r1, [&](int64_t ox, int64_t, int64_t oo, int64_t n) {
      for (int64_t i = 0; i < n; ++i) po[oo + i * io] = px[ox + i * ix];
    });
  });
  return env.Undefined();
}

// sum_j (a[j] - m[j])^2 in double, over 16 independent lanes so that it vectorizes and the
// additions of one lane do not wait on each other (a single accumulator is a serial dependency the
// compiler may not reorder): lane l sums j = l mod 16 in order, the lanes added last in order.
// m: the mean, float32 values held as doubles (converted once per call rather than per run).
HOT double SquaredDeviations(const float* __restrict a, const double* __restrict m, int64_t n) {
  using namespace sgdlab_lanes;
  D4 l0 = {}, l1 = {}, l2 = {}, l3 = {};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const D4 d0 = Widen(LoadF(a + j)) - LoadD(m + j), d1 = Widen(LoadF(a + j + 4)) - LoadD(m + j + 4);
    const D4 d2 = Widen(LoadF(a + j + 8)) - LoadD(m + j + 8), d3 = Widen(LoadF(a + j + 12)) - LoadD(m + j + 12);
    l0 += d0 * d0;
    l1 += d1 * d1;
    l2 += d2 * d2;
    l3 += d3 * d3;
  }
  double s = 0;
  for (; j < n; ++j) {
    const double d = static_cast<double>(a[j]) - m[j];
    s += d * d;
  }
  return AddLanes(AddLanes(s, l0, l1), l2, l3);
}

// Float32 values as doubles (exact).
std::vector<double> AsDoubles(const float* v, int64_t n) { return std::vector<double>(v, v + n); }

// sqdevSum(x, mean, out, rows, cols): out[r] = sum_j (x[r, j] - mean[j])^2, double accumulators;
// the across-run squared deviations of a [runs, ...] block in one read.
Napi::Value SqdevSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) throw Napi::TypeError::New(env, "sqdevSum takes 5 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), mean = F32(info, 1, "mean"), o = F32(info, 2, "out");
  const int64_t rows = Int(info, 3, "rows"), cols = Int(info, 4, "cols");
  if (static_cast<int64_t>(x.ElementLength()) < rows * cols) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(mean.ElementLength()) < cols) throw Napi::RangeError::New(env, "mean is too short");
  if (static_cast<int64_t>(o.ElementLength()) < rows) throw Napi::RangeError::New(env, "out is too short");
  const float* px = x.Data();
  const float* pm = mean.Data();
  float* po = o.Data();
  const std::vector<double> md = AsDoubles(pm, cols);
  Parallel(rows, rows * cols, [&](int64_t r0, int64_t r1, int) {
    const double* __restrict m = md.data();
    for (int64_t r = r0; r < r1; ++r) {
      po[r] = static_cast<float>(SquaredDeviations(px + r * cols, m, cols));
    }
  });
  return env.Undefined();
}

// s[j] += x[r * stride + j] for r < rows, j < w (double sums, in r order). Eight rows at a time
// down each group of 8 columns, the sums held in registers between rows (the same additions in
// the same order as row by row, without a load and a store of s per row); more rows than that
// would read as many pages at once as rows, which the prefetchers do not follow.
HOT void ColumnSums(const float* __restrict x, int64_t stride, int64_t rows, int64_t w, double* __restrict s) {
  using namespace sgdlab_lanes;
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    const int64_t r1 = std::min(rows, r0 + 8);
    int64_t j = 0;
    for (; j + 8 <= w; j += 8) {
      D4 lo = LoadD(s + j), hi = LoadD(s + j + 4);
      for (int64_t r = r0; r < r1; ++r) {
        const float* row = x + r * stride + j;
        lo += Widen(LoadF(row));
        hi += Widen(LoadF(row + 4));
      }
      Store(s + j, lo);
      Store(s + j + 4, hi);
    }
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t jj = j; jj < w; ++jj) s[jj] += x[r * stride + jj];
  }
}

// The Float32Arrays of a JavaScript array, one per layer, each of at least sizes[k] floats.
std::vector<float*> LayerArrays(const Napi::CallbackInfo& info, size_t i, const char* name, const std::vector<int64_t>& sizes) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray() || info[i].As<Napi::Array>().Length() != sizes.size())
    throw Napi::TypeError::New(env, std::string(name) + " must be an array of " + std::to_string(sizes.size()) + " Float32Arrays");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<float*> out(sizes.size());
  for (size_t k = 0; k < sizes.size(); ++k) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(k));
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, std::string(name) + " must hold Float32Arrays");
    if (static_cast<int64_t>(v.As<Napi::Float32Array>().ElementLength()) < sizes[k]) throw Napi::RangeError::New(env, std::string(name) + "[" + std::to_string(k) + "] is too short");
    out[k] = v.As<Napi::Float32Array>().Data();
  }
  return out;
}

// runMoments(x, meanOut, devOut, runs, cols): the across-run moments of a [runs, cols] block in
// one read of x: meanOut[j] = mean_r x[r, j] (double sum, rounded to float32 like the Mean kernel)
// and devOut[r] = sum_j (x[r, j] - meanOut[j])^2 (double). Threads take column blocks small enough
// that a block's rows are still in cache for the second pass; each thread keeps its own sums.
Napi::Value RunMoments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) throw Napi::TypeError::New(env, "runMoments takes 5 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), mean = F32(info, 1, "meanOut"), dev = F32(info, 2, "devOut");
  const int64_t runs = Int(info, 3, "runs"), cols = Int(info, 4, "cols");
  if (static_cast<int64_t>(x.ElementLength()) < runs * cols) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(mean.ElementLength()) < cols) throw Napi::RangeError::New(env, "meanOut is too short");
  if (static_cast<int64_t>(dev.ElementLength()) < runs) throw Napi::RangeError::New(env, "devOut is too short");
  const float* px = x.Data();
  float* pm = mean.Data();
  float* pd = dev.Data();
  if (runs == 0) return env.Undefined();
  // About 128 KiB of x per block.
  const int64_t width = std::max<int64_t>(64, std::min<int64_t>(4096, (1024*8 / runs) & ~int64_t(7)));
  const int64_t blocks = (cols + width - 1) / width;
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g_threads, blocks)));
  std::vector<double> acc(static_cast<size_t>(parts * runs), 0.0);
  const double scale = 1.0 / static_cast<double>(runs);
  const int saved = g_threads;
  g_threads = parts;
  Parallel(blocks, runs * cols, [&](int64_t b0, int64_t b1, int part) {
    std::vector<double> sum(static_cast<size_t>(width)), md(static_cast<size_t>(width));
    double* __restrict s = sum.data();
    double* __restrict a = acc.data() + part * runs;
    const float* __restrict xs = px;
    float* __restrict ms = pm;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t j0 = blk * width, w = std::min(cols, j0 + width) - j0;
      for (int64_t j = 0; j < w; ++j) s[j] = 0;
      ColumnSums(xs + j0, cols, runs, w, s);
      for (int64_t j = 0; j < w; ++j) {
        ms[j0 + j] = static_cast<float>(s[j] * scale);
        md[j] = ms[j0 + j];
      }
      for (int64_t r = 0; r < runs; ++r) a[r] += SquaredDeviations(xs + r * cols + j0, md.data(), w);
    }
  });
  g_threads = saved;
  for (int64_t r = 0; r < runs; ++r) {
    double t = 0;
    for (int p = 0; p < parts; ++p) t += acc[p * runs + r];
    pd[r] = static_cast<float>(t);
  }
  return env.Undefined();
}

// (x[j] - y[j]) in float32, as a materialised difference tensor would hold it.
HOT void ColumnSumsDiff(const float* __restrict x, const float* __restrict y, int64_t stride, int64_t rows, int64_t w, double* __restrict s) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * stride;
    const float* b = y + r * stride;
    for (int64_t j = 0; j < w; ++j) s[j] += static_cast<float>(a[j] - b[j]);
  }
}

HOT double SquaredDeviationsDiff(const float* __restrict a, const float* __restrict b, const double* __restrict m, int64_t n) {
  using namespace sgdlab_lanes;
  D4 lo = {}, hi = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const D4 d0 = Widen(LoadF(a + j) - LoadF(b + j)) - LoadD(m + j), d1 = Widen(LoadF(a + j + 4) - LoadF(b + j + 4)) - LoadD(m + j + 4);
    lo += d0 * d0;
    hi += d1 * d1;
  }
  double s = 0;
  for (; j < n; ++j) {
    const double d = static_cast<double>(static_cast<float>(a[j] - b[j])) - m[j];
    s += d * d;
  }
  return AddLanes(s, lo, hi);
}

// Column sums of x, of y and of the float32 difference x - y over `rows` rows, in one read.
HOT void ColumnSums3(const float* __restrict x, const float* __restrict y, int64_t stride, int64_t rows, int64_t w, double* __restrict sx,
                     double* __restrict sy, double* __restrict sd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * stride;
    const float* b = y + r * stride;
    for (int64_t j = 0; j < w; ++j) {
      sx[j] += a[j];
      sy[j] += b[j];
      sd[j] += static_cast<float>(a[j] - b[j]);
    }
  }
}

// The squared deviations of a row of x, of y and of x - y from their means (float32 values held
// as doubles), in one read.
HOT void SquaredDeviations3(const float* __restrict a, const float* __restrict b, const double* __restrict mx, const double* __restrict my,
                            const double* __restrict md, int64_t n, double out[3]) {
  using namespace sgdlab_lanes;
  D4 lx0 = {}, lx1 = {}, ly0 = {}, ly1 = {}, ld0 = {}, ld1 = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const F4 a0 = LoadF(a + j), a1 = LoadF(a + j + 4), b0 = LoadF(b + j), b1 = LoadF(b + j + 4);
    const D4 dx0 = Widen(a0) - LoadD(mx + j), dx1 = Widen(a1) - LoadD(mx + j + 4);
    const D4 dy0 = Widen(b0) - LoadD(my + j), dy1 = Widen(b1) - LoadD(my + j + 4);
    const D4 dd0 = Widen(a0 - b0) - LoadD(md + j), dd1 = Widen(a1 - b1) - LoadD(md + j + 4);
    lx0 += dx0 * dx0;
    lx1 += dx1 * dx1;
    ly0 += dy0 * dy0;
    ly1 += dy1 * dy1;
    ld0 += dd0 * dd0;
    ld1 += dd1 * dd1;
  }
  double tx = 0, ty = 0, td = 0;
  for (; j < n; ++j) {
    const double dx = static_cast<double>(a[j]) - mx[j];
    const double dy = static_cast<double>(b[j]) - my[j];
    const double dd = static_cast<double>(static_cast<float>(a[j] - b[j])) - md[j];
    tx += dx * dx;
    ty += dy * dy;
    td += dd * dd;
  }
  out[0] += AddLanes(tx, lx0, lx1);
  out[1] += AddLanes(ty, ly0, ly1);
  out[2] += AddLanes(td, ld0, ld1);
}

// m[j] = float32(s[j] scale) held as a double, for j < w; returns sum_j m[j]^2 in double over 8
// lanes (lane l: j = l mod 8 in order, the lanes added last in order).
HOT double TileMean(const double* __restrict s, double* __restrict m, int64_t w, double scale) {
  using namespace sgdlab_lanes;
  D4 lo = {}, hi = {};
  int64_t j = 0;
  for (; j + 8 <= w; j += 8) {
    const D4 v0 = __builtin_convertvector(__builtin_convertvector(LoadD(s + j) * scale, F4), D4);
    const D4 v1 = __builtin_convertvector(__builtin_convertvector(LoadD(s + j + 4) * scale, F4), D4);
    Store(m + j, v0);
    Store(m + j + 4, v1);
    lo += v0 * v0;
    hi += v1 * v1;
  }
  double q = 0;
  for (; j < w; ++j) {
    const double v = static_cast<float>(s[j] * scale);
    m[j] = v;
    q += v * v;
  }
  return AddLanes(q, lo, hi);
}

// One tile of the run-block moments: rows [r0, r0 + n) of x (and y) over columns [j0, j0 + w)
// (rows of `cols`; mode as in runBlockMoments). Adds each run's squared deviations from the rows'
// mean (double sums rounded to float32) to da[o runs + r] and the mean's squared norm to
// qa[o qStride], for each of the mode's outs o. s, m: scratch of 3 width doubles.
void TileMoments(const float* px, const float* py, int64_t mode, int64_t cols, int64_t j0, int64_t w, int64_t r0, int64_t n, int64_t width,
                 double* __restrict s, double* __restrict m, double* __restrict da, int64_t runs, double* __restrict qa, int64_t qStride) {
  const int64_t outs = mode == 2 ? 3 : 1;
  for (int64_t j = 0; j < outs * width; ++j) s[j] = 0;
  if (mode == 2) ColumnSums3(px + r0 * cols + j0, py + r0 * cols + j0, cols, n, w, s, s + width, s + 2 * width);
  else if (mode == 1) ColumnSumsDiff(px + r0 * cols + j0, py + r0 * cols + j0, cols, n, w, s);
  else ColumnSums(px + r0 * cols + j0, cols, n, w, s);
  const double scale = 1.0 / static_cast<double>(n);
  for (int64_t o = 0; o < outs; ++o) qa[o * qStride] += TileMean(s + o * width, m + o * width, w, scale);
  for (int64_t r = r0; r < r0 + n; ++r) {
    const float* xr = px + r * cols + j0;
    if (mode == 2) {
      double d3[3] = {0, 0, 0};
      SquaredDeviations3(xr, py + r * cols + j0, m, m + width, m + 2 * width, w, d3);
      da[r] += d3[0];
      da[runs + r] += d3[1];
      da[2 * runs + r] += d3[2];
    } else {
      da[r] += mode == 1 ? SquaredDeviationsDiff(xr, py + r * cols + j0, m, w) : SquaredDeviations(xr, m, w);
    }
  }
}

// Columns per tile of the run-block moments: about 128 KiB of one run block's rows (of x and y),
// so that they stay in cache between the two passes.
int64_t MomentTileWidth(int64_t rowsPerBlock, bool hasY) {
  return std::max<int64_t>(64, std::min<int64_t>(4096, (32768 / (rowsPerBlock * (hasY ? 2 : 1))) & ~int64_t(7)));
}

// How the run-block moments of a [runs, cols] block are split: column tiles of `width` (tiles of
// them) in `parts` contiguous ranges, one when the pass is too small to be worth waking a thread.
// Each range sums into its own accumulators, added in part order at the end: the split fixes the
// bits, so every caller of the moments uses this one.
struct MomentSplit {
  int64_t width, tiles;
  int parts;
  int64_t begin(int part) const { return tiles * part / parts; }
};

MomentSplit SplitMoments(int64_t runs, int64_t cols, int64_t block, bool hasY) {
  const int64_t width = MomentTileWidth(std::min(block, runs), hasY);
  const int64_t tiles = (cols + width - 1) / width;
  // Below about a million elements a memory-bound pass is over before a sleeping worker wakes.
  const bool small = runs * cols * (hasY ? 2 : 1) < (1 << 18);
  return {width, tiles, small ? 1 : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g_threads, tiles)))};
}

// out[j] = w[j] + alpha x[j] for j < n (as axpy computes it), written around the cache where the
// lanes allow: the next parameters are read again only at the next step, after the rest of the
// step's data has been through the cache, so writing them through it would first read every line
// of out from memory and then evict something the step still needs. Callers fence before a join.
void StreamSgd(const float* __restrict w, const float* __restrict x, float* __restrict out, int64_t n, float alpha) {
  int64_t j = 0;
#if defined(__SSE2__)
  for (; j < n && (reinterpret_cast<uintptr_t>(out + j) & 15) != 0; ++j) out[j] = w[j] + alpha * x[j];
  const __m128 a = _mm_set1_ps(alpha);
  for (; j + 4 <= n; j += 4) _mm_stream_ps(out + j, _mm_add_ps(_mm_loadu_ps(w + j), _mm_mul_ps(a, _mm_loadu_ps(x + j))));
#endif
  for (; j < n; ++j) out[j] = w[j] + alpha * x[j];
}

// Tiles [t0, t1) of a [runs, cols] block's run-block moments (mode as in runBlockMoments) added
// to da (outs x runs) and qa (outs x blocks); s, m: scratch of 3 width doubles. With nx, each
// tile's SGD step too while its rows are in cache: nx = w + alpha x on the tile's columns, as
// axpy computes it.
void MomentTiles(const float* px, const float* py, int64_t mode, int64_t runs, int64_t cols, int64_t block, int64_t width, int64_t t0, int64_t t1, double* s, double* m,
                 double* da, double* qa, const float* w, float* nx, float alpha) {
  const int64_t nBlocks = (runs + block - 1) / block;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t j0 = t * width, cw = std::min(cols, j0 + width) - j0;
    for (int64_t k = 0; k < nBlocks; ++k) {
      const int64_t r0 = k * block, n = std::min(runs, r0 + block) - r0;
      TileMoments(px, py, mode, cols, j0, cw, r0, n, width, s, m, da, runs, qa + k, nBlocks);
    }
    if (nx)
      for (int64_t r = 0; r < runs; ++r) StreamSgd(w + r * cols + j0, px + r * cols + j0, nx + r * cols + j0, cw, alpha);
  }
#if defined(__SSE2__)
  if (nx) _mm_sfence();  // the streamed stores are ordered before the pool's join
#endif
}

// out[i] = the float32 of the parts' acc[p count + i] added in part order, for i < count.
void SumParts(const double* acc, int parts, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    double t = 0;
    for (int p = 0; p < parts; ++p) t += acc[p * count + i];
    out[i] = static_cast<float>(t);
  }
}

// The run-block moments of a [runs, cols] block (and y's, mode as in runBlockMoments) into pd
// (outs x runs) and pq (outs x blocks), column tiles split over the pool's threads.
void BlockMoments(const float* px, const float* py, int64_t mode, int64_t runs, int64_t cols, int64_t block, float* pd, float* pq) {
  const int64_t outs = mode == 2 ? 3 : 1;
  const int64_t nBlocks = (runs + block - 1) / block;
  const MomentSplit sp = SplitMoments(runs, cols, block, mode > 0);
  // Per part: outs x runs deviations and outs x blocks mean norms.
  std::vector<double> devAcc(static_cast<size_t>(sp.parts * outs * runs), 0.0), sqAcc(static_cast<size_t>(sp.parts * outs * nBlocks), 0.0);
  const std::function<void(int)> job = [&](int part) {
    std::vector<double> sum(static_cast<size_t>(3 * sp.width)), mean(static_cast<size_t>(3 * sp.width));
    MomentTiles(px, py, mode, runs, cols, block, sp.width, sp.begin(part), sp.begin(part + 1), sum.data(), mean.data(), devAcc.data() + part * outs * runs,
                sqAcc.data() + part * outs * nBlocks, nullptr, nullptr, 0.0f);
  };
  ThePool().Run(sp.parts, job);
  SumParts(devAcc.data(), sp.parts, outs * runs, pd);
  SumParts(sqAcc.data(), sp.parts, outs * nBlocks, pq);
}

// The SGD step of replica r in a fused step, right after its gradients (still in cache): for every
// parameter block i (cols[i] values per replica, its gradient at gAt(i, r)), N[i] = W[i] + alpha g
// as axpy computes it. Nothing without N.
template <typename GAt>
void ReplicaSgd(const std::vector<int64_t>& cols, GAt gAt, int64_t r, const std::vector<float*>& W, const std::vector<float*>& N, float alpha) {
  for (size_t i = 0; i < N.size(); ++i) {
    const int64_t c = cols[i];
    const float* __restrict w = W[i] + r * c;
    const float* __restrict g = gAt(i, r);
    float* __restrict nx = N[i] + r * c;
    for (int64_t j = 0; j < c; ++j) nx[j] = w[j] + alpha * g[j];
  }
}

// What a fused step does after the last replica of run block k, [r0, r0 + n), while the block's
// gradients are in cache: for every parameter block i (cols[i] values per replica; its
// stochastic gradients at gAt(i, r) and, in mode 2, the full ones at fAt(i, r), each run block's
// rows contiguous from r0), the run-block moments tile by tile (mode as in runBlockMoments) into
// devAcc (outs x runs per parameter block) and sqAcc (outs x blocks per parameter block).
template <typename GAt, typename FAt>
void RunBlockEpilogue(const std::vector<int64_t>& cols, GAt gAt, FAt fAt, int64_t mode, int64_t k, int64_t r0, int64_t n, int64_t runs, int64_t nBlocks, int64_t width,
                      double* sum, double* mean, double* devAcc, double* sqAcc) {
  const int64_t outs = mode == 2 ? 3 : 1;
  for (size_t i = 0; i < cols.size(); ++i) {
    const int64_t c = cols[i];
    for (int64_t j0 = 0; j0 < c; j0 += width)
      TileMoments(gAt(i, r0), mode > 0 ? fAt(i, r0) : nullptr, mode, c, j0, std::min(width, c - j0), 0, n, width, sum, mean, devAcc + outs * runs * i + r0, runs,
                  sqAcc + outs * nBlocks * i + k, nBlocks);
  }
}

// The same without the fused path (fewer run blocks than threads), in a second pass over the
// gradients at G (full ones at F): every parameter block's moments exactly as BlockMoments gives
// them (the same tiles, split the same way), and with N the SGD step N[i] = W[i] + alpha G[i] of
// each tile while it is in cache. The parts of all blocks go to the pool's threads as they come
// free, in one call: no thread waits at the end of each block.
void BlockEpilogue(const std::vector<int64_t>& cols, const std::vector<float*>& G, const std::vector<float*>& F, int64_t mode, int64_t runs, int64_t block,
                   const std::vector<float*>& W, const std::vector<float*>& N, float alpha, float* devOut, float* sqOut) {
  const int64_t outs = mode == 2 ? 3 : 1, nBlocks = (runs + block - 1) / block;
  struct Unit {
    size_t block;
    int part;
  };
  std::vector<MomentSplit> splits;
  std::vector<Unit> units;
  std::vector<size_t> accAt(cols.size() + 1, 0);  // parameter block i's accumulators, parts x (outs runs + outs blocks)
  int64_t widest = 0, cost = 0;
  for (size_t i = 0; i < cols.size(); ++i) {
    splits.push_back(SplitMoments(runs, cols[i], block, mode > 0));
    for (int p = 0; p < splits[i].parts; ++p) units.push_back({i, p});
    accAt[i + 1] = accAt[i] + static_cast<size_t>(splits[i].parts * outs * (runs + nBlocks));
    widest = std::max(widest, splits[i].width);
    cost += runs * cols[i] * (mode > 0 ? 2 : 1);
  }
  std::vector<double> acc(accAt.back(), 0.0);
  std::atomic<size_t> claimed{0};
  const std::function<void(int)> job = [&](int) {
    std::vector<double> sum(static_cast<size_t>(3 * widest)), mean(static_cast<size_t>(3 * widest));
    for (size_t u; (u = claimed.fetch_add(1, std::memory_order_relaxed)) < units.size();) {
      const size_t i = units[u].block;
      const int p = units[u].part;
      const MomentSplit& sp = splits[i];
      double* da = acc.data() + accAt[i] + p * outs * runs;
      double* qa = acc.data() + accAt[i] + sp.parts * outs * runs + p * outs * nBlocks;
      MomentTiles(G[i], mode > 0 ? F[i] : nullptr, mode, runs, cols[i], block, sp.width, sp.begin(p), sp.begin(p + 1), sum.data(), mean.data(), da, qa,
                  N.empty() ? nullptr : W[i], N.empty() ? nullptr : N[i], alpha);
    }
  };
  const int threads = cost < (1 << 18) ? 1 : static_cast<int>(std::min<int64_t>(g_threads, static_cast<int64_t>(units.size())));
  ThePool().Run(threads, job);
  for (size_t i = 0; i < cols.size(); ++i) {
    const int parts = splits[i].parts;
    SumParts(acc.data() + accAt[i], parts, outs * runs, devOut + outs * runs * i);
    SumParts(acc.data() + accAt[i] + parts * outs * runs, parts, outs * nBlocks, sqOut + outs * nBlocks * i);
  }
}

// The end of a fused step's moments (and, with N, of its SGD step): those summed in its run blocks
// (fused: the step already took its replicas' SGD steps), rounded into devOut and sqOut, or else
// BlockEpilogue's second pass over the gradients at G (and F).
void FinishMoments(bool fused, const std::vector<double>& devAcc, const std::vector<double>& sqAcc, const std::vector<int64_t>& cols, const std::vector<float*>& G,
                   const std::vector<float*>& F, int64_t mode, int64_t runs, int64_t block, const std::vector<float*>& W, const std::vector<float*>& N, float alpha,
                   float* devOut, float* sqOut) {
  if (!fused) {
    BlockEpilogue(cols, G, F, mode, runs, block, W, N, alpha, devOut, sqOut);
    return;
  }
  for (size_t i = 0; i < devAcc.size(); ++i) devOut[i] = static_cast<float>(devAcc[i]);
  for (size_t i = 0; i < sqAcc.size(); ++i) sqOut[i] = static_cast<float>(sqAcc[i]);
}

// runBlockMoments(x, y, devOut, sqOut, runs, cols, block, mode): the across-run moments of a
// [runs, cols] block by run blocks of `block` consecutive runs (the last may be shorter).
// mode 0: of x (y is ignored); mode 1: of the float32 difference x - y, never materialised;
// mode 2: of x, of y and of x - y together, from one read of x and y (devOut holds 3 runs values,
// sqOut 3 block values, in that order). For run block k with mean m_k (double sums rounded to
// float32): dev[r] = sum_j (v[r, j] - m_k[j])^2 for its runs r and sq[k] = sum_j m_k[j]^2, in
// double. Threads take column tiles small enough that a run block's rows stay in cache between
// the two passes.
Napi::Value RunBlockMoments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8) throw Napi::TypeError::New(env, "runBlockMoments takes 8 arguments");
  Napi::Float32Array x = F32(info, 0, "x");
  const int64_t mode = Int(info, 7, "mode");
  if (mode > 2) throw Napi::RangeError::New(env, "mode must be 0, 1 or 2");
  const bool hasY = mode > 0;
  Napi::Float32Array y = hasY ? F32(info, 1, "y") : Napi::Float32Array();
  Napi::Float32Array dev = F32(info, 2, "devOut"), sq = F32(info, 3, "sqOut");
  const int64_t runs = Int(info, 4, "runs"), cols = Int(info, 5, "cols"), block = Int(info, 6, "block");
  if (block == 0) throw Napi::RangeError::New(env, "block must be >= 1");
  const int64_t nBlocks = (runs + block - 1) / block;
  const int64_t outs = mode == 2 ? 3 : 1;
  if (static_cast<int64_t>(x.ElementLength()) < runs * cols) throw Napi::RangeError::New(env, "x is too short");
  if (hasY && static_cast<int64_t>(y.ElementLength()) < runs * cols) throw Napi::RangeError::New(env, "y is too short");
  if (static_cast<int64_t>(dev.ElementLength()) < outs * runs) throw Napi::RangeError::New(env, "devOut is too short");
  if (static_cast<int64_t>(sq.ElementLength()) < outs * nBlocks) throw Napi::RangeError::New(env, "sqOut is too short");
  if (runs == 0) return env.Undefined();
  BlockMoments(x.Data(), hasY ? y.Data() : nullptr, mode, runs, cols, block, dev.Data(), sq.Data());
  return env.Undefined();
}

// deepLinearStep(x, teacher, weights[], widths[], b, grads[], full[] | null, lossOut): the whole
// step of a stacked deep linear network f(x) = W_d ... W_1 x for every replica r, on the pool's
// threads, a replica at a time so that its products stay in cache:
//   S = X_r^T X_r / b, Q_1 = W_1, Q_k = W_k Q_{k-1}, Delta = Q_d - M (M = teacher, o x p),
//   lossOut[r] = 1/2 ||Delta||^2, H = [E | Delta] with E = Delta S (Delta only with full),
//   from the top layer down: grad_k = H Q_{k-1}^T (H itself for k = 1), H <- W_k^T H;
// the stochastic gradient from E's columns of H, the full gradient from Delta's. E and Delta
// side by side make each W_k^T H one product of twice the width. weights[k], grads[k], full[k]:
// [R, widths[k+1], widths[k]] stacked; x: [R, b, p].
// With full and the optional (runBlock, devOut, sqOut), also the run-block moments of every layer
// as runBlockMoments(grads[k], full[k], ..., runBlock, mode 2) gives them, each run block's right
// after its replicas, while their gradients are still in cache (threads take whole run blocks):
// layer k's at devOut[3 R k ..] (g, grad L, g - grad L: R values each) and sqOut[3 B k ..] (B
// run blocks, 3 B values).
// With the moments and (lr, next[]) as well, the SGD step too: next[k] = weights[k] - lr grads[k]
// (as axpy computes it, w + (-lr) g in float32), each replica's right after its gradients (with
// fewer run blocks than threads, each tile's in the second pass, after its moments). The
// gradients then never leave the threads' scratch (grads and full may be null): a run block of
// them per thread, or all of them when the replicas split.
Napi::Value DeepLinearStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8 && info.Length() != 11 && info.Length() != 13)
    throw Napi::TypeError::New(env, "deepLinearStep takes 8 arguments, 11 with the moments or 13 with the moments and the SGD step");
  Napi::Float32Array x = F32(info, 0, "x"), teacher = F32(info, 1, "teacher");
  const bool withStep = info.Length() == 13;
  const bool gradsGiven = !withStep || (!info[5].IsNull() && !info[5].IsUndefined());
  if (!info[2].IsArray() || (gradsGiven && !info[5].IsArray())) throw Napi::TypeError::New(env, "weights and grads must be arrays of Float32Arrays");
  const std::vector<int64_t> widths = Ints(info, 3, "widths");
  const int64_t b = Int(info, 4, "b");
  const size_t d = widths.size() - 1;
  if (widths.size() < 2) throw Napi::RangeError::New(env, "widths needs an input and an output width");
  for (int64_t w : widths)
    if (w <= 0 || w > INT32_MAX) throw Napi::RangeError::New(env, "widths must be positive");
  if (b == 0) throw Napi::RangeError::New(env, "b must be >= 1");
  const bool fullGiven = !info[6].IsNull() && !info[6].IsUndefined();
  // With the SGD step the full gradients are always computed (the moments need them), given or not.
  const bool wantFull = fullGiven || withStep;
  Napi::Array wArr = info[2].As<Napi::Array>();
  Napi::Array gArr = gradsGiven ? info[5].As<Napi::Array>() : Napi::Array();
  if (wArr.Length() != d || (gradsGiven && gArr.Length() != d) || (fullGiven && (!info[6].IsArray() || info[6].As<Napi::Array>().Length() != d)))
    throw Napi::RangeError::New(env, "weights, grads (and full) need one array per layer");
  Napi::Float32Array loss = F32(info, 7, "lossOut");
  const int64_t p = widths[0], o = widths[d];
  const int64_t runs = static_cast<int64_t>(loss.ElementLength());
  const bool withMoments = info.Length() >= 11;
  const int64_t block = withMoments ? Int(info, 8, "runBlock") : 0;
  if (withMoments && !wantFull) throw Napi::TypeError::New(env, "the moments need full");
  if (withStep && !info[11].IsNumber()) throw Napi::TypeError::New(env, "lr must be a number");
  const float alpha = withStep ? -info[11].As<Napi::Number>().FloatValue() : 0.0f;
  if (withStep && !info[12].IsArray()) throw Napi::TypeError::New(env, "next must be an array of Float32Arrays");
  if (withMoments && block == 0) throw Napi::RangeError::New(env, "runBlock must be >= 1");
  const int64_t nBlocks = withMoments ? (runs + block - 1) / block : 0;
  Napi::Float32Array devOut = withMoments ? F32(info, 9, "devOut") : Napi::Float32Array();
  Napi::Float32Array sqOut = withMoments ? F32(info, 10, "sqOut") : Napi::Float32Array();
  if (withMoments && static_cast<int64_t>(devOut.ElementLength()) < 3 * runs * static_cast<int64_t>(d)) throw Napi::RangeError::New(env, "devOut is too short");
  if (withMoments && static_cast<int64_t>(sqOut.ElementLength()) < 3 * nBlocks * static_cast<int64_t>(d)) throw Napi::RangeError::New(env, "sqOut is too short");
  if (static_cast<int64_t>(x.ElementLength()) < runs * b * p) throw Napi::RangeError::New(env, "x is too short");
  if (static_cast<int64_t>(teacher.ElementLength()) < o * p) throw Napi::RangeError::New(env, "teacher is too short");
  std::vector<int64_t> wSize(d);
  for (size_t k = 0; k < d; ++k) wSize[k] = runs * widths[k + 1] * widths[k];
  const std::vector<float*> W = LayerArrays(info, 2, "weights", wSize);
  const std::vector<float*> N = withStep ? LayerArrays(info, 12, "next", wSize) : std::vector<float*>();
  std::vector<float*> G(d, nullptr), F(d, nullptr);
  for (size_t k = 0; k < d; ++k) {
    const int64_t size = wSize[k];
    if (gradsGiven) {
      Napi::Value gv = gArr.Get(static_cast<uint32_t>(k));
      if (!gv.IsTypedArray() || gv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "grads must hold Float32Arrays");
      if (static_cast<int64_t>(gv.As<Napi::Float32Array>().ElementLength()) < size) throw Napi::RangeError::New(env, "grads[" + std::to_string(k) + "] is too short");
      G[k] = gv.As<Napi::Float32Array>().Data();
    }
    if (fullGiven) {
      Napi::Value fv = info[6].As<Napi::Array>().Get(static_cast<uint32_t>(k));
      if (!fv.IsTypedArray() || fv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "full must hold Float32Arrays");
      if (static_cast<int64_t>(fv.As<Napi::Float32Array>().ElementLength()) < size) throw Napi::RangeError::New(env, "full[" + std::to_string(k) + "] is too short");
      F[k] = fv.As<Napi::Float32Array>().Data();
    }
  }
  const float* px = x.Data();
  const float* pm = teacher.Data();
  float* pl = loss.Data();
  // Q_k offsets in one scratch array; H holds [E | Delta] for the widest layer.
  std::vector<int64_t> qOff(d + 1, 0);
  for (size_t k = 0; k < d; ++k) qOff[k + 1] = qOff[k] + widths[k + 1] * p;
  int64_t widest = 0;
  for (int64_t w : widths) widest = std::max(widest, w);
  const int64_t hw = wantFull ? 2 * p : p;  // H's row length
  const float bf = static_cast<float>(b);
  double flops = 2.0 * b * p * p;
  for (size_t k = 0; k < d; ++k) flops += 2.0 * widths[k + 1] * widths[k] * p * (wantFull ? 3 : 2);
  // Replicas (whole run blocks with the moments) split over the pool's threads when the work pays
  // for waking them.
  // Whole run blocks per thread only when there are enough of them to keep every thread busy;
  // else the replicas split as without the moments, and the moments follow in a second pass.
  const bool fuseMoments = withMoments && nBlocks >= std::min<int64_t>(g_threads, runs);
  const int64_t units = fuseMoments ? nBlocks : runs;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(g_threads, units)));
  const int nparts = threads > 1 && flops * runs > 2e6 ? threads : 1;
  // The moments' double sums: a run's and a run block's entries are written by one thread only.
  std::vector<double> devAcc(fuseMoments ? static_cast<size_t>(3 * runs * d) : 0, 0.0), sqAcc(fuseMoments ? static_cast<size_t>(3 * nBlocks * d) : 0, 0.0);
  // Gradients nobody asked to keep (the SGD step without grads or full) live in scratch: with the
  // moments fused, one run block of them per thread (layer k's at block * sum of the sizes before
  // it, run r0 + i at i sizes in); else all runs, for the second pass.
  std::vector<int64_t> sz(d), lOff(d + 1, 0);
  for (size_t k = 0; k < d; ++k) {
    sz[k] = widths[k + 1] * widths[k];
    lOff[k + 1] = lOff[k] + std::min(block, runs) * sz[k];
  }
  const bool localG = withStep && !gradsGiven && fuseMoments, localF = withStep && !fullGiven && fuseMoments;
  static std::vector<float> spare;  // this runs on the JavaScript thread only
  if (withStep && !fuseMoments && (!gradsGiven || !fullGiven)) {
    const int64_t all = lOff[d] / std::min(block, runs) * runs;
    spare.resize(static_cast<size_t>(2 * all));
    for (size_t k = 0, off = 0; k < d; off += static_cast<size_t>(wSize[k]), ++k) {
      if (!gradsGiven) G[k] = spare.data() + off;
      if (!fullGiven) F[k] = spare.data() + all + off;
    }
  }
  std::atomic<int64_t> claimed{0};
  const std::function<void(int)> job = [&](int) {
    std::vector<float> S(static_cast<size_t>(p * p)), Q(static_cast<size_t>(qOff[d])), H(static_cast<size_t>(widest * hw)), H2(static_cast<size_t>(widest * hw));
    // Kept per thread between calls: a fresh one would be mapped and faulted in at every step.
    thread_local std::vector<float> blockG, blockF;
    if (localG && blockG.size() < static_cast<size_t>(lOff[d])) blockG.resize(static_cast<size_t>(lOff[d]));
    if (localF && blockF.size() < static_cast<size_t>(lOff[d])) blockF.resize(static_cast<size_t>(lOff[d]));
    // Layer k's gradients of run r: in the caller's (or the spare) arrays, or in this thread's run block.
    const auto gAt = [&](size_t k, int64_t r) { return localG ? blockG.data() + lOff[k] + (r % block) * sz[k] : G[k] + r * sz[k]; };
    const auto fAt = [&](size_t k, int64_t r) { return localF ? blockF.data() + lOff[k] + (r % block) * sz[k] : F[k] + r * sz[k]; };
    const int64_t width = fuseMoments ? MomentTileWidth(std::min(block, runs), true) : 0;
    std::vector<double> sum(static_cast<size_t>(3 * width)), mean(static_cast<size_t>(3 * width));
    // Replicas (or whole run blocks) go to the threads as they come free: a thread slowed by
    // other work on its core holds up the step by one unit at most.
    for (int64_t u; (u = claimed.fetch_add(1, std::memory_order_relaxed)) < units;) {
      const int64_t rBegin = fuseMoments ? u * block : u, rEnd = fuseMoments ? std::min(runs, (u + 1) * block) : u + 1;
      for (int64_t r = rBegin; r < rEnd; ++r) {
        // S = X^T X / b (the division as the composed program does it).
        Gemm(true, false, p, p, b, 1.0f, px + r * b * p, static_cast<int>(p), px + r * b * p, static_cast<int>(p), 0.0f, S.data(), static_cast<int>(p));
        for (int64_t i = 0; i < p * p; ++i) S[i] = S[i] / bf;
        // Prefix products Q_1 .. Q_d.
        std::memcpy(Q.data(), W[0] + r * widths[1] * widths[0], sizeof(float) * static_cast<size_t>(widths[1] * p));
        for (size_t k = 1; k < d; ++k)
          Gemm(false, false, widths[k + 1], p, widths[k], 1.0f, W[k] + r * widths[k + 1] * widths[k], static_cast<int>(widths[k]), Q.data() + qOff[k - 1], static_cast<int>(p), 0.0f,
               Q.data() + qOff[k], static_cast<int>(p));
        // Delta (in the spare H), the loss from it.
        float* delta = H2.data();
        const float* qd = Q.data() + qOff[d - 1];
        double l = 0;
        for (int64_t i = 0; i < o; ++i)
          for (int64_t j = 0; j < p; ++j) {
            const float v = qd[i * p + j] - pm[i * p + j];
            delta[i * p + j] = v;
            l += static_cast<double>(v) * v;
          }
        pl[r] = static_cast<float>(0.5 * static_cast<float>(l));
        // H = [E | Delta], E = Delta S.
        Gemm(false, false, o, p, p, 1.0f, delta, static_cast<int>(p), S.data(), static_cast<int>(p), 0.0f, H.data(), static_cast<int>(hw));
        if (wantFull)
          for (int64_t i = 0; i < o; ++i) std::memcpy(H.data() + i * hw + p, delta + i * p, sizeof(float) * static_cast<size_t>(p));
        float* h = H.data();
        float* spare = H2.data();
        for (size_t kk = d; kk-- > 0;) {
          const int64_t out = widths[kk + 1], in = widths[kk];
          float* g = gAt(kk, r);
          float* f = wantFull ? fAt(kk, r) : nullptr;
          if (kk == 0) {
            // grad_1 = H's halves (in = p).
            for (int64_t i = 0; i < out; ++i) {
              std::memcpy(g + i * p, h + i * hw, sizeof(float) * static_cast<size_t>(p));
              if (f) std::memcpy(f + i * p, h + i * hw + p, sizeof(float) * static_cast<size_t>(p));
            }
            break;
          }
          const float* qPrev = Q.data() + qOff[kk - 1];  // in x p
          Gemm(false, true, out, in, p, 1.0f, h, static_cast<int>(hw), qPrev, static_cast<int>(p), 0.0f, g, static_cast<int>(in));
          if (f) Gemm(false, true, out, in, p, 1.0f, h + p, static_cast<int>(hw), qPrev, static_cast<int>(p), 0.0f, f, static_cast<int>(in));
          // H <- W_k^T H: (in x out) (out x hw), both halves in one product.
          Gemm(true, false, in, hw, out, 1.0f, W[kk] + r * out * in, static_cast<int>(in), h, static_cast<int>(hw), 0.0f, spare, static_cast<int>(hw));
          std::swap(h, spare);
        }
        // The replica's SGD step while its gradients are in cache; a run block complete: its moments.
        if (fuseMoments) ReplicaSgd(sz, gAt, r, W, N, alpha);
        if (fuseMoments && ((r + 1) % block == 0 || r + 1 == runs)) {
          const int64_t k = r / block, r0 = k * block;
          RunBlockEpilogue(sz, gAt, fAt, 2, k, r0, r + 1 - r0, runs, nBlocks, width, sum.data(), mean.data(), devAcc.data(), sqAcc.data());
        }
      }
    }
  };
  if (nparts > 1) ThePool().Run(nparts, job);
  else job(0);
  if (withMoments) FinishMoments(fuseMoments, devAcc, sqAcc, sz, G, F, 2, runs, block, W, N, alpha, devOut.Data(), sqOut.Data());
  return env.Undefined();
}

// The row indices at info[i], an Int32Array, each checked to lie in [0, count); their number in *n.
const int32_t* TableRows(const Napi::CallbackInfo& info, size_t i, int64_t count, int64_t* n) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "rows must be an Int32Array");
  Napi::Int32Array rows = info[i].As<Napi::Int32Array>();
  *n = static_cast<int64_t>(rows.ElementLength());
  const int32_t* pr = rows.Data();
  for (int64_t k = 0; k < *n; ++k)
    if (pr[k] < 0 || pr[k] >= count) throw Napi::RangeError::New(env, "row " + std::to_string(pr[k]) + " is outside the table's " + std::to_string(count) + " rows");
  return pr;
}

// dst row i = src row rows[i] for i < n (rows of `width` floats), each row's cache lines asked for
// a few rows ahead of its copy: rows of a table larger than the cache come from memory, and one
// row's misses alone would leave the memory system mostly idle.
void GatherAhead(const float* src, int64_t width, const int32_t* rows, int64_t n, float* dst) {
  constexpr int64_t kAhead = 8;
  const int64_t bytes = width * static_cast<int64_t>(sizeof(float));
  const auto ask = [&](int64_t i) {
    const char* row = reinterpret_cast<const char*>(src + static_cast<int64_t>(rows[i]) * width);
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(row + o, 0, 0);
  };
  for (int64_t i = 0; i < std::min(n, kAhead); ++i) ask(i);
  for (int64_t i = 0; i < n; ++i) {
    if (i + kAhead < n) ask(i + kAhead);
    std::memcpy(dst + i * width, src + static_cast<int64_t>(rows[i]) * width, static_cast<size_t>(bytes));
  }
}

// gatherRows(src, width, rows, dst): dst row i = src row rows[i] (rows of `width` floats); the
// copies of a mini-batch from a training set. Threads take slices of the rows: random rows of a
// table larger than the cache are latency-bound, and two streams of misses overlap.
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "gatherRows takes 4 arguments");
  Napi::Float32Array src = F32(info, 0, "src");
  const int64_t width = Int(info, 1, "width");
  Napi::Float32Array dst = F32(info, 3, "dst");
  int64_t n;
  const int32_t* pr = TableRows(info, 2, width == 0 ? 0 : static_cast<int64_t>(src.ElementLength()) / width, &n);
  if (static_cast<int64_t>(dst.ElementLength()) < n * width) throw Napi::RangeError::New(env, "dst is too short");
  const float* ps = src.Data();
  float* pd = dst.Data();
  Parallel(n, 4 * n * width, [&](int64_t i0, int64_t i1, int) {
    GatherAhead(ps, width, pr + i0, i1 - i0, pd + i0 * width);
  });
  return env.Undefined();
}

// Eight streams of fillNormals in lanes (normals.h), compiled per instruction set.
HOT int64_t FillNormalGroup(sgdlab_normals::Stream* st, uint8_t* hasSpare, double* spare, float* const* out, int64_t count, double std) {
  return sgdlab_normals::FillNormal8(st, hasSpare, spare, out, count, std);
}

// fillNormals(state, hasSpare, spare, out, perStream, std): for each stream i (its xoshiro128**
// state at state[4i..4i+4), its Box-Muller spare at hasSpare[i], spare[i]), out[i perStream ..
// (i + 1) perStream) = std * its next deviates, the bits RandomStream.fillNormal gives
// (normals.h); the states and spares move on. Streams go 8 at a time in SIMD lanes (the last
// fewer than 8 one at a time), groups in parallel on the pool. Returns how many Box-Muller pairs
// the lanes left to the scalar code (their rare cases), for the tests.
Napi::Value FillNormals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 6) throw Napi::TypeError::New(env, "fillNormals takes 6 arguments");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) throw Napi::TypeError::New(env, "state must be a Uint32Array");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "hasSpare must be a Uint8Array");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) throw Napi::TypeError::New(env, "spare must be a Float64Array");
  Napi::Uint32Array state = info[0].As<Napi::Uint32Array>();
  Napi::Uint8Array hasSpare = info[1].As<Napi::Uint8Array>();
  Napi::Float64Array spare = info[2].As<Napi::Float64Array>();
  Napi::Float32Array out = F32(info, 3, "out");
  const int64_t perStream = Int(info, 4, "perStream");
  if (!info[5].IsNumber()) throw Napi::TypeError::New(env, "std must be a number");
  const double std = info[5].As<Napi::Number>().DoubleValue();
  const int64_t streams = static_cast<int64_t>(state.ElementLength()) / 4;
  if (static_cast<int64_t>(state.ElementLength()) != 4 * streams) throw Napi::RangeError::New(env, "state must hold 4 words per stream");
  if (static_cast<int64_t>(hasSpare.ElementLength()) < streams || static_cast<int64_t>(spare.ElementLength()) < streams) throw Napi::RangeError::New(env, "hasSpare and spare need one entry per stream");
  if (static_cast<int64_t>(out.ElementLength()) < streams * perStream) throw Napi::RangeError::New(env, "out is too short");
  uint32_t* ps = state.Data();
  uint8_t* ph = hasSpare.Data();
  double* pp = spare.Data();
  float* po = out.Data();
  const int64_t groups = (streams + 7) / 8;
  std::atomic<int64_t> scalarPairs{0};
  // A deviate costs about as much as 4 elements of a memory-bound pass.
  Parallel(groups, 4 * streams * perStream, [&](int64_t g0, int64_t g1, int) {
    int64_t mine = 0;
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t i0 = 8 * g, n = std::min<int64_t>(8, streams - i0);
      sgdlab_normals::Stream st[8];
      for (int64_t l = 0; l < n; ++l) std::memcpy(st[l].s, ps + 4 * (i0 + l), sizeof st[l].s);
      if (n == 8) {
        float* rows[8];
        for (int l = 0; l < 8; ++l) rows[l] = po + (i0 + l) * perStream;
        mine += FillNormalGroup(st, ph + i0, pp + i0, rows, perStream, std);
      } else {
        for (int64_t l = 0; l < n; ++l) sgdlab_normals::FillNormal(st[l], ph[i0 + l], pp[i0 + l], po + (i0 + l) * perStream, perStream, std);
      }
      for (int64_t l = 0; l < n; ++l) std::memcpy(ps + 4 * (i0 + l), st[l].s, sizeof st[l].s);
    }
    scalarPairs += mine;
  });
  return Napi::Number::New(env, static_cast<double>(scalarPairs.load()));
}

// adamw(w, g, m, v, wOut, mOut, vOut, [lr, beta1, beta2, eps, c1, c2, decay, clip]): one AdamW
// step of a parameter block with decoupled weight decay `decay` (w <- w (1 - lr decay) - ...),
// bias corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t, and the gradient first clipped to norm
// `clip` (0: no clipping).
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8 || !info[7].IsArray()) throw Napi::TypeError::New(env, "adamw takes 7 arrays and the hyper-parameters");
  Napi::Float32Array w = F32(info, 0, "w"), g = F32(info, 1, "g"), m = F32(info, 2, "m"), v = F32(info, 3, "v");
  Napi::Float32Array wo = F32(info, 4, "wOut"), mo = F32(info, 5, "mOut"), vo = F32(info, 6, "vOut");
  Napi::Array h = info[7].As<Napi::Array>();
  if (h.Length() != 8) throw Napi::TypeError::New(env, "adamw: 8 hyper-parameters");
  double hp[8];
  for (uint32_t i = 0; i < 8; ++i) hp[i] = h.Get(i).As<Napi::Number>().DoubleValue();
  const int64_t n = static_cast<int64_t>(w.ElementLength());
  for (Napi::Float32Array* a : {&g, &m, &v, &wo, &mo, &vo})
    if (static_cast<int64_t>(a->ElementLength()) < n) throw Napi::RangeError::New(env, "adamw: an array is shorter than w");
  const float* pw = w.Data();
  const float* pg = g.Data();
  const float* pm = m.Data();
  const float* pv = v.Data();
  float* pwo = wo.Data();
  float* pmo = mo.Data();
  float* pvo = vo.Data();
  const double lr = hp[0], b1 = hp[1], b2 = hp[2], eps = hp[3], c1 = hp[4], c2 = hp[5], decay = hp[6], clip = hp[7];
  double scale = 1;
  if (clip > 0) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(pg[i]) * pg[i];
    scale = std::min(1.0, clip / (std::sqrt(ss) + 1e-30));
  }
  const float keep = static_cast<float>(1 - lr * decay);
  Parallel(n, n * 4, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const float gi = static_cast<float>(pg[i] * scale);
      const float mi = static_cast<float>(b1 * pm[i] + (1 - b1) * gi);
      const float vi = static_cast<float>(b2 * pv[i] + (1 - b2) * gi * gi);
      pmo[i] = mi;
      pvo[i] = vi;
      pwo[i] = static_cast<float>(pw[i] * keep - lr * (mi / c1) / (std::sqrt(vi / c2) + eps));
    }
  });
  return env.Undefined();
}

// axpy(x, y, out, alpha): out = x + alpha y (the SGD update in one pass).
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) throw Napi::TypeError::New(env, "axpy takes 4 arguments");
  Napi::Float32Array x = F32(info, 0, "x"), y = F32(info, 1, "y"), o = F32(info, 2, "out");
  const float alpha = info[3].As<Napi::Number>().FloatValue();
  const int64_t n = static_cast<int64_t>(x.ElementLength());
  if (static_cast<int64_t>(y.ElementLength()) < n || static_cast<int64_t>(o.ElementLength()) < n) throw Napi::RangeError::New(env, "y or out is too short");
  const float* px = x.Data();
  const float* py = y.Data();
  float* po = o.Data();
  Parallel(n, n, [&](int64_t i0, int64_t i1, int) {
    const float* __restrict xs = px;
    const float* __restrict ys = py;
    float* __restrict os = po;
    const float a = alpha;
    for (int64_t i = i0; i < i1; ++i) os[i] = xs[i] + a * ys[i];
  });
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t t = Int(info, 0, "threads");
  if (t < 1) throw Napi::RangeError::New(info.Env(), "threads must be >= 1");
  // OpenBLAS stays single-threaded; `t` threads are the addon's own.
  openblas_set_num_threads(1);
  g_threads = static_cast<int>(t);
  return info.Env().Undefined();
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_threads);
}

Napi::Value GetProcs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_procs());
}

Napi::Value GetConfig(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), openblas_get_config());
}

#include "transformer.h"
#include "mlp.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  openblas_set_num_threads(1);
  exports.Set("gemmBatched", Napi::Function::New(env, GemmBatched));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("reduceSum", Napi::Function::New(env, ReduceSum));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided));
  exports.Set("sqdevSum", Napi::Function::New(env, SqdevSum));
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows));
  exports.Set("runMoments", Napi::Function::New(env, RunMoments));
  exports.Set("runBlockMoments", Napi::Function::New(env, RunBlockMoments));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("fillNormals", Napi::Function::New(env, FillNormals));
  exports.Set("axpy", Napi::Function::New(env, Axpy));
  exports.Set("deepLinearStep", Napi::Function::New(env, DeepLinearStep));
  exports.Set("mlpStep", Napi::Function::New(env, MlpStep));
  exports.Set("scatterAddRows", Napi::Function::New(env, ScatterAddRows));
  exports.Set("biasGelu", Napi::Function::New(env, BiasGelu));
  exports.Set("biasGeluGrad", Napi::Function::New(env, BiasGeluGrad));
  exports.Set("addLayerNorm", Napi::Function::New(env, AddLayerNorm));
  exports.Set("layerNormGrad", Napi::Function::New(env, LayerNormGrad));
  exports.Set("relAttentionBlock", Napi::Function::New(env, RelAttentionBlock));
  exports.Set("relAttentionBlockGrad", Napi::Function::New(env, RelAttentionBlockGrad));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads));
  exports.Set("getProcs", Napi::Function::New(env, GetProcs));
  exports.Set("getConfig", Napi::Function::New(env, GetConfig));
  return exports;
}

}  // namespace

NODE_API_MODULE(sgd_native, Init)
