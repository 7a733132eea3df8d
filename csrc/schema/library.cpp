// The dlkernels operator library: the one STABLE_TORCH_LIBRARY (each family adds its schemas in
// csrc/schema/<family>.cpp as a fragment), the ops that select the CPU ISA, and the Python module
// init. Kernels register per device in csrc/cpu/<family>.cpp and csrc/cuda/<family>_host.cpp;
// fake kernels, autograd and in-place semantics are registered from Python (dlkernels/_ops).
#include <Python.h>  // first, as CPython asks

#include <torch/csrc/stable/library.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/isa.h"

// `import dlkernels._C` loads this library, which runs the registrations of every unit linked
// into it. The module itself is empty; it is built against the limited Python API, so one wheel
// serves every CPython the oldest supported torch does.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}

namespace {

using dlk::cpu::Isa;

// ISAs travel as their names out and as indices in (a str argument of the stable ABI is copied
// into a string the shim never frees). -1 selects the best ISA.
std::string cpu_isa() { return dlk::cpu::isa_name(dlk::cpu::active_isa()); }

std::string set_cpu_isa(int64_t index) {
  if (index < -1 || index > static_cast<int64_t>(Isa::avx512)) {
    throw std::invalid_argument("dlkernels: no CPU ISA with index " + std::to_string(index));
  }
  const std::string name = index < 0 ? "auto" : dlk::cpu::isa_name(static_cast<Isa>(index));
  return dlk::cpu::isa_name(dlk::cpu::set_active_isa(name));
}

std::vector<std::string> cpu_isas() { return dlk::cpu::supported_isa_names(); }

}  // namespace

STABLE_TORCH_LIBRARY(dlkernels, m) {
  // Runtime CPU ISA selection (cpu/isa.h): not compute, no tensors.
  m.def("_cpu_isa() -> str");
  m.def("_set_cpu_isa(int isa) -> str");
  m.def("_cpu_isas() -> str[]");
}

STABLE_TORCH_LIBRARY_IMPL(dlkernels, CompositeExplicitAutograd, m) {
  m.impl("_cpu_isa", TORCH_BOX(&cpu_isa));
  m.impl("_set_cpu_isa", TORCH_BOX(&set_cpu_isa));
  m.impl("_cpu_isas", TORCH_BOX(&cpu_isas));
}
