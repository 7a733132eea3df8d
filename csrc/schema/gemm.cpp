// Internal operators over the CPU GEMM core, for tests and benchmarks (csrc/cpu/gemm_ops.cpp):
//   _gemm(a, b)        a @ b for 2-D float/double tensors (the core alone, against torch.mm)
//   _gemm_peak(dtype)  GFLOP/s of the micro-kernel on L1-resident panels, on every thread: the
//                      practical FMA peak of this machine that the convolution numbers sit under.
#include "schema/namespace.h"

STABLE_TORCH_LIBRARY_FRAGMENT(DLK_NAMESPACE, m) {
  m.def("_gemm(Tensor a, Tensor b) -> Tensor");
  m.def("_gemm_peak(ScalarType dtype, int rounds=20000) -> float");
}
