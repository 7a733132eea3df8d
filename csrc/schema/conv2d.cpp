// Schemas of the conv2d family (torch.nn.functional.conv2d semantics, symmetric zero padding;
// 'same' with an odd total and the non-zero padding modes are padded in Python, as torch does).
// Each gradient is its own op, so a caller computes only the ones it needs; grad_input needs the
// input's size (with stride > 1 several input sizes give one output size). conv2d_backward is
// what autograd records: one node for all three gradients, as torch's convolution_backward, so
// which gradients require grad in a double backward follows torch (dlkernels/_ops/conv2d.py).
#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def(
      "conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, "
      "int groups) -> Tensor");
  m.def(
      "conv2d_grad_input(Tensor grad_output, Tensor weight, SymInt[4] input_size, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  m.def(
      "conv2d_grad_weight(Tensor grad_output, Tensor input, SymInt[4] weight_size, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  m.def("conv2d_grad_bias(Tensor grad_output) -> Tensor");
  m.def(
      "conv2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}
