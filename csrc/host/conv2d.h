// Argument checks, geometry and output layout of the conv2d ops, shared by every device.
// Messages follow torch's own, so a drop-in layer fails the way users expect.
#pragma once

#include <tuple>

#include "common/conv2d_geometry.h"
#include "host/tensor.h"

namespace dlk {

inline void check_conv_params(const char* op, IntList stride, IntList padding, IntList dilation, int64_t groups) {
  DLK_CHECK(stride.size() == 2, op, ": expected stride to be a list of 2 values, but got stride=", stride);
  DLK_CHECK(padding.size() == 2, op, ": expected padding to be a list of 2 values, but got padding=", padding);
  DLK_CHECK(dilation.size() == 2, op, ": expected dilation to be a list of 2 values, but got dilation=", dilation);
  DLK_CHECK(stride[0] > 0 && stride[1] > 0, "non-positive stride is not supported");
  DLK_CHECK(padding[0] >= 0 && padding[1] >= 0, "negative padding is not supported");
  DLK_CHECK(dilation[0] > 0 && dilation[1] > 0, "non-positive dilation is not supported");
  DLK_CHECK(groups > 0, "non-positive groups is not supported");
}

// Checks a conv2d call given the input's and weight's shapes and returns its geometry.
inline Conv2dGeometry conv2d_geometry(const char* op, IntList input, IntList weight, IntList stride, IntList padding,
                                      IntList dilation, int64_t groups) {
  check_conv_params(op, stride, padding, dilation, groups);
  DLK_CHECK(input.size() == 4, op, ": expected a 4-D (batched) input, but got input of size: ", input);
  DLK_CHECK(weight.size() == 4, op, ": expected a 4-D weight (out_channels, in_channels / groups, kH, kW), ",
            "but got weight of size ", weight);
  DLK_CHECK(weight[2] > 0 && weight[3] > 0, op, ": expected a kernel of at least 1 x 1, but got weight of size ",
            weight);
  DLK_CHECK(input[2] > 0 && input[3] > 0,
            "Only zero batch or zero channel inputs are supported, but got input shape: ", input);
  DLK_CHECK(weight[0] > 0, "Given groups=", groups, ", expected weight to be at least 1 at dimension 0, but got ",
            "weight of size ", weight, " instead");
  DLK_CHECK(weight[0] % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ", groups,
            " at dimension 0, but got weight of size ", weight, " instead");
  DLK_CHECK(input[1] == weight[1] * groups, "Given groups=", groups, ", weight of size ", weight, ", expected input",
            input, " to have ", weight[1] * groups, " channels, but got ", input[1], " channels instead");
  Conv2dGeometry g{};
  g.N = input[0], g.C = input[1], g.H = input[2], g.W = input[3];
  g.K = weight[0], g.R = weight[2], g.S = weight[3];
  g.sh = stride[0], g.sw = stride[1], g.ph = padding[0], g.pw = padding[1], g.dh = dilation[0], g.dw = dilation[1];
  g.G = groups;
  // Overflow-checked (common/conv2d_geometry.h): huge arguments name themselves, never wrap.
  int64_t padded[2], extent[2];
  const GeometryError err = complete_geometry(g, padded, extent);
  DLK_CHECK(err != GeometryError::padding_too_large, "Given padding=", padding, ", expected padding to be at most ",
            kMaxPadding, " and the padded input size (input + 2 * padding) to fit in int64");
  DLK_CHECK(err != GeometryError::kernel_too_large || (extent[0] > 0 && extent[1] > 0), "Given dilation=", dilation,
            " and weight of size ", weight, ", the kernel extent dilation * (kernel size - 1) + 1 does not fit in ",
            "int64. Kernel size can't be greater than actual input size");
  DLK_CHECK(err != GeometryError::kernel_too_large, "Calculated padded input size per channel: (", padded[0], " x ",
            padded[1], "). Kernel size: (", extent[0], " x ", extent[1],
            "). Kernel size can't be greater than actual input size");
  DLK_CHECK(err != GeometryError::output_too_large, op, ": the output of size [", g.N, ", ", g.K, ", ", g.P, ", ", g.Q,
            "] has more than ", INT64_MAX, " elements");
  return g;
}

inline void check_conv_tensors(const char* op, const Tensor& input, const Tensor& weight,
                               const std::optional<Tensor>& bias, std::initializer_list<ScalarType> dtypes) {
  check_same_device(op, input, "input", weight, "weight");
  check_dtype(input, op, dtypes);
  DLK_CHECK(input.scalar_type() == weight.scalar_type(), op, ": expected input and weight to have the same dtype, ",
            "but got input of dtype ", dtype_name(input.scalar_type()), " and weight of dtype ",
            dtype_name(weight.scalar_type()));
  if (bias.has_value()) {
    const Tensor& b = *bias;
    check_same_device(op, input, "input", b, "bias");
    DLK_CHECK(b.dim() == 1 && b.size(0) == weight.size(0), "Given weight of size ", weight.sizes(),
              ", expected bias to be 1-dimensional with ", weight.size(0), " elements, but got bias of size ",
              b.sizes(), " instead");
    DLK_CHECK(b.scalar_type() == input.scalar_type(), op, ": Input type (", dtype_name(input.scalar_type()),
              ") and bias type (", dtype_name(b.scalar_type()), ") should be the same");
  }
}

inline void check_grad_weight_tensors(const char* op, const Tensor& grad_output, const Tensor& input,
                                      std::initializer_list<ScalarType> dtypes) {
  check_same_device(op, grad_output, "grad_output", input, "input");
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.scalar_type() == input.scalar_type(), op,
            ": expected grad_output and input to have the same dtype, but got ", dtype_name(grad_output.scalar_type()),
            " and ", dtype_name(input.scalar_type()));
}

inline void check_grad_bias_output(const char* op, const Tensor& grad_output,
                                   std::initializer_list<ScalarType> dtypes) {
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.dim() == 4, op, ": expected a 4-D grad_output, but got size ", grad_output.sizes());
}

// Checks a gradient op's grad_output against the geometry its other arguments imply.
inline void check_grad_output(const char* op, const Tensor& grad_output, const Conv2dGeometry& g) {
  DLK_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.N && grad_output.size(1) == g.K &&
                grad_output.size(2) == g.P && grad_output.size(3) == g.Q,
            op, ": expected grad_output of size [", g.N, ", ", g.K, ", ", g.P, ", ", g.Q, "], but got ",
            grad_output.sizes());
}

// Outputs follow torch's layout rule for convolutions: channels_last when the data tensor (input,
// or grad_output for the data gradient) or the weight has channels_last stride order.
inline bool conv_output_channels_last(const Tensor& data, const Tensor& weight) {
  return is_channels_last(data) || is_channels_last(weight);
}

// conv2d_backward on any device: the gradients output_mask asks for, from that device's gradient
// ops; the others are empty tensors (dlkernels/_ops/conv2d.py reads them as None).
template <class GradInput, class GradWeight, class GradBias>
std::tuple<Tensor, Tensor, Tensor> conv2d_backward_by_mask(const Tensor& grad_output, const Tensor& input,
                                                           const Tensor& weight, IntList stride, IntList padding,
                                                           IntList dilation, int64_t groups,
                                                           const std::vector<bool>& output_mask, GradInput grad_input,
                                                           GradWeight grad_weight, GradBias grad_bias) {
  DLK_CHECK(output_mask.size() == 3, "conv2d_backward: expected output_mask of 3 values");
  const auto none = [&] { return new_empty(grad_output, {0}); };
  return {output_mask[0] ? grad_input(grad_output, weight, input.sizes(), stride, padding, dilation, groups) : none(),
          output_mask[1] ? grad_weight(grad_output, input, weight.sizes(), stride, padding, dilation, groups) : none(),
          output_mask[2] ? grad_bias(grad_output) : none()};
}

}  // namespace dlk
