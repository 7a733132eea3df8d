// Argument checks shared by the CPU and CUDA registrations. Each failure raises the Python
// exception PyTorch would (TypeError / ValueError / NotImplementedError / RuntimeError) with the
// op's name, before any kernel runs and before any input is touched.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <initializer_list>

namespace dlk {

inline void check_dtype(const at::Tensor& t, const char* op, std::initializer_list<at::ScalarType> allowed) {
  for (auto s : allowed) {
    if (t.scalar_type() == s) return;
  }
  std::string names;
  for (auto s : allowed) names += std::string(names.empty() ? "" : ", ") + c10::toString(s);
  TORCH_CHECK_NOT_IMPLEMENTED(false, "\"", op, "\" not implemented for '", t.scalar_type(), "' on ", t.device().type(),
                              " (supported: ", names, ")");
}

// `b` must match `a` in dtype, device and shape (e.g. a gradient and the tensor it belongs to).
inline void check_like(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name,
                       const char* op) {
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": expected ", b_name, " to have dtype ", a.scalar_type(),
                   " like ", a_name, ", but got ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), op, ": expected ", b_name, " on ", a.device(), " like ", a_name, ", but got ",
              b.device());
  TORCH_CHECK(a.sizes() == b.sizes(), op, ": expected ", b_name, " of shape ", a.sizes(), " like ", a_name,
              ", but got ", b.sizes());
}

}  // namespace dlk
