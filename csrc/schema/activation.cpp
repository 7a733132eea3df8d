// Schemas of the activation family. relu/sigmoid backward take the forward *output*; leaky_relu
// backward takes the input, or the output when it ran in place (valid for negative_slope >= 0).
// In-place ops declare the write (Tensor(a!)) and return nothing: functionalization
// (torch.compile) cannot handle a custom op that returns an alias of its input, so the Python
// layer returns the input itself.
#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("relu(Tensor self) -> Tensor");
  m.def("relu_(Tensor(a!) self) -> ()");
  m.def("relu_backward(Tensor grad_output, Tensor result) -> Tensor");
  m.def("leaky_relu(Tensor self, float negative_slope) -> Tensor");
  m.def("leaky_relu_(Tensor(a!) self, float negative_slope) -> ()");
  m.def("leaky_relu_backward(Tensor grad_output, Tensor self, float negative_slope) -> Tensor");
  m.def("sigmoid(Tensor self) -> Tensor");
  m.def("sigmoid_(Tensor(a!) self) -> ()");
  m.def("sigmoid_backward(Tensor grad_output, Tensor result) -> Tensor");
}
