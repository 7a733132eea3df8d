// The dlkernels operator library: every schema, forward and backward, in one place.
// Kernels register per device in csrc/cpu/*.cpp and csrc/cuda/*_host.cpp; fake (meta) kernels for
// torch.compile live in dlkernels/_meta; autograd kernels in csrc/autograd (and
// dlkernels/autograd for the in-place Functions and sigmoid_backward's derivative).
#include <Python.h>  // first, as CPython asks

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include "cpu/isa.h"

// `import dlkernels._C` loads this library, which runs the registrations below. The module itself
// is empty; it is built against the limited Python API, so one wheel serves every CPython >= 3.9.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}

namespace {

std::string cpu_isa() { return dlk::cpu::isa_name(dlk::cpu::active_isa()); }
std::string set_cpu_isa(const std::string& name) { return dlk::cpu::isa_name(dlk::cpu::set_active_isa(name)); }
std::vector<std::string> cpu_isas() { return dlk::cpu::supported_isa_names(); }

// The in-place ops write through raw pointers and return nothing, so autograd learns of the write
// only through the two kernels below (torch's generic fallbacks key on aliased *returns*).
//
// ADInplaceOrView: bumps the version counter of every argument the schema marks as written
// (Tensor(a!)), so overwriting a tensor that autograd saved for backward raises at backward, as
// with torch's own in-place ops, instead of silently producing wrong gradients.
void bump_written_arguments(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  std::vector<at::Tensor> written;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto* alias = args[i].alias_info();
    if (alias != nullptr && alias->isWrite()) written.push_back((*stack)[stack->size() - args.size() + i].toTensor());
  }
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op.redispatchBoxed(keys & c10::after_ADInplaceOrView_keyset, stack);
  }
  for (const auto& t : written) torch::autograd::impl::bump_version(t);
}

// Autograd: the raw in-place ops record no history, so running one on a tensor that requires grad
// would make backward treat it as the identity. Refuse that up front; dlkernels.functional and
// dlkernels.autograd are the differentiable in-place entry points (their Functions call these ops
// under no_grad, where this kernel only redispatches).
void refuse_inplace_on_grad(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  if (at::GradMode::is_enabled()) {
    for (size_t i = 0; i < args.size(); ++i) {
      const auto* alias = args[i].alias_info();
      if (alias == nullptr || !alias->isWrite()) continue;
      TORCH_CHECK(!(*stack)[stack->size() - args.size() + i].toTensor().requires_grad(), op.schema().name(),
                  ": the raw in-place op records no autograd history, but '", args[i].name(),
                  "' requires grad. Use the in-place form of dlkernels.functional or dlkernels.autograd, "
                  "or run it under torch.no_grad().");
    }
  }
  op.redispatchBoxed(keys & c10::after_autograd_keyset, stack);
}

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

TORCH_LIBRARY_IMPL(dlkernels, ADInplaceOrView, m) {
  for (const char* op : {"relu_", "leaky_relu_", "sigmoid_"}) {
    m.impl(op, torch::CppFunction::makeFromBoxedFunction<&bump_written_arguments>());
  }
}

TORCH_LIBRARY_IMPL(dlkernels, Autograd, m) {
  for (const char* op : {"relu_", "leaky_relu_", "sigmoid_"}) {
    m.impl(op, torch::CppFunction::makeFromBoxedFunction<&refuse_inplace_on_grad>());
  }
}
