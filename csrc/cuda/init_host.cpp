// The init fills on CUDA, host side: device guard, current stream, launch, launch check. Kernels
// are in init.cu (torch-free); ops and checks in host/init.h.
#include "cuda/host.h"
#include "cuda/init.h"
#include "host/init.h"

namespace dlk::cuda {
namespace {

struct CudaBackend {
  static constexpr std::initializer_list<ScalarType> dtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                               ScalarType::BFloat16};
  static void fill(const Tensor& x, double value) {
    const DeviceGuard guard(x);
    check_launch("init_fill_",
                 init_fill(to_dtype(x.scalar_type()), x.mutable_data_ptr(), x.numel(), value, current_stream(x)));
  }
  static void random(const Tensor& x, const InitParams& p) {
    const DeviceGuard guard(x);
    check_launch("init", init_random(to_dtype(x.scalar_type()), x.mutable_data_ptr(), x.numel(), p, current_stream(x)));
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) { InitOps<CudaBackend>::register_all(m); }

}  // namespace dlk::cuda
