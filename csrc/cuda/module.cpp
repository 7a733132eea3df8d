// `import dlkernels._cuda` loads this library, which runs the CUDA kernel registrations of every
// *_host.cpp linked into it. The module itself is empty (limited Python API, like dlkernels._C).
#include <Python.h>

PyMODINIT_FUNC PyInit__cuda(void) {
  static PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_cuda", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
