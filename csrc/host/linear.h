// Argument checks and operand views of the linear ops, shared by every device. Messages follow
// torch's (addmm / matmul wording), so a drop-in layer fails the way users expect.
#pragma once

#include <string>
#include <tuple>
#include <vector>

#include "host/tensor.h"

namespace dlk {

// torch's lower-case dtype names ("float", "double"), as its matmul messages use.
inline std::string torch_dtype_name(ScalarType s) {
  switch (s) {
    case ScalarType::Float:
      return "float";
    case ScalarType::Double:
      return "double";
    case ScalarType::Half:
      return "c10::Half";
    case ScalarType::BFloat16:
      return "c10::BFloat16";
    default:
      return dtype_name(s);
  }
}

// Rows of a tensor's leading dimensions (all but the last) as one: 1 for a 1-D tensor.
inline int64_t leading_rows(const Tensor& t) {
  int64_t r = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) r *= t.size(d);
  return r;
}

// The leading dimensions as one row dimension with a single stride, when their strides allow
// (contiguous, sliced or expanded rows do; a transposed batch does not): the kernels read such a
// tensor in place. Returns false otherwise.
inline bool row_stride(const Tensor& t, int64_t* stride) {
  int64_t expected = -1;
  *stride = t.dim() >= 2 ? t.stride(t.dim() - 2) : 0;
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (expected < 0) {
      *stride = t.stride(d);
    } else if (t.stride(d) != expected) {
      return false;
    }
    expected = t.stride(d) * t.size(d);
  }
  return true;
}

// A tensor's shape with its last dimension replaced.
inline std::vector<int64_t> with_last(const Tensor& t, int64_t last) {
  std::vector<int64_t> s(t.sizes().begin(), t.sizes().end());
  s.back() = last;
  return s;
}

inline void check_linear_tensors(const char* op, const Tensor& input, const Tensor& weight,
                                 const std::optional<Tensor>& bias, std::initializer_list<ScalarType> dtypes) {
  DLK_CHECK(input.dim() >= 1 && weight.dim() >= 1, "both arguments to linear need to be at least 1D, but they are ",
            input.dim(), "D and ", weight.dim(), "D");
  DLK_CHECK(weight.dim() == 2, op, ": expected a 2-D weight (out_features, in_features), but got weight of size ",
            weight.sizes());
  check_same_device(op, input, "input", weight, "weight");
  if (bias.has_value()) check_same_device(op, input, "input", *bias, "bias");
  check_dtype(input, op, dtypes);
  if (bias.has_value()) {
    DLK_CHECK(bias->scalar_type() == weight.scalar_type(), "self and mat2 must have the same dtype, but got ",
              dtype_name(bias->scalar_type()), " and ", dtype_name(weight.scalar_type()));
  }
  DLK_CHECK(input.scalar_type() == weight.scalar_type(),
            "expected m1 and m2 to have the same dtype, but got: ", torch_dtype_name(input.scalar_type()),
            " != ", torch_dtype_name(weight.scalar_type()));
  DLK_CHECK(input.size(input.dim() - 1) == weight.size(1), "mat1 and mat2 shapes cannot be multiplied (",
            leading_rows(input), "x", input.size(input.dim() - 1), " and ", weight.size(1), "x", weight.size(0), ")");
  if (bias.has_value()) {
    DLK_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), op, ": expected bias of size [", weight.size(0),
              "], but got ", bias->sizes());
  }
}

// grad_input(grad_output, weight): grad_output (..., out), weight (out, in).
inline void check_linear_grad_input(const char* op, const Tensor& grad_output, const Tensor& weight,
                                    std::initializer_list<ScalarType> dtypes) {
  check_same_device(op, grad_output, "grad_output", weight, "weight");
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.scalar_type() == weight.scalar_type(), op,
            ": expected grad_output and weight to have the same dtype, but got ", dtype_name(grad_output.scalar_type()),
            " and ", dtype_name(weight.scalar_type()));
  DLK_CHECK(weight.dim() == 2, op, ": expected a 2-D weight, but got weight of size ", weight.sizes());
  DLK_CHECK(grad_output.dim() >= 1 && grad_output.size(grad_output.dim() - 1) == weight.size(0), op,
            ": expected grad_output of size [..., ", weight.size(0), "], but got ", grad_output.sizes());
}

// grad_weight(grad_output, input): grad_output (..., out), input (..., in), same leading dims.
inline void check_linear_grad_weight(const char* op, const Tensor& grad_output, const Tensor& input,
                                     std::initializer_list<ScalarType> dtypes) {
  check_same_device(op, grad_output, "grad_output", input, "input");
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.scalar_type() == input.scalar_type(), op,
            ": expected grad_output and input to have the same dtype, but got ", dtype_name(grad_output.scalar_type()),
            " and ", dtype_name(input.scalar_type()));
  bool same = grad_output.dim() >= 1 && grad_output.dim() == input.dim();
  for (int64_t d = 0; same && d + 1 < input.dim(); ++d) same = grad_output.size(d) == input.size(d);
  DLK_CHECK(same, op, ": expected grad_output and input with the same leading dimensions, but got ",
            grad_output.sizes(), " and ", input.sizes());
}

inline void check_linear_grad_bias(const char* op, const Tensor& grad_output,
                                   std::initializer_list<ScalarType> dtypes) {
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.dim() >= 1, op, ": expected grad_output of at least 1 dimension, but got size ",
            grad_output.sizes());
}

// linear_backward on any device: the gradients output_mask asks for; the others are empty
// tensors (dlkernels/_ops/linear.py reads them as None).
template <class GradInput, class GradWeight, class GradBias>
std::tuple<Tensor, Tensor, Tensor> linear_backward_by_mask(const Tensor& grad_output, const Tensor& input,
                                                           const Tensor& weight, const std::vector<bool>& output_mask,
                                                           GradInput grad_input, GradWeight grad_weight,
                                                           GradBias grad_bias) {
  DLK_CHECK(output_mask.size() == 3, "linear_backward: expected output_mask of 3 values");
  bool same = grad_output.dim() == input.dim() && weight.dim() == 2 && input.dim() >= 1 &&
              grad_output.size(grad_output.dim() - 1) == weight.size(0);
  for (int64_t d = 0; same && d + 1 < input.dim(); ++d) same = grad_output.size(d) == input.size(d);
  DLK_CHECK(same, "linear_backward: expected grad_output of the input's leading dimensions and weight.size(0) ",
            "features, but got grad_output ", grad_output.sizes(), ", input ", input.sizes(), " and weight ",
            weight.sizes());
  const auto none = [&] { return new_empty(grad_output, {0}); };
  return {output_mask[0] ? grad_input(grad_output, weight) : none(),
          output_mask[1] ? grad_weight(grad_output, input) : none(), output_mask[2] ? grad_bias(grad_output) : none()};
}

}  // namespace dlk
