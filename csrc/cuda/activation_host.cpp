// Activations on CUDA, host side: device guard, current stream, launch, launch check. Kernels are
// in activation.cu (torch-free); ops and checks in host/activation.h.
#include "cuda/activation.h"
#include "cuda/host.h"
#include "host/activation.h"

namespace dlk::cuda {
namespace {

struct CudaBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                               ScalarType::BFloat16};
  static void forward(Activation act, const Tensor& x, const Tensor& y, double slope) {
    const DeviceGuard guard(x);
    check_launch("activation", activation_forward(act, to_dtype(x.scalar_type()), x.const_data_ptr(),
                                                  y.mutable_data_ptr(), x.numel(), slope, current_stream(x)));
  }
  static void backward(Activation act, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope) {
    const DeviceGuard guard(dy);
    check_launch("activation backward",
                 activation_backward(act, to_dtype(dy.scalar_type()), dy.const_data_ptr(), saved.const_data_ptr(),
                                     dx.mutable_data_ptr(), dy.numel(), slope, current_stream(dy)));
  }
  // dy is one value broadcast to every element (host/activation.h decides).
  static void backward_one_grad(Activation act, const Tensor& dy, const Tensor& saved, const Tensor& dx, double slope) {
    const DeviceGuard guard(dy);
    check_launch("activation backward",
                 activation_backward(act, to_dtype(dy.scalar_type()), dy.const_data_ptr(), saved.const_data_ptr(),
                                     dx.mutable_data_ptr(), dx.numel(), slope, current_stream(dy), true));
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) { ActivationOps<CudaBackend>::register_all(m); }

}  // namespace dlk::cuda
