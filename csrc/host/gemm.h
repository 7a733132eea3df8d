// Argument checks of the internal _gemm op (csrc/schema/gemm.cpp), shared by every device.
#pragma once

#include <initializer_list>

#include "host/tensor.h"

namespace dlk {

// a @ b: two 2-D tensors of one device and one of the `allowed` dtypes, with a's columns b's rows.
inline void check_gemm_operands(const Tensor& a, const Tensor& b, std::initializer_list<ScalarType> allowed) {
  check_same_device("_gemm", a, "a", b, "b");
  check_dtype(a, "_gemm", allowed);
  DLK_CHECK(a.dim() == 2 && b.dim() == 2, "_gemm: expected 2-D tensors, got ", a.sizes(), " and ", b.sizes());
  DLK_CHECK(a.size(1) == b.size(0), "_gemm: shapes ", a.sizes(), " and ", b.sizes(), " cannot be multiplied");
  DLK_CHECK(a.scalar_type() == b.scalar_type(), "_gemm: dtypes differ: ", dtype_name(a.scalar_type()), " and ",
            dtype_name(b.scalar_type()));
}

}  // namespace dlk
