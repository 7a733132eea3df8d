// conv2d on CUDA, host side: the checks, geometry and layout rules of host/conv2d.h (the CPU's),
// device guard, current stream, launch, launch check. Kernels are in conv2d.cu (torch-free) and
// read dense NCHW tensors: a channels_last or strided argument is copied to that layout first, and
// the result takes torch's layout (channels_last when the data tensor or the weight is).
#include <tuple>
#include <vector>

#include "cuda/conv2d.h"
#include "cuda/host.h"
#include "host/conv2d.h"

namespace dlk::cuda {
namespace {

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                       ScalarType::BFloat16};

Tensor conv2d_cuda(Tensor input, Tensor weight, std::optional<Tensor> bias, IntList stride, IntList padding,
                   IntList dilation, int64_t groups) {
  const char* op = "conv2d";
  check_conv_tensors(op, input, weight, bias, kDtypes);
  const Conv2dGeometry g = conv2d_geometry(op, input.sizes(), weight.sizes(), stride, padding, dilation, groups);
  const bool cl = conv_output_channels_last(input, weight);
  const DeviceGuard guard(input);
  Tensor y = new_empty(input, {g.N, g.K, g.P, g.Q});
  if (y.numel() == 0) return to_channels_last_if(y, cl);
  const Tensor x = as_contiguous(input), w = as_contiguous(weight);
  const std::optional<Tensor> b = bias.has_value() ? std::optional<Tensor>(as_contiguous(*bias)) : std::nullopt;
  check_launch(op, conv2d_forward(to_dtype(input.scalar_type()), x.const_data_ptr(), w.const_data_ptr(),
                                  b.has_value() ? b->const_data_ptr() : nullptr, y.mutable_data_ptr(), g,
                                  current_stream(input)));
  return to_channels_last_if(y, cl);
}

Tensor conv2d_grad_input_cuda(Tensor grad_output, Tensor weight, IntList input_size, IntList stride, IntList padding,
                              IntList dilation, int64_t groups) {
  const char* op = "conv2d_grad_input";
  check_conv_tensors(op, grad_output, weight, std::nullopt, kDtypes);
  const Conv2dGeometry g = conv2d_geometry(op, input_size, weight.sizes(), stride, padding, dilation, groups);
  check_grad_output(op, grad_output, g);
  const bool cl = conv_output_channels_last(grad_output, weight);
  const DeviceGuard guard(grad_output);
  Tensor dx = new_empty(grad_output, {g.N, g.C, g.H, g.W});
  if (dx.numel() == 0) return to_channels_last_if(dx, cl);
  const Tensor dy = as_contiguous(grad_output), w = as_contiguous(weight);
  check_launch(op, conv2d_grad_input(to_dtype(dy.scalar_type()), dy.const_data_ptr(), w.const_data_ptr(),
                                     dx.mutable_data_ptr(), g, current_stream(grad_output)));
  return to_channels_last_if(dx, cl);
}

Tensor conv2d_grad_weight_cuda(Tensor grad_output, Tensor input, IntList weight_size, IntList stride, IntList padding,
                               IntList dilation, int64_t groups) {
  const char* op = "conv2d_grad_weight";
  check_grad_weight_tensors(op, grad_output, input, kDtypes);
  const Conv2dGeometry g = conv2d_geometry(op, input.sizes(), weight_size, stride, padding, dilation, groups);
  check_grad_output(op, grad_output, g);
  const DeviceGuard guard(input);
  Tensor dw = new_empty(input, {g.K, g.Cg(), g.R, g.S});
  if (dw.numel() == 0) return dw;
  const Tensor dy = as_contiguous(grad_output), x = as_contiguous(input);
  check_launch(op, conv2d_grad_weight(to_dtype(dy.scalar_type()), dy.const_data_ptr(), x.const_data_ptr(),
                                      dw.mutable_data_ptr(), g, current_stream(input)));
  return dw;
}

Tensor conv2d_grad_bias_cuda(Tensor grad_output) {
  const char* op = "conv2d_grad_bias";
  check_grad_bias_output(op, grad_output, kDtypes);
  const int64_t N = grad_output.size(0), K = grad_output.size(1), PQ = grad_output.size(2) * grad_output.size(3);
  const DeviceGuard guard(grad_output);
  Tensor db = new_empty(grad_output, {K});
  if (K == 0) return db;
  const Tensor dy = as_contiguous(grad_output);
  check_launch(op, conv2d_grad_bias(to_dtype(dy.scalar_type()), dy.const_data_ptr(), db.mutable_data_ptr(), N, K, PQ,
                                    current_stream(grad_output)));
  return db;
}

std::tuple<Tensor, Tensor, Tensor> conv2d_backward_cuda(Tensor grad_output, Tensor input, Tensor weight, IntList stride,
                                                        IntList padding, IntList dilation, int64_t groups,
                                                        std::vector<bool> output_mask) {
  return conv2d_backward_by_mask(grad_output, input, weight, stride, padding, dilation, groups, output_mask,
                                 &conv2d_grad_input_cuda, &conv2d_grad_weight_cuda, &conv2d_grad_bias_cuda);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) {
  m.impl("conv2d", TORCH_BOX(&conv2d_cuda));
  m.impl("conv2d_grad_input", TORCH_BOX(&conv2d_grad_input_cuda));
  m.impl("conv2d_grad_weight", TORCH_BOX(&conv2d_grad_weight_cuda));
  m.impl("conv2d_grad_bias", TORCH_BOX(&conv2d_grad_bias_cuda));
  m.impl("conv2d_backward", TORCH_BOX(&conv2d_backward_cuda));
}

}  // namespace dlk::cuda
