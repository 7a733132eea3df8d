// Losses on CUDA, host side: device guard, current stream, workspace, launch check, and the
// read-back of cross entropy's bad-target flag. Kernels are in loss.cu (torch-free); ops and
// checks in host/loss.h.
//
// The flag costs one 8-byte device-to-host copy and a stream synchronisation per forward with
// class targets: the price of raising IndexError like the CPU instead of a device-side assert,
// which would leave the CUDA context unusable.
#include <stdexcept>

#include "cuda/host.h"
#include "cuda/loss.h"
#include "host/loss.h"

namespace dlk::cuda {
namespace {

ScalarType stat_of(ScalarType s) { return s == ScalarType::Double ? ScalarType::Double : ScalarType::Float; }

CrossEntropyArgs args_of(const CrossEntropyCall& c) {
  CrossEntropyArgs a{};
  a.dtype = to_dtype(c.logits->scalar_type());
  a.logits = c.logits->const_data_ptr();
  a.rows = ce_rows_of(*c.logits);
  a.classes = c.logits->size(1);
  a.positions = ce_positions(*c.logits);
  a.target = c.soft ? nullptr : c.target->const_data_ptr<int64_t>();
  a.soft = c.soft ? c.target->const_data_ptr() : nullptr;
  a.weight = c.weight ? c.weight->const_data_ptr() : nullptr;
  a.ignore_index = c.ignore_index;
  a.smoothing = c.smoothing;
  a.reduction = c.reduction;
  return a;
}

// Raises the CPU's IndexError for the first row the forward flagged, if any.
void check_flag(const Tensor& flag, const int64_t* target, cudaStream_t stream) {
  unsigned long long row = 0;
  check_launch("cross_entropy_forward",
               cudaMemcpyAsync(&row, flag.const_data_ptr(), sizeof(row), cudaMemcpyDeviceToHost, stream));
  check_launch("cross_entropy_forward", cudaStreamSynchronize(stream));
  if (row == ~0ull) return;
  int64_t value = 0;
  check_launch("cross_entropy_forward",
               cudaMemcpyAsync(&value, target + row, sizeof(value), cudaMemcpyDeviceToHost, stream));
  check_launch("cross_entropy_forward", cudaStreamSynchronize(stream));
  throw std::out_of_range(cat("Target ", value, " is out of bounds."));
}

struct CudaBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                               ScalarType::BFloat16};
  static ScalarType stat_dtype(ScalarType s) { return stat_of(s); }

  static void mse_sum(const Tensor& x, const Tensor& t, const Tensor& out, Reduction red) {
    const DeviceGuard guard(x);
    const int64_t n = x.numel();
    Tensor part = new_empty(x, {mse_sum_workspace(n)}, stat_of(x.scalar_type()));
    check_launch("mse_loss",
                 mse_loss_sum(to_dtype(x.scalar_type()), x.const_data_ptr(), t.const_data_ptr(), out.mutable_data_ptr(),
                              n, red == Reduction::mean, part.mutable_data_ptr(), current_stream(x)));
  }
  static void mse_none(const Tensor& x, const Tensor& t, const Tensor& y) {
    const DeviceGuard guard(x);
    check_launch("mse_loss", mse_loss_none(to_dtype(x.scalar_type()), x.const_data_ptr(), t.const_data_ptr(),
                                           y.mutable_data_ptr(), x.numel(), current_stream(x)));
  }
  static void mse_grad(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& dx, Reduction red) {
    const DeviceGuard guard(x);
    check_launch("mse_loss_backward",
                 mse_loss_grad(to_dtype(x.scalar_type()), g.const_data_ptr(), x.const_data_ptr(), t.const_data_ptr(),
                               dx.mutable_data_ptr(), x.numel(), red, current_stream(x)));
  }

  static void ce_forward(const CrossEntropyCall& c) {
    const Tensor& x = *c.logits;
    const DeviceGuard guard(x);
    const cudaStream_t stream = current_stream(x);
    CrossEntropyArgs a = args_of(c);
    Tensor work = new_empty(x, {cross_entropy_workspace(a.rows)}, stat_of(x.scalar_type()));
    Tensor flag = new_empty(x, {1}, ScalarType::Long);
    const bool check = !c.soft && a.rows > 0;
    if (check) check_launch("cross_entropy_forward", cudaMemsetAsync(flag.mutable_data_ptr(), 0xff, 8, stream));
    a.loss = c.loss->mutable_data_ptr();
    a.lse = c.lse->mutable_data_ptr();
    a.total_weight = c.total_weight->mutable_data_ptr();
    a.workspace = work.mutable_data_ptr();
    a.flag = static_cast<unsigned long long*>(flag.mutable_data_ptr());
    check_launch("cross_entropy_forward", cross_entropy_forward(a, stream));
    if (check) check_flag(flag, a.target, stream);
  }
  static void ce_backward(const CrossEntropyCall& c) {
    const Tensor& x = *c.logits;
    const DeviceGuard guard(x);
    CrossEntropyArgs a = args_of(c);
    a.grad_output = c.grad_output->const_data_ptr();
    a.lse_in = c.lse->const_data_ptr();
    a.total_in = c.total_weight->const_data_ptr();
    a.grad_input = c.grad_input->mutable_data_ptr();
    check_launch("cross_entropy_backward", cross_entropy_backward(a, current_stream(x)));
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) { LossOps<CudaBackend>::register_all(m); }

}  // namespace dlk::cuda
