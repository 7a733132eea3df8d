// at::ScalarType -> dlk::DType, for handing tensors to the torch-free CUDA launchers.
#pragma once

#include <ATen/ATen.h>

#include "common/dtype.h"

namespace dlk {

inline DType to_dtype(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return DType::f32;
    case at::kDouble:
      return DType::f64;
    case at::kHalf:
      return DType::f16;
    case at::kBFloat16:
      return DType::bf16;
    default:
      TORCH_CHECK_NOT_IMPLEMENTED(false, "dlkernels: no kernel for dtype ", s);
  }
}

}  // namespace dlk
