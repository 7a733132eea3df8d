// Argument checks, geometry and output layout of the conv2d ops, shared by every device.
// Messages follow torch's own, so a drop-in layer fails the way users expect.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "common/conv2d_geometry.h"
#include "host/checks.h"

namespace dlk {

inline void check_conv_params(const char* op, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                              int64_t groups) {
  TORCH_CHECK(stride.size() == 2, op, ": expected stride to be a list of 2 values, but got stride=", stride);
  TORCH_CHECK(padding.size() == 2, op, ": expected padding to be a list of 2 values, but got padding=", padding);
  TORCH_CHECK(dilation.size() == 2, op, ": expected dilation to be a list of 2 values, but got dilation=", dilation);
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0, "non-positive stride is not supported");
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, "negative padding is not supported");
  TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0, "non-positive dilation is not supported");
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
}

// Checks a conv2d call given the input's and weight's shapes and returns its geometry.
inline Conv2dGeometry conv2d_geometry(const char* op, at::IntArrayRef input, at::IntArrayRef weight,
                                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                      int64_t groups) {
  check_conv_params(op, stride, padding, dilation, groups);
  TORCH_CHECK(input.size() == 4, op, ": expected a 4-D (batched) input, but got input of size: ", input);
  TORCH_CHECK(weight.size() == 4, op, ": expected a 4-D weight (out_channels, in_channels / groups, kH, kW), ",
              "but got weight of size ", weight);
  TORCH_CHECK(weight[2] > 0 && weight[3] > 0, op, ": expected a kernel of at least 1 x 1, but got weight of size ",
              weight);
  TORCH_CHECK(input[2] > 0 && input[3] > 0,
              "Only zero batch or zero channel inputs are supported, but got input shape: ", input);
  TORCH_CHECK(weight[0] > 0, "Given groups=", groups, ", expected weight to be at least 1 at dimension 0, but got ",
              "weight of size ", weight, " instead");
  TORCH_CHECK(weight[0] % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ", groups,
              " at dimension 0, but got weight of size ", weight, " instead");
  TORCH_CHECK(input[1] == weight[1] * groups, "Given groups=", groups, ", weight of size ", weight, ", expected input",
              input, " to have ", weight[1] * groups, " channels, but got ", input[1], " channels instead");
  Conv2dGeometry g{};
  g.N = input[0], g.C = input[1], g.H = input[2], g.W = input[3];
  g.K = weight[0], g.R = weight[2], g.S = weight[3];
  g.sh = stride[0], g.sw = stride[1], g.ph = padding[0], g.pw = padding[1], g.dh = dilation[0], g.dw = dilation[1];
  g.G = groups;
  // Overflow-checked (common/conv2d_geometry.h): huge arguments name themselves, never wrap.
  int64_t padded[2], extent[2];
  const GeometryError err = complete_geometry(g, padded, extent);
  TORCH_CHECK(err != GeometryError::padding_too_large, "Given padding=", padding, ", expected padding to be at most ",
              kMaxPadding, " and the padded input size (input + 2 * padding) to fit in int64");
  TORCH_CHECK(err != GeometryError::kernel_too_large || (extent[0] > 0 && extent[1] > 0), "Given dilation=", dilation,
              " and weight of size ", weight, ", the kernel extent dilation * (kernel size - 1) + 1 does not fit in ",
              "int64. Kernel size can't be greater than actual input size");
  TORCH_CHECK(err != GeometryError::kernel_too_large, "Calculated padded input size per channel: (", padded[0], " x ",
              padded[1], "). Kernel size: (", extent[0], " x ", extent[1],
              "). Kernel size can't be greater than actual input size");
  TORCH_CHECK(err != GeometryError::output_too_large, op, ": the output of size [", g.N, ", ", g.K, ", ", g.P, ", ",
              g.Q, "] has more than ", INT64_MAX, " elements");
  return g;
}

inline void check_conv_tensors(const char* op, const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, std::initializer_list<at::ScalarType> dtypes) {
  check_dtype(input, op, dtypes);
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), op, ": expected input and weight to have the same dtype, ",
              "but got input of dtype ", input.scalar_type(), " and weight of dtype ", weight.scalar_type());
  TORCH_CHECK(input.device() == weight.device(), op,
              ": expected input and weight on the same device, but got input on ", input.device(), " and weight on ",
              weight.device());
  if (bias.has_value()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK(b.dim() == 1 && b.size(0) == weight.size(0), "Given weight of size ", weight.sizes(),
                ", expected bias to be 1-dimensional with ", weight.size(0), " elements, but got bias of size ",
                b.sizes(), " instead");
    TORCH_CHECK(b.scalar_type() == input.scalar_type(), op, ": Input type (", input.scalar_type(), ") and bias type (",
                b.scalar_type(), ") should be the same");
    TORCH_CHECK(b.device() == input.device(), op, ": expected bias on ", input.device(), " like the input, but got ",
                b.device());
  }
}

// Outputs follow torch's layout rule for convolutions: channels_last when the data tensor (input,
// or grad_output for the data gradient) or the weight has channels_last stride order (as
// at::suggest_memory_format reads it, so views of channels_last tensors count too).
inline at::MemoryFormat conv_output_format(const at::Tensor& data, const at::Tensor& weight) {
  const auto cl = [](const at::Tensor& t) {
    return t.dim() == 4 && t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  };
  return cl(data) || cl(weight) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// Kernels compute NCHW; returns `out` itself, or a channels_last copy when `format` asks for it.
inline at::Tensor to_format(const at::Tensor& out, at::MemoryFormat format) {
  return format == at::MemoryFormat::Contiguous ? out : out.contiguous(format);
}

}  // namespace dlk
