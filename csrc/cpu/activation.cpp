// Activations on the CPU: the kernels of the active ISA (cpu/kernels/activation.h), split across
// threads with at::parallel_for. Ops and checks are in host/activation.h.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdlib>
#include <initializer_list>

#include "cpu/activation_table.h"
#include "host/activation.h"

namespace dlk::cpu {
namespace {

// Elements per task: large enough that a thread's start-up cost is small against the memory
// traffic, small enough that two threads split a 128 KB tensor.
constexpr int64_t kGrain = 16384;

// Outputs of at least this many bytes are written with streaming stores (cpu/kernels/activation.h).
// Measured on a 2-core Zen 4 with 32 MB of L3 (benchmarks/README.md): from 8 MB on they win
// 1.3-2x, even when the next op reads the output back; at 4 MB and below the output would still
// be in the caches for the next op, and streaming it to memory loses up to 2x. Override with
// DLKERNELS_CPU_STREAM_BYTES (a byte count; -1: never stream).
constexpr int64_t kDefaultStreamBytes = int64_t(8) << 20;

int64_t stream_bytes() {
  static const int64_t bytes = [] {
    const char* env = std::getenv("DLKERNELS_CPU_STREAM_BYTES");
    return env && *env ? std::strtoll(env, nullptr, 10) : kDefaultStreamBytes;
  }();
  return bytes;
}

// Streaming stores pay off only for a separate output: in place, the lines were just read into
// the cache anyway.
bool use_stream(const void* out, int64_t out_bytes, std::initializer_list<const void*> inputs) {
  const int64_t threshold = stream_bytes();
  if (threshold < 0 || out_bytes < threshold) return false;
  for (const void* in : inputs) {
    if (in == out) return false;
  }
  return true;
}

template <class T>
void forward_typed(Activation act, const at::Tensor& x, const at::Tensor& y, double slope) {
  const auto& table = activation_table<T>();
  const T* px = x.const_data_ptr<T>();
  T* py = y.data_ptr<T>();
  const int64_t n = x.numel();
  const bool stream = use_stream(py, n * int64_t(sizeof(T)), {px});
  const auto fn = (stream ? table.forward_stream : table.forward)[static_cast<int>(act)];
  const T s = static_cast<T>(slope);
  at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { fn(px + b, py + b, e - b, s); });
}

template <class T>
void backward_typed(Activation act, const at::Tensor& dy, const at::Tensor& saved, const at::Tensor& dx,
                    double slope) {
  const auto& table = activation_table<T>();
  const T* pdy = dy.const_data_ptr<T>();
  const T* ps = saved.const_data_ptr<T>();
  T* pdx = dx.data_ptr<T>();
  const int64_t n = dy.numel();
  const bool stream = use_stream(pdx, n * int64_t(sizeof(T)), {pdy, ps});
  const auto fn = (stream ? table.backward_stream : table.backward)[static_cast<int>(act)];
  const T s = static_cast<T>(slope);
  at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { fn(pdy + b, ps + b, pdx + b, e - b, s); });
}

struct CpuBackend {
  static void check_dtype(const at::Tensor& t, const char* op) {
    dlk::check_dtype(t, op, {at::kFloat, at::kDouble});
  }
  static void forward(Activation act, const at::Tensor& x, const at::Tensor& y, double slope) {
    if (x.scalar_type() == at::kFloat) return forward_typed<float>(act, x, y, slope);
    forward_typed<double>(act, x, y, slope);
  }
  static void backward(Activation act, const at::Tensor& dy, const at::Tensor& saved, const at::Tensor& dx,
                       double slope) {
    if (dy.scalar_type() == at::kFloat) return backward_typed<float>(act, dy, saved, dx, slope);
    backward_typed<double>(act, dy, saved, dx, slope);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(dlkernels, CPU, m) { register_activation_ops<CpuBackend>(m); }

}  // namespace dlk::cpu
