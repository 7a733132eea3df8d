// Activations on CUDA, host side: device guard, current stream, launch, launch check.
// Kernels are in activation.cu; ops and checks in host/activation.h.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/activation.h"
#include "host/activation.h"
#include "host/dtype.h"

namespace dlk::cuda {
namespace {

struct CudaBackend {
  static void check_dtype(const at::Tensor& t, const char* op) {
    dlk::check_dtype(t, op, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  }
  static void forward(Activation act, const at::Tensor& x, const at::Tensor& y, double slope) {
    const c10::cuda::CUDAGuard guard(x.device());
    C10_CUDA_CHECK(activation_forward(act, to_dtype(x.scalar_type()), x.const_data_ptr(), y.data_ptr(), x.numel(),
                                      slope, c10::cuda::getCurrentCUDAStream()));
  }
  static void backward(Activation act, const at::Tensor& dy, const at::Tensor& saved, const at::Tensor& dx,
                       double slope) {
    const c10::cuda::CUDAGuard guard(dy.device());
    C10_CUDA_CHECK(activation_backward(act, to_dtype(dy.scalar_type()), dy.const_data_ptr(), saved.const_data_ptr(),
                                       dx.data_ptr(), dy.numel(), slope, c10::cuda::getCurrentCUDAStream()));
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(dlkernels, CUDA, m) { register_activation_ops<CudaBackend>(m); }

}  // namespace dlk::cuda
