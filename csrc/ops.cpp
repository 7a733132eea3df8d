// The dlkernels operator library: every schema, forward and backward, in one place.
// Kernels register per device in csrc/cpu/*.cpp and csrc/cuda/*_host.cpp; fake (meta) kernels for
// torch.compile live in dlkernels/_meta; autograd is wired in dlkernels/autograd.
#include <Python.h>
#include <torch/library.h>

#include "cpu/isa.h"

// `import dlkernels._C` loads this library, which runs the registrations below. The module itself
// is empty; it is built against the limited Python API, so one wheel serves every CPython >= 3.9.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}

namespace {

std::string cpu_isa() { return dlk::cpu::isa_name(dlk::cpu::active_isa()); }
std::string set_cpu_isa(const std::string& name) { return dlk::cpu::isa_name(dlk::cpu::set_active_isa(name)); }
std::vector<std::string> cpu_isas() { return dlk::cpu::supported_isa_names(); }

}  // namespace

TORCH_LIBRARY(dlkernels, m) {
  // Activations. relu/sigmoid backward take the forward *output*; leaky_relu backward takes the
  // input, or the output when it ran in place (valid for negative_slope >= 0). In-place ops
  // return nothing: functionalization (torch.compile) cannot handle a custom op that returns an
  // alias of its input, so the Python layer returns the input itself.
  m.def("relu(Tensor self) -> Tensor");
  m.def("relu_(Tensor(a!) self) -> ()");
  m.def("relu_backward(Tensor grad_output, Tensor result) -> Tensor");
  m.def("leaky_relu(Tensor self, float negative_slope) -> Tensor");
  m.def("leaky_relu_(Tensor(a!) self, float negative_slope) -> ()");
  m.def("leaky_relu_backward(Tensor grad_output, Tensor self, float negative_slope) -> Tensor");
  m.def("sigmoid(Tensor self) -> Tensor");
  m.def("sigmoid_(Tensor(a!) self) -> ()");
  m.def("sigmoid_backward(Tensor grad_output, Tensor result) -> Tensor");

  // 2-D convolution (torch.nn.functional.conv2d semantics, symmetric zero padding; 'same' with
  // an odd total and the non-zero padding modes are padded in Python, as torch does). Each
  // gradient is its own op so autograd computes only the ones it needs. grad_input needs the
  // input's size: with stride > 1 several input sizes give the same output size.
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

  // Runtime CPU ISA selection (cpu/isa.h): not compute, no tensors.
  m.def("_cpu_isa() -> str", &cpu_isa);
  m.def("_set_cpu_isa(str isa) -> str", &set_cpu_isa);
  m.def("_cpu_isas() -> str[]", &cpu_isas);
}
