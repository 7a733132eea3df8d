// Activations on the CPU: the kernels of the active ISA (cpu/kernels/activation.h), split across
// threads with at::parallel_for. Ops and checks are in host/activation.h.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cpu/activation_table.h"
#include "host/activation.h"

namespace dlk::cpu {
namespace {

// Elements per task: large enough that a thread's start-up cost is small against the memory
// traffic, small enough that two threads split a 128 KB tensor.
constexpr int64_t kGrain = 16384;

template <class T>
void forward_typed(Activation act, const at::Tensor& x, const at::Tensor& y, double slope) {
  const auto fn = activation_table<T>().forward[static_cast<int>(act)];
  const T* px = x.const_data_ptr<T>();
  T* py = y.data_ptr<T>();
  const T s = static_cast<T>(slope);
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) { fn(px + b, py + b, e - b, s); });
}

template <class T>
void backward_typed(Activation act, const at::Tensor& dy, const at::Tensor& saved, const at::Tensor& dx,
                    double slope) {
  const auto fn = activation_table<T>().backward[static_cast<int>(act)];
  const T* pdy = dy.const_data_ptr<T>();
  const T* ps = saved.const_data_ptr<T>();
  T* pdx = dx.data_ptr<T>();
  const T s = static_cast<T>(slope);
  at::parallel_for(0, dy.numel(), kGrain, [&](int64_t b, int64_t e) { fn(pdy + b, ps + b, pdx + b, e - b, s); });
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
