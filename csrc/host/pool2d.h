// Argument checks, geometry and output layout of the pooling ops, shared by every device.
// Messages follow torch's own; dlkernels.functional raises them first, with torch's types.
#pragma once

#include "common/pool2d.h"
#include "host/tensor.h"

namespace dlk {

inline void check_pair(const char* op, const char* name, IntList v) {
  DLK_CHECK(v.size() == 2, op, ": expected ", name, " to be a list of 2 values, but got ", name, "=", v);
}

inline void check_pool_input(const char* op, IntList in) {
  DLK_CHECK(in.size() == 4, op, ": expected a 4-D (batched) input, but got input of size: ", in);
  DLK_CHECK(in[0] >= 0 && in[1] >= 0 && in[2] > 0 && in[3] > 0 && in[1] > 0,
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but got:", in);
}

// Checks a max_pool2d / avg_pool2d call (avg: dilation 1) and returns its geometry. Padding is
// at most half the effective kernel, (k - 1) d + 1, as torch requires.
inline Pool2dGeometry pool2d_geometry(const char* op, IntList in, IntList kernel, IntList stride, IntList padding,
                                      IntList dilation, bool ceil_mode) {
  check_pair(op, "kernel_size", kernel);
  check_pair(op, "stride", stride);
  check_pair(op, "padding", padding);
  check_pair(op, "dilation", dilation);
  check_pool_input(op, in);
  DLK_CHECK(kernel[0] > 0 && kernel[1] > 0, "kernel size should be greater than zero, but got kH: ", kernel[0],
            " kW: ", kernel[1]);
  DLK_CHECK(stride[0] > 0 && stride[1] > 0, "stride should be greater than zero, but got dH: ", stride[0],
            " dW: ", stride[1]);
  DLK_CHECK(dilation[0] > 0 && dilation[1] > 0,
            "dilation should be greater than zero, but got dilationH: ", dilation[0], " dilationW: ", dilation[1]);
  DLK_CHECK(padding[0] >= 0 && padding[1] >= 0,
            "pad must be non-negative, but got pad: ", padding[0] < 0 ? padding[0] : padding[1]);
  for (int i = 0; i < 2; ++i) {
    const int64_t span = window_mul(dilation[i], kernel[i] - 1);
    DLK_CHECK(span != kWindowOverflow && padding[i] <= (span + 1) / 2,
              "pad should be at most half of effective kernel size, but got pad=", padding[i],
              ", kernel_size=", kernel[i], " and dilation=", dilation[i]);
  }
  Pool2dGeometry g{};
  g.N = in[0], g.C = in[1], g.H = in[2], g.W = in[3];
  g.OH = window_out_size(g.H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode);
  g.OW = window_out_size(g.W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode);
  DLK_CHECK(g.OH != kWindowOverflow && g.OW != kWindowOverflow, op, ": the output size overflows int64");
  DLK_CHECK(g.OH > 0 && g.OW > 0, "Given input size: (", g.C, "x", g.H, "x", g.W, "). Calculated output size: (", g.C,
            "x", g.OH, "x", g.OW, "). Output size is too small");
  g.h = {g.H, g.OH, kernel[0], stride[0], padding[0], dilation[0]};
  g.w = {g.W, g.OW, kernel[1], stride[1], padding[1], dilation[1]};
  return g;
}

inline Pool2dGeometry avg_pool2d_geometry(const char* op, IntList in, IntList kernel, IntList stride, IntList padding,
                                          bool ceil_mode, bool count_include_pad,
                                          std::optional<int64_t> divisor_override) {
  const int64_t one[2] = {1, 1};
  Pool2dGeometry g = pool2d_geometry(op, in, kernel, stride, padding, IntList(one, 2), ceil_mode);
  DLK_CHECK(!divisor_override.has_value() || *divisor_override != 0, "divisor must be not zero");
  g.count_include_pad = count_include_pad;
  g.divisor = divisor_override.value_or(0);
  return g;
}

inline Pool2dGeometry adaptive_pool2d_geometry(const char* op, IntList in, IntList output_size) {
  check_pair(op, "output_size", output_size);
  DLK_CHECK(in.size() == 4, op, ": expected a 4-D (batched) input, but got input of size: ", in);
  for (int d = 1; d < 4; ++d) {
    DLK_CHECK(in[d] > 0, "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, ",
              "but input has sizes ", in, " with dimension ", d, " being empty");
  }
  DLK_CHECK(output_size[0] >= 0 && output_size[1] >= 0,
            "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {",
            output_size[0], ", ", output_size[1], "}");
  // Window bounds multiply an input position by the output length.
  DLK_CHECK(window_mul(in[2] + 1, output_size[0] + 1) != kWindowOverflow &&
                window_mul(in[3] + 1, output_size[1] + 1) != kWindowOverflow,
            op, ": output_size ", output_size, " is too large for input of size ", in);
  Pool2dGeometry g{};
  g.N = in[0], g.C = in[1], g.H = in[2], g.W = in[3], g.OH = output_size[0], g.OW = output_size[1];
  return g;
}

// grad_output must have the shape the geometry gives.
inline void check_pool_grad_output(const char* op, const Tensor& grad_output, const Pool2dGeometry& g,
                                   const char* name = "grad_output") {
  DLK_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.N && grad_output.size(1) == g.C &&
                grad_output.size(2) == g.OH && grad_output.size(3) == g.OW,
            op, ": expected ", name, " of size [", g.N, ", ", g.C, ", ", g.OH, ", ", g.OW, "], but got ",
            grad_output.sizes());
}

inline void check_indices(const char* op, const Tensor& grad_output, const Tensor& indices) {
  check_same_device(op, grad_output, "grad_output", indices, "indices");
  DLK_CHECK(indices.scalar_type() == ScalarType::Long, op, ": expected indices of dtype Long, but got ",
            dtype_name(indices.scalar_type()));
  DLK_CHECK(indices.sizes().equals(grad_output.sizes()), op, ": expected indices of shape ", grad_output.sizes(),
            ", but got ", indices.sizes());
}

// The data tensor's layout picks the kernels' (NCHW or channels_last, both dense): `t` itself
// when it already is one of them, else a copy in the layout it suggests.
inline Tensor as_pool_layout(const Tensor& t, bool channels_last) {
  if (channels_last) {
    return is_channels_last(t) && is_dense(t) ? t : torch::stable::contiguous(t, MemoryFormat::ChannelsLast);
  }
  return as_contiguous(t);
}

// A new N x C x h x w tensor like `like`, NCHW or channels_last.
inline Tensor new_pool_output(const Tensor& like, int64_t n, int64_t c, int64_t h, int64_t w, bool channels_last,
                              std::optional<ScalarType> dtype = std::nullopt) {
  const int64_t sizes[4] = {n, c, h, w};
  if (!channels_last) return dlk::new_empty(like, IntList(sizes, 4), dtype);
  if (n * c * h * w == 0) {  // torch's own strides for the degenerate case
    return torch::stable::empty(IntList(sizes, 4), dtype.value_or(like.scalar_type()), std::nullopt, like.device(),
                                std::nullopt, MemoryFormat::ChannelsLast);
  }
  const int64_t strides[4] = {h * w * c, 1, w * c, c};
  return empty_strided(IntList(sizes, 4), IntList(strides, 4), dtype.value_or(like.scalar_type()), like);
}

// ---------------------------------------------------------------------------------------------
// What every device's pooling op does before its kernels run: checks, geometry, the data in the
// kernels' layout and the output in the layout torch returns. The devices differ only after it.
// ---------------------------------------------------------------------------------------------

struct PoolCall {
  Pool2dGeometry g;
  bool cl;         // channels_last kernels
  Tensor in;       // the input (forward) or grad_output (backward), in the kernels' layout
  Tensor indices;  // max pooling: forward, allocated (or empty); backward, in the kernels' layout
  Tensor out;
};

inline PoolCall pool_forward_call(const Tensor& self, const Pool2dGeometry& g) {
  const bool cl = is_channels_last(self);
  return {g, cl, as_pool_layout(self, cl), Tensor(), new_pool_output(self, g.N, g.C, g.OH, g.OW, cl)};
}

inline PoolCall pool_backward_call(const char* op, const Tensor& grad_output, const Pool2dGeometry& g) {
  check_pool_grad_output(op, grad_output, g);
  const bool cl = is_channels_last(grad_output);
  return {g, cl, as_pool_layout(grad_output, cl), Tensor(), new_pool_output(grad_output, g.N, g.C, g.H, g.W, cl)};
}

inline PoolCall max_pool2d_call(const char* op, const Tensor& self, IntList kernel, IntList stride, IntList padding,
                                IntList dilation, bool ceil_mode, bool want_indices,
                                std::initializer_list<ScalarType> dtypes) {
  check_dtype(self, op, dtypes);
  PoolCall c = pool_forward_call(self, pool2d_geometry(op, self.sizes(), kernel, stride, padding, dilation, ceil_mode));
  c.indices =
      want_indices ? new_pool_output(self, c.g.N, c.g.C, c.g.OH, c.g.OW, c.cl, ScalarType::Long) : new_empty(self, {0});
  return c;
}

inline PoolCall max_pool2d_backward_call(const char* op, const Tensor& grad_output, const Tensor& indices,
                                         IntList input_size, IntList kernel, IntList stride, IntList padding,
                                         IntList dilation, bool ceil_mode, std::initializer_list<ScalarType> dtypes) {
  check_dtype(grad_output, op, dtypes);
  check_indices(op, grad_output, indices);
  PoolCall c = pool_backward_call(op, grad_output,
                                  pool2d_geometry(op, input_size, kernel, stride, padding, dilation, ceil_mode));
  c.indices = as_pool_layout(indices, c.cl);
  return c;
}

inline PoolCall avg_pool2d_call(const char* op, const Tensor& self, IntList kernel, IntList stride, IntList padding,
                                bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override,
                                std::initializer_list<ScalarType> dtypes) {
  check_dtype(self, op, dtypes);
  return pool_forward_call(self, avg_pool2d_geometry(op, self.sizes(), kernel, stride, padding, ceil_mode,
                                                     count_include_pad, divisor_override));
}

inline PoolCall avg_pool2d_backward_call(const char* op, const Tensor& grad_output, IntList input_size, IntList kernel,
                                         IntList stride, IntList padding, bool ceil_mode, bool count_include_pad,
                                         std::optional<int64_t> divisor_override,
                                         std::initializer_list<ScalarType> dtypes) {
  check_dtype(grad_output, op, dtypes);
  return pool_backward_call(
      op, grad_output,
      avg_pool2d_geometry(op, input_size, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override));
}

inline PoolCall adaptive_avg_pool2d_call(const char* op, const Tensor& self, IntList output_size,
                                         std::initializer_list<ScalarType> dtypes) {
  check_dtype(self, op, dtypes);
  return pool_forward_call(self, adaptive_pool2d_geometry(op, self.sizes(), output_size));
}

inline PoolCall adaptive_avg_pool2d_backward_call(const char* op, const Tensor& grad_output, IntList input_size,
                                                  std::initializer_list<ScalarType> dtypes) {
  check_dtype(grad_output, op, dtypes);
  DLK_CHECK(grad_output.dim() == 4, op, ": expected a 4-D grad_output, but got size ", grad_output.sizes());
  return pool_backward_call(op, grad_output,
                            adaptive_pool2d_geometry(op, input_size, IntList(grad_output.sizes().data() + 2, 2)));
}

}  // namespace dlk
