// Schemas of the linear family (torch.nn.functional.linear: y = x W^T + b over any leading
// dimensions of x). Each gradient is its own op, so a caller computes only what it needs:
//   grad_input  = grad_output W           (..., out) x (out, in) -> (..., in)
//   grad_weight = grad_output^T input     leading dimensions folded into the reduction
//   grad_bias   = grad_output summed over its leading dimensions
// linear_backward computes the gradients an output mask asks for in one call. Autograd records the
// single-gradient ops instead, as torch's addmm does, so which gradients require grad in a double
// backward follows torch (dlkernels/_ops/linear.py). allow_tf32 lets a CUDA float32 product run
// as TF32 on tensor cores (torch.backends.cuda.matmul.allow_tf32); the CPU ignores it.
#include <torch/csrc/stable/library.h>

#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("linear(Tensor input, Tensor weight, Tensor? bias, bool allow_tf32=False) -> Tensor");
  m.def("linear_grad_input(Tensor grad_output, Tensor weight, bool allow_tf32=False) -> Tensor");
  m.def("linear_grad_weight(Tensor grad_output, Tensor input, bool allow_tf32=False) -> Tensor");
  m.def("linear_grad_bias(Tensor grad_output) -> Tensor");
  m.def(
      "linear_backward(Tensor grad_output, Tensor input, Tensor weight, bool[3] output_mask, bool allow_tf32=False) "
      "-> (Tensor, Tensor, Tensor)");
}
