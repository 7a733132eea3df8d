// What every CUDA registration needs from torch, on the stable ABI: the device guard, the
// current stream, dtype translation for the torch-free launchers, and the launch check.
//
// Under the SIMT emulator (-DDLK_CUDA_SIM, dlkernels._cuda_sim) the same host code runs on CPU
// tensors: there is no device to select and the emulator ignores streams, so the guard does
// nothing and the stream is null. DLK_CUDA_KEY is the dispatch key the kernels register on:
// CUDA, or CPU for the emulated library (in its own namespace, schema/namespace.h).
#pragma once

#include <cuda_runtime.h>

#include "common/dtype.h"
#include "host/tensor.h"
#include "schema/namespace.h"

#ifndef DLK_CUDA_KEY
#define DLK_CUDA_KEY CUDA
#endif

#if defined(DLK_CUDA_SIM)

namespace dlk::cuda {

class DeviceGuard {
 public:
  explicit DeviceGuard(const Tensor&) {}
};

inline cudaStream_t current_stream(const Tensor&) { return nullptr; }

}  // namespace dlk::cuda

#else

#include <dlfcn.h>
#include <torch/csrc/stable/accelerator.h>

namespace dlk::cuda {

// Makes the tensor's device current for the launch.
class DeviceGuard {
 public:
  explicit DeviceGuard(const Tensor& t) : guard_(t.get_device_index()) {}

 private:
  torch::stable::accelerator::DeviceGuard guard_;
};

// torch's current stream of the tensor's device. The C shim's aoti_torch_get_current_cuda_stream
// lives in libtorch_cuda, which torch loads privately: it is looked up there once, so the library
// links and loads without naming it (and a CPU build of torch never loads this library).
inline cudaStream_t current_stream(const Tensor& t) {
  using GetStream = int32_t (*)(int32_t device_index, void** stream);
  static const GetStream get = [] {
    void* lib = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
    return lib ? reinterpret_cast<GetStream>(dlsym(lib, "aoti_torch_get_current_cuda_stream")) : nullptr;
  }();
  DLK_CHECK(get != nullptr, "dlkernels: libtorch_cuda is not loaded; the CUDA kernels need a CUDA build of torch");
  void* stream = nullptr;
  DLK_CHECK(get(t.get_device_index(), &stream) == 0, "dlkernels: could not get the current CUDA stream");
  return static_cast<cudaStream_t>(stream);
}

}  // namespace dlk::cuda

#endif  // DLK_CUDA_SIM

namespace dlk::cuda {

inline DType to_dtype(ScalarType s) {
  switch (s) {
    case ScalarType::Float:
      return DType::f32;
    case ScalarType::Double:
      return DType::f64;
    case ScalarType::Half:
      return DType::f16;
    case ScalarType::BFloat16:
      return DType::bf16;
    default:
      throw std::runtime_error(cat("dlkernels: no CUDA kernel for dtype ", dtype_name(s)));
  }
}

inline void check_launch(const char* op, cudaError_t err) {
  DLK_CHECK(err == cudaSuccess, op, ": CUDA error: ", cudaGetErrorString(err));
}

}  // namespace dlk::cuda
