// dlkernels._cuda_sim: the CUDA kernels compiled with g++ for the SIMT emulator (cuda/sim) and
// registered on the CPU key of the dlkernels_sim namespace, next to every schema compiled again
// for that namespace (setup.py builds it with -DDLK_CUDA_SIM -DDLK_NAMESPACE=dlkernels_sim
// -DDLK_CUDA_KEY=CPU). dlkernels.testing.cuda_sim() routes dlkernels ops on CPU tensors here.
// Not part of dlkernels._cuda.
#include <Python.h>  // first, as CPython asks

#include <torch/csrc/stable/library.h>

// The namespace's one DEF (schema/namespace.h: the macro pastes its argument unexpanded, so the
// name is spelled out); the schemas themselves are the fragments of csrc/schema.
STABLE_TORCH_LIBRARY(dlkernels_sim, m) {}

PyMODINIT_FUNC PyInit__cuda_sim(void) {
  static PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_cuda_sim", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
