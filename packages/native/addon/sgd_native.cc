// sgd-lab native kernels: float32 matrix products on the system's OpenBLAS, called on the
// TypedArray views TensorFlow.js's cpu backend keeps its tensors in (no copies), plus thread
// control. Every entry point checks the sizes it is given against the arrays before touching
// memory, so a wrong call from JavaScript throws instead of corrupting the heap.
#include <napi.h>
#include <cblas.h>

#include <cstdint>
#include <string>

extern "C" {
// OpenBLAS extensions (declared in cblas.h of OpenBLAS; repeated for other cblas.h headers).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
int openblas_get_num_procs(void);
char* openblas_get_config(void);
}

namespace {

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

// Elements needed by `batch` matrices of `rows` x `cols` spaced `stride` apart.
int64_t Needed(int64_t batch, int64_t stride, int64_t rows, int64_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  return (batch - 1) * stride + rows * cols;
}

// gemmBatched(a, b, c, batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, beta)
// For i < batch: C_i = alpha op(A_i) op(B_i) + beta C_i, row-major, op(A_i) m x k, op(B_i) k x n.
// A stride of 0 reuses one matrix for every i (broadcasting).
Napi::Value GemmBatched(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 14) throw Napi::TypeError::New(env, "gemmBatched takes 14 arguments");
  Napi::Float32Array a = F32(info, 0, "a"), b = F32(info, 1, "b"), c = F32(info, 2, "c");
  const int64_t batch = Int(info, 3, "batch"), m = Int(info, 4, "m"), n = Int(info, 5, "n"), k = Int(info, 6, "k");
  const bool ta = info[7].ToBoolean(), tb = info[8].ToBoolean();
  const int64_t sa = Int(info, 9, "strideA"), sb = Int(info, 10, "strideB"), sc = Int(info, 11, "strideC");
  const float alpha = info[12].As<Napi::Number>().FloatValue(), beta = info[13].As<Napi::Number>().FloatValue();
  if (static_cast<int64_t>(a.ElementLength()) < Needed(batch, sa, m, k)) throw Napi::RangeError::New(env, "a is too short");
  if (static_cast<int64_t>(b.ElementLength()) < Needed(batch, sb, k, n)) throw Napi::RangeError::New(env, "b is too short");
  if (static_cast<int64_t>(c.ElementLength()) < Needed(batch, sc, m, n)) throw Napi::RangeError::New(env, "c is too short");
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) throw Napi::RangeError::New(env, "matrix too large");
  const float* pa = a.Data();
  const float* pb = b.Data();
  float* pc = c.Data();
  const int lda = ta ? static_cast<int>(m) : static_cast<int>(k);
  const int ldb = tb ? static_cast<int>(k) : static_cast<int>(n);
  const int ldc = static_cast<int>(n);
  for (int64_t i = 0; i < batch; ++i) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, pa + i * sa, lda, pb + i * sb, ldb, beta, pc + i * sc, ldc);
  }
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t t = Int(info, 0, "threads");
  if (t < 1) throw Napi::RangeError::New(info.Env(), "threads must be >= 1");
  openblas_set_num_threads(static_cast<int>(t));
  return info.Env().Undefined();
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value GetProcs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_procs());
}

Napi::Value GetConfig(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), openblas_get_config());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmBatched", Napi::Function::New(env, GemmBatched));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads));
  exports.Set("getProcs", Napi::Function::New(env, GetProcs));
  exports.Set("getConfig", Napi::Function::New(env, GetConfig));
  return exports;
}

}  // namespace

NODE_API_MODULE(sgd_native, Init)
