// Pooling on CUDA, host side: the checks and layout rules of host/pool2d.h (the CPU's), device
// guard, current stream, launch, launch check. Kernels are in pool2d.cu (torch-free).
#include <tuple>

#include "cuda/host.h"
#include "cuda/pool2d.h"
#include "host/pool2d.h"

namespace dlk::cuda {
namespace {

constexpr std::initializer_list<ScalarType> kDtypes = {ScalarType::Float, ScalarType::Double, ScalarType::Half,
                                                       ScalarType::BFloat16};

std::tuple<Tensor, Tensor> max_forward(const char* op, const Tensor& self, IntList kernel, IntList stride,
                                       IntList padding, IntList dilation, bool ceil_mode, bool want_indices) {
  const PoolCall c = max_pool2d_call(op, self, kernel, stride, padding, dilation, ceil_mode, want_indices, kDtypes);
  const DeviceGuard guard(self);
  check_launch(op, max_pool2d_forward(to_dtype(self.scalar_type()), c.in.const_data_ptr(), c.out.mutable_data_ptr(),
                                      want_indices ? c.indices.mutable_data_ptr<int64_t>() : nullptr, c.g, c.cl,
                                      current_stream(self)));
  return {c.out, c.indices};
}

Tensor max_pool2d_cuda(Tensor self, IntList kernel, IntList stride, IntList padding, IntList dilation, bool ceil_mode) {
  return std::get<0>(max_forward("max_pool2d", self, kernel, stride, padding, dilation, ceil_mode, false));
}

std::tuple<Tensor, Tensor> max_pool2d_with_indices_cuda(Tensor self, IntList kernel, IntList stride, IntList padding,
                                                        IntList dilation, bool ceil_mode) {
  return max_forward("max_pool2d_with_indices", self, kernel, stride, padding, dilation, ceil_mode, true);
}

Tensor max_pool2d_backward_cuda(Tensor grad_output, Tensor indices, IntList input_size, IntList kernel, IntList stride,
                                IntList padding, IntList dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  const PoolCall c = max_pool2d_backward_call(op, grad_output, indices, input_size, kernel, stride, padding, dilation,
                                              ceil_mode, kDtypes);
  const DeviceGuard guard(grad_output);
  check_launch(op, max_pool2d_backward(to_dtype(grad_output.scalar_type()), c.in.const_data_ptr(),
                                       c.indices.const_data_ptr<int64_t>(), c.out.mutable_data_ptr(), c.g, c.cl,
                                       current_stream(grad_output)));
  return c.out;
}

Tensor max_pool2d_gather_cuda(Tensor self, Tensor indices, IntList kernel, IntList stride, IntList padding,
                              IntList dilation, bool ceil_mode) {
  const char* op = "max_pool2d_gather";
  check_dtype(self, op, kDtypes);
  const Pool2dGeometry g = pool2d_geometry(op, self.sizes(), kernel, stride, padding, dilation, ceil_mode);
  check_same_device(op, self, "self", indices, "indices");
  DLK_CHECK(indices.scalar_type() == ScalarType::Long, op, ": expected indices of dtype Long, but got ",
            dtype_name(indices.scalar_type()));
  check_pool_grad_output(op, indices, g, "indices");
  const DeviceGuard guard(self);
  const bool cl = is_channels_last(indices);
  const Tensor x = as_pool_layout(self, cl), ix = as_pool_layout(indices, cl);
  const int64_t plane = g.H * g.W;
  Tensor out = new_pool_output(self, g.N, g.C, g.OH, g.OW, cl);
  const int64_t one[1] = {1};
  Tensor flag = torch::stable::new_zeros(self, IntList(one, 1), ScalarType::Int);
  bool bad = false;
  check_launch(op, max_pool2d_gather(to_dtype(self.scalar_type()), x.const_data_ptr(), ix.const_data_ptr<int64_t>(),
                                     out.mutable_data_ptr(), g.N, g.C, plane, g.OH * g.OW, cl,
                                     flag.mutable_data_ptr<int>(), &bad, current_stream(self)));
  DLK_CHECK(!bad, op, ": an index is out of bounds for a plane of ", plane, " elements");
  return out;
}

Tensor avg_pool2d_cuda(Tensor self, IntList kernel, IntList stride, IntList padding, bool ceil_mode,
                       bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  const PoolCall c =
      avg_pool2d_call(op, self, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, kDtypes);
  const DeviceGuard guard(self);
  check_launch(op, avg_pool2d_forward(to_dtype(self.scalar_type()), c.in.const_data_ptr(), c.out.mutable_data_ptr(),
                                      c.g, c.cl, current_stream(self)));
  return c.out;
}

Tensor avg_pool2d_backward_cuda(Tensor grad_output, IntList input_size, IntList kernel, IntList stride, IntList padding,
                                bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  const PoolCall c = avg_pool2d_backward_call(op, grad_output, input_size, kernel, stride, padding, ceil_mode,
                                              count_include_pad, divisor_override, kDtypes);
  const DeviceGuard guard(grad_output);
  check_launch(op, avg_pool2d_backward(to_dtype(grad_output.scalar_type()), c.in.const_data_ptr(),
                                       c.out.mutable_data_ptr(), c.g, c.cl, current_stream(grad_output)));
  return c.out;
}

Tensor adaptive_avg_pool2d_cuda(Tensor self, IntList output_size) {
  const char* op = "adaptive_avg_pool2d";
  const PoolCall c = adaptive_avg_pool2d_call(op, self, output_size, kDtypes);
  const DeviceGuard guard(self);
  check_launch(op, adaptive_avg_pool2d_forward(to_dtype(self.scalar_type()), c.in.const_data_ptr(),
                                               c.out.mutable_data_ptr(), c.g, c.cl, current_stream(self)));
  return c.out;
}

Tensor adaptive_avg_pool2d_backward_cuda(Tensor grad_output, IntList input_size) {
  const char* op = "adaptive_avg_pool2d_backward";
  const PoolCall c = adaptive_avg_pool2d_backward_call(op, grad_output, input_size, kDtypes);
  const DeviceGuard guard(grad_output);
  check_launch(op, adaptive_avg_pool2d_backward(to_dtype(grad_output.scalar_type()), c.in.const_data_ptr(),
                                                c.out.mutable_data_ptr(), c.g, c.cl, current_stream(grad_output)));
  return c.out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(DLK_NAMESPACE, DLK_CUDA_KEY, m) {
  m.impl("max_pool2d", TORCH_BOX(&max_pool2d_cuda));
  m.impl("max_pool2d_with_indices", TORCH_BOX(&max_pool2d_with_indices_cuda));
  m.impl("max_pool2d_backward", TORCH_BOX(&max_pool2d_backward_cuda));
  m.impl("max_pool2d_gather", TORCH_BOX(&max_pool2d_gather_cuda));
  m.impl("avg_pool2d", TORCH_BOX(&avg_pool2d_cuda));
  m.impl("avg_pool2d_backward", TORCH_BOX(&avg_pool2d_backward_cuda));
  m.impl("adaptive_avg_pool2d", TORCH_BOX(&adaptive_avg_pool2d_cuda));
  m.impl("adaptive_avg_pool2d_backward", TORCH_BOX(&adaptive_avg_pool2d_backward_cuda));
}

}  // namespace dlk::cuda
